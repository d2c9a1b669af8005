"""keras-lc: learn linear combinations of frozen random convolution filters in Keras 3.

Gavrikov & Keuper, "The Power of Linear Combinations: Learning with Random
Convolutions" (arXiv 2301.11360).
"""

from keras_lc.startup import import_tensorflow_quietly

import_tensorflow_quietly()  # `keras-lc` without --verbose: no TensorFlow C++ start-up lines
from keras_lc import initializers, layers
from keras_lc import analysis
from keras_lc.folding import fold
from keras_lc.initializers import TorchUniform
from keras_lc.layers import LCConv2D
from keras_lc import zoo
from keras_lc.surgery import freeze_spatial, lcify
from keras_lc.surgery import refocus
from keras_lc import training  # registers TorchSGD, so every saved run loads after `import keras_lc`

__version__ = "0.1.0"

__all__ = ["LCConv2D", "freeze_spatial", "lcify", "refocus", "zoo", "analysis", "fold", "TorchUniform", "initializers", "layers", "__version__"]
