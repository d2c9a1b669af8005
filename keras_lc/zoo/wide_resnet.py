"""Wide ResNets (Zagoruyko & Komodakis 2016): CIFAR WRN-D-K and bottleneck WRN-50-2.

`wide_resnet(depth, width)` is the CIFAR WRN-{depth}-{width}: a 3x3 stem
convolution with 16 channels, 3 stages of (depth - 4) / 6 pre-activation
basic blocks with 16K, 32K and 64K channels (BN-ReLU-conv3x3-BN-ReLU-
[dropout]-conv3x3; 1x1 convolution shortcuts where the channels change,
applied to the pre-activated input), a final BN-ReLU, pooling and the
classifier; WRN-28-10 has 36.5M parameters. As in the original, each
block's first BatchNormalization acts on the residual sum (pre-activation),
while the second directly follows the first convolution.

`wide_resnet50_2` is torchvision's Wide-ResNet-50-2: ResNet-50 with twice as
wide 3x3 bottleneck convolutions (68.9M parameters, 23.6M trainable with
frozen spatial kernels, as the paper's authors report), a preset of the
ImageNet ResNet family (`keras_lc.zoo.resnet.PRESETS`), imported here.
"""

import keras

from keras_lc.validation import positive_int
from keras_lc.zoo.application import Application, application_builder
from keras_lc.zoo.blocks import ConvOptions, batch_norm, conv, relu
from keras_lc.zoo.registry import register_model, register_presets
from keras_lc.zoo.resnet import wide_resnet50_2  # noqa: F401 (a preset of resnet_imagenet)


def _preact_block(x, filters, strides, dropout_rate, options, prefix):
    y = batch_norm(f"{prefix}_bn1")(x)
    y = relu(y, "relu", f"{prefix}_relu1")
    if strides == 1 and x.shape[-1] == filters:
        residual = x
    else:
        residual = conv(filters, 1, strides, f"{prefix}_shortcut_conv", options)(y)
    y = conv(filters, 3, strides, f"{prefix}_conv1", options)(y)
    y = batch_norm(f"{prefix}_bn2")(y)
    y = relu(y, "relu", f"{prefix}_relu2")
    if dropout_rate:
        y = keras.layers.Dropout(dropout_rate, name=f"{prefix}_dropout")(y)
    y = conv(filters, 3, 1, f"{prefix}_conv2", options)(y)
    return keras.layers.Add(name=f"{prefix}_add")([residual, y])


@register_model
@application_builder(classes=10)
def wide_resnet(
    depth=28, width=10, dropout_rate=0.0, *, application, frozen_spatial=False, seed=None, padding="same"
):
    """CIFAR Wide-ResNet-{depth}-{width} (Zagoruyko & Komodakis 2016).

    Args:
        depth: 6n + 4 (10, 16, 22, 28, 40, ...).
        width: Widening factor K (stages: 16K, 32K, 64K channels).
        dropout_rate: Dropout between the two convolutions of each block
            (the original uses 0.3 in some experiments).
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: As in `keras.applications`; `weights`
            is `None`, a local `.weights.h5`/`.keras` file or the
            name of weights published for the architecture. Default input
            32x32x3, 10 classes, name `wide_resnet{depth}_{width}`.
        frozen_spatial: Freeze every 3x3 kernel at its seeded random
            initialization (PyTorch's default distribution).
        seed: Model seed (non-negative int); `None` draws one.
        padding: Zero padding of the stride-2 3x3 convolutions: `"same"`
            (Keras', the default) or `"symmetric"` (PyTorch's `padding=1`;
            the name gains `_symmetric`), as in `resnet_cifar`.

    Returns:
        A functional `keras.Model`.

    Example:

    >>> model = wide_resnet(depth=10, width=2, seed=0)
    >>> model.output_shape
    (None, 10)
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ValueError(
            f"`depth` must be 6n + 4 for an integer n >= 1 (10, 16, 22, 28, 40, ...). "
            f"Received: depth={depth!r}"
        )
    width = positive_int(width, "width")
    if isinstance(dropout_rate, bool) or not isinstance(dropout_rate, (int, float)) or not (
        0 <= dropout_rate < 1
    ):
        raise ValueError(f"`dropout_rate` must be in [0, 1). Received: dropout_rate={dropout_rate!r}")
    options = ConvOptions.create(seed=seed, frozen_spatial=frozen_spatial, padding=padding)
    app = Application(
        f"wide_resnet{depth}_{width}" + ("" if padding == "same" else f"_{padding}"),
        options=options,
        default_size=32,
        min_size=4,
        **application,
    )
    options = app.options
    inputs = app.input()
    x = conv(16, 3, 1, "stem_conv", options)(app.preprocess(inputs))
    for stage in range(1, 4):
        filters = 16 * width * 2 ** (stage - 1)
        for block in range(1, (depth - 4) // 6 + 1):
            strides = 2 if stage > 1 and block == 1 else 1
            x = _preact_block(x, filters, strides, dropout_rate, options, f"stage{stage}_block{block}")
    x = batch_norm("final_bn")(x)
    x = relu(x, "relu", "final_relu")
    return app.model(inputs, x)


#: The CIFAR Wide-ResNet presets: name -> the `wide_resnet` arguments it fixes.
PRESETS = {"wide_resnet28_10": {"depth": 28, "width": 10}}
(wide_resnet28_10,) = register_presets(wide_resnet, PRESETS)
