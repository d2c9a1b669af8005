"""keras-lc on JAX where `import tensorflow` fails: `scripts/reproduce_table1.sh` (train and
export Table 1 models), evaluate, fold, and `data_parallel` over two host CPU devices
killed and resumed.

Each step runs in a subprocess whose import system refuses TensorFlow (and what needs it:
tensorboard, tensorflow_datasets, tf2onnx), with `KERAS_BACKEND=jax`, as on the GPU machine this
project is sometimes lent, which has JAX but no TensorFlow. The input pipeline is then the NumPy
one (`keras_lc.data.arrays`).
"""

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.harness import kill_at_line
from tests.training.test_run import _weights

REPO = Path(__file__).resolve().parents[1]
BLOCKED = ("tensorflow", "tensorboard", "tensorflow_datasets", "tf2onnx", "tf_keras")
PRELUDE = f"""
import sys
class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (no TensorFlow in this test)")
sys.meta_path.insert(0, NoTensorFlow())
"""
#: `python -c CLI COMMANDS`: each command of the JSON list `COMMANDS` through `keras_lc.cli.main`,
#: in one process (one JAX start-up), each followed by `STEP` on stdout and stderr.
STEP = "--- keras-lc command done ---"
CLI = PRELUDE + f"""
import json
from keras_lc.cli import main
for argv in json.loads(sys.argv[1]):
    code = main(argv)
    print({STEP!r}, flush=True)
    print({STEP!r}, file=sys.stderr, flush=True)
    if code:
        raise SystemExit(code)
assert "tensorflow" not in sys.modules, "TensorFlow was imported"
"""
RUN = PRELUDE + """
import runpy
sys.argv = ["test_run"] + sys.argv[1:]
runpy.run_module("tests.training.test_run", run_name="__main__")
assert "tensorflow" not in sys.modules, "TensorFlow was imported"
"""

pytestmark = pytest.mark.skipif(
    __import__("importlib").util.find_spec("jax") is None, reason="needs JAX (the test extra has it)")


def _env(cifar_archive):
    return dict(os.environ, KERAS_BACKEND="jax", PYTHONUNBUFFERED="1", KERAS_LC_CIFAR10=str(cifar_archive),
                JAX_PLATFORMS="cpu")


def _cli(commands, env, timeout=600):
    """`[(stdout, stderr)]` of each command (a list of arguments), run in one subprocess."""
    commands = [[str(a) for a in argv] for argv in commands]
    done = subprocess.run([sys.executable, "-c", CLI, json.dumps(commands)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    outs, errs = done.stdout.split(STEP + "\n"), done.stderr.split(STEP + "\n")
    assert len(outs) == len(errs) == len(commands) + 1, done.stdout[-3000:] + done.stderr[-3000:]
    return list(zip(outs, errs))[:-1]


#: `python -c MISTAKES COMMANDS`: each command through `keras_lc.cli.main`; prints one JSON line,
#: `[[exit status, stderr], ...]`.
MISTAKES = PRELUDE + """
import contextlib, io, json
from keras_lc.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        results.append([main(argv), err.getvalue()])
assert "tensorflow" not in sys.modules, "TensorFlow was imported"
print(json.dumps(results))
"""


def test_what_needs_tensorflow_is_one_line_exit_2_and_writes_nothing(tmp_path, cifar_archive):
    """A tensorflow-datasets dataset, MixUp, and ImageNet-sized images (the tf.data pipeline's):
    each refused in one line that says what to do, before anything is written."""
    tiny = ["--data-dir", str(cifar_archive), "--train-per-class", "5", "--test-per-class", "2", "--epochs", "1"]
    commands = [
        ["train", "--model", "resnet20", "--dataset", "cifar100", "--out", str(tmp_path / "tfds")],
        ["train", "--model", "resnet20", "--dataset", "cifar10", *tiny, "--mixup", "0.2", "--out", str(tmp_path / "mixup")],
        ["train", "--model", "resnet18", "--dataset", "imagenet2012", *tiny, "--out", str(tmp_path / "imagenet")],
    ]
    done = subprocess.run([sys.executable, "-c", MISTAKES, json.dumps(commands)], cwd=REPO, env=_env(cifar_archive),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    expected = ["is read by tensorflow-datasets, which is not installed here",
                "Received: randaugment=None, mixup_alpha=0.2, cutmix_alpha=0.0, image_size=32",
                "Received: randaugment=None, mixup_alpha=0.0, cutmix_alpha=0.0, image_size=224"]
    for (code, err), text in zip(results, expected):
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and text in lines[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_import_guard_refuses_tensorflow(tmp_path):
    done = subprocess.run([sys.executable, "-c", PRELUDE + "import tensorflow"], capture_output=True, text=True,
                          env=dict(os.environ, KERAS_BACKEND="jax"))
    assert done.returncode == 1 and "no TensorFlow in this test" in done.stderr


def _losses(run):
    with open(run / "history.csv") as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


def test_data_parallel_on_two_devices_resumes_and_trains_as_one_device(tmp_path, cifar_archive):
    """Killed after epoch 1 and resumed with `auto` (which picks data_parallel on two JAX devices):
    the per-epoch losses equal one device's to 1e-5."""
    one = tmp_path / "one"
    done = subprocess.run([sys.executable, "-c", RUN, str(one), "3", "default", "augment"], cwd=REPO,
                          env=_env(cifar_archive), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    env = dict(_env(cifar_archive), XLA_FLAGS="--xla_force_host_platform_device_count=2")
    two = tmp_path / "two"
    killed = kill_at_line([sys.executable, "-c", RUN, str(two), "3", "data_parallel", "augment"],
                          "[keras-lc] epoch 1/3 done", cwd=REPO, env=env)
    assert killed == -signal.SIGKILL and not (two / "summary.json").exists()
    done = subprocess.run([sys.executable, "-c", RUN, str(two), "3", "auto", "augment"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "strategy data_parallel (2 replicas)" in done.stdout
    summary = json.loads((two / "summary.json").read_text())
    assert summary["replicas"] == 2 and summary["resumed_from_epoch"] in (1, 2) and summary["steps"] == 15
    assert summary["tensorboard_logs"] is False
    assert np.allclose(_losses(two), _losses(one), rtol=0, atol=1e-5), (_losses(two), _losses(one))
    # The weights agree only up to the order of float additions, which two devices change and 15
    # steps at lr 0.05 amplify (measured: 1.6e-4 to 5.8e-3 relative in the largest-moving array).
    a, b = _weights(one / "final.weights.h5"), _weights(two / "final.weights.h5")
    assert sorted(a) == sorted(b) and all(np.all(np.isfinite(b[k])) for k in b)


def _table1_models():
    """`(name, paper's top-1, weights tag, train arguments)` of the script's four models."""
    text = (REPO / "scripts" / "reproduce_table1.sh").read_text()
    block = text[text.index("MODELS=(\n"):text.index("\n)\n")]
    return [tuple(line.strip().strip('"').split("|")) for line in block.splitlines()[1:]]


def test_reproduce_table1_names_the_papers_four_models():
    """Each of the script's entries parses as `keras-lc train` flags and builds the model the paper
    trained (checked here, in-process, for all four: the script's run below trains two)."""
    from keras_lc import LCConv2D, zoo
    from keras_lc.cli import build_parser
    from keras_lc.cli.train import model_kwargs
    from keras_lc.data import get_spec
    from keras_lc.training import Recipe

    expected = {  # name: (paper, tag, frozen k x k kernels, LCConv2D form, E)
        "resnet_lc20_16x128_frozen_cifar10": ("0.9189", "cifar10", True, "basis", 128),
        "resnet20_16_cifar10": ("0.916", "cifar10", None, None, None),
        "resnet_lc20_16x128_learnable_cifar10": ("0.9139", "cifar10_learnable", False, "composed", 128),
        "resnet_lc20_16x1_frozen_cifar10": ("", "cifar10", True, "basis", 1),
    }
    entries = _table1_models()
    assert [e[0] for e in entries] == list(expected)
    for name, paper, tag, arguments in entries:
        args = build_parser().parse_args(["train", *arguments.split(), "--dataset", "cifar10", "--out", "x"])
        kwargs = model_kwargs(args, Recipe(), get_spec("cifar10"))
        model = zoo.get_model(args.model, **kwargs)
        lc = [layer for layer in model.layers if isinstance(layer, LCConv2D)]
        expansions = {layer.get_config()["expansion"] for layer in lc}
        frozen = {layer.get_config()["frozen_spatial"] for layer in lc}
        assert {layer.get_config()["implementation"] for layer in lc} <= {kwargs.get("implementation")}
        got = (paper, tag, frozen.pop() if lc else None, kwargs.get("implementation"),
               expansions.pop() if lc else None)
        assert got == expected[name] and not expansions and not frozen, name
        assert model.output_shape == (None, 10) and len(lc) == (19 if lc else 0)
        keras.backend.clear_session()


def test_reproduce_table1_table_gives_the_papers_figure_beside_ours(tmp_path):
    """`TABLE_ONLY=1`: the table of finished runs and exports, nothing trained: the paper's top-1
    where it has one ("-" for E=1), ours in both forms, the epochs, the summed wall time and the
    median images/s of the runs' history."""
    runs, zoo = tmp_path / "runs", tmp_path / "zoo"
    cards = {"resnet20_16_cifar10": (0.916, 0.88081, 0.8808), "resnet_lc20_16x1_frozen_cifar10": (None, 0.8, 0.7999)}
    for name, (paper, top1, folded) in cards.items():
        (runs / name).mkdir(parents=True)
        (runs / name / "history.csv").write_text(
            "epoch,train_seconds,images_per_s\n1,100.5,480\n2,99.5,520\n3,1000,510\n")
        (zoo / name).mkdir(parents=True)
        (zoo / name / "manifest.json").write_text(json.dumps(
            {"top1": top1, "top1_folded": folded, "epochs": 75, **({"paper_top1": paper} if paper else {})}))
    env = dict(os.environ, RUNS=str(runs), ZOO=str(zoo), TABLE_ONLY="1", PYTHON=sys.executable,
               ONLY=" ".join(cards))
    done = subprocess.run(["bash", str(REPO / "scripts" / "reproduce_table1.sh")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trained in" not in done.stdout and not list(runs.glob("*.log"))  # nothing trained
    table = [line for line in done.stdout.splitlines() if line.startswith("| `")]
    assert table == [
        "| `resnet20_16_cifar10` | 91.60% | 88.08% | 88.08% | 75 | 1,200 s | 510 |",
        "| `resnet_lc20_16x1_frozen_cifar10` | - | 80.00% | 79.99% | 75 | 1,200 s | 510 |",
    ]


def test_reproduce_table1_trains_exports_and_tabulates_without_tensorflow(tmp_path, cifar_archive):
    """`scripts/reproduce_table1.sh` as on the GPU machine (JAX, TensorFlow not importable: a
    `sitecustomize` refuses it in every process the script starts), at a tiny budget (1 epoch, 50
    images per class), one of its four models (the frozen LC one, in the basis form: the most
    of keras_lc on JAX; `test_reproduce_table1_names_the_papers_four_models` checks all four's
    flags): the run, the export, the table; then `evaluate` on the run, and its files loaded
    here (TensorFlow), the fold computing the trained function. One model, not two at once:
    a second costs CI another 40 s, and the table's paper column is checked without training
    (`test_reproduce_table1_table_gives_the_papers_figure_beside_ours`)."""
    blocker = tmp_path / "no_tensorflow"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(PRELUDE)
    runs = tmp_path / "runs"
    names = ["resnet_lc20_16x1_frozen_cifar10"]
    env = dict(_env(cifar_archive), PYTHONPATH=str(blocker), DATA=str(cifar_archive), RUNS=str(runs),
               EPOCHS="1", PER_CLASS="50", TEST_PER_CLASS="10", PYTHON=sys.executable, PARALLEL="1",
               ONLY=" ".join(names))
    done = subprocess.run(["bash", str(REPO / "scripts" / "reproduce_table1.sh")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    logs = "".join(p.read_text()[-1500:] for p in sorted(runs.glob("*.log"))) if runs.exists() else ""
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + logs
    table = [line for line in done.stdout.splitlines() if line.startswith("| `")]
    assert [line.split("`")[1] for line in table] == names
    assert [line.split(" | ")[1] for line in table] == ["-"]  # no paper figure for E=1
    for name, line in zip(names, table):
        manifest = json.loads((runs / "zoo" / name / "manifest.json").read_text())
        assert f"| {manifest['top1']:.2%} | {manifest['top1_folded']:.2%} | 1 |" in line
        assert manifest["exports"] == [] and manifest["epochs"] == 1 and manifest["weights"] == "cifar10"
        summary = json.loads((runs / name / "summary.json").read_text())
        assert summary["steps"] == 2 and summary["tensorboard_logs"] is False  # 500 images, batch 256
    assert json.loads((runs / "zoo" / names[0] / "manifest.json").read_text())["model_kwargs"]["expansion"] == 1

    run, folder = runs / names[0], runs / "zoo" / names[0]
    [(evaluated, _)] = _cli([["evaluate", run, "--data-dir", cifar_archive, "--test-per-class", "10"]], env)
    summary = json.loads((run / "summary.json").read_text())
    evaluated = json.loads(evaluated.strip().splitlines()[-1])
    assert evaluated["top1"] == pytest.approx(summary["top1"], abs=1e-6) and evaluated["test_examples"] == 100
    # The files written on JAX load here (TensorFlow) and the fold computes the trained function.
    import keras_lc
    from keras_lc.data import load_image_folder, normalize

    images, labels, _ = load_image_folder(cifar_archive, "test", per_class=10)
    trained = keras.saving.load_model(run / "model.keras")
    trained.load_weights(run / "final.weights.h5")
    folded = keras.saving.load_model(folder / f"{names[0]}_folded.keras", safe_mode=True)
    logits = np.asarray(trained.predict(normalize(images), verbose=0))
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    got = np.asarray(folded.predict(images.astype("float32"), verbose=0))
    assert np.max(np.abs(got - expected)) <= 1e-5
    assert np.max(np.abs(np.asarray(keras_lc.fold(trained).predict(normalize(images), verbose=0)) - logits)) \
        <= 1e-4 * np.max(np.abs(logits))
    assert float(np.mean(np.argmax(logits, axis=-1) == labels)) == pytest.approx(summary["top1"], abs=1e-6)
