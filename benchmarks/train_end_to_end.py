"""`keras-lc train` end to end against its bare training step, side by side.

What a run costs beyond the step itself: the input pipeline (decode once, shuffle, pad-4 crop +
flip, normalization), the callbacks (CSV log, per-epoch checkpoint and backup, progress), and
the validation every `--validate-every` epochs. Measured in alternating rounds in one run:

- bare step: `model.fit` on one batch repeated in memory (no input cost), the paper's recipe
  (`benchmarks/train_throughput.py`'s `step_images_per_s`), median of `--steps` steps;
- end to end: `keras-lc train` in a fresh process, run twice, for `--epochs` epochs and for one
  epoch; the difference of the two wall-clock times is what `epochs - 1` steady epochs cost,
  everything included (start-up, decoding, compiling and the final evaluation cancel out);
- in-fit: the same runs' `history.csv` `train_seconds` (the epochs' `fit` time: pipeline and
  callbacks, but not validation or checkpoints between epochs), and what is left, the seconds
  per epoch spent outside `fit` (validation on a fifth as many test images, as CIFAR-10's
  10,000 against 50,000; checkpoint, backup and log, which do not grow with the split).

    python benchmarks/train_end_to_end.py
    python benchmarks/train_end_to_end.py --model resnet_lc20_16x128 --rounds 3

Prints images/s and the ratio to the bare step for each round and the median. Target
(issue "Training speed"): end to end >= 0.95x the bare step.
"""

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from train_throughput import ARCHIVE, step_images_per_s

from keras_lc import zoo
from keras_lc.training import Recipe


def run_train(model, data, out, epochs, per_class, validate_every, batch_size):
    """Wall-clock seconds of one `keras-lc train` process and its `history.csv` rows."""
    command = [
        sys.executable, "-m", "keras_lc.cli", "train", "--model", model, "--dataset", "cifar10",
        "--data-dir", str(data), "--train-per-class", str(per_class),
        "--test-per-class", str(max(1, per_class // 5)), "--epochs", str(epochs),
        "--validate-every", str(validate_every), "--batch-size", str(batch_size), "--out", str(out),
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    wall = time.perf_counter() - start
    with open(out / "history.csv", newline="") as f:
        return wall, list(csv.DictReader(f))


def end_to_end(model, data, workdir, epochs, per_class, validate_every, batch_size):
    """(wall images/s, in-fit images/s, seconds per epoch outside `fit`) of the steady epochs
    2..`epochs`, and the run's model
    (its builder's arguments as the run resolved them: the form the CLI trains)."""
    long_run = workdir / f"e{epochs}"
    long_wall, rows = run_train(model, data, long_run, epochs, per_class, validate_every, batch_size)
    short_wall, _ = run_train(model, data, workdir / "e1", 1, per_class, validate_every, batch_size)
    images = 10 * per_class * (epochs - 1)
    in_fit = sum(float(r["train_seconds"]) for r in rows[1:])
    config = json.loads((long_run / "config.json").read_text())["model"]
    between = (long_wall - short_wall - in_fit) / (epochs - 1)
    return images / (long_wall - short_wall), images / in_fit, between, config


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("KERAS_LC_CIFAR10", str(ARCHIVE)),
                        help="CIFAR-10 image-folder archive or folder")
    parser.add_argument("--model", default="resnet20", help="registered model (its CLI defaults)")
    parser.add_argument("--per-class", type=int, default=1000,
                        help="training images per class (a fifth as many test images)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs of the long run")
    parser.add_argument("--validate-every", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="timed bare steps per round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error(f"--epochs must be at least 2. Received: {args.epochs}")

    recipe = Recipe(batch_size=args.batch_size)
    print(f"{args.model}, CIFAR-10 {10 * args.per_class} training images, batch {args.batch_size}, "
          f"{args.epochs} vs 1 epochs, validation every {args.validate_every}, {os.cpu_count()} CPU cores")
    print(f"{'round':>5} {'bare step':>10} {'in fit':>16} {'end to end':>16} {'s/epoch out':>12}"
          "   (images/s; seconds per epoch outside fit)")
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(1, args.rounds + 1):
            workdir = Path(scratch) / f"round{round_}"
            wall, in_fit, between, config = end_to_end(args.model, args.data, workdir, args.epochs,
                                              args.per_class, args.validate_every, args.batch_size)
            model = zoo.get_model(config["name"], **config["kwargs"])
            bare = step_images_per_s(model, args.batch_size, args.steps, recipe)
            results.append((bare, in_fit, wall, between))
            print(f"{round_:>5} {bare:>10,.0f} {in_fit:>8,.0f} ({in_fit / bare:.2f}x) "
                  f"{wall:>8,.0f} ({wall / bare:.2f}x) {between:>12.1f}")
    bare, in_fit, wall, between = (statistics.median(column) for column in zip(*results))
    verdict = "ok" if wall / bare >= 0.95 else "MISSED"
    print(f"median {bare:>9,.0f} {in_fit:>8,.0f} ({in_fit / bare:.2f}x) {wall:>8,.0f} "
          f"({wall / bare:.2f}x) {between:>12.1f}   target end to end >= 0.95x: {verdict}")


if __name__ == "__main__":
    main()
