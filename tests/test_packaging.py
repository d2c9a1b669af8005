"""setup.py / setup.cfg: the wheel carries the published weights and the sample images,
and an installed wheel loads a published model offline, away from the source tree."""

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from keras_lc import weights

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    source = out / "source"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "runs", ".pytest_cache"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
         "--quiet", "-w", str(out)],
        check=True, capture_output=True, cwd=out,
    )
    (path,) = out.glob("keras_lc-*.whl")
    return path


def test_wheel_carries_published_weights_and_samples(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "keras_lc/sample_data/cifar10_test_sample.npz" in names
    published = weights.published_weights()
    assert published, "no published model in zoo/"
    for name, entry in published.items():
        for file_name in ("manifest.json", entry.file_name, entry.notop_file_name):
            assert f"keras_lc/published/{name}/{file_name}" in names
        shipped = json.loads(zipfile.ZipFile(wheel).read(f"keras_lc/published/{name}/manifest.json"))
        assert shipped["sha256"] == entry.sha256
    assert not any(n.endswith((".keras", ".pb")) for n in names)  # the folded models stay in zoo/


def test_installed_wheel_loads_a_published_model_offline(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # a pure-Python wheel installs by unpacking
    name = "resnet20_16_cifar10"
    script = f"""
import sys
sys.path.insert(0, {str(site)!r})
import numpy as np, keras_lc
from keras_lc import samples, data, zoo
assert keras_lc.__file__.startswith({str(site)!r}), keras_lc.__file__
entry = keras_lc.weights.published_weights()[{name!r}]
model = zoo.load_published({name!r})
sample = samples.cifar10_test_sample()
probabilities = model.predict_on_batch(sample.images)  # raw uint8 in: the model normalizes
assert np.allclose(np.sum(probabilities, -1), 1, atol=1e-5)
print("ACCURACY", float(np.mean(np.argmax(probabilities, -1) == sample.labels)), entry.sample_top1)
"""
    env = {"KERAS_LC_CACHE": str(tmp_path / "cache"), "KERAS_LC_WEIGHTS_URL": "http://127.0.0.1:9/none",
           "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy, card = map(float, result.stdout.split("ACCURACY")[-1].split())
    assert accuracy == card and accuracy > 0.5  # the shipped weights, not a random model (chance: 0.1)
