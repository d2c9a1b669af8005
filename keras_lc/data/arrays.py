"""The input pipeline without TensorFlow: NumPy batches as a `keras.utils.PyDataset`.

`ArrayPipeline` is what `keras_lc.data.make_pipeline` returns where
TensorFlow is not installed (Keras on JAX or PyTorch, e.g. on a GPU machine
without TensorFlow): the same batches' shapes and normalization, the same
paper augmentation (zero-pad 4, random 32x32 crop, horizontal flip) on the
decoded uint8 arrays, and the same guarantees: epoch e's order depends on
(seed, e) alone and every random choice of an example's augmentation on
(seed, epoch, example index) alone, so a resumed run sees exactly the batches
of an uninterrupted one. The random streams are NumPy's (the tf.data pipeline
draws TensorFlow's), so the two pipelines shuffle and crop differently, and
the images are Pillow's decode (`keras_lc.data.decode_images`), within 5
levels of TensorFlow's.

Written here rather than taken from a library because the draws must be
stateless per example: `example_draws` hashes (seed, epoch, index) with
SplitMix64, vectorized over a batch, where NumPy's generators are sequential.
"""

import math

import keras
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x):
    """SplitMix64's output function on uint64 arrays (wrapping arithmetic)."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def example_draws(seed, epoch, index):
    """One uint64 per example, a function of `(seed, epoch, index)` alone (vectorized over `index`).

    Example:

    >>> example_draws(0, 3, np.array([5, 6])).dtype
    dtype('uint64')
    >>> bool(np.all(example_draws(0, 3, np.array([5])) == example_draws(0, 3, np.array([9, 5]))[1]))
    True
    """
    index = np.asarray(index, dtype=np.uint64)
    key = _splitmix64(_splitmix64(np.array([seed], np.uint64)) ^ np.array([epoch & (2**64 - 1)], np.uint64))
    return _splitmix64(key ^ index)


def cifar_augment(images, draws, pad=4):
    """Zero-pad by `pad`, crop back to the images' size at offsets in [0, 2 pad], flip half.

    `images`: uint8 `(b, h, w, c)`; `draws`: one uint64 per image
    (`example_draws`), whose low bits give the row offset, the next the
    column offset and the flip.
    """
    b, h, w, _ = images.shape
    span = np.uint64(2 * pad + 1)
    rows = (draws % span).astype(np.int64)
    cols = ((draws >> np.uint64(16)) % span).astype(np.int64)
    flip = ((draws >> np.uint64(32)) & np.uint64(1)).astype(bool)
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    r = rows[:, None] + np.arange(h)
    c = cols[:, None] + np.arange(w)
    c = np.where(flip[:, None], c[:, ::-1], c)
    return padded[np.arange(b)[:, None, None], r[:, :, None], c[:, None, :]]


class ArrayPipeline(keras.utils.PyDataset):
    """Batches of a decoded split: `(float32 images, float32 one-hot labels)`, as `make_pipeline`.

    Args:
        images, labels: uint8 `(n, h, w, channels)` and int `(n,)`.
        spec: The dataset's `DatasetSpec` (classes, mean, std, augmentation).
        training: Shuffle and (with `augment`) augment, or keep order.
        batch_size: Images per batch (the last one may be smaller).
        augment: The paper's CIFAR augmentation (training only).
        seed: Seed of the order and the augmentation (`None`: 0).
        epochs: Training: the `range` of epoch indices this pipeline serves,
            one per Keras epoch (`on_epoch_end` moves to the next); `None`:
            epoch 0 again every time.
        normalize: Standardize with the dataset's mean/std, or yield raw
            float32 pixel values in [0, 255].
    """

    def __init__(self, images, labels, spec, training, batch_size, augment=True, seed=None,
                 epochs=None, normalize=True, **kwargs):
        super().__init__(**kwargs)
        if spec.channels != 3 or spec.augmentation not in ("cifar", "none"):
            raise ValueError(
                f"The NumPy input pipeline (used without TensorFlow) serves 32x32 RGB datasets "
                f"with the CIFAR augmentation or none; {spec.name} needs the tf.data pipeline: "
                "install TensorFlow."
            )
        self.images, self.labels = images, np.asarray(labels)
        self.spec, self.training, self.batch_size = spec, training, batch_size
        self.augment = bool(augment and training and spec.augmentation == "cifar")
        self.seed = 0 if seed is None else int(seed)
        self.epochs = None if epochs is None else list(epochs)
        self.position = 0  # index into `epochs`
        self.normalize = normalize
        self.mean = np.asarray(spec.mean, np.float32) * 255.0
        self.std = np.asarray(spec.std, np.float32) * 255.0
        self._order = None

    @property
    def epoch(self):
        """The epoch index the batches now served belong to."""
        return self.epochs[min(self.position, len(self.epochs) - 1)] if self.epochs else 0

    def order(self):
        """The example indices of the current epoch, in the order served."""
        if self._order is None:
            n = len(self.labels)
            self._order = (np.random.default_rng([self.seed, self.epoch]).permutation(n)
                           if self.training else np.arange(n))
        return self._order

    def __len__(self):
        return math.ceil(len(self.labels) / self.batch_size)

    def __getitem__(self, batch):
        index = self.order()[batch * self.batch_size:(batch + 1) * self.batch_size]
        images = self.images[index]
        if self.augment:
            images = cifar_augment(images, example_draws(self.seed, self.epoch, index))
        images = images.astype(np.float32)
        if self.normalize:
            images = (images - self.mean) / self.std
        labels = np.eye(self.spec.num_classes, dtype=np.float32)[self.labels[index]]
        return images, labels

    def on_epoch_end(self):
        if self.training and self.epochs is not None:
            self.position += 1
            self._order = None
