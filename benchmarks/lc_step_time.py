"""Training step time, peak memory and weights-file size of LC forms vs plain Conv2D.

Whole ResNet-20-16 networks on CIFAR shapes (32x32x3, batch 256 by default):
the plain baseline (`resnet_cifar`) and ResNet-LC-20-16xE with frozen spatial
kernels in the two_stage, composed and basis forms. Every configuration runs
in its own subprocess (so peak memory is its own), `--rounds` times in
interleaved order; the table prints, as ratios to the baseline measured in the
same run, the best step time over the rounds (contention from other processes
only ever adds time) and the median peak memory.

    python benchmarks/lc_step_time.py                 # full table (~15 min on 2 cores)
    python benchmarks/lc_step_time.py --quick         # batch 32, fewer configs

Peak memory is the growth of the process' peak resident set (VmHWM, reset just
before the first training step) over its resident set at that point:
activations, gradients, optimizer state and temporaries, without the
framework's footprint or the one-time cost of building the model. two_stage
configurations whose stored activations alone would exceed --two-stage-max-gb
are not run (the estimate is printed): that is the form that runs out of memory.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

DEPTH, WIDTH = 20, 16


def _vm(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def two_stage_activation_bytes(expansion, batch, depth=DEPTH, width=WIDTH):
    """float32 bytes of the E-times-wider intermediate activations two_stage keeps for backprop."""
    blocks = (depth - 2) // 6
    total = 0
    for stage, size in enumerate((32, 16, 8)):
        convs = 2 * blocks + (1 if stage == 0 else 0)  # the stem conv sits at stage 0's size
        total += convs * batch * size * size * width * (2**stage) * expansion * 4
    return total


def measure(form, expansion, batch, steps, max_seconds):
    """Runs in the child process: one configuration, JSON on stdout."""
    import keras
    import numpy as np

    from keras_lc import zoo

    if form == "plain":
        model = zoo.resnet_cifar(depth=DEPTH, width=WIDTH, classifier_activation=None)
    else:
        model = zoo.resnet_lc(depth=DEPTH, width=WIDTH, expansion=expansion, implementation=form,
                              frozen_spatial=True, classifier_activation=None, seed=0)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=(batch,))
    with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM: building the model is not training
        f.write("5")
    rss_before = _vm("VmRSS")
    model.train_on_batch(x, y)  # trace and compile
    times = []
    deadline = time.perf_counter() + max_seconds
    while len(times) < steps and (len(times) < 2 or time.perf_counter() < deadline):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    peak = _vm("VmHWM") - rss_before
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "w.weights.h5")
        model.save_weights(path)
        size = os.path.getsize(path)
    return {"step_s": statistics.median(times), "peak_bytes": peak, "weights_bytes": size,
            "steps": len(times)}


def run_child(config, args):
    command = [sys.executable, __file__, "--child", json.dumps(config),
               "--batch", str(args.batch), "--steps", str(args.steps),
               "--max-seconds", str(args.max_seconds)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256, help="global batch size (paper: 256)")
    parser.add_argument("--expansions", type=int, nargs="+", default=[1, 8, 32, 128],
                        help="E for the two_stage and composed forms")
    parser.add_argument("--basis-expansions", type=int, nargs="+", default=[1, 8, 32, 128, 512],
                        help="E for the basis form")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per configuration")
    parser.add_argument("--max-seconds", type=float, default=40.0,
                        help="stop timing a configuration after this long (at least 2 steps)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions of the whole table")
    parser.add_argument("--two-stage-max-gb", type=float, default=6.0,
                        help="skip two_stage configs whose stored activations exceed this")
    parser.add_argument("--quick", action="store_true", help="batch 32, E in {1, 128}, one round")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        config = json.loads(args.child)
        print(json.dumps(measure(config["form"], config["expansion"], args.batch, args.steps,
                                 args.max_seconds)))
        return
    if args.quick:
        args.batch, args.expansions, args.basis_expansions, args.rounds = 32, [1, 128], [1, 128], 1

    configs = [{"form": "plain", "expansion": 1}]
    skipped = {}
    for form in ("two_stage", "composed"):
        for e in args.expansions:
            estimate = two_stage_activation_bytes(e, args.batch) / 2**30
            if form == "two_stage" and estimate > args.two_stage_max_gb:
                skipped[(form, e)] = estimate
            else:
                configs.append({"form": form, "expansion": e})
    configs += [{"form": "basis", "expansion": e} for e in args.basis_expansions]

    results = {}
    for round_index in range(args.rounds):
        for config in configs:
            key = (config["form"], config["expansion"])
            outcome = run_child(config, args)
            results.setdefault(key, []).append(outcome)
            print(f"round {round_index + 1}/{args.rounds} {key[0]:>9} E={key[1]:<4} {outcome}",
                  file=sys.stderr, flush=True)

    def median(key, field):
        values = [r[field] for r in results[key] if field in r]
        if not values:
            return None
        return min(values) if field == "step_s" else statistics.median(values)

    base = {f: median(("plain", 1), f) for f in ("step_s", "peak_bytes", "weights_bytes")}
    print(f"\nResNet-20-16 training step on CPU, batch {args.batch}, 32x32; "
          f"best step time and median memory of {args.rounds} round(s); ratios to plain Conv2D ResNet-20 in this run")
    print(f"plain Conv2D: step {base['step_s'] * 1000:.0f} ms, peak memory "
          f"{base['peak_bytes'] / 2**20:.0f} MiB, weights file {base['weights_bytes'] / 2**10:.0f} KiB\n")
    print("| form | E | step time | peak memory | weights file |")
    print("|---|---|---|---|---|")
    for form, e in [("plain", 1)] + [(c["form"], c["expansion"]) for c in configs[1:]]:
        if median((form, e), "step_s") is None:
            print(f"| {form} | {e} | failed: {results[(form, e)][0].get('error')} | | |")
            continue
        cells = [f"{median((form, e), f) / base[f]:.2f}x" for f in ("step_s", "peak_bytes", "weights_bytes")]
        print(f"| {form} | {e} | " + " | ".join(cells) + " |")
    for (form, e), estimate in skipped.items():
        print(f"| {form} | {e} | not run: stored activations ~{estimate:.1f} GiB "
              f"> --two-stage-max-gb {args.two_stage_max_gb} | | |")


if __name__ == "__main__":
    main()
