"""Inference latency: LC training forms vs the folded model vs plain ResNet-20.

Measured side by side in one process, in interleaved rounds (each round times
every model once), on CIFAR shapes (32x32x3), at batch 1 and batch 256:

- plain ResNet-20-16 (`resnet20`, BatchNorm layers as trained) and folded;
- ResNet-LC-20-16xE in the paper's two-stage form and in the composed form;
- the same LC model folded by `keras_lc.fold` (stock Conv2D, BatchNorm folded).

    python benchmarks/fold_inference.py                 # E=128, batches 1 and 256
    python benchmarks/fold_inference.py --expansion 16 --rounds 5
    python benchmarks/fold_inference.py --published     # the published models, every format

Ratios are to the plain (unfolded) ResNet-20 measured in the same run.
Targets: folded ResNet-LC-20x128 within 1.05x of plain ResNet-20; the
two-stage form about E times slower.

`--published` times each published model as users run it, fed raw images: its
builder call (the training form, e.g. the basis form), the folded `.keras`, and
its SavedModel, ONNX Runtime and LiteRT exports (`keras_lc.interchange.runner`,
the runtimes' threads set to the machine's cores), as ratios to the folded Keras
model in the same run.
"""

import argparse
import statistics
import time

import keras
import numpy as np

import keras_lc
from keras_lc import zoo


def _models(expansion):
    common = dict(classifier_activation=None, seed=0)
    plain = zoo.resnet20(classifier_activation=None)
    two_stage = zoo.resnet_lc20(expansion=expansion, implementation="two_stage", **common)
    composed = zoo.resnet_lc20(expansion=expansion, implementation="composed", **common)
    composed.set_weights(two_stage.get_weights())
    return {
        "plain ResNet-20": plain,
        "plain ResNet-20, folded": keras_lc.fold(plain),
        f"LC x{expansion} two-stage (paper)": two_stage,
        f"LC x{expansion} composed": composed,
        f"LC x{expansion} folded": keras_lc.fold(two_stage),
    }


def _time(model, x):
    start = time.perf_counter()
    model.predict_on_batch(x)
    return time.perf_counter() - start


def _published_runners(threads):
    """{published name: {form: images -> outputs}} for every published model and format."""
    from keras_lc import interchange, weights

    runners = {}
    for name, entry in sorted(weights.published_weights().items()):
        folder = weights.packaged_file(entry, entry.file_name).parent
        trained = zoo.load_published(name)
        folded = keras.saving.load_model(folder / f"{name}_folded.keras", safe_mode=True)
        forms = {"builder call": trained.predict_on_batch, "folded .keras": folded.predict_on_batch}
        for check in entry.exports or ():
            forms[check.format] = interchange.runner(folder / check.file_name, check.format, threads)
        runners[name] = forms
    return runners


def published(batches, rounds):
    """Prints the latency table of every published model in every form and format."""
    import os

    threads = os.cpu_count()
    runners = _published_runners(threads)
    x_all = np.random.default_rng(0).integers(0, 256, size=(max(batches), 32, 32, 3)).astype("float32")
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}, {threads} threads per runtime; "
          "median latency over interleaved rounds, ratio to the folded .keras\n")
    forms = sorted({f for r in runners.values() for f in r}, key=list(next(iter(runners.values()))).index)
    print("| model | batch | " + " | ".join(forms) + " |")
    print("|---|---|" + "---|" * len(forms))
    for name, runs in runners.items():
        for batch in batches:
            x = x_all[:batch]
            for run in runs.values():
                run(x)  # warm-up: trace, compile, allocate
            times = {form: [] for form in runs}
            for _ in range(rounds):
                for form, run in runs.items():
                    start = time.perf_counter()
                    run(x)
                    times[form].append(time.perf_counter() - start)
            base = statistics.median(times["folded .keras"])
            cells = [f"{statistics.median(times[f]) * 1000:.1f} ms ({statistics.median(times[f]) / base:.2f}x)"
                     if f in times else "-" for f in forms]
            print(f"| `{name}` | {batch} | " + " | ".join(cells) + " |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--expansion", type=int, default=128)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds per batch size")
    parser.add_argument("--slow-rounds", type=int, default=2,
                        help="rounds for the two-stage form at batches >= 64 (it is ~E times slower)")
    parser.add_argument("--published", action="store_true",
                        help="time the published models in every form and export format instead")
    args = parser.parse_args(argv)
    if args.published:
        return published(args.batches, max(args.rounds, 10))
    models = _models(args.expansion)
    x_all = np.random.default_rng(0).normal(size=(max(args.batches), 32, 32, 3)).astype("float32")
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}; "
          f"median latency of predict_on_batch over interleaved rounds\n")
    print("| model | " + " | ".join(f"batch {b}" for b in args.batches) + " |")
    print("|---|" + "---|" * len(args.batches))
    table = {name: [] for name in models}
    for batch in args.batches:
        x = x_all[:batch]
        for model in models.values():
            model.predict_on_batch(x)  # warm-up: trace and compile
        times = {name: [] for name in models}
        for round_index in range(args.rounds):
            for name, model in models.items():
                slow = "two-stage" in name and batch >= 64 and round_index >= args.slow_rounds
                if not slow:
                    times[name].append(_time(model, x))
        base = statistics.median(times["plain ResNet-20"])
        for name in models:
            ms = statistics.median(times[name]) * 1000
            table[name].append(f"{ms:.1f} ms ({ms / 1000 / base:.2f}x)")
    for name, cells in table.items():
        print(f"| {name} | " + " | ".join(cells) + " |")
    folded = models[f"LC x{args.expansion} folded"].predict_on_batch(x_all[:64])
    paper = models[f"LC x{args.expansion} two-stage (paper)"].predict_on_batch(x_all[:64])
    print(f"\nfold check: relative error of the folded vs the two-stage outputs "
          f"{np.linalg.norm(folded - paper) / np.linalg.norm(paper):.1e}")

if __name__ == "__main__":
    main()
