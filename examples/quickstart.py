"""Quickstart: train a frozen-random LC network briefly on real CIFAR-10, fold it, measure.

    python examples/quickstart.py [--data PATH] [--expansion 16] [--steps 20]

1. builds ResNet-LC-20-16xE with frozen random spatial kernels (basis form:
   under SGD it trains exactly like the paper's two-stage form, at the cost of
   a plain convolution);
2. trains it a few SGD steps on real CIFAR-10 training images;
3. loads the same weights into the paper's two-stage form and folds the model
   into plain Conv2D layers (BatchNorm folded too);
4. prints the fold error on real test images, the accuracy of both forms and
   the inference latency of each form measured side by side.

`--data` is the CIFAR-10 image-folder archive (cifar10-jpeg.tar.gz) or its
unpacked folder; it is unpacked once into ~/.cache/keras_lc ($KERAS_LC_CACHE).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

import keras_lc
from keras_lc import data, zoo

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpeg.tar.gz"


def latency_ms(model, x, repeats=5):
    """Median wall time of `predict_on_batch` (compiled inference), after a warm-up."""
    model.predict_on_batch(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(x)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("KERAS_LC_CIFAR10", str(DEFAULT_DATA)),
                        help="CIFAR-10 image-folder archive or folder (default: %(default)s)")
    parser.add_argument("--expansion", type=int, default=16, help="E, spatial filters per output channel")
    parser.add_argument("--steps", type=int, default=20, help="SGD steps of batch --batch-size")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--latency-batch", type=int, default=64, help="batch size for the latency measurement")
    args = parser.parse_args(argv)
    if not Path(args.data).exists():
        parser.error(f"CIFAR-10 not found at '{args.data}'; pass --data PATH (cifar10-jpeg.tar.gz or its folder)")

    keras.utils.set_random_seed(0)
    per_class = -(-args.steps * args.batch_size // 10)
    train_x, train_y, classes = data.load_image_folder(args.data, "train", per_class=per_class)
    test_x, test_y, _ = data.load_image_folder(args.data, "test", per_class=50)
    train_x, test_x = data.normalize(train_x), data.normalize(test_x)
    order = np.random.default_rng(0).permutation(len(train_y))
    train_x, train_y = train_x[order], train_y[order]
    print(f"CIFAR-10 from {args.data}: {len(train_y)} training and {len(test_y)} test images")

    build = dict(expansion=args.expansion, frozen_spatial=True, seed=0, classifier_activation=None)
    model = zoo.resnet_lc20(implementation="basis", **build)
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    frozen = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    print(f"ResNet-LC-20-16x{args.expansion}: {trainable:,} trainable parameters, "
          f"{frozen:,} frozen (random spatial basis and BatchNorm statistics)")
    history = model.fit(train_x, train_y, batch_size=args.batch_size, epochs=1, verbose=2)
    print(f"trained {args.steps} steps: loss {history.history['loss'][-1]:.3f}")

    # The same weights in the paper's two-stage form (the file converts A -> C).
    paper_form = zoo.resnet_lc20(implementation="two_stage", **build)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "lc.weights.h5")
        model.save_weights(path)
        paper_form.load_weights(path)
    folded = keras_lc.fold(paper_form)

    logits = model.predict(test_x, verbose=0)
    folded_logits = folded.predict(test_x, verbose=0)
    paper_logits = paper_form.predict(test_x, verbose=0)
    error = np.linalg.norm(folded_logits - logits) / np.linalg.norm(logits)
    paper_error = np.linalg.norm(paper_logits - logits) / np.linalg.norm(logits)
    accuracy = float(np.mean(np.argmax(logits, -1) == test_y))
    folded_accuracy = float(np.mean(np.argmax(folded_logits, -1) == test_y))
    print(f"relative error on {len(test_y)} real test images: two-stage vs basis {paper_error:.1e}, "
          f"folded vs basis {error:.1e} (float32; tolerance 1e-5)")
    print(f"test accuracy: training form {accuracy:.1%}, folded {folded_accuracy:.1%} (chance 10%)")
    shown = np.linspace(0, len(test_y) - 1, 6).astype(int)  # one image from several classes
    print("a few predictions (folded):", ", ".join(
        f"{classes[p]}{'' if p == t else f' (true: {classes[t]})'}"
        for p, t in zip(np.argmax(folded_logits[shown], -1), test_y[shown])))

    x = test_x[: args.latency_batch]
    forms = {"two-stage (paper)": paper_form, "basis (training)": model, "folded": folded}
    times = {name: latency_ms(m, x) for name, m in forms.items()}
    print(f"inference latency, batch {len(x)}, measured side by side:")
    for name, ms in times.items():
        print(f"  {name:<18} {ms:8.1f} ms   speed-up over two-stage {times['two-stage (paper)'] / ms:5.1f}x")
    if error > 1e-5 or folded_accuracy != accuracy:
        print("FOLD CHECK FAILED", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
