"""A folded model in the formats other runtimes read, each loaded back there and checked.

`export_formats(model, folder, name)` writes, from a (folded) Keras model, with
Keras 3's own `model.export`:

- `saved_model/` (`format="tf_saved_model"`), run back through its
  `serving_default` signature (what TF Serving calls) with `tf.saved_model.load`;
- `NAME.onnx` (`format="onnx"`, Keras' tf2onnx path), run with onnxruntime;
- `NAME.tflite` (`format="litert"`), run with the LiteRT interpreter
  (`ai_edge_litert`).

Each file is run on check images (raw RGB in [0, 255], float32, NHWC: what the
Keras model takes) and compared with the Keras model's outputs; an export
whose largest relative difference exceeds `tolerance` (1e-4) raises
`ExportCheckError` and nothing is kept. The result is one
`keras_lc.manifest.ExportCheck` per format (file, sha256, runtime, difference,
top-1 on the check images when they have labels), which `keras-lc export`
records in the manifest.

ONNX and LiteRT need the `export` extra (`pip install 'keras-lc[export]'`),
and every format needs Keras on TensorFlow: each is traced from the TensorFlow
backend's functions (tf2onnx, the LiteRT converter). On JAX or PyTorch the
folded `.keras` file (stock Keras layers, which load on any backend) is still
written; `KERAS_BACKEND=tensorflow keras-lc export ...` adds the exports.
`formats="auto"` writes every format that can be written here; asking for one
whose packages are missing gives a `MissingExtraError` naming the extra, and
one on another backend a `BackendError`.
"""

import contextlib
import importlib.metadata
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from keras_lc.archives import path_sha256
from keras_lc.manifest import FORMATS, ExportCheck
from keras_lc.startup import is_installed

#: The Python modules each format needs, to write it and to run it back.
REQUIREMENTS = {
    "saved_model": ("tensorflow",),
    "onnx": ("tensorflow", "tf2onnx", "onnx", "onnxruntime"),
    "litert": ("tensorflow", "ai_edge_litert"),
}
EXTRA = "pip install 'keras-lc[export]'"
TOLERANCE = 1e-4


class ExportCheckError(ValueError):
    """An exported file whose outputs differ from the Keras model's by more than the tolerance."""


class MissingExtraError(ImportError):
    """A format whose packages are not installed; the message names the extra to install."""


class BackendError(ValueError):
    """A format asked for while Keras runs on a backend other than TensorFlow."""


def file_name(format, name):
    """The file (or folder) name of `name`'s `format` export, e.g. `NAME.onnx`."""
    return {"saved_model": "saved_model", "onnx": f"{name}.onnx", "litert": f"{name}.tflite"}[format]


def missing_packages(format):
    """The modules `format` needs that are not installed (empty when it can be written and run)."""
    return [m for m in REQUIREMENTS[format] if not is_installed(m)]


def unavailable(format):
    """Why `format` cannot be written here, as a phrase following its name, or `None` if it can."""
    missing = missing_packages(format)
    if missing:
        return f"needs {', '.join(missing)}"
    import keras

    if keras.backend.backend() != "tensorflow":
        return f"is written on the TensorFlow backend (Keras runs on {keras.backend.backend()!r} here)"
    return None


def resolve_formats(formats="auto"):
    """The formats to write: `"auto"` (all that can be written here) or a list of `FORMATS`.

    An empty list writes none (only the folded `.keras`, e.g. without TensorFlow).

    Raises `ValueError` for an unknown format, `MissingExtraError` for one
    whose packages are missing and `BackendError` for any on a backend other
    than TensorFlow, each on one line.
    """
    if formats == "auto":
        return tuple(f for f in FORMATS if unavailable(f) is None)
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"Export formats must be 'auto' or some of {list(FORMATS)}. Received: {formats!r}")
    for f in formats:
        missing = missing_packages(f)
        if missing:
            raise MissingExtraError(
                f"The {f!r} export needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                f"not installed: {EXTRA}."
            )
        why = unavailable(f)
        if why is not None:
            raise BackendError(f"The {f!r} export {why}: run this with KERAS_BACKEND=tensorflow, "
                               "which reads the files written on any backend.")
    return formats


def runtime_of(format):
    """The runtime a `format` export is checked in, with its version."""
    package, label = {"saved_model": ("tensorflow", "tensorflow"), "onnx": ("onnxruntime", "onnxruntime"),
                      "litert": ("ai-edge-litert", "ai_edge_litert")}[format]
    return f"{label} {importlib.metadata.version(package)}"


def onnx_ready(model):
    """`model` with each `Normalization` of fixed statistics as the equivalent `Rescaling`.

    Why: Keras' `Normalization(mean=..., variance=...)` keeps its statistics
    as eager tensors that the traced function captures, and tf2onnx (1.17,
    through Keras 3.15's `export(format="onnx")`) turns those captures into
    extra graph inputs, so onnxruntime then asks for them. `Rescaling` with
    per-channel `scale = 1/std`, `offset = -mean/std` computes the same
    function (within float32 rounding) from constants in the graph. Returns
    `model` itself when it has no such layer.
    """
    import keras

    def fixed(layer):
        return isinstance(layer, keras.layers.Normalization) and layer.input_mean is not None

    if not any(fixed(layer) for layer in model.layers):
        return model

    def clone(layer):
        if fixed(layer):
            mean = np.asarray(layer.input_mean, np.float64).ravel()
            std = np.sqrt(np.asarray(layer.input_variance, np.float64).ravel())
            return keras.layers.Rescaling(scale=(1 / std).tolist(), offset=(-mean / std).tolist(),
                                          name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    copy(np.zeros((1, *model.input_shape[1:]), np.float32))  # Keras exports only models called once
    return copy


@contextlib.contextmanager
def _quiet():
    """Silence tf2onnx's and the converters' INFO logging and Python warnings for one export."""
    loggers = [logging.getLogger(n) for n in ("tf2onnx", "absl", "tensorflow")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def write_export(model, path, format):
    """Writes `model` as a `format` export at `path` with Keras' `model.export`."""
    with _quiet():
        if format == "onnx":
            onnx_ready(model).export(os.fspath(path), format="onnx", verbose=False)
        else:
            model.export(os.fspath(path), format={"saved_model": "tf_saved_model"}.get(format, format),
                         verbose=False)


def runner(path, format, threads=None):
    """A function `images -> outputs` running the `format` export at `path` in its own runtime.

    Loaded once (what a server or a benchmark keeps); `images` are float32
    NHWC of any batch size. `threads`: the runtime's intra-op threads
    (default: its own default; LiteRT's is one thread).
    """
    path = os.fspath(path)
    if format == "onnx":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda images: np.asarray(session.run(None, {name: np.asarray(images, np.float32)})[0])
    if format == "litert":
        from ai_edge_litert.interpreter import Interpreter

        with _quiet():
            interpreter = Interpreter(model_path=path, num_threads=threads)
        (inputs,), (outputs,) = interpreter.get_input_details(), interpreter.get_output_details()
        shape = []

        def run(images):
            x = np.asarray(images, np.float32)
            if shape != [x.shape]:
                interpreter.resize_tensor_input(inputs["index"], x.shape)
                interpreter.allocate_tensors()
                shape[:] = [x.shape]
            interpreter.set_tensor(inputs["index"], x)
            interpreter.invoke()
            return np.asarray(interpreter.get_tensor(outputs["index"]))

        return run
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    serve = loaded.signatures["serving_default"]  # what TF Serving calls

    def run(images, loaded=loaded):  # `loaded` kept alive: the signature refers to its variables
        (out,) = serve(tf.constant(np.asarray(images, np.float32))).values()
        return np.asarray(out)

    return run


def run_export(path, format, images):
    """The outputs of the `format` export at `path` on `images` (float32 NHWC), in its own runtime."""
    return runner(path, format)(images)


def check_images(model, count=16, seed=0):
    """Seeded random raw images (uint8 values as float32) of `model`'s input shape."""
    shape = tuple(model.input_shape[1:])
    if None in shape:
        raise ValueError(f"Exports are checked on images of a fixed size; the model takes {shape}.")
    return np.random.default_rng(seed).integers(0, 256, size=(count, *shape)).astype(np.float32)


def relative_difference(outputs, reference):
    """Largest absolute difference divided by the largest absolute reference value."""
    reference = np.asarray(reference, np.float64)
    return float(np.max(np.abs(np.asarray(outputs, np.float64) - reference)) / np.max(np.abs(reference)))


def export_formats(model, folder, name, formats="auto", images=None, labels=None, tolerance=TOLERANCE):
    """Writes `model`'s exports into `folder` and checks each; returns their `ExportCheck`s.

    `images` (raw, float32 NHWC; default `check_images(model)`) are what each
    export and the Keras model are compared on; with `labels` (class
    indices), each check records its top-1 on them. Each file is written
    under a temporary name and renamed into place only once it passed, so a
    failed check leaves `folder` as it was.
    """
    formats = resolve_formats(formats)
    folder = Path(folder)
    images = check_images(model) if images is None else np.asarray(images, np.float32)
    reference = np.asarray(model.predict(images, batch_size=len(images), verbose=0))
    checks = []
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.exports.", dir=folder))
    try:
        for format in formats:
            staged = staging / file_name(format, name)
            write_export(model, staged, format)
            outputs = run_export(staged, format, images)
            difference = relative_difference(outputs, reference)
            if not difference <= tolerance:
                raise ExportCheckError(
                    f"The {format} export of '{name}' differs from the Keras model by {difference:.2e} "
                    f"(largest relative difference on {len(images)} check images; allowed: {tolerance:g})."
                )
            top1 = None if labels is None else float(np.mean(np.argmax(outputs, axis=-1) == np.asarray(labels)))
            checks.append(ExportCheck(
                format=format, file_name=staged.name,
                sha256=path_sha256(staged),
                runtime=runtime_of(format), max_relative_difference=difference, sample_top1=top1))
        for check in checks:  # an old folder is moved aside, then removed once the new one is in place
            target, retired = folder / check.file_name, staging / f"{check.file_name}.old"
            if target.is_dir():
                os.replace(target, retired)
            os.replace(staging / check.file_name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return checks
