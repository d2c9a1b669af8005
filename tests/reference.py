"""NumPy references and backend-agnostic helpers for the tests."""

import keras
import numpy as np


def to_numpy(x, dtype=None):
    """`x` (a NumPy array or any backend's tensor or variable, a PyTorch tensor that requires
    grad included) as a NumPy array."""
    if not isinstance(x, np.ndarray):
        x = keras.ops.convert_to_numpy(x)
    return np.asarray(x, dtype=dtype)


def rel_error(actual, expected):
    """||actual - expected|| / ||expected|| (Frobenius), in float64."""
    actual = to_numpy(actual, np.float64)
    expected = to_numpy(expected, np.float64)
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


def randomize_batchnorm(model, seed=0, mean_std=0.1, variance=(0.5, 1.5), beta_std=0.1):
    """Moving statistics and affine parameters of every BatchNormalization (nested ones
    included) away from the identity, so that folding them is really tested."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, mean_std, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(*variance, n).astype("float32"))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            if layer.center:
                layer.beta.assign(rng.normal(0, beta_std, n).astype("float32"))
    return model


def _same_padding(size, kernel, stride, dilation=1):
    """TensorFlow's "same" padding of one axis: `(before, after, output size)`."""
    extent = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + extent - size, 0)
    return total // 2, total - total // 2, out


def pad_same(x, kernel_size, strides, dilation=(1, 1), value=0.0):
    """`x` (NHWC) padded as TensorFlow's "same" padding pads it (the extra row/column after)."""
    (p_t, p_b, _), (p_l, p_r, _) = (
        _same_padding(n, k, s, d) for n, k, s, d in zip(x.shape[1:3], kernel_size, strides, dilation))
    return np.pad(x, ((0, 0), (p_t, p_b), (p_l, p_r), (0, 0)), constant_values=value)


def _windows(x, kernel_size, strides, dilation=(1, 1)):
    """`(i, j, x[:, window offset (i, j) of every output position, :])` of an already padded `x`."""
    (k_h, k_w), (s_h, s_w), (d_h, d_w) = kernel_size, strides, dilation
    o_h = (x.shape[1] - (k_h - 1) * d_h - 1) // s_h + 1
    o_w = (x.shape[2] - (k_w - 1) * d_w - 1) // s_w + 1
    for i in range(k_h):
        for j in range(k_w):
            yield i, j, x[:, i * d_h : i * d_h + (o_h - 1) * s_h + 1 : s_h,
                          j * d_w : j * d_w + (o_w - 1) * s_w + 1 : s_w, :]


def numpy_conv2d(x, w, strides=(1, 1), padding="same", dilation=(1, 1)):
    """Direct 2-D cross-correlation in float64, TensorFlow's padding convention."""
    x = to_numpy(x, dtype=np.float64)
    w = to_numpy(w, dtype=np.float64)
    if padding == "same":
        x = pad_same(x, w.shape[:2], strides, dilation)
    return sum(patch @ w[i, j] for i, j, patch in _windows(x, w.shape[:2], strides, dilation))


def numpy_depthwise_conv2d(x, w, strides=(1, 1), padding="same"):
    """Depthwise 2-D cross-correlation (depth multiplier 1, `w` of shape (k, k, C, 1)), float64."""
    x = to_numpy(x, dtype=np.float64)
    w = to_numpy(w, dtype=np.float64)
    assert w.shape[3] == 1, w.shape
    if padding == "same":
        x = pad_same(x, w.shape[:2], strides)
    return sum(patch * w[i, j, :, 0] for i, j, patch in _windows(x, w.shape[:2], strides))


def numpy_max_pool2d(x, size, strides, padding="same"):
    """Max pooling; "same" pads with -inf as TensorFlow does (padding never wins)."""
    x = to_numpy(x, dtype=np.float64)
    if padding == "same":
        x = pad_same(x, (size, size), (strides, strides), value=-np.inf)
    return np.max([patch for _, _, patch in _windows(x, (size, size), (strides, strides))], axis=0)


def numpy_avg_pool2d_same(x, size, strides):
    """Average pooling with "same" padding, the padded positions left out of each mean."""
    x = to_numpy(x, dtype=np.float64)
    padded = pad_same(x, (size, size), (strides, strides), value=np.nan)
    patches = np.stack([patch for _, _, patch in _windows(padded, (size, size), (strides, strides))])
    return np.nanmean(patches, axis=0)


def numpy_batch_norm(x, gamma, beta, mean, variance, epsilon):
    """Inference-mode BatchNormalization, float64."""
    x, gamma, beta, mean, variance = (to_numpy(a, np.float64) for a in (x, gamma, beta, mean, variance))
    return gamma * (x - mean) / np.sqrt(variance + epsilon) + beta


def numpy_relu(x, max_value=None):
    """max(x, 0), capped at `max_value` (6: ReLU6) when given."""
    y = np.maximum(x, 0.0)
    return y if max_value is None else np.minimum(y, max_value)


def gradients(layer, x, upstream, training=False):
    """d sum(layer(x) * upstream) / d v for each trainable variable, by name."""
    backend = keras.backend.backend()
    variables = layer.trainable_variables
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x, training=training) * upstream)
        grads = tape.gradient(loss, variables)
    elif backend == "jax":
        import jax
        import jax.numpy as jnp

        non_trainable = [v.value for v in layer.non_trainable_variables]

        def loss_fn(trainable):
            y, _ = layer.stateless_call(trainable, non_trainable, x, training=training)
            return jnp.sum(y * upstream)

        grads = jax.grad(loss_fn)([v.value for v in variables])
    elif backend == "torch":
        import torch

        loss = torch.sum(layer(x, training=training) * torch.as_tensor(np.asarray(upstream)))
        grads = torch.autograd.grad(loss, [v.value for v in variables])
    else:
        raise NotImplementedError(f"No gradient reference for the {backend!r} backend.")
    return {v.name: to_numpy(g, np.float64) for v, g in zip(variables, grads)}


#: CIFAR-10's per-channel mean and std (of [0, 1] pixels), as published (not read from keras_lc).
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def raw_from_normalized(images, mean=CIFAR10_MEAN, std=CIFAR10_STD):
    """The float32 [0, 255] images that `keras_lc.data.normalize` (CIFAR-10 constants) maps to `images`."""
    x = np.asarray(images, np.float64) * np.asarray(std) + np.asarray(mean)
    return (x * 255.0).astype(np.float32)


def normalized_cifar10(images):
    """uint8 RGB images standardized with CIFAR-10's constants, (x / 255 - mean) / std, float32."""
    x = np.asarray(images, np.float64) / 255.0
    return ((x - np.asarray(CIFAR10_MEAN)) / np.asarray(CIFAR10_STD)).astype(np.float32)
