"""`keras-lc evaluate`: a run's final weights, top-1/top-5 and loss on the test split."""

import json
import os

from keras_lc.cli.common import UsageError, load_split, positive_int

name = "evaluate"


def add_parser(subparsers):
    """Add the `evaluate` subcommand to an argparse `subparsers` object; returns its parser."""
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a run's final weights (top-1/top-5 on the test split)",
        description="Rebuild the model of a run directory from its config.json, load its "
        "final weights, and report top-1/top-5 accuracy and loss on the test split.",
    )
    parser.add_argument("run", metavar="RUN_DIR", help="run directory written by 'keras-lc train'")
    parser.add_argument("--weights", metavar="FILE",
                        help="weights file to evaluate instead of RUN_DIR/final.weights.h5")
    parser.add_argument("--data-dir", metavar="PATH", help="data location (default: the run's)")
    parser.add_argument("--download", action="store_true",
                        help="let tensorflow-datasets download a missing dataset")
    parser.add_argument("--test-per-class", type=positive_int, metavar="N",
                        help="image folders: the first N test images of each class (default: the run's)")
    parser.add_argument("--batch-size", type=positive_int, default=256,
                        help="evaluation batch size (default: 256)")
    return parser


def run(args):
    """Run `keras-lc evaluate` from parsed arguments; returns the exit status."""
    import keras

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
    model.compile(
        loss=recipe.make_loss(from_logits=outputs_logits(model)),  # the run's, as in its summary
        metrics=[keras.metrics.CategoricalAccuracy(name="top1"),
                 keras.metrics.TopKCategoricalAccuracy(k=5, name="top5")],
    )
    metrics = model.evaluate(make_pipeline(test, training=False, batch_size=args.batch_size),
                             return_dict=True)
    print(json.dumps({"top1": float(metrics["top1"]), "top5": float(metrics["top5"]),
                      "test_loss": float(metrics["loss"]), "test_examples": test.num_examples,
                      "weights": weights}))
    return 0
