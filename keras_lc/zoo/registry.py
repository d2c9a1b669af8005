"""The model registry: `@register_model`, `list_models`, `get_model`."""

import difflib
import fnmatch
import inspect

_BUILDERS = {}


def register_model(builder=None, *, name=None):
    """Registers a model builder under `name` (default: the function's name).

    Usable as `@register_model` or `@register_model(name="...")`. Registering
    two builders under one name raises `ValueError`.

    Example:

    >>> @register_model(name="tiny_example")
    ... def tiny(**kwargs):
    ...     return None
    >>> "tiny_example" in list_models("tiny*")
    True
    >>> _ = _BUILDERS.pop("tiny_example")
    """

    def decorator(fn):
        key = fn.__name__ if name is None else name
        if not isinstance(key, str) or not key:
            raise ValueError(f"`name` must be a non-empty string. Received: name={key!r}")
        if key in _BUILDERS and _BUILDERS[key] is not fn:
            raise ValueError(
                f"A model is already registered as {key!r} ({_BUILDERS[key].__module__}."
                f"{_BUILDERS[key].__qualname__}); choose another name."
            )
        _BUILDERS[key] = fn
        return fn

    return decorator if builder is None else decorator(builder)


def register_preset(builder, name, **fixed):
    """Registers `builder` with some keyword arguments fixed, under `name`.

    Returns the preset function (its signature is the builder's without the
    fixed arguments; passing one of them raises `ValueError`).
    """

    def preset(**kwargs):
        clash = sorted(set(fixed) & set(kwargs))
        if clash:
            raise ValueError(
                f"`{name}` fixes {fixed}; call `{builder.__name__}` to choose them. "
                f"Received: {', '.join(f'{k}={kwargs[k]!r}' for k in clash)}"
            )
        return builder(**fixed, **kwargs)

    signature = inspect.signature(builder)
    preset.__signature__ = signature.replace(
        parameters=[p for p in signature.parameters.values() if p.name not in fixed]
    )
    preset.__name__ = preset.__qualname__ = name
    preset.__module__ = builder.__module__
    settings = ", ".join(f"{k}={v!r}" for k, v in fixed.items())
    preset.__doc__ = f"`{builder.__name__}({settings}, ...)`: see `{builder.__name__}`."
    return register_model(preset)


def list_models(pattern="*"):
    """Sorted names of the registered models matching a shell-style `pattern`.

    Example:

    >>> import keras_lc
    >>> keras_lc.zoo.list_models("resnet_lc2*")
    ['resnet_lc20', 'resnet_lc20_16x128']
    """
    if not isinstance(pattern, str):
        raise ValueError(f"`pattern` must be a string. Received: pattern={pattern!r}")
    return sorted(n for n in _BUILDERS if fnmatch.fnmatchcase(n, pattern))


def get_builder(name):
    """The builder registered as `name`; an unknown name's error lists close matches."""
    if name not in _BUILDERS:
        close = difflib.get_close_matches(str(name), list(_BUILDERS), n=5, cutoff=0.5)
        hint = f" Did you mean one of {close}?" if close else ""
        raise ValueError(
            f"Unknown model name {name!r}.{hint} `keras_lc.zoo.list_models()` lists "
            f"all {len(_BUILDERS)} registered models."
        )
    return _BUILDERS[name]


def get_model(name, **kwargs):
    """Builds the registered model `name` with the builder's keyword arguments.

    Example:

    >>> import keras_lc
    >>> model = keras_lc.zoo.get_model("resnet20", input_shape=(32, 32, 3), classes=10, seed=0)
    >>> model.count_params()
    271098
    """
    return get_builder(name)(**kwargs)
