"""The paper's tf.data pipelines: `make_pipeline` and its stateless augmentations.

Without TensorFlow, `make_pipeline` returns the NumPy pipeline of
`keras_lc.data.arrays` instead (same batches' layout, same guarantees).

Every random choice of the training augmentation is a function of
`augmentation_seed(seed, epoch, example index)`, so a run resumed at any
epoch sees exactly the batches of an uninterrupted one.
"""

import functools


def augmentation_seed(seed, epoch, index):
    """The stateless seed (an int64 pair) of example `index`'s augmentation in `epoch`.

    Every random choice of the training pipeline (crop offsets, flips) is a
    function of this pair alone, so a run resumed at any epoch draws exactly
    the augmentations of an uninterrupted run. `seed`, `epoch` and `index` may
    be Python ints or int64 tensors.
    """
    import tensorflow as tf

    base = tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.random.experimental.stateless_fold_in(base, tf.cast(index, tf.int64))


def _cifar_augment(image, key, pad=4):
    """Zero-pad by `pad`, random crop back to the image's size, random horizontal flip.

    Stateless: the crop offsets (uniform in [0, 2 * pad]) and the flip
    (probability 1/2) are functions of `key` (see `augmentation_seed`).
    """
    import tensorflow as tf

    crop_key, flip_key = tf.unstack(tf.random.experimental.stateless_split(key, 2))
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    cropped = tf.image.stateless_random_crop(padded, tf.shape(image), seed=crop_key)
    return tf.image.stateless_random_flip_left_right(cropped, seed=flip_key)


def _random_resized_crop(image, size, key, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """Inception-style crop: random area fraction and aspect ratio, resized to `size` (stateless)."""
    import tensorflow as tf

    begin, crop, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=key,
        min_object_covered=0.0,
        aspect_ratio_range=ratio,
        area_range=scale,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    cropped = tf.slice(image, begin, crop)
    cropped.set_shape([None, None, image.shape[-1]])
    return tf.image.resize(cropped, (size, size), antialias=True)


def _center_crop(image, size, crop_fraction):
    """Resize the shorter side to `size / crop_fraction`, then take the central `size` crop."""
    import tensorflow as tf

    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = (size / crop_fraction) / tf.reduce_min(shape)
    resized = tf.cast(tf.round(shape * scale), tf.int32)
    image = tf.image.resize(image, resized, antialias=True)
    top, left = (resized[0] - size) // 2, (resized[1] - size) // 2
    return tf.image.crop_to_bounding_box(image, top, left, size, size)


def check_pipeline_options(spec, image_size=None, randaugment=None, mixup_alpha=0.0, cutmix_alpha=0.0):
    """A `ValueError` (one line) for options this environment's pipeline lacks.

    Where TensorFlow is not installed the pipeline is the NumPy one
    (`keras_lc.data.arrays`), which has no RandAugment, MixUp, CutMix or
    resizing. `keras-lc train` calls this before it loads anything.
    """
    from keras_lc.startup import has_tensorflow

    size = image_size or spec.image_size
    if not has_tensorflow() and (randaugment or mixup_alpha or cutmix_alpha or size != spec.native_size):
        raise ValueError(
            "Without TensorFlow the input pipeline is the NumPy one (keras_lc.data.arrays), "
            "which has no RandAugment, MixUp, CutMix or resizing; install TensorFlow for them. "
            f"Received: randaugment={randaugment!r}, mixup_alpha={mixup_alpha!r}, "
            f"cutmix_alpha={cutmix_alpha!r}, image_size={size!r}"
        )


def make_pipeline(
    data,
    training,
    batch_size,
    augment=True,
    cache=None,
    shuffle_buffer=None,
    seed=None,
    image_size=None,
    randaugment=None,
    mixup_alpha=0.0,
    cutmix_alpha=0.0,
    crop_fraction=0.875,
    epochs=None,
    normalize=True,
):
    """Batched, augmented, normalized `tf.data` pipeline over a `LoadedDataset`.

    Where TensorFlow is not installed: a `keras_lc.data.arrays.ArrayPipeline`
    (a `keras.utils.PyDataset`) over the decoded arrays, for 32x32 RGB
    datasets with the CIFAR augmentation or none.

    Yields `(float32 images (b, s, s, 3) standardized with the dataset's
    mean/std, float32 one-hot labels (b, classes))`. Decoding runs in
    parallel, decoded images are cached (in memory by default for the
    low-resolution datasets), and batches are prefetched.

    Augmentation (training only, `augment=True`) follows the paper's
    Appendix A: CIFAR pad 4 + random crop + horizontal flip; SVHN and
    Fashion-MNIST none (Fashion-MNIST is always upscaled to 32x32 and
    repeated to 3 channels); ImageNet random-resized crop + flip, then on
    request Keras' `RandAugment` (`randaugment=(num_ops, factor)`) and
    `MixUp`/`CutMix` (with both, each batch gets one of them at random).
    Evaluation images are not modified (ImageNet: resize + center crop).

    Args:
        data: A `LoadedDataset` (see `load_dataset`).
        training: Shuffle and augment (`True`) or keep order (`False`).
        batch_size: Global batch size (distribution strategies split it).
        augment: Apply the training augmentation.
        cache: Cache decoded images: `True` (memory), a file path, or
            `False`. `None`: memory, except for ImageNet.
        shuffle_buffer: Shuffle buffer; `None`: the whole split (ImageNet
            10000).
        seed: Seed of the shuffle order (`None`: random).
        epochs: Training only: a `range` of epoch indices. The pipeline then
            holds exactly those epochs one after the other (iterate it once,
            e.g. `fit(..., steps_per_epoch=ceil(n / batch_size))`), and the
            order of epoch e depends on `(seed, e)` alone. So a run resumed
            at epoch e sees the same order as an uninterrupted one, and so
            does a run under a distribution strategy (for which Keras reads
            one batch before training, which would advance a reshuffling
            dataset). `None`: one epoch, reshuffled at every iteration.
        normalize: Standardize with the dataset's mean/std (`True`, what
            training feeds), or yield float32 raw pixel values in [0, 255]
            (for models built with `include_preprocessing`).

    Resume-exactness: the CIFAR crop offsets and flips and the ImageNet
    crops and flips are stateless, each a function of `augmentation_seed(seed,
    epoch, example index)`, so with `epochs` a run resumed at any epoch sees
    exactly the batches of an uninterrupted one. Keras' `RandAugment`,
    `MixUp` and `CutMix` (ImageNet, on request) draw from their own seeded
    generators and restart with the process.
    """
    import keras

    from keras_lc.startup import has_tensorflow

    spec = data.spec
    size = image_size or spec.image_size
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
    if training and epochs is not None and len(epochs) == 0:
        raise ValueError(f"`epochs` must be a non-empty range. Received: epochs={epochs!r}")
    check_pipeline_options(spec, image_size, randaugment, mixup_alpha, cutmix_alpha)
    if not has_tensorflow():
        from keras_lc.data.arrays import ArrayPipeline

        images, labels = data.arrays()
        return ArrayPipeline(images, labels, spec, training, batch_size, augment, seed,
                             epochs if training else None, normalize)
    import tensorflow as tf

    imagenet = spec.augmentation == "imagenet"
    if (randaugment or mixup_alpha or cutmix_alpha) and not imagenet:
        raise ValueError(
            "RandAugment/MixUp/CutMix belong to the ImageNet-style pipeline; the paper's "
            f"{spec.name} recipe uses {spec.augmentation!r} augmentation. Received: "
            f"randaugment={randaugment!r}, mixup_alpha={mixup_alpha!r}, cutmix_alpha={cutmix_alpha!r}"
        )
    augment = bool(augment and training)
    autotune = tf.data.AUTOTUNE
    dataset = data.dataset
    if cache is None:
        cache = not imagenet
    if cache:
        dataset = dataset.cache("" if cache is True else str(cache))
    classes = spec.num_classes
    mean = tf.constant(spec.mean, tf.float32) * 255.0
    std = tf.constant(spec.std, tf.float32) * 255.0
    randaug = None
    if imagenet and augment and randaugment:
        num_ops, factor = randaugment
        randaug = keras.layers.RandAugment(value_range=(0, 255), num_ops=num_ops, factor=factor)
    cifar_augment = augment and spec.augmentation == "cifar"
    resize = not imagenet and spec.native_size != size

    def per_image(image, label, key):  # before batching: ImageNet crops differ in size
        if imagenet and augment:
            crop_key, flip_key = tf.unstack(tf.random.experimental.stateless_split(key, 2))
            image = _random_resized_crop(image, size, crop_key)
            image = tf.image.stateless_random_flip_left_right(image, seed=flip_key)
            if randaug is not None:
                image = randaug(image)
        elif imagenet:
            image = _center_crop(image, size, crop_fraction)
        elif cifar_augment:
            if resize:
                image = tf.image.resize(tf.cast(image, tf.float32), (size, size))
            image = _cifar_augment(image, key)
        return image, label

    def batched(examples):
        if imagenet or cifar_augment:
            examples = examples.map(per_image, num_parallel_calls=autotune)
        else:
            examples = examples.map(lambda image, label, key: (image, label))
        return examples.batch(batch_size, drop_remainder=False, num_parallel_calls=autotune)

    def per_batch(images, labels):
        images = tf.cast(images, tf.float32)
        if spec.channels == 1:
            images = tf.image.grayscale_to_rgb(images)
        if resize and not cifar_augment:
            images = tf.image.resize(images, (size, size))
        return ((images - mean) / std if normalize else images), tf.one_hot(labels, classes)

    def keyed(epoch_seed, epoch):
        """(index, (image, label)) -> (image, label, the example's augmentation seed)."""
        return lambda index, example: (*example, augmentation_seed(epoch_seed, epoch, index))

    # A training example carries its index in the split: with the seed and the
    # epoch, the key of its augmentation.
    buffer = shuffle_buffer or (10_000 if imagenet else max(data.num_examples, 1))
    if training and epochs is not None:
        base_seed = 0 if seed is None else int(seed)
        dataset = functools.reduce(
            lambda joined, more: joined.concatenate(more),  # batches never straddle epochs
            [
                batched(
                    dataset.enumerate()
                    .shuffle(buffer, seed=base_seed * 1_000_003 + e, reshuffle_each_iteration=False)
                    .map(keyed(base_seed, e))
                )
                for e in epochs
            ],
        )
    elif training:
        # No epoch index: each iteration draws fresh per-example seeds instead.
        dataset = dataset.enumerate().shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        dataset = batched(
            tf.data.Dataset.zip(dataset, draws).map(
                lambda indexed, draw: (*indexed[1], augmentation_seed(draw, -1, indexed[0]))
            )
        )
    else:  # evaluation draws nothing: the key slot is never read
        dataset = batched(dataset.map(lambda image, label: (image, label, tf.zeros([2], tf.int64))))
    dataset = dataset.map(per_batch, num_parallel_calls=autotune)
    if augment and (mixup_alpha or cutmix_alpha):
        mixers = []
        if mixup_alpha:
            mixers.append(keras.layers.MixUp(alpha=mixup_alpha))
        if cutmix_alpha:
            mixers.append(keras.layers.CutMix(factor=cutmix_alpha))

        def mix(images, labels):
            batch = {"images": images, "labels": labels}
            if len(mixers) == 1:
                out = mixers[0](batch)
            else:
                out = tf.cond(
                    tf.random.uniform([]) < 0.5, lambda: mixers[0](batch), lambda: mixers[1](batch)
                )
            return out["images"], out["labels"]

        dataset = dataset.map(mix, num_parallel_calls=autotune)
    return dataset.prefetch(autotune)
