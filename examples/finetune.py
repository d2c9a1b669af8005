"""Transfer learning from a published keras-lc model, the Keras way.

    python examples/finetune.py [--model NAME] [--classes-subset cat,dog | --image-folder DIR]
                                [--epochs N] [--fine-tune-epochs N] [--out runs/finetuned.keras]

Follows https://keras.io/guides/transfer_learning/:

1. the published model without its classifier (`include_top=False,
   pooling="avg"`, its published weights) is a frozen feature extractor:
   `backbone.trainable = False`, and it is called with `training=False`, so its
   BatchNormalization layers stay in inference mode for good;
2. a new Dense head learns a new task: some CIFAR-10 classes (`--classes-subset`,
   relabelled 0..n-1; training images from the train split, held-out ones from
   the test split of --data-dir), or any folder of class sub-folders
   (`--image-folder`, split 80/20), resized to the model's input size;
3. with `--fine-tune-epochs N`, what was trainable in the published model is
   unfrozen and trained at a low learning rate, except BatchNormalization.
   Frozen random spatial kernels stay frozen: an LCConv2D's are non-trainable
   variables, and layers that were non-trainable are set back to non-trainable.
   BatchNormalization layers stay non-trainable, which keeps them in inference
   mode: Keras 3.15's `fit` passes `training=True` down into the backbone despite
   the `training=False` it was called with, and a trainable BatchNormalization
   would then normalize with batch statistics and update its moving statistics.

Prints the held-out accuracy before training, after the head and after
fine-tuning, the trainable parameters of each stage, and saves the model as
--out (a `.keras` file, written atomically; default runs/finetuned.keras, below
the current folder). TensorFlow's C++ start-up lines are hidden unless --verbose.
"""

import os

from quiet_start import import_tensorflow_quietly  # examples/quiet_start.py

import_tensorflow_quietly()  # TensorFlow's C++ start-up lines hidden unless --verbose

import argparse
import dataclasses
import inspect
import sys
from pathlib import Path

import keras

from keras_lc import data, zoo
from keras_lc.cli.common import add_verbose_flag
from keras_lc.files import atomic_path
from keras_lc.training.run import parameter_counts
from keras_lc.weights import published_weights

DEFAULT_MODEL = "resnet_lc20_16x128_frozen_cifar10"
DEFAULT_DATA = os.environ.get(
    "KERAS_LC_CIFAR10", str(Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpeg.tar.gz"))
DEFAULT_OUT = "runs/finetuned.keras"  # below the current folder; runs/ is git-ignored


def positive_int(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}")
    return int(text)


def lc_form(entry, implementation):
    """`{"implementation": implementation}` if `entry`'s builder makes LC models, else `{}`."""
    builder = zoo.get_builder(entry.builder or entry.model) if entry else None
    return {"implementation": implementation} if builder and "implementation" in inspect.signature(
        builder).parameters else {}


def image_datasets(args, image_size):
    """`(train, held_out, class_names)`: unbatched `(image, label)` datasets of the new task."""
    common = dict(image_size=image_size, batch_size=None, seed=args.seed, verbose=False)
    if args.image_folder:
        train, held_out = keras.utils.image_dataset_from_directory(
            args.image_folder, validation_split=0.2, subset="both", **common)
        return train, held_out, train.class_names
    names = [n.strip() for n in args.classes_subset.split(",") if n.strip()]
    folders = [data.find_image_folder(args.data_dir, split) for split in ("train", "test")]
    known = sorted(p.name for p in folders[0].iterdir() if p.is_dir())
    if len(names) < 2 or len(set(names)) < len(names) or not set(names) <= set(known):
        raise ValueError(f"--classes-subset must name two or more distinct classes of {known}. "
                         f"Received: {args.classes_subset!r}")
    train, held_out = (keras.utils.image_dataset_from_directory(folder, class_names=names, **common)
                       for folder in folders)
    return train.take(args.train_images), held_out.take(args.test_images), names


def as_loaded(dataset, spec, class_names, split):
    """A `keras_lc.data.LoadedDataset`, so `make_pipeline` augments it as in training."""
    count = int(dataset.cardinality())
    if count < 0:
        count = int(dataset.reduce(0, lambda n, _: n + 1))
    return data.LoadedDataset(dataclasses.replace(spec, num_classes=len(class_names)), split, count,
                              list(class_names), "finetune", lambda: dataset)


def build_parser():
    """The example's command line; `--help` shows every default."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="published model (default: %(default)s)")
    parser.add_argument("--data-dir", default=DEFAULT_DATA, help="CIFAR-10 archive or folder (default: %(default)s)")
    parser.add_argument("--classes-subset", default="cat,dog",
                        help="CIFAR-10 classes of the new task (default: %(default)s)")
    parser.add_argument("--image-folder", help="instead: a folder of class sub-folders (80/20 split)")
    parser.add_argument("--train-images", type=positive_int, default=2000,
                        help="CIFAR subset: training images (default: %(default)s)")
    parser.add_argument("--test-images", type=positive_int, default=1000,
                        help="CIFAR subset: held-out images (default: %(default)s)")
    parser.add_argument("--epochs", type=positive_int, default=5, help="epochs of the new head (default: %(default)s)")
    parser.add_argument("--fine-tune-epochs", type=int, default=0,
                        help="epochs of fine-tuning (default: %(default)s, none)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate of the head (default: %(default)s)")
    parser.add_argument("--fine-tune-lr", type=float, default=1e-5,
                        help="Adam learning rate of fine-tuning (default: %(default)s)")
    parser.add_argument("--batch-size", type=positive_int, default=64,
                        help="training and evaluation batch (default: %(default)s)")
    parser.add_argument("--implementation", default="composed", choices=("auto", "two_stage", "composed", "basis"),
                        help="LCConv2D form of LC backbones (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed of the new head, data order, augmentation and image-folder split "
                             "(default: %(default)s)")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help="where the fine-tuned model goes, a .keras file (default: %(default)s)")
    add_verbose_flag(parser)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.out.endswith(".keras"):
        parser.error(f"--out must end with .keras. Received: {args.out!r}")
    keras.utils.set_random_seed(args.seed)
    try:
        entry = published_weights().get(args.model)  # None: load_published's error lists the names
        backbone = zoo.load_published(args.model, include_top=False, pooling="avg",
                                      **lc_form(entry, args.implementation))
        train, held_out, class_names = image_datasets(args, tuple(backbone.input_shape[1:3]))
    except (ValueError, OSError) as error:
        print(f"finetune: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    spec = data.get_spec(entry.dataset)
    # Raw [0, 255] images: the published backbone starts with its own normalization
    # (include_preprocessing), so the fine-tuned model takes raw images too.
    train_data = data.make_pipeline(as_loaded(train, spec, class_names, "train"), training=True,
                                    batch_size=args.batch_size, seed=args.seed, normalize=False)
    held_out = data.make_pipeline(as_loaded(held_out, spec, class_names, "test"), training=False,
                                  batch_size=args.batch_size, normalize=False)
    print(f"{entry.name} backbone -> new {len(class_names)}-class head {class_names}")

    # What the published model trains: restored in stage 2, so frozen layers stay frozen.
    was_trainable = {layer.name: layer.trainable for layer in backbone.layers}
    backbone.trainable = False
    inputs = keras.Input(backbone.input_shape[1:])
    features = backbone(inputs, training=False)  # BatchNorm in inference mode, in every stage
    outputs = keras.layers.Dense(len(class_names), name="new_head")(features)
    model = keras.Model(inputs, outputs, name=f"{backbone.name}_finetuned")

    def compile(learning_rate):
        model.compile(keras.optimizers.Adam(learning_rate),
                      keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])

    def evaluate(when):
        accuracy = model.evaluate(held_out, verbose=0, return_dict=True)["accuracy"]
        print(f"held-out accuracy {when}: {accuracy:.2%}")
        return accuracy

    def fit(stage, epochs):
        counts = parameter_counts(model)
        print(f"{stage}: {counts['trainable']:,} trainable parameters, {counts['non_trainable']:,} non-trainable")
        model.fit(train_data, epochs=epochs, verbose=2, shuffle=False)  # make_pipeline shuffles
        return evaluate(f"after {stage}")

    compile(args.lr)
    evaluate("before training")
    accuracy = fit("stage 1 (new head, backbone frozen)", args.epochs)
    if args.fine_tune_epochs > 0:
        backbone.trainable = True
        for layer in backbone.layers:
            layer.trainable = was_trainable[layer.name] and not isinstance(layer, keras.layers.BatchNormalization)
        compile(args.fine_tune_lr)  # recompile: trainable flags are read at compile time
        accuracy = fit("stage 2 (fine-tuning; frozen spatial kernels and BatchNorm stay frozen)",
                       args.fine_tune_epochs)

    with atomic_path(args.out) as tmp:
        model.save(tmp)
    print(f"saved {args.out} (held-out accuracy {accuracy:.2%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
