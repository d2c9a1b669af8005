"""`LCConv2D`: a k x k convolution learned as linear combinations of (frozen) random filters."""

import warnings

import keras
from keras import ops

from keras_lc import fold_math
from keras_lc.initializers import STREAM_BIAS, STREAM_COMBINATION, TorchUniform, resolve_seed
from keras_lc.layers.base import FoldableConv2D
from keras_lc.layers.compact_weights import CompactWeights
from keras_lc.validation import check_bool, check_choice, frozen_spatial_alias, positive_int

IMPLEMENTATIONS = ("auto", "two_stage", "composed", "basis")
INTERMEDIATES = (None, "relu", "bn", "bn_relu")


@keras.saving.register_keras_serializable(package="keras_lc")
class LCConv2D(CompactWeights, FoldableConv2D):
    """A k x k convolution as linear combinations of (frozen) random filters.

    The LC-block of Gavrikov & Keuper, "The Power of Linear Combinations:
    Learning with Random Convolutions" (arXiv 2301.11360): a k x k convolution
    with `filters * expansion` filters followed directly by a 1x1 convolution
    to `filters`. The spatial kernel keeps PyTorch's default initialization,
    U[-a, a] with a = 1/sqrt(c_in*k*k), drawn from NumPy's PCG64 generator with
    `seed` (identical on every backend and machine), and is frozen unless
    `frozen_spatial=False`; the 1x1 combination weights always learn.
    Both stages are linear, so the block is one ordinary convolution with
    W[..., o] = sum_j C[j, o] * W_spatial[..., j]: a `FoldableConv2D`, see
    `fold()` and `to_conv2d()`. Frozen kernels are saved as their seed
    (`keras_lc.layers.compact_weights`).

    Implementations (they compute the same function; only cost differs):

    - `"two_stage"`: the paper's form, conv to `filters*expansion` channels,
      then the 1x1 conv. Activation memory and FLOPs grow with `expansion`.
    - `"composed"`: compose W = W_spatial . C (a small matmul independent of
      batch and image size), then one convolution. Same outputs and
      gradients as two_stage.
    - `"basis"`: frozen spatial kernels only. With W_spatial reshaped to
      (k*k*c_in, m) and its thin SVD U S V^T, r = min(k*k*c_in, m), the layer
      keeps P = U S (non-trainable, regenerated from `seed`, never saved;
      computed from the small Gram matrix and cached per seed and shape, see
      `keras_lc.layers.compact_weights`) and trains A = V^T C (r x filters);
      inference reuses the P A computed on load while A is unchanged. Under
      SGD (plain, momentum or Nesterov, coupled or decoupled weight decay)
      training A produces exactly the same sequence of kernels W = P A as
      training C, at a cost and weights-file size that do not grow with
      `expansion`. **With adaptive optimizers (Adam, RMSprop, ...) the
      training path differs** from the other forms, because their
      per-coordinate scaling is not invariant under the change of basis.
    - `"auto"`: `"two_stage"` when `intermediate` is set, otherwise
      `"composed"` unless composing the kernel costs more multiply-adds than
      it saves on a single image (only for tiny inputs).

    Args:
        filters: Number of output channels.
        kernel_size: int or tuple of 2 ints.
        strides: int or tuple of 2 ints.
        padding: `"same"` or `"valid"`.
        dilation_rate: int or tuple of 2 ints; cannot exceed 1 together with
            `strides`.
        expansion: E, the number of spatial filters per output channel.
        frozen_spatial: Keep the spatial kernel at its seeded random values
            (default `True`: the paper's "frozen random" LC); `False` trains
            it too ("learnable LC"). The deprecated `spatial_trainable=`
            (its inverse) is still accepted, with a `DeprecationWarning`.
        use_bias: Add a bias (PyTorch-default initialized) after the 1x1 conv.
        implementation: One of `"auto"`, `"two_stage"`, `"composed"`, `"basis"`.
        intermediate: `None`, `"relu"`, `"bn"` or `"bn_relu"`: the operation
            between the two stages (the paper's Appendix C); forces
            `"two_stage"`. Only `None` and `"bn"` can be folded.
        seed: Non-negative int defining the random kernels. `None` draws one
            from NumPy's global generator (so `keras.utils.set_random_seed`
            makes it reproducible) and stores it in the config.
        **kwargs: Base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Input shape: `(batch, height, width, channels)` (channels_last).
    Output shape: `(batch, new_height, new_width, filters)`.

    Example:

    >>> import numpy as np
    >>> layer = LCConv2D(8, 3, expansion=4, seed=0)
    >>> x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype("float32")
    >>> y = layer(x)
    >>> tuple(y.shape)
    (2, 16, 16, 8)
    >>> conv = layer.to_conv2d()
    >>> bool(np.allclose(conv(x), y, rtol=1e-4, atol=1e-5))
    True
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="same",
        dilation_rate=1,
        expansion=1,
        frozen_spatial=True,
        use_bias=False,
        implementation="auto",
        intermediate=None,
        seed=None,
        **kwargs,
    ):
        frozen_spatial = frozen_spatial_alias(frozen_spatial, kwargs.pop("spatial_trainable", None), "LCConv2D")
        super().__init__(filters, kernel_size, strides, padding, dilation_rate, **kwargs)
        self.expansion = positive_int(expansion, "expansion")
        self.frozen_spatial = frozen_spatial
        self.use_bias = check_bool(use_bias, "use_bias")
        check_choice(implementation, "implementation", IMPLEMENTATIONS)
        check_choice(intermediate, "intermediate", INTERMEDIATES)
        if intermediate is not None and implementation in ("composed", "basis"):
            raise ValueError(
                f"`intermediate={intermediate!r}` puts an operation between the two "
                "stages, so it needs implementation='two_stage' (or 'auto'). "
                f"Received: implementation={implementation!r}"
            )
        if implementation == "basis" and not self.frozen_spatial:
            raise ValueError(
                "implementation='basis' is exact only for frozen spatial kernels. "
                "Received: frozen_spatial=False; use 'composed' or 'two_stage'."
            )
        self.implementation = implementation
        self.intermediate = intermediate
        self.seed = resolve_seed(seed)
        self.intermediate_bn = (
            keras.layers.BatchNormalization(name="intermediate_bn", dtype=self.dtype_policy)
            if intermediate in ("bn", "bn_relu")
            else None
        )
        self._inference_kernel = None  # (P A, A) of the basis form, see `_basis_kernel`

    # ------------------------------------------------------------------ build
    @property
    def spatial_filters(self):
        """m = filters * expansion, the number of spatial filters."""
        return self.filters * self.expansion

    def _choose_implementation(self, input_shape):
        if self.implementation != "auto":
            return self.implementation
        if self.intermediate is not None:
            return "two_stage"
        # Multiply-adds per batch of B: two_stage B*P*(K*m + m*F); composed
        # K*m*F (once) + B*P*K*F, with K = k*k*c_in, P output pixels. Decide
        # for B = 1, the worst case for composed; it only gains with B.
        k_h, k_w = self.kernel_size
        reach = self.spatial_output_shape(input_shape)
        if None in reach:
            return "composed"
        pixels, taps = reach[0] * reach[1], k_h * k_w * int(input_shape[-1])
        m, f = self.spatial_filters, self.filters
        composed = taps * m * f + pixels * taps * f
        return "composed" if composed <= pixels * (taps * m + m * f) else "two_stage"

    def build(self, input_shape):
        channels = self.check_input_shape(input_shape)
        self._resolved_implementation = self._choose_implementation(input_shape)
        k_h, k_w = self.kernel_size
        m = self.spatial_filters
        if self._resolved_implementation == "basis":
            basis, coefficients = self._basis_from_seed(channels)
            self.basis = self.add_weight(
                name="basis",
                shape=basis.shape,
                initializer=keras.initializers.Constant(basis),
                trainable=False,
            )
            self.basis_coefficients = self.add_weight(
                name="basis_coefficients",
                shape=coefficients.shape,
                initializer=keras.initializers.Constant(coefficients),
            )
            # Reuse a composed kernel in inference where composing costs as much
            # as convolving one image or more: r >= output pixels (`_basis_kernel`).
            reach = self.spatial_output_shape(input_shape)
            self._reuse_inference_kernel = None in reach or basis.shape[1] >= reach[0] * reach[1]
        else:
            self.spatial_kernel = self.add_weight(
                name="spatial_kernel",
                shape=(k_h, k_w, channels, m),
                initializer=self.seed_kernel_initializer(),
                trainable=not self.frozen_spatial,
            )
            self.combination = self.add_weight(
                name="combination",
                shape=(m, self.filters),
                initializer=TorchUniform(self.seed, STREAM_COMBINATION),
            )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.filters,),
                initializer=TorchUniform(self.seed, STREAM_BIAS, fan_in=m),
            )
        else:
            self.bias = None
        if self.intermediate_bn is not None:
            self.intermediate_bn.build(
                (input_shape[0],) + self.spatial_output_shape(input_shape) + (m,)
            )

    # ------------------------------------------------------------------ call
    def _conv(self, inputs, kernel):
        return ops.conv(
            inputs,
            kernel,
            strides=self.strides,
            padding=self.padding,
            data_format="channels_last",
            dilation_rate=self.dilation_rate,
        )

    def _composed_kernel(self, training=None):
        k_h, k_w = self.kernel_size
        channels = self._channels()
        if self._resolved_implementation == "basis":
            flat = self._basis_kernel(training)
        else:
            flat = ops.matmul(
                ops.reshape(self.spatial_kernel, (k_h * k_w * channels, self.spatial_filters)),
                self.combination,
            )
        return ops.reshape(flat, (k_h, k_w, channels, self.filters))

    def _basis_kernel(self, training):
        """P A; in inference, the P A computed on load while A is unchanged since.

        Composing P A costs k*k*c_in * r * filters multiply-adds, as much as
        convolving one image or more when r >= the output pixels (small
        feature maps; most layers of E=128 models), so there, with
        `training=False` (what `predict` passes), the layer reuses the P A
        `_refresh_inference_kernel` computed on load. It compares A with the A
        that P A was computed from and computes it again if they differ (after
        training or an `assign`; P is the seed's, never assigned), so outputs
        are those of P A; the gradient is P^T dL/dW on both branches (a custom
        gradient, as the reused branch has none): fine-tuning with
        `training=False` is exact.
        """
        if training is not False or self._inference_kernel is None:
            return ops.matmul(self.basis, self.basis_coefficients)
        cached, composed_from = self._inference_kernel
        # Tensors, not variables: tf.custom_gradient refuses variables read inside.
        basis = ops.copy(self.basis)

        @ops.custom_gradient
        def compose(coefficients):
            unchanged = ops.all(ops.equal(coefficients, composed_from))
            flat = ops.cond(unchanged, lambda: ops.convert_to_tensor(cached),
                            lambda: ops.matmul(basis, coefficients))

            def grad(*args, upstream=None):
                upstream = args[0] if upstream is None else upstream
                return ops.matmul(ops.transpose(basis), upstream)

            return flat, grad

        return compose(ops.copy(self.basis_coefficients))

    def call(self, inputs, training=None):
        if self._resolved_implementation == "two_stage":
            hidden = self._conv(inputs, self.spatial_kernel)
            if self.intermediate_bn is not None:
                hidden = self.intermediate_bn(hidden, training=training)
            if self.intermediate in ("relu", "bn_relu"):
                hidden = ops.relu(hidden)
            outputs = ops.matmul(hidden, self.combination)
        else:
            outputs = self._conv(inputs, self._composed_kernel(training))
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        return outputs

    # ------------------------------------------------------------------ fold
    @property
    def resolved_implementation(self):
        """The implementation in use after build (`"auto"` resolved)."""
        self.require_built()
        return self._resolved_implementation

    def fold(self):
        """The single Conv2D kernel and bias equivalent to this block.

        BatchNormalization between the stages (`intermediate="bn"`) is folded
        with its moving statistics (inference mode).

        Returns:
            `(kernel, bias)`: NumPy arrays in the layer's variable dtype,
            kernel `(kh, kw, c_in, filters)`; `bias` is `None` when the block
            has neither a bias nor an intermediate BatchNormalization.

        Raises:
            ValueError: for `intermediate="relu"`/`"bn_relu"`: a ReLU between
                the stages is not linear, so no single convolution equals it.
        """
        self.require_built()
        if self.intermediate in ("relu", "bn_relu"):
            raise ValueError(
                f"Layer '{self.name}' has intermediate={self.intermediate!r}: a ReLU "
                "between the spatial and 1x1 stages is not linear, so the block "
                "cannot be folded into one convolution. Only intermediate=None or "
                "'bn' fold exactly."
            )
        to64 = fold_math.to_numpy64
        bias = to64(self.bias) if self.use_bias else None
        if self._resolved_implementation == "basis":
            k_h, k_w = self.kernel_size
            flat = to64(self.basis) @ to64(self.basis_coefficients)
            kernel = flat.reshape(k_h, k_w, -1, self.filters)
        else:
            spatial = to64(self.spatial_kernel)
            combination = to64(self.combination)
            if self.intermediate_bn is not None:
                scale, shift = fold_math.batchnorm_layer_scale_shift(self.intermediate_bn)
                spatial, spatial_bias = fold_math.fold_batchnorm(spatial, None, scale, shift)
                bn_bias = spatial_bias @ combination
                bias = bn_bias if bias is None else bias + bn_bias
            kernel = fold_math.compose_kernels(spatial, combination)
        dtype = self.variable_dtype
        return kernel.astype(dtype), None if bias is None else bias.astype(dtype)

    def to_composed(self):
        """An equivalent built `implementation="composed"` layer (basis form only).

        Its spatial kernel is the seed's frozen kernel and its combination
        weights are C = V A, the minimum-norm C with W_spatial C = P A.
        """
        if self.resolved_implementation != "basis":
            raise ValueError(
                f"to_composed() converts a basis-form layer; layer '{self.name}' "
                f"uses implementation={self._resolved_implementation!r}."
            )
        config = self.get_config()
        config["implementation"] = "composed"
        layer = LCConv2D.from_config(config)
        channels = self._channels()
        layer.build((None, None, None, channels))
        coefficients = fold_math.to_numpy64(self.basis_coefficients)
        combination = self._combination(channels, coefficients, self.seed_matrix(channels))
        layer.combination.assign(combination.astype(self.variable_dtype))
        if self.use_bias:
            layer.bias.assign(self.bias)
        return layer

    def _channels(self):
        k_h, k_w = self.kernel_size
        if self._resolved_implementation == "basis":
            return self.basis.shape[0] // (k_h * k_w)
        return self.spatial_kernel.shape[2]

    @property
    def spatial_trainable(self):
        """Deprecated inverse of `frozen_spatial` (read-only)."""
        warnings.warn("LCConv2D.spatial_trainable is deprecated; read `not layer.frozen_spatial`.",
                      DeprecationWarning, stacklevel=2)
        return not self.frozen_spatial

    # ---------------------------------------------------------------- config
    @classmethod
    def from_config(cls, config):
        """Also reads configs saved by version 0.1.0 (`spatial_trainable`, without a warning)."""
        config = dict(config)
        if "spatial_trainable" in config and "frozen_spatial" not in config:
            config["frozen_spatial"] = not config.pop("spatial_trainable")
        return super().from_config(config)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "expansion": self.expansion,
                "frozen_spatial": self.frozen_spatial,
                "use_bias": self.use_bias,
                "implementation": self.implementation,
                "intermediate": self.intermediate,
                "seed": self.seed,
            }
        )
        return config
