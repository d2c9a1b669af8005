"""Training throughput: the input pipeline alone vs the training step, side by side.

For the pipeline to never starve training it must deliver images faster than
the step consumes them. Measured in one process on real CIFAR-10 JPEGs:

- pipeline: `keras_lc.data.make_pipeline` as `keras-lc train` uses it
  (cached decoded images, shuffle, pad-4 crop + flip, normalization, one-hot,
  prefetch), iterated with no model, after a first epoch that fills the cache;
- step: `model.fit` on one batch repeated in memory (no input cost), with the
  paper's recipe (TorchSGD Nesterov + coupled weight decay, label smoothing),
  for ResNet-20 and for ResNet-LC-20-16x128 in the form the CLI trains it
  ("basis"; `--lc-forms` adds others).

    python benchmarks/train_throughput.py
    python benchmarks/train_throughput.py --batch-size 256 --steps 10 --per-class 500

Prints images/s and the ratio pipeline / step for every model. Target: >= 3x.
"""

import argparse
import math
import os
import statistics
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from step_timer import StepTimer  # this folder's

from keras_lc import zoo
from keras_lc.data import load_dataset, make_pipeline
from keras_lc.training import Recipe

ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpeg.tar.gz"


def pipeline_images_per_s(data, batch_size, epochs):
    """Median images/s over `epochs` passes (after one pass filling the cache)."""
    pipeline = make_pipeline(data, training=True, batch_size=batch_size, seed=0,
                             epochs=range(epochs + 1))
    iterator = iter(pipeline)
    steps = math.ceil(data.num_examples / batch_size)
    rates = []
    for epoch in range(epochs + 1):
        start = time.perf_counter()
        for _ in range(steps):
            images, _ = next(iterator)
        _ = images.numpy()  # wait for the last batch
        if epoch:  # epoch 0 decodes the JPEGs and fills the cache
            rates.append(data.num_examples / (time.perf_counter() - start))
    return statistics.median(rates)


def step_images_per_s(model, batch_size, steps, recipe):
    """Median images/s of the training step (first 2 steps, tracing, excluded)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch_size, 32, 32, 3)).astype("float32")
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, batch_size)]
    batches = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.compile(optimizer=recipe.make_optimizer(steps), loss=recipe.make_loss(from_logits=True))
    timer = StepTimer(warmup=2)
    model.fit(batches, epochs=1, steps_per_epoch=steps + 2, callbacks=[timer], shuffle=False, verbose=0)
    return batch_size / statistics.median(timer.times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("KERAS_LC_CIFAR10", str(ARCHIVE)),
                        help="CIFAR-10 image-folder archive or folder")
    parser.add_argument("--per-class", type=int, default=500, help="training images per class")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per model")
    parser.add_argument("--pipeline-epochs", type=int, default=3, help="timed pipeline passes")
    parser.add_argument("--expansion", type=int, default=128)
    parser.add_argument("--lc-forms", nargs="+", default=["basis"],
                        choices=["basis", "composed", "two_stage"], help="LCConv2D forms to time")
    args = parser.parse_args(argv)

    data = load_dataset("cifar10", "train", args.data, per_class=args.per_class)
    pipeline = pipeline_images_per_s(data, args.batch_size, args.pipeline_epochs)
    recipe = Recipe(batch_size=args.batch_size)
    models = {"ResNet-20-16": lambda: zoo.resnet20(classifier_activation=None, seed=0)}
    for form in args.lc_forms:
        models[f"ResNet-LC-20-16x{args.expansion} ({form})"] = (
            lambda form=form: zoo.resnet_lc20(expansion=args.expansion, implementation=form,
                                              classifier_activation=None, seed=0))
    print(f"CIFAR-10, {data.num_examples} training images, batch {args.batch_size}, "
          f"{os.cpu_count()} CPU cores, GPUs: {len(tf.config.list_physical_devices('GPU'))}")
    print(f"input pipeline alone: {pipeline:,.0f} images/s "
          f"(median of {args.pipeline_epochs} cached epochs)")
    print(f"{'model':<36} {'step images/s':>14} {'pipeline / step':>16}  target >= 3x")
    for name, build in models.items():
        step = step_images_per_s(build(), args.batch_size, args.steps, recipe)
        ratio = pipeline / step
        print(f"{name:<36} {step:>14,.0f} {ratio:>15.1f}x  {'ok' if ratio >= 3 else 'MISSED'}")


if __name__ == "__main__":
    main()
