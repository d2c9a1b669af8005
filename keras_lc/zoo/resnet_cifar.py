"""CIFAR ResNets (He et al. 2015, Section 4.2) and the paper's ResNet-LC.

A k x k stem convolution with W channels, then 3 stages of (D - 2) / 6 basic
blocks with W, 2W and 4W channels (stride 2 at the first block of stages 2
and 3), global average pooling and the classifier: D - 1 convolutions plus the
dense layer. ResNet-20-16 has 0.27M parameters (271,098 with the
BatchNormalization moving statistics, 269,722 trainable) with the default
option-A shortcuts.

Padding: `padding="symmetric"` pads the two stride-2 convolutions' inputs by
k // 2 on every side, as PyTorch's `padding=1` (and so the paper's code) does;
the default `"same"` is Keras', which at stride 2 puts the one padding row and
column after the image, so those convolutions sample the odd positions while
the shortcut samples the even ones (`keras_lc.zoo.blocks.PADDINGS`). The
published CIFAR-10 models were trained with `"same"`.

Shortcuts: the paper builds on He et al.'s Basic-Block CIFAR ResNet, whose
CIFAR experiments use parameter-free identity shortcuts with zero-padding
where the dimensions grow (option A) throughout; that is the default,
`shortcut="A"` (a stride-s 1x1 max-pool for x[:, ::s, ::s], then the zero
channels appended after the input's, all stock Keras layers).
`shortcut="B"` uses 1x1 convolution + BatchNormalization projections
(+2,752 trainable parameters for ResNet-20-16).

ResNet-LC-{D}-{W}x{E} (Gavrikov & Keuper, Section 4) replaces every k x k
convolution, the stem included, by an `LCConv2D` with expansion E; its
spatial kernels are frozen random by default (`frozen_spatial=True`), learned
with `frozen_spatial=False`.
"""

import dataclasses

from keras_lc.layers.shared_lc_conv2d import SharedLCConv2D
from keras_lc.validation import check_bool, check_choice, positive_int
from keras_lc.zoo.application import Application, application_builder
from keras_lc.zoo.blocks import ConvOptions, conv_bn
from keras_lc.zoo.registry import register_model, register_presets
from keras_lc.zoo.resnet import SHORTCUTS, basic_block


def _blocks_per_stage(depth):
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            "`depth` must be 6n + 2 for an integer n >= 1 (8, 14, 20, 32, 44, 56, 110, ...). "
            f"Received: depth={depth!r}"
        )
    return (depth - 2) // 6


def _build(arch, depth, width, kernel_size, shortcut, options, application, shared_spatial=False):
    blocks = _blocks_per_stage(depth)
    width = positive_int(width, "width")
    kernel_size = positive_int(kernel_size, "kernel_size")
    check_choice(shortcut, "shortcut", SHORTCUTS[:2])
    app = Application(arch, options=options, default_size=32, min_size=4, **application)
    options = app.options
    inputs = app.input()
    if shared_spatial:
        options = _shared_bank_options(options, width, int(inputs.shape[-1]))
    x = conv_bn(app.preprocess(inputs), width, kernel_size, 1, options, "stem")
    for stage in range(1, 4):
        filters = width * 2 ** (stage - 1)
        for block in range(1, blocks + 1):
            strides = 2 if stage > 1 and block == 1 else 1
            prefix = f"stage{stage}_block{block}"
            x = basic_block(x, filters, kernel_size, strides, shortcut, options, prefix)
    return app.model(inputs, x)


def _shared_bank_options(options, width, in_channels):
    """`options` whose LC layers are `SharedLCConv2D` slices of one bank.

    The bank holds the largest slice any layer needs: max(c_in, 4W) input
    channels and 4W * E filters.
    """
    bank = {
        "bank_seed": options.seed_for("spatial_bank"),
        "bank_channels": max(in_channels, 4 * width),
        "bank_filters": 4 * width * options.expansion,
    }

    def make_lc(filters, kernel_size, strides, name, seed, padding):
        return SharedLCConv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            expansion=options.expansion,
            implementation=options.implementation,
            seed=seed,
            name=name,
            **bank,
        )

    return dataclasses.replace(options, make_lc=make_lc)


def _arch(base, kernel_size, shortcut, padding):
    """The default model name: `base`, then any non-default kernel size, shortcut and padding."""
    return base + ("" if kernel_size == 3 else f"_k{kernel_size}") + (
        "" if shortcut == "A" else f"_shortcut{shortcut}"
    ) + ("" if padding == "same" else f"_{padding}")


@register_model
@application_builder(classes=10)
def resnet_cifar(
    depth=20,
    width=16,
    kernel_size=3,
    shortcut="A",
    *,
    application,
    frozen_spatial=False,
    seed=None,
    padding="same",
):
    """CIFAR ResNet-{depth}-{width} (He et al. 2015) with plain convolutions.

    Args:
        depth: 6n + 2 (20, 32, 44, 56, 110, ...).
        width: Channels of the first stage, W (stages: W, 2W, 4W).
        kernel_size: k of every spatial convolution ("same" padding).
        shortcut: `"A"` (zero-padding identity, as in He et al.'s CIFAR
            ResNets that the paper builds on) or `"B"` (1x1 convolution
            projection).
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: As in `keras.applications`; `weights`
            is `None`, a local `.weights.h5`/`.keras` file or the
            name of weights published for the architecture. Default input
            32x32x3, 10 classes, name `resnet{depth}` (`resnet{depth}_{width}`
            for width != 16).
        frozen_spatial: Freeze every k x k kernel at its seeded random
            initialization (PyTorch's default distribution).
        seed: Model seed (non-negative int); `None` draws one.
        padding: Zero padding of the stride-2 convolutions: `"same"`
            (Keras', the default) or `"symmetric"` (PyTorch's; the model
            name gains `_symmetric`). See the module docstring.

    Returns:
        A functional `keras.Model`.

    Example:

    >>> model = resnet_cifar(depth=20, width=16, seed=0)
    >>> model.count_params()
    271098
    >>> resnet_cifar(padding="symmetric", seed=0).get_layer("stage2_block1_conv1_pad").padding
    ((1, 1), (1, 1))
    """
    options = ConvOptions.create(seed=seed, frozen_spatial=frozen_spatial, padding=padding)
    arch = _arch(f"resnet{depth}" + ("" if width == 16 else f"_{width}"), kernel_size, shortcut, padding)
    return _build(arch, depth, width, kernel_size, shortcut, options, application)


@register_model
@application_builder(classes=10)
def resnet_lc(
    depth=20,
    width=16,
    expansion=1,
    kernel_size=3,
    shortcut="A",
    *,
    application,
    frozen_spatial=True,
    seed=None,
    implementation="auto",
    shared_spatial=False,
    padding="same",
):
    """ResNet-LC-{depth}-{width}x{expansion} (Gavrikov & Keuper, Section 4).

    The CIFAR ResNet of `resnet_cifar` with every k x k convolution replaced
    by an `LCConv2D` LC-block of expansion E (1x1 shortcut projections stay
    plain convolutions).

    Args:
        depth, width, kernel_size, shortcut, padding: As in `resnet_cifar`.
        expansion: E, spatial filters per output channel of each LC-block.
        frozen_spatial: `True` (default): frozen random spatial kernels;
            `False`: learnable LC.
        implementation: `LCConv2D` implementation (`"auto"`, `"two_stage"`,
            `"composed"` or `"basis"`).
        seed: Model seed (non-negative int); layer seeds derive from it.
        shared_spatial: Draw ONE frozen random bank for the model and give
            every LC-block a slice of it, scaled to its default-init bounds
            (`SharedLCConv2D`). The distinct random values fall from the sum
            of all spatial kernels to one bank of k*k*max(c_in, 4W)*4W*E
            (ResNet-LC-20-16x1: 267,696 -> 36,864; x128: 34,265,088 ->
            4,718,592). Like the seeded kernels of `LCConv2D`, the bank is
            regenerated from its seed, not stored. Needs `frozen_spatial=True`.
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: As in `resnet_cifar`; default name
            `resnet_lc{depth}_{width}x{expansion}` (`resnet_lc{depth}` for
            width 16 and expansion 1).

    Returns:
        A functional `keras.Model`.

    Example:

    >>> model = resnet_lc(depth=20, width=16, expansion=4, seed=0)
    >>> model.get_layer("stage1_block1_conv1").spatial_filters
    64
    """
    options = ConvOptions.create(
        seed=seed,
        frozen_spatial=frozen_spatial,
        lc=True,
        expansion=expansion,
        implementation=implementation,
        padding=padding,
    )
    size = "" if (width, expansion) == (16, 1) else f"_{width}x{expansion}"
    arch = _arch(f"resnet_lc{depth}{size}", kernel_size, shortcut, padding)
    if check_bool(shared_spatial, "shared_spatial"):
        if not frozen_spatial:
            raise ValueError(
                "`shared_spatial=True` shares one frozen random bank, so it needs "
                "frozen_spatial=True. Received: frozen_spatial=False"
            )
        arch += "_shared"
    return _build(
        arch, depth, width, kernel_size, shortcut, options, application, shared_spatial
    )


#: The CIFAR ResNet presets: name -> the `resnet_cifar` arguments it fixes.
PRESETS = {f"resnet{depth}": {"depth": depth} for depth in (20, 32, 44, 56, 110)}
#: The ResNet-LC presets: name -> the `resnet_lc` arguments it fixes.
LC_PRESETS = {
    **{f"resnet_lc{depth}": {"depth": depth} for depth in (20, 32, 44, 56, 110)},
    "resnet_lc20_16x128": {"depth": 20, "width": 16, "expansion": 128},
}
resnet20, resnet32, resnet44, resnet56, resnet110 = register_presets(resnet_cifar, PRESETS)
(
    resnet_lc20,
    resnet_lc32,
    resnet_lc44,
    resnet_lc56,
    resnet_lc110,
    resnet_lc20_16x128,
) = register_presets(resnet_lc, LC_PRESETS)
