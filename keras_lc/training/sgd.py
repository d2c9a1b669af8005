"""`TorchSGD`: SGD with PyTorch's update rule and coupled weight decay.

Why not `keras.optimizers.SGD(weight_decay=...)`: the paper trains with
`torch.optim.SGD(lr, momentum=0.9, nesterov=True, weight_decay=1e-2)`, whose
weight decay is *coupled*: `wd * w` is added to the gradient before the
momentum buffer, so it is scaled by the learning rate and amplified by the
momentum (an effective decay of about `lr * wd / (1 - momentum)` per step).
Keras' `weight_decay` is *decoupled* (`w -= lr * wd * w` after the update, no
momentum), i.e. about 10x weaker at momentum 0.9; an L2 penalty in the loss
would match PyTorch only for plain SGD on the trainable weights and would
also show up in the reported loss. So this optimizer reproduces PyTorch's
rule exactly, including its momentum buffer (which, unlike Keras' SGD, does
not contain the learning rate, so the two differ once the learning rate
changes, e.g. under the cosine schedule).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_lc")
class TorchSGD(keras.optimizers.SGD):
    """SGD exactly as `torch.optim.SGD` (dampening 0), coupled weight decay.

    Per trainable variable `w` with gradient `g`, learning rate `lr`:

        g = g + weight_decay * w          (coupled weight decay)
        b = momentum * b + g              (b starts at 0, so b_1 = g_1)
        d = g + momentum * b  if nesterov else  b
        w = w - lr * d

    Args:
        learning_rate: Float or a `keras.optimizers.schedules` schedule.
        momentum: Float in [0, 1].
        nesterov: Nesterov momentum (PyTorch's formulation).
        weight_decay: Coupled (L2-style) weight decay, PyTorch's meaning;
            variables excluded with `exclude_from_weight_decay` get none.
        **kwargs: Base optimizer arguments (`name`, `clipnorm`, ...); Keras'
            own decoupled `weight_decay` is not used.

    Example:

    >>> import numpy as np
    >>> w = keras.Variable(np.ones(3, "float32"))
    >>> opt = TorchSGD(learning_rate=0.1, momentum=0.9, nesterov=True, weight_decay=0.5)
    >>> _ = opt.apply_gradients([(np.zeros(3, "float32"), w)])
    >>> [round(float(v), 3) for v in w.numpy()]  # 1 - 0.1 * (0.5 + 0.9 * 0.5)
    [0.905, 0.905, 0.905]
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum=0.9,
        nesterov=True,
        weight_decay=0.0,
        name="torch_sgd",
        **kwargs,
    ):
        kwargs.pop("coupled_weight_decay", None)
        super().__init__(
            learning_rate=learning_rate,
            momentum=float(momentum),
            nesterov=nesterov,
            weight_decay=None,
            name=name,
            **kwargs,
        )
        if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or weight_decay < 0:
            raise ValueError(
                f"`weight_decay` must be a non-negative float. Received: weight_decay={weight_decay!r}"
            )
        self.coupled_weight_decay = float(weight_decay)

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.coupled_weight_decay and self._use_weight_decay(variable):
            gradient = ops.add(
                gradient, ops.multiply(ops.cast(self.coupled_weight_decay, variable.dtype), variable)
            )
        if self.momentum != 0:
            momentum = ops.cast(self.momentum, variable.dtype)
            buffer = self.momentums[self._get_variable_index(variable)]
            self.assign(buffer, ops.add(ops.multiply(buffer, momentum), gradient))
            if self.nesterov:
                gradient = ops.add(gradient, ops.multiply(buffer, momentum))
            else:
                gradient = buffer
        self.assign_sub(variable, ops.multiply(gradient, learning_rate))

    def get_config(self):
        config = super().get_config()
        config["weight_decay"] = self.coupled_weight_decay
        return config
