"""Independent NumPy forward passes (float64, inference mode) of the zoo's blocks and of ResNet-50.

Written from the papers' descriptions, not from keras_lc: where each stride, ReLU and add goes.
Weights come in as `p`, a dict from the block's layer suffix (`"conv1"`, `"bn1"`,
`"shortcut_conv"`, ...) to that layer's weights (`[kernel]` or `[kernel, bias]` for a
convolution, `[gamma, beta, moving_mean, moving_variance]` for a BatchNormalization).
"""

import numpy as np

from tests.reference import (numpy_avg_pool2d_same, numpy_batch_norm, numpy_conv2d,
                             numpy_depthwise_conv2d, numpy_max_pool2d, numpy_relu)

#: BatchNormalization epsilon: PyTorch's (the zoo's) and keras.applications.ResNet50's.
TORCH_EPSILON, KERAS_RESNET_EPSILON = 1e-5, 1.001e-5
#: ResNet-50's stages: (bottleneck width, blocks); each block outputs 4 x width channels.
RESNET50_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))


def conv(x, weights, strides=1, padding="same"):
    """A convolution, plus its bias when `weights` has one."""
    kernel, *bias = weights
    y = numpy_conv2d(x, kernel, (strides, strides), padding)
    return y + np.asarray(bias[0], np.float64) if bias else y


def bn(x, weights, epsilon=TORCH_EPSILON):
    return numpy_batch_norm(x, *weights, epsilon)


def shortcut(x, p, strides, kind, epsilon=TORCH_EPSILON):
    """None: the identity; "B": 1x1 conv (stride) + BN; "D": 2x2 average pool (stride, padding
    excluded), then 1x1 conv + BN."""
    if kind is None:
        return x
    if kind == "D" and strides > 1:
        x, strides = numpy_avg_pool2d_same(x, strides, strides), 1
    return bn(conv(x, p["shortcut_conv"], strides), p["shortcut_bn"], epsilon)


def basic_block(x, p, strides, kind):
    """He et al. 2015: 3x3 conv (stride) - BN - ReLU - 3x3 conv - BN, + shortcut, then ReLU."""
    y = numpy_relu(bn(conv(x, p["conv1"], strides), p["bn1"]))
    y = bn(conv(y, p["conv2"]), p["bn2"])
    return numpy_relu(shortcut(x, p, strides, kind) + y)


def bottleneck_block(x, p, strides, kind, stride_on="3x3", epsilon=TORCH_EPSILON):
    """1x1 - BN - ReLU - 3x3 - BN - ReLU - 1x1 - BN, + shortcut, then ReLU.

    `stride_on="3x3"`: torchvision's "v1.5"; `"1x1"`: the original (Caffe, keras.applications'
    ResNet50), the stride on the first 1x1 convolution.
    """
    s1, s2 = (1, strides) if stride_on == "3x3" else (strides, 1)
    y = numpy_relu(bn(conv(x, p["conv1"], s1), p["bn1"], epsilon))
    y = numpy_relu(bn(conv(y, p["conv2"], s2), p["bn2"], epsilon))
    y = bn(conv(y, p["conv3"]), p["bn3"], epsilon)
    return numpy_relu(shortcut(x, p, strides, kind, epsilon) + y)


def preact_block(x, p, strides, projection):
    """Zagoruyko & Komodakis 2016 (pre-activation): a = ReLU(BN(x)); a 3x3 conv (stride) of a -
    BN - ReLU - (dropout: none at inference) - 3x3 conv; added to x itself, or to a 1x1 conv
    (stride) of a when the shape changes. No ReLU after the add."""
    a = numpy_relu(bn(x, p["bn1"]))
    residual = conv(a, p["shortcut_conv"], strides) if projection else x
    y = numpy_relu(bn(conv(a, p["conv1"], strides), p["bn2"]))
    return residual + conv(y, p["conv2"])


def inverted_residual(x, p, strides, expand, add, cap=6.0):
    """Sandler et al. 2018: [1x1 expansion - BN - ReLU6] - 3x3 depthwise (stride) - BN - ReLU6 -
    1x1 projection - BN (linear: no activation), + x when `add` (stride 1, same channels).
    (`cap=None`: plain ReLUs instead, to show the cap matters on given inputs.)"""
    y = x
    if expand:
        y = numpy_relu(bn(conv(y, p["expand_conv"]), p["expand_bn"]), cap)
    y = numpy_depthwise_conv2d(y, p["depthwise"][0], (strides, strides))
    y = numpy_relu(bn(y, p["depthwise_bn"]), cap)
    y = bn(conv(y, p["project_conv"]), p["project_bn"])
    return x + y if add else y


def resnet50(x, params, version):
    """ResNet-50's logits for NHWC images `x`; `params[layer]`: the weights of `stem_conv`,
    `stem_bn`, `predictions` and, for each block, `params["stage{s}_block{b}"]` a block's `p`.

    `version="v1"` is keras.applications' ResNet50: the stem zero-pads by 3 and convolves
    'valid', zero-pads by 1 and max-pools 'valid'; the stride on each stage's first 1x1
    convolution; epsilon 1.001e-5. `"v1.5"` is torchvision's: TensorFlow "same" padding in
    the stem (conv and pool), the stride on the 3x3 convolution; epsilon 1e-5.
    """
    v1 = {"v1": True, "v1.5": False}[version]
    epsilon = KERAS_RESNET_EPSILON if v1 else TORCH_EPSILON
    x = np.asarray(x, np.float64)
    if v1:
        x = conv(np.pad(x, ((0, 0), (3, 3), (3, 3), (0, 0))), params["stem_conv"], 2, "valid")
    else:
        x = conv(x, params["stem_conv"], 2)
    x = numpy_relu(bn(x, params["stem_bn"], epsilon))
    if v1:
        x = numpy_max_pool2d(np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), 3, 2, "valid")
    else:
        x = numpy_max_pool2d(x, 3, 2, "same")
    for stage, (_, blocks) in enumerate(RESNET50_STAGES, start=1):
        for block in range(1, blocks + 1):
            strides = 2 if stage > 1 and block == 1 else 1
            x = bottleneck_block(x, params[f"stage{stage}_block{block}"], strides,
                                 "B" if block == 1 else None, "1x1" if v1 else "3x3", epsilon)
    kernel, bias = params["predictions"]
    return x.mean(axis=(1, 2)) @ np.asarray(kernel, np.float64) + bias
