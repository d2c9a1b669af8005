"""`StepTimer`: the seconds of each training step of `model.fit`, shared by the benchmarks.

Imports only Keras (no TensorFlow), so a benchmark's JAX or PyTorch subprocess can use it.
"""

import time

import keras


class StepTimer(keras.callbacks.Callback):
    """Appends to `times` the seconds of each step of a `fit` after its first `warmup` steps
    (tracing and compiling); reading the loss waits for the step, which JAX and PyTorch
    dispatch asynchronously. `times` may be a list shared across several `fit` calls."""

    def __init__(self, warmup, times=None):
        super().__init__()
        self.warmup = warmup
        self.times = [] if times is None else times

    def on_train_batch_begin(self, batch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        float(logs["loss"])
        if batch >= self.warmup:
            self.times.append(time.perf_counter() - self.start)
