"""Published weights for zoo builders: looking them up, checking `weights=`, loading them.

- `pretrained_weights(arch)`: the `weights=` values published for an
  architecture (timm's pretrained tags), from the manifests `keras_lc.weights`
  finds.
- `check_weights` / `load_weights`: keras.applications' `weights` argument
  (`None`, a local file, or a published name) checked before a model is
  built, and the one hook that loads it into the built model.
- `load_published(name)`: a published model (a `keras-lc export` name, or a
  Hugging Face Hub repository `hf://ORG/REPO[@REVISION]`, `keras_lc.hub`)
  built by its builder with its weights.
- `preprocessing_for` / `preprocessing_layer`: the normalization a builder
  puts in front of the model (`include_preprocessing`); `split_preprocessing`
  takes it off a model again, and `preprocessing_of` reads it back;
  `preprocess_input` and `decode_predictions`: the same normalization and
  the class names for arrays, in keras.applications' style.
"""

import difflib
import os

import numpy as np

from keras_lc import hub
from keras_lc.weights import Preprocessing, fetch, published_weights
from keras_lc.zoo.registry import get_model

WEIGHTS_SUFFIXES = (".weights.h5", ".keras")
PREPROCESSING = "preprocessing"  #: the name of the `include_preprocessing` layer


def pretrained_weights(arch):
    """{`weights=` value: `keras_lc.weights.PretrainedWeights`} published for `arch`.

    `arch` is a builder's default model name (the registry name for presets,
    e.g. `"resnet_lc20_16x128"`, `"resnet18_low_res"` for
    `resnet18(low_res=True)`); a manifest's `model` field must equal it. Each
    tag names one set of weights (ResNet-LC-20-16x128: `"cifar10"` frozen,
    `"cifar10_learnable"` learnable). When two folders publish the same tag,
    the first in the search order (`$KERAS_LC_ZOO` first) wins.
    """
    found = {}
    for entry in published_weights(requested=arch).values():  # first wins
        if entry.model == arch:
            found.setdefault(entry.weights, entry)
    return found


def load_published(name, include_top=True, **overrides):
    """The published model `name` (a `keras-lc export` name or `hf://ORG/REPO[@REVISION]`) with its weights.

    The same model as the builder call its card shows: the manifest's
    builder with the architecture arguments of its `model_kwargs` and
    `weights=` its tag, so it takes raw RGB images in [0, 255] and outputs
    probabilities (keras.applications' defaults). `overrides` change any
    builder argument: `classifier_activation=None` gives logits and
    `include_preprocessing=False` takes normalized inputs, which together are
    the form it was trained in. `include_top=False` gives the backbone (the
    no-top file).

    Example:

    >>> import keras_lc
    >>> sorted(keras_lc.weights.published_weights())[:1]
    ['resnet20_16_cifar10']
    >>> model = keras_lc.zoo.load_published("resnet20_16_cifar10")
    >>> model.output_shape, model.layers[1].name
    ((None, 10), 'preprocessing')
    """
    if hub.is_hub_id(name):
        entry = hub.manifest(name)
        return _build_published(entry, name, include_top, overrides)
    published = published_weights(requested=name)
    if name not in published:
        close = difflib.get_close_matches(str(name), list(published), n=3, cutoff=0.5)
        raise ValueError(
            f"No published model is named {name!r}"
            + (f"; did you mean one of {close}?" if close else ".")
            + f" Published: {sorted(published) or 'none'}."
        )
    return _build_published(published[name], published[name].weights, include_top, overrides)


def _build_published(entry, weights, include_top, overrides):
    """`entry`'s builder with its architecture arguments and `weights` (its tag or hub id)."""
    kwargs = dict(entry.model_kwargs, weights=weights, include_top=include_top)
    kwargs.pop("classifier_activation", None)  # how it trained, not what it is: softmax
    if not include_top:
        kwargs.pop("classes", None)
    kwargs.update(overrides)
    return get_model(entry.builder or entry.model, **kwargs)


def _is_weights_file(weights):
    return (
        isinstance(weights, (str, os.PathLike))
        and os.fspath(weights).endswith(WEIGHTS_SUFFIXES)
        and os.path.isfile(weights)
    )


def check_weights(weights, arch, include_top, classes, frozen_spatial=None):
    """keras.applications' `weights` checks, against `arch`'s published weights.

    Returns the `PretrainedWeights` entry `weights` names, or `None` for
    `None` or a local file.
    """
    if weights is None or _is_weights_file(weights):
        return None
    if hub.is_hub_id(weights):
        entry, published = hub.manifest(weights), {}
        if entry.model != arch:
            raise ValueError(
                f"The Hub model {weights} is a '{entry.model}'"
                + (f" (builder '{entry.builder}')" if entry.builder not in (None, entry.model) else "")
                + f", not a '{arch}': build it with keras_lc.zoo.load_published({weights!r}). "
                f"Received: weights={weights!r}"
            )
    else:
        published = pretrained_weights(arch)
        if not isinstance(weights, str) or weights not in published:
            raise ValueError(
                "The `weights` argument should be either `None` (random initialization), "
                f"the name of pretrained weights published for '{arch}' ({_tags(published)}), "
                f"a Hugging Face Hub model (hf://ORG/REPO[@REVISION]), "
                f"or the path to an existing {' or '.join(WEIGHTS_SUFFIXES)} file.  "
                f"Received: weights={weights!r}"
            )
        entry = published[weights]
    trained = entry.model_kwargs.get("frozen_spatial")
    if frozen_spatial is not None and trained is not None and trained != frozen_spatial:
        raise ValueError(
            f"The weights {weights!r} of '{arch}' were trained with frozen_spatial={trained}: "
            f"pass frozen_spatial={trained}"
            + (f", or choose weights that fit ({_tags(published)}). " if published else ". ") +
            f"Received: weights={weights!r}, frozen_spatial={frozen_spatial}"
        )
    if include_top and classes != entry.classes:
        raise ValueError(
            f"If using `weights='{weights}'` with `include_top=True`, `classes` "
            f"should be {entry.classes}.  Received classes={classes}"
        )
    entry.file(include_top)  # include_top=False needs the no-top file
    return entry


def load_weights(model, weights, arch, include_top=True, entry=None):
    """The one weights hook: `None`, a local file, or `arch`'s published weights.

    Published weights (`entry`, from `check_weights`; looked up when not
    given) load their no-top file into a model built with
    `include_top=False`. A file that does not fit the model (another
    architecture or other arguments) raises a ValueError saying so.
    """
    if weights is None:
        return model
    if _is_weights_file(weights):
        path, expected = weights, "the model it was saved from"
    elif hub.is_hub_id(weights):
        entry = entry or hub.manifest(weights)
        path = hub.fetch(weights, entry, include_top)
    else:
        entry = entry or pretrained_weights(arch)[weights]
        path = fetch(entry, include_top=include_top)
        expected = f"{entry.model} built with {entry.model_kwargs}"
    try:
        model.load_weights(path)
    except ValueError as error:
        raise ValueError(
            f"The weights in '{path}' do not fit model '{model.name}' ({arch}): they are for "
            f"{expected}. Build the model with the arguments the weights were saved with. "
            f"Keras said: {' '.join(str(error).split())}"
        ) from error
    return model


def _tags(published):
    """The published tags with the `frozen_spatial` each was trained with."""
    if not published:
        return "none published"
    return ", ".join(
        repr(tag) + ("" if e.model_kwargs.get("frozen_spatial") is None
                     else f" (frozen_spatial={e.model_kwargs['frozen_spatial']})")
        for tag, e in sorted(published.items()))


def dataset_preprocessing(dataset):
    """The `Preprocessing` of a dataset of `keras_lc.data.DATASETS` (raw uint8 RGB in)."""
    from keras_lc.data.datasets import get_spec

    spec = get_spec(dataset)
    return Preprocessing((spec.image_size, spec.image_size, 3), (0, 255), spec.mean, spec.std)


def preprocessing_for(include_preprocessing, entry, weights):
    """The `Preprocessing` a builder's `include_preprocessing` asks for, or `None`.

    See `keras_lc.zoo.application` for the meaning of each value; `entry` is
    the published weights `weights` names (or `None`).
    """
    if include_preprocessing is None:
        return _recorded_preprocessing(entry) if entry is not None else None
    if isinstance(include_preprocessing, str):
        try:
            return dataset_preprocessing(include_preprocessing)
        except ValueError as error:
            raise ValueError(
                f"`include_preprocessing` names no known dataset ({error}). "
                f"Received: include_preprocessing={include_preprocessing!r}"
            ) from None
    if include_preprocessing is False:
        return None
    if include_preprocessing is not True:
        raise ValueError(
            "`include_preprocessing` must be None, True, False or a dataset name. "
            f"Received: include_preprocessing={include_preprocessing!r}"
        )
    if entry is None or _recorded_preprocessing(entry) is None:
        raise ValueError(
            "`include_preprocessing=True` uses the normalization of published weights, and "
            f"`weights={weights!r}` names none: pass a dataset name (e.g. "
            "include_preprocessing='cifar10') or include_preprocessing=False."
        )
    return _recorded_preprocessing(entry)


def _recorded_preprocessing(entry):
    """`entry.preprocessing`; for manifests that predate it, its dataset's (if known)."""
    if entry.preprocessing is not None:
        return entry.preprocessing
    try:
        return dataset_preprocessing(entry.dataset)
    except ValueError:
        return None


def preprocessing_layer(preprocessing, name=PREPROCESSING):
    """A stock `keras.layers.Normalization` computing `(x / high - mean) / std`.

    A stock layer (not a keras_lc one) so that folded and exported models load
    without keras_lc; it holds no weights, so weights files are unchanged.
    """
    import keras

    high = float(preprocessing.value_range[1])
    mean = [float(m) * high for m in preprocessing.mean]
    variance = [(float(s) * high) ** 2 for s in preprocessing.std]
    return keras.layers.Normalization(mean=mean, variance=variance, name=name)


def preprocessing_of(layer, value_range=(0, 255)):
    """The `Preprocessing` a `keras.layers.Normalization` applies to pixels in `value_range`:
    the inverse of `preprocessing_layer`, with its mean and std in [0, 1] units.

    `input_size` is the layer's input shape without the batch axis.

    Example:

    >>> import keras_lc
    >>> prep, _ = keras_lc.zoo.split_preprocessing(keras_lc.zoo.resnet20(weights="cifar10"))
    >>> keras_lc.zoo.preprocessing_of(prep).mean
    (0.4914, 0.4822, 0.4465)
    """
    import keras

    high = float(value_range[1])
    mean = np.ravel(keras.ops.convert_to_numpy(layer.mean)) / high
    std = np.sqrt(np.ravel(keras.ops.convert_to_numpy(layer.variance))) / high
    return Preprocessing(tuple(layer.input.shape[1:]), tuple(value_range),
                         tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std))


def split_preprocessing(model):
    """`(preprocessing, rest)`: the `include_preprocessing` normalization a model starts with,
    and the model after it, which takes normalized inputs; `(None, model)` for a model without.

    What takes normalized images (an FGSM attack in normalized space, say) is given `rest`.

    Example:

    >>> import keras_lc
    >>> prep, rest = keras_lc.zoo.split_preprocessing(keras_lc.zoo.resnet20(weights="cifar10"))
    >>> prep.name, rest.layers[1].name
    ('preprocessing', 'stem_conv')
    """
    import keras

    layer = next((item for item in model.layers if item.name == PREPROCESSING), None)
    if not isinstance(layer, keras.layers.Normalization) or layer.input is not model.inputs[0]:
        return None, model
    return layer, keras.Model(layer.output, model.outputs, name=model.name)


def _published_by(weights):
    """The published entries `weights` names: a published model name, a tag, or a Hub id."""
    if hub.is_hub_id(weights):
        return [hub.manifest(weights)]
    published = published_weights(requested=weights)
    if weights in published:
        return [published[weights]]
    entries = [e for e in published.values() if e.weights == weights]
    if not entries:
        tags = sorted({e.weights for e in published.values()})
        raise ValueError(
            f"No published weights are named or tagged {weights!r}. Published names: "
            f"{sorted(published)}; tags: {tags}. Received: weights={weights!r}"
        )
    return entries


def _one(values, what, weights):
    distinct = {v for v in values if v is not None}
    if not distinct:
        raise ValueError(
            f"The published weights {weights!r} record no {what} (their manifest predates the field: "
            f"re-export them with `keras-lc export`). Received: weights={weights!r}"
        )
    if len(distinct) > 1:
        raise ValueError(
            f"The published weights tagged {weights!r} differ in their {what}: pass a published "
            f"model name instead. Received: weights={weights!r}"
        )
    return distinct.pop()


def preprocess_input(images, weights="cifar10"):
    """Raw RGB images in [0, 255] normalized as the published `weights` expect.

    For models built with `include_preprocessing=False` (the others do this
    themselves). `weights` is a published model name or a `weights=` tag.

    Example:

    >>> import numpy as np
    >>> x = preprocess_input(np.full((1, 32, 32, 3), 255, np.uint8))
    >>> [round(float(v), 3) for v in x[0, 0, 0]]
    [2.059, 2.126, 2.116]
    """
    p = _one([_recorded_preprocessing(e) for e in _published_by(weights)], "preprocessing", weights)
    x = np.asarray(images, dtype=np.float32)
    if x.ndim < 1 or x.shape[-1] != len(p.mean):
        raise ValueError(
            f"`images` must end in {len(p.mean)} channels. Received: images of shape {x.shape}"
        )
    return (x / np.float32(p.value_range[1]) - np.asarray(p.mean, np.float32)) / np.asarray(p.std, np.float32)


def decode_predictions(preds, top=5, weights="cifar10"):
    """keras.applications' `decode_predictions` for published models.

    Returns, per image, a list of `(class_index, class_name, score)` tuples,
    best first. `weights` is a published model name or a `weights=` tag.

    Example:

    >>> import numpy as np
    >>> decode_predictions(np.eye(10)[[3]], top=2)[0][0]
    (3, 'cat', 1.0)
    """
    names = _one([tuple(e.class_names) if e.class_names else None for e in _published_by(weights)],
                 "class names", weights)
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != len(names):
        raise ValueError(
            f"`decode_predictions` expects a batch of predictions (shape (samples, {len(names)})). "
            f"Received: preds of shape {preds.shape}"
        )
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= len(names):
        raise ValueError(f"`top` must be an integer in [1, {len(names)}]. Received: top={top!r}")
    order = np.argsort(-preds, axis=1, kind="stable")[:, :top]
    return [[(int(i), names[i], float(row[i])) for i in best] for row, best in zip(preds, order)]
