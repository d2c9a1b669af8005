"""`keras-lc list`: the registered models matching a pattern, or with `--datasets` the datasets."""

from keras_lc.cli.common import UsageError

name = "list"


def add_parser(subparsers):
    """Add the `list` subcommand to an argparse `subparsers` object; returns its parser."""
    parser = subparsers.add_parser("list", help="list the registered models (or the datasets)",
                                   description="List the model registry, or with --datasets the "
                                   "known datasets and their constants.")
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style name pattern")
    parser.add_argument("--datasets", action="store_true", help="list datasets instead of models")
    return parser


def run(args):
    """Run `keras-lc list` from parsed arguments; returns the exit status."""
    if args.datasets:
        import fnmatch

        from keras_lc.data import DATASETS

        for dataset, spec in sorted(DATASETS.items()):
            if fnmatch.fnmatchcase(dataset, args.pattern):
                print(f"{dataset}: {spec.num_classes} classes, {spec.image_size}px, augmentation "
                      f"{spec.augmentation}, mean {spec.mean}, std {spec.std}")
        return 0
    from keras_lc import zoo

    names = zoo.list_models(args.pattern)
    if not names:
        raise UsageError(f"no registered model matches {args.pattern!r}")
    print("\n".join(names))
    return 0
