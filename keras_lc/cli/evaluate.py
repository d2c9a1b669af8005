"""`keras-lc evaluate`: top-1/top-5 and loss on the test split, of a run or a published model.

`RUN_DIR` (written by `keras-lc train`) evaluates its final weights as the
run does. A published model's name (`keras-lc list --pretrained`) evaluates
both forms users get: the builder call (raw images in, probabilities out)
and the published folded `.keras`. Figures are printed rounded to 4 digits.
"""

import json
import os

from keras_lc.cli.common import UsageError, hub_manifest, load_split, positive_int

name = "evaluate"


def add_parser(subparsers):
    """Add the `evaluate` subcommand to an argparse `subparsers` object; returns its parser."""
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a run's final weights or a published model (top-1/top-5 on the test split)",
        description="Evaluate a run directory's final weights (its model rebuilt from config.json) "
        "or a published model (by name: its builder call and its folded .keras) and report "
        "top-1/top-5 accuracy and loss on the test split.",
    )
    parser.add_argument("run", metavar="RUN_DIR_OR_NAME",
                        help="run directory written by 'keras-lc train', or a published model's "
                             "name (see 'keras-lc list --pretrained'), or hf://ORG/REPO[@REVISION]")
    parser.add_argument("--weights", metavar="FILE",
                        help="run directories: weights file to evaluate instead of final.weights.h5")
    parser.add_argument("--data-dir", metavar="PATH",
                        help="data location (default: the run's; required for a published model)")
    parser.add_argument("--download", action="store_true",
                        help="let tensorflow-datasets download a missing dataset")
    parser.add_argument("--test-per-class", type=positive_int, metavar="N",
                        help="image folders: the first N test images of each class (default: the run's)")
    parser.add_argument("--batch-size", type=positive_int, default=256,
                        help="evaluation batch size (default: 256)")
    return parser


def rounded(metrics):
    """`metrics` with every float rounded to 4 digits (what the commands print)."""
    return {k: round(float(v), 4) if isinstance(v, float) else v for k, v in metrics.items()}


def _metrics():
    import keras

    return [keras.metrics.CategoricalAccuracy(name="top1"),
            keras.metrics.TopKCategoricalAccuracy(k=5, name="top5")]


def _evaluate(model, pipeline, loss):
    model.compile(loss=loss, metrics=_metrics())
    metrics = model.evaluate(pipeline, return_dict=True, verbose=0)
    return {"top1": metrics["top1"], "top5": metrics["top5"], "test_loss": metrics["loss"]}


def _run_dir(args):
    from keras_lc.data import make_pipeline
    from keras_lc.export import load_run
    from keras_lc.training import Recipe
    from keras_lc.training.run import outputs_logits

    try:
        config, model = load_run(args.run, args.weights)
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(str(error)) from None
    weights = args.weights or os.path.join(args.run, "final.weights.h5")
    args.data_dir = args.data_dir or config.get("data_dir")
    per_class = args.test_per_class or config.get("test_per_class")
    test = load_split(config["data"]["dataset"], "test", args, per_class)
    recipe = Recipe.from_dict(config["recipe"])
    loss = recipe.make_loss(from_logits=outputs_logits(model))  # the run's, as in its summary
    metrics = _evaluate(model, make_pipeline(test, training=False, batch_size=args.batch_size), loss)
    return dict(metrics, test_examples=test.num_examples, weights=weights)


def _published(args, entry, source=None):
    import keras

    from keras_lc import zoo
    from keras_lc.data import make_pipeline

    if args.weights:
        raise UsageError(f"--weights applies to run directories; {args.run!r} is a published model")
    if not args.data_dir and not args.download:
        raise UsageError(f"evaluating the published model {args.run!r} needs --data-dir (its test "
                         f"split of {entry.dataset}) or --download")
    test = load_split(entry.dataset, "test", args, args.test_per_class)
    loss = keras.losses.CategoricalCrossentropy()
    raw = make_pipeline(test, training=False, batch_size=args.batch_size, normalize=False)
    source = source or entry.name  # a published name, or the Hub id it came from
    result = {"model": source, "test_examples": test.num_examples}
    try:
        model = zoo.load_published(source)
    except ValueError as error:  # e.g. a Hub file whose sha256 is not its manifest's
        raise UsageError(str(error)) from None
    result.update(_evaluate(model, raw, loss))
    folded_file = _folded_file(entry) if source == entry.name else None  # Hub: weights files only
    if folded_file is not None:
        folded = keras.saving.load_model(folded_file, safe_mode=True)
        result.update({f"folded_{k}": v for k, v in _evaluate(folded, raw, loss).items()})
    return result


def _folded_file(entry):
    from keras_lc.weights import packaged_file

    return packaged_file(entry, f"{entry.name}_folded.keras")


def run(args):
    """Run `keras-lc evaluate` from parsed arguments; returns the exit status."""
    from keras_lc.weights import published_weights

    from keras_lc import hub

    if os.path.isdir(args.run):
        result = _run_dir(args)
    elif hub.is_hub_id(args.run):
        result = _published(args, hub_manifest(args.run), args.run)
    else:
        published = published_weights(requested=args.run)
        if args.run not in published:
            raise UsageError(
                f"{args.run!r} is neither a run directory nor a published model; published models: "
                f"{sorted(published)} (see 'keras-lc list --pretrained')")
        result = _published(args, published[args.run])
    print(json.dumps(rounded(result)))
    return 0
