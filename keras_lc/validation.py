"""Argument checks shared by the package: each raises `ValueError` quoting what it received.

The bottom of the import stack (NumPy only), so layers, initializers, the zoo
and training can all use one spelling of each check.
"""

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
    ValueError: `use_bias` must be a bool (True or False). Received: use_bias='no'
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"`{name}` must be a bool (True or False). Received: {name}={value!r}")
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
