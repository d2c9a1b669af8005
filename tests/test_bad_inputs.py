"""Bad input, table-driven: one clear line, exit 2 (CLI) or the documented exception (API).

Every case asserts that the message quotes the offending value or path, that no
traceback reaches the user, and that nothing already on disk changed: the
finished run, the unfinished run, the files in the way and the repository's
`zoo/` are hashed before and after.
"""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_lc import cli
from tests.harness import run_cli
from keras_lc.training.run_dir import RunDirectory

REPO = Path(__file__).resolve().parents[1]
MODEL = ["--model", "resnet20", "--dataset", "cifar10"]
TINY = ["--train-per-class", "2", "--test-per-class", "1", "--epochs", "1", "--batch-size", "20",
        "--no-validation"]




def _tree_hash(*roots):
    digest = {}
    for root in roots:
        for path in sorted(Path(root).rglob("*")):
            if path.is_file() and path.name != ".lock":
                digest[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


@pytest.fixture(scope="module")
def place(tmp_path_factory, cifar_archive):
    """A finished tiny run, an unfinished one, a file in the way, a truncated archive."""
    root = tmp_path_factory.mktemp("bad_inputs")
    finished = root / "finished"
    code = cli.main(["train", *MODEL, "--data-dir", str(cifar_archive), *TINY, "--out", str(finished)])
    assert code == 0
    unfinished = root / "unfinished"
    unfinished.mkdir()
    config = json.loads((finished / "config.json").read_text())
    (unfinished / "config.json").write_text(json.dumps(config))
    zoo_dir = root / "zoo"  # a model published from "another run", and a folder that is none
    # No SavedModel/ONNX/LiteRT: what these tests check is the folders, not the formats.
    assert cli.main(["export", str(finished), "--name", "tiny", "--zoo-dir", str(zoo_dir), "--formats", "none"]) == 0
    manifest = json.loads((zoo_dir / "tiny" / "manifest.json").read_text())
    manifest["run_sha256"] = "0" * 64
    (zoo_dir / "tiny" / "manifest.json").write_text(json.dumps(manifest))
    (zoo_dir / "notes").mkdir()
    (zoo_dir / "notes" / "todo.txt").write_text("keep me\n")
    a_file = root / "a_file.txt"
    a_file.write_text("not a folder\n")
    return {"root": root, "finished": finished, "unfinished": unfinished, "file": a_file,
            "archive": cifar_archive}


# (case id, argv given `place`, text the one-line message must contain given `place`)
CLI_CASES = [
    ("unknown model", lambda p: ["train", "--model", "resnet_nope", "--dataset", "cifar10",
                                 "--out", str(p["root"] / "x")], lambda p: "resnet_nope"),
    ("unknown dataset", lambda p: ["train", "--model", "resnet20", "--dataset", "mnist",
                                   "--out", str(p["root"] / "x")], lambda p: "'mnist'"),
    ("model-arg not JSON", lambda p: ["train", *MODEL, "--model-arg", "expansion={bad",
                                      "--out", str(p["root"] / "x")], lambda p: "expansion={bad"),
    ("model-arg without =", lambda p: ["train", *MODEL, "--model-arg", "width",
                                       "--out", str(p["root"] / "x")], lambda p: "'width'"),
    ("model-arg unknown key", lambda p: ["train", "--model", "resnet_lc20", "--dataset", "cifar10",
                                         "--data-dir", str(p["archive"]), "--model-arg", "expanson=8",
                                         "--out", str(p["root"] / "x")],
     lambda p: "did you mean 'expansion'"),
    ("flag the model does not take", lambda p: ["train", *MODEL, "--data-dir", str(p["archive"]),
                                                "--expansion", "8", "--out", str(p["root"] / "x")],
     lambda p: "--expansion"),
    ("model-arg bad value", lambda p: ["train", *MODEL, "--data-dir", str(p["archive"]), *TINY,
                                       "--model-arg", 'shortcut="C"', "--out", str(p["root"] / "x")],
     lambda p: "shortcut='C'"),
    ("seed 2**32", lambda p: ["train", *MODEL, "--seed", "4294967296", "--out", str(p["root"] / "x")],
     lambda p: "seed=4294967296"),
    ("negative seed", lambda p: ["train", *MODEL, "--seed", "-1", "--out", str(p["root"] / "x")],
     lambda p: "seed=-1"),
    ("seed not an int", lambda p: ["train", *MODEL, "--seed", "seven", "--out", str(p["root"] / "x")],
     lambda p: "'seven'"),
    ("zero epochs", lambda p: ["train", *MODEL, "--epochs", "0", "--out", str(p["root"] / "x")],
     lambda p: "epochs=0"),
    ("zero batch size", lambda p: ["train", *MODEL, "--batch-size", "0", "--out", str(p["root"] / "x")],
     lambda p: "batch_size=0"),
    ("negative learning rate", lambda p: ["train", *MODEL, "--lr", "-0.1", "--out", str(p["root"] / "x")],
     lambda p: "learning_rate=-0.1"),
    ("label smoothing 1.5", lambda p: ["train", *MODEL, "--label-smoothing", "1.5",
                                       "--out", str(p["root"] / "x")], lambda p: "label_smoothing=1.5"),
    ("momentum 2", lambda p: ["train", *MODEL, "--momentum", "2", "--out", str(p["root"] / "x")],
     lambda p: "momentum=2.0"),
    ("negative weight decay", lambda p: ["train", *MODEL, "--weight-decay", "-1",
                                         "--out", str(p["root"] / "x")], lambda p: "weight_decay=-1.0"),
    ("warm-up longer than the run", lambda p: ["train", *MODEL, "--epochs", "3", "--warmup-epochs", "5",
                                               "--out", str(p["root"] / "x")], lambda p: "warmup_epochs=5"),
    ("bad randaugment", lambda p: ["train", *MODEL, "--randaugment", "two", "--out", str(p["root"] / "x")],
     lambda p: "'two'"),
    ("zero expansion", lambda p: ["train", "--model", "resnet_lc20", "--dataset", "cifar10",
                                  "--expansion", "0", "--out", str(p["root"] / "x")], lambda p: "'0'"),
    ("zero train-per-class", lambda p: ["train", *MODEL, "--train-per-class", "0",
                                        "--out", str(p["root"] / "x")], lambda p: "'0'"),
    ("zero validate-every", lambda p: ["train", *MODEL, "--validate-every", "0",
                                       "--out", str(p["root"] / "x")], lambda p: "'0'"),
    ("unknown strategy", lambda p: ["train", *MODEL, "--strategy", "tpu", "--out", str(p["root"] / "x")],
     lambda p: "'tpu'"),
    ("missing data dir", lambda p: ["train", *MODEL, "--data-dir", str(p["root"] / "nowhere.tar.gz"),
                                    "--out", str(p["root"] / "x")], lambda p: str(p["root"] / "nowhere")),
    ("--out is a file", lambda p: ["train", *MODEL, "--data-dir", str(p["archive"]), *TINY,
                                   "--out", str(p["file"])], lambda p: str(p["file"])),
    ("--out under a file", lambda p: ["train", *MODEL, "--data-dir", str(p["archive"]), *TINY,
                                      "--out", str(p["file"] / "run")], lambda p: str(p["file"] / "run")),
    ("--out holds a finished run", lambda p: ["train", *MODEL, "--data-dir", str(p["archive"]), *TINY,
                                              "--out", str(p["finished"])],
     lambda p: f"'{p['finished']}' already holds a finished run"),
    ("--out holds another configuration", lambda p: ["train", *MODEL, "--data-dir", str(p["archive"]),
                                                     *TINY, "--lr", "0.5", "--out", str(p["unfinished"])],
     lambda p: "differs in ['recipe']"),
    ("evaluate a missing run", lambda p: ["evaluate", str(p["root"] / "no_run")],
     lambda p: str(p["root"] / "no_run")),
    ("evaluate a file", lambda p: ["evaluate", str(p["file"])], lambda p: str(p["file"])),
    ("evaluate a missing weights file", lambda p: ["evaluate", str(p["finished"]), "--weights",
                                                   str(p["root"] / "none.weights.h5")],
     lambda p: str(p["root"] / "none.weights.h5")),
    ("export a missing run", lambda p: ["export", str(p["root"] / "no_run"), "--name", "n",
                                        "--zoo-dir", str(p["root"] / "zoo")],
     lambda p: str(p["root"] / "no_run")),
    ("export an unfinished run", lambda p: ["export", str(p["unfinished"]), "--name", "n",
                                            "--zoo-dir", str(p["root"] / "zoo")],
     lambda p: str(p["unfinished"])),
    ("export --zoo-dir under a file", lambda p: ["export", str(p["finished"]), "--name", "n",
                                                 "--zoo-dir", str(p["file"] / "zoo")],
     lambda p: str(p["file"])),
    ("export over another run's model", lambda p: ["export", str(p["finished"]), "--name", "tiny",
                                                   "--zoo-dir", str(p["root"] / "zoo")],
     lambda p: f"'{p['root'] / 'zoo' / 'tiny'}' already exists (model 'resnet20', 1 epochs)"),
    ("export over a folder that is no model", lambda p: ["export", str(p["finished"]), "--name", "notes",
                                                         "--zoo-dir", str(p["root"] / "zoo")],
     lambda p: f"'{p['root'] / 'zoo' / 'notes'}' already exists (not a published model)"),
    ("analyze a missing model", lambda p: ["analyze", str(p["root"] / "nope.keras"),
                                           "--out", str(p["root"] / "analysis")],
     lambda p: str(p["root"] / "nope.keras")),
    ("analyze --out is a file", lambda p: ["analyze", str(p["finished"]), "--out", str(p["file"])],
     lambda p: str(p["file"])),
    ("analyze bad epsilon", lambda p: ["analyze", str(p["finished"]), "--epsilon", "lots",
                                       "--out", str(p["root"] / "analysis")], lambda p: "lots"),
    ("list matches nothing", lambda p: ["list", "vgg*"], lambda p: "'vgg*'"),
    ("no command", lambda p: [], lambda p: "required"),
]


@pytest.mark.parametrize("case, argv, quoted", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_user_mistake_is_one_line_exit_2_and_changes_nothing(place, capsys, case, argv, quoted):
    before = _tree_hash(place["root"], REPO / "zoo")
    code, out, err = run_cli(argv(place), capsys)
    assert code == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("keras-lc"), err
    assert quoted(place) in lines[0], lines[0]
    assert "Traceback" not in out + err
    assert _tree_hash(place["root"], REPO / "zoo") == before
    assert not (place["root"] / "x").exists() or not (place["root"] / "x" / "config.json").exists()


def test_a_failed_start_leaves_no_configuration_and_the_corrected_command_runs(place, capsys):
    out = place["root"] / "corrected"
    common = ["train", *MODEL, "--data-dir", str(place["archive"]), *TINY, "--out", str(out)]
    code, _, err = run_cli(common + ["--model-arg", 'shortcut="C"'], capsys)
    assert code == 2 and "shortcut='C'" in err
    assert not (out / "config.json").exists()
    code, _, err = run_cli(common, capsys)
    assert code == 0, err


def test_export_replaces_another_runs_model_only_with_overwrite(place, capsys, tmp_path):
    import shutil

    zoo_dir = tmp_path / "zoo"
    shutil.copytree(place["root"] / "zoo", zoo_dir)
    argv = ["export", str(place["finished"]), "--name", "tiny", "--zoo-dir", str(zoo_dir), "--formats", "none"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "--overwrite" in err
    code, out, err = run_cli(argv + ["--overwrite"], capsys)
    assert code == 0, err
    manifest = json.loads((zoo_dir / "tiny" / "manifest.json").read_text())
    assert manifest["exports"] == [] and json.loads(out.strip().splitlines()[-1])["exports"] == {}
    assert sorted(p.name for p in (zoo_dir / "tiny").iterdir()) == [
        "README.md", "manifest.json", "tiny.weights.h5", "tiny_folded.keras", "tiny_notop.weights.h5"]
    from keras_lc.data import sha256_of

    assert manifest["run_sha256"] == sha256_of(place["finished"] / "final.weights.h5")
    code, _, err = run_cli(argv, capsys)  # now it is this run's: a re-export needs no flag
    assert code == 0, err


def test_resume_compares_the_resolved_configuration_not_the_command_line(place, capsys):
    """Flags swapped and a trailing slash on --data-dir: the same run, so it resumes."""
    from keras_lc.data import find_image_folder

    out = place["root"] / "respelled"
    folder = find_image_folder(place["archive"], "train").parent  # the unpacked image folder
    code, _, err = run_cli(["train", *MODEL, "--data-dir", str(folder), *TINY, "--out", str(out)], capsys)
    assert code == 0, err
    (out / "summary.json").unlink()  # as if killed before the end
    orphan = out / ".model.keras.abc123.tmp.keras"  # an interrupted final save
    orphan.write_bytes(b"half a file")
    respelled = ["train", "--dataset", "cifar10", "--model", "resnet20", *TINY[2:4], *TINY[:2],
                 *TINY[4:], "--out", str(out) + "/", "--data-dir", str(folder) + "/"]
    code, stdout, err = run_cli(respelled, capsys)
    assert code == 0, err
    assert "[keras-lc] resuming run" in stdout
    assert not orphan.exists()


def test_too_few_images_per_class_is_said_with_the_counts(place, capsys, tmp_path):
    import tensorflow as tf

    from keras_lc.data import load_image_folder

    for split, per_class in (("train", 3), ("test", 1)):  # a folder with 3 training images per class
        images, labels, names = load_image_folder(place["archive"], split, per_class=per_class)
        for i, (image, label) in enumerate(zip(images, labels)):
            path = tmp_path / "few" / split / names[label] / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(tf.io.encode_png(image).numpy())
    code, _, err = run_cli(["train", *MODEL, "--data-dir", str(tmp_path / "few"), *TINY[2:],
                         "--train-per-class", "5000", "--out", str(tmp_path / "run")], capsys)
    assert code == 0, err
    assert "--train-per-class 5000 asks for 50,000 images (10 classes); the data has 30," in err


def test_a_locked_run_directory_refuses_a_second_train_naming_the_holder(place, capsys):
    out = place["root"] / "locked"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom keras_lc.training.run_dir import RunDirectory\n"
         f"run = RunDirectory.open({str(out)!r}); print('locked', flush=True); time.sleep(120)"],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = run_cli(["train", *MODEL, "--data-dir", str(place["archive"]), *TINY,
                             "--out", str(out)], capsys)
        assert code == 2
        assert f"'{out}' is in use by another keras-lc train (pid {holder.pid})" in err
        assert not (out / "config.json").exists()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    with RunDirectory.open(out) as run:  # the lock died with its holder
        assert run.check({}) is False


def test_everything_a_run_saves_loads_after_import_keras_lc_alone(place):
    script = ("import keras, keras_lc, numpy as np, sys\n"
              f"m = keras.saving.load_model({str(place['finished'] / 'model.keras')!r})\n"
              "print(type(m.optimizer).__name__, m.predict(np.zeros((1, 32, 32, 3)), verbose=0).shape)")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-3:] == ["TorchSGD", "(1,", "10)"]


def _truncated_archive(p, tmp):
    path = tmp / "truncated" / "cifar10-jpeg.tar.gz"
    path.parent.mkdir()
    path.write_bytes(Path(p["archive"]).read_bytes()[:1000])
    return path


def _not_an_archive(p, tmp):
    path = tmp / "text.tar.gz"
    path.write_text("this is not a tar file\n")
    return path


def _corrupt_jpeg_folder(p, tmp, payload):
    import shutil

    from keras_lc.data import find_image_folder

    root = tmp / "folder"
    for split, per_class in (("train", 2), ("test", 1)):
        source = find_image_folder(p["archive"], split)
        for name in sorted(c.name for c in source.iterdir()):
            (root / split / name).mkdir(parents=True)
            for image in sorted((source / name).iterdir())[:per_class]:
                shutil.copy(image, root / split / name / image.name)
    bad = root / "train" / "cat" / "0000_bad.jpg"
    bad.write_bytes(payload)
    return root, bad


def _wrong_size_jpeg(p, tmp):
    import tensorflow as tf

    return _corrupt_jpeg_folder(p, tmp, tf.io.encode_jpeg(np.zeros((33, 32, 3), np.uint8)).numpy())


# (case id, make(place, tmp_path) -> (--data-dir, the path the message must name), KERAS_LC_CACHE)
DATA_CASES = [
    ("truncated archive", lambda p, t: (_truncated_archive(p, t),) * 2, None),
    ("not an archive", lambda p, t: (_not_an_archive(p, t),) * 2, None),
    ("corrupt JPEG in a class folder", lambda p, t: _corrupt_jpeg_folder(p, t, b"\xff\xd8 garbage"), None),
    ("JPEG of the wrong size", _wrong_size_jpeg, None),
    ("KERAS_LC_CACHE is a file", lambda p, t: (p["archive"], p["file"]), "file"),
    ("KERAS_LC_CACHE under a file", lambda p, t: (p["archive"], p["file"] / "cache"), "under"),
]


@pytest.mark.parametrize("case, make, cache", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_data_is_one_line_naming_the_path_before_training(place, capsys, tmp_path, monkeypatch,
                                                              case, make, cache):
    data_dir, named = make(place, tmp_path)
    monkeypatch.setenv("KERAS_LC_CACHE", str(named) if cache else str(tmp_path / "cache"))
    before = _tree_hash(place["root"], REPO / "zoo")
    code, out, err = run_cli(["train", *MODEL, "--data-dir", str(data_dir), *TINY,
                           "--out", str(tmp_path / "run")], capsys)
    assert code == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and str(named) in lines[0], err
    assert "Traceback" not in out + err
    assert not (tmp_path / "run" / "config.json").exists()
    assert _tree_hash(place["root"], REPO / "zoo") == before
    if (tmp_path / "cache" / "datasets").is_dir():  # nothing half-unpacked stays in the cache
        assert [p.name for p in (tmp_path / "cache" / "datasets").iterdir()
                if p.is_dir()] == []


# ---------------------------------------------------------------------------- API
def _lc(**kwargs):
    from keras_lc.layers import LCConv2D

    return LCConv2D(**{"filters": 8, "kernel_size": 3, **kwargs})


def _recipe(**kwargs):
    from keras_lc.training import Recipe

    return Recipe(**kwargs)


def _zoo(name, **kwargs):
    from keras_lc import zoo

    return zoo.get_model(name, **kwargs)


API_CASES = [
    ("use_bias not a bool", lambda: _lc(use_bias="no"), ValueError, "use_bias='no'"),
    ("use_bias an int", lambda: _lc(use_bias=1), ValueError, "use_bias=1"),
    ("seed 2**63", lambda: _lc(seed=2**63), ValueError, "seed=9223372036854775808"),
    ("negative seed", lambda: _lc(seed=-3), ValueError, "seed=-3"),
    ("float seed", lambda: _lc(seed=1.5), ValueError, "seed=1.5"),
    ("zero filters", lambda: _lc(filters=0), ValueError, "filters=0"),
    ("expansion a string", lambda: _lc(expansion="8"), ValueError, "expansion='8'"),
    ("unknown implementation", lambda: _lc(implementation="fast"), ValueError, "implementation='fast'"),
    ("recipe seed 2**32", lambda: _recipe(seed=2**32), ValueError, "seed=4294967296"),
    ("recipe unknown optimizer", lambda: _recipe(optimizer="lamb"), ValueError, "optimizer='lamb'"),
    ("model unknown", lambda: _zoo("resnet_nope"), ValueError, "resnet_nope"),
    ("model zero expansion", lambda: _zoo("resnet_lc20", expansion=0), ValueError, "expansion=0"),
    ("model unknown weights", lambda: _zoo("resnet20", weights="imagenet21k"), ValueError, "imagenet21k"),
]


@pytest.mark.parametrize("case, call, error, quoted", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_user_mistake_raises_a_clear_error(case, call, error, quoted):
    with pytest.raises(error) as raised:
        call()
    message = str(raised.value)
    assert quoted in message and "\n" not in message.strip(), message


def test_the_table_covers_at_least_forty_bad_inputs():
    assert len(CLI_CASES) + len(DATA_CASES) + len(API_CASES) >= 40
