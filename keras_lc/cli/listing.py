"""`keras-lc list`: the registered models matching a pattern; `--pretrained` the published
models (builder call, top-1, epochs, file size, where the files come from); `--datasets` the
datasets."""

from keras_lc.cli.common import UsageError

name = "list"


def add_parser(subparsers):
    """Add the `list` subcommand to an argparse `subparsers` object; returns its parser."""
    parser = subparsers.add_parser("list", help="list the registered models (or the datasets)",
                                   description="List the model registry, or with --datasets the "
                                   "known datasets and their constants.")
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style name pattern")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--pretrained", action="store_true",
                      help="list the published models (pattern: their names or architectures)")
    what.add_argument("--datasets", action="store_true", help="list datasets instead of models")
    return parser


def _pretrained(pattern):
    from keras_lc import weights, zoo
    from keras_lc.serving import builder_call

    names = zoo.list_models(pattern, pretrained=True)
    if not names:
        raise UsageError(f"no published model matches {pattern!r}; published: "
                         f"{zoo.list_models(pretrained=True)}")
    published = weights.published_weights()
    for name in names:
        entry = published[name]
        where, size = weights.location(entry)
        size = "size unknown" if size is None else f"{size / 2**20:.2f} MiB"
        print(f"{name}\n    {builder_call(entry)}\n    top-1 {entry.top1:.2%} (folded "
              f"{entry.top1_folded:.2%}) on the {entry.dataset} test set, {entry.epochs} epochs; "
              f"{size}, {where}")
    return 0


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
    if args.pretrained:
        return _pretrained(args.pattern)
    from keras_lc import zoo

    names = zoo.list_models(args.pattern)
    if not names:
        raise UsageError(f"no registered model matches {args.pattern!r}")
    print("\n".join(names))
    return 0
