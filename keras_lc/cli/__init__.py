"""`keras-lc`: the command-line front end (train, evaluate, predict, list, analyze, export).

Every subcommand is an object in `COMMANDS` with a `name`, an
`add_parser(subparsers)` that adds its argparse sub-parser, and a
`run(args)` that does the work and returns the exit status; a module with
those three attributes qualifies, so adding a subcommand is one entry.
Each of the six is a module here (`train`, `evaluate`, `predict`,
`listing`, `analyze`, `export`); what they share (`UsageError`, the one-line
`Parser`, the argparse types `positive_int`, `randaugment`, `model_arg`)
is in `common`.

User mistakes (bad flags, unknown model or dataset, missing data, a run
directory holding another run) print one line to stderr and exit with 2;
a diverged run exits with 1. Set `KERAS_LC_DEBUG=1` for full tracebacks.
TensorFlow's native log lines (its start-up lines, see `keras_lc.startup`,
and device probing) are hidden unless `--verbose` is given, before or after
the subcommand.

Example:

    keras-lc train --model resnet_lc20 --expansion 128 --frozen-spatial --dataset cifar10 \\
        --data-dir cifar10-jpeg.tar.gz --epochs 75 --out runs/resnet_lc20_16x128
    keras-lc evaluate runs/resnet_lc20_16x128
    keras-lc list "resnet_lc*"
"""

import argparse
import os
import sys

from keras_lc.cli import analyze, evaluate, export, listing, predict, train
from keras_lc.cli.common import (
    PROG,
    Parser,
    UsageError,
    add_verbose_flag,
    init_devices_quietly,
    model_arg,
    one_line,
    positive_int,
    randaugment,
    say_cache_use,
)

COMMANDS = [train, evaluate, predict, listing, analyze, export]

__all__ = [
    "COMMANDS",
    "PROG",
    "Parser",
    "UsageError",
    "build_parser",
    "main",
    "model_arg",
    "positive_int",
    "randaugment",
]


def build_parser():
    """The `keras-lc` argument parser with every subcommand of `COMMANDS`."""
    parser = Parser(prog=PROG, description="Keras layers and models that learn linear "
                    "combinations of frozen random convolution filters (Gavrikov & Keuper).")
    add_verbose_flag(parser)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command_name",
                                       parser_class=Parser)
    subparsers.required = True
    for command in COMMANDS:
        add_verbose_flag(command.add_parser(subparsers), default=argparse.SUPPRESS).set_defaults(
            command=command)
    return parser


def main(argv=None):
    """Entry point of the `keras-lc` console script; returns the exit status."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    init_devices_quietly(args.verbose)
    prog = f"{PROG} {args.command_name}"
    debug = bool(os.environ.get("KERAS_LC_DEBUG"))
    say_cache_use()
    from keras_lc.training import TrainingDiverged

    try:
        return args.command.run(args)
    except UsageError as error:
        if debug:
            raise
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except TrainingDiverged as error:
        if debug:
            raise
        print(f"{prog}: {one_line(error)}", file=sys.stderr)
        return 1
    except OSError as error:  # a path that cannot be read or written: the message names it
        if debug:
            raise
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
