"""`keras-lc export`: publish a finished run into `zoo/NAME/` (see `keras_lc.export.export_run`)."""

import json

from keras_lc.cli.common import UsageError, positive_int

name = "export"


def add_parser(subparsers):
    """Add the `export` subcommand to an argparse `subparsers` object; returns its parser."""
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
    parser.add_argument("--test-per-class", type=positive_int, metavar="N",
                        help="image folders: measure on N test images per class (default: the run's)")
    parser.add_argument("--batch-size", type=positive_int, default=256)
    parser.add_argument("--paper-top1", type=float, metavar="FRACTION",
                        help="the paper's top-1 for this configuration (e.g. 0.9189), shown beside ours")
    parser.add_argument("--hardware", metavar="TEXT",
                        help="the machine it trained on (default: what the run recorded)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing zoo-dir/NAME exported from another run")
    return parser


def run(args):
    """Run `keras-lc export` from parsed arguments; returns the exit status."""
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
