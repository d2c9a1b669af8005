"""Robust accuracy under the L-infinity FGSM attack (Goodfellow et al., 2015).

Epsilon is given in pixel units (images in [0, 1]; the paper uses 1/255).
Models take normalized images x = (pixel - mean) / std, so the attack is
carried out in pixel space and mapped back: one signed-gradient step of
epsilon / std per channel in the model's input space, clipped to the image
of [0, 1], i.e. [(0 - mean) / std, (1 - mean) / std].
"""

import dataclasses
import weakref

import keras
import numpy as np

from keras_lc.data import CIFAR10_MEAN, CIFAR10_STD


# Compiled jax gradient functions, per model and `from_logits`.
_JAX_STEPS = weakref.WeakKeyDictionary()


def _channel_constants(mean, std, channels):
    mean = np.broadcast_to(np.asarray(mean, dtype=np.float32), (channels,))
    std = np.broadcast_to(np.asarray(std, dtype=np.float32), (channels,))
    if np.any(std <= 0):
        raise ValueError(f"`std` must be positive. Received: std={std.tolist()}")
    return mean, std


def _check_epsilon(epsilon):
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.floating, np.integer)):
        raise ValueError(f"`epsilon` must be a number (pixel units). Received: epsilon={epsilon!r}")
    if not 0 <= epsilon <= 1:
        raise ValueError(
            "`epsilon` is in pixel units of images in [0, 1] (e.g. 1/255) and must lie in "
            f"[0, 1]. Received: epsilon={epsilon!r}"
        )
    return float(epsilon)


def _ends_in_softmax(model):
    last = model.layers[-1] if getattr(model, "layers", None) else model
    if isinstance(last, keras.layers.Softmax):
        return True
    return getattr(last, "activation", None) is keras.activations.softmax


def _make_loss_and_gradient(model, from_logits):
    """A function (x, y) -> (outputs, d loss / d x) for the active backend."""
    backend = keras.backend.backend()

    def loss_of(outputs, labels):
        return keras.ops.sum(
            keras.losses.sparse_categorical_crossentropy(labels, outputs, from_logits=from_logits)
        )

    if backend == "tensorflow":
        import tensorflow as tf

        def step(x, y):
            x = tf.convert_to_tensor(x)
            with tf.GradientTape() as tape:
                tape.watch(x)
                outputs = model(x, training=False)
                loss = loss_of(outputs, y)
            return outputs, tape.gradient(loss, x)

        return step
    if backend == "jax":
        import jax

        cache = _JAX_STEPS.setdefault(model, {})
        if from_logits not in cache:
            model_ref = weakref.ref(model)  # the cache must not keep the model alive

            def loss_fn(x, trainable, non_trainable, y):
                outputs, _ = model_ref().stateless_call(trainable, non_trainable, x, training=False)
                return loss_of(outputs, y), outputs

            # Weights are arguments, not constants: one compilation per model
            # (and input shape) serves every later call, even after training.
            cache[from_logits] = jax.jit(jax.grad(loss_fn, has_aux=True))
        grad_fn = cache[from_logits]

        def step(x, y):
            grad, outputs = grad_fn(
                x,
                [v.value for v in model.trainable_variables],
                [v.value for v in model.non_trainable_variables],
                y,
            )
            return outputs, grad

        return step
    if backend == "torch":
        import torch

        def step(x, y):
            x = keras.ops.convert_to_tensor(x).detach().requires_grad_(True)
            outputs = model(x, training=False)
            (grad,) = torch.autograd.grad(loss_of(outputs, y), [x])
            return outputs.detach(), grad

        return step
    raise NotImplementedError(
        f"FGSM needs input gradients, implemented for the 'tensorflow', 'jax' and 'torch' backends. "
        f"Received: keras.backend.backend()={backend!r}"
    )


@dataclasses.dataclass(frozen=True)
class RobustnessResult:
    """Clean and FGSM accuracy on one set of images.

    Attributes:
        epsilon: Attack budget in pixel units (images in [0, 1]).
        num_images: Number of images evaluated.
        clean_accuracy: Top-1 accuracy on the unperturbed images.
        robust_accuracy: Top-1 accuracy on the FGSM images.
    """

    epsilon: float
    num_images: int
    clean_accuracy: float
    robust_accuracy: float

    def to_dict(self):
        """A JSON-ready dict of every field."""
        return dataclasses.asdict(self)


class FGSM:
    """L-infinity FGSM on a classifier that takes normalized images.

    Args:
        model: A built Keras classifier mapping `(batch, h, w, c)` inputs in its
            normalized space to class logits (or softmax probabilities).
        epsilon: Budget in pixel units: every pixel (in [0, 1]) moves by at
            most `epsilon`. The paper uses 1/255.
        mean, std: Per-channel constants of the model's normalization
            x = (pixel - mean) / std. Use mean=0, std=1 for a model taking
            [0, 1] pixels, std=1/255 for one taking [0, 255] pixels.
        from_logits: Whether the outputs are logits; `"auto"` treats them as
            probabilities when the model ends in a softmax.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
    ...                           keras.layers.Dense(10)])
    >>> x = np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 3)).astype("float32")
    >>> x_adv, _ = FGSM(model, 1 / 255).perturb(x, np.zeros(4, "int32"))
    >>> x_adv.shape
    (4, 8, 8, 3)
    """

    def __init__(self, model, epsilon=1 / 255, mean=CIFAR10_MEAN, std=CIFAR10_STD, from_logits="auto"):
        if not isinstance(model, keras.Model):
            raise ValueError(f"`model` must be a keras.Model. Received: model={model!r}")
        if from_logits not in ("auto", True, False):
            raise ValueError(
                f"`from_logits` must be 'auto', True or False. Received: from_logits={from_logits!r}"
            )
        if np.any(np.asarray(std, dtype=np.float64) <= 0):
            raise ValueError(f"`std` must be positive. Received: std={std!r}")
        self.model = model
        self.epsilon = _check_epsilon(epsilon)
        self.mean, self.std = mean, std
        self.from_logits = not _ends_in_softmax(model) if from_logits == "auto" else from_logits
        self._step = None

    def perturb(self, x, y):
        """FGSM images of one batch in the model's input space.

        Args:
            x: float `(batch, h, w, c)` normalized images.
            y: int `(batch,)` labels.

        Returns:
            `(x_adv, clean_outputs)` as NumPy arrays. Pixels of x_adv are within
            `epsilon` of those of `x` and inside [0, 1]; with epsilon 0,
            `x_adv` is `x` unchanged.
        """
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.int32)
        if x.ndim != 4 or y.shape != x.shape[:1]:
            raise ValueError(
                "`x` must be a batch of images (batch, h, w, c) and `y` one label per image. "
                f"Received shapes x={x.shape}, y={y.shape}."
            )
        if self._step is None:
            self._step = _make_loss_and_gradient(self.model, self.from_logits)
        outputs, grad = self._step(x, y)
        outputs = keras.ops.convert_to_numpy(outputs)
        if self.epsilon == 0:
            return x, outputs
        mean, std = _channel_constants(self.mean, self.std, x.shape[-1])
        step = (self.epsilon / std) * np.sign(keras.ops.convert_to_numpy(grad))
        low, high = (0.0 - mean) / std, (1.0 - mean) / std
        # Never clip an input beyond where it already lies (float round-off
        # can put a normalized 0 or 255 pixel a hair outside [low, high]).
        x_adv = np.clip(x + step, np.minimum(low, x), np.maximum(high, x))
        return x_adv.astype(np.float32), outputs


def fgsm_perturb(model, x, y, epsilon=1 / 255, mean=CIFAR10_MEAN, std=CIFAR10_STD, from_logits="auto"):
    """FGSM images of one batch (see `FGSM.perturb`)."""
    return FGSM(model, epsilon, mean, std, from_logits).perturb(x, y)[0]


def _as_model_input(images, mean, std):
    images = np.asarray(images)
    if images.dtype == np.uint8:  # raw pixels: normalize like the model's inputs
        m, s = _channel_constants(mean, std, images.shape[-1])
        return (images.astype(np.float32) / 255.0 - m) / s
    return images.astype(np.float32)


def robust_accuracy(
    model,
    images,
    labels,
    epsilon=1 / 255,
    mean=CIFAR10_MEAN,
    std=CIFAR10_STD,
    batch_size=128,
    from_logits="auto",
    verbose=0,
):
    """Clean and FGSM top-1 accuracy of `model` on `images`.

    Args:
        model: A built Keras classifier taking normalized images.
        images: `(n, h, w, c)` images in the model's input space (float,
            normalized), or uint8 pixels, which are normalized with `mean`/`std`.
        labels: `(n,)` integer labels.
        epsilon: Budget in pixel units (images in [0, 1]); the paper uses 1/255.
        mean, std: The model's normalization (see `FGSM`).
        batch_size: Images per gradient step.
        from_logits: See `FGSM`.
        verbose: Show a Keras progress bar when truthy.

    Returns:
        `RobustnessResult`.
    """
    x = _as_model_input(images, mean, std)
    y = np.asarray(labels).astype(np.int32).reshape(-1)
    if x.ndim != 4 or len(x) != len(y) or len(y) == 0:
        raise ValueError(
            "`images` must be a non-empty batch (n, h, w, c) with one label each. "
            f"Received shapes images={x.shape}, labels={y.shape}."
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
    attack = FGSM(model, epsilon, mean, std, from_logits)
    starts = range(0, len(y), batch_size)
    progbar = keras.utils.Progbar(
        len(starts), unit_name="batch", stateful_metrics=["clean_acc", "fgsm_acc"]
    ) if verbose else None
    clean = robust = 0
    for i, start in enumerate(starts):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        x_adv, outputs = attack.perturb(xb, yb)
        clean += int(np.sum(np.argmax(outputs, axis=-1) == yb))
        adv_outputs = outputs if attack.epsilon == 0 else model.predict_on_batch(x_adv)
        robust += int(np.sum(np.argmax(adv_outputs, axis=-1) == yb))
        if progbar is not None:
            seen = start + len(yb)
            progbar.update(i + 1, [("clean_acc", clean / seen), ("fgsm_acc", robust / seen)])
    n = len(y)
    return RobustnessResult(attack.epsilon, n, clean / n, robust / n)
