"""The one conv/BN factory of every zoo builder.

- `ConvOptions` + `conv` / `depthwise_conv`: every convolution of every
  builder: an `LCConv2D` for k x k convolutions of LC models, otherwise a
  `Conv2D` whose k x k kernels are frozen at their seed's random values when
  `frozen_spatial`.
- `batch_norm` (PyTorch's momentum and epsilon), `conv_bn` and `relu`.
- `PADDINGS`: where a strided k x k convolution's zeros go (`ConvOptions.padding`).

All kernels are initialized with PyTorch's default uniform distribution from a
per-layer seed derived from the model seed and the layer name, so a model is
defined by its seed, and frozen and learnable variants of one seed start from
the same function.
"""

import dataclasses
from typing import Callable

import keras

from keras_lc.initializers import layer_seed, resolve_seed, spatial_initializer
from keras_lc.layers.lc_conv2d import LCConv2D
from keras_lc.validation import check_bool, check_choice, pair, positive_int

#: Zero padding of strided k x k convolutions (stride 1: both are k // 2 on every side).
#: "same": Keras' "same": on an even input at stride 2 the one padding row and column go after
#: the image, so the outputs sample odd positions while a stride-2 shortcut samples even ones;
#: "symmetric": k // 2 zeros on every side (a `ZeroPadding2D` then a "valid" convolution),
#: PyTorch's `padding=k // 2` and keras-hub's ResNet, outputs aligned with the shortcut.
PADDINGS = ("same", "symmetric")


@dataclasses.dataclass(frozen=True)
class ConvOptions:
    """How a builder's convolutions are made (see `conv`).

    Attributes:
        seed: Model seed; each layer's seed is `layer_seed(seed, name)`.
        frozen_spatial: Freeze k x k kernels at their seeded random values.
        lc: Make k x k convolutions `LCConv2D` layers.
        expansion: LC expansion E.
        implementation: `LCConv2D` implementation.
        make_lc: Optional `fn(filters, kernel_size, strides, name, seed,
            padding)` returning the LC layer instead of `LCConv2D` (shared
            spatial bank).
        padding: Zero padding of strided k x k convolutions, one of
            `PADDINGS`.
    """

    seed: int
    frozen_spatial: bool = False
    lc: bool = False
    expansion: int = 1
    implementation: str = "auto"
    make_lc: Callable = None
    padding: str = "same"

    @classmethod
    def create(cls, seed=None, frozen_spatial=False, **kwargs):
        """Validated options; `seed=None` stays open until `Application` resolves it."""
        frozen_spatial = check_bool(frozen_spatial, "frozen_spatial")
        if "expansion" in kwargs:
            positive_int(kwargs["expansion"], "expansion")
        if "padding" in kwargs:
            check_choice(kwargs["padding"], "padding", PADDINGS)
        seed = None if seed is None else resolve_seed(seed)
        return cls(seed=seed, frozen_spatial=frozen_spatial, **kwargs)

    def seed_for(self, name):
        if self.seed is None:
            raise RuntimeError("ConvOptions.seed is unresolved: use Application(...).options.")
        return layer_seed(self.seed, name)


def conv(filters, kernel_size, strides, name, options):
    """The convolution `name` of a zoo model (no bias), a callable on a tensor.

    k x k (k > 1) convolutions are `LCConv2D` layers when `options.lc`, with
    `frozen_spatial=options.frozen_spatial`; otherwise `Conv2D` layers,
    non-trainable when `options.frozen_spatial`. 1x1 convolutions are always
    trainable `Conv2D` layers. Every zoo convolution is followed by a
    BatchNormalization, hence no bias. Padding: "same", except a strided
    k x k convolution under `options.padding == "symmetric"`: a
    `ZeroPadding2D` named `{name}_pad` of k // 2, then the layer with "valid".
    """
    kernel_size = pair(kernel_size, "kernel_size")
    seed = options.seed_for(name)
    spatial = max(kernel_size) > 1
    padded = _padded(kernel_size, strides, options)
    padding = "valid" if padded else "same"
    if spatial and options.lc:
        if options.make_lc is not None:
            layer = options.make_lc(filters, kernel_size, strides, name, seed, padding)
        else:
            layer = LCConv2D(
                filters,
                kernel_size,
                strides=strides,
                padding=padding,
                expansion=options.expansion,
                frozen_spatial=options.frozen_spatial,
                implementation=options.implementation,
                seed=seed,
                name=name,
            )
    else:
        layer = keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            use_bias=False,
            kernel_initializer=spatial_initializer(kernel_size, seed),
            trainable=not (spatial and options.frozen_spatial),
            name=name,
        )
    return _with_padding(layer, kernel_size, name) if padded else layer


def _padded(kernel_size, strides, options):
    """Whether this convolution gets explicit symmetric zero padding."""
    return options.padding == "symmetric" and max(kernel_size) > 1 and max(pair(strides, "strides")) > 1


def _with_padding(layer, kernel_size, name):
    pad = keras.layers.ZeroPadding2D(tuple(k // 2 for k in kernel_size), name=f"{name}_pad")
    return lambda x: layer(pad(x))


def depthwise_conv(kernel_size, strides, name, options):
    """A depthwise convolution (no bias), frozen when `options.frozen_spatial`; padded as `conv`."""
    kernel_size = pair(kernel_size, "kernel_size")
    padded = _padded(kernel_size, strides, options)
    layer = keras.layers.DepthwiseConv2D(
        kernel_size,
        strides=strides,
        padding="valid" if padded else "same",
        use_bias=False,
        depthwise_initializer=spatial_initializer(
            kernel_size, options.seed_for(name), depthwise=True
        ),
        trainable=not (max(kernel_size) > 1 and options.frozen_spatial),
        name=name,
    )
    return _with_padding(layer, kernel_size, name) if padded else layer


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
