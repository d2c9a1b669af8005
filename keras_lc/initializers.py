"""Seeded, backend-independent initializers with PyTorch's default bounds.

The frozen spatial kernels of an LC-block are *defined* by their seed: the same
seed must give the same kernel, bit for bit, on TensorFlow and JAX and on every
machine. Backend random generators do not promise that, so the values are drawn
on the host from NumPy's PCG64 generator (whose float64 stream is specified
and platform independent) and then cast to the requested dtype.
"""

import math
import zlib

import keras
import numpy as np

from keras_lc.validation import check_seed

# Independent random streams derived from one layer seed.
STREAM_SPATIAL = 0
STREAM_COMBINATION = 1
STREAM_BIAS = 2


def fan_in_of(shape):
    """Fan-in of a kernel in Keras layout.

    `(..., c_in, c_out)`: the product of all but the last dimension, which is
    what PyTorch uses for `Conv2d`/`Linear` weights (`c_in * kh * kw`).
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) < 2:
        raise ValueError(
            "Cannot infer the fan-in of a kernel of rank < 2. "
            f"Received: shape={shape}; pass `fan_in` explicitly."
        )
    return int(np.prod(shape[:-1]))


def torch_uniform(shape, seed, stream=STREAM_SPATIAL, fan_in=None, layout="keras"):
    """PyTorch's default `Conv2d`/`Linear` initialization as a NumPy array.

    Draws U[-a, a] with a = 1/sqrt(fan_in) (what
    `kaiming_uniform_(a=sqrt(5))` and PyTorch's default bias init reduce to)
    from `numpy.random.PCG64(SeedSequence([seed, stream]))`, in float64.

    Values are drawn in PyTorch's weight layout `(c_out, c_in, kh, kw)` and
    transposed to Keras' `(kh, kw, c_in, c_out)`, so the first `n` output
    filters do not depend on how many filters are drawn in total.

    Args:
        shape: Keras kernel shape `(kh, kw, c_in, c_out)`, `(c_in, c_out)` or,
            with `fan_in` given, any shape (e.g. a bias `(c_out,)`).
        seed: Non-negative integer.
        stream: Which independent stream of the seed to use.
        fan_in: Overrides the fan-in inferred from `shape`.
        layout: `"keras"` (default) returns `shape`; `"torch"` returns the
            values as drawn, `(c_out, c_in, *spatial)` (no transposing copy:
            `keras_lc.layers.compact_weights` decomposes them in this layout).

    Returns:
        A float64 `np.ndarray` of `shape` (or its PyTorch layout).
    """
    seed = check_seed(seed)
    if layout not in ("keras", "torch"):
        raise ValueError(f"`layout` must be 'keras' or 'torch'. Received: layout={layout!r}")
    shape = tuple(int(d) for d in shape)
    if fan_in is None:
        fan_in = fan_in_of(shape)
    bound = 1.0 / math.sqrt(fan_in)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, stream])))
    if len(shape) >= 2:
        # Draw in (c_out, c_in, *spatial) order, then move to Keras layout.
        torch_shape = (shape[-1], shape[-2]) + shape[:-2]
        values = rng.uniform(-bound, bound, size=torch_shape)
        return values if layout == "torch" else to_keras_layout(values)
    return rng.uniform(-bound, bound, size=shape)


#: Output filters copied per block by `to_keras_layout`.
TRANSPOSE_BLOCK = 64


def to_keras_layout(values, dtype=None):
    """A `(c_out, c_in, *spatial)` array as a C-contiguous `(*spatial, c_in, c_out)` one.

    `dtype`: cast while copying (bit-identical to `.astype(dtype)` afterwards).

    Written out instead of `np.ascontiguousarray(np.transpose(...))` because
    NumPy's transposing copy walks the source with strides of a whole filter,
    missing the cache for every element once the kernel outgrows it; copying
    blocks of `TRANSPOSE_BLOCK` filters keeps both sides in cache and is about
    three times faster on the (8192, 64, 3, 3) kernels of ResNet-LC-20-16x128.
    """
    rank = values.ndim
    # torch axes: 0=c_out, 1=c_in, 2..=spatial  ->  keras: spatial.., c_in, c_out
    axes = tuple(range(2, rank)) + (1, 0)
    out = np.empty(values.shape[2:] + values.shape[1::-1], dtype=dtype or values.dtype)
    for start in range(0, values.shape[0], TRANSPOSE_BLOCK):
        block = values[start : start + TRANSPOSE_BLOCK]
        out[..., start : start + TRANSPOSE_BLOCK] = np.transpose(block, axes)
    return out


@keras.saving.register_keras_serializable(package="keras_lc")
class TorchUniform(keras.initializers.Initializer):
    """Seeded PyTorch-default uniform initializer, identical on every backend.

    U[-a, a] with a = 1/sqrt(fan_in), drawn with NumPy's PCG64 generator (see
    `torch_uniform`). Calling it twice with the same shape returns the same
    values: the seed defines the tensor.

    Args:
        seed: Non-negative integer.
        stream: Independent stream of the seed (0 spatial, 1 combination,
            2 bias are used by `LCConv2D`).
        fan_in: Optional fan-in; inferred from the kernel shape when `None`.

    Example:

    >>> init = TorchUniform(seed=0)
    >>> w = init((3, 3, 16, 32))
    >>> bool(keras.ops.max(keras.ops.abs(w)) <= 1 / (3 * 3 * 16) ** 0.5)
    True
    """

    def __init__(self, seed, stream=STREAM_SPATIAL, fan_in=None):
        self.seed = check_seed(seed)
        if isinstance(stream, bool) or not isinstance(stream, (int, np.integer)) or stream < 0:
            raise ValueError(
                f"`stream` must be a non-negative integer. Received: stream={stream!r}"
            )
        self.stream = int(stream)
        if fan_in is not None and (not isinstance(fan_in, (int, np.integer)) or fan_in < 1):
            raise ValueError(
                f"`fan_in` must be a positive integer or None. Received: fan_in={fan_in!r}"
            )
        self.fan_in = None if fan_in is None else int(fan_in)

    def __call__(self, shape, dtype=None):
        dtype = keras.backend.standardize_dtype(dtype or keras.config.floatx())
        values = torch_uniform(shape, self.seed, self.stream, self.fan_in, layout="torch")
        values = to_keras_layout(values, dtype) if len(shape) >= 2 else values.astype(dtype)
        return keras.ops.convert_to_tensor(values)

    def get_config(self):
        return {"seed": self.seed, "stream": self.stream, "fan_in": self.fan_in}


# ------------------------------------------------------------ seed derivation
def layer_seed(seed, key):
    """A layer's seed derived from a model `seed` and the layer's `key` (its name).

    Deterministic across runs, machines and Python versions (CRC-32 of the
    key and NumPy's `SeedSequence`), and independent of layer order, so
    adding a layer elsewhere leaves every other layer's kernel unchanged.
    """
    seed = check_seed(seed)
    state = np.random.SeedSequence([seed, zlib.crc32(str(key).encode("utf-8"))])
    return int(state.generate_state(1, np.uint32)[0] >> 1)


def resolve_seed(seed):
    """`seed` validated, or a fresh one from NumPy's global generator when `None`.

    Drawing from the global generator makes `keras.utils.set_random_seed`
    reproduce it, as for `LCConv2D(seed=None)`.
    """
    if seed is None:
        return int(np.random.randint(0, 2**31 - 1))
    return check_seed(seed)


def spatial_initializer(kernel_size, seed, depthwise=False):
    """The frozen-random initializer of a k x k kernel: PyTorch's default bounds.

    U[-a, a] with a = 1/sqrt(fan_in): fan_in = c_in/groups * kh * kw for a
    `Conv2D` (inferred from the kernel shape) and kh * kw for a
    `DepthwiseConv2D` (PyTorch's depthwise weight is `(C * mult, 1, kh, kw)`).
    """
    k_h, k_w = kernel_size
    return TorchUniform(seed, STREAM_SPATIAL, fan_in=k_h * k_w if depthwise else None)
