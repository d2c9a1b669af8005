"""`keras-lc train`: train a zoo model with the paper's recipe into a resumable run directory.

`RECIPE_FLAGS` maps every `keras_lc.training.Recipe` field to its flag;
`model_kwargs` turns the model flags into the builder's arguments (frozen LC
models default to the exact basis form under SGD, plain Conv2D's cost at every expansion).
"""

import argparse
import difflib
import json
import os
import shlex
import sys

from keras_lc.cli.common import PROG, UsageError, load_split, model_arg, positive_int, randaugment

name = "train"

# The recipe flags: (field, flags, argparse kwargs, help). Defaults come from Recipe.
RECIPE_FLAGS = (
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
    ("randaugment", ("--randaugment",), {"type": randaugment, "metavar": "NUM_OPS,FACTOR"},
     "Keras RandAugment (ImageNet pipeline only)"),
    ("mixup_alpha", ("--mixup-alpha",), {"type": float}, "MixUp alpha, 0 = off (ImageNet pipeline)"),
    ("cutmix_alpha", ("--cutmix-alpha",), {"type": float}, "CutMix factor, 0 = off (ImageNet pipeline)"),
    ("mixed_precision", ("--mixed-precision",), {"action": argparse.BooleanOptionalAction},
     "mixed_float16 on GPU (with loss scaling), mixed_bfloat16 elsewhere"),
    ("xla", ("--xla",), {"action": argparse.BooleanOptionalAction},
     "XLA jit_compile (default: Keras decides; off on CPU)"),
    ("seed", ("--seed",), {"type": int}, "seed of the model's random kernels, data order and augmentation"),
)


def _unknown_argument(model, key, known, flag):
    """The UsageError for an argument `key` that model's builder does not take."""
    close = difflib.get_close_matches(key, sorted(known), n=3)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return UsageError(f"model {model!r} has no argument {key!r} ({flag}){hint}")


def _builder(model):
    """The zoo builder registered as `model` (a UsageError if unknown)."""
    from keras_lc import zoo

    try:
        return zoo.get_builder(model)
    except ValueError as error:
        raise UsageError(str(error)) from None


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
    parser.add_argument("--test-per-class", type=positive_int, metavar="N",
                        help="image folders: evaluate on the first N test images of each class")


def _report(summary):
    keys = ("top1", "top5", "test_loss", "epochs", "steps", "wall_time_s", "images_per_s")
    return json.dumps({k: summary[k] for k in keys if k in summary})


def add_parser(subparsers):
    """Add the `train` subcommand to an argparse `subparsers` object; returns its parser."""
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
    parser.add_argument("--expansion", type=positive_int, help="LC expansion E (LC models)")
    parser.add_argument("--width", type=positive_int, help="base width W (CIFAR ResNets)")
    parser.add_argument("--frozen-spatial", "--frozen", dest="frozen_spatial",
                        action=argparse.BooleanOptionalAction,
                        help="freeze the spatial kernels at their seeded random values, the "
                             "builders' frozen_spatial (default: the builder's; LC models are "
                             "frozen; --frozen is the older spelling)")
    parser.add_argument("--implementation", choices=("auto", "two_stage", "composed", "basis"),
                        help="LCConv2D implementation (default: basis for frozen LC under SGD: "
                             "exactly equivalent, plain Conv2D's cost at every expansion, where "
                             "composed costs 1.1x at E=128; otherwise auto)")
    parser.add_argument("--model-arg", type=model_arg, action="append", default=[],
                        metavar="KEY=VALUE", help="any other builder argument (JSON value), repeatable")
    _add_data_flags(parser, required=True)
    parser.add_argument("--train-per-class", type=positive_int, metavar="N",
                        help="image folders: train on the first N images of each class")
    parser.add_argument("--strategy", choices=STRATEGIES, default="auto",
                        help="auto: multiworker if TF_CONFIG names several workers, mirrored if "
                             "several GPUs, on JAX data_parallel if several devices, else default; "
                             "mirrored: all visible GPUs (TensorFlow); multiworker: cluster from "
                             "TF_CONFIG (TensorFlow); data_parallel: keras.distribution.DataParallel "
                             "over every device (JAX) (default: auto)")
    parser.add_argument("--no-validation", action="store_true",
                        help="skip the per-epoch test evaluation (final evaluation still runs)")
    parser.add_argument("--validate-every", type=positive_int, default=1, metavar="N",
                        help="evaluate on the test split after every N-th epoch; the final "
                             "weights are always evaluated (default: 1)")
    recipe_group = parser.add_argument_group("recipe (defaults: the paper's CIFAR recipe)")
    for field, flags, kwargs, text in RECIPE_FLAGS:
        default = getattr(defaults, field)
        recipe_group.add_argument(*flags, dest=f"recipe_{field}", default=None,
                                  help=f"{text} (default: {default})", **kwargs)
    return parser


def model_kwargs(args, recipe, spec):
    """Builder arguments from the flags; LC models default to the basis form when exact."""
    import inspect

    params = inspect.signature(_builder(args.model)).parameters
    kwargs = dict(input_shape=(spec.image_size, spec.image_size, 3), classes=spec.num_classes,
                  classifier_activation=None, seed=recipe.seed)
    for flag, key, value in (("--expansion", "expansion", args.expansion),
                             ("--width", "width", args.width),
                             ("--frozen-spatial", "frozen_spatial", args.frozen_spatial),
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


def run(args):
    """Run `keras-lc train` from parsed arguments; returns the exit status."""
    from keras_lc.training import Recipe, RunDirectoryError, train

    overrides = {field: getattr(args, f"recipe_{field}") for field, *_ in RECIPE_FLAGS}
    try:
        recipe = Recipe().replace(**{k: v for k, v in overrides.items() if v is not None})
    except ValueError as error:
        raise UsageError(str(error)) from None
    from keras_lc import zoo
    from keras_lc.data import check_pipeline_options, get_spec

    spec = get_spec(args.dataset)
    try:
        check_pipeline_options(spec, None, recipe.randaugment, recipe.mixup_alpha, recipe.cutmix_alpha)
    except ValueError as error:
        raise UsageError(str(error)) from None
    kwargs = model_kwargs(args, recipe, spec)
    train_data = load_split(args.dataset, "train", args, args.train_per_class)
    test_data = load_split(args.dataset, "test", args, args.test_per_class)
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
