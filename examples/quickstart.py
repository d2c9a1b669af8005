"""Quickstart: a published frozen-random ResNet-LC, folded into plain convolutions.

    python examples/quickstart.py [--model NAME] [--data-dir PATH] [--batch-size N]

1. loads the published model NAME (default resnet_lc20_16x128_frozen_cifar10:
   ResNet-LC-20-16x128, whose 3x3 filters stay at their seeded random values
   while 1x1 linear combinations of them learned) with
   `keras_lc.zoo.load_published(NAME)`, the same as its card's builder call
   (`keras_lc.zoo.get_model("resnet_lc20_16x128", weights="cifar10")`), in the
   form it was published in, and prints its card figures;
2. folds it into stock Keras layers (`keras_lc.fold`) and checks that both forms
   give the same probabilities on the 100 real CIFAR-10 test images shipped with
   the package (`keras_lc.samples`), fed as the uint8 images they are; exit code
   1 if the largest relative error exceeds 1e-4;
3. classifies those images with both forms (`keras_lc.zoo.decode_predictions`);
4. measures the inference latency of both forms side by side, at batch 1 and
   at --batch-size;
5. with --data-dir (the CIFAR-10 archive cifar10-jpeg.tar.gz or its unpacked
   folder), evaluates both forms on the whole test split.

Nothing is downloaded: the weights and the sample images ship with keras-lc.
The published models normalize their inputs themselves (`include_preprocessing`).
"""

from quiet_start import import_tensorflow_quietly  # examples/quiet_start.py

import_tensorflow_quietly()  # TensorFlow's C++ start-up lines hidden unless --verbose

import argparse
import inspect
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import keras_lc
from keras_lc import data, zoo
from keras_lc.cli import positive_int
from keras_lc.cli.common import add_verbose_flag
from keras_lc.serving import top1
from keras_lc.samples import cifar10_test_sample
from keras_lc.serving import builder_call
from keras_lc.weights import published_weights

DEFAULT_MODEL = "resnet_lc20_16x128_frozen_cifar10"
FOLD_TOLERANCE = 1e-4
RECIPE_FIELDS = ("optimizer", "learning_rate", "schedule", "batch_size", "momentum",
                 "weight_decay", "weight_decay_mode", "label_smoothing", "augment")


def lc_form(entry, implementation):
    """`{"implementation": implementation}` if given and `entry`'s builder makes LC models, else `{}`.

    The LCConv2D form changes the cost, never the function; `None` keeps the published form.
    """
    builder = zoo.get_builder(entry.builder or entry.model) if entry and implementation else None
    return {"implementation": implementation} if builder and "implementation" in inspect.signature(
        builder).parameters else {}


def inference_function(model):
    """`model(x, training=False)` as one compiled `tf.function` for every batch size.

    Its input signature leaves the batch dimension open, so it is traced once:
    calling it at several batch sizes (the sample, batch 1, --batch-size) never
    retraces, unlike `predict_on_batch`, which traces again for every new
    input shape.
    """
    import tensorflow as tf

    spec = tf.TensorSpec((None, *model.input_shape[1:]), model.inputs[0].dtype)
    return tf.function(lambda x: model(x, training=False), input_signature=[spec], autograph=False)


def interleaved_latency_ms(functions, x, rounds=7):
    """{name: median ms of `function(x)`}, the functions timed in turn each round, after a warm-up."""
    for function in functions.values():
        function(x).numpy()
    times = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            start = time.perf_counter()
            function(x).numpy()  # .numpy(): wait for the result
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def max_relative_error(actual, expected):
    """Largest per-image relative error (L2 over the outputs of each image)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.max(np.linalg.norm(actual - expected, axis=1) / np.linalg.norm(expected, axis=1)))


def describe(entry, model):
    try:
        recipe = json.loads(entry.recipe)
        recipe = ", ".join(f"{k} {recipe[k]}" for k in RECIPE_FIELDS if k in recipe)
    except (ValueError, TypeError):
        recipe = entry.recipe
    forms = sorted({layer.resolved_implementation for layer in model.layers
                    if hasattr(layer, "resolved_implementation")})
    print(f"{entry.name}: keras_lc.zoo.load_published({entry.name!r}), i.e. {builder_call(entry)}")
    print(f"  card: test top-1 {entry.top1:.2%} (training form), {entry.top1_folded:.2%} (folded) "
          f"on {entry.dataset}, {entry.epochs} epochs")
    print(f"  recipe: {recipe}")
    layers = f"LCConv2D layers, {', '.join(forms)} form" if forms else "plain Conv2D layers"
    print(f"  {entry.trainable_params:,} trainable parameters, {entry.total_params:,} in all (card); "
          f"built: {model.count_params():,} in all, {layers}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="published model name (default: %(default)s)")
    parser.add_argument("--data-dir", help="CIFAR-10 archive or folder: also evaluate on the test split")
    parser.add_argument("--test-per-class", type=positive_int,
                        help="with --data-dir: only the first N test images of each class")
    parser.add_argument("--batch-size", type=positive_int, default=128,
                        help="latency and evaluation batch (default: %(default)s)")
    parser.add_argument("--implementation", choices=("two_stage", "composed", "basis"),
                        help="LCConv2D form of the unfolded LC model (default: the published form, "
                             "'basis' for the frozen models; every form computes the same function)")
    parser.add_argument("--rounds", type=positive_int, default=7,
                        help="interleaved latency rounds (default: %(default)s)")
    add_verbose_flag(parser)
    args = parser.parse_args(argv)
    if args.data_dir and not Path(args.data_dir).exists():
        print(f"quickstart: error: --data-dir '{args.data_dir}' does not exist", file=sys.stderr)
        return 2
    try:
        entry = published_weights().get(args.model)  # None: load_published's error lists the names
        # = the card's builder call: raw images in, probabilities out
        model = zoo.load_published(args.model, **lc_form(entry, args.implementation))
    except (ValueError, OSError) as error:
        print(f"quickstart: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    describe(entry, model)
    folded = keras_lc.fold(model)
    forms = {"training form": model, "folded": folded}
    infer = {name: inference_function(form) for name, form in forms.items()}

    sample = cifar10_test_sample()  # uint8 images, fed as they are: the models normalize them
    x, labels = sample.images.astype(np.float32), sample.labels
    outputs = {name: function(x).numpy() for name, function in infer.items()}
    error = max_relative_error(outputs["folded"], outputs["training form"])
    verdict = "OK" if error <= FOLD_TOLERANCE else "FAILED"
    print(f"\nfold check: largest relative error of the folded probabilities over the {len(labels)} shipped "
          f"test images: {error:.1e} (tolerance {FOLD_TOLERANCE:.0e}) {verdict}")
    if error > FOLD_TOLERANCE:
        return fold_failed(error)
    correct = {name: int(np.sum(np.argmax(out, -1) == labels)) for name, out in outputs.items()}
    print("sample accuracy: " + ", ".join(f"{name} {n}/{len(labels)} = {n / len(labels):.1%}"
                                          for name, n in correct.items()))
    decoded = zoo.decode_predictions(outputs["folded"], top=1, weights=entry.name)
    print("a few predictions (folded):")
    for i in range(0, len(labels), 13):
        predicted, name, probability = decoded[i][0]
        print(f"  {sample.files[i]:<26} true {sample.class_names[labels[i]]:<10} predicted "
              f"{name:<10} {probability:6.1%}{'' if predicted == labels[i] else '  (wrong)'}")

    print(f"\ninference latency, median of {args.rounds} interleaved calls of model(x, training=False) "
          "compiled with tf.function, after a warm-up:")
    for batch in sorted({1, args.batch_size}):
        ms = interleaved_latency_ms(infer, np.resize(x, (batch, *x.shape[1:])), args.rounds)
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
        measured = {name: top1(form, test, args.batch_size, normalize=False) for name, form in forms.items()}
        print(f"test top-1: training form {measured['training form']:.2%}, folded {measured['folded']:.2%} "
              f"(card: {entry.top1:.2%}, {entry.top1_folded:.2%})")
    return 0


def fold_failed(error):
    print(f"quickstart: FOLD CHECK FAILED: relative error {error:.1e} > {FOLD_TOLERANCE:.0e}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
