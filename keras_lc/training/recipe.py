"""`Recipe`: the training hyper-parameters, defaulting to the paper's CIFAR recipe."""

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional, Tuple

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant")


@dataclass
class Recipe:
    """Training hyper-parameters; the defaults are the paper's CIFAR recipe.

    Appendix A of Gavrikov & Keuper: 75 epochs, SGD with Nesterov momentum
    0.9, initial learning rate 1e-2 with cosine annealing, weight decay 1e-2,
    batch size 256, cross-entropy with label smoothing 0.1, last checkpoint.
    The weight decay is PyTorch's *coupled* form (`TorchSGD`, see
    `keras_lc/training/sgd.py` for why Keras' decoupled `weight_decay` would
    decay about 10x less); `weight_decay_mode="decoupled"` gives Keras'.

    Attributes:
        epochs: Training epochs.
        batch_size: Global batch size (split across replicas).
        optimizer: `"sgd"` (`TorchSGD`) or `"adamw"` (Keras `AdamW`, which
            always decays decoupled).
        learning_rate: Initial (peak) learning rate.
        momentum, nesterov: SGD momentum.
        weight_decay: Weight decay factor, applied to every trainable variable.
        weight_decay_mode: `"coupled"` (PyTorch SGD) or `"decoupled"` (Keras).
        schedule: `"cosine"` (to 0 over all training steps, per step) or
            `"constant"`.
        warmup_epochs: Linear warm-up epochs before the schedule.
        label_smoothing: Label smoothing of the cross-entropy.
        augment: Use the dataset's training augmentation.
        randaugment: `(num_ops, factor)` for Keras' RandAugment (ImageNet
            pipeline only), or `None`.
        mixup_alpha, cutmix_alpha: MixUp / CutMix strengths (ImageNet
            pipeline only); 0 disables.
        mixed_precision: Train with the `mixed_float16` policy on GPU
            (loss scaling included) or `mixed_bfloat16` elsewhere.
        xla: `jit_compile` for `model.compile`; `None` lets Keras decide.
        seed: Seed of Keras/NumPy/TF random state (data order, augmentation),
            in [0, 2**32 - 1].

    Example:

    >>> recipe = Recipe(epochs=2, learning_rate=0.05)
    >>> recipe.batch_size, recipe.weight_decay_mode
    (256, 'coupled')
    """

    epochs: int = 75
    batch_size: int = 256
    optimizer: str = "sgd"
    learning_rate: float = 1e-2
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-2
    weight_decay_mode: str = "coupled"
    schedule: str = "cosine"
    warmup_epochs: int = 0
    label_smoothing: float = 0.1
    augment: bool = True
    randaugment: Optional[Tuple[int, float]] = None
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mixed_precision: bool = False
    xla: Optional[bool] = None
    seed: int = 0

    def __post_init__(self):
        self.validate()

    # ------------------------------------------------------------ validation
    def validate(self):
        """Raise `ValueError` quoting the first invalid field."""

        def fail(name, allowed):
            raise ValueError(
                f"Recipe field `{name}` must be {allowed}. Received: {name}={getattr(self, name)!r}"
            )

        def is_int(value):
            return isinstance(value, int) and not isinstance(value, bool)

        def is_number(value):
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

        for name in ("epochs", "batch_size"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                fail(name, "a positive integer")
        if not is_int(self.warmup_epochs) or not 0 <= self.warmup_epochs < self.epochs:
            fail("warmup_epochs", "an integer in [0, epochs)")
        if not is_int(self.seed) or not 0 <= self.seed < 2**32:
            fail("seed", "an integer in [0, 2**32 - 1] (NumPy's global seed range)")
        if self.optimizer not in OPTIMIZERS:
            fail("optimizer", f"one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            fail("schedule", f"one of {SCHEDULES}")
        if self.weight_decay_mode not in ("coupled", "decoupled"):
            fail("weight_decay_mode", "'coupled' or 'decoupled'")
        if self.optimizer == "adamw" and self.weight_decay_mode == "coupled" and self.weight_decay:
            raise ValueError(
                "AdamW decays decoupled by definition; set weight_decay_mode='decoupled' "
                f"with optimizer='adamw'. Received: weight_decay_mode={self.weight_decay_mode!r}"
            )
        if not is_number(self.learning_rate) or self.learning_rate <= 0:
            fail("learning_rate", "a positive float")
        for name in ("weight_decay", "mixup_alpha", "cutmix_alpha"):
            if not is_number(getattr(self, name)) or getattr(self, name) < 0:
                fail(name, "a non-negative float")
        if not is_number(self.momentum) or not 0 <= self.momentum <= 1:
            fail("momentum", "a float in [0, 1]")
        if not is_number(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            fail("label_smoothing", "a float in [0, 1)")
        for name in ("nesterov", "augment", "mixed_precision"):
            if not isinstance(getattr(self, name), bool):
                fail(name, "a bool")
        if self.xla is not None and not isinstance(self.xla, bool):
            fail("xla", "True, False or None")
        if self.randaugment is not None:
            try:
                num_ops, factor = self.randaugment
                valid = is_int(num_ops) and num_ops >= 1 and is_number(factor) and 0 <= factor <= 1
            except (TypeError, ValueError):
                valid = False
            if not valid:
                fail("randaugment", "None or (num_ops >= 1, factor in [0, 1])")
            self.randaugment = (int(num_ops), float(factor))
        return self

    # --------------------------------------------------------------- (de)serialize
    def to_dict(self):
        """Plain JSON-able dict of the fields."""
        data = dataclasses.asdict(self)
        if data["randaugment"] is not None:
            data["randaugment"] = list(data["randaugment"])
        return data

    @classmethod
    def from_dict(cls, data):
        """Inverse of `to_dict`; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"Unknown recipe fields {unknown}. Known fields: {sorted(names)}.")
        data = dict(data)
        if data.get("randaugment") is not None:
            data["randaugment"] = tuple(data["randaugment"])
        return cls(**data)

    def replace(self, **changes):
        """A copy with some fields changed (validated)."""
        return self.from_dict({**self.to_dict(), **changes})

    # ----------------------------------------------------------------- builders
    def learning_rate_schedule(self, steps_per_epoch):
        """The per-step learning rate: optional linear warm-up, then cosine to 0 or constant."""
        import keras

        total = self.epochs * steps_per_epoch
        warmup = self.warmup_epochs * steps_per_epoch
        if self.schedule == "constant" and not warmup:
            return self.learning_rate
        decay_steps = total - warmup if self.schedule == "cosine" else 1
        alpha = 0.0 if self.schedule == "cosine" else 1.0
        if warmup:
            return keras.optimizers.schedules.CosineDecay(
                0.0, decay_steps, alpha=alpha, warmup_target=self.learning_rate, warmup_steps=warmup
            )
        return keras.optimizers.schedules.CosineDecay(self.learning_rate, decay_steps, alpha=alpha)

    def make_optimizer(self, steps_per_epoch):
        """The optimizer with the learning-rate schedule for `steps_per_epoch` steps."""
        import keras

        from keras_lc.training.sgd import TorchSGD

        if not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
            raise ValueError(
                f"`steps_per_epoch` must be a positive integer. Received: steps_per_epoch={steps_per_epoch!r}"
            )
        lr = self.learning_rate_schedule(steps_per_epoch)
        decoupled = self.weight_decay if self.weight_decay_mode == "decoupled" and self.weight_decay else None
        if self.optimizer == "adamw":
            return keras.optimizers.AdamW(learning_rate=lr, weight_decay=decoupled or 0.0)
        if decoupled:
            return keras.optimizers.SGD(
                learning_rate=lr, momentum=self.momentum, nesterov=self.nesterov, weight_decay=decoupled
            )
        return TorchSGD(
            learning_rate=lr, momentum=self.momentum, nesterov=self.nesterov, weight_decay=self.weight_decay
        )

    def make_loss(self, from_logits=True):
        """Categorical cross-entropy with the recipe's label smoothing (one-hot labels)."""
        import keras

        return keras.losses.CategoricalCrossentropy(
            from_logits=from_logits, label_smoothing=self.label_smoothing
        )
