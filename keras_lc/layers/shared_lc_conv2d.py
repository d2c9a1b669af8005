"""`SharedLCConv2D`: an LC-block whose frozen spatial filters are a slice of a shared bank."""

import functools

import keras
import numpy as np

from keras_lc.initializers import STREAM_SPATIAL, torch_uniform
from keras_lc.layers.lc_conv2d import LCConv2D
from keras_lc.validation import check_seed, frozen_spatial_alias, positive_int


@functools.lru_cache(maxsize=4)
def spatial_bank(seed, shape):
    """The shared bank: U[-1, 1] of Keras shape `(kh, kw, channels, filters)`, float64.

    Drawn like `torch_uniform` (PyTorch weight layout, so a layer's slice of
    the first `m` filters does not depend on how many the bank holds).
    Cached and read-only: every layer of one model reads the same array.
    """
    bank = torch_uniform(shape, seed, STREAM_SPATIAL, fan_in=1)
    bank.setflags(write=False)
    return bank


@keras.saving.register_keras_serializable(package="keras_lc")
class SharedLCConv2D(LCConv2D):
    """An `LCConv2D` whose frozen spatial kernel is a slice of a shared random bank.

    All layers built with the same `bank_seed`, `bank_channels` and
    `bank_filters` read their spatial kernels from one random tensor
    B ~ U[-1, 1] of shape `(kh, kw, bank_channels, bank_filters)` (the weight
    sharing of the paper's first version): a layer with c_in input channels
    and m = filters * expansion spatial filters uses
    B[:, :, :c_in, :m] / sqrt(c_in * kh * kw), which keeps PyTorch's default
    distribution U[-a, a], a = 1/sqrt(c_in * kh * kw). The spatial kernel is
    always frozen and, like `LCConv2D`'s seeded kernels, regenerated from
    `bank_seed` on load rather than stored. The combination
    weights are initialized from `seed` as in `LCConv2D`; `fold()` and
    `to_conv2d()` work as there.

    Args:
        filters, kernel_size, strides, padding, dilation_rate, expansion,
        use_bias, intermediate, seed: As in `LCConv2D`.
        bank_seed: Non-negative int defining the shared bank.
        bank_channels: Input channels the bank holds (>= every layer's c_in).
        bank_filters: Spatial filters the bank holds (>= every layer's
            `filters * expansion`).
        implementation: `"auto"`, `"two_stage"` or `"composed"`.
        frozen_spatial: Must be `True` (the default): the bank is frozen.
        **kwargs: Base `keras.layers.Layer` arguments.

    Example:

    >>> import numpy as np
    >>> a = SharedLCConv2D(4, 3, expansion=2, bank_seed=0, bank_channels=8, bank_filters=16, seed=1)
    >>> b = SharedLCConv2D(8, 3, expansion=2, bank_seed=0, bank_channels=8, bank_filters=16, seed=2)
    >>> x = np.ones((1, 6, 6, 4), "float32")
    >>> tuple(b(a(x)).shape)
    (1, 6, 6, 8)
    >>> ka = np.asarray(a.spatial_kernel) * np.sqrt(4 * 9)
    >>> kb = np.asarray(b.spatial_kernel)[:, :, :4, :8] * np.sqrt(4 * 9)
    >>> bool(np.allclose(ka, kb))
    True
    """

    def __init__(
        self,
        filters,
        kernel_size,
        bank_seed,
        bank_channels,
        bank_filters,
        implementation="auto",
        frozen_spatial=True,
        **kwargs,
    ):
        frozen_spatial = frozen_spatial_alias(frozen_spatial, kwargs.pop("spatial_trainable", None),
                                              "SharedLCConv2D")
        if not frozen_spatial:
            raise ValueError(
                "SharedLCConv2D's spatial kernels are a frozen shared bank. "
                f"Received: frozen_spatial={frozen_spatial!r}"
            )
        if implementation == "basis":
            raise ValueError(
                "SharedLCConv2D supports implementation 'auto', 'two_stage' or "
                f"'composed'. Received: implementation={implementation!r}"
            )
        super().__init__(filters, kernel_size, implementation=implementation, **kwargs)
        self.bank_seed = check_seed(bank_seed)
        self.bank_channels = positive_int(bank_channels, "bank_channels")
        self.bank_filters = positive_int(bank_filters, "bank_filters")

    @property
    def bank_shape(self):
        return (*self.kernel_size, self.bank_channels, self.bank_filters)

    def bank_slice(self, channels):
        """This layer's spatial kernel (float64), scaled to PyTorch's bounds."""
        k_h, k_w = self.kernel_size
        bank = spatial_bank(self.bank_seed, self.bank_shape)
        return bank[:, :, :channels, : self.spatial_filters] / np.sqrt(channels * k_h * k_w)

    def seed_kernel(self, seed_matrix=None):
        """The frozen spatial kernel the bank defines (the save/load hook of `CompactWeights`).

        `seed_matrix` is ignored: the kernel is the bank's, not the seed's.
        """
        return self.bank_slice(self.spatial_kernel.shape[2]).astype(self.variable_dtype)

    def seed_kernel_initializer(self):
        """The bank slice as the spatial kernel's initializer (the seed's kernel is never drawn)."""

        def initializer(shape, dtype=None):
            return self.bank_slice(shape[2]).astype(keras.backend.standardize_dtype(dtype))

        return initializer

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is not None and (
            channels > self.bank_channels or self.spatial_filters > self.bank_filters
        ):
            raise ValueError(
                f"Layer '{self.name}' needs a (c_in={channels}, m={self.spatial_filters}) "
                f"slice of a bank of {self.bank_channels} channels and {self.bank_filters} "
                f"filters. Received: input_shape={input_shape}; build the bank larger."
            )
        super().build(input_shape)

    def save_own_variables(self, store):
        """`LCConv2D`'s entries (the bank slice is not stored) and the bank seed."""
        super().save_own_variables(store)
        store["bank_seed"] = np.asarray(self.bank_seed, dtype=np.int64)

    def load_own_variables(self, store):
        saved = int(np.asarray(store["bank_seed"])) if "bank_seed" in store.keys() else None
        if saved != self.bank_seed:
            raise ValueError(
                f"Layer '{self.name}' has bank_seed={self.bank_seed} but the weights "
                f"were saved with bank_seed={saved}; build it with the saved bank_seed."
            )
        super().load_own_variables(store)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "bank_seed": self.bank_seed,
                "bank_channels": self.bank_channels,
                "bank_filters": self.bank_filters,
            }
        )
        return config
