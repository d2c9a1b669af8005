"""examples/quickstart.py: a published model loaded by name, folded, checked, timed, evaluated."""

import json
import logging
import re
import shutil

import numpy as np
import pytest

from keras_lc import zoo
from keras_lc.data import load_image_folder, normalize
from keras_lc.samples import cifar10_test_sample
from keras_lc.weights import published_weights
from tests.examples.conftest import KWARGS, NAME, load_example


@pytest.fixture(scope="module")
def quickstart():
    return load_example("quickstart")


def _correct(model, images, labels):
    """Correct top-1 predictions, and the smallest gap between the two largest logits."""
    logits = model.predict(normalize(images), verbose=0)
    top2 = np.sort(logits, axis=-1)[:, -2:]
    return int(np.sum(np.argmax(logits, axis=-1) == labels)), float(np.min(top2[:, 1] - top2[:, 0]))


def test_quickstart_loads_folds_classifies_times_and_evaluates(quickstart, zoo_env, scratch_zoo, cifar_archive,
                                                              capsys, caplog):
    caplog.set_level(logging.WARNING, logger="tensorflow")
    code = quickstart.main(["--model", NAME, "--data-dir", str(cifar_archive), "--test-per-class", "10",
                            "--batch-size", "100", "--rounds", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    # classifying 100 images, then timing batches of 1 and 100: no tf.function retraces too often
    assert [r.getMessage() for r in caplog.records if "retracing" in r.getMessage()] == []
    manifest = json.loads((scratch_zoo / NAME / "manifest.json").read_text())
    assert f"card: test top-1 {manifest['top1']:.2%} (training form)" in out
    error = float(re.search(r"over the 100 shipped test images: (\S+) \(tolerance 1e-04\) OK", out).group(1))
    assert error <= 1e-5  # float32 rounding only

    # sample accuracy: the same weights in another form (the paper's two-stage), normalized by data.normalize
    independent = zoo.get_model("resnet_lc20", weights="cifar10", include_preprocessing=False,
                                **dict(KWARGS, implementation="two_stage"))
    sample = cifar10_test_sample()
    correct, gap = _correct(independent, sample.images, sample.labels)
    assert gap > 1e-4  # no near-tie that float32 rounding could flip
    assert f"sample accuracy: training form {correct}/100 = {correct:.1f}%, folded {correct}/100" in out
    assert len(re.findall(r"test/\w+/09\d\d\.jpg +true \w+ +predicted \w+ +[\d.]+%", out)) == 8

    for batch in (1, 100):
        training, folded, ratio = map(float, re.search(
            rf"batch +{batch}: training form +(\S+) ms, folded +(\S+) ms, folded/training (\S+)x", out).groups())
        # the ratio is of the unrounded times; each time is printed rounded to 0.05 ms
        assert training > 0 and folded > 0
        assert abs(ratio - folded / training) <= 0.005 + 0.05 * (1 + ratio) / training

    images, labels, _ = load_image_folder(cifar_archive, "test", per_class=10)
    correct, gap = _correct(independent, images, labels)
    assert gap > 1e-4
    assert "evaluating both forms on 100 cifar10 test images" in out
    assert re.search(rf"test top-1: training form {correct:.2f}%, folded {correct:.2f}% \(card: ", out)


def test_quickstart_fails_clearly(quickstart, zoo_env, scratch_zoo, tmp_path, capsys, monkeypatch):
    assert quickstart.main(["--model", "no_such_model"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    names = sorted(published_weights())  # the scratch zoo's and those the checkout ships
    assert NAME in names and len(err) == 1
    assert err[0].startswith("quickstart: error: No published model is named 'no_such_model'")
    assert err[0].endswith(f"Published: {names}.")

    assert quickstart.main(["--model", NAME, "--data-dir", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err

    # a manifest whose weights file is missing and that no mirror serves
    (tmp_path / "zoo" / NAME).mkdir(parents=True)
    shutil.copy(scratch_zoo / NAME / "manifest.json", tmp_path / "zoo" / NAME)
    monkeypatch.setenv("KERAS_LC_ZOO", str(tmp_path / "zoo"))
    monkeypatch.setenv("KERAS_LC_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("KERAS_LC_WEIGHTS_URL", raising=False)
    assert quickstart.main(["--model", NAME]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"The weights '{NAME}' are not shipped with this installation" in err[0]
