"""Operations on any Keras model: freeze its spatial convolutions, LC-ify or refocus them.

`freeze_spatial` makes every k x k (k > 1) convolution a frozen random one, as
the paper trains off-the-shelf architectures; `lcify` replaces every k x k
`Conv2D` by an equivalent-shape `LCConv2D` (the paper's ResNet-LC construction
applied to any model); `refocus` makes every k x k `Conv2D` and every
`DepthwiseConv2D` of a trained model a `RefocusConv2D` on its kernel (RefConv).
All work on functional and sequential models, including nested ones. The
module also owns the two rules the zoo's builders share
with them: how a layer's seed is derived from a model seed (`layer_seed`) and
which initializer a frozen random kernel gets (`spatial_initializer`).
"""

import dataclasses

import keras
import numpy as np

from keras_lc.initializers import layer_seed, resolve_seed, spatial_initializer
from keras_lc.layers.lc_conv2d import IMPLEMENTATIONS, LCConv2D
from keras_lc.validation import check_bool, frozen_spatial_alias, positive_int
from keras_lc.layers.refocus_conv2d import RefocusConv2D
from keras_lc.model_kinds import require_functional_or_sequential


def is_spatial_conv(layer):
    """True for a `keras.layers.Conv2D` whose kernel is larger than 1 x 1."""
    return isinstance(layer, keras.layers.Conv2D) and max(layer.kernel_size) > 1


def _check_model(model, rebuilt_by=None):
    """A built `keras.Model`; functional or Sequential where function `rebuilt_by` rebuilds it."""
    if rebuilt_by is not None or not isinstance(model, keras.Model):
        require_functional_or_sequential(model, rebuilt_by)
    if not model.built:
        raise ValueError(
            f"Model '{model.name}' is not built: give it an `Input` or call "
            "`model.build(input_shape)` first."
        )


def _walk(model, prefix=""):
    """(key, layer) for every layer, entering nested models; keys are 'outer/inner'."""
    for layer in model.layers:
        key = prefix + layer.name
        if isinstance(layer, keras.Model):
            yield from _walk(layer, key + "/")
        else:
            yield key, layer


def count_trainable_params(model):
    """Number of trainable scalars of `model` (each variable counted once)."""
    unique = {id(v): v for v in model.trainable_weights}
    return int(sum(int(np.prod(v.shape)) for v in unique.values()))


@dataclasses.dataclass(frozen=True)
class FreezeSummary:
    """What `freeze_spatial` did.

    Attributes:
        frozen_layers: Keys ('outer/inner' for nested models) of the layers
            whose spatial kernels are now frozen.
        trainable_params_before: Trainable parameters before freezing.
        trainable_params_after: Trainable parameters after freezing.
    """

    frozen_layers: tuple
    trainable_params_before: int
    trainable_params_after: int

    @property
    def frozen_params(self):
        return self.trainable_params_before - self.trainable_params_after

    def __str__(self):
        return (
            f"froze {len(self.frozen_layers)} layers: trainable parameters "
            f"{self.trainable_params_before:,} -> {self.trainable_params_after:,}"
        )


def freeze_spatial(model, reinitialize=True, seed=None):
    """Freezes every spatial (k > 1) convolution of `model` at a random kernel.

    Every `Conv2D` with a kernel larger than 1x1 and every `DepthwiseConv2D`
    becomes non-trainable (its bias too); with `reinitialize=True` its kernel
    is re-drawn from PyTorch's default uniform distribution with a per-layer
    seed derived from `seed` and the layer's name (`layer_seed`), so the frozen
    kernels are reproducible. Layers of nested functional/sequential models
    are included (their keys are 'outer/inner'). An `LCConv2D` with a learnable spatial kernel
    gets `frozen_spatial=True`, and with `reinitialize=True` its own
    seed's kernel back. 1x1 convolutions, normalization and dense layers stay
    trainable. The model is changed in place: compile it (again) afterwards.
    `SeparableConv2D`, `Conv1D` and `Conv3D` are left unchanged.

    Args:
        model: A built `keras.Model`: functional, sequential or subclassed
            (its `layers` are walked).
        reinitialize: Re-draw the frozen kernels (`False` freezes the current
            values, e.g. of a trained model).
        seed: Non-negative int for the re-drawn kernels; `None` draws one from
            NumPy's global generator.

    Returns:
        `(model, FreezeSummary)`.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3),
    ...                           keras.layers.Conv2D(8, 1)])
    >>> model, summary = freeze_spatial(model, seed=0)
    >>> (summary.trainable_params_before, summary.trainable_params_after)
    (296, 72)
    """
    _check_model(model)
    reinitialize = check_bool(reinitialize, "reinitialize")
    seed = resolve_seed(seed)
    before = count_trainable_params(model)
    frozen = []
    for key, layer in _walk(model):
        depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
        if depthwise or is_spatial_conv(layer):
            if reinitialize:
                init = spatial_initializer(layer.kernel_size, layer_seed(seed, key), depthwise)
                layer.kernel.assign(init(layer.kernel.shape, layer.kernel.dtype))
            layer.trainable = False
            frozen.append(key)
        elif isinstance(layer, LCConv2D) and not layer.frozen_spatial:
            if reinitialize:
                layer.spatial_kernel.assign(layer.seed_kernel())
            layer.frozen_spatial = True
            layer.spatial_kernel.trainable = False
            frozen.append(key)
    return model, FreezeSummary(tuple(frozen), before, count_trainable_params(model))


def lcify(model, expansion=1, frozen_spatial=True, implementation="auto", seed=None, *,
          spatial_trainable=None):
    """A copy of `model` in which every k x k `Conv2D` (k > 1) is an `LCConv2D`.

    Each replacement has the replaced layer's name, filters, kernel size,
    strides, padding, dilation and bias flag, so every output shape is
    unchanged; its spatial kernel is frozen random (unless
    `frozen_spatial=False`) with a seed derived from `seed` and the layer's name.
    A fused activation (`Conv2D(..., activation="relu")`) becomes an
    `Activation` layer named `<name>_activation` right after it. Every other
    layer, BatchNormalization included, is cloned with its weights. The
    replaced convolutions' kernel regularizers/constraints are not carried
    over. 1x1, grouped and depthwise convolutions are kept.

    Args:
        model: A built functional or sequential `keras.Model`.
        expansion: E, spatial filters per output channel of each LC-block.
        frozen_spatial: Frozen random (`True`, the default) or learnable LC
            (`False`).
        spatial_trainable: Deprecated inverse of `frozen_spatial`.
        implementation: Passed to `LCConv2D`.
        seed: Non-negative int; `None` draws one from NumPy's global generator.

    Returns:
        A new `keras.Model` (the input model is not changed). A `ValueError`
        if `model` is subclassed or has no convolution to replace.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((32, 32, 3)),
    ...                           keras.layers.Conv2D(8, 3, activation="relu")])
    >>> lc = lcify(model, expansion=4, seed=0)
    >>> [type(layer).__name__ for layer in lc.layers]
    ['LCConv2D', 'Activation']
    """
    _check_model(model, "lcify")
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"`implementation` must be one of {IMPLEMENTATIONS}. "
            f"Received: implementation={implementation!r}"
        )
    settings = {
        "expansion": positive_int(expansion, "expansion"),
        "frozen_spatial": frozen_spatial_alias(frozen_spatial, spatial_trainable, "lcify"),
        "implementation": implementation,
    }
    replaced = []
    new_model = _lcify(model, settings, resolve_seed(seed), "", replaced)
    if not replaced:
        raise ValueError(
            f"lcify found no k x k convolution (a channels_last, ungrouped Conv2D with a kernel "
            f"larger than 1x1) to replace in model '{model.name}'."
        )
    return new_model


def _lc_replacement(conv, settings, seed):
    config = conv.get_config()
    if config["groups"] != 1 or config["data_format"] == "channels_first":
        return None
    return LCConv2D(
        conv.filters,
        conv.kernel_size,
        strides=conv.strides,
        padding=conv.padding,
        dilation_rate=conv.dilation_rate,
        use_bias=conv.use_bias,
        seed=seed,
        name=conv.name,
        dtype=conv.dtype_policy,
        **settings,
    )


def _lcify(model, settings, seed, prefix, replaced):
    def replace(layer, key):
        if is_spatial_conv(layer):
            return _lc_replacement(layer, settings, layer_seed(seed, key))
        return None

    return _rebuild(model, replace, prefix, replaced)


def _rebuild(model, replace, prefix, replaced):
    """A copy of `model` in which `replace(layer, key)` substitutes layers.

    `replace` returns the new layer for `layer` (key 'outer/inner' for
    nested models), or `None` to keep a copy of it with its weights. A
    replaced layer's fused activation becomes an `Activation` layer named
    `<name>_activation` right after the replacement. Every `(old, new)` pair
    of replaced layers is appended to `replaced` (new layers are built once
    this returns).
    """
    copied = []  # (old, new) layers whose weights carry over
    activations = {}  # id(replacement) -> Activation layer for the replaced layer's activation

    def clone(layer):
        key = prefix + layer.name
        if isinstance(layer, keras.Model):
            return _rebuild(layer, replace, key + "/", replaced)
        replacement = replace(layer, key)
        if replacement is not None:
            activation = layer.get_config().get("activation", "linear")
            if activation not in ("linear", None):
                activations[id(replacement)] = keras.layers.Activation(
                    activation, name=f"{layer.name}_activation"
                )
            replaced.append((layer, replacement))
            return replacement
        new = layer.__class__.from_config(layer.get_config())
        copied.append((layer, new))
        return new

    inputs = [  # same names, shapes and dtypes as the model's inputs
        keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t._keras_history.operation.name)
        for t in model.inputs
    ]
    if isinstance(model, keras.Sequential):
        layers = inputs[:1]
        for layer in model.layers:
            layers.append(clone(layer))
            if id(layers[-1]) in activations:
                layers.append(activations[id(layers[-1])])
        new_model = keras.Sequential(layers, name=model.name)
    else:

        def call(layer, *args, **kwargs):
            outputs = layer(*args, **kwargs)
            activation = activations.get(id(layer))
            return outputs if activation is None else activation(outputs)

        new_model = keras.models.clone_model(
            model,
            input_tensors=keras.tree.pack_sequence_as(model.input, inputs),
            clone_function=clone,
            call_function=call,
        )
    for old, new in copied:
        new.set_weights(old.get_weights())
    return new_model


def _refocus_replacement(layer, zero_init, refocus_kernel_size):
    """The `RefocusConv2D` for a spatial `Conv2D` or a `DepthwiseConv2D`, or `None`."""
    depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
    if not (depthwise or is_spatial_conv(layer)) or layer.data_format == "channels_first":
        return None
    # The map may not exceed the kernel: per axis the largest odd size <= both.
    size = tuple(min(refocus_kernel_size, k - 1 + k % 2) for k in layer.kernel_size)
    return RefocusConv2D(
        None if depthwise else layer.filters,
        layer.kernel_size,
        strides=layer.strides,
        padding=layer.padding,
        dilation_rate=layer.dilation_rate,
        groups=1 if depthwise else layer.groups,
        depthwise=depthwise,
        depth_multiplier=layer.depth_multiplier if depthwise else 1,
        use_bias=layer.use_bias,
        refocus_kernel_size=size,
        zero_init=zero_init,
        name=layer.name,
        dtype=layer.dtype_policy,
    )


def refocus(model, zero_init=True, refocus_kernel_size=3):
    """A copy of `model` whose spatial convolutions are refocused (RefConv).

    Every `Conv2D` with a kernel larger than 1x1 and every `DepthwiseConv2D`
    (channels_last) becomes a `RefocusConv2D` with the same name, shape
    arguments and bias flag, whose frozen basis W_b is the layer's kernel
    (copied bit for bit) and whose bias is the layer's bias; only the
    refocusing map W_r (and the bias) of these layers train. With
    `zero_init=True` W_r starts at zero, so the new model computes exactly
    the original's outputs. The map is `refocus_kernel_size` square, cut per
    axis to the largest odd size that fits the kernel (a 1x1 depthwise
    kernel gets a 1x1 map; a 1x7 kernel a 1x3 one). A fused activation
    becomes an `Activation` layer named `<name>_activation` right after it.
    Every other layer (1x1 convolutions, BatchNormalization, dense, ...) is
    cloned with its weights, trainable as it was; nested models are
    included. `keras_lc.fold` turns the result back into plain `Conv2D` /
    `DepthwiseConv2D` layers. The replaced layers' regularizers and
    constraints are not carried over.

    Args:
        model: A built functional or sequential `keras.Model`.
        zero_init: Start W_r at zero (`False`: PyTorch's default uniform).
        refocus_kernel_size: Odd positive int, the map's size (the paper's 3).

    Returns:
        A new `keras.Model` (the input model is not changed).

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
    ...                           keras.layers.DepthwiseConv2D(3), keras.layers.Conv2D(2, 1)])
    >>> refocused = refocus(model)
    >>> [type(layer).__name__ for layer in refocused.layers]
    ['RefocusConv2D', 'RefocusConv2D', 'Conv2D']
    >>> x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    >>> bool(np.array_equal(refocused(x), model(x)))
    True
    """
    _check_model(model, "refocus")
    zero_init = check_bool(zero_init, "zero_init")
    size = positive_int(refocus_kernel_size, "refocus_kernel_size")
    if size % 2 == 0:
        raise ValueError(
            f"`refocus_kernel_size` must be odd. Received: refocus_kernel_size={refocus_kernel_size!r}"
        )
    replaced = []
    new_model = _rebuild(
        model, lambda layer, key: _refocus_replacement(layer, zero_init, size), "", replaced
    )
    for old, new in replaced:
        new.basis_kernel.assign(old.kernel)
        if old.use_bias:
            new.bias.assign(old.bias)
    return new_model
