"""What a published model's manifest holds, typed: its preprocessing and its checked exports.

`keras_lc.weights.PretrainedWeights` is the manifest itself; the records
here are its nested fields, each read from JSON with a `ManifestError` that
names the file and what to do about it (`advice`).
"""

import dataclasses
import os
from pathlib import Path

#: The checkout's published models (a source tree) and the wheel's (package data).
SOURCE_ZOO = Path(__file__).resolve().parents[1] / "zoo"
PACKAGED_ZOO = Path(__file__).resolve().parent / "published"


class ManifestError(ValueError):
    """A manifest that cannot be read or does not describe published weights; names the file."""


class ManifestWarning(UserWarning):
    """A broken manifest that was skipped because it does not concern the requested model."""


def advice(path):
    """What to do about a broken file `path` of a published model, by where it lies."""
    path = Path(path).resolve()
    extra = os.environ.get("KERAS_LC_ZOO")
    if extra and path.is_relative_to(Path(extra).resolve()):
        return f"it is in KERAS_LC_ZOO='{extra}': fix or remove that file (or re-export the model)"
    if path.is_relative_to(PACKAGED_ZOO):
        return "it ships with keras-lc: reinstall keras-lc"
    if path.is_relative_to(SOURCE_ZOO):
        return "it is in the checkout's zoo/: restore it with git or re-export the model"
    return "fix or remove that file"


def _numbers(values, length=None):
    return (isinstance(values, list) and bool(values) and (length is None or len(values) == length)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values))


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """What a published model's inputs are: raw images and the normalization its weights expect.

    Attributes:
        input_size: `(height, width, channels)` of the images the model takes.
        value_range: `(low, high)` of raw pixel values (`(0, 255)`: uint8 RGB).
        mean, std: Per-channel statistics, in units of `value_range` scaled
            to [0, 1] (as `keras_lc.data.DatasetSpec` states them): the model
            (or `keras_lc.zoo.preprocess_input`) computes
            `(x / high - mean) / std`.
    """

    input_size: tuple
    value_range: tuple
    mean: tuple
    std: tuple

    @classmethod
    def from_dict(cls, data, where):
        """From a manifest's `preprocessing` object; a `ManifestError` naming `where` if malformed."""
        fields = [f.name for f in dataclasses.fields(cls)]
        lengths = {"input_size": 3, "value_range": 2, "mean": None, "std": None}
        ok = isinstance(data, dict) and sorted(data) == sorted(fields) and all(
            _numbers(data[k], lengths[k]) for k in fields)
        if not ok or len(data["mean"]) != len(data["std"]) or min(data["std"]) <= 0:
            raise ManifestError(
                f"Manifest '{where}' has a malformed `preprocessing`: expected lists "
                f"{fields} (input_size of 3, value_range of 2, one positive std per mean). "
                f"Received: {data!r}; {advice(where)}."
            )
        return cls(**{k: tuple(data[k]) for k in fields})


#: The formats a folded model is exported to (`keras_lc.interchange` writes them).
FORMATS = ("saved_model", "onnx", "litert")


@dataclasses.dataclass(frozen=True)
class ExportCheck:
    """One exported file of a published model, loaded back in its own runtime and checked.

    Attributes:
        format: `"saved_model"`, `"onnx"` or `"litert"` (`FORMATS`).
        file_name: The file (a folder for the SavedModel) beside the manifest.
        sha256: Hex sha256 of the file (of a folder: `keras_lc.archives.tree_sha256`).
        runtime: The runtime it was loaded in, with its version (e.g. `"onnxruntime 1.32.0"`).
        max_relative_difference: Largest absolute difference of its outputs
            from the Keras model's on the check images, divided by the
            largest absolute Keras output.
        sample_top1: Its top-1 on the 100 shipped CIFAR-10 test images fed
            raw, or `None` where the model does not take 32x32 RGB images.
    """

    format: str
    file_name: str
    sha256: str
    runtime: str
    max_relative_difference: float
    sample_top1: float = None

    @classmethod
    def from_dict(cls, data, where):
        """From one entry of a manifest's `exports` list; a `ManifestError` naming `where` if malformed."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        texts = ("format", "file_name", "sha256", "runtime")
        ok = (isinstance(data, dict) and set(fields) - {"sample_top1"} <= set(data) <= set(fields)
              and all(isinstance(data[k], str) and data[k] for k in texts) and data["format"] in FORMATS
              and _numbers([data["max_relative_difference"]])
              and (data.get("sample_top1") is None or _numbers([data["sample_top1"]])))
        if not ok:
            raise ManifestError(
                f"Manifest '{where}' has a malformed entry in `exports`: expected an object with "
                f"{list(fields)} (texts, format one of {list(FORMATS)}, then numbers; sample_top1 may "
                "be null). "
                f"Received: {data!r}; {advice(where)}."
            )
        return cls(**data)
