"""Which models `fold`, `lcify` and `refocus` accept: functional and Sequential ones.

They rebuild a model from its graph of layers (`keras.models.clone_model`), which
a subclassed `keras.Model` (its own `call`) does not have; one check, shared, says
so in one line instead of an `AttributeError` from deep inside Keras.
"""

import keras

# Keras exports no public name for the functional model class (`keras.Model(inputs,
# outputs)` returns one; so does a subclass whose __init__ passes inputs and outputs).
from keras.src.models.functional import Functional


def require_functional_or_sequential(model, function):
    """`model` if it is a functional or Sequential `keras.Model`; else a `ValueError`.

    `function` is the name of the caller, for the message.

    Example:

    >>> import keras
    >>> class Net(keras.Model):
    ...     def call(self, x):
    ...         return x
    >>> require_functional_or_sequential(Net(name="net"), "fold")
    Traceback (most recent call last):
    ...
    ValueError: fold() supports functional and Sequential models. Received: model=<Net name=net, built=False>, a subclassed keras.Model of class Net
    """
    if isinstance(model, (keras.Sequential, Functional)):
        return model
    if isinstance(model, keras.Model):
        raise ValueError(
            f"{function}() supports functional and Sequential models. Received: model={model!r}, "
            f"a subclassed keras.Model of class {type(model).__name__}"
        )
    raise ValueError(
        f"`model` must be a functional or sequential `keras.Model`. Received: model={model!r} "
        f"of type {type(model).__name__}"
    )
