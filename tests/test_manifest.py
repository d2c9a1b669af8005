"""The typed records of a manifest (`keras_lc.manifest`): read back exactly, malformed ones named."""

import json
import re

import pytest

from keras_lc.manifest import ExportCheck, ManifestError, Preprocessing
from keras_lc.weights import PretrainedWeights

BASE = dict(name="tiny_cifar10", model="resnet_lc20", model_kwargs={"expansion": 1}, weights="cifar10",
            dataset="cifar10", classes=10, file_name="tiny.weights.h5", sha256="0" * 64, top1=0.5,
            top1_folded=0.5, epochs=1, recipe="test", command="none", trainable_params=1, total_params=1)
ONNX = {"format": "onnx", "file_name": "tiny.onnx", "sha256": "a" * 64, "runtime": "onnxruntime 1.32.0",
        "max_relative_difference": 9.2e-07, "sample_top1": 0.9}


def _write(tmp_path, **fields):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({**BASE, **fields}))
    return path


def test_exports_and_preprocessing_read_back_as_their_records(tmp_path):
    preprocessing = {"input_size": [32, 32, 3], "value_range": [0, 255], "mean": [0.5, 0.4, 0.3],
                     "std": [0.2, 0.25, 0.3]}
    litert = {**ONNX, "format": "litert", "file_name": "tiny.tflite", "sample_top1": None}
    entry = PretrainedWeights.from_json(_write(tmp_path, exports=[ONNX, litert], preprocessing=preprocessing))
    assert entry.exports == [ExportCheck(**ONNX), ExportCheck(**litert)]
    assert entry.preprocessing == Preprocessing((32, 32, 3), (0, 255), (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    assert entry.export("litert").file_name == "tiny.tflite"
    saved = {**ONNX, "format": "saved_model", "file_name": "saved_model"}
    three = PretrainedWeights.from_json(_write(tmp_path, exports=[ONNX, litert, saved]))
    assert [three.export(f).file_name for f in ("saved_model", "onnx", "litert")] == [
        "saved_model", "tiny.onnx", "tiny.tflite"]
    again = tmp_path / "again"
    again.mkdir()
    (again / "manifest.json").write_text(entry.to_json())
    assert PretrainedWeights.from_json(again / "manifest.json") == entry


@pytest.mark.parametrize("broken", [
    {k: v for k, v in ONNX.items() if k != "sha256"},
    {**ONNX, "max_relative_difference": "small"},
    {**ONNX, "runtime": ""},
    {**ONNX, "surprise": 1},
    {**ONNX, "sample_top1": True},
    {**ONNX, "format": "tensorrt"},  # not one of FORMATS
    "onnx",
])
def test_a_malformed_export_entry_is_named(tmp_path, broken):
    path = _write(tmp_path, exports=[broken])
    with pytest.raises(ManifestError, match=rf"^Manifest '.*manifest.json' has a malformed entry in `exports`: "
                       rf".*Received: {re.escape(repr(broken))}; fix or remove that file\.$"):
        PretrainedWeights.from_json(path)


def test_asking_for_a_format_it_lacks_lists_what_it_has(tmp_path):
    entry = PretrainedWeights.from_json(_write(tmp_path, exports=[ONNX]))
    with pytest.raises(ValueError, match=r"'tiny_cifar10' has no 'litert' export; it has \['onnx'\]"):
        entry.export("litert")
    bare = PretrainedWeights.from_json(_write(tmp_path))
    with pytest.raises(ValueError, match=r"has no 'onnx' export; it has \[\]"):
        bare.export("onnx")


@pytest.mark.parametrize("names", [
    [f"class {i}" for i in range(9)],  # one short
    [f"class {i}" for i in range(11)],  # one too many
    list(range(10)),  # as many, but not strings
    [f"class {i}" for i in range(9)] + [None],
])
def test_class_names_must_be_as_many_strings_as_classes(tmp_path, names):
    pattern = (rf"^Manifest '.*manifest.json' has `class_names` that are not 10 strings \(its `classes`\)\. "
               rf"Received: {re.escape(repr(names))}; fix or remove that file\.$")
    with pytest.raises(ManifestError, match=pattern):
        PretrainedWeights.from_json(_write(tmp_path, class_names=names))


def test_an_imagenet_manifest_with_its_1000_class_names_reads_back(tmp_path):
    names = [f"n{i:08d}" for i in range(1000)]  # a count above CPython's small-int cache
    entry = PretrainedWeights.from_json(_write(tmp_path, classes=1000, class_names=names))
    assert entry.classes == 1000 and entry.class_names == names


def test_an_export_format_listed_twice_is_refused(tmp_path):
    again = {**ONNX, "file_name": "other.onnx"}
    with pytest.raises(ManifestError, match=r"^Manifest '.*manifest.json' lists a format twice in `exports` "
                       r"\(one entry per format\)\. Received formats: \['onnx', 'onnx'\]; fix or remove that file\.$"):
        PretrainedWeights.from_json(_write(tmp_path, exports=[ONNX, again]))


def test_a_read_manifest_is_immutable(tmp_path):
    import dataclasses

    entry = PretrainedWeights.from_json(_write(tmp_path))
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.top1 = 0.99
    assert entry.top1 == 0.5
