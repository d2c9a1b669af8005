"""The `keras-lc` command line: list, train, evaluate, --help, --verbose, and one-line user errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from keras_lc import cli, zoo
from keras_lc.cli import common
from keras_lc.cli import train as train_command
from tests.harness import run_cli
from tests.native_logs import TENSORFLOW_IMPORT, TF_STARTUP, native_lines, run_python
from keras_lc.training import Recipe

REPO = Path(__file__).resolve().parents[1]


def test_list_prints_the_registry_and_the_datasets(capsys):
    code, out, _ = run_cli(["list"], capsys)
    assert code == 0 and out.split() == zoo.list_models() and "resnet_lc20" in out.split()
    code, out, _ = run_cli(["list", "resnet_lc2*"], capsys)
    assert code == 0 and out.split() == zoo.list_models("resnet_lc2*")
    code, out, _ = run_cli(["list", "--datasets"], capsys)
    assert code == 0 and out.startswith("cifar10: 10 classes, 32px, augmentation cifar")
    assert len(out.splitlines()) == 5


def test_help_explains_every_recipe_flag(capsys):
    code, out, _ = run_cli(["train", "--help"], capsys)
    assert code == 0
    flags = [flags[0] for _, flags, *_ in train_command.RECIPE_FLAGS]
    assert len(flags) == len(Recipe().to_dict())  # one flag per recipe field
    for flag in flags + ["--strategy", "--implementation", "--data-dir", "--out", "--frozen-spatial"]:
        assert flag in out, flag
    assert "(default: 75)" in out and "(default: 0.01)" in out


def test_verbose_is_one_flag_before_or_after_every_subcommand(capsys):
    parser = cli.build_parser()
    assert parser.parse_args(["list"]).verbose is False
    assert parser.parse_args(["--verbose", "list"]).verbose is True
    assert parser.parse_args(["list", "--verbose"]).verbose is True
    assert parser.parse_args(TRAIN + ["x", "--verbose"]).verbose is True
    assert parser.parse_args(["--verbose", *TRAIN, "x"]).verbose is True
    def squeezed(text):  # argparse wraps help at spaces and after hyphens
        return "".join(text.split())

    for command in cli.COMMANDS:
        code, out, _ = run_cli([command.name, "--help"], capsys)
        assert code == 0 and squeezed(f"--verbose {common.VERBOSE_HELP}") in squeezed(out), (command.name, out)
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0 and squeezed(f"--verbose {common.VERBOSE_HELP}") in squeezed(out), out


def test_a_real_process_prints_no_tensorflow_lines_unless_verbose():
    quiet = run_python("-m", "keras_lc.cli", "list")
    assert quiet.returncode == 0 and quiet.stdout.split() == zoo.list_models(), quiet.stderr
    assert quiet.stderr == ""  # no oneDNN notice, no "Could not find cuda drivers", no absl warning

    verbose = run_python("-m", "keras_lc.cli", "list", "--verbose")
    assert verbose.returncode == 0 and verbose.stdout == quiet.stdout, verbose.stderr
    # --verbose shows what TensorFlow prints when imported (and its device probe's lines)
    tensorflow = run_python("-c", TENSORFLOW_IMPORT)
    assert tensorflow.returncode == 0, tensorflow.stderr
    shown = native_lines(verbose.stderr)
    assert [line for line in native_lines(tensorflow.stderr) if line not in shown] == [], verbose.stderr


def test_train_then_evaluate_a_frozen_lc_model(tmp_path, cifar_archive, capsys):
    out = tmp_path / "run"
    code, stdout, err = run_cli(
        ["train", "--model", "resnet_lc20", "--expansion", "2", "--dataset", "cifar10",
         "--data-dir", str(cifar_archive), "--train-per-class", "10", "--test-per-class", "5",
         "--epochs", "1", "--batch-size", "50", "--no-validation", "--out", str(out)], capsys)
    assert code == 0, err
    assert "[keras-lc] LCConv2D implementation: basis (default for frozen LC under SGD" in stdout
    said = [line for line in stdout.splitlines() if f"'{cifar_archive}'" in line]
    assert said and said[0].startswith(("[keras-lc] reusing unpacked", "[keras-lc] unpacking")), stdout
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == {"name": "resnet_lc20", "kwargs": {
        "classes": 10, "classifier_activation": None, "expansion": 2, "implementation": "basis",
        "input_shape": [32, 32, 3], "seed": 0}}
    assert config["recipe"] == Recipe(epochs=1, batch_size=50).to_dict()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lc_implementations"] == ["basis"] and summary["steps"] == 2
    # the epoch's line starts a line of its own, after Keras' progress bar (whose line ends in \r redraws)
    epoch_lines = [line for line in stdout.split("\n") if "[keras-lc] epoch" in line]
    assert len(epoch_lines) == 1 and epoch_lines[0].startswith("[keras-lc] epoch 1/1 done ("), stdout
    assert json.loads(stdout.strip().splitlines()[-1])["top1"] == summary["top1"]

    code, stdout, err = run_cli(["evaluate", str(out)], capsys)
    assert code == 0, err
    evaluated = json.loads(stdout.strip().splitlines()[-1])
    assert evaluated["test_examples"] == 50
    assert evaluated["top1"] == round(summary["top1"], 4)  # printed rounded to 4 digits
    assert evaluated["test_loss"] == pytest.approx(summary["test_loss"], abs=5.1e-5)


@pytest.mark.parametrize(
    "flags, expected",
    [
        ([], "basis"),
        (["--implementation", "composed"], "composed"),
        (["--no-frozen-spatial"], "auto"),  # learnable spatial kernels: basis is not exact
        (["--no-frozen"], "auto"),  # the older spelling of the same flag
        (["--optimizer", "adamw", "--weight-decay-mode", "decoupled"], "auto"),  # not SGD
    ],
)
def test_lc_implementation_choice(flags, expected):
    args = cli.build_parser().parse_args(
        ["train", "--model", "resnet_lc20", "--dataset", "cifar10", "--out", "x", *flags])
    recipe = Recipe().replace(**{k: v for k, v in (("optimizer", args.recipe_optimizer),
                                                   ("weight_decay_mode", args.recipe_weight_decay_mode))
                                 if v is not None})
    from keras_lc.data import get_spec

    assert train_command.model_kwargs(args, recipe, get_spec("cifar10"))["implementation"] == expected
    args = cli.build_parser().parse_args(["train", "--model", "resnet20", "--dataset", "cifar10", "--out", "x"])
    assert "implementation" not in train_command.model_kwargs(args, Recipe(), get_spec("cifar10"))


TRAIN = ["train", "--model", "resnet_lc20", "--dataset", "cifar10", "--out"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["train"], "the following arguments are required: --model, --out, --dataset"),
        (TRAIN + ["x", "--epochs", "zero"], "argument --epochs: invalid int value: 'zero'"),
        (TRAIN + ["x", "--strategy", "tpu"], "argument --strategy: invalid choice: 'tpu'"),
        (TRAIN + ["x", "--epochs", "0"], "Recipe field `epochs` must be a positive integer. Received: epochs=0"),
        (TRAIN + ["x", "--randaugment", "2"], "expected NUM_OPS,FACTOR"),
        (["train", "--model", "resnet_lc2O", "--dataset", "cifar10", "--out", "x"],
         "Unknown model name 'resnet_lc2O'. Did you mean one of"),
        (["train", "--model", "resnet20", "--expansion", "4", "--dataset", "cifar10", "--out", "x"],
         "model 'resnet20' does not take --expansion"),
        (TRAIN + ["x", "--data-dir", "/nonexistent/cifar"], "Data directory not found: '/nonexistent/cifar'"),
        (["evaluate", "/nonexistent/run"], "'/nonexistent/run' is neither a run directory nor a published model"),
        (["list", "zzz*"], "no registered model matches 'zzz*'"),
    ],
)
def test_user_mistakes_give_one_line_and_exit_2(argv, message, capsys):
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("keras-lc") and message in err, err


def test_a_real_process_reports_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "keras_lc.cli", "train", "--model", "resnet_lc20", "--dataset", "cifar10",
         "--data-dir", str(tmp_path / "missing.tar.gz"), "--out", str(tmp_path / "run")],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    ours = [line for line in done.stderr.splitlines() if line and not line.startswith(TF_STARTUP)]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert ours == [f"keras-lc train: error: Data directory not found: '{tmp_path / 'missing.tar.gz'}'. "
                    "Pass an image-folder archive (e.g. cifar10-jpeg.tar.gz), a folder laid out "
                    "split/class/image.jpg, or a tensorflow-datasets data directory."]
    assert not (tmp_path / "run").exists()
