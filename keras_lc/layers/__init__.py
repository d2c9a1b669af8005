"""Layers of keras-lc."""

from keras_lc.layers.lc_conv2d import LCConv2D

__all__ = ["LCConv2D"]
