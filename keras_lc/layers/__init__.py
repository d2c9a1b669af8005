"""Layers of keras-lc: each a `FoldableConv2D`, which `keras_lc.fold` turns into a stock convolution."""

from keras_lc.layers.base import FoldableConv2D
from keras_lc.layers.lc_conv2d import LCConv2D
from keras_lc.layers.refocus_conv2d import RefocusConv2D
from keras_lc.layers.shared_lc_conv2d import SharedLCConv2D

__all__ = ["FoldableConv2D", "LCConv2D", "RefocusConv2D", "SharedLCConv2D"]
