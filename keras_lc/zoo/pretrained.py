"""Published weights for zoo builders: looking them up, checking `weights=`, loading them.

- `pretrained_weights(arch)`: the `weights=` values published for an
  architecture (timm's pretrained tags), from the manifests `keras_lc.weights`
  finds.
- `check_weights` / `load_weights`: keras.applications' `weights` argument
  (`None`, a local file, or a published name) checked before a model is
  built, and the one hook that loads it into the built model.
- `load_published(name)`: a published model (a `keras-lc export` name) built
  by its builder with its weights.
"""

import difflib
import os

from keras_lc.weights import fetch, published_weights
from keras_lc.zoo.registry import get_model

WEIGHTS_SUFFIXES = (".weights.h5", ".keras")


def pretrained_weights(arch, frozen_spatial=None):
    """{`weights=` value: `keras_lc.weights.PretrainedWeights`} published for `arch`.

    `arch` is a builder's default model name (the registry name for presets,
    e.g. `"resnet_lc20_16x128"`, `"resnet18_low_res"` for
    `resnet18(low_res=True)`); a manifest's `model` field must equal it.
    With `frozen_spatial` given, only weights trained with that setting count
    (ResNet-LC-20-16x128 is published both frozen and learnable, under the
    same architecture name). When two folders publish the same `weights=`
    value, the first in the search order (`$KERAS_LC_ZOO` first) wins.
    """
    found = {}
    for entry in published_weights(requested=arch).values():  # first wins
        if entry.model == arch and (
            frozen_spatial is None
            or entry.model_kwargs.get("frozen_spatial", frozen_spatial) == frozen_spatial
        ):
            found.setdefault(entry.weights, entry)
    return found


def load_published(name, include_top=True, **overrides):
    """The published model `name` (a `keras-lc export` name) built with its weights.

    Calls the manifest's builder with its `model_kwargs` (the arguments the
    model was trained with: e.g. `classifier_activation=None`, logits) updated
    by `overrides`, and `weights=` its tag; `include_top=False` gives the
    backbone (the no-top file).

    Example:

    >>> import keras_lc
    >>> sorted(keras_lc.weights.published_weights())[:1]
    ['resnet20_16_cifar10']
    >>> model = keras_lc.zoo.load_published("resnet20_16_cifar10")
    >>> model.output_shape
    (None, 10)
    """
    published = published_weights(requested=name)
    if name not in published:
        close = difflib.get_close_matches(str(name), list(published), n=3, cutoff=0.5)
        raise ValueError(
            f"No published model is named {name!r}"
            + (f"; did you mean one of {close}?" if close else ".")
            + f" Published: {sorted(published) or 'none'}."
        )
    entry = published[name]
    kwargs = dict(entry.model_kwargs, weights=entry.weights, include_top=include_top)
    if not include_top:
        kwargs.pop("classes", None)
        kwargs.pop("classifier_activation", None)
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
    published = pretrained_weights(arch, frozen_spatial)
    if not isinstance(weights, str) or weights not in published:
        names = sorted(published) or "none published"
        variant = "" if frozen_spatial is None else f" with frozen_spatial={frozen_spatial}"
        raise ValueError(
            "The `weights` argument should be either `None` (random initialization), "
            f"the name of pretrained weights published for '{arch}'{variant} ({names}), "
            f"or the path to an existing {' or '.join(WEIGHTS_SUFFIXES)} file.  "
            f"Received: weights={weights!r}"
        )
    entry = published[weights]
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
