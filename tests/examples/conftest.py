"""Shared by the example tests: the examples as modules and a scratch zoo with one published model."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_lc import zoo
from keras_lc.data import sha256_of
from keras_lc.export import backbone
from keras_lc.samples import cifar10_test_sample
from keras_lc.training.run import parameter_counts
from keras_lc.weights import PretrainedWeights
from keras_lc.zoo.pretrained import dataset_preprocessing
from tests.harness import load_file_module
from tests.reference import randomize_batchnorm

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAME = "tiny_lc20_frozen_cifar10"
#: What `keras-lc train --model resnet_lc20 --frozen --implementation composed` records. Real
#: frozen runs train (and publish) the basis form, whose loading computes an SVD per layer:
#: the composed form keeps these tests free of that cost (the layer tests cover the conversion).
KWARGS = {"classes": 10, "classifier_activation": None, "expansion": 1, "frozen_spatial": True,
          "implementation": "composed", "input_shape": [32, 32, 3], "seed": 7}


def load_example(name):
    """`examples/NAME.py` as a module (its `main(argv)` runs the example in-process).

    examples/ goes on `sys.path`, as when the example runs as a script, for the helper
    module the examples share (`quiet_start`).
    """
    if str(EXAMPLES) not in sys.path:
        sys.path.append(str(EXAMPLES))
    return load_file_module(f"examples/{name}.py", f"example_{name}")


@pytest.fixture(scope="session")
def scratch_zoo(tmp_path_factory, cifar_test_images):
    """A zoo folder holding NAME/ as `keras-lc export` writes it (manifest, full and no-top
    weights, accuracy measured on real test images).

    The model is ResNet-LC-20-16x1 (frozen) at its seed's initialization with BatchNorm
    statistics and affine parameters moved away from the identity: it stands in for a
    trained model (what the examples do does not depend on how well it classifies, and
    its random features separate easy CIFAR-10 class pairs) at no training cost.
    """
    model = randomize_batchnorm(zoo.get_model("resnet_lc20", **KWARGS), seed=7)
    folder = tmp_path_factory.mktemp("zoo") / NAME
    folder.mkdir()
    model.save_weights(folder / f"{NAME}.weights.h5")
    backbone({"model": {"name": "resnet_lc20", "kwargs": KWARGS}}, model).save_weights(
        folder / f"{NAME}_notop.weights.h5")
    test_x, test_y = cifar_test_images
    top1 = float(np.mean(np.argmax(model.predict(test_x, verbose=0), -1) == test_y))
    counts = parameter_counts(model)
    entry = PretrainedWeights(
        name=NAME, model=model.name, model_kwargs=KWARGS, weights="cifar10", dataset="cifar10",
        classes=10, file_name=f"{NAME}.weights.h5", sha256=sha256_of(folder / f"{NAME}.weights.h5"),
        notop_file_name=f"{NAME}_notop.weights.h5",
        notop_sha256=sha256_of(folder / f"{NAME}_notop.weights.h5"), top1=top1, top1_folded=top1,
        epochs=0, recipe=json.dumps({"optimizer": "none: seeded initialization"}),
        command="tests/examples/conftest.py", trainable_params=counts["trainable"],
        total_params=counts["trainable"] + counts["non_trainable"],
        preprocessing=dataset_preprocessing("cifar10"), class_names=list(cifar10_test_sample().class_names))
    (folder / "manifest.json").write_text(entry.to_json())
    return folder.parent


@pytest.fixture()
def zoo_env(scratch_zoo, monkeypatch):
    """The published-weights registry sees the scratch zoo first."""
    monkeypatch.setenv("KERAS_LC_ZOO", str(scratch_zoo))
