"""The form a published model ships in: raw images in, probabilities out, folded.

A published model's builder call (`zoo.get_model(builder, weights=TAG)`)
starts with its dataset's normalization and ends in a softmax, so users feed
it uint8 images and read probabilities. `keras-lc export` publishes the same
network folded (`NAME_folded.keras`, and its exports: `keras_lc.interchange`):
stock Keras layers only, so it loads with `safe_mode=True` where keras_lc is
not installed.

- `serving_model`: that builder call, from a published weights file.
- `write_folded`: its folded form, written as `.keras` (its other formats:
  `keras_lc.interchange`).
- `top1` / `compare_forms`: top-1 on a dataset split, of one form (fed raw or
  normalized images) or of a model and its fold side by side.
- `sample_top1`: top-1 on the 100 test images shipped in `keras_lc/sample_data`,
  fed raw, as a user would (the figure a card states and the tests re-measure).
- `builder_arguments` / `builder_call`: the shortest builder call giving a
  published model, as cards and `keras-lc list --pretrained` show it.
"""

import os
from pathlib import Path

import numpy as np


def serving_model(builder, model_kwargs, weights, dataset, include_top=True):
    """`builder` with `model_kwargs` (their `classifier_activation` dropped:
    softmax), the weights file `weights`, and `dataset`'s preprocessing."""
    from keras_lc import zoo

    kwargs = {k: v for k, v in model_kwargs.items() if k != "classifier_activation"}
    return zoo.get_model(builder, weights=os.fspath(weights), include_preprocessing=dataset,
                         include_top=include_top, **kwargs)


def write_folded(model, folder, name):
    """Folds `model`, writes `folder/NAME_folded.keras` and returns the folded model.

    Its SavedModel, ONNX and LiteRT exports are `keras_lc.interchange.export_formats`'.
    """
    import keras_lc

    folded = keras_lc.fold(model)
    folded.save(Path(folder) / f"{name}_folded.keras")
    return folded


def top1(model, data, batch_size=256, normalize=True):
    """Top-1 of `model` on a `LoadedDataset`, fed normalized or (`normalize=False`) raw images."""
    from keras_lc.data import make_pipeline

    correct = total = 0
    for images, labels in make_pipeline(data, training=False, batch_size=batch_size, normalize=normalize):
        # NumPy batches: tf.data's tensors (TensorFlow installed, Keras on JAX or PyTorch) do not
        # go into another backend's predict_on_batch.
        predicted = np.argmax(np.asarray(model.predict_on_batch(np.asarray(images))), axis=-1)
        correct += int(np.sum(predicted == np.argmax(np.asarray(labels), axis=-1)))
        total += len(predicted)
    return correct / total


def compare_forms(model, folded, test, batch_size=256):
    """Top-1 of both forms on a `LoadedDataset` and the folded outputs' worst relative error."""
    from keras_lc.data import make_pipeline

    correct = np.zeros(2, dtype=np.int64)
    total, worst = 0, 0.0
    for images, labels in make_pipeline(test, training=False, batch_size=batch_size):
        truth = np.argmax(np.asarray(labels), axis=-1)
        images = np.asarray(images)  # as in `top1`
        outputs = [np.asarray(m.predict_on_batch(images), dtype=np.float64) for m in (model, folded)]
        worst = max(worst, float(np.linalg.norm(outputs[1] - outputs[0]) / np.linalg.norm(outputs[0])))
        correct += [int(np.sum(np.argmax(o, axis=-1) == truth)) for o in outputs]
        total += len(truth)
    return {"top1": correct[0] / total, "top1_folded": correct[1] / total,
            "fold_relative_error": worst, "test_examples": total}


def check_sample(dataset):
    """`(images, labels)` exports of a `dataset` model are checked on: the shipped CIFAR-10
    sample (raw, float32) for CIFAR-10, else `(None, None)` (`keras_lc.interchange.check_images`)."""
    from keras_lc.samples import cifar10_test_sample

    if dataset != "cifar10":
        return None, None
    sample = cifar10_test_sample()
    return sample.images.astype(np.float32), sample.labels


def sample_top1(model):
    """Top-1 of `model` on the shipped CIFAR-10 sample, fed as raw uint8 images."""
    from keras_lc.samples import cifar10_test_sample

    sample = cifar10_test_sample()
    predictions = np.asarray(model.predict(sample.images, batch_size=len(sample.images), verbose=0))
    return float(np.mean(np.argmax(predictions, axis=-1) == sample.labels))


def builder_arguments(entry):
    """`(builder name, keyword arguments)` of the shortest builder call giving `entry`'s model.

    The architecture's own name when it is registered (a preset), else the
    manifest's builder; the arguments are `weights=` and those of
    `model_kwargs` that differ from the builder's defaults (the seed, input
    shape, classes and form follow from the weights).
    """
    import inspect

    from keras_lc import zoo

    name = entry.model if entry.model in zoo.list_models() else (entry.builder or entry.model)
    parameters = inspect.signature(zoo.get_builder(name)).parameters
    implied = ("classes", "classifier_activation", "input_shape", "seed", "implementation", "weights")
    kwargs = {k: v for k, v in entry.model_kwargs.items()
              if k not in implied and k in parameters and parameters[k].default != v}
    return name, {"weights": entry.weights, **kwargs}


def builder_call(entry):
    """The builder call that gives `entry`'s model, as a card shows it.

    Example:

    >>> from keras_lc.weights import published_weights
    >>> builder_call(published_weights()["resnet_lc20_16x128_learnable_cifar10"])
    "keras_lc.zoo.get_model('resnet_lc20_16x128', weights='cifar10_learnable', frozen_spatial=False)"
    >>> builder_call(published_weights()["resnet_lc20_16x1_frozen_cifar10"])
    "keras_lc.zoo.get_model('resnet_lc20', weights='cifar10')"
    """
    name, kwargs = builder_arguments(entry)
    arguments = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"keras_lc.zoo.get_model({name!r}, {arguments})"
