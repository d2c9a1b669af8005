"""examples/finetune.py: a new head on a published backbone, then fine-tuning, on real CIFAR-10."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_lc import zoo
from keras_lc.samples import cifar10_test_sample
from keras_lc.weights import published_weights
from tests.examples.conftest import EXAMPLES, KWARGS, NAME, load_example
from tests.native_logs import run_python


@pytest.fixture(scope="module")
def finetune():
    return load_example("finetune")


def _published_backbone():
    kwargs = {k: v for k, v in KWARGS.items() if k not in ("classes", "classifier_activation")}
    kwargs["implementation"] = "composed"  # the example's default form
    return zoo.get_model("resnet_lc20", weights="cifar10", include_top=False, pooling="avg", **kwargs)


def _weights(backbone):
    """{variable path (`layer/variable`): value} of a backbone."""
    return {w.path: w.numpy() for w in backbone.weights}


def _run(finetune, capsys, *argv):
    code = finetune.main(["--model", NAME, *map(str, argv)])
    return code, capsys.readouterr()


def test_help_lists_every_default(finetune, tmp_path):
    done = run_python(EXAMPLES / "finetune.py", "--help", cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    options = " ".join(done.stdout.split()).split(" options: ", 1)[1]
    defaults = vars(finetune.build_parser().parse_args([]))
    assert defaults["out"] == "runs/finetuned.keras"  # not the current folder (the repository root)
    shown = {}
    for dest, default in defaults.items():
        if default is None or default is False:  # --image-folder, --verbose
            continue
        flag = "--" + dest.replace("_", "-")
        help_text = options.split(f" {flag} ", 1)[1].split(" --", 1)[0]
        shown[flag] = re.search(r"\(default: (.*?)\)", help_text).group(1).split(", ")[0]  # "0, none"
    assert shown == {"--" + dest.replace("_", "-"): str(default) for dest, default in defaults.items()
                     if default is not None and default is not False}
    assert len(shown) == 13 and shown["--fine-tune-lr"] == "1e-05"


def test_head_learns_then_fine_tuning_keeps_frozen_kernels_and_batchnorm(
        finetune, zoo_env, cifar_archive, tmp_path, capsys, monkeypatch):
    # parameter_counts is called at the start of each stage: record the backbone there
    snapshots, counts = [], finetune.parameter_counts

    def spy(model):
        snapshots.append(_weights(model.get_layer("resnet_lc20")))
        return counts(model)

    monkeypatch.setattr(finetune, "parameter_counts", spy)
    out = tmp_path / "tuned.keras"
    code, captured = _run(finetune, capsys, "--data-dir", cifar_archive, "--classes-subset", "airplane,frog",
                          "--train-images", 400, "--test-images", 200, "--batch-size", 50, "--epochs", 4, "--lr", 0.03,
                          "--fine-tune-epochs", 1, "--fine-tune-lr", 1e-3, "--out", out)
    assert code == 0, captured.err
    head = float(re.search(r"held-out accuracy after stage 1 .*: ([\d.]+)%", captured.out).group(1)) / 100
    # chance is 0.5; a head at chance reaches 0.6 on the 200 held-out test images with
    # probability P(Binomial(200, 0.5) >= 120) = 0.3%, so > 0.6 means it learned
    assert head > 0.6, captured.out

    backbone = _published_backbone()
    published = _weights(backbone)
    after_stage1 = snapshots[1]
    assert len(snapshots) == 2 and after_stage1.keys() == published.keys() and len(published) == 114
    assert [p for p in published if not np.array_equal(published[p], after_stage1[p])] == []

    tuned = _weights(keras.saving.load_model(out, safe_mode=True).get_layer("resnet_lc20"))
    spatial = [p for p in published if p.endswith("spatial_kernel")]
    batchnorm = [p for p in published if re.search(r"_bn[^/]*/(gamma|beta|moving_mean|moving_variance)$", p)]
    combinations = [p for p in published if p.endswith("combination")]
    assert len(spatial) == len(combinations) == 19 and len(batchnorm) == 4 * 19
    assert [p for p in spatial + batchnorm if not np.array_equal(published[p], tuned[p])] == []
    assert [p for p in combinations if np.array_equal(published[p], tuned[p])] == []  # stage 2 trained

    assert "stage 1 (new head, backbone frozen): 130 trainable parameters" in captured.out  # 64*2 + 2
    stage2 = sum(int(np.prod(w.shape)) for layer in backbone.layers
                 if not isinstance(layer, keras.layers.BatchNormalization) for w in layer.trainable_weights)
    assert stage2 == sum(published[p].size for p in combinations)  # the LC combinations, nothing else
    assert f"stage 2 (fine-tuning; frozen spatial kernels and BatchNorm stay frozen): {stage2 + 130:,} " \
           "trainable parameters" in captured.out


def test_any_image_folder_and_bad_input(finetune, zoo_env, cifar_archive, tmp_path, capsys):
    sample = cifar10_test_sample()
    for label in (1, 7):  # automobile, horse: 10 real images each, as PNG (lossless)
        folder = tmp_path / "images" / sample.class_names[label]
        folder.mkdir(parents=True)
        for i in np.flatnonzero(sample.labels == label):
            (folder / f"{i}.png").write_bytes(tf.io.encode_png(sample.images[i]).numpy())
    code, captured = _run(finetune, capsys, "--image-folder", tmp_path / "images", "--epochs", 1,
                          "--out", tmp_path / "folder.keras")
    assert code == 0, captured.err
    assert "new 2-class head ['automobile', 'horse']" in captured.out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.keras", "images"]  # no temporary left
    assert (tmp_path / "folder.keras").stat().st_size > 0  # test 1 loads one with safe_mode=True

    code, captured = _run(finetune, capsys, "--data-dir", cifar_archive, "--classes-subset", "cat,unicorn")
    assert code == 2 and len(captured.err.strip().splitlines()) == 1
    assert "Received: 'cat,unicorn'" in captured.err and "'airplane'" in captured.err
    code, captured = _run(finetune, capsys, "--model", "no_such_model")
    names = sorted(published_weights())  # the scratch zoo's and those the checkout ships
    assert code == 2 and NAME in names and len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith("finetune: error: No published model is named 'no_such_model'")
    assert captured.err.strip().endswith(f"Published: {names}.")
