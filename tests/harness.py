"""Shared test helpers: run the `keras-lc` command in-process."""

from keras_lc import cli


def run_cli(argv, capsys):
    """`keras-lc ARGV` in this process: `(exit status, stdout, stderr)`.

    argparse's own errors exit through `SystemExit`; their status is returned too.
    """
    try:
        code = cli.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err
