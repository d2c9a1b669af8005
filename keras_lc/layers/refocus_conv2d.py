"""`RefocusConv2D`: a frozen trained kernel refocused by a small learned convolution (RefConv)."""

import keras
import numpy as np
from keras import ops

from keras_lc import fold_math
from keras_lc.layers.base import FoldableConv2D
from keras_lc.validation import check_bool, pair, positive_int


def refocus_numpy(basis, refocus, dense):
    """W_t = W_b + map(W_b) in float64 NumPy (the transform `RefocusConv2D` computes).

    The k x k basis kernels are the channels of one k x k "image"
    (`basis.reshape(kh, kw, N)`); the map is a stride-1 cross-correlation
    with zero padding r // 2 over them: dense (`refocus` of shape
    `(rh, rw, N, N)`) or one map per kernel (`refocus` of shape
    `(rh, rw) + basis.shape[2:]`).
    """
    basis = np.asarray(basis, dtype=np.float64)
    refocus = np.asarray(refocus, dtype=np.float64)
    k_h, k_w = basis.shape[:2]
    r_h, r_w = refocus.shape[:2]
    images = np.pad(basis.reshape(k_h, k_w, -1), ((r_h // 2,) * 2, (r_w // 2,) * 2, (0, 0)))
    maps = refocus.reshape(r_h, r_w, *(refocus.shape[2:] if dense else (-1,)))
    out = np.zeros((k_h, k_w, images.shape[-1]))
    for i in range(r_h):
        for j in range(r_w):
            patch = images[i : i + k_h, j : j + k_w]
            out += patch @ maps[i, j] if dense else patch * maps[i, j]
    return basis + out.reshape(basis.shape)


@keras.saving.register_keras_serializable(package="keras_lc")
class RefocusConv2D(FoldableConv2D):
    """A convolution whose kernel is a frozen basis refocused by a learned map (RefConv).

    Re-parameterized refocusing (Cai et al., "RefConv: Re-parameterized
    Refocusing Convolution for Powerful ConvNets"): the kernel W_b of a
    trained convolution is kept frozen as a basis and a small convolution W_r
    *over the kernels themselves* is learned,

        W_t = W_b + map(W_b; W_r),

    then the layer convolves its input with W_t. View W_b as a stack of N
    two-dimensional kh x kw kernels (the channels of one kh x kw "image");
    the map is a stride-1 `rh x rw` cross-correlation over that image with
    zero padding r // 2, so W_t has W_b's shape:

    - ordinary convolution (`depthwise=False`, kernel `(kh, kw, c_in/groups,
      filters)`, N = c_in/groups * filters): each 2-D kernel is refocused by
      its own map (fully grouped, as the authors' `groups = N` map);
      `refocus_kernel` has shape `(rh, rw, c_in/groups, filters)`, the map of
      `basis_kernel[:, :, i, o]` being `refocus_kernel[:, :, i, o]`.
    - depthwise convolution (`depthwise=True`, kernel `(kh, kw, C,
      depth_multiplier)`, N = C * depth_multiplier): the map is a dense
      N -> N convolution mixing all N depthwise kernels (for
      `depth_multiplier=1` the authors' `groups = 1` map over C kernels;
      for `depth_multiplier > 1` all C * m kernels are mixed densely).
      `refocus_kernel` has shape `(rh, rw, N, N)` (Keras conv layout), kernel
      n being `basis_kernel[:, :, n // m, n % m]`.

    `basis_kernel` is not trainable; `refocus_kernel` and the bias are. With
    `zero_init=True` (the default) W_r starts at zero, so W_t == W_b exactly
    and a layer loaded with a trained kernel (see `keras_lc.refocus`) starts
    as exactly the trained convolution. `fold()` returns W_t (computed in
    float64) and the bias, i.e. the plain `Conv2D`/`DepthwiseConv2D` it folds
    into (`folded_layer_class`, `conv2d_config`, built by `to_conv2d()`): a
    `FoldableConv2D`, which `keras_lc.fold` folds.

    The map may not be larger than the kernel on either axis (as in the
    authors' code, `map_k <= kernel_size`): taps beyond the kernel would only
    ever meet zero padding. A 1x1 kernel therefore takes
    `refocus_kernel_size=1` (a scalar per kernel; for a depthwise layer a
    dense mixing of the per-channel scales).

    Args:
        filters: Output channels of an ordinary convolution; must be `None`
            when `depthwise=True` (the output has `C * depth_multiplier`).
        kernel_size: int or tuple of 2 ints.
        strides: int or tuple of 2 ints.
        padding: `"same"` or `"valid"`.
        dilation_rate: int or tuple of 2 ints; cannot exceed 1 together with
            `strides`.
        groups: Groups of an ordinary convolution (`filters` and the input
            channels must be divisible by it); 1 when `depthwise`.
        depthwise: Refocus a `DepthwiseConv2D` kernel (dense map) instead of
            a `Conv2D` kernel (per-kernel maps).
        depth_multiplier: Depthwise channel multiplier (1 unless `depthwise`).
        use_bias: Add a (trainable) bias.
        refocus_kernel_size: Odd positive int or tuple of 2 odd ints, the
            map's size (the authors use 3); at most the kernel size per axis.
        zero_init: Initialize W_r to zero (the layer starts exactly as its
            basis convolution). `False`: PyTorch's default for the map,
            U[-a, a] with a = 1 / sqrt(fan_in), fan_in = rh * rw for the
            per-kernel maps and rh * rw * N for the dense map.
        basis_initializer: Initializer of W_b (for a layer built from
            scratch; `keras_lc.refocus` assigns the trained kernel).
        bias_initializer: Initializer of the bias.
        **kwargs: Base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Input shape: `(batch, height, width, channels)` (channels_last).
    Output shape: `(batch, new_height, new_width, filters)`
    (`channels * depth_multiplier` when depthwise).

    Example:

    >>> import numpy as np
    >>> layer = RefocusConv2D(8, 3, use_bias=False, zero_init=False)
    >>> x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype("float32")
    >>> y = layer(x)
    >>> tuple(y.shape), tuple(layer.refocus_kernel.shape)
    ((2, 16, 16, 8), (3, 3, 3, 8))
    >>> [w.name for w in layer.trainable_weights]
    ['refocus_kernel']
    >>> kernel, bias = layer.fold()
    >>> conv = layer.folded_layer_class(**layer.conv2d_config(use_bias=False))
    >>> conv.build(x.shape)
    >>> conv.set_weights([kernel])
    >>> bool(np.allclose(conv(x), y, rtol=1e-4, atol=1e-5))
    True
    >>> dw = RefocusConv2D(None, 3, depthwise=True)  # W_r = 0: exactly its basis
    >>> bool(np.array_equal(dw(x), keras.ops.depthwise_conv(x, dw.basis_kernel, padding="same") + dw.bias))
    True
    """

    filters_optional = True  # depthwise: the output channels follow the input's

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="same",
        dilation_rate=1,
        groups=1,
        depthwise=False,
        depth_multiplier=1,
        use_bias=True,
        refocus_kernel_size=3,
        zero_init=True,
        basis_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        depthwise = check_bool(depthwise, "depthwise")
        if depthwise and filters is not None:
            raise ValueError(
                "A depthwise RefocusConv2D has channels * depth_multiplier outputs; pass "
                f"filters=None. Received: filters={filters!r}"
            )
        if not depthwise:  # a depthwise layer's filters is None (`filters_optional`)
            positive_int(filters, "filters")
        super().__init__(filters, kernel_size, strides, padding, dilation_rate, **kwargs)
        self.depthwise = depthwise
        self.groups = positive_int(groups, "groups")
        if self.depthwise and self.groups != 1:
            raise ValueError(f"A depthwise RefocusConv2D takes groups=1. Received: groups={groups!r}")
        if not self.depthwise and self.filters % self.groups:
            raise ValueError(
                f"`filters` must be divisible by `groups`. Received: filters={filters!r}, groups={groups!r}"
            )
        self.depth_multiplier = positive_int(depth_multiplier, "depth_multiplier")
        if not self.depthwise and self.depth_multiplier != 1:
            raise ValueError(
                "`depth_multiplier` applies to depthwise=True only. "
                f"Received: depth_multiplier={depth_multiplier!r} with depthwise=False"
            )
        self.use_bias = check_bool(use_bias, "use_bias")
        refocus_size = pair(refocus_kernel_size, "refocus_kernel_size")
        if any(r % 2 == 0 for r in refocus_size) or any(
            r > k for r, k in zip(refocus_size, self.kernel_size)
        ):
            raise ValueError(
                "`refocus_kernel_size` must be odd (a centred 'same' map) and at most the kernel "
                f"size {self.kernel_size} on each axis. Received: refocus_kernel_size={refocus_kernel_size!r}"
            )
        self.refocus_kernel_size = refocus_size
        self.zero_init = check_bool(zero_init, "zero_init")
        self.basis_initializer = keras.initializers.get(basis_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    # ------------------------------------------------------------------ build
    def build(self, input_shape):
        channels = self.check_input_shape(input_shape)
        if channels % self.groups:
            raise ValueError(
                f"Layer '{self.name}': the input channels must be divisible by groups={self.groups}. "
                f"Received: input_shape={input_shape}"
            )
        k_h, k_w = self.kernel_size
        r_h, r_w = self.refocus_kernel_size
        if self.depthwise:
            basis_shape = (k_h, k_w, channels, self.depth_multiplier)
            kernels = outputs = channels * self.depth_multiplier
            refocus_shape = (r_h, r_w, kernels, kernels)
            fan_in = r_h * r_w * kernels
        else:
            basis_shape = (k_h, k_w, channels // self.groups, self.filters)
            refocus_shape = (r_h, r_w) + basis_shape[2:]
            outputs = self.filters
            fan_in = r_h * r_w
        self.basis_kernel = self.add_weight(
            name="basis_kernel", shape=basis_shape, initializer=self.basis_initializer, trainable=False
        )
        bound = 1.0 / np.sqrt(fan_in)
        self.refocus_kernel = self.add_weight(
            name="refocus_kernel",
            shape=refocus_shape,
            initializer="zeros" if self.zero_init else keras.initializers.RandomUniform(-bound, bound),
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(outputs,), initializer=self.bias_initializer)

    # ------------------------------------------------------------------ call
    def transformed_kernel(self):
        """W_t = W_b + map(W_b), with `keras.ops` (the kernel `call` convolves with)."""
        k_h, k_w = self.kernel_size
        images = ops.reshape(self.basis_kernel, (1, k_h, k_w, -1))
        if self.depthwise:
            refocused = ops.conv(images, self.refocus_kernel, padding="same")
        else:
            r_h, r_w = self.refocus_kernel_size
            maps = ops.reshape(self.refocus_kernel, (r_h, r_w, -1, 1))
            refocused = ops.depthwise_conv(images, maps, padding="same")
        return ops.add(self.basis_kernel, ops.reshape(refocused, self.basis_kernel.shape))

    def call(self, inputs):
        kernel = self.transformed_kernel()
        arguments = dict(
            strides=self.strides,
            padding=self.padding,
            data_format="channels_last",
            dilation_rate=self.dilation_rate,
        )
        if self.depthwise:
            outputs = ops.depthwise_conv(inputs, kernel, **arguments)
        else:
            outputs = ops.conv(inputs, kernel, **arguments)
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        return outputs

    def output_channels(self, input_channels):
        """`filters`, or `input_channels * depth_multiplier` when depthwise (`None` if unknown)."""
        if not self.depthwise:
            return self.filters
        return None if input_channels is None else input_channels * self.depth_multiplier

    # ------------------------------------------------------------------ fold
    def fold(self):
        """The plain convolution's kernel W_t (computed in float64) and bias.

        Returns:
            `(kernel, bias)`: NumPy arrays in the layer's variable dtype, the
            kernel in `basis_kernel`'s layout; `bias` is `None` without a bias.
        """
        self.require_built()
        kernel = refocus_numpy(
            fold_math.to_numpy64(self.basis_kernel),
            fold_math.to_numpy64(self.refocus_kernel),
            dense=self.depthwise,
        )
        dtype = self.variable_dtype
        bias = fold_math.to_numpy64(self.bias).astype(dtype) if self.use_bias else None
        return kernel.astype(dtype), bias

    @property
    def folded_layer_class(self):
        """The stock layer this one folds into: `DepthwiseConv2D` or `Conv2D`."""
        return keras.layers.DepthwiseConv2D if self.depthwise else keras.layers.Conv2D

    def conv2d_config(self, use_bias, name=None):
        """Constructor arguments of `folded_layer_class`, the layer this one folds into."""
        config = super().conv2d_config(use_bias, name)
        if self.depthwise:
            config["depth_multiplier"] = self.depth_multiplier
        else:
            config["groups"] = self.groups
        return config

    # ---------------------------------------------------------------- config
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "groups": self.groups,
                "depthwise": self.depthwise,
                "depth_multiplier": self.depth_multiplier,
                "use_bias": self.use_bias,
                "refocus_kernel_size": self.refocus_kernel_size,
                "zero_init": self.zero_init,
                "basis_initializer": keras.initializers.serialize(self.basis_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
