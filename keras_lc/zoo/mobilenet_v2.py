"""MobileNetV2 (Sandler et al. 2018), with a width multiplier and a 32x32 variant.

The layout of `keras.applications.MobileNetV2` (a 3x3 stem, 17 inverted
residual blocks, a 1x1 head convolution to 1280 channels, channel counts
rounded to multiples of 8; 3,504,872 trainable parameters at `alpha=1`) with
stable layer names (`block3_expand_conv`, `block3_depthwise`, ...).
`low_res=True` is the usual CIFAR adaptation (stride 1 in the stem and in the
first 24-channel block; total stride 8 instead of 32), as in the paper's
authors' low-resolution MobileNetV2. With `frozen_spatial=True` the stem's
3x3 convolution and every 3x3 depthwise convolution are frozen at their
seeded random initialization; all 1x1 convolutions stay trainable.
"""

import keras

from keras_lc.validation import check_bool
from keras_lc.zoo.application import Application, application_builder
from keras_lc.zoo.blocks import ConvOptions, batch_norm, conv_bn, depthwise_conv, relu
from keras_lc.zoo.registry import register_model

# (expansion t, channels c, blocks n, stride s) of the paper's Table 2.
BLOCKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(value, divisor=8):
    """Rounds channels as the reference implementation (never below 90%)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _inverted_residual(x, expansion, filters, strides, options, prefix):
    channels = x.shape[-1]
    y = x
    if expansion != 1:
        y = conv_bn(y, channels * expansion, 1, 1, options, f"{prefix}_expand", activation="relu6")
    y = depthwise_conv(3, strides, f"{prefix}_depthwise", options)(y)
    y = batch_norm(f"{prefix}_depthwise_bn")(y)
    y = relu(y, "relu6", f"{prefix}_depthwise_relu")
    y = conv_bn(y, filters, 1, 1, options, f"{prefix}_project", activation=None)
    if strides == 1 and channels == filters:
        y = keras.layers.Add(name=f"{prefix}_add")([x, y])
    return y


@register_model
@application_builder(classes=1000)
def mobilenet_v2(alpha=1.0, low_res=False, *, application, frozen_spatial=False, seed=None):
    """MobileNetV2 (Sandler et al. 2018).

    Args:
        alpha: Width multiplier (> 0) for every layer's channels; the head
            keeps 1280 channels for `alpha <= 1`.
        low_res: 32x32 variant: stride 1 in the stem and the first
            24-channel block.
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: As in `keras.applications`; `weights`
            is `None`, a local `.weights.h5`/`.keras` file or the
            name of weights published for the architecture.
        frozen_spatial: Freeze the 3x3 stem and depthwise kernels at their
            seeded random initialization (PyTorch's default distribution).
        seed: Model seed (non-negative int); `None` draws one.

    Returns:
        A functional `keras.Model`.

    Example:

    >>> model = mobilenet_v2(alpha=0.35, low_res=True, input_shape=(32, 32, 3), classes=10, seed=0)
    >>> model.output_shape
    (None, 10)
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(f"`alpha` must be a positive number. Received: alpha={alpha!r}")
    low_res = check_bool(low_res, "low_res")
    arch = "mobilenet_v2" + ("" if alpha == 1 else f"_{alpha:g}") + ("_low_res" if low_res else "")
    app = Application(
        arch,
        options=ConvOptions.create(seed=seed, frozen_spatial=frozen_spatial),
        default_size=32 if low_res else 224,
        min_size=8 if low_res else 32,
        **application,
    )
    options = app.options
    inputs = app.input()
    stem = make_divisible(32 * alpha)
    x = conv_bn(app.preprocess(inputs), stem, 3, 1 if low_res else 2, options, "stem", activation="relu6")
    index = 0
    for stage, (expansion, channels, count, stride) in enumerate(BLOCKS):
        if low_res and stage == 1:
            stride = 1
        for block in range(count):
            strides = stride if block == 0 else 1
            filters = make_divisible(int(channels * alpha))
            x = _inverted_residual(x, expansion, filters, strides, options, f"block{index}")
            index += 1
    head = 1280 if alpha <= 1.0 else make_divisible(1280 * alpha)
    x = conv_bn(x, head, 1, 1, options, "head", activation="relu6")
    return app.model(inputs, x)
