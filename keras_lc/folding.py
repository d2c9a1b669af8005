"""Whole-model folding: LC blocks and BatchNormalization into plain convolutions.

`fold(model)` (also `keras_lc.fold`) returns a new functional model made only of
stock Keras layers, computing the same function as `model` in inference mode:

- every `keras_lc.layers.FoldableConv2D` (`LCConv2D`, `SharedLCConv2D`,
  `RefocusConv2D`, or a new subclass) becomes one stock convolution, through
  its fold protocol: `fold() -> (kernel, bias or None)` as NumPy arrays in the
  layout of `folded_layer_class` (`keras.layers.Conv2D`, or
  `keras.layers.DepthwiseConv2D` with kernel `(kh, kw, channels,
  multiplier)`), built with `build_folded_layer(kernel, bias)`;
- a `BatchNormalization` whose input is the output of a convolution
  (`Conv2D`, `DepthwiseConv2D` or a `FoldableConv2D`, depthwise ones
  included) that nothing else consumes is folded into that
  convolution's kernel and bias, with the BatchNormalization's own epsilon
  and moving statistics;
- every other layer is copied with its weights.

The result's config names nothing from keras_lc (`keras_lc_references` finds
what would): an initializer that is not stock Keras (`TorchUniform`, which the
zoo's convolutions and classifiers are built with) is replaced by a stock one
(`stock_initializer`), and anything else from keras_lc is refused.
"""

import json
import math
import zipfile

import keras

from keras_lc import fold_math
from keras_lc.layers.base import FoldableConv2D, build_with_weights
from keras_lc.model_kinds import require_functional_or_sequential

_CONV_TYPES = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)


def _folded_class(layer):
    """The stock class `layer` becomes: its own, or a `FoldableConv2D`'s `folded_layer_class`."""
    if isinstance(layer, _CONV_TYPES):
        return type(layer)
    return layer.folded_layer_class


class _Skip:
    """Marks a BatchNormalization folded into its producer: its call is the identity."""

    def __init__(self, name):
        self.name = name


def _is_stock(obj):
    """True for an object (a layer, an initializer, ...) of Keras' own classes."""
    return type(obj).__module__.startswith("keras.")


def _keras_lc_keys(serialized):
    """The keys (`module`, `registered_name`) of a serialized object's dict that name keras_lc."""
    return [key for key in ("module", "registered_name")
            if str(serialized.get(key) or "").startswith("keras_lc")]


def _names_keras_lc(value):
    """True for a serialized object (dict or registered name) from keras_lc."""
    if isinstance(value, str):
        return value.startswith("keras_lc>")
    return isinstance(value, dict) and bool(_keras_lc_keys(value))


def keras_lc_references(config):
    """Where a model config names a keras_lc object, as `'path: key=value'` strings.

    `config` is a `model.get_config()` dict or the path of a `.keras` file
    (its `config.json` is read). A config with no reference (an empty list)
    deserializes where keras_lc is not installed, as far as its objects go.

    Example:

    >>> import keras
    >>> from keras_lc import TorchUniform
    >>> dense = keras.layers.Dense(2, kernel_initializer=TorchUniform(0), name="head")
    >>> model = keras.Sequential([keras.Input((3,)), dense])
    >>> keras_lc_references(model.get_config())[0]
    '/layers[1]/config/kernel_initializer: module=keras_lc.initializers'
    >>> keras_lc_references(fold(model).get_config())
    []
    """
    if not isinstance(config, dict):
        with zipfile.ZipFile(config) as archive:
            config = json.loads(archive.read("config.json"))
    found = []

    def walk(value, path):
        if isinstance(value, dict):
            found.extend(f"{path}: {key}={value[key]}" for key in _keras_lc_keys(value))
            for key, item in value.items():
                if key not in ("module", "registered_name"):
                    walk(item, f"{path}/{key}")
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")
        elif _names_keras_lc(value):
            found.append(f"{path}: {value}")

    walk(config, "")
    return found


def stock_initializer(serialized):
    """A stock Keras initializer standing in for a serialized non-stock one.

    `keras_lc.TorchUniform`, U[-a, a] with a = 1/sqrt(fan_in), has exact stock
    equivalents in distribution: `VarianceScaling(1/3, "fan_in", "uniform")`
    (whose limit is sqrt(3 * (1/3) / fan_in), with the same fan-in as
    `TorchUniform` infers) or, with an explicit `fan_in`, `RandomUniform(-a, a)`;
    any other initializer becomes `Zeros`. The seed is not kept: these stand
    in for an initializer whose values the trained weights have replaced.
    """
    if isinstance(serialized, dict) and serialized.get("class_name") == "TorchUniform":
        fan_in = (serialized.get("config") or {}).get("fan_in")
        if fan_in is None:
            return keras.initializers.VarianceScaling(1 / 3, mode="fan_in", distribution="uniform")
        return keras.initializers.RandomUniform(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
    return keras.initializers.Zeros()


def _is_stock_serialized(value):
    """True for a serialized object of Keras' own (or a built-in name such as "zeros")."""
    if isinstance(value, str):
        return ">" not in value
    if not isinstance(value, dict):  # an object, not serialized
        return _is_stock(value)
    module = str(value.get("module") or "")
    return (module == "keras" or module.startswith("keras.")) and not value.get("registered_name")


def _portable_config(layer, config):
    """`layer`'s `config` with its non-stock initializers replaced by stock ones.

    An initializer only chooses a variable's first value, and every layer of
    the folded model gets its weights set from the trained model right after
    it is built, so which initializer its config names changes nothing the
    folded model computes; naming `keras_lc.TorchUniform` would only stop it
    from loading without keras_lc. Any other keras_lc object (a regularizer,
    a constraint, a nested layer) does matter, so it is refused.
    """

    def clean(value, key, path):
        if key.endswith("initializer") and value is not None and not _is_stock_serialized(value):
            return stock_initializer(value)
        if isinstance(value, dict):
            value = {k: v if k in ("module", "registered_name") else clean(v, k, f"{path}/{k}")
                     for k, v in value.items()}
        elif isinstance(value, list):
            value = [clean(v, "", f"{path}[{i}]") for i, v in enumerate(value)]
        if _names_keras_lc(value):
            name = value if isinstance(value, str) else value.get("class_name")
            raise ValueError(
                f"Layer '{layer.name}' ({type(layer).__name__}) has {path.lstrip('/')}={name!r}, a "
                "keras_lc object that fold() cannot replace by a stock Keras one, so the folded "
                "model would not load without keras_lc."
            )
        return value

    return {key: clean(value, key, f"/{key}") for key, value in config.items()}


def _is_foldable_producer(layer):
    """A convolution whose output a following BatchNorm can be folded into:
    its own activation must be linear (a BN after a fused ReLU cannot move in
    front of it)."""
    if isinstance(layer, _CONV_TYPES):
        return layer.activation in (None, keras.activations.linear)
    return isinstance(layer, FoldableConv2D)


def _channels_last_bn(layer):
    if not isinstance(layer, keras.layers.BatchNormalization):
        return False
    axis = layer.axis if isinstance(layer.axis, int) else None
    return axis in (-1, 3)


def _as_functional(model):
    """A functional view (sharing layers) of a Sequential model."""
    if isinstance(model, keras.Sequential):
        inputs = keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype)
        outputs = inputs
        for layer in model.layers:
            outputs = layer(outputs)
        return keras.Model(inputs, outputs, name=model.name)
    return model


def _batchnorm_pairs(model):
    """{producer layer id: bn layer} for every BN that can fold into its producer."""
    consumers = {}
    calls = {}
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            if node.operation is None or node.is_input:
                continue
            calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
            for tensor in node.input_tensors:
                consumers[id(tensor)] = consumers.get(id(tensor), 0) + 1
    output_ids = {id(t) for t in model.outputs}
    pairs = {}
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            bn = node.operation
            if not _channels_last_bn(bn) or calls[id(bn)] != 1 or len(node.input_tensors) != 1:
                continue
            tensor = node.input_tensors[0]
            producer = tensor._keras_history.operation
            if (
                _is_foldable_producer(producer)
                and calls.get(id(producer)) == 1
                and consumers[id(tensor)] == 1
                and id(tensor) not in output_ids
                and id(producer) not in pairs
            ):
                pairs[id(producer)] = bn
    return pairs


def _conv_weights(layer):
    """(kernel, bias or None) of a foldable producer, float64."""
    if isinstance(layer, FoldableConv2D):
        kernel, bias = layer.fold()
        return fold_math.to_numpy64(kernel), None if bias is None else fold_math.to_numpy64(bias)
    weights = [fold_math.to_numpy64(w) for w in layer.get_weights()]
    return weights[0], weights[1] if len(weights) > 1 else None


def _new_conv(layer, kernel, bias):
    """A built stock conv layer like `layer` carrying `kernel` and `bias`."""
    if isinstance(layer, FoldableConv2D):  # the stock convolution it folds into
        return layer.build_folded_layer(kernel, bias)
    config = _portable_config(layer, layer.get_config())
    config["use_bias"] = bias is not None
    return build_with_weights(type(layer).from_config(config), kernel, bias, layer.variable_dtype)


def _fold_pair(layer, bn):
    kernel, bias = _conv_weights(layer)
    scale, shift = fold_math.batchnorm_layer_scale_shift(bn)
    if issubclass(_folded_class(layer), keras.layers.DepthwiseConv2D):
        k_h, k_w, channels, multiplier = kernel.shape
        flat, bias = fold_math.fold_batchnorm(
            kernel.reshape(k_h, k_w, 1, channels * multiplier), bias, scale, shift
        )
        kernel = flat.reshape(k_h, k_w, channels, multiplier)
    else:
        kernel, bias = fold_math.fold_batchnorm(kernel, bias, scale, shift)
    return kernel, bias


def fold(model, fold_batchnorm=True):
    """A new model of stock Keras layers computing `model` in inference mode.

    Args:
        model: A functional or Sequential `keras.Model` (nested models are
            folded recursively).
        fold_batchnorm: Also fold each BatchNormalization that directly
            follows a convolution (and is its only consumer) into it.

    Returns:
        A functional `keras.Model` whose layers are all stock Keras layers and
        whose config names nothing from keras_lc (non-stock initializers of
        kept layers become stock ones, see `stock_initializer`); it can be
        saved as `.keras` and loaded with `safe_mode=True` where keras_lc is
        not installed. Layer names are kept (folded BatchNormalizations
        disappear).

    Raises:
        ValueError: if `model` is not a functional or Sequential model (a
            subclassed one, say), a layer cannot be folded exactly (e.g. an
            `LCConv2D` with a ReLU between its stages; the message names the
            layer), a non-stock layer that is not a `FoldableConv2D` remains, or a
            kept layer's config holds a keras_lc object other than an
            initializer.

    Example:

    >>> import keras, numpy as np
    >>> from keras_lc import LCConv2D
    >>> inputs = keras.Input((16, 16, 3))
    >>> x = LCConv2D(8, 3, expansion=4, seed=0)(inputs)
    >>> x = keras.layers.BatchNormalization()(x)
    >>> model = keras.Model(inputs, keras.layers.ReLU()(x))
    >>> folded = fold(model)
    >>> [type(l).__name__ for l in folded.layers]
    ['InputLayer', 'Conv2D', 'ReLU']
    >>> x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype("float32")
    >>> bool(np.allclose(folded(x), model(x), rtol=1e-4, atol=1e-5))
    True
    """
    require_functional_or_sequential(model, "fold")
    functional = _as_functional(model)
    pairs = _batchnorm_pairs(functional) if fold_batchnorm else {}
    folded_bns = {id(bn) for bn in pairs.values()}
    sources = {}

    def clone_function(layer):
        if id(layer) in folded_bns:
            return _Skip(layer.name)
        if isinstance(layer, keras.Model):
            return fold(layer, fold_batchnorm=fold_batchnorm)
        if id(layer) in pairs:
            return _new_conv(layer, *_fold_pair(layer, pairs[id(layer)]))
        if isinstance(layer, FoldableConv2D):
            return _new_conv(layer, *_conv_weights(layer))
        if not _is_stock(layer):
            raise ValueError(
                f"Layer '{layer.name}' ({type(layer).__name__}) is not a stock Keras layer "
                "and not a keras_lc.layers.FoldableConv2D (with a fold() method), so the "
                "folded model would not load without its code."
            )
        new = type(layer).from_config(_portable_config(layer, layer.get_config()))
        sources[id(new)] = layer
        return new

    def call_function(layer, *args, **kwargs):
        if isinstance(layer, _Skip):
            return args[0]
        outputs = layer(*args, **kwargs)
        source = sources.pop(id(layer), None)
        if source is not None and source.weights:
            layer.set_weights(source.get_weights())
        return outputs

    folded = keras.models.clone_model(
        functional, clone_function=clone_function, call_function=call_function
    )
    references = keras_lc_references(folded.get_config())
    if references:  # the promise above, checked rather than assumed
        raise ValueError(
            f"The folded model of '{model.name}' still names keras_lc objects, so it would "
            f"not load without keras_lc: {', '.join(references[:3])}"
        )
    return folded
