"""Compact weights of `LCConv2D`: frozen kernels stored as their seed, not as tensors.

A frozen spatial kernel equal to the one its seed defines is saved as the seed
alone and regenerated bit-exactly on load, so `.weights.h5`, `.keras` files and
training checkpoints hold only what was learned; the basis form's P (the SVD of
that kernel) is never saved either. Loading converts between the basis form
(A) and the composed / two_stage forms (C), through the same SVD.
"""

import keras
import numpy as np

from keras_lc.initializers import STREAM_COMBINATION, STREAM_SPATIAL, torch_uniform


def frozen_svd(matrix):
    """Thin SVD `(U S, V)` of a `(k*k*c_in, m)` kernel matrix, with a fixed sign convention.

    The largest-magnitude entry of each column of U is made positive, so the
    basis does not depend on the LAPACK build's sign choices.
    """
    u, s, vt = np.linalg.svd(matrix, full_matrices=False)
    signs = np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(u.shape[1])])
    signs[signs == 0] = 1.0
    return u * s * signs, vt.T * signs


class CompactWeights:
    """`LCConv2D`'s seed-defined tensors and its `save_own_variables` / `load_own_variables`.

    A mixin of `LCConv2D` (it reads the layer's `kernel_size`, `filters`,
    `spatial_filters`, `seed`, weights, resolved implementation and
    `_channels()`). A subclass
    whose frozen kernel comes from elsewhere (`SharedLCConv2D`'s bank)
    overrides `seed_kernel()` (public: `freeze_spatial` restores it).
    """

    def seed_kernel(self):
        """The frozen spatial kernel the seed defines, in the variable dtype."""
        return torch_uniform(self.spatial_kernel.shape, self.seed).astype(self.variable_dtype)

    def _spatial_matrix(self, channels):
        """The seed's frozen kernel as a (k*k*c_in, m) float64 matrix."""
        k_h, k_w = self.kernel_size
        shape = (k_h, k_w, channels, self.spatial_filters)
        return torch_uniform(shape, self.seed, STREAM_SPATIAL).reshape(-1, shape[-1])

    def _frozen_svd(self, channels):
        """Thin SVD (U S, V) of the seed's frozen kernel (see `frozen_svd`)."""
        return frozen_svd(self._spatial_matrix(channels))

    def _basis_from_seed(self, channels):
        """The basis form's initial `(P, A)`: P = U S and A = V^T C0, C0 the seed's combination."""
        basis, v = self._frozen_svd(channels)
        c0 = torch_uniform((self.spatial_filters, self.filters), self.seed, STREAM_COMBINATION)
        return basis, v.T @ c0

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
        kernel missing from the file is regenerated from the seed.
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
        if is_basis:
            if "basis_coefficients" in keys:
                coefficients = np.asarray(store["basis_coefficients"])
            else:
                if "spatial_kernel" in keys and not np.array_equal(
                    np.asarray(store["spatial_kernel"]),
                    torch_uniform(np.shape(store["spatial_kernel"]), self.seed).astype(self.variable_dtype),
                ):
                    raise ValueError(
                        f"Layer '{self.name}' (basis form) cannot load a spatial kernel that "
                        "differs from its seed's frozen kernel; load it into a 'composed' layer."
                    )
                _, v = self._frozen_svd(channels)
                coefficients = v.T @ np.asarray(store["combination"], dtype=np.float64)
            self.basis_coefficients.assign(coefficients.astype(self.variable_dtype))
        else:
            if "spatial_kernel" in keys:
                self.spatial_kernel.assign(store["spatial_kernel"])
            else:
                self.spatial_kernel.assign(self.seed_kernel())
            if "basis_coefficients" in keys:
                _, v = self._frozen_svd(channels)
                combination = v @ np.asarray(store["basis_coefficients"], dtype=np.float64)
            else:
                combination = np.asarray(store["combination"])
            self.combination.assign(combination.astype(self.variable_dtype))
        if self.use_bias:
            self.bias.assign(store["bias"])
