"""Build+load time and batch-1 latency of every published model (issue 15).

For each published model (`zoo/*/manifest.json`) the builder call a user
makes, `keras_lc.zoo.<builder>(**model_kwargs, weights=<weights>)`, in the
form it was published (the manifest's `implementation`, passed through
`model_kwargs`), is timed in a fresh process after `import keras_lc`, so that
no cache of an earlier build helps; `--repeats` processes per model, in
interleaved rounds, report the median (and the best). The same rounds time
`keras.applications.ResNet50(weights=None)`, the reference the load times are
given as ratios to. One more process per model counts its parameters (to
compare with the manifest's `total_params` / `trainable_params`) and times
batch-1 inference of the published form against its folded form
(`keras_lc.fold`), in interleaved rounds: `predict_on_batch` (the target) and
eager `model(x, training=False)`.

    python benchmarks/load_time.py                  # 3 processes per model, 30 latency rounds
    python benchmarks/load_time.py --repeats 5 --rounds 50

Targets: every published model loads in <= 2 s and its published form's
batch-1 predict latency is <= 1.5x its folded form's. This is a benchmark,
not a test: it prints PASS/FAIL and always exits 0. Other processes using the
cores slow every number down (the ratios less so).
"""

import argparse
import glob
import json
import math
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOAD_TARGET_S = 2.0
LATENCY_TARGET = 1.5
RESNET50 = "keras.applications.ResNet50(weights=None)"


def manifests():
    """{name: manifest} of the published models in this checkout's `zoo/`."""
    found = {}
    for path in sorted(glob.glob(os.path.join(REPO, "zoo", "*", "manifest.json"))):
        with open(path) as f:
            manifest = json.load(f)
        found[manifest["name"]] = manifest
    return found


def build(task):
    """The timed call: `task` is a manifest, or `RESNET50`."""
    if task == RESNET50:
        import keras

        return keras.applications.ResNet50(weights=None)
    from keras_lc import zoo

    return getattr(zoo, task["builder"])(**task["model_kwargs"], weights=task["weights"])


def _median_ms(times):
    return statistics.median(times) * 1000


def latency(model, rounds):
    """Batch-1 latency (ms) of `model` and of `keras_lc.fold(model)`, in interleaved rounds."""
    import numpy as np

    import keras_lc

    models = {"published": model, "folded": keras_lc.fold(model)}
    x = np.random.default_rng(0).normal(size=(1,) + tuple(model.input_shape[1:])).astype("float32")
    for each in models.values():  # warm-up: trace and compile
        each.predict_on_batch(x)
        each(x, training=False)
    times = {(name, way): [] for name in models for way in ("predict", "call")}
    for _ in range(rounds):
        for name, each in models.items():
            start = time.perf_counter()
            each.predict_on_batch(x)
            middle = time.perf_counter()
            each(x, training=False)
            times[name, "predict"].append(middle - start)
            times[name, "call"].append(time.perf_counter() - middle)
    return {f"{name}_{way}_ms": _median_ms(values) for (name, way), values in times.items()}


def child(task, rounds):
    """Runs in the child process: import, then time the build; JSON on stdout."""
    start = time.perf_counter()
    import keras_lc  # noqa: F401  (the import is not part of the timed call)

    imported = time.perf_counter()
    model = build(task)
    result = {"import_s": imported - start, "load_s": time.perf_counter() - imported}
    if rounds:
        result["total_params"] = int(model.count_params())
        result["trainable_params"] = sum(math.prod(w.shape) for w in model.trainable_weights)
        result.update(latency(model, rounds))
    return result


def run_child(task, rounds=0):
    command = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(task), "--rounds", str(rounds)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes timed per model")
    parser.add_argument("--rounds", type=int, default=30, help="interleaved batch-1 latency rounds")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child), args.rounds)))
        return

    published = manifests()
    tasks = {name: manifest for name, manifest in published.items()}
    tasks[RESNET50] = RESNET50
    loads = {name: [] for name in tasks}
    for round_index in range(args.repeats):
        for name, task in tasks.items():
            outcome = run_child(task)
            loads[name].append(outcome)
            print(f"round {round_index + 1}/{args.repeats} {name}: {outcome}", file=sys.stderr, flush=True)
    details = {}
    for name, manifest in published.items():
        details[name] = run_child(manifest, args.rounds)
        print(f"latency {name}: {details[name]}", file=sys.stderr, flush=True)

    def load_times(name):
        return [r["load_s"] for r in loads[name] if "load_s" in r]

    imports = [r["import_s"] for runs in loads.values() for r in runs if "import_s" in r]
    reference = statistics.median(load_times(RESNET50))
    print(f"\nPublished models: builder call with weights=, each in a fresh process after `import keras_lc` "
          f"(median of {args.repeats}, best in parentheses; not counted: `import keras_lc`, median "
          f"{statistics.median(imports):.1f} s). {RESNET50} in the same rounds: {reference:.2f} s. "
          f"{os.cpu_count()} CPUs, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}.\n")
    print("| model | form | build+load | vs ResNet50 build | params total / trainable (manifest) "
          "| batch-1 predict: published / folded | eager call, training=False | targets |")
    print("|---|---|---|---|---|---|---|---|")
    verdicts = []
    for name, manifest in published.items():
        form = manifest["model_kwargs"].get("implementation", "conv2d")
        times, info = load_times(name), details[name]
        if not times or "error" in info:
            error = ([r for r in loads[name] if "error" in r] or [info])[0].get("error")
            print(f"| {name} | {form} | failed: {error} | | | | | FAIL |")
            verdicts.append(False)
            continue
        load = statistics.median(times)
        params_ok = (info["total_params"], info["trainable_params"]) == (
            manifest["total_params"], manifest["trainable_params"])
        predict = info["published_predict_ms"] / info["folded_predict_ms"]
        call = info["published_call_ms"] / info["folded_call_ms"]
        passed = load <= LOAD_TARGET_S and predict <= LATENCY_TARGET
        verdicts.append(passed and params_ok)
        print(
            f"| {name} | {form} | {load:.2f} s ({min(times):.2f} s) | {load / reference:.2f}x "
            f"| {info['total_params']:,} / {info['trainable_params']:,} "
            f"({'same' if params_ok else 'MANIFEST: %s / %s' % (manifest['total_params'], manifest['trainable_params'])}) "
            f"| {info['published_predict_ms']:.2f} / {info['folded_predict_ms']:.2f} ms = {predict:.2f}x "
            f"| {info['published_call_ms']:.1f} / {info['folded_call_ms']:.1f} ms = {call:.2f}x "
            f"| {'PASS' if passed else 'FAIL'}"
            f"{'' if load <= LOAD_TARGET_S else f' (load > {LOAD_TARGET_S:g} s)'}"
            f"{'' if predict <= LATENCY_TARGET else f' (predict > {LATENCY_TARGET:g}x folded)'} |"
        )
    print(f"\n{sum(verdicts)}/{len(verdicts)} published models meet the targets "
          f"(build+load <= {LOAD_TARGET_S:g} s, batch-1 predict <= {LATENCY_TARGET:g}x folded, parameter counts "
          "as in the manifest).")


if __name__ == "__main__":
    main()
