"""Compact weights of `LCConv2D`: frozen kernels stored as their seed, not as tensors.

A frozen spatial kernel equal to the one its seed defines is saved as the seed
alone and regenerated bit-exactly on load, so `.weights.h5`, `.keras` files and
training checkpoints hold only what was learned; the basis form's P (from the
thin SVD of that kernel) is never saved either. Loading converts between the
basis form (A) and the composed / two_stage forms (C), through the same basis.

The basis is computed from the eigendecomposition of the kernel matrix's small
Gram matrix (`frozen_basis`), not from its SVD, and kept in `basis_cache`, so
building the same layer again neither redraws nor decomposes its kernel.
"""

import collections
import threading

import keras
import numpy as np

from keras_lc.fold_math import single_threaded_blas
from keras_lc.initializers import (
    STREAM_COMBINATION,
    STREAM_SPATIAL,
    TorchUniform,
    to_keras_layout,
    torch_uniform,
)

#: `frozen_basis` uses the Gram matrix while its eigenvalues span less than
#: this ratio (the kernel's condition number below 1e3): eigenvectors of the
#: Gram matrix then agree with the SVD's singular vectors to ~1e-10, far below
#: float32 resolution. Worse conditioned kernels (about square ones, m close
#: to k*k*c_in) fall back to the SVD.
GRAM_CONDITION_LIMIT = 1e6

#: Bytes `basis_cache` holds at most (float64 P, s and initial A of recent layers).
BASIS_CACHE_BYTES = 256 * 2**20


def frozen_svd(matrix):
    """Thin SVD `(U S, V)` of a `(k*k*c_in, m)` kernel matrix, with a fixed sign convention.

    The largest-magnitude entry of each column of U is made positive, so the
    basis does not depend on the LAPACK build's sign choices. `frozen_basis`
    computes the same `U S` faster; this is its reference and fallback.
    """
    with single_threaded_blas():
        u, s, vt = np.linalg.svd(matrix, full_matrices=False)
    signs = _column_signs(u)
    return u * s * signs, vt.T * signs


def _column_signs(columns):
    signs = np.sign(columns[np.argmax(np.abs(columns), axis=0), np.arange(columns.shape[1])])
    signs[signs == 0] = 1.0
    return signs


class SeedMatrix:
    """The seed's frozen spatial kernel as the `(k*k*c_in, m)` matrix W, drawn once.

    The values stay in the layout they are drawn in (PyTorch's, `(m, c_in*k*k)`),
    so the Gram matrix and the products with W and W^T need no transposing
    copy of the (large, for E=128) kernel; `kernel()` gives the Keras layout.

    Args:
        shape: Keras kernel shape `(kh, kw, c_in, m)`.
        seed: The layer's seed (stream `STREAM_SPATIAL`).
    """

    def __init__(self, shape, seed):
        self.shape = tuple(int(d) for d in shape)
        k_h, k_w, channels, m = self.shape
        self.drawn = torch_uniform(self.shape, seed, STREAM_SPATIAL, layout="torch").reshape(m, -1)
        # Row i of W (Keras order kh, kw, c_in) is column rows[i] of `drawn` (c_in, kh, kw).
        self.rows = np.arange(channels * k_h * k_w).reshape(channels, k_h, k_w).transpose(1, 2, 0).ravel()

    @property
    def fan_in(self):
        """k*k*c_in, the rows of W."""
        return self.drawn.shape[1]

    def kernel(self, dtype="float64"):
        """W in Keras layout `(kh, kw, c_in, m)`, bit-identical to `torch_uniform`'s."""
        k_h, k_w, channels, m = self.shape
        return to_keras_layout(self.drawn.reshape(m, channels, k_h, k_w), dtype)

    def matmul(self, x):
        """W @ x for `x` of shape `(m, n)`."""
        return (self.drawn.T @ x)[self.rows]

    def rmatmul(self, y):
        """W^T @ y for `y` of shape `(k*k*c_in, n)`."""
        permuted = np.empty_like(y)
        permuted[self.rows] = y
        return self.drawn @ permuted

    def matrix(self):
        """W as a `(k*k*c_in, m)` array."""
        return self.drawn.T[self.rows]


def frozen_basis(seed_matrix):
    """`(P, s)`: P = U S of the thin SVD W = U S V^T (`frozen_svd`'s sign convention).

    Computed from `numpy.linalg.eigh` of the smaller Gram matrix, W W^T
    ((k*k*c_in)^2) or W^T W (m^2), instead of the SVD of W: for E=128 the
    kernel has m >> k*k*c_in columns and the SVD costs ~20 times as much.
    Falls back to the SVD when W is ill-conditioned (`GRAM_CONDITION_LIMIT`).
    V is never formed: `V^T C = S^-2 P^T W C` and `V A = W^T P S^-2 A`. BLAS
    runs on one thread (`keras_lc.fold_math.single_threaded_blas` says why).
    """
    fan_in, m = seed_matrix.fan_in, seed_matrix.drawn.shape[0]
    drawn = seed_matrix.drawn
    with single_threaded_blas():
        if fan_in <= m:
            gram = (drawn.T @ drawn)[np.ix_(seed_matrix.rows, seed_matrix.rows)]  # W W^T
        else:
            gram = drawn @ drawn.T  # W^T W
        eigenvalues, vectors = np.linalg.eigh(gram)
        eigenvalues, vectors = eigenvalues[::-1], vectors[:, ::-1]  # descending, as the SVD
        if not eigenvalues[-1] > eigenvalues[0] / GRAM_CONDITION_LIMIT:
            u, s, _ = np.linalg.svd(seed_matrix.matrix(), full_matrices=False)
            return u * s * _column_signs(u), s
    s = np.sqrt(eigenvalues)
    basis = vectors * s if fan_in <= m else seed_matrix.matmul(vectors)  # U S; W V = U S
    return basis * _column_signs(basis), s


class BasisCache:
    """A least-recently-used cache of seed bases, bounded in bytes.

    Hand-written rather than `functools.lru_cache` because that bounds the
    number of entries, while a basis ranges from kilobytes (a CIFAR stem) to
    170 MB (P of a 3x3x512 ImageNet layer is (4608, 4608) float64). An entry
    larger than the whole budget is returned but not kept. The arrays are
    read-only: every layer built from the same seed and shape shares them.

    Args:
        max_bytes: Most bytes kept.
    """

    def __init__(self, max_bytes):
        self.max_bytes = int(max_bytes)
        self._entries = collections.OrderedDict()
        self._lock = threading.Lock()

    @property
    def nbytes(self):
        """Bytes held now."""
        with self._lock:
            return sum(_nbytes(value) for value in self._entries.values())

    def __len__(self):
        return len(self._entries)

    def __contains__(self, key):
        return key in self._entries

    def clear(self):
        with self._lock:
            self._entries.clear()

    def get(self, key, compute):
        """The cached value of `key`, else `compute()` (a tuple of arrays), cached."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = tuple(compute())
        for array in value:
            array.setflags(write=False)
        size = _nbytes(value)
        with self._lock:
            if size <= self.max_bytes:
                self._entries[key] = value
                held = sum(_nbytes(v) for v in self._entries.values())
                while held > self.max_bytes:
                    _, evicted = self._entries.popitem(last=False)
                    held -= _nbytes(evicted)
        return value


def _nbytes(arrays):
    return sum(array.nbytes for array in arrays)


#: The process-wide cache of the seed bases and the basis form's initial coefficients.
basis_cache = BasisCache(BASIS_CACHE_BYTES)


class CompactWeights:
    """`LCConv2D`'s seed-defined tensors and its `save_own_variables` / `load_own_variables`.

    A mixin of `LCConv2D` (it reads the layer's `kernel_size`, `filters`,
    `spatial_filters`, `seed`, weights, resolved implementation and
    `_channels()`). A subclass
    whose frozen kernel comes from elsewhere (`SharedLCConv2D`'s bank)
    overrides `seed_kernel()` (public: `freeze_spatial` restores it) and
    `seed_kernel_initializer()`.
    """

    def seed_kernel(self, seed_matrix=None):
        """The frozen spatial kernel the seed defines, in the variable dtype.

        `seed_matrix`: that kernel already drawn (a `SeedMatrix`), to skip drawing it again.
        """
        if seed_matrix is None:
            return torch_uniform(self.spatial_kernel.shape, self.seed).astype(self.variable_dtype)
        return seed_matrix.kernel(self.variable_dtype)

    def seed_kernel_initializer(self):
        """The initializer of the spatial kernel: the seed's kernel."""
        return TorchUniform(self.seed, STREAM_SPATIAL)

    def seed_matrix(self, channels):
        """The seed's frozen kernel for `channels` input channels, as a `SeedMatrix`."""
        return SeedMatrix((*self.kernel_size, channels, self.spatial_filters), self.seed)

    def seed_basis(self, channels, seed_matrix=None):
        """`(P, s)` of the seed's kernel (`frozen_basis`), from `basis_cache`.

        Float64 and read-only whatever the layer's dtype (which casts them),
        keyed by `(seed, kernel shape)`. `seed_matrix` (the kernel already
        drawn) is decomposed on a miss instead of drawing it again.
        """

        def compute():
            return frozen_basis(self.seed_matrix(channels) if seed_matrix is None else seed_matrix)

        shape = (*self.kernel_size, channels, self.spatial_filters)
        return basis_cache.get(("basis", self.seed, shape), compute)

    def _basis_from_seed(self, channels):
        """The basis form's initial `(P, A)`: P = U S and A = V^T C0, C0 the seed's combination.

        Both cached: rebuilding the layer draws and decomposes nothing.
        """
        drawn = []

        def compute():
            drawn.append(self.seed_matrix(channels))
            c0 = torch_uniform((self.spatial_filters, self.filters), self.seed, STREAM_COMBINATION)
            return (self._coefficients(channels, c0, drawn[0]),)

        shape = (*self.kernel_size, channels, self.spatial_filters)
        (coefficients,) = basis_cache.get(("initial", self.seed, shape, self.filters), compute)
        basis, _ = self.seed_basis(channels, drawn[0] if drawn else None)
        return basis, coefficients

    def _frozen_svd(self, channels):
        """`(U S, V)` of the seed's frozen kernel (see `frozen_basis`), V formed explicitly."""
        matrix = self.seed_matrix(channels)
        basis, s = self.seed_basis(channels, matrix)
        return basis, matrix.rmatmul(basis * _inverse_square(s))

    def _coefficients(self, channels, combination, seed_matrix):
        """A = V^T C = S^-2 P^T W C (BLAS on one thread, as for the basis)."""
        basis, s = self.seed_basis(channels, seed_matrix)
        with single_threaded_blas():
            return _inverse_square(s)[:, None] * (basis.T @ seed_matrix.matmul(combination))

    def _combination(self, channels, coefficients, seed_matrix):
        """C = V A = W^T P S^-2 A, the minimum-norm C with W C = P A."""
        basis, s = self.seed_basis(channels, seed_matrix)
        with single_threaded_blas():
            return seed_matrix.rmatmul(basis @ (_inverse_square(s)[:, None] * coefficients))

    def _refresh_inference_kernel(self):
        """Keep the basis form's P A, and the A it is computed from, for inference.

        Called on load (see `LCConv2D._basis_kernel`, which reuses it). P A is
        computed by the op `call` runs, `keras.ops.matmul` in the compute
        dtype, so reusing it changes no output bit.
        """
        if not self._reuse_inference_kernel:
            return
        ops = keras.ops
        coefficients = ops.cast(self.basis_coefficients, self.compute_dtype)
        flat = ops.matmul(ops.cast(self.basis, self.compute_dtype), coefficients)
        self._inference_kernel = (ops.convert_to_numpy(flat), ops.convert_to_numpy(coefficients))

    def save_own_variables(self, store):
        """Named entries, compact where the seed defines a tensor.

        The basis form stores A and the seed, never P. The other forms store a
        frozen spatial kernel only when it differs from its seed's kernel
        (someone assigned it); otherwise the seed alone stands for it and
        loading regenerates it bit-exactly.
        """
        if self.resolved_implementation == "basis":
            store["basis_coefficients"] = self.basis_coefficients
        else:
            kernel = np.asarray(keras.ops.convert_to_numpy(self.spatial_kernel))
            if not self.frozen_spatial or not np.array_equal(kernel, self.seed_kernel()):
                store["spatial_kernel"] = kernel
            store["combination"] = self.combination
        store["seed"] = np.asarray(self.seed, dtype=np.int64)
        if self.use_bias:
            store["bias"] = self.bias

    def load_own_variables(self, store):
        """Loads what `save_own_variables` wrote, converting between forms.

        A basis-form layer loads a composed/two_stage file as A = V^T C; a
        composed/two_stage layer loads a basis-form file as C = V A. A spatial
        kernel missing from the file is regenerated from the seed. The seed's
        kernel is drawn at most once.
        """
        keys = set(store.keys())
        if "seed" not in keys:
            raise ValueError(
                f"Layer '{self.name}': the weights file holds {sorted(keys)}, not an "
                "LCConv2D's entries (spatial_kernel/combination or basis_coefficients, and seed)."
            )
        saved_seed = int(np.asarray(store["seed"]))
        is_basis = self.resolved_implementation == "basis"
        needs_seed = is_basis or "spatial_kernel" not in keys
        if needs_seed and saved_seed != self.seed:
            raise ValueError(
                f"Layer '{self.name}' has seed={self.seed} but the weights were saved "
                f"from seed={saved_seed}; the frozen kernel is defined by the seed, so "
                f"build the model with seed={saved_seed} to load them."
            )
        channels = self._channels()
        drawn = []

        def seed_matrix():
            if not drawn:
                drawn.append(self.seed_matrix(channels))
            return drawn[0]

        if is_basis:
            if "basis_coefficients" in keys:
                coefficients = np.asarray(store["basis_coefficients"])
            else:
                if "spatial_kernel" in keys and not np.array_equal(
                    np.asarray(store["spatial_kernel"]), seed_matrix().kernel(self.variable_dtype)
                ):
                    raise ValueError(
                        f"Layer '{self.name}' (basis form) cannot load a spatial kernel that "
                        "differs from its seed's frozen kernel; load it into a 'composed' layer."
                    )
                combination = np.asarray(store["combination"], dtype=np.float64)
                coefficients = self._coefficients(channels, combination, seed_matrix())
            self.basis_coefficients.assign(coefficients.astype(self.variable_dtype))
            self._refresh_inference_kernel()
        else:
            if "basis_coefficients" in keys:
                coefficients = np.asarray(store["basis_coefficients"], dtype=np.float64)
                combination = self._combination(channels, coefficients, seed_matrix())
            else:
                combination = np.asarray(store["combination"])
            if "spatial_kernel" in keys:
                self.spatial_kernel.assign(store["spatial_kernel"])
            else:  # reuses the kernel drawn for C = V A, if it was
                self.spatial_kernel.assign(self.seed_kernel(drawn[0] if drawn else None))
            self.combination.assign(combination.astype(self.variable_dtype))
        if self.use_bias:
            self.bias.assign(store["bias"])


def _inverse_square(s):
    """1 / s^2, and 0 where s = 0 (the pseudo-inverse's convention)."""
    safe = np.where(s > 0, s, 1.0)
    return np.where(s > 0, 1.0 / (safe * safe), 0.0)
