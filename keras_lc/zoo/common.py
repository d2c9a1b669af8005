"""What every zoo builder shares: argument checks, the conv factory, the head, weights.

- `Application`: validates the keras.applications arguments (`include_top`,
  `weights`, `input_tensor`, `input_shape`, `pooling`, `classes`,
  `classifier_activation`) with keras.applications' error messages, makes the
  input, and finishes the model with the one classifier head and the one
  weights-loading hook (`load_weights`).
- `ConvOptions` + `conv` / `depthwise_conv`: the one factory for every
  convolution of every builder: an `LCConv2D` for k x k convolutions of LC
  models, otherwise a `Conv2D` whose k x k kernels are frozen at their
  seed's random values when `frozen_spatial`.
- `batch_norm` (PyTorch's momentum and epsilon) and `conv_bn`.

All kernels are initialized with PyTorch's default uniform distribution from a
per-layer seed derived from the model seed and the layer name, so a model is
defined by its seed, and frozen and learnable variants of one seed start from
the same function.
"""

import dataclasses
import difflib
import os
from typing import Callable

import keras

from keras_lc import weights as weights_registry
from keras_lc.initializers import STREAM_BIAS, TorchUniform
from keras_lc.layers.lc_conv2d import LCConv2D, _pair, _positive_int
from keras_lc.initializers import layer_seed, resolve_seed, spatial_initializer

WEIGHTS_SUFFIXES = (".weights.h5", ".keras")
POOLINGS = (None, "avg", "max")


def check_bool(value, name):
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return value


def check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}. Received: {name}={value!r}")
    return value


# ----------------------------------------------------------------- weights
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
    for entry in weights_registry.published_weights(requested=arch).values():  # first wins
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
    from keras_lc.zoo.registry import get_model

    published = weights_registry.published_weights(requested=name)
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
        path = weights_registry.fetch(entry, include_top=include_top)
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


# ---------------------------------------------------------------- convs
@dataclasses.dataclass(frozen=True)
class ConvOptions:
    """How a builder's convolutions are made (see `conv`).

    Attributes:
        seed: Model seed; each layer's seed is `layer_seed(seed, name)`.
        frozen_spatial: Freeze k x k kernels (LC: `spatial_trainable=False`).
        lc: Make k x k convolutions `LCConv2D` layers.
        expansion: LC expansion E.
        implementation: `LCConv2D` implementation.
        make_lc: Optional `fn(filters, kernel_size, strides, name, seed)`
            returning the LC layer instead of `LCConv2D` (shared spatial bank).
    """

    seed: int
    frozen_spatial: bool = False
    lc: bool = False
    expansion: int = 1
    implementation: str = "auto"
    make_lc: Callable = None

    @classmethod
    def create(cls, seed=None, frozen_spatial=False, **kwargs):
        """Validated options; `seed=None` stays open until `Application` resolves it."""
        check_bool(frozen_spatial, "frozen_spatial")
        if "expansion" in kwargs:
            _positive_int(kwargs["expansion"], "expansion")
        seed = None if seed is None else resolve_seed(seed)
        return cls(seed=seed, frozen_spatial=frozen_spatial, **kwargs)

    def seed_for(self, name):
        if self.seed is None:
            raise RuntimeError("ConvOptions.seed is unresolved: use Application(...).options.")
        return layer_seed(self.seed, name)


def conv(filters, kernel_size, strides, name, options):
    """The convolution layer `name` of a zoo model ("same" padding, no bias).

    k x k (k > 1) convolutions are `LCConv2D` layers when `options.lc`, with
    `spatial_trainable=not options.frozen_spatial`; otherwise `Conv2D` layers,
    non-trainable when `options.frozen_spatial`. 1x1 convolutions are always
    trainable `Conv2D` layers. Every zoo convolution is followed by a
    BatchNormalization, hence no bias.
    """
    kernel_size = _pair(kernel_size, "kernel_size")
    seed = options.seed_for(name)
    spatial = max(kernel_size) > 1
    if spatial and options.lc:
        if options.make_lc is not None:
            return options.make_lc(filters, kernel_size, strides, name, seed)
        return LCConv2D(
            filters,
            kernel_size,
            strides=strides,
            expansion=options.expansion,
            spatial_trainable=not options.frozen_spatial,
            implementation=options.implementation,
            seed=seed,
            name=name,
        )
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer=spatial_initializer(kernel_size, seed),
        trainable=not (spatial and options.frozen_spatial),
        name=name,
    )


def depthwise_conv(kernel_size, strides, name, options):
    """A depthwise convolution (no bias), frozen when `options.frozen_spatial`."""
    kernel_size = _pair(kernel_size, "kernel_size")
    return keras.layers.DepthwiseConv2D(
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        depthwise_initializer=spatial_initializer(
            kernel_size, options.seed_for(name), depthwise=True
        ),
        trainable=not (max(kernel_size) > 1 and options.frozen_spatial),
        name=name,
    )


def batch_norm(name):
    """BatchNormalization with PyTorch's defaults (momentum 0.1, eps 1e-5)."""
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def conv_bn(x, filters, kernel_size, strides, options, prefix, suffix="", activation="relu"):
    """conv -> BN -> activation, named `{prefix}_conv{suffix}`, `_bn`, `_relu`.

    The BatchNormalization consumes the convolution's output directly, so a
    whole-model fold can merge it into the convolution. `activation` is
    `"relu"`, `"relu6"` or `None`.
    """
    x = conv(filters, kernel_size, strides, f"{prefix}_conv{suffix}", options)(x)
    x = batch_norm(f"{prefix}_bn{suffix}")(x)
    return relu(x, activation, f"{prefix}_relu{suffix}")


def relu(x, activation, name):
    """`keras.layers.ReLU` (`"relu"`), ReLU6 (`"relu6"`) or identity (`None`)."""
    if activation is None:
        return x
    max_value = {"relu": None, "relu6": 6.0}[activation]
    return keras.layers.ReLU(max_value=max_value, name=name)(x)


# ------------------------------------------------------------ application
class Application:
    """The keras.applications arguments of one builder call, validated.

    Args:
        arch: Architecture name (the builder's default model name), the key
            of its published weights.
        options: The builder's `ConvOptions`. `app.options` is the same with
            the seed resolved: the given one, else the seed of the published
            weights named by `weights` (their frozen kernels are defined by
            it), else a fresh draw.
        default_size: Default input height/width with `include_top=True`.
        min_size: Smallest accepted input height/width.
        The other arguments are keras.applications'.
    """

    def __init__(
        self,
        arch,
        *,
        options,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        name,
        default_size,
        min_size,
    ):
        if keras.config.image_data_format() != "channels_last":
            raise ValueError(
                "keras_lc.zoo builds channels_last models. Received: "
                f"keras.config.image_data_format()={keras.config.image_data_format()!r}"
            )
        self.arch = arch
        self.include_top = check_bool(include_top, "include_top")
        if include_top:
            _positive_int(classes, "classes")
        self.classes = classes
        self.entry = check_weights(weights, arch, include_top, classes, options.frozen_spatial)
        self.weights = weights
        seed = options.seed
        published_seed = self.entry.model_kwargs.get("seed") if self.entry else None
        if published_seed is not None:
            if seed not in (None, published_seed):
                raise ValueError(
                    f"The weights {weights!r} of '{arch}' were trained from seed={published_seed}, "
                    "which defines their seeded (frozen) kernels: pass seed=None or "
                    f"seed={published_seed}. Received: seed={seed}"
                )
            seed = published_seed
        self.options = dataclasses.replace(options, seed=resolve_seed(seed))
        self.pooling = check_choice(pooling, "pooling", POOLINGS)
        self.classifier_activation = _check_activation(classifier_activation, weights)
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")
        self.name = arch if name is None else name
        if input_tensor is not None and not keras.backend.is_keras_tensor(input_tensor):
            raise ValueError(
                "`input_tensor` must be a Keras tensor (from `keras.Input()` or a layer). "
                f"Received: input_tensor of type {type(input_tensor).__name__}"
            )
        if input_shape is None and input_tensor is not None:
            input_shape = tuple(input_tensor.shape[1:])
        self.input_tensor = input_tensor
        self.input_shape = _obtain_input_shape(input_shape, default_size, min_size, include_top)

    def input(self):
        """The image input: `input_tensor`, or a new `keras.Input`."""
        if self.input_tensor is not None:
            return self.input_tensor
        return keras.Input(shape=self.input_shape, name="input")

    def model(self, image_input, features):
        """The head on `features`, the functional model, and its weights."""
        options = self.options
        x = features
        if self.include_top:
            x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
            x = _dense(self.classes, self.classifier_activation, int(x.shape[-1]), options)(x)
        elif self.pooling == "avg":
            x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        elif self.pooling == "max":
            x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
        inputs = image_input
        if self.input_tensor is not None:
            sources = keras.utils.get_source_inputs(self.input_tensor)
            inputs = sources[0] if len(sources) == 1 else sources
        model = keras.Model(inputs, x, name=self.name)
        return load_weights(model, self.weights, self.arch, self.include_top, self.entry)


def _dense(classes, activation, features, options):
    seed = options.seed_for("predictions")
    return keras.layers.Dense(
        classes,
        activation=activation,
        kernel_initializer=TorchUniform(seed),
        bias_initializer=TorchUniform(seed, STREAM_BIAS, fan_in=features),
        name="predictions",
    )


def _check_activation(classifier_activation, weights):
    """keras.applications' check: pretrained heads allow only None or softmax."""
    try:
        activation = keras.activations.get(classifier_activation)
    except (ValueError, TypeError) as error:
        raise ValueError(
            "`classifier_activation` must be None, an activation name or a callable. "
            f"Received: classifier_activation={classifier_activation!r}"
        ) from error
    allowed = {keras.activations.get("softmax"), keras.activations.get(None)}
    if weights is not None and activation not in allowed:
        raise ValueError(
            "Only `None` and `softmax` activations are allowed "
            "for the `classifier_activation` argument when using "
            "pretrained weights, with `include_top=True`; Received: "
            f"classifier_activation={classifier_activation}"
        )
    return classifier_activation


def _obtain_input_shape(input_shape, default_size, min_size, include_top):
    """keras.applications' `obtain_input_shape` for channels_last, same messages."""
    if input_shape is None:
        input_shape = (default_size, default_size, 3) if include_top else (None, None, 3)
    else:
        received = input_shape
        try:
            input_shape = tuple(input_shape)
        except TypeError:
            input_shape = ()
        if len(input_shape) != 3 or not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0)
            for d in input_shape
        ):
            raise ValueError(
                "`input_shape` must be a tuple of three integers. "
                f"Received: input_shape={received!r}"
            )
        if input_shape[-1] is None:
            raise ValueError(
                f"The channel dimension of `input_shape` must be defined. "
                f"Received: input_shape={input_shape}"
            )
        if any(d is not None and d < min_size for d in input_shape[:2]):
            raise ValueError(
                f"Input size must be at least {min_size}x{min_size}; "
                f"Received: input_shape={input_shape}"
            )
    if include_top and None in input_shape:
        raise ValueError(
            "If `include_top` is True, you should specify a static `input_shape`. "
            f"Received: input_shape={input_shape}"
        )
    return input_shape
