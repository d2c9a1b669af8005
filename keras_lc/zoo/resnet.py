"""ImageNet-style ResNets (He et al. 2015), ResNet-D, and their residual blocks.

ResNet-18/34 use basic blocks, ResNet-50/101 bottleneck blocks with the
stride on the 3x3 convolution (torchvision's "v1.5", as timm trains them) and
option-B projection shortcuts; their trainable parameter counts equal
torchvision's. The "d" variants (He et al. 2019, "Bag of Tricks", timm's
`resnet18d`/`resnet50d`) have a deep stem of three 3x3 convolutions
(32, 32, 64 channels) and average-pool downsampling in the shortcuts.
`low_res=True` adapts the stem to 32x32 inputs as the paper trains these
models on CIFAR: stride-1 3x3 stem convolution(s) and no max-pool (total
stride 8 instead of 32).
"""

import keras

from keras_lc.validation import check_bool, check_choice, positive_int
from keras_lc.zoo.application import Application, application_builder
from keras_lc.zoo.blocks import ConvOptions, batch_norm, conv, conv_bn
from keras_lc.zoo.registry import Preset, register_presets

STAGE_FILTERS = (64, 128, 256, 512)
SHORTCUTS = ("A", "B", "D")


def shortcut(x, filters, strides, kind, options, prefix):
    """The shortcut branch of block `prefix`: identity, "A", "B" or "D".

    The identity when neither the stride nor the channels change; otherwise

    - "A" (He et al. 2015, option A, their CIFAR ResNets): subsample by the
      stride (x[:, ::s, ::s], a 1x1 max-pool) and append zero channels
      (x * 0) up to `filters` = 2 * c_in. Parameter-free, stock Keras layers.
    - "B" (option B): 1x1 convolution with the stride, then BatchNormalization.
    - "D" (ResNet-D, He et al. 2019): 2x2 average pooling with the stride
      (ceil mode, padding excluded), then the 1x1 convolution and BN.
    """
    check_choice(kind, "shortcut", SHORTCUTS)
    if strides == 1 and x.shape[-1] == filters:
        return x
    if kind == "A":
        if filters != 2 * x.shape[-1]:
            raise ValueError(
                f"Option-A shortcuts double the channels; block '{prefix}' goes from "
                f"{x.shape[-1]} to {filters}. Use shortcut='B'."
            )
        x = keras.layers.MaxPooling2D(1, strides=strides, name=f"{prefix}_shortcut_pool")(x)
        zeros = keras.layers.Rescaling(0.0, name=f"{prefix}_shortcut_zeros")(x)
        return keras.layers.Concatenate(name=f"{prefix}_shortcut")([x, zeros])
    if kind == "D" and strides > 1:
        x = keras.layers.AveragePooling2D(
            strides, strides=strides, padding="same", name=f"{prefix}_shortcut_pool"
        )(x)
        strides = 1
    x = conv(filters, 1, strides, f"{prefix}_shortcut_conv", options)(x)
    return batch_norm(f"{prefix}_shortcut_bn")(x)


def basic_block(x, filters, kernel_size, strides, shortcut_kind, options, prefix):
    """Two k x k conv-BN layers and a shortcut; ReLU after the addition."""
    y = conv_bn(x, filters, kernel_size, strides, options, prefix, "1")
    y = conv_bn(y, filters, kernel_size, 1, options, prefix, "2", activation=None)
    y = keras.layers.Add(name=f"{prefix}_add")(
        [shortcut(x, filters, strides, shortcut_kind, options, prefix), y]
    )
    return keras.layers.ReLU(name=f"{prefix}_out")(y)


def bottleneck_block(x, filters, width, strides, shortcut_kind, options, prefix):
    """1x1 (width) -> 3x3 (width, stride) -> 1x1 (filters) and a shortcut."""
    y = conv_bn(x, width, 1, 1, options, prefix, "1")
    y = conv_bn(y, width, 3, strides, options, prefix, "2")
    y = conv_bn(y, filters, 1, 1, options, prefix, "3", activation=None)
    y = keras.layers.Add(name=f"{prefix}_add")(
        [shortcut(x, filters, strides, shortcut_kind, options, prefix), y]
    )
    return keras.layers.ReLU(name=f"{prefix}_out")(y)


@application_builder(classes=1000)
def resnet_imagenet(
    blocks,
    bottleneck,
    deep=False,
    width_per_group=64,
    low_res=False,
    *,
    application,
    frozen_spatial=False,
    seed=None,
):
    """An ImageNet-style ResNet: the family builder of the presets in `PRESETS`.

    Args:
        blocks: Blocks per stage, 4 stages of 64, 128, 256 and 512 planes.
        bottleneck: Bottleneck blocks (4x planes out) instead of basic blocks.
        deep: ResNet-D: a deep stem of three 3x3 convolutions and
            average-pool downsampling in the shortcuts.
        width_per_group: Width of the bottleneck 3x3 convolutions per 64
            planes (128: Wide-ResNet-50-2).
        low_res, include_top, weights, input_tensor, input_shape, pooling,
        classes, classifier_activation, name, frozen_spatial, seed: As in
            the presets (`resnet18`, ...). The default name is
            `resnet{depth}` (+ `d`; `wide_` and `_{width_per_group / 64}`
            for other widths; + `_low_res`).

    Returns:
        A functional `keras.Model`.

    Example:

    >>> model = resnet_imagenet((1, 1, 1, 1), False, low_res=True, input_shape=(32, 32, 3), seed=0)
    >>> model.name, model.output_shape
    ('resnet10_low_res', (None, 1000))
    """
    blocks = tuple(positive_int(count, "blocks") for count in blocks)
    bottleneck, deep = check_bool(bottleneck, "bottleneck"), check_bool(deep, "deep")
    width_per_group = positive_int(width_per_group, "width_per_group")
    low_res = check_bool(low_res, "low_res")
    if len(blocks) != len(STAGE_FILTERS):
        raise ValueError(f"`blocks` must give 4 stages' block counts. Received: blocks={blocks}")
    app = Application(
        _arch(blocks, bottleneck, deep, width_per_group) + ("_low_res" if low_res else ""),
        options=ConvOptions.create(seed=seed, frozen_spatial=frozen_spatial),
        default_size=32 if low_res else 224,
        min_size=8 if low_res else 32,
        **application,
    )
    options = app.options
    inputs = app.input()
    stride = 1 if low_res else 2
    x = app.preprocess(inputs)
    if deep:
        x = conv_bn(x, 32, 3, stride, options, "stem", "1")
        x = conv_bn(x, 32, 3, 1, options, "stem", "2")
        x = conv_bn(x, 64, 3, 1, options, "stem", "3")
    else:
        x = conv_bn(x, 64, 3 if low_res else 7, stride, options, "stem")
    if not low_res:
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    kind = "D" if deep else "B"
    for stage, (planes, count) in enumerate(zip(STAGE_FILTERS, blocks), start=1):
        for block in range(1, count + 1):
            strides = 2 if stage > 1 and block == 1 else 1
            prefix = f"stage{stage}_block{block}"
            if bottleneck:
                width = planes * width_per_group // 64
                x = bottleneck_block(x, planes * 4, width, strides, kind, options, prefix)
            else:
                x = basic_block(x, planes, 3, strides, kind, options, prefix)
    return app.model(inputs, x)


def _arch(blocks, bottleneck, deep, width_per_group):
    """The default model name: `resnet18`, `resnet50d`, `wide_resnet50_2`, ..."""
    name = f"resnet{(3 if bottleneck else 2) * sum(blocks) + 2}" + ("d" if deep else "")
    return name if width_per_group == 64 else f"wide_{name}_{width_per_group / 64:g}"


def layout(title, blocks, bottleneck, deep=False, width_per_group=64):
    """A `resnet_imagenet` preset: every argument but `low_res` and keras.applications' fixed."""
    fixed = dict(blocks=blocks, bottleneck=bottleneck, deep=deep, width_per_group=width_per_group)
    return Preset(fixed, title)


#: The ImageNet ResNet presets: name -> what it is and its layout.
PRESETS = {
    "resnet18": layout("ResNet-18 (basic blocks 2-2-2-2), 11.7M parameters", (2, 2, 2, 2), False),
    "resnet34": layout("ResNet-34 (basic blocks 3-4-6-3), 21.8M parameters", (3, 4, 6, 3), False),
    "resnet50": layout("ResNet-50 (bottlenecks 3-4-6-3), 25.6M parameters", (3, 4, 6, 3), True),
    "resnet101": layout("ResNet-101 (bottlenecks 3-4-23-3), 44.5M parameters", (3, 4, 23, 3), True),
    "resnet18d": layout(
        "ResNet-18d (deep stem, avg-pool shortcuts), 11.7M parameters", (2, 2, 2, 2), False, deep=True
    ),
    "resnet50d": layout(
        "ResNet-50d (deep stem, avg-pool shortcuts), 25.6M parameters", (3, 4, 6, 3), True, deep=True
    ),
    "wide_resnet50_2": layout(
        "Wide-ResNet-50-2 (bottlenecks 3-4-6-3 with 2x wider 3x3 convolutions), 68.9M parameters",
        (3, 4, 6, 3),
        True,
        width_per_group=128,
    ),
}

_DOC = """{title}.

    Args:
        low_res: 32x32 stem (stride-1 3x3 convolution{s}, no max-pool).
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: As in `keras.applications`; `weights`
            is `None`, a local `.weights.h5`/`.keras` file or the
            name of weights published for the architecture.
        frozen_spatial: Freeze every k x k (k > 1) kernel at its seeded
            random initialization (PyTorch's default distribution).
        seed: Model seed (non-negative int); `None` draws one.

    Returns:
        A functional `keras.Model`.

    Example:

    >>> model = {fn}(low_res=True, input_shape=(32, 32, 3), classes=10, seed=0)
    >>> model.output_shape
    (None, 10)
    """


def _preset_doc(builder, name, preset):
    return _DOC.format(title=preset.title, fn=name, s="s" if preset.fixed["deep"] else "")


(resnet18, resnet34, resnet50, resnet101, resnet18d, resnet50d, wide_resnet50_2) = register_presets(
    resnet_imagenet, PRESETS, doc=_preset_doc
)
