"""Training-step images/s on each Keras backend, side by side, as ratios to Keras-on-TensorFlow.

    python benchmarks/backend_throughput.py
    python benchmarks/backend_throughput.py --rounds 3 --steps 8 --configs tensorflow jax jax-1-core jax-onednn --models resnet20
    python benchmarks/backend_throughput.py --list

A process runs one backend, so each (configuration, model) is timed in its own subprocess, and
the configurations take turns, round after round, so that any other load on the machine falls
on all of them alike. Printed: the median images/s over the rounds and the ratio to
`tensorflow` (the same model). The step is `model.fit` on in-memory batches (no input cost)
with the paper's recipe (TorchSGD, Nesterov 0.9, coupled weight decay 1e-2, label smoothing
0.1), float32, batch 256; the first 2 steps (tracing, compiling) are not timed. Models:
ResNet-20-16, ResNet-LC-20-16x128 frozen in the basis form (what `keras-lc train` uses), and
learnable in the composed form.

Configurations (`--list`): the three backends as installed, and variants that test why JAX is
slower on this CPU: each backend on one core (`-1-core`, the process pinned to CPU 0: how much of
the step runs in parallel), and JAX with one XLA CPU flag (`XLA_FLAGS`) each: Eigen on one thread
(`jax-eigen-1-thread`), XLA's oneDNN custom calls for convolutions and matmuls, the library
TensorFlow's CPU kernels use (`jax-onednn`), XNNPACK fusions (`jax-xnnpack`) and fast math
(`jax-fast-math`); and TensorFlow's own options (issue "Training speed"): without oneDNN
(`TF_ENABLE_ONEDNN_OPTS=0`), the whole step compiled by XLA (`jit_compile=True`) or XLA
auto-clustering (`TF_XLA_FLAGS`), and its thread pools (`TF_NUM_INTEROP_THREADS`,
`TF_NUM_INTRAOP_THREADS`). The README's performance section gives what was measured and found.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Set in a child's environment: `model.compile(jit_compile=True)` (XLA for the whole step).
JIT_COMPILE = "BENCHMARK_JIT_COMPILE"
#: name -> (KERAS_BACKEND, extra environment, CPUs the process may run on or None for all)
CONFIGS = {
    "tensorflow": ("tensorflow", {}, None),
    "jax": ("jax", {}, None),
    "torch": ("torch", {}, None),
    "tensorflow-1-core": ("tensorflow", {}, {0}),
    "jax-1-core": ("jax", {}, {0}),
    "torch-1-core": ("torch", {}, {0}),
    "jax-eigen-1-thread": ("jax", {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}, None),
    "jax-onednn": ("jax", {"XLA_FLAGS": "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_custom_call=true"},
                   None),
    "jax-xnnpack": ("jax", {"XLA_FLAGS": "--xla_cpu_use_xnnpack=true"}, None),
    "jax-fast-math": ("jax", {"XLA_FLAGS": "--xla_cpu_enable_fast_math=true"}, None),
    "tensorflow-no-onednn": ("tensorflow", {"TF_ENABLE_ONEDNN_OPTS": "0"}, None),
    "tensorflow-jit-compile": ("tensorflow", {JIT_COMPILE: "1"}, None),
    "tensorflow-auto-jit": ("tensorflow", {"TF_XLA_FLAGS": "--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit"}, None),
    "tensorflow-interop-1": ("tensorflow", {"TF_NUM_INTEROP_THREADS": "1"}, None),
    "tensorflow-interop-1-intraop-2": ("tensorflow", {"TF_NUM_INTEROP_THREADS": "1",
                                                      "TF_NUM_INTRAOP_THREADS": "2"}, None),
}
MODELS = ("resnet20", "resnet_lc20_16x128_basis", "resnet_lc20_16x128_composed")
DEFAULT_CONFIGS = ("tensorflow", "jax", "torch")


def build(name):
    """The benchmarked model `name` (of `MODELS`), logits out, seed 0."""
    from keras_lc import zoo

    if name == "resnet20":
        return zoo.resnet20(classifier_activation=None, seed=0)
    form = name.rsplit("_", 1)[1]
    return zoo.resnet_lc20(expansion=128, implementation=form, frozen_spatial=form == "basis",
                           classifier_activation=None, seed=0)


def child(model_name, steps, batch_size):
    """In the subprocess: the median training-step images/s of `model_name` on this backend."""
    import keras
    import numpy as np

    from step_timer import StepTimer  # this folder's

    from keras_lc.training import Recipe

    rng = np.random.default_rng(0)
    n = (steps + 2) * batch_size
    x = rng.normal(size=(n, 32, 32, 3)).astype("float32")
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, n)]
    recipe = Recipe(batch_size=batch_size)
    model = build(model_name)
    model.compile(optimizer=recipe.make_optimizer(steps + 2), loss=recipe.make_loss(from_logits=True),
                  jit_compile=True if os.environ.get(JIT_COMPILE) else "auto")
    timer = StepTimer(warmup=2)
    model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, callbacks=[timer], verbose=0)
    return {"backend": keras.backend.backend(), "images_per_s": batch_size / statistics.median(timer.times)}


def measure(config, model_name, steps, batch_size):
    """images/s of `model_name` under `config`, in a subprocess (None if it failed, with why)."""
    backend, extra, cpus = CONFIGS[config]
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2", **extra)
    pin = None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))
    done = subprocess.run([sys.executable, __file__, "--child", model_name, "--steps", str(steps),
                           "--batch-size", str(batch_size)], cwd=REPO, env=env, capture_output=True, text=True,
                          preexec_fn=pin)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return None, lines[-1] if lines else f"exit {done.returncode}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == backend, result
    return result["images_per_s"], None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), choices=sorted(CONFIGS))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--rounds", type=int, default=3, help="turns each configuration takes")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per measurement")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--list", action="store_true", help="print the configurations and exit")
    parser.add_argument("--child", metavar="MODEL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.batch_size)))
        return
    if args.list:
        for name, (backend, extra, cpus) in CONFIGS.items():
            pinned = "" if cpus is None else f" (pinned to CPU {', '.join(map(str, sorted(cpus)))})"
            print(f"{name:<31} KERAS_BACKEND={backend} {' '.join(f'{k}={v!r}' for k, v in extra.items())}{pinned}")
        return
    rates = {(c, m): [] for c in args.configs for m in args.models}
    errors = {}
    for round_ in range(args.rounds):
        for model_name in args.models:
            for config in args.configs:
                rate, error = measure(config, model_name, args.steps, args.batch_size)
                if rate is None:
                    errors[config, model_name] = error
                else:
                    rates[config, model_name].append(rate)
                print(f"round {round_ + 1}: {config:<31} {model_name:<28} "
                      f"{'failed: ' + error if rate is None else f'{rate:,.0f} images/s'}", flush=True)
    print(f"\nbatch {args.batch_size}, float32, median of {args.rounds} rounds x {args.steps} steps, "
          f"{os.cpu_count()} CPU cores; ratio: images/s / tensorflow's")
    print(f"{'model':<28} " + " ".join(f"{c:>31}" for c in args.configs))
    for model_name in args.models:
        base = statistics.median(rates["tensorflow", model_name]) if rates.get(("tensorflow", model_name)) else None
        cells = []
        for config in args.configs:
            values = rates[config, model_name]
            if not values:
                cells.append(f"{'failed':>31}")
                continue
            rate = statistics.median(values)
            ratio = f" ({rate / base:.2f}x)" if base else ""
            cells.append(f"{f'{rate:,.0f}{ratio}':>31}")
        print(f"{model_name:<28} " + " ".join(cells))
    for (config, model_name), error in errors.items():
        print(f"{config} / {model_name} failed: {error}")


if __name__ == "__main__":
    main()
