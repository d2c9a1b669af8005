"""`FoldableConv2D`: the base of every keras_lc layer that folds into one stock convolution."""

import keras

from keras_lc.validation import conv_geometry, conv_output_length, positive_int


class FoldableConv2D(keras.layers.Layer):
    """Base of the layers that compute one stock Keras convolution in another form.

    `LCConv2D`, `SharedLCConv2D` and `RefocusConv2D` train a convolution
    through some other parameterization, but in inference mode each equals
    one `keras.layers.Conv2D` (or `DepthwiseConv2D`). This base owns what they
    share, as `keras.layers.Conv2D`'s base owns it for Keras' convolutions:
    the geometry (`filters`, `kernel_size`, `strides`, `padding`,
    `dilation_rate`, validated with `keras_lc.validation`), the input spec
    (4-D, channels_last; the channels fixed by `check_input_shape`),
    `compute_output_shape`, the geometry's part of `get_config`, and the fold
    protocol that `keras_lc.fold(model)` relies on (it folds every
    `FoldableConv2D` it meets, and refuses other non-stock layers):

    - `fold()` -> `(kernel, bias or None)`: NumPy arrays in the variable dtype,
      in the layout of `folded_layer_class` (`(kh, kw, c_in / groups,
      filters)` for `Conv2D`, `(kh, kw, channels, multiplier)` for
      `DepthwiseConv2D`). The one method a subclass must write.
    - `folded_layer_class`: the stock layer it folds into, `Conv2D` unless
      overridden (a property may choose per instance).
    - `conv2d_config(use_bias, name=None)`: that layer's constructor
      arguments; extend it for arguments beyond the geometry (`groups`,
      `depth_multiplier`).
    - `to_conv2d(name=None)` and `build_folded_layer(kernel, bias)`: the built
      stock layer carrying `fold()`'s (or any given) kernel and bias.

    To write a new foldable layer: pass the geometry to
    `super().__init__`, call `check_input_shape(input_shape)` first in
    `build` (it returns the input channels), create the variables, and
    implement `call`, `fold()` and `get_config()` (extending this one's).
    Override `output_channels` when the output channels are not `filters`
    (set `filters_optional = True` to accept `filters=None` then).

    Args:
        filters: Output channels, a positive int (`None` only where the
            subclass sets `filters_optional`).
        kernel_size: int or tuple of 2 ints.
        strides: int or tuple of 2 ints.
        padding: `"same"` or `"valid"` (any case).
        dilation_rate: int or tuple of 2 ints; cannot exceed 1 together with
            `strides`.
        **kwargs: Base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example: a convolution whose kernel is a learned scale times a fixed one
    (folds into a `Conv2D` carrying the product).

    >>> import keras, numpy as np
    >>> class ScaledConv2D(FoldableConv2D):
    ...     def build(self, input_shape):
    ...         channels = self.check_input_shape(input_shape)
    ...         shape = self.kernel_size + (channels, self.filters)
    ...         self.fixed = self.add_weight(name="fixed", shape=shape, trainable=False)
    ...         self.scale = self.add_weight(name="scale", shape=(), initializer="ones")
    ...     def call(self, inputs):
    ...         return keras.ops.conv(inputs, self.fixed * self.scale, strides=self.strides,
    ...                               padding=self.padding, dilation_rate=self.dilation_rate)
    ...     def fold(self):
    ...         self.require_built()
    ...         kernel = np.asarray(self.fixed) * np.asarray(self.scale)
    ...         return kernel.astype(self.variable_dtype), None
    >>> layer = ScaledConv2D(4, 3, strides=2)
    >>> x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    >>> y = layer(x)
    >>> tuple(y.shape), layer.compute_output_shape(x.shape)
    ((2, 4, 4, 4), (2, 4, 4, 4))
    >>> conv = layer.to_conv2d()
    >>> type(conv).__name__, conv.strides
    ('Conv2D', (2, 2))
    >>> bool(np.allclose(conv(x), y, rtol=1e-5, atol=1e-6))
    True
    >>> FoldableConv2D(4, 3).fold()
    Traceback (most recent call last):
    ...
    NotImplementedError: FoldableConv2D does not implement fold(): a FoldableConv2D subclass must return the (kernel, bias) of the folded_layer_class it equals.
    """

    #: The stock Keras layer this one folds into (a subclass may use a property).
    folded_layer_class = keras.layers.Conv2D

    #: Whether `filters=None` is accepted (output channels set by the input, see `output_channels`).
    filters_optional = False

    def __init__(self, filters, kernel_size, strides=1, padding="same", dilation_rate=1, **kwargs):
        super().__init__(**kwargs)
        if filters is None and self.filters_optional:
            self.filters = None
        else:
            self.filters = positive_int(filters, "filters")
        self.kernel_size, self.strides, self.padding, self.dilation_rate = conv_geometry(
            kernel_size, strides, padding, dilation_rate
        )
        self.input_spec = keras.layers.InputSpec(ndim=4)

    # ------------------------------------------------------------ geometry
    def check_input_shape(self, input_shape):
        """The input channels of `input_shape`, validated; fixes them in the input spec.

        Call it first in `build`. Raises `ValueError` for undefined channels or,
        with `padding="valid"`, a (dilated) kernel larger than the input.
        """
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                f"The channel dimension of the inputs to {type(self).__name__} must be defined. "
                f"Received: input_shape={input_shape}"
            )
        channels = int(channels)
        if self.padding == "valid":
            for axis, (n, k, d) in enumerate(zip(input_shape[1:3], self.kernel_size, self.dilation_rate)):
                reach = (k - 1) * d + 1
                if n is not None and reach > n:
                    raise ValueError(
                        f"With padding='valid' the (dilated) kernel must fit in the input: "
                        f"kernel extent {reach} > input size {n} on spatial axis {axis}. "
                        f"Received: kernel_size={self.kernel_size}, dilation_rate="
                        f"{self.dilation_rate}, input_shape={input_shape}. "
                        "Use padding='same' or a smaller kernel."
                    )
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: channels})
        return channels

    def spatial_output_shape(self, input_shape):
        """`(height, width)` of the output for `input_shape` (`None` stays `None`)."""
        return tuple(
            conv_output_length(n, k, s, self.padding, d)
            for n, k, s, d in zip(input_shape[1:3], self.kernel_size, self.strides, self.dilation_rate)
        )

    def output_channels(self, input_channels):
        """Output channels for `input_channels` (`None` if unknown): `filters` here."""
        return self.filters

    def compute_output_shape(self, input_shape):
        return (
            (input_shape[0],)
            + self.spatial_output_shape(input_shape)
            + (self.output_channels(input_shape[-1]),)
        )

    # ---------------------------------------------------------------- fold
    def require_built(self):
        """A `ValueError` naming the layer unless it is built (its weights exist)."""
        if not self.built:
            raise ValueError(f"Layer '{self.name}' is not built yet: call it on an input first.")

    def fold(self):
        """`(kernel, bias or None)` of the `folded_layer_class` layer equal to this one.

        NumPy arrays in the layer's variable dtype, the kernel in that stock
        layer's layout; every subclass implements it.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not implement fold(): a FoldableConv2D subclass must "
            "return the (kernel, bias) of the folded_layer_class it equals."
        )

    def conv2d_config(self, use_bias, name=None):
        """Constructor arguments of `folded_layer_class`, the layer this one folds into."""
        config = dict(
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            use_bias=use_bias,
            name=name or self.name,
            dtype=self.dtype_policy,
        )
        if not issubclass(self.folded_layer_class, keras.layers.DepthwiseConv2D):
            config["filters"] = self.filters
        return config

    def build_folded_layer(self, kernel, bias, name=None):
        """A built `folded_layer_class` layer with this geometry carrying `kernel` and `bias`.

        `kernel` and `bias` (or `None`) are in `fold()`'s layout, e.g. `fold()`'s
        own or with a following BatchNormalization folded in.
        """
        layer = self.folded_layer_class(**self.conv2d_config(bias is not None, name))
        return build_with_weights(layer, kernel, bias, self.variable_dtype)

    def to_conv2d(self, name=None):
        """The built stock layer (`folded_layer_class`) carrying `fold()`'s kernel and bias."""
        return self.build_folded_layer(*self.fold(), name=name)

    # -------------------------------------------------------------- config
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "dilation_rate": self.dilation_rate,
            }
        )
        return config


#: The initializer attributes of Keras' stock convolutions (`build_with_weights`).
INITIALIZERS = ("kernel_initializer", "depthwise_initializer", "bias_initializer")


def build_with_weights(layer, kernel, bias, dtype="float32"):
    """The stock convolution `layer` (unbuilt) built for `kernel` and carrying it and `bias`.

    Its variables are created with zero initializers and then set: drawing them at random first,
    as `build` would, compiles one random-number kernel per shape on JAX (10 of the 10.4 s
    `fold` took for MobileNetV2 there). The layer's own initializers are put back after `build`,
    so its config is what it was.
    """
    channels = kernel.shape[2]
    if not isinstance(layer, keras.layers.DepthwiseConv2D):
        channels *= getattr(layer, "groups", 1)
    own = {name: getattr(layer, name) for name in INITIALIZERS if hasattr(layer, name)}
    try:
        for name in own:
            setattr(layer, name, keras.initializers.Zeros())
        layer.build((None, None, None, channels))
    finally:
        for name, initializer in own.items():
            setattr(layer, name, initializer)
    layer.set_weights([kernel.astype(dtype)] + ([] if bias is None else [bias.astype(dtype)]))
    return layer
