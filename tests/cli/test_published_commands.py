"""`keras-lc list --pretrained`, `keras-lc evaluate NAME` and `keras-lc predict NAME IMAGE...` on
the published models, fed the 100 CIFAR-10 test images shipped in `keras_lc/sample_data` (written
losslessly as PNG files, so the commands read exactly the arrays the manifests were measured on)."""

import json

import keras
import pytest

from keras_lc import weights
from keras_lc.samples import cifar10_test_sample
from tests.harness import run_cli

PUBLISHED = weights.published_weights()


@pytest.fixture(scope="module")
def sample_folder(tmp_path_factory):
    """`ROOT/test/CLASS/INDEX.png`: the shipped sample as an image folder."""
    root = tmp_path_factory.mktemp("sample")
    sample = cifar10_test_sample()
    for index, (image, label) in enumerate(zip(sample.images, sample.labels)):
        folder = root / "test" / sample.class_names[label]
        folder.mkdir(parents=True, exist_ok=True)
        keras.utils.save_img(folder / f"{index:03d}.png", image, scale=False)
    return root


def test_list_pretrained_shows_each_model_with_its_builder_call(capsys):
    code, out, err = run_cli(["list", "--pretrained"], capsys)
    assert code == 0, err
    for name, entry in PUBLISHED.items():
        assert f"{name}\n" in out and f"top-1 {entry.top1:.2%}" in out
    assert "keras_lc.zoo.get_model('resnet_lc20_16x128', weights='cifar10_learnable', frozen_spatial=False)" in out
    assert "shipped with keras-lc" in out and " MiB" in out
    code, _, err = run_cli(["list", "--pretrained", "vgg*"], capsys)
    assert code == 2 and "no published model matches 'vgg*'" in err and "Traceback" not in err


@pytest.mark.parametrize("name", ["resnet20_16_cifar10", "resnet_lc20_16x128_frozen_cifar10"])
def test_evaluate_name_measures_both_published_forms(name, sample_folder, capsys):
    code, out, err = run_cli(["evaluate", name, "--data-dir", str(sample_folder)], capsys)
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    entry = PUBLISHED[name]
    assert result["model"] == name and result["test_examples"] == 100
    assert result["top1"] == round(entry.sample_top1, 4)
    assert result["folded_top1"] == round(entry.sample_top1_folded, 4)
    assert result["top5"] >= result["top1"] and result["test_loss"] > 0
    assert all(len(repr(v).split(".")[-1]) <= 4 for v in result.values() if isinstance(v, float))


def test_predict_name_prints_top_classes_of_image_files(sample_folder, capsys):
    sample = cifar10_test_sample()
    model = "resnet_lc20_16x128_frozen_cifar10"
    files = [sample_folder / "test" / sample.class_names[sample.labels[i]] / f"{i:03d}.png" for i in range(100)]
    code, out, err = run_cli(["predict", model, *map(str, files), "--top", "2"], capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 100
    predicted = [line.split(": ", 1)[1].split(" ")[0] for line in lines]
    right = sum(p == sample.class_names[label] for p, label in zip(predicted, sample.labels))
    assert right / 100 == PUBLISHED[model].sample_top1  # the card's figure, through the CLI
    first = lines[0].split(": ", 1)[1].split(", ")
    assert len(first) == 2 and all(len(part.split(" ")[1]) == 5 for part in first)  # 0.123
    code, out, err = run_cli(["predict", model, str(sample_folder / "test" / "cat")], capsys)  # a folder
    assert code == 0 and len(out.strip().splitlines()) == 10


@pytest.mark.parametrize(
    "argv, message",
    [
        (["predict", "resnet20_cifar", "x.png"], "'resnet20_cifar' is not a published model; published models: ["),
        (["predict", "resnet20_16_cifar10", "missing.png"], "image 'missing.png' does not exist"),
        (["predict", "resnet20_16_cifar10", "{bad}"], "cannot read image '{bad}': not an image file Pillow can decode"),
        (["predict", "resnet20_16_cifar10", "{empty}"], "holds no image files"),
        (["predict", "resnet20_16_cifar10", "{bad}", "--top", "11"], "--top must be at most 10"),
        (["evaluate", "resnet20_cifar"], "'resnet20_cifar' is neither a run directory nor a published model"),
        (["evaluate", "resnet20_16_cifar10"], "needs --data-dir"),
    ],
)
def test_bad_name_or_image_is_one_line_exit_2(argv, message, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    (tmp_path / "empty").mkdir()
    argv = [a.format(bad=bad, empty=tmp_path / "empty") for a in argv]
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and message.format(bad=bad, empty=tmp_path / "empty") in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
