"""NumPy references and backend-agnostic helpers for the tests."""

import keras
import numpy as np


def rel_error(actual, expected):
    """||actual - expected|| / ||expected|| (Frobenius), in float64."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
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


def numpy_conv2d(x, w, strides=(1, 1), padding="same", dilation=(1, 1)):
    """Direct 2-D cross-correlation in float64, TensorFlow's padding convention."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    _, height, width, _ = x.shape
    k_h, k_w, _, _ = w.shape
    (s_h, s_w), (d_h, d_w) = strides, dilation
    e_h, e_w = (k_h - 1) * d_h + 1, (k_w - 1) * d_w + 1
    if padding == "same":
        o_h, o_w = -(-height // s_h), -(-width // s_w)
        p_h = max((o_h - 1) * s_h + e_h - height, 0)
        p_w = max((o_w - 1) * s_w + e_w - width, 0)
        x = np.pad(x, ((0, 0), (p_h // 2, p_h - p_h // 2), (p_w // 2, p_w - p_w // 2), (0, 0)))
    else:
        o_h, o_w = (height - e_h) // s_h + 1, (width - e_w) // s_w + 1
    out = np.zeros((x.shape[0], o_h, o_w, w.shape[3]))
    for i in range(k_h):
        for j in range(k_w):
            patch = x[:, i * d_h : i * d_h + (o_h - 1) * s_h + 1 : s_h,
                      j * d_w : j * d_w + (o_w - 1) * s_w + 1 : s_w, :]
            out += patch @ w[i, j]
    return out


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
    else:  # pragma: no cover - the suite runs on tensorflow and jax
        raise NotImplementedError(backend)
    return {v.name: np.asarray(g, dtype=np.float64) for v, g in zip(variables, grads)}


def raw_from_normalized(images, mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)):
    """The float32 [0, 255] images that `keras_lc.data.normalize` (CIFAR-10 constants) maps to `images`."""
    x = np.asarray(images, np.float64) * np.asarray(std) + np.asarray(mean)
    return (x * 255.0).astype(np.float32)
