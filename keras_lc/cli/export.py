"""`keras-lc export`: publish a finished run into `zoo/NAME/` (see `keras_lc.export.export_run`)."""

import argparse
import json

from keras_lc.cli.common import UsageError, positive_int

name = "export"


def add_parser(subparsers):
    """Add the `export` subcommand to an argparse `subparsers` object; returns its parser."""
    parser = subparsers.add_parser(
        "export", help="publish a finished run into zoo/NAME/",
        description="Write zoo/NAME/: compact training-form weights, the folded inference model "
        "(.keras, and its SavedModel, ONNX and LiteRT exports, each checked in its own runtime), a model card and the manifest the weights registry "
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
    parser.add_argument("--formats", default="auto", type=_formats, metavar="LIST",
                        help="exports of the folded model, comma-separated from saved_model, onnx, litert, "
                        "or none (only the folded .keras) (default: auto, every format that can be written "
                        "here: onnx and litert need pip install 'keras-lc[export]', and all three Keras "
                        "on TensorFlow)")
    parser.add_argument("--push", metavar="hf://ORG/REPO[@REVISION]",
                        help="then upload zoo-dir/NAME to this Hugging Face Hub repository (created if "
                        "missing; the token is huggingface_hub's: HF_TOKEN or 'hf auth login'; needs "
                        "pip install 'keras-lc[hub]')")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing zoo-dir/NAME exported from another run")
    return parser


def _formats(text):
    """`--formats`: `auto`, `none` (an empty tuple) or a comma-separated list of `interchange.FORMATS`."""
    from keras_lc.interchange import FORMATS

    if text in ("auto", "none"):
        return text if text == "auto" else ()
    formats = tuple(f.strip() for f in text.split(",") if f.strip())
    if not formats or set(formats) - set(FORMATS):
        raise argparse.ArgumentTypeError(
            f"expected 'auto', 'none' or a comma-separated list of {', '.join(FORMATS)}, got {text!r}")
    return formats


def run(args):
    """Run `keras-lc export` from parsed arguments; returns the exit status."""
    import dataclasses
    import sys
    from pathlib import Path

    from keras_lc import hub, interchange
    from keras_lc.export import export_run

    if args.push is not None:  # checked before the long export, not after
        try:
            hub.parse(args.push)
            hub.require_client()
        except (ValueError, ImportError) as error:
            raise UsageError(str(error)) from None
    reasons = {f: interchange.unavailable(f) for f in interchange.FORMATS} if args.formats == "auto" else {}
    skipped = [f for f, why in reasons.items() if why]
    if skipped:
        why = "; ".join(f"{f} {reasons[f]}" for f in skipped)
        hint = (f"onnx and litert: {interchange.EXTRA}" if any(interchange.missing_packages(f) for f in skipped)
                else "KERAS_BACKEND=tensorflow keras-lc export ... writes them")
        print(f"keras-lc export: not writing {', '.join(skipped)} ({why}; {hint})", file=sys.stderr)
    try:
        entry = export_run(args.run, args.name, args.zoo_dir, args.weights_tag, args.data_dir,
                           args.test_per_class, args.batch_size, args.paper_top1, args.hardware,
                           overwrite=args.overwrite, formats=args.formats)
    except (FileNotFoundError, ValueError, interchange.MissingExtraError) as error:  # BackendError is a ValueError
        raise UsageError(str(error)) from None
    if args.push is not None:
        folder = Path(args.zoo_dir) / entry.name
        print(f"keras-lc export: uploaded {folder} to {args.push} ({hub.push(folder, args.push)})",
              file=sys.stderr)
    print(json.dumps({k: v for k, v in dataclasses.asdict(entry).items()
                      if k in ("name", "model", "weights", "top1", "top1_folded", "sha256")}
                     | {"exports": {e.format: e.file_name for e in entry.exports}}))
    return 0
