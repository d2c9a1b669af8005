"""Publishing a finished training run: `keras-lc export RUN_DIR --name NAME`.

`export_run` writes `zoo/NAME/`:

- `NAME.weights.h5`: the training-form weights, compact (frozen kernels are
  stored as their seeds, the basis form as its coefficients), and
  `NAME_notop.weights.h5`, the same without the classifier (`include_top=False`);
- `NAME_folded.keras`: the folded inference model (stock Keras layers only;
  loads with `safe_mode=True` where keras_lc is not installed);
- `saved_model/`: a TensorFlow SavedModel of the folded model, for serving;
- `MODEL_CARD.md` and `manifest.json` (a `keras_lc.weights.PretrainedWeights`):
  architecture, recipe, data, the accuracy of both forms measured here on the
  test split, sizes, sha256s and the command that trained it.

Everything is written into a temporary folder beside `zoo/NAME/` that is renamed
into place at the end; an existing `zoo/NAME/` is replaced only then.
"""

import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np

from keras_lc.data import sha256_of

_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


def _read_json(path, missing):
    if not Path(path).is_file():
        raise FileNotFoundError(missing)
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_run(run_dir, weights=None):
    """`(config, model)`: a run's config and its model with the final weights."""
    from keras_lc import zoo

    run_dir = Path(run_dir)
    config = _read_json(run_dir / "config.json", f"'{run_dir}' is not a run directory: no config.json in it")
    weights = Path(weights or run_dir / "final.weights.h5")
    if not weights.is_file():
        raise FileNotFoundError(f"no weights file '{weights}' (has the run finished?)")
    model = zoo.get_model(config["model"]["name"], **config["model"]["kwargs"])
    try:
        model.load_weights(weights)
    except (ValueError, OSError) as error:
        raise ValueError(f"cannot load '{weights}' into {config['model']['name']!r}: {error}") from None
    return config, model


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


def backbone(config, model):
    """The run's model built with `include_top=False`, carrying `model`'s weights by layer name."""
    from keras_lc import zoo

    kwargs = {k: v for k, v in config["model"]["kwargs"].items()
              if k not in ("classes", "classifier_activation")}
    notop = zoo.get_model(config["model"]["name"], include_top=False, **kwargs)
    for layer in notop.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return notop


def _size(path):
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _card(name, entry, config, summary, measured, files):
    recipe = "\n".join(f"| {k} | {v} |" for k, v in sorted(config["recipe"].items()))
    sizes = "\n".join(f"| `{f}` | {_size(p) / 2**20:.2f} MiB | `{sha}` |" for f, (p, sha) in files.items())
    note = "" if config["recipe"].get("epochs") == 75 else (
        "**Not the paper's full 75-epoch recipe**: a shorter run of the same optimizer, "
        "schedule and augmentation; a full-recipe run will replace it."
    )
    return f"""# {name}

`keras_lc.zoo.get_model({entry.model!r}, weights={entry.weights!r})` (or the builder with the
same arguments) loads these weights; `{name}_folded.keras` is the same network folded into stock
Keras layers.

## Architecture
Builder `{config['model']['name']}` with `{json.dumps(config['model']['kwargs'], sort_keys=True)}`:
{entry.trainable_params:,} trainable parameters, {entry.total_params:,} in all (frozen included).

## Training
Dataset `{entry.dataset}` (`{config.get('data_dir')}`), {summary.get('epochs')} epochs,
{summary.get('steps')} steps, {summary.get('wall_time_s', 0):.0f} s wall time, {summary.get('images_per_s') or 0:.0f} images/s
on {summary.get('strategy')} with {summary.get('replicas')} replica(s).
{note}

| recipe field | value |
|---|---|
{recipe}

Command:

    {config.get('command', '(not recorded by this run)')}

## Measured accuracy (test split, {measured['test_examples']} images, measured by `keras-lc export`)
| form | top-1 |
|---|---|
| training form | {measured['top1']:.2%} |
| folded | {measured['top1_folded']:.2%} |

Largest relative difference of the folded outputs from the training form's on a batch:
{measured['fold_relative_error']:.1e}. Top-1 reported by the training run itself: {summary.get('top1')}.

## Files
| file | size | sha256 |
|---|---|---|
{sizes}
"""


def export_run(run_dir, name, zoo_dir="zoo", weights_tag=None, data_dir=None,
               test_per_class=None, batch_size=256):
    """Publish `run_dir` as `zoo_dir/name/`; returns the manifest's `PretrainedWeights`."""
    import keras_lc
    from keras_lc.data import load_dataset
    from keras_lc.training.run import parameter_counts
    from keras_lc.weights import PretrainedWeights

    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"--name must be lower-case letters, digits and underscores (e.g. "
            f"resnet_lc20_16x128_frozen_cifar10). Received: {name!r}"
        )
    run_dir = Path(run_dir)
    summary = _read_json(run_dir / "summary.json", f"'{run_dir}' has no summary.json: has the run finished?")
    config, model = load_run(run_dir)
    dataset = config["data"]["dataset"]
    test = load_dataset(dataset, "test", data_dir or config.get("data_dir"),
                        per_class=test_per_class or config.get("test_per_class"))
    folded = keras_lc.fold(model)
    measured = compare_forms(model, folded, test, batch_size)
    counts = parameter_counts(model)

    zoo_dir = Path(zoo_dir)
    zoo_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=zoo_dir))
    try:
        weights_file, notop_file = f"{name}.weights.h5", f"{name}_notop.weights.h5"
        model.save_weights(staging / weights_file)
        backbone(config, model).save_weights(staging / notop_file)
        folded.save(staging / f"{name}_folded.keras")
        folded.export(str(staging / "saved_model"), format="tf_saved_model", verbose=False)
        entry = PretrainedWeights(
            name=name, model=model.name, model_kwargs=config["model"]["kwargs"],
            weights=weights_tag or dataset, dataset=dataset,
            classes=int(model.output_shape[-1]), file_name=weights_file,
            sha256=sha256_of(staging / weights_file), notop_file_name=notop_file,
            notop_sha256=sha256_of(staging / notop_file), top1=measured["top1"],
            top1_folded=measured["top1_folded"], epochs=int(summary["epochs"]),
            recipe=json.dumps(config["recipe"], sort_keys=True),
            command=config.get("command", ""), trainable_params=counts["trainable"],
            total_params=counts["trainable"] + counts["non_trainable"],
        )
        (staging / "manifest.json").write_text(entry.to_json())
        files = {f: (staging / f, sha256_of(staging / f) if (staging / f).is_file() else "(folder)")
                 for f in (weights_file, notop_file, f"{name}_folded.keras", "saved_model")}
        (staging / "MODEL_CARD.md").write_text(_card(name, entry, config, summary, measured, files))
        target = zoo_dir / name
        if target.exists():
            retired = zoo_dir / f".{name}.old-{uuid.uuid4().hex}"
            os.replace(target, retired)
            os.replace(staging, target)
            shutil.rmtree(retired)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return entry
