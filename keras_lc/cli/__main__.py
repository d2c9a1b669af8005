"""`python -m keras_lc.cli ...`: the same as the `keras-lc` console script."""

import sys

from keras_lc.cli import main

if __name__ == "__main__":  # not when a doctest collector imports it
    sys.exit(main())
