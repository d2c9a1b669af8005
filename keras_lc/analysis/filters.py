"""The effective convolution filters of a model: folded LC-blocks and plain kernels."""

from collections import OrderedDict

import keras
import numpy as np

from keras_lc.fold_math import to_numpy64
from keras_lc.layers import LCConv2D

#: Layer classes whose k x k kernels the analysis reads.
CONV_TYPES = (LCConv2D, keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)


def is_conv_layer(layer):
    """Whether `layer` is an LCConv2D, Conv2D, DepthwiseConv2D or SeparableConv2D."""
    return isinstance(layer, CONV_TYPES)


def _sublayers(layer):
    """The direct sublayers of a model or of a custom layer holding layers."""
    if isinstance(layer, keras.Model):
        return list(layer.layers)
    flatten = getattr(layer, "_flatten_layers", None)  # custom blocks holding convs
    if flatten is None:
        return []
    return list(flatten(include_self=False, recursive=False))


def conv_layers(model, spatial_only=False):
    """Every convolution layer of `model` in order, nested models included.

    Args:
        model: A `keras.Model` (or a layer holding sublayers).
        spatial_only: Keep only layers with a kernel larger than 1x1.

    Returns:
        `OrderedDict` name -> layer. Layers of a nested model are named
        `"nested_model_name/layer_name"`.
    """
    found = OrderedDict()

    def visit(layer, prefix):
        for sub in _sublayers(layer):
            name = prefix + sub.name
            if is_conv_layer(sub):
                if not sub.built:
                    raise ValueError(
                        f"Layer '{name}' is not built yet: call the model on an input first."
                    )
                if not spatial_only or np.prod(sub.kernel_size) > 1:
                    found[name] = sub
            else:
                visit(sub, name + "/")

    visit(model, "")
    return found


def combined_filters(layer_or_model, spatial_only=False):
    """The effective k x k filters of a layer, or of every conv layer of a model.

    For an `LCConv2D` this is its fold: the single kernel equal to the spatial
    kernel followed by the 1x1 combination (`LCConv2D.fold()`, with an
    intermediate BatchNormalization folded in). For a `Conv2D` it is the
    kernel, for a `DepthwiseConv2D` its depthwise kernel, for a
    `SeparableConv2D` its depthwise (spatial) kernel. Biases are left out.

    Args:
        layer_or_model: A built conv layer or a built `keras.Model`.
        spatial_only: For a model, keep only layers with kernels larger than
            1x1 (the layers whose filter patterns the analysis studies).

    Returns:
        For a layer, a float32 NumPy kernel `(kh, kw, c_in, c_out)` (depthwise:
        `(kh, kw, c_in, depth_multiplier)`). For a model, an `OrderedDict`
        layer name -> kernel (see `conv_layers` for the names).

    Raises:
        ValueError: for an unbuilt layer, a layer that is not a convolution,
            or an LCConv2D with a ReLU between its stages (no single kernel).

    Example:

    >>> import keras
    >>> from keras_lc.layers import LCConv2D
    >>> layer = LCConv2D(4, 3, expansion=2, seed=0)
    >>> layer.build((None, 8, 8, 3))
    >>> combined_filters(layer).shape
    (3, 3, 3, 4)
    """
    if isinstance(layer_or_model, keras.Model):
        return OrderedDict(
            (name, combined_filters(layer))
            for name, layer in conv_layers(layer_or_model, spatial_only).items()
        )
    layer = layer_or_model
    if not is_conv_layer(layer):
        raise ValueError(
            "`layer_or_model` must be a keras.Model or one of "
            f"{[cls.__name__ for cls in CONV_TYPES]}. Received: {layer!r}"
        )
    if not layer.built:
        raise ValueError(f"Layer '{layer.name}' is not built yet: call it on an input first.")
    if isinstance(layer, LCConv2D):
        kernel, _ = layer.fold()
    elif isinstance(layer, keras.layers.SeparableConv2D):
        kernel = to_numpy64(layer.depthwise_kernel)
    else:
        kernel = to_numpy64(layer.kernel)
    return np.asarray(kernel, dtype=np.float32)


def kernel_to_filters(kernel):
    """A `(kh, kw, c_in, c_out)` kernel as `(c_out * c_in, kh * kw)` filters.

    Row `o * c_in + i` is the 2-D filter from input channel `i` to output
    channel `o`, flattened row-major.
    """
    kernel = np.asarray(kernel)
    if kernel.ndim != 4:
        raise ValueError(
            f"A conv kernel must have 4 dimensions (kh, kw, c_in, c_out). Received shape {kernel.shape}."
        )
    k_h, k_w = kernel.shape[:2]
    return np.transpose(kernel, (3, 2, 0, 1)).reshape(-1, k_h * k_w)
