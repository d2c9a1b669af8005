"""Argument checks shared by the package: each raises `ValueError` quoting what it received.

The bottom of the import stack (NumPy only), so layers, initializers, the zoo
and training can all use one spelling of each check.
"""

import warnings

import numpy as np

#: Largest seed a layer accepts: seeds are stored in configs and weights files as int64.
MAX_SEED = 2**63 - 1


def check_bool(value, name):
    """`value` as a bool; a `ValueError` unless it is a bool (NumPy's included).

    Example:

    >>> check_bool(True, "use_bias")
    True
    >>> check_bool("no", "use_bias")
    Traceback (most recent call last):
    ...
    ValueError: `use_bias` must be a bool. Received: use_bias='no'
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return bool(value)


def check_seed(seed, name="seed", maximum=MAX_SEED):
    """`seed` as an int in [0, maximum]; a `ValueError` quoting it otherwise.

    Example:

    >>> check_seed(7)
    7
    >>> check_seed(2**63)
    Traceback (most recent call last):
    ...
    ValueError: `seed` must be an integer in [0, 2**63 - 1]. Received: seed=9223372036854775808
    """
    bound = {MAX_SEED: "2**63 - 1", 2**32 - 1: "2**32 - 1"}.get(maximum, str(maximum))
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= maximum:
        raise ValueError(f"`{name}` must be an integer in [0, {bound}]. Received: {name}={seed!r}")
    return int(seed)


#: The paddings a 2-D convolution accepts.
PADDINGS = ("same", "valid")


def positive_int(value, name):
    """`value` as an int >= 1; a `ValueError` quoting it otherwise.

    Example:

    >>> positive_int(3, "filters")
    3
    >>> positive_int(0, "filters")
    Traceback (most recent call last):
    ...
    ValueError: `filters` must be a positive integer. Received: filters=0
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def pair(value, name):
    """An int or a pair of ints, each >= 1, as a 2-tuple.

    Example:

    >>> pair(3, "kernel_size"), pair((1, 2), "strides")
    ((3, 3), (1, 2))
    """
    items = (value, value) if isinstance(value, (int, np.integer)) else value
    try:
        items = tuple(items)
    except TypeError:
        items = ()
    if len(items) != 2 or any(
        isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 1 for v in items
    ):
        raise ValueError(
            f"`{name}` must be a positive integer or a tuple of 2 positive integers. "
            f"Received: {name}={value!r}"
        )
    return tuple(int(v) for v in items)


def check_choice(value, name, choices):
    """`value` if it is one of `choices`; a `ValueError` listing them otherwise.

    Example:

    >>> check_choice("A", "shortcut", ("A", "B"))
    'A'
    """
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}. Received: {name}={value!r}")
    return value


def conv_geometry(kernel_size, strides, padding, dilation_rate):
    """Validated `(kernel_size, strides, padding, dilation_rate)` of a 2-D convolution
    (pairs of positive ints, lower-case padding), with Keras' error messages.

    Example:

    >>> conv_geometry(3, 2, "SAME", 1)
    ((3, 3), (2, 2), 'same', (1, 1))
    """
    kernel_size = pair(kernel_size, "kernel_size")
    pair_strides, pair_dilation = pair(strides, "strides"), pair(dilation_rate, "dilation_rate")
    if max(pair_strides) > 1 and max(pair_dilation) > 1:
        raise ValueError(
            "`strides > 1` is not compatible with `dilation_rate > 1`. "
            f"Received: strides={strides!r}, dilation_rate={dilation_rate!r}"
        )
    padding_key = padding.lower() if isinstance(padding, str) else padding
    if padding_key not in PADDINGS:
        raise ValueError(f"`padding` must be one of {PADDINGS}. Received: padding={padding!r}")
    return kernel_size, pair_strides, padding_key, pair_dilation


def conv_output_length(length, kernel, stride, padding, dilation):
    """Output length of a convolution along one axis (`None` stays `None`).

    Example:

    >>> conv_output_length(32, 3, 2, "same", 1), conv_output_length(32, 3, 1, "valid", 2)
    (16, 28)
    """
    if length is None:
        return None
    if padding == "same":
        return -(-length // stride)
    return (length - (kernel - 1) * dilation - 1) // stride + 1


def frozen_spatial_alias(frozen_spatial, spatial_trainable, owner):
    """`frozen_spatial` as a bool, also accepting the deprecated `spatial_trainable=`.

    `frozen_spatial` is the package's one word for "the k x k kernels keep their
    seeded random values" (builders, layers, `lcify`, `--frozen-spatial`).
    Version 0.1.0 spelled it `spatial_trainable` on layers and `lcify`, with
    the inverted meaning; that keyword still works, with a
    `DeprecationWarning`. Contradicting values are an error.

    Example:

    >>> frozen_spatial_alias(True, None, "LCConv2D")
    True
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     frozen_spatial_alias(True, True, "LCConv2D")
    False
    """
    frozen_spatial = check_bool(frozen_spatial, "frozen_spatial")
    if spatial_trainable is None:
        return frozen_spatial
    spatial_trainable = check_bool(spatial_trainable, "spatial_trainable")
    if not frozen_spatial and not spatial_trainable:
        raise ValueError(
            f"{owner} got frozen_spatial=False and its deprecated inverse spatial_trainable=False, "
            "which contradict each other; pass only frozen_spatial. "
            "Received: frozen_spatial=False, spatial_trainable=False"
        )
    warnings.warn(
        f"{owner}(spatial_trainable=...) is deprecated; use frozen_spatial="
        f"{not spatial_trainable!r} (the inverse) instead.",
        DeprecationWarning,
        stacklevel=3,
    )
    return not spatial_trainable
