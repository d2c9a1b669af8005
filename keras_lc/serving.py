"""The form a published model ships in: raw images in, probabilities out, folded.

A published model's builder call (`zoo.get_model(builder, weights=TAG)`)
starts with its dataset's normalization and ends in a softmax, so users feed
it uint8 images and read probabilities. `keras-lc export` publishes the same
network folded (`NAME_folded.keras`, `saved_model/`): stock Keras layers only,
so it loads with `safe_mode=True` where keras_lc is not installed.

- `serving_model`: that builder call, from a published weights file.
- `write_folded`: its folded form, written as `.keras` and SavedModel.
- `top1` / `compare_forms`: top-1 on a dataset split, of one form (fed raw or
  normalized images) or of a model and its fold side by side.
- `sample_top1`: top-1 on the 100 test images shipped in `keras_lc/sample_data`,
  fed raw, as a user would (the figure a card states and the tests re-measure).
- `refresh_folded`: rewrites a published model's folded files, sample figures
  and card rows from its weights file, for when the serving form changes.
"""

import os
import re
import shutil
import tempfile
import uuid
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
    """Folds `model` and writes `folder/NAME_folded.keras` and `folder/saved_model/`."""
    import keras_lc

    folder = Path(folder)
    folded = keras_lc.fold(model)
    folded.save(folder / f"{name}_folded.keras")
    folded.export(str(folder / "saved_model"), format="tf_saved_model", verbose=False)
    return folded


def top1(model, data, batch_size=256, normalize=True):
    """Top-1 of `model` on a `LoadedDataset`, fed normalized or (`normalize=False`) raw images."""
    from keras_lc.data import make_pipeline

    correct = total = 0
    for images, labels in make_pipeline(data, training=False, batch_size=batch_size, normalize=normalize):
        predicted = np.argmax(np.asarray(model.predict_on_batch(images)), axis=-1)
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
        outputs = [np.asarray(m.predict_on_batch(images), dtype=np.float64) for m in (model, folded)]
        worst = max(worst, float(np.linalg.norm(outputs[1] - outputs[0]) / np.linalg.norm(outputs[0])))
        correct += [int(np.sum(np.argmax(o, axis=-1) == truth)) for o in outputs]
        total += len(truth)
    return {"top1": correct[0] / total, "top1_folded": correct[1] / total,
            "fold_relative_error": worst, "test_examples": total}


def sample_top1(model):
    """Top-1 of `model` on the shipped CIFAR-10 sample, fed as raw uint8 images."""
    from keras_lc.samples import cifar10_test_sample

    sample = cifar10_test_sample()
    predictions = np.asarray(model.predict(sample.images, batch_size=len(sample.images), verbose=0))
    return float(np.mean(np.argmax(predictions, axis=-1) == sample.labels))


def _file_row(folder, file_name):
    from keras_lc.archives import sha256_of

    path = Path(folder) / file_name
    size = path.stat().st_size if path.is_file() else sum(
        p.stat().st_size for p in path.rglob("*") if p.is_file())
    sha = sha256_of(path) if path.is_file() else "(folder)"
    return f"| `{file_name}` | {size / 2**20:.2f} MiB | `{sha}` |"


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


def card_header(entry):
    """The first lines of `entry`'s model card: how to get it, what goes in and out."""
    p = entry.preprocessing
    size = "x".join(str(d) for d in p.input_size) if p else "its input size"
    return f"""# {entry.name}

`{builder_call(entry)}` (or `keras_lc.zoo.load_published({entry.name!r})`) builds
this model with its weights (offline: they ship with keras-lc). It takes raw RGB images
({size}, values in [0, 255], uint8 or float) and outputs probabilities over its
{entry.classes} classes (`keras_lc.zoo.decode_predictions` names them). `{entry.name}_folded.keras`
is the same network folded into stock Keras layers, with the same inputs and outputs (loads with
`safe_mode=True` without keras-lc).
"""


def sample_sentence(entry):
    """The card's sentence stating the shipped-sample figures of `entry`."""
    return (f"On the 100 test images shipped in `keras_lc/sample_data` (10 per class), fed as raw "
            f"uint8 images to the builder call: top-1 {entry.sample_top1:.0%}; through `fold()` and "
            f"the published `{entry.name}_folded.keras`: {entry.sample_top1_folded:.0%}.")


def refresh_folded(name, zoo_dir="zoo"):
    """Rewrites `zoo_dir/name/`'s folded files, sample figures and card from its weights file.

    The weights file and the measured test-set figures are unchanged; the
    folded files are rebuilt from `serving_model`, and the manifest gains (or
    updates) `sample_top1`/`sample_top1_folded`. New files are written beside
    the old ones and renamed into place. Returns the new `PretrainedWeights`.
    """
    import dataclasses

    import keras

    from keras_lc.files import write_text_atomic
    from keras_lc.weights import PretrainedWeights

    folder = Path(zoo_dir) / name
    entry = PretrainedWeights.from_json(folder / "manifest.json")
    model = serving_model(entry.builder or entry.model, entry.model_kwargs,
                          folder / entry.file_name, entry.dataset)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=folder))
    try:
        write_folded(model, staging, name)
        reloaded = keras.saving.load_model(staging / f"{name}_folded.keras", safe_mode=True)
        entry = dataclasses.replace(entry, sample_top1=sample_top1(model),
                                    sample_top1_folded=sample_top1(reloaded))
        retired = folder / f".saved_model.old-{uuid.uuid4().hex}"
        os.replace(staging / f"{name}_folded.keras", folder / f"{name}_folded.keras")
        if (folder / "saved_model").exists():
            os.replace(folder / "saved_model", retired)
        os.replace(staging / "saved_model", folder / "saved_model")
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_text_atomic(folder / "manifest.json", entry.to_json())
    card = (folder / "MODEL_CARD.md").read_text(encoding="utf-8")
    for file_name in (f"{name}_folded.keras", "saved_model"):
        card = re.sub(rf"^\| `{re.escape(file_name)}` \|.*$", _file_row(folder, file_name), card,
                      flags=re.MULTILINE)
    card = re.sub(r"\nOn the 100 test images shipped in .*?\n\n", "\n", card, flags=re.DOTALL)
    card = card_header(entry) + card[card.index("\n## Accuracy"):]
    card = card.replace("\n## Architecture", f"\n{sample_sentence(entry)}\n\n## Architecture", 1)
    write_text_atomic(folder / "MODEL_CARD.md", card)
    return entry
