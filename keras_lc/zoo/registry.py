"""The model registry: names -> builders (`@register_model`, `register_presets`,
`list_models`, `get_model`), as timm's `_registry.py`.

A family writes its builder once (with keras.applications' arguments, see
`keras_lc.zoo.application.application_builder`); its presets are data, a
`{name: Preset}` table registered by `register_presets`.
"""

import difflib
import fnmatch
import inspect
from typing import Any, Mapping, NamedTuple

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


class Preset(NamedTuple):
    """A preset as data: the builder arguments its name fixes, and what it is.

    Attributes:
        fixed: {argument: value} of the family builder, fixed by the name.
        title: One line saying what the preset is (for its docstring).
    """

    fixed: Mapping[str, Any]
    title: str = ""


def _see_builder(builder, name, preset):
    settings = ", ".join(f"{k}={v!r}" for k, v in preset.fixed.items())
    return f"`{builder.__name__}({settings}, ...)`: see `{builder.__name__}`."


def register_presets(builder, presets, doc=None):
    """Registers `builder` under each name of `presets`, with that preset's arguments fixed.

    The one preset mechanism of the zoo (keras-hub's presets, timm's
    entrypoints): a family spells its builder once, and its presets are data,
    `{name: Preset}` (a plain `{argument: value}` dict stands for
    `Preset(fixed=dict)`). Each preset function's signature is the builder's
    without the fixed arguments (the others keep their order and defaults);
    passing a fixed one raises `ValueError`. `doc(builder, name, preset)`
    writes each preset's docstring; by default it points to `builder`.

    Returns the preset functions, in the order of `presets`.

    Example:

    >>> def tiny(depth=2, width=4, seed=None):
    ...     return depth, width, seed
    >>> (tiny3,) = register_presets(tiny, {"tiny_example3": {"depth": 3}})
    >>> tiny3(8, seed=0)
    (3, 8, 0)
    >>> tiny3.__doc__
    '`tiny(depth=3, ...)`: see `tiny`.'
    >>> _ = _BUILDERS.pop("tiny_example3")
    """
    signature = inspect.signature(builder)
    doc = doc or _see_builder
    functions = []
    for name, preset in presets.items():
        preset = preset if isinstance(preset, Preset) else Preset(dict(preset))
        unknown = sorted(set(preset.fixed) - set(signature.parameters))
        if unknown and not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
            raise ValueError(f"`{builder.__name__}` has no argument(s) {unknown} for preset {name!r}.")
        function = _preset_function(builder, name, dict(preset.fixed), signature)
        function.__doc__ = doc(builder, name, preset)
        functions.append(register_model(function))
    return tuple(functions)


def register_preset(builder, name, **fixed):
    """Registers `builder` with some keyword arguments fixed, under `name`.

    `register_presets(builder, {name: fixed})` for one preset; returns the
    preset function (its signature is the builder's without the fixed
    arguments; passing one of them raises `ValueError`).
    """
    return register_presets(builder, {name: fixed})[0]


def _preset_function(builder, name, fixed, signature):
    own = signature.replace(parameters=[p for p in signature.parameters.values() if p.name not in fixed])

    def preset(*args, **kwargs):
        clash = sorted(set(fixed) & set(kwargs))
        if clash:
            raise ValueError(
                f"`{name}` fixes {fixed}; call `{builder.__name__}` to choose them. "
                f"Received: {', '.join(f'{k}={kwargs[k]!r}' for k in clash)}"
            )
        try:
            arguments = own.bind(*args, **kwargs).arguments
        except TypeError as error:
            raise TypeError(f"{name}() {error}") from None
        return builder(**fixed, **arguments)

    preset.__signature__ = own
    preset.__name__ = preset.__qualname__ = name
    preset.__module__ = builder.__module__
    return preset


def list_models(pattern="*", pretrained=False):
    """Sorted names of the registered models matching a shell-style `pattern`.

    With `pretrained=True` (timm's argument), the names of the published
    models instead (`load_published` names; `pattern` matches them or their
    architecture's name); `keras_lc.weights.published_weights()` has their
    manifests.

    Example:

    >>> import keras_lc
    >>> keras_lc.zoo.list_models("resnet_lc2*")
    ['resnet_lc20', 'resnet_lc20_16x128']
    >>> keras_lc.zoo.list_models("resnet_lc20_16x128", pretrained=True)
    ['resnet_lc20_16x128_frozen_cifar10', 'resnet_lc20_16x128_learnable_cifar10']
    """
    if not isinstance(pattern, str):
        raise ValueError(f"`pattern` must be a string. Received: pattern={pattern!r}")
    if not isinstance(pretrained, bool):
        raise ValueError(f"`pretrained` must be a bool. Received: pretrained={pretrained!r}")
    if pretrained:
        from keras_lc.weights import published_weights

        return sorted(name for name, entry in published_weights().items()
                      if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(entry.model, pattern))
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
