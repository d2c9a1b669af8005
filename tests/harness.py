"""Shared test helpers: run the `keras-lc` command in-process; the checks every foldable layer
and every model passes (NumPy reference, fold, config, `.keras` and `.weights.h5` round trips)."""

import dataclasses
import importlib.util
import signal
import subprocess
import tempfile
from pathlib import Path

import keras
import numpy as np

from keras_lc import cli
from keras_lc.layers import FoldableConv2D
from tests.reference import rel_error, to_numpy

REPO = Path(__file__).resolve().parents[1]


def load_file_module(relative_path, name=None):
    """The script at `relative_path` (from the repository root) imported as a module: the
    examples, tools and benchmarks are scripts, not package modules."""
    path = REPO / relative_path
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(argv, capsys):
    """`keras-lc ARGV` in this process: `(exit status, stdout, stderr)`.

    argparse's own errors exit through `SystemExit`; their status is returned too.
    """
    try:
        code = cli.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def kill_at_line(args, marker, **popen):
    """Runs `args` in a subprocess and kills it hard (SIGKILL) once a line of its stdout contains
    `marker`, as a crash would; returns its exit status (`-SIGKILL` if it was killed)."""
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, **popen)
    try:
        for line in process.stdout:
            if marker in line:
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.kill()
        process.wait(timeout=60)
    return process.returncode


@dataclasses.dataclass
class FoldableCheck:
    """What `check_foldable_layer` measured: the built layer, its outputs, the errors."""

    layer: FoldableConv2D
    outputs: np.ndarray
    reference_error: float = None
    fold_error: float = None


def _perturb(layer):
    """Every trainable weight moved off its initial value, w -> 1.5 w + 0.01."""
    for weight in layer.trainable_weights:
        weight.assign((to_numpy(weight) * 1.5 + 0.01).astype(weight.dtype))


def _model_of(layer, x):
    inputs = keras.Input(x.shape[1:], dtype=x.dtype)
    return keras.Model(inputs, layer(inputs))


def _assert_same_weights(actual, expected):
    assert len(actual.weights) == len(expected.weights)
    for a, b in zip(actual.weights, expected.weights):
        assert (a.name, a.trainable) == (b.name, b.trainable), (a.path, b.path)
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b), err_msg=b.path)


def check_foldable_layer(
    layer_or_factory,
    x,
    reference=None,
    *,
    reference_tolerance=1e-5,
    fold_tolerance=1e-5,
    fold=True,
    round_trips=True,
    perturb=True,
):
    """The checks every `FoldableConv2D` passes, each asserting with numbers.

    Args:
        layer_or_factory: A layer, or a function of no arguments returning a new
            one (also used for the fresh layer the `.weights.h5` file is loaded
            into; otherwise that is `from_config(get_config())`).
        x: A float32 NumPy batch the layer is built and called on.
        reference: `reference(layer, x) -> expected outputs` (float64 NumPy).
            When given: the outputs have its shape, that of
            `compute_output_shape`, and relative error < `reference_tolerance`.
        fold: Check `fold()` (kernel in the variable dtype) and `to_conv2d()`:
            a stock `folded_layer_class` layer whose outputs are within
            relative error `fold_tolerance` (<=) of the layer's.
        round_trips: Check `get_config` / `from_config` (same config, and with
            the same weights bit-identical outputs), a `.keras` save / load
            with `safe_mode=True` (same class and config, bit-identical weights
            and outputs) and a `.weights.h5` save / load into a fresh layer
            (which differs before loading; bit-identical weights and outputs
            after).
        perturb: First move every trainable weight off its initial value
            (w -> 1.5 w + 0.01), so that no check passes on initial values
            a fresh layer would have anyway.

    Returns:
        A `FoldableCheck` with the built layer, its outputs and the errors.
    """
    factory = None if isinstance(layer_or_factory, keras.layers.Layer) else layer_or_factory
    layer = layer_or_factory if factory is None else factory()
    assert isinstance(layer, FoldableConv2D), type(layer)
    if not layer.built:
        layer.build(x.shape)
    if perturb:
        _perturb(layer)
    y = to_numpy(layer(x))
    check = FoldableCheck(layer, y)

    if reference is not None:
        expected = np.asarray(reference(layer, x))
        assert y.shape == expected.shape == tuple(layer.compute_output_shape(x.shape))
        check.reference_error = rel_error(y, expected)
        assert check.reference_error < reference_tolerance, check.reference_error

    if fold:
        kernel, bias = layer.fold()
        assert kernel.dtype == layer.variable_dtype, kernel.dtype
        assert bias is None or bias.dtype == layer.variable_dtype, bias.dtype
        conv = layer.to_conv2d()
        assert type(conv) is layer.folded_layer_class and type(conv).__module__.startswith("keras.")
        folded = to_numpy(conv(x))
        assert folded.shape == y.shape, (folded.shape, y.shape)
        check.fold_error = rel_error(folded, y)
        assert check.fold_error <= fold_tolerance, check.fold_error

    if round_trips:
        config = layer.get_config()
        clone = type(layer).from_config(config)
        assert clone.get_config() == config
        clone.build(x.shape)
        clone.set_weights(layer.get_weights())
        np.testing.assert_array_equal(to_numpy(clone(x)), y)

        model = _model_of(layer, x)
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "layer.keras"
            model.save(path)
            loaded = keras.saving.load_model(path, safe_mode=True)
            assert type(loaded.layers[-1]) is type(layer)
            assert loaded.layers[-1].get_config() == config
            _assert_same_weights(loaded, model)
            np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))

            path = Path(directory) / "layer.weights.h5"
            model.save_weights(path)
            fresh = _model_of(factory() if factory else type(layer).from_config(config), x)
            assert not np.array_equal(to_numpy(fresh(x)), y), "a fresh layer already equals it"
            fresh.load_weights(path)
            _assert_same_weights(fresh, model)
            np.testing.assert_array_equal(to_numpy(fresh(x)), to_numpy(model(x)))
    return check


def _scramble_learned_state(model):
    """Trainable weights and BatchNormalization statistics moved off their values (w -> 1.5 w + 0.01)."""
    learned = {id(w): w for w in model.trainable_weights}
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            learned.update({id(w): w for w in (layer.moving_mean, layer.moving_variance)})
    for weight in learned.values():
        weight.assign((to_numpy(weight) * 1.5 + 0.01).astype(weight.dtype))
    return len(learned)


def check_model_round_trip(model, x, outputs=None):
    """A whole model through `.keras` (`safe_mode=True`) and `.weights.h5`, asserting bit-identity.

    The `.keras` file must load as the same classes and configs, layer by
    layer, with the same weights (and trainability) and outputs on `x`. Then the
    `.weights.h5` file of `model` is loaded into that loaded model after its
    learned state (trainable weights, BatchNormalization statistics) was
    changed; loading must bring back the same weights and outputs. (The loaded
    model stands in for a freshly built one: building a large model a third
    time would cost seconds.) Outputs are in inference mode; `outputs`, if
    given, are `model`'s on `x`, already computed.
    """
    expected = to_numpy(model(x, training=False)) if outputs is None else to_numpy(outputs)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "model.keras"
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
        assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
        assert [layer.get_config() for layer in loaded.layers] == [layer.get_config() for layer in model.layers]
        _assert_same_weights(loaded, model)
        np.testing.assert_array_equal(to_numpy(loaded(x, training=False)), expected)

        path = Path(directory) / "model.weights.h5"
        model.save_weights(path)
        assert _scramble_learned_state(loaded), "the model has no learned state to load back"
        loaded.load_weights(path)
        _assert_same_weights(loaded, model)
        np.testing.assert_array_equal(to_numpy(loaded(x, training=False)), expected)
