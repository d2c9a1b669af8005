"""Published weights (`keras_lc.zoo.pretrained`): local files, the published-weights hook,
frozen/learnable variants and their seeds, `load_published`."""

import numpy as np
import pytest

import keras_lc.weights
from keras_lc import zoo
from keras_lc.data import sha256_of
from keras_lc.zoo import pretrained


@pytest.fixture(scope="module")
def resnet8_weights(tmp_path_factory):
    model = zoo.resnet_cifar(depth=8, width=4, seed=1)
    path = tmp_path_factory.mktemp("weights") / "resnet8.weights.h5"
    model.save_weights(path)
    return model, path


def test_weights_from_a_local_file(resnet8_weights, tmp_path, cifar_test_images):
    reference, path = resnet8_weights
    x, _ = cifar_test_images
    model = zoo.resnet_cifar(depth=8, width=4, seed=2, weights=str(path))
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), reference.get_weights()))
    np.testing.assert_array_equal(model(x[:8], training=False), reference(x[:8], training=False))
    archive = tmp_path / "resnet8.keras"  # a whole-model file works too
    reference.save(archive)
    from_archive = zoo.resnet_cifar(depth=8, width=4, seed=3, weights=archive)
    assert all(np.array_equal(a, b) for a, b in zip(from_archive.get_weights(), reference.get_weights()))
    with pytest.raises(ValueError, match="Only `None` and `softmax` activations are allowed"):
        zoo.resnet_cifar(depth=8, width=4, weights=str(path), classifier_activation="relu")
    text = tmp_path / "weights.txt"
    text.write_text("not weights")
    with pytest.raises(ValueError, match="existing .weights.h5 or .keras file"):
        zoo.resnet_cifar(depth=8, width=4, weights=str(text))


def test_pretrained_weights_hook(resnet8_weights, monkeypatch, tmp_path):
    """A published entry for the architecture is fetched (sha256-checked) and loaded."""
    reference, path = resnet8_weights
    cached = tmp_path / "weights" / "resnet8_4_demo.weights.h5"
    cached.parent.mkdir()
    cached.write_bytes(path.read_bytes())
    entry = keras_lc.weights.PretrainedWeights(
        name="resnet8_4_demo", model="resnet8_4", model_kwargs={"depth": 8, "width": 4},
        weights="demo", dataset="cifar10", classes=10, file_name=cached.name,
        sha256=sha256_of(cached), top1=0.1, top1_folded=0.1, epochs=0, recipe="-", command="-",
        trainable_params=0, total_params=0,
    )
    monkeypatch.setattr(pretrained, "published_weights", lambda requested=None: {entry.name: entry})
    monkeypatch.setenv("KERAS_LC_CACHE", str(tmp_path))
    model = zoo.resnet_cifar(depth=8, width=4, seed=5, weights="demo")
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), reference.get_weights()))
    message = r"If using `weights='demo'` with `include_top=True`, `classes` should be 10.  Received classes=100"
    with pytest.raises(ValueError, match=message):
        zoo.resnet_cifar(depth=8, width=4, weights="demo", classes=100)
    with pytest.raises(ValueError, match=r"published for 'resnet8_4' \('demo'\)"):
        zoo.resnet_cifar(depth=8, width=4, weights="other")
    with pytest.raises(ValueError, match=r"published for 'resnet8'.* \(none published\)"):
        zoo.resnet_cifar(depth=8, width=16, weights="demo")  # another architecture
    cached.write_bytes(b"corrupted")  # the registry's sha256 check guards the hook
    monkeypatch.delenv("KERAS_LC_WEIGHTS_URL", raising=False)
    with pytest.raises(ValueError, match="'resnet8_4_demo' are not shipped with this installation"):
        zoo.resnet_cifar(depth=8, width=4, weights="demo")
    assert not cached.exists()


def test_published_weights_pick_variant_and_seed(monkeypatch, tmp_path):
    """Frozen and learnable weights of one architecture have their own tags (a wrong
    `frozen_spatial` is an error), and `seed=None` adopts the published seed (the frozen
    kernels are defined by it)."""
    entries = {}
    references = {}
    for frozen, seed in ((True, 11), (False, 12)):
        reference = zoo.resnet_lc(depth=8, width=4, expansion=2, frozen_spatial=frozen, seed=seed)
        path = tmp_path / f"lc8_{frozen}.weights.h5"
        reference.save_weights(path)
        references[frozen] = reference
        entry = keras_lc.weights.PretrainedWeights(
            name=f"lc8_{frozen}", model="resnet_lc8_4x2",
            model_kwargs={"depth": 8, "width": 4, "expansion": 2, "frozen_spatial": frozen, "seed": seed},
            weights="demo" if frozen else "demo_learnable", dataset="cifar10", classes=10, file_name=str(path),
            sha256=sha256_of(path), top1=0.1, top1_folded=0.1, epochs=0, recipe="-", command="-",
            trainable_params=0, total_params=0,
        )
        entries[entry.name] = entry
    monkeypatch.setattr(pretrained, "published_weights", lambda requested=None: dict(entries))
    monkeypatch.setattr(pretrained, "fetch", lambda entry, include_top=True: entry.file_name)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    for frozen in (True, False):
        tag = "demo" if frozen else "demo_learnable"
        model = zoo.resnet_lc(depth=8, width=4, expansion=2, frozen_spatial=frozen, weights=tag,
                              include_preprocessing=False)  # x is not a raw image
        layer = model.get_layer("stem_conv")
        assert layer.seed == references[frozen].get_layer("stem_conv").seed
        assert layer.frozen_spatial is frozen
        np.testing.assert_array_equal(model(x, training=False), references[frozen](x, training=False))
    with pytest.raises(ValueError, match=r"'demo_learnable' of 'resnet_lc8_4x2' were trained with frozen_spatial=False"):
        zoo.resnet_lc(depth=8, width=4, expansion=2, weights="demo_learnable")
    with pytest.raises(ValueError, match=r"trained from seed=11.*pass seed=None or seed=11. Received: seed=3"):
        zoo.resnet_lc(depth=8, width=4, expansion=2, seed=3, weights="demo")



def test_load_published_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"No published model is named 'resnet20_cifar10'; did you mean one of "
                                         r"\['resnet20_16_cifar10'.*Published: \["):
        zoo.load_published("resnet20_cifar10")
