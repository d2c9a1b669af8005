"""The published CIFAR-10 models in zoo/: files, hashes and measured accuracy.

Each one loads through its builder (`keras_lc.zoo.load_published` is exercised by
the main job and tests/test_packaging.py), its files' sha256 equal the
manifest's, and its top-1 on the fixed check slice of the CIFAR-10 test set
(the first 100 images of each class) is within 1.5 points of the figure its
card states, for both forms: a broken loader, a wrong preprocessing constant
or a stale file fails here.
"""

from pathlib import Path

import keras
import pytest

import keras_lc
from keras_lc import weights, zoo
from keras_lc.data import load_dataset, sha256_of
from keras_lc.serving import compare_forms, top1

ZOO = Path(__file__).resolve().parents[1] / "zoo"
PUBLISHED = {
    "resnet20_16_cifar10": ("resnet20", {}),
    "resnet_lc20_16x128_frozen_cifar10": ("resnet_lc20_16x128", {}),
    "resnet_lc20_16x128_learnable_cifar10": ("resnet_lc20_16x128", {"frozen_spatial": False,
                                                                    "weights": "cifar10_learnable"}),
    "resnet_lc20_16x1_frozen_cifar10": ("resnet_lc20", {}),
}
TOLERANCE = 0.015


@pytest.fixture(scope="module")
def check_slice(cifar_archive):
    return load_dataset("cifar10", "test", cifar_archive, per_class=100)


def test_the_four_table1_models_are_published():
    assert set(PUBLISHED) <= set(weights.published_weights())
    for name in PUBLISHED:
        card = (ZOO / name / "README.md").read_text()
        entry = weights.published_weights()[name]
        assert f"{entry.top1:.2%}" in card and f"{entry.slice_top1:.2%}" in card
        assert entry.command.startswith("keras-lc train ") and entry.epochs >= 1


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_files_match_their_manifest(name):
    entry = weights.published_weights()[name]
    assert sha256_of(ZOO / name / entry.file_name) == entry.sha256
    assert sha256_of(ZOO / name / entry.notop_file_name) == entry.notop_sha256
    assert (ZOO / name / entry.file_name).stat().st_size < 2 * 2**20  # small enough to ship


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_accuracy_matches_the_card(name, check_slice):
    entry = weights.published_weights()[name]
    arch, variant = PUBLISHED[name]
    model = zoo.get_model(arch, **{"weights": "cifar10", **variant}, classifier_activation=None,
                          include_preprocessing=False)
    measured = compare_forms(model, keras_lc.fold(model), check_slice)
    assert measured["test_examples"] == 1000 == entry.slice_per_class * 10
    assert abs(measured["top1"] - entry.slice_top1) <= TOLERANCE, (measured, entry)
    shipped = keras.saving.load_model(ZOO / name / f"{name}_folded.keras", safe_mode=True)
    assert abs(top1(shipped, check_slice, normalize=False) - entry.slice_top1_folded) <= TOLERANCE, entry
    assert measured["fold_relative_error"] <= 1e-5
    assert measured["top1"] > 0.5  # it learned: chance is 0.1
