"""`keras-lc analyze`: figures and a JSON of every number for trained models.

Argument parsing only; the work is in `keras_lc.analysis.report`.
`run_analysis(args)` reports user mistakes as `ValueError` /
`FileNotFoundError` (one-line messages); `run(args)`, what `keras-lc` calls,
turns them into `UsageError`.
"""

import os
import re
from fractions import Fraction
from pathlib import Path

from keras_lc.analysis import report
from keras_lc.cli.common import UsageError

name = "analyze"

HELP = "Analyze trained models: combined filters, filter variance entropy, spatial variance, FGSM."


def parse_epsilon(text):
    """`"1/255"`, `"0.0039"` -> float in [0, 1] (pixel units)."""
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise ValueError(
            f"--epsilon must be a number or a fraction such as 1/255. Received: {text!r}"
        ) from None
    if not 0 <= value <= 1:
        raise ValueError(
            f"--epsilon is in pixel units of images in [0, 1] (e.g. 1/255). Received: {text!r}"
        )
    return value


def add_parser(subparsers):
    """Add the `analyze` subcommand to an argparse `subparsers` object; returns its parser."""
    parser = subparsers.add_parser(
        "analyze",
        help=HELP,
        description=HELP
        + " Writes PNG figures (filter grids of the first and last LC layer, spatial variance "
        "heatmaps, FVE per layer) and analysis.json with every number. Given several models, "
        "each goes to OUT/NAME/ and OUT/ also gets the FVE-vs-expansion plots.",
    )
    parser.add_argument(
        "models",
        nargs="+",
        metavar="MODEL_OR_RUN",
        help="A .keras model file, a run directory holding one, or a published model's name "
        "('keras-lc list --pretrained': its training form); several for a comparison.",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="Output folder for figures and JSON.")
    parser.add_argument(
        "--data",
        metavar="PATH",
        help="CIFAR-10 image-folder archive or folder: measure clean and FGSM accuracy on its "
        "test split (skipped without it).",
    )
    parser.add_argument(
        "--epsilon",
        default="1/255",
        help="FGSM L-infinity budget in pixel units of images in [0, 1], e.g. 1/255 (default) or 8/255.",
    )
    parser.add_argument(
        "--limit", type=int, metavar="N", help="Use at most N test images for FGSM (class-balanced)."
    )
    parser.add_argument("--batch-size", type=int, default=128, help="FGSM batch size (default 128).")
    parser.set_defaults(func=run_analysis)
    return parser


def _output_names(paths):
    """A distinct folder name per model path (its stem, or the run directory's name)."""
    names = []
    for path in paths:
        path = Path(path)
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem if path.suffix == ".keras" else path.name)
        name, index = base or "model", 1
        while name in names:
            index += 1
            name = f"{base}_{index}"
        names.append(name)
    return names


def run_analysis(args):
    """Run `keras-lc analyze` from parsed arguments; returns 0.

    Raises:
        FileNotFoundError, ValueError: for user mistakes, with a one-line message.
    """
    epsilon = parse_epsilon(args.epsilon)
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be a positive integer. Received: {args.limit}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be a positive integer. Received: {args.batch_size}")
    if args.data is not None and not Path(args.data).exists():
        raise FileNotFoundError(f"--data: no such dataset archive or folder: '{args.data}'")
    paths = [report.resolve_model_path(p) for p in args.models]  # fail before any work
    out = Path(args.out)
    blocked = next((p for p in (out, *out.parents) if p.exists()), None)
    if blocked is not None and not blocked.is_dir():
        raise ValueError(f"--out '{out}' needs a folder, but '{blocked}' is a file; choose a folder.")
    if blocked is not None and not os.access(blocked, os.W_OK):
        raise ValueError(f"--out '{out}': '{blocked}' is not writable; choose a writable folder.")
    data = None
    if args.data is not None:
        data = report.load_test_images(args.data, args.limit)
    results = []
    single = len(paths) == 1
    for path, name in zip(paths, _output_names(args.models)):
        model = report.load_model(path)
        target = out if single else out / name
        print(f"Analyzing '{path}' -> '{target}'")
        results.append(
            report.analyze(
                model, target, data=data, epsilon=epsilon, batch_size=args.batch_size, verbose=1
            )
        )
        summary = results[-1]
        line = (
            f"  first layer FVE {summary['first_layer']['fve']:.4f}, "
            f"last layer FVE {summary['last_layer']['fve']:.4f}"
        )
        if summary["robustness"]:
            rob = summary["robustness"]
            line += (
                f", clean acc {rob['clean_accuracy']:.4f}, FGSM acc {rob['robust_accuracy']:.4f} "
                f"(eps={rob['epsilon']:.5f}, n={rob['num_images']})"
            )
        print(line)
    if not single:
        report.compare(results, out)
        print(f"Comparison written to '{out / report.COMPARISON_NAME}'")
    return 0


def run(args):
    """`run_analysis`, its user mistakes (`ValueError`, `FileNotFoundError`) as `UsageError`."""
    try:
        return run_analysis(args)
    except (ValueError, FileNotFoundError) as error:  # its user mistakes, one line each
        raise UsageError(error) from error
