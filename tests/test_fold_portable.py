"""Folded models name nothing from keras_lc and load, with safe_mode=True, where it cannot be imported.

Every registered model's fold has a config without keras_lc objects (checked, on every backend,
by `tests/zoo/test_registry.py`, which builds and folds each one anyway); representative folded
models and every published `zoo/*/*_folded.keras` are loaded in a Python process in which
`import keras_lc` raises (checked there), run outside the repository, and give the outputs the
original model gives here.
"""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_lc import LCConv2D, TorchUniform, fold, weights, zoo
from keras_lc.data import normalize
from keras_lc.folding import keras_lc_references, stock_initializer
from keras_lc.samples import cifar10_test_sample
from tests.reference import randomize_batchnorm, rel_error

REPO = Path(__file__).resolve().parents[1]
ZOO = REPO / "zoo"
PUBLISHED_FOLDED = sorted(ZOO.glob("*/*_folded.keras"))

# Runs in a fresh interpreter (-I: no PYTHONPATH, no cwd on sys.path) in which every import of
# keras_lc or of a keras_lc submodule raises ImportError, as where keras_lc is not installed.
# argv: a JSON list of [model.keras, x.npy, y.npy]; writes each model's outputs to y.npy.
_WITHOUT_KERAS_LC = r"""
import importlib.abc, json, sys

class _NoKerasLC(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "keras_lc" or name.startswith("keras_lc."):
            raise ImportError(f"keras_lc is not installed here (blocked import of {name!r})")
        return None

sys.meta_path.insert(0, _NoKerasLC())
try:
    import keras_lc  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("keras_lc imported despite the block")

import keras, numpy as np

for model_path, x_path, y_path in json.loads(sys.argv[1]):
    model = keras.saving.load_model(model_path, safe_mode=True)
    stock = all(type(layer).__module__.startswith("keras.") for layer in model.layers)
    assert stock, [type(layer).__module__ for layer in model.layers]
    np.save(y_path, np.asarray(model.predict(np.load(x_path), verbose=0)))
assert not [name for name in sys.modules if name.split(".")[0] == "keras_lc"]
print("loaded", len(json.loads(sys.argv[1])), "models without keras_lc")
"""


def _outputs_without_keras_lc(jobs, workdir):
    """Outputs of each `(model.keras, inputs)` in `jobs`, computed where keras_lc cannot be imported."""
    workdir.mkdir(parents=True, exist_ok=True)
    triples = []
    for index, (path, x) in enumerate(jobs):
        x_path, y_path = workdir / f"x{index}.npy", workdir / f"y{index}.npy"
        np.save(x_path, x)
        triples.append([str(path), str(x_path), str(y_path)])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-I", "-c", _WITHOUT_KERAS_LC, json.dumps(triples)],
        cwd=workdir, env=env, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"loaded {len(jobs)} models without keras_lc" in result.stdout
    return [np.load(y_path) for _, _, y_path in triples]


@pytest.fixture(scope="module")
def sample_images():
    return normalize(cifar10_test_sample().images)


def test_keras_lc_references_finds_the_zoo_initializers_and_fold_leaves_none(tmp_path):
    model = zoo.resnet20(input_shape=(32, 32, 3), classes=10, seed=0)
    # 19 3x3 convs with a TorchUniform kernel initializer, and the classifier's kernel and bias:
    # 21 objects, each named twice (module and registered_name).
    references = keras_lc_references(model.get_config())
    assert len(references) == 42
    assert "/layers[1]/config/kernel_initializer: module=keras_lc.initializers" in references
    assert references.count("/layers[1]/config/kernel_initializer: registered_name=keras_lc>TorchUniform") == 1
    unfolded, folded = tmp_path / "unfolded.keras", tmp_path / "folded.keras"
    model.save(unfolded)
    assert len(keras_lc_references(unfolded)) == 42  # read from the file's config.json
    fold(model).save(folded)
    assert keras_lc_references(folded) == []
    # An LC model's layers themselves are keras_lc objects: found too.
    lc = zoo.resnet_lc20(input_shape=(32, 32, 3), expansion=2, seed=0)
    kinds = {r.split(": ")[1] for r in keras_lc_references(lc.get_config())}
    assert {"module=keras_lc.layers.lc_conv2d", "registered_name=keras_lc>LCConv2D"} <= kinds
    assert keras_lc_references(fold(lc).get_config()) == []


def test_stock_initializers_have_torch_uniform_bounds():
    """TorchUniform's stand-ins draw from the same U[-a, a], a = 1/sqrt(fan_in)."""
    # Enough values that the largest |w| comes within 10% of a (all but surely: 0.91**640).
    for shape, fan_in in [((3, 3, 16, 32), None), ((64, 10), None), ((1000,), 64), ((3, 3, 64, 2), 9)]:
        serialized = keras.initializers.serialize(TorchUniform(0, fan_in=fan_in))
        bound = 1 / np.sqrt(fan_in or np.prod(shape[:-1]))
        stock = stock_initializer(serialized)
        assert type(stock).__module__.startswith("keras.")
        values = np.asarray(stock(shape))
        reference = np.asarray(TorchUniform(0, fan_in=fan_in)(shape))
        assert np.abs(values).max() <= bound < 1.1 * np.abs(values).max()
        assert np.abs(reference).max() <= bound < 1.1 * np.abs(reference).max()
        assert abs(values.std() / reference.std() - 1) < 0.25  # both std a / sqrt(3)
    for other in ("Mine", "Uniform", "TorchUniformish"):  # names before and after it: not TorchUniform
        assert isinstance(stock_initializer({"module": "mine", "class_name": other}), keras.initializers.Zeros)
    # A config read back from JSON (a .keras file's) holds strings of its own, equal but not the same
    # objects: the same stand-in.
    read_back = json.loads(json.dumps(keras.initializers.serialize(TorchUniform(0, fan_in=9))))
    stock = stock_initializer(read_back)
    assert isinstance(stock, keras.initializers.RandomUniform)
    assert stock.get_config()["maxval"] == pytest.approx(1 / 3) == -stock.get_config()["minval"]


def test_a_stock_initializer_survives_the_fold_unchanged():
    """Only keras_lc initializers are replaced: a Keras one (here He normal, and a constant bias)
    is what the folded layer's config names, so re-initializing the folded model from its config
    draws as the original would."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, kernel_initializer="he_normal", bias_initializer=keras.initializers.Constant(0.5),
                            name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    config = fold(keras.Model(inputs, x)).get_layer("conv").get_config()
    assert config["kernel_initializer"]["class_name"] == "HeNormal"
    assert config["bias_initializer"]["class_name"] == "Constant"
    assert config["bias_initializer"]["config"]["value"] == 0.5


def test_folded_head_gets_stock_initializers_and_its_trained_weights():
    model = zoo.resnet20(input_shape=(32, 32, 3), classes=10, seed=0, classifier_activation=None)
    head = fold(model).get_layer("predictions")
    config = head.get_config()
    assert config["kernel_initializer"]["class_name"] == "VarianceScaling"
    assert config["kernel_initializer"]["config"]["scale"] == pytest.approx(1 / 3)
    assert config["bias_initializer"]["class_name"] == "RandomUniform"
    assert config["bias_initializer"]["config"]["maxval"] == pytest.approx(1 / 8)  # 1/sqrt(64)
    for new, old in zip(head.get_weights(), model.get_layer("predictions").get_weights()):
        np.testing.assert_array_equal(new, old)


def test_fold_refuses_a_keras_lc_object_it_cannot_replace():
    inputs = keras.Input((4, 8, 8, 3))
    wrapped = keras.layers.TimeDistributed(LCConv2D(4, 3, seed=0), name="per_frame")(inputs)
    with pytest.raises(ValueError, match=r"Layer 'per_frame' \(TimeDistributed\) has layer='LCConv2D', a keras_lc"):
        fold(keras.Model(inputs, wrapped))

    @keras.saving.register_keras_serializable(package="keras_lc", name="TestOnlyPenalty")
    class Penalty(keras.regularizers.Regularizer):
        def __call__(self, x):
            return 0.1 * keras.ops.sum(x**2)

        def get_config(self):
            return {}

    inputs = keras.Input((5,))
    dense = keras.layers.Dense(2, kernel_regularizer=Penalty(), name="penalized")(inputs)
    with pytest.raises(ValueError, match=r"'penalized' \(Dense\) has kernel_regularizer='Penalty'"):
        fold(keras.Model(inputs, dense))


REPRESENTATIVE = [  # (builder, arguments)
    ("resnet20", dict()),
    ("resnet_lc20", dict(expansion=4)),
    ("mobilenet_v2", dict(alpha=0.35, low_res=True, classes=10)),
    ("wide_resnet", dict(depth=10, width=2, frozen_spatial=True)),
]


def test_representative_folded_models_load_without_keras_lc(tmp_path, sample_images):
    x = sample_images[:32]
    jobs, expected = [], []
    for name, kwargs in REPRESENTATIVE:
        model = zoo.get_model(name, input_shape=(32, 32, 3), classifier_activation=None, seed=0, **kwargs)
        randomize_batchnorm(model)  # folding BatchNorm has to matter
        path = tmp_path / f"{model.name}_folded.keras"
        fold(model).save(path)
        jobs.append((path, x))
        expected.append(np.asarray(model.predict(x, verbose=0)))
    outputs = _outputs_without_keras_lc(jobs, tmp_path / "elsewhere")
    for (name, _), output, reference in zip(REPRESENTATIVE, outputs, expected):
        assert output.dtype == np.float32 and output.shape == reference.shape, name
        assert rel_error(output, reference) <= 1e-5, name


def test_published_folded_models_load_without_keras_lc(tmp_path):
    """The published folded files take the shipped uint8 images as they are and give the card's
    sample accuracy and the builder call's probabilities, where keras_lc cannot be imported."""
    sample = cifar10_test_sample()
    assert len(PUBLISHED_FOLDED) == 4 and sample.images.dtype == np.uint8
    for path in PUBLISHED_FOLDED:
        assert keras_lc_references(path) == [], path
        with zipfile.ZipFile(path) as archive:
            assert "keras_lc" not in archive.read("config.json").decode()
    outputs = _outputs_without_keras_lc([(p, sample.images) for p in PUBLISHED_FOLDED], tmp_path)
    published = weights.published_weights()
    for path, output in zip(PUBLISHED_FOLDED, outputs):
        entry = published[path.parent.name]
        assert output.shape == (100, 10)
        assert np.allclose(output.sum(axis=1), 1, atol=1e-5)  # probabilities
        assert np.mean(output.argmax(axis=1) == sample.labels) == pytest.approx(entry.sample_top1_folded)
        expected = np.asarray(zoo.load_published(entry.name).predict(sample.images, verbose=0))
        assert rel_error(output, expected) <= 1e-5, path.name
        per_image = np.linalg.norm(output - expected, axis=1) / np.linalg.norm(expected, axis=1)
        assert per_image.max() <= 1e-5, path.name
