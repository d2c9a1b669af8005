"""`keras-lc`: the command-line front end (train, evaluate, list).

Every subcommand is an object in `COMMANDS` with a `name`, an
`add_parser(subparsers)` that adds its argparse sub-parser, and a
`run(args)` that does the work and returns the exit status; a module with
those three attributes qualifies, so adding a subcommand is one entry.

User mistakes (bad flags, unknown model or dataset, missing data, a run
directory holding another run) print one line to stderr and exit with 2;
a diverged run exits with 1. Set `KERAS_LC_DEBUG=1` for full tracebacks.

Example:

    keras-lc train --model resnet_lc20 --expansion 128 --frozen --dataset cifar10 \\
        --data-dir cifar10-jpeg.tar.gz --epochs 75 --out runs/resnet_lc20_16x128
    keras-lc evaluate runs/resnet_lc20_16x128
    keras-lc list "resnet_lc*"
"""

import argparse
import contextlib
import difflib
import json
import os
import re
import shlex
import sys
import types

PROG = "keras-lc"


class UsageError(Exception):
    """A user mistake: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a parse error is one line on stderr (exit 2), no usage dump."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence the C++ lines TensorFlow writes straight to fd 2 (not via Python).

    Python exceptions still propagate; `KERAS_LC_DEBUG=1` keeps everything.
    """
    if os.environ.get("KERAS_LC_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _init_devices_quietly():
    """Import TensorFlow and probe its devices without its C++ log lines.

    (Importing `keras_lc` already imports TensorFlow; its start-up lines are
    printed before this module runs. The device probe, e.g. CUDA's "failed
    call to cuInit" on GPU-less machines, is silenced here.)
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _quiet_native_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()


# ------------------------------------------------------------------ helpers
def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _randaugment(text):
    try:
        num_ops, factor = text.split(",")
        return int(num_ops), float(factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NUM_OPS,FACTOR such as 2,0.5, got {text!r}") from None


_BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")


def _model_arg(text):
    """KEY=VALUE with a JSON VALUE (`expansion=8`, `shortcut="B"`, `strides=[1,2]`).

    A bare word that is not JSON (`implementation=basis`) is taken as a
    string; anything else must be valid JSON, so `expansion={bad` is refused
    rather than passed on as a string.
    """
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        if _BARE_WORD.match(value):
            return key, value
        raise argparse.ArgumentTypeError(
            f"the value of {text!r} is not JSON: use a number, true/false/null, a bare word, "
            'a quoted string (\'key="a b"\') or a JSON list/object'
        ) from None


def _unknown_argument(model, key, known, flag):
    """The UsageError for an argument `key` that model's builder does not take."""
    close = difflib.get_close_matches(key, sorted(known), n=3)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return UsageError(f"model {model!r} has no argument {key!r} ({flag}){hint}")


def _builder(name):
    """The zoo builder registered as `name` (a UsageError if unknown)."""
    from keras_lc import zoo

    if name not in zoo.list_models():
        try:
            zoo.get_model(name)
        except ValueError as error:
            raise UsageError(str(error)) from None
    return getattr(zoo, name, None) or zoo.registry._BUILDERS[name]


# The recipe flags: (field, flags, argparse kwargs, help). Defaults come from Recipe.
_RECIPE_FLAGS = (
    ("epochs", ("--epochs",), {"type": int}, "training epochs"),
    ("batch_size", ("--batch-size",), {"type": int}, "global batch size, split across replicas"),
    ("optimizer", ("--optimizer",), {"choices": ("sgd", "adamw")},
     "sgd: PyTorch-rule SGD with coupled weight decay (the paper); adamw: Keras AdamW"),
    ("learning_rate", ("--lr", "--learning-rate"), {"type": float}, "initial learning rate"),
    ("momentum", ("--momentum",), {"type": float}, "SGD momentum"),
    ("nesterov", ("--nesterov",), {"action": argparse.BooleanOptionalAction}, "Nesterov momentum"),
    ("weight_decay", ("--weight-decay",), {"type": float}, "weight decay of every trainable weight"),
    ("weight_decay_mode", ("--weight-decay-mode",), {"choices": ("coupled", "decoupled")},
     "coupled: added to the gradient like torch.optim.SGD (the paper); decoupled: Keras' weight_decay"),
    ("schedule", ("--schedule",), {"choices": ("cosine", "constant")},
     "learning-rate schedule (cosine annealing to 0 over all steps)"),
    ("warmup_epochs", ("--warmup-epochs",), {"type": int}, "linear warm-up epochs"),
    ("label_smoothing", ("--label-smoothing",), {"type": float}, "cross-entropy label smoothing"),
    ("augment", ("--augment",), {"action": argparse.BooleanOptionalAction},
     "the dataset's training augmentation (CIFAR: pad-4 crop + flip)"),
    ("randaugment", ("--randaugment",), {"type": _randaugment, "metavar": "NUM_OPS,FACTOR"},
     "Keras RandAugment (ImageNet pipeline only)"),
    ("mixup_alpha", ("--mixup-alpha",), {"type": float}, "MixUp alpha, 0 = off (ImageNet pipeline)"),
    ("cutmix_alpha", ("--cutmix-alpha",), {"type": float}, "CutMix factor, 0 = off (ImageNet pipeline)"),
    ("mixed_precision", ("--mixed-precision",), {"action": argparse.BooleanOptionalAction},
     "mixed_float16 on GPU (with loss scaling), mixed_bfloat16 elsewhere"),
    ("xla", ("--xla",), {"action": argparse.BooleanOptionalAction},
     "XLA jit_compile (default: Keras decides; off on CPU)"),
    ("seed", ("--seed",), {"type": int}, "seed of the model's random kernels, data order and augmentation"),
)


def _add_data_flags(parser, required):
    from keras_lc.data import DATASETS

    parser.add_argument("--dataset", required=required, choices=sorted(DATASETS),
                        help="dataset (fixes normalization constants and augmentation)")
    parser.add_argument("--data-dir", metavar="PATH",
                        help="image-folder archive (e.g. cifar10-jpeg.tar.gz, unpacked once into "
                             "the cache), folder laid out split/class/image.jpg, or a "
                             "tensorflow-datasets data directory (default: tfds' own)")
    parser.add_argument("--download", action="store_true",
                        help="let tensorflow-datasets download a missing dataset (default: offline, "
                             "fail at once)")
    parser.add_argument("--test-per-class", type=_positive_int, metavar="N",
                        help="image folders: evaluate on the first N test images of each class")


def _load(dataset, split, args, per_class=None):
    from keras_lc.data import load_dataset

    try:
        return load_dataset(dataset, split, args.data_dir, download=args.download, per_class=per_class)
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(str(error)) from None


def _report(summary):
    keys = ("top1", "top5", "test_loss", "epochs", "steps", "wall_time_s", "images_per_s")
    return json.dumps({k: summary[k] for k in keys if k in summary})


# -------------------------------------------------------------------- train
def _train_parser(subparsers):
    from keras_lc.training import STRATEGIES, Recipe

    defaults = Recipe()
    parser = subparsers.add_parser(
        "train",
        help="train a zoo model with the paper's recipe into a resumable run directory",
        description="Train a zoo model. Defaults are the paper's CIFAR recipe (Appendix A): "
        "75 epochs, SGD Nesterov 0.9, lr 1e-2 cosine, coupled weight decay 1e-2, batch 256, "
        "label smoothing 0.1. Running the same command again resumes an interrupted run.",
    )
    parser.add_argument("--model", required=True, help="registered model name (see 'keras-lc list')")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="run directory (config, CSV log, curves, weights, summary)")
    parser.add_argument("--expansion", type=_positive_int, help="LC expansion E (LC models)")
    parser.add_argument("--width", type=_positive_int, help="base width W (CIFAR ResNets)")
    parser.add_argument("--frozen", action=argparse.BooleanOptionalAction,
                        help="freeze the spatial kernels at their seeded random values "
                             "(default: the builder's; LC models are frozen)")
    parser.add_argument("--implementation", choices=("auto", "two_stage", "composed", "basis"),
                        help="LCConv2D implementation (default: basis for frozen LC under SGD, "
                             "exactly equivalent and cheaper; otherwise auto)")
    parser.add_argument("--model-arg", type=_model_arg, action="append", default=[],
                        metavar="KEY=VALUE", help="any other builder argument (JSON value), repeatable")
    _add_data_flags(parser, required=True)
    parser.add_argument("--train-per-class", type=_positive_int, metavar="N",
                        help="image folders: train on the first N images of each class")
    parser.add_argument("--strategy", choices=STRATEGIES, default="auto",
                        help="auto: multiworker if TF_CONFIG names several workers, mirrored if "
                             "several GPUs, else default; mirrored: all visible GPUs; "
                             "multiworker: cluster from TF_CONFIG (default: auto)")
    parser.add_argument("--no-validation", action="store_true",
                        help="skip the per-epoch test evaluation (final evaluation still runs)")
    parser.add_argument("--validate-every", type=_positive_int, default=1, metavar="N",
                        help="evaluate on the test split after every N-th epoch; the final "
                             "weights are always evaluated (default: 1)")
    recipe_group = parser.add_argument_group("recipe (defaults: the paper's CIFAR recipe)")
    for field, flags, kwargs, text in _RECIPE_FLAGS:
        default = getattr(defaults, field)
        recipe_group.add_argument(*flags, dest=f"recipe_{field}", default=None,
                                  help=f"{text} (default: {default})", **kwargs)
    return parser


def _model_kwargs(args, recipe, spec):
    """Builder arguments from the flags; LC models default to the basis form when exact."""
    import inspect

    params = inspect.signature(_builder(args.model)).parameters
    kwargs = dict(input_shape=(spec.image_size, spec.image_size, 3), classes=spec.num_classes,
                  classifier_activation=None, seed=recipe.seed)
    for flag, key, value in (("--expansion", "expansion", args.expansion),
                             ("--width", "width", args.width),
                             ("--frozen", "frozen_spatial", args.frozen),
                             ("--implementation", "implementation", args.implementation)):
        if value is not None:
            if key not in params:
                raise UsageError(f"model {args.model!r} does not take {flag}")
            kwargs[key] = value
    for key, value in args.model_arg:
        if key not in params:
            raise _unknown_argument(args.model, key, params, "--model-arg")
        kwargs[key] = value
    if "implementation" in params and "implementation" not in kwargs:
        frozen = kwargs.get("frozen_spatial", params.get("frozen_spatial") and
                            params["frozen_spatial"].default)
        # The basis form is exact for frozen kernels under SGD-family optimizers only.
        exact = frozen is True and recipe.optimizer == "sgd"
        kwargs["implementation"] = "basis" if exact else "auto"
    return kwargs


def _train_run(args):
    from keras_lc.training import Recipe, RunDirectoryError, train

    overrides = {field: getattr(args, f"recipe_{field}") for field, *_ in _RECIPE_FLAGS}
    try:
        recipe = Recipe().replace(**{k: v for k, v in overrides.items() if v is not None})
    except ValueError as error:
        raise UsageError(str(error)) from None
    from keras_lc import zoo
    from keras_lc.data import get_spec

    spec = get_spec(args.dataset)
    kwargs = _model_kwargs(args, recipe, spec)
    train_data = _load(args.dataset, "train", args, args.train_per_class)
    test_data = _load(args.dataset, "test", args, args.test_per_class)
    if args.train_per_class and train_data.num_examples < args.train_per_class * spec.num_classes:
        print(f"[keras-lc] warning: --train-per-class {args.train_per_class} asks for "
              f"{args.train_per_class * spec.num_classes:,} images ({spec.num_classes} classes); "
              f"the data has {train_data.num_examples:,}, so the run trains on those", file=sys.stderr)
    if "implementation" in kwargs:
        print(f"[keras-lc] LCConv2D implementation: {kwargs['implementation']}"
              + ("" if args.implementation else " (default for frozen LC under SGD; "
                 "--implementation overrides)"))

    def build():
        try:
            return zoo.get_model(args.model, **kwargs)
        except (TypeError, ValueError) as error:
            raise UsageError(f"cannot build {args.model!r}: {error}") from None

    config = {
        "command": shlex.join([PROG, *args.argv]),
        "model": {"name": args.model, "kwargs": {k: list(v) if isinstance(v, tuple) else v
                                                 for k, v in kwargs.items()}},
        "data_dir": None if args.data_dir is None else os.path.abspath(args.data_dir),
        "train_per_class": args.train_per_class,
        "test_per_class": args.test_per_class,
    }
    try:
        summary = train(build, train_data, test_data, args.out, recipe=recipe,
                        strategy=args.strategy, config=config, validate=not args.no_validation,
                        validation_freq=args.validate_every)
    except RunDirectoryError as error:
        raise UsageError(str(error)) from None
    print(_report(summary))
    return 0


# ----------------------------------------------------------------- evaluate
def _evaluate_parser(subparsers):
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
    parser.add_argument("--test-per-class", type=_positive_int, metavar="N",
                        help="image folders: the first N test images of each class (default: the run's)")
    parser.add_argument("--batch-size", type=_positive_int, default=256,
                        help="evaluation batch size (default: 256)")
    return parser


def _evaluate_run(args):
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
    test = _load(config["data"]["dataset"], "test", args, per_class)
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


# --------------------------------------------------------------------- list
def _list_parser(subparsers):
    parser = subparsers.add_parser("list", help="list the registered models (or the datasets)",
                                   description="List the model registry, or with --datasets the "
                                   "known datasets and their constants.")
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style name pattern")
    parser.add_argument("--datasets", action="store_true", help="list datasets instead of models")
    return parser


def _list_run(args):
    if args.datasets:
        import fnmatch

        from keras_lc.data import DATASETS

        for name, spec in sorted(DATASETS.items()):
            if fnmatch.fnmatchcase(name, args.pattern):
                print(f"{name}: {spec.num_classes} classes, {spec.image_size}px, augmentation "
                      f"{spec.augmentation}, mean {spec.mean}, std {spec.std}")
        return 0
    from keras_lc import zoo

    names = zoo.list_models(args.pattern)
    if not names:
        raise UsageError(f"no registered model matches {args.pattern!r}")
    print("\n".join(names))
    return 0


def _analyze_parser(subparsers):
    from keras_lc.analysis import cli as analysis_cli

    return analysis_cli.add_parser(subparsers)


def _analyze_run(args):
    from keras_lc.analysis import cli as analysis_cli

    try:
        return analysis_cli.run(args)
    except (ValueError, FileNotFoundError) as error:  # its user mistakes, one line each
        raise UsageError(error) from error


def _export_parser(subparsers):
    parser = subparsers.add_parser(
        "export", help="publish a finished run into zoo/NAME/",
        description="Write zoo/NAME/: compact training-form weights, the folded inference model "
        "(.keras and a TensorFlow SavedModel), a model card and the manifest the weights registry "
        "reads, with the accuracy of both forms measured on the run's test split.")
    parser.add_argument("run", metavar="RUN_DIR", help="run directory written by 'keras-lc train'")
    parser.add_argument("--name", required=True, help="published name, e.g. resnet_lc20_16x128_frozen_cifar10")
    parser.add_argument("--zoo-dir", default="zoo", metavar="DIR", help="where NAME/ goes (default: zoo)")
    parser.add_argument("--weights-tag", metavar="TAG",
                        help="the weights= value that selects it (default: the dataset name)")
    parser.add_argument("--data-dir", metavar="PATH", help="test data location (default: the run's)")
    parser.add_argument("--test-per-class", type=_positive_int, metavar="N",
                        help="image folders: measure on N test images per class (default: the run's)")
    parser.add_argument("--batch-size", type=_positive_int, default=256)
    parser.add_argument("--paper-top1", type=float, metavar="FRACTION",
                        help="the paper's top-1 for this configuration (e.g. 0.9189), shown beside ours")
    parser.add_argument("--hardware", metavar="TEXT",
                        help="the machine it trained on (default: what the run recorded)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing zoo-dir/NAME exported from another run")
    return parser


def _export_run(args):
    import dataclasses

    from keras_lc.export import export_run

    try:
        entry = export_run(args.run, args.name, args.zoo_dir, args.weights_tag, args.data_dir,
                           args.test_per_class, args.batch_size, args.paper_top1, args.hardware,
                           overwrite=args.overwrite)
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(str(error)) from None
    print(json.dumps({k: v for k, v in dataclasses.asdict(entry).items()
                      if k in ("name", "model", "weights", "top1", "top1_folded", "sha256")}))
    return 0


COMMANDS = [
    types.SimpleNamespace(name="train", add_parser=_train_parser, run=_train_run),
    types.SimpleNamespace(name="evaluate", add_parser=_evaluate_parser, run=_evaluate_run),
    types.SimpleNamespace(name="list", add_parser=_list_parser, run=_list_run),
    types.SimpleNamespace(name="analyze", add_parser=_analyze_parser, run=_analyze_run),
    types.SimpleNamespace(name="export", add_parser=_export_parser, run=_export_run),
]


def build_parser():
    """The `keras-lc` argument parser with every subcommand of `COMMANDS`."""
    parser = _Parser(prog=PROG, description="Keras layers and models that learn linear "
                     "combinations of frozen random convolution filters (Gavrikov & Keuper).")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command_name",
                                       parser_class=_Parser)
    subparsers.required = True
    for command in COMMANDS:
        command.add_parser(subparsers).set_defaults(command=command)
    return parser


def _one_line(error):
    return " ".join(str(error).split()) or type(error).__name__


def _say_cache_use():
    """Print the dataset cache's INFO lines (unpacking, reusing) as `[keras-lc] ...` on stdout."""
    import logging

    logger = logging.getLogger("keras_lc.archives")
    if not any(getattr(h, "keras_lc_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("[keras-lc] %(message)s"))
        handler.keras_lc_cli = True
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def main(argv=None):
    """Entry point of the `keras-lc` console script; returns the exit status."""
    _init_devices_quietly()
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    prog = f"{PROG} {args.command_name}"
    debug = bool(os.environ.get("KERAS_LC_DEBUG"))
    _say_cache_use()
    from keras_lc.training import TrainingDiverged

    try:
        return args.command.run(args)
    except UsageError as error:
        if debug:
            raise
        print(f"{prog}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except TrainingDiverged as error:
        if debug:
            raise
        print(f"{prog}: {_one_line(error)}", file=sys.stderr)
        return 1
    except OSError as error:  # a path that cannot be read or written: the message names it
        if debug:
            raise
        print(f"{prog}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
