"""Layers of keras-lc."""

from keras_lc.layers.lc_conv2d import LCConv2D
from keras_lc.layers.refocus_conv2d import RefocusConv2D
from keras_lc.layers.shared_lc_conv2d import SharedLCConv2D

__all__ = ["LCConv2D", "RefocusConv2D", "SharedLCConv2D"]
