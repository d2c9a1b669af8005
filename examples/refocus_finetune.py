"""RefConv evidence: fine-tune a pretrained CIFAR-10 model plainly and by refocusing, fold, compare.

    python examples/refocus_finetune.py --model resnet20 --weights RUN_DIR_OR_FILE_OR_TAG \\
        [--model-arg KEY=VALUE ...] [--epochs 10] [--lr 0.01] [--out runs/refocus_resnet20.json]

Evaluates on the CIFAR-10 test set (all 10,000 images unless --test-per-class):

(a) the pretrained model;
(b) a plain fine-tune: every weight trainable;
(c) a refocus fine-tune (`keras_lc.refocus`, Cai et al., RefConv): every k x k
    Conv2D and every DepthwiseConv2D becomes a RefocusConv2D whose basis W_b
    is the pretrained kernel, frozen, and whose map W_r starts at zero (so the
    model starts exactly at (a)). What trains: the maps W_r, the refocused
    layers' biases, every BatchNormalization (gamma, beta, statistics), the
    1x1 convolutions and the classifier, as in the authors' procedure (only
    the basis kernels are frozen). It is then folded (`keras_lc.fold`: plain
    Conv2D/DepthwiseConv2D, BatchNorm folded in) and the folded model is
    evaluated too, with its largest per-batch relative output difference
    from the unfolded model.

Both fine-tunes use the same recipe (`keras_lc.training.Recipe`: TorchSGD,
Nesterov 0.9, coupled weight decay, cosine schedule, label smoothing 0.1, the
paper's pad-4 crop + flip augmentation), epochs, data order and seed; each is
a resumable run directory under --runs (`keras_lc.training.train`; a
finished one is reused). The results are printed as a Markdown table and
written as JSON to --out (default runs/refocus_finetune.json, below the
current folder, the run directories beside it in runs/refocus_finetune_runs).
TensorFlow's C++ start-up lines are hidden unless --verbose.

--weights: a run directory of `keras-lc train` (the model and its arguments
then come from its config.json), a `.weights.h5` file, or the name of weights
published for the model (e.g. `cifar10`); give the builder arguments the
weights were trained with by --model-arg (e.g. alpha=0.5 low_res=true).
"""

from quiet_start import import_tensorflow_quietly  # examples/quiet_start.py

import_tensorflow_quietly()  # TensorFlow's C++ start-up lines hidden unless --verbose

import argparse
import json
import os
import sys
from pathlib import Path

import keras
import numpy as np

import keras_lc
from keras_lc import data, zoo
from keras_lc.cli import model_arg
from keras_lc.cli.common import add_verbose_flag
from keras_lc.export import load_run
from keras_lc.files import write_json_atomic
from keras_lc.serving import compare_forms
from keras_lc.training import Recipe, parameter_counts, train

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpeg.tar.gz"
DEFAULT_OUT = "runs/refocus_finetune.json"  # below the current folder; runs/ is git-ignored


def pretrained_builder(args):
    """A function building the pretrained model (a fresh copy at every call) and its description."""
    if args.weights and Path(args.weights).is_dir():
        config, _ = load_run(args.weights)  # checks the run directory once
        if args.model and args.model != config["model"]["name"]:
            raise SystemExit(f"--model {args.model!r} but run '{args.weights}' trained "
                             f"{config['model']['name']!r}")
        return (lambda: load_run(args.weights)[1]), config["model"]
    if not args.model:
        raise SystemExit("--model is required unless --weights is a run directory")
    kwargs = dict(input_shape=(32, 32, 3), classes=10, classifier_activation=None,
                  seed=args.seed, weights=args.weights, **dict(args.model_arg))
    try:
        zoo.get_model(args.model, **kwargs)
    except (TypeError, ValueError) as error:
        raise SystemExit(f"cannot build {args.model!r} with {kwargs}: {error}")
    return (lambda: zoo.get_model(args.model, **kwargs)), {"name": args.model, "kwargs": kwargs}


def top1(model, test, recipe):
    """Top-1 accuracy on a `LoadedDataset` (inference mode)."""
    model.compile(loss=recipe.make_loss(), metrics=[keras.metrics.CategoricalAccuracy(name="top1")])
    pipeline = data.make_pipeline(test, training=False, batch_size=recipe.batch_size)
    return float(model.evaluate(pipeline, return_dict=True, verbose=0)["top1"])


def fine_tune(name, build, args, recipe, train_data, test_data, description):
    """Train `build()` in run directory RUNS/name (or reuse a finished one): (model, summary)."""
    out = Path(args.runs) / name
    if not (out / "summary.json").exists():
        config = {"fine_tune": name, "pretrained": description, "weights": str(args.weights)}
        train(build, train_data, test_data, out, recipe=recipe, config=config, validate=False,
              verbose=2)
    with open(out / "summary.json", encoding="utf-8") as f:
        summary = json.load(f)
    model = build()
    model.load_weights(out / "final.weights.h5")
    return model, summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="zoo model name (e.g. resnet20, mobilenet_v2)")
    parser.add_argument("--weights", required=True,
                        help="run directory, .weights.h5 file, or published weights name (e.g. cifar10)")
    parser.add_argument("--model-arg", type=model_arg, action="append", default=[], metavar="KEY=VALUE",
                        help="builder argument, repeatable (e.g. alpha=0.5 low_res=true)")
    parser.add_argument("--data", default=os.environ.get("KERAS_LC_CIFAR10", str(DEFAULT_DATA)),
                        help="CIFAR-10 image-folder archive or folder (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=Recipe.learning_rate,
                        help="initial learning rate, cosine to 0 (default: %(default)s)")
    parser.add_argument("--weight-decay", type=float, default=Recipe.weight_decay,
                        help="coupled weight decay of the trainable weights (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=Recipe.batch_size,
                        help="training and evaluation batch (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="data order and augmentation seed (default: %(default)s)")
    parser.add_argument("--train-per-class", type=int, help="train on the first N images of each class")
    parser.add_argument("--test-per-class", type=int, help="evaluate on the first N test images of each class")
    parser.add_argument("--out", default=DEFAULT_OUT, help="JSON results (default: %(default)s)")
    parser.add_argument("--runs", help="folder of the two fine-tuning run directories (default: OUT without "
                                       ".json + '_runs')")
    add_verbose_flag(parser)
    args = parser.parse_args(argv)
    args.runs = args.runs or str(Path(args.out).with_suffix("")) + "_runs"
    if not Path(args.data).exists():
        parser.error(f"CIFAR-10 not found at '{args.data}'; pass --data PATH")
    try:
        recipe = Recipe(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                        weight_decay=args.weight_decay, seed=args.seed)
    except ValueError as error:
        parser.error(str(error))
    build_pretrained, description = pretrained_builder(args)
    train_data = data.load_dataset("cifar10", "train", args.data, per_class=args.train_per_class)
    test_data = data.load_dataset("cifar10", "test", args.data, per_class=args.test_per_class)
    print(f"{description['name']}: fine-tuning on {train_data.num_examples} images for {args.epochs} "
          f"epochs, evaluating on {test_data.num_examples} test images")

    pretrained = build_pretrained()
    rows = {"pretrained": {"top1": top1(pretrained, test_data, recipe),
                           "trainable_params": parameter_counts(pretrained)["trainable"], "fine_tune_s": None}}

    def build_plain():
        model = build_pretrained()
        model.trainable = True  # every weight trains
        return model

    def build_refocused():
        return keras_lc.refocus(build_pretrained(), zero_init=True)

    tuned = {}
    for name, run, build in (("plain FT", "plain", build_plain),
                             ("refocus FT (training form)", "refocus", build_refocused)):
        tuned[run], summary = fine_tune(run, build, args, recipe, train_data, test_data, description)
        rows[name] = {"top1": summary["top1"], "trainable_params": summary["parameters"]["trainable"],
                      "fine_tune_s": summary["train_seconds_all_epochs"]}
    refocused = tuned["refocus"]
    frozen_ok = all(
        np.array_equal(layer.basis_kernel, pretrained.get_layer(layer.name).kernel)
        for layer in refocused.layers if isinstance(layer, keras_lc.layers.RefocusConv2D)
    )
    folded = keras_lc.fold(refocused)
    forms = compare_forms(refocused, folded, test_data, batch_size=args.batch_size)
    rows["refocus FT (folded)"] = {"top1": forms["top1_folded"],
                                   "trainable_params": parameter_counts(folded)["trainable"], "fine_tune_s": None}

    print(f"\n| {description['name']} | top-1 | trainable params | fine-tune wall time |")
    print("|---|---:|---:|---:|")
    for name, row in rows.items():
        seconds = "" if row["fine_tune_s"] is None else f"{row['fine_tune_s']:.0f} s"
        print(f"| {name} | {100 * row['top1']:.2f}% | {row['trainable_params']:,} | {seconds} |")
    print(f"\nfolded vs training form: max per-batch relative output difference "
          f"{forms['fold_relative_error']:.2e}, top-1 {100 * forms['top1']:.2f}% vs "
          f"{100 * forms['top1_folded']:.2f}%; basis kernels bit-identical to the pretrained: {frozen_ok}")
    write_json_atomic(args.out, {
        "model": description, "weights": str(args.weights), "recipe": recipe.to_dict(),
        "train_examples": train_data.num_examples, "test_examples": test_data.num_examples,
        "results": rows, "fold_relative_error": forms["fold_relative_error"],
        "basis_kernels_unchanged": frozen_ok, "runs": str(args.runs),
    })
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
