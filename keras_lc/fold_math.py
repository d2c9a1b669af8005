"""Kernel algebra shared by every fold: pure NumPy, float64 inside.

This module sits below the layers (the layers' own `fold()` uses it) and below
`keras_lc.fold` (whole-model folding), so there is exactly one implementation
of composing an LC-block and of folding a BatchNormalization. It also keeps
the layers' decompositions of seeded kernels on one BLAS thread
(`single_threaded_blas`).
"""

import contextlib

import numpy as np


def to_numpy64(x):
    """A backend tensor, variable or array as a float64 NumPy array."""
    import keras

    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def compose_kernels(spatial_kernel, combination):
    """Fold a k x k kernel followed by a 1x1 combination into one kernel.

    W[..., o] = sum_j combination[j, o] * spatial_kernel[..., j]

    Args:
        spatial_kernel: `(kh, kw, c_in, m)`.
        combination: `(m, c_out)`, the 1x1 convolution's kernel squeezed.

    Returns:
        `(kh, kw, c_in, c_out)` float64 array.
    """
    spatial_kernel = np.asarray(spatial_kernel, dtype=np.float64)
    combination = np.asarray(combination, dtype=np.float64)
    if spatial_kernel.shape[-1] != combination.shape[0]:
        raise ValueError(
            "The spatial kernel's output channels must match the combination's "
            f"input channels. Received shapes {spatial_kernel.shape} and "
            f"{combination.shape}."
        )
    return np.tensordot(spatial_kernel, combination, axes=([-1], [0]))


def batchnorm_scale_shift(gamma, beta, moving_mean, moving_variance, epsilon):
    """Inference-mode BatchNormalization as y = x * scale + shift (per channel).

    `gamma`/`beta` may be `None` (a BatchNormalization with `scale=False` or
    `center=False`).
    """
    moving_mean = np.asarray(moving_mean, dtype=np.float64)
    moving_variance = np.asarray(moving_variance, dtype=np.float64)
    scale = 1.0 / np.sqrt(moving_variance + float(epsilon))
    if gamma is not None:
        scale = scale * np.asarray(gamma, dtype=np.float64)
    shift = -moving_mean * scale
    if beta is not None:
        shift = shift + np.asarray(beta, dtype=np.float64)
    return scale, shift


def batchnorm_layer_scale_shift(bn):
    """`batchnorm_scale_shift` read from a `keras.layers.BatchNormalization`."""
    return batchnorm_scale_shift(
        to_numpy64(bn.gamma) if bn.scale else None,
        to_numpy64(bn.beta) if bn.center else None,
        to_numpy64(bn.moving_mean),
        to_numpy64(bn.moving_variance),
        bn.epsilon,
    )


def fold_batchnorm(kernel, bias, scale, shift):
    """Fold y = (conv(x, kernel) + bias) * scale + shift into one conv.

    The BatchNormalization acts on the last (output-channel) axis of `kernel`.
    `bias` may be `None`. Depthwise kernels `(kh, kw, c, 1)` are handled by
    passing them reshaped to `(kh, kw, 1, c)`.

    Returns:
        `(kernel, bias)` as float64 arrays.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    c_out = kernel.shape[-1]
    if np.shape(scale) != (c_out,) or np.shape(shift) != (c_out,):
        raise ValueError(
            f"BatchNormalization over {np.shape(scale)} channels cannot fold into "
            f"a kernel with {c_out} output channels."
        )
    bias = np.zeros((c_out,)) if bias is None else np.asarray(bias, dtype=np.float64)
    return kernel * scale, bias * scale + shift


# ----------------------------------------------------- BLAS threads of LAPACK
@contextlib.contextmanager
def single_threaded_blas():
    """Run the BLAS and LAPACK calls of the block on one thread (`threadpoolctl`).

    A multi-threaded OpenBLAS sharing the cores with busy threads (TensorFlow's
    pool, another process) waits at every level-2 call for a thread the OS
    has not scheduled; LAPACK's `eigh` makes ~2n of them, so on 2 busy cores
    one (576, 576) `eigh` took 1.3 s instead of 0.04 s on one thread. Small
    decompositions gain little from threads anyway. The previous limits are
    restored on exit.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
