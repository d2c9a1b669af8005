"""Quickstart: a published frozen-random ResNet-LC, folded into plain convolutions.

    python examples/quickstart.py [--model NAME] [--data-dir PATH] [--batch-size N]

1. loads the published model NAME (default resnet_lc20_16x128_frozen_cifar10:
   ResNet-LC-20-16x128, whose 3x3 filters stay at their seeded random values
   while 1x1 linear combinations of them learned) with
   `keras_lc.zoo.load_published(NAME)`, that is `keras_lc.zoo.get_model(builder,
   weights="cifar10", **the arguments it was trained with)`, and prints its card
   figures;
2. folds it into stock Keras layers (`keras_lc.fold`) and checks that both forms
   give the same logits on the 100 real CIFAR-10 test images shipped with the
   package (`keras_lc.samples`); exit code 1 if the largest relative error
   exceeds 1e-4;
3. classifies those images with both forms;
4. measures the inference latency of both forms side by side, at batch 1 and
   at --batch-size;
5. with --data-dir (the CIFAR-10 archive cifar10-jpeg.tar.gz or its unpacked
   folder), evaluates both forms on the whole test split.

Nothing is downloaded: the weights and the sample images ship with keras-lc.
Images are normalized by `keras_lc.data.make_pipeline`, as in training.
"""

import os

# One BLAS thread. Loading frozen LC weights computes an SVD of each seeded spatial kernel with
# NumPy; on a few busy cores a multi-threaded OpenBLAS contends with TensorFlow's thread pool
# (ResNet-LC-20-16x128 on 2 cores: ~8 s instead of ~2 min). Set before NumPy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import inspect
import json
import statistics
import sys
import time
from pathlib import Path

import keras
import numpy as np

import keras_lc
from keras_lc import data, zoo
from keras_lc.cli import positive_int
from keras_lc.export import compare_forms
from keras_lc.samples import cifar10_test_sample
from keras_lc.weights import published_weights

DEFAULT_MODEL = "resnet_lc20_16x128_frozen_cifar10"
FOLD_TOLERANCE = 1e-4
RECIPE_FIELDS = ("optimizer", "learning_rate", "schedule", "batch_size", "momentum",
                 "weight_decay", "weight_decay_mode", "label_smoothing", "augment")


def lc_form(entry, implementation):
    """`{"implementation": implementation}` if `entry`'s builder makes LC models, else `{}`.

    The LCConv2D form changes the cost, never the function.
    """
    builder = zoo.get_builder(entry.builder or entry.model) if entry else None
    return {"implementation": implementation} if builder and "implementation" in inspect.signature(
        builder).parameters else {}


def interleaved_latency_ms(models, x, rounds=7):
    """{name: median ms of `predict_on_batch(x)`}, the models timed in turn each round, after a warm-up."""
    for model in models.values():
        model.predict_on_batch(x)  # trace and compile
    times = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            start = time.perf_counter()
            model.predict_on_batch(x)
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def max_relative_error(actual, expected):
    """Largest per-image relative error (L2 over the logits of each image)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.max(np.linalg.norm(actual - expected, axis=1) / np.linalg.norm(expected, axis=1)))


def describe(entry, model):
    kwargs = json.dumps(entry.model_kwargs, sort_keys=True)
    try:
        recipe = json.loads(entry.recipe)
        recipe = ", ".join(f"{k} {recipe[k]}" for k in RECIPE_FIELDS if k in recipe)
    except (ValueError, TypeError):
        recipe = entry.recipe
    forms = sorted({layer.resolved_implementation for layer in model.layers
                    if hasattr(layer, "resolved_implementation")})
    print(f"{entry.name}: keras_lc.zoo.load_published({entry.name!r}), i.e. keras_lc.zoo.get_model("
          f"{entry.builder or entry.model!r}, weights={entry.weights!r}, **{kwargs})")
    print(f"  card: test top-1 {entry.top1:.2%} (training form), {entry.top1_folded:.2%} (folded) "
          f"on {entry.dataset}, {entry.epochs} epochs")
    print(f"  recipe: {recipe}")
    layers = f"LCConv2D layers, {', '.join(forms)} form" if forms else "plain Conv2D layers"
    print(f"  {entry.trainable_params:,} trainable parameters, {entry.total_params:,} in all; "
          f"training form (unfolded): {layers}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="published model name (default: %(default)s)")
    parser.add_argument("--data-dir", help="CIFAR-10 archive or folder: also evaluate on the test split")
    parser.add_argument("--test-per-class", type=positive_int,
                        help="with --data-dir: only the first N test images of each class")
    parser.add_argument("--batch-size", type=positive_int, default=128,
                        help="latency and evaluation batch (default: %(default)s)")
    parser.add_argument("--implementation", default="composed", choices=("auto", "two_stage", "composed", "basis"),
                        help="LCConv2D form of the unfolded LC model (default: %(default)s, one convolution "
                             "per block; the frozen models trained in 'basis', the same function)")
    parser.add_argument("--rounds", type=positive_int, default=7,
                        help="interleaved latency rounds (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.data_dir and not Path(args.data_dir).exists():
        print(f"quickstart: error: --data-dir '{args.data_dir}' does not exist", file=sys.stderr)
        return 2
    try:
        entry = published_weights().get(args.model)  # None: load_published's error lists the names
        # = keras_lc.zoo.get_model(builder, weights=entry.weights, **entry.model_kwargs): the
        # arguments it was trained with, seed included
        model = zoo.load_published(args.model, **lc_form(entry, args.implementation))
    except (ValueError, OSError) as error:
        print(f"quickstart: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    describe(entry, model)
    folded = keras_lc.fold(model)
    forms = {"training form": model, "folded": folded}

    sample = cifar10_test_sample()  # normalized by the evaluation pipeline, in one batch
    x, onehot = next(iter(data.make_pipeline(sample.loaded_dataset(entry.dataset), training=False,
                                             batch_size=len(sample.labels))))
    x, labels = x.numpy(), np.argmax(onehot, axis=-1)
    outputs = {name: form.predict(x, verbose=0) for name, form in forms.items()}
    error = max_relative_error(outputs["folded"], outputs["training form"])
    verdict = "OK" if error <= FOLD_TOLERANCE else "FAILED"
    print(f"\nfold check: largest relative error of the folded logits over the {len(labels)} shipped "
          f"test images: {error:.1e} (tolerance {FOLD_TOLERANCE:.0e}) {verdict}")
    if error > FOLD_TOLERANCE:
        return fold_failed(error)
    correct = {name: int(np.sum(np.argmax(out, -1) == labels)) for name, out in outputs.items()}
    print("sample accuracy: " + ", ".join(f"{name} {n}/{len(labels)} = {n / len(labels):.1%}"
                                          for name, n in correct.items()))
    logits = outputs["folded"]
    softmax = entry.model_kwargs.get("classifier_activation") == "softmax"
    probabilities = logits if softmax else keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    print("a few predictions (folded):")
    for i in range(0, len(labels), 13):
        predicted = int(np.argmax(logits[i]))
        print(f"  {sample.files[i]:<26} true {sample.class_names[labels[i]]:<10} predicted "
              f"{sample.class_names[predicted]:<10} {probabilities[i, predicted]:6.1%}"
              f"{'' if predicted == labels[i] else '  (wrong)'}")

    print(f"\ninference latency, median of {args.rounds} interleaved predict_on_batch calls after a warm-up:")
    for batch in sorted({1, args.batch_size}):
        ms = interleaved_latency_ms(forms, np.resize(x, (batch, *x.shape[1:])), args.rounds)
        print(f"  batch {batch:>4}: training form {ms['training form']:8.1f} ms, folded {ms['folded']:8.1f} ms, "
              f"folded/training {ms['folded'] / ms['training form']:.2f}x "
              f"(folded {ms['training form'] / ms['folded']:.1f}x as fast)")

    if args.data_dir:
        try:
            test = data.load_dataset(entry.dataset, "test", args.data_dir, per_class=args.test_per_class)
        except (FileNotFoundError, ValueError) as error:
            print(f"quickstart: error: {' '.join(str(error).split())}", file=sys.stderr)
            return 2
        print(f"\nevaluating both forms on {test.num_examples} {entry.dataset} test images from {test.source}")
        measured = compare_forms(model, folded, test, args.batch_size)
        full_error = measured["fold_relative_error"]
        print(f"test top-1: training form {measured['top1']:.2%}, folded {measured['top1_folded']:.2%} "
              f"(card: {entry.top1:.2%}, {entry.top1_folded:.2%}); largest relative error {full_error:.1e} "
              "(per batch)")
        if full_error > FOLD_TOLERANCE:
            return fold_failed(full_error)
    return 0


def fold_failed(error):
    print(f"quickstart: FOLD CHECK FAILED: relative error {error:.1e} > {FOLD_TOLERANCE:.0e}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
