"""Training: the paper's recipe, distribution strategies, callbacks and run directories.

- `Recipe`: typed hyper-parameters, defaulting to the paper's CIFAR recipe.
- `TorchSGD`: SGD with PyTorch's update rule and coupled weight decay.
- `get_strategy`, `synchronize_batchnorm`: `tf.distribute` and synchronized BatchNorm.
- `train`: a resumable run directory (config, logs, learning curve, weights, summary).
"""

from keras_lc.training.callbacks import (
    AtomicBackupAndRestore,
    EpochLog,
    NaNGuard,
    TrainingDiverged,
)
from keras_lc.training.recipe import Recipe
from keras_lc.training.run import RunDirectoryError, parameter_counts, train
from keras_lc.training.sgd import TorchSGD
from keras_lc.training.strategy import STRATEGIES, get_strategy, synchronize_batchnorm

__all__ = [
    "AtomicBackupAndRestore",
    "EpochLog",
    "NaNGuard",
    "Recipe",
    "RunDirectoryError",
    "STRATEGIES",
    "TorchSGD",
    "TrainingDiverged",
    "get_strategy",
    "parameter_counts",
    "synchronize_batchnorm",
    "train",
]
