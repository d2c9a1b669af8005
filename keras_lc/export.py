"""Publishing a finished training run: `keras-lc export RUN_DIR --name NAME`.

`export_run` writes `zoo/NAME/`:

- `NAME.weights.h5`: the training-form weights, compact (frozen kernels are
  stored as their seeds, the basis form as its coefficients), and
  `NAME_notop.weights.h5`, the same without the classifier (`include_top=False`).
  Learned LC spatial kernels are re-expressed on the seeded ones when that is
  exact (`reexpress_on_seeds`), so a learnable ResNet-LC-20-16x128 ships in
  1.2 MiB instead of 137 MiB: the same function, loading as learnable;
- `NAME_folded.keras`: the folded inference model (stock Keras layers only;
  loads with `safe_mode=True` where keras_lc is not installed), with the
  builder call's inputs and outputs: raw images in, probabilities out
  (`keras_lc.serving`);
- `saved_model/`, `NAME.onnx`, `NAME.tflite`: the folded model exported for
  TF Serving, ONNX Runtime and LiteRT (`keras_lc.interchange`), each loaded
  back in its own runtime and compared with the Keras model on the shipped
  sample (the `export` extra adds ONNX and LiteRT);
- `README.md` (the model card, with the Hugging Face Hub's metadata) and
  `manifest.json` (a `keras_lc.weights.PretrainedWeights`):
  architecture, recipe, data, the accuracy of both forms measured here on the
  test split, sizes, sha256s and the command that trained it.

Everything is written into a temporary folder beside `zoo/NAME/` that is renamed
into place at the end; an existing `zoo/NAME/` is replaced only then.
`refresh_folded` rebuilds a published model's folded files, exports and card
from its weights file.
"""

import json
import os
import re
import shlex
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np

from keras_lc import interchange
from keras_lc.data import sha256_of
from keras_lc.model_card import (CARD_FILE, card_header, exports_section, files_section, hub_metadata, model_card,
                                 sample_sentence, strip_metadata)
from keras_lc.serving import check_sample, compare_forms, sample_top1, serving_model, top1, write_folded
from keras_lc.training.run_dir import FINAL_WEIGHTS, load_run, read_summary  # noqa: F401 (load_run: public here too)

_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


def reexpress_on_seeds(config, model, tolerance=1e-6):
    """`model` with its learned LC kernels re-expressed on the seeded ones, or `None`.

    For every `LCConv2D` with trainable spatial kernels, the learned block
    kernel W = W_spatial C is written as W = P A over the basis P of the
    layer's seeded kernel (P = U S from the SVD of the seed's W_spatial), which
    is exact when the seeded kernel has full row rank (c_out * E >= k*k*c_in,
    e.g. every block of ResNet-LC-20-16x128). The result is the run's
    architecture in the frozen basis form (A and the seed per layer: a small
    file); loading it into the learnable model gives spatial = the seed's
    kernel and C = V A, so W_spatial C = P A = W: the trained function with
    other (minimum-norm) factors. Returns `(basis_model, kwargs)`, or `None`
    when there is nothing to re-express or a layer is not exactly
    representable (relative residual above `tolerance`).
    """
    from keras_lc import fold_math, zoo
    from keras_lc.layers import LCConv2D

    learned = [l for l in model.layers if isinstance(l, LCConv2D) and not l.frozen_spatial]
    if not learned or any(l.intermediate is not None for l in learned):
        return None
    kwargs = dict(config["model"]["kwargs"], frozen_spatial=True, implementation="basis")
    twin = zoo.get_model(config["model"]["name"], **kwargs)
    for layer in twin.layers:
        source = model.get_layer(layer.name)
        if not isinstance(source, LCConv2D) or source.frozen_spatial:
            layer.set_weights(source.get_weights())
            continue
        to64 = fold_math.to_numpy64
        kernel = fold_math.compose_kernels(to64(source.spatial_kernel), to64(source.combination))
        basis = to64(layer.basis)
        target = kernel.reshape(basis.shape[0], -1)
        coefficients = np.linalg.lstsq(basis, target, rcond=None)[0]
        if np.linalg.norm(basis @ coefficients - target) > tolerance * np.linalg.norm(target):
            return None
        layer.basis_coefficients.assign(coefficients.astype(layer.variable_dtype))
        if source.use_bias:
            layer.bias.assign(source.bias)
    return twin, kwargs


def backbone(config, model, kwargs=None):
    """The run's model built with `include_top=False` (builder arguments
    `kwargs`, default the run's), carrying `model`'s weights by layer name."""
    from keras_lc import zoo

    kwargs = {k: v for k, v in (kwargs or config["model"]["kwargs"]).items()
              if k not in ("classes", "classifier_activation")}
    notop = zoo.get_model(config["model"]["name"], include_top=False, **kwargs)
    for layer in notop.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return notop


def _builder_kwargs(config):
    """The run's builder arguments, with `frozen_spatial` stated (it tells
    frozen and learnable weights of one architecture apart)."""
    kwargs = dict(config["model"]["kwargs"])
    default = _frozen_spatial_default(config)
    if default is not None:
        kwargs.setdefault("frozen_spatial", default)
    return kwargs


def _frozen_spatial_default(config):
    """The `frozen_spatial` default of the run's builder, or `None` if it takes none."""
    import inspect

    from keras_lc import zoo

    parameter = inspect.signature(zoo.get_builder(config["model"]["name"])).parameters.get("frozen_spatial")
    return None if parameter is None else parameter.default


def _default_tag(config, kwargs, arch, zoo_dir, name):
    """The `weights=` tag of a new export: the dataset, with `_learnable` (`_frozen`) when
    `frozen_spatial` is not the builder's default; a `ValueError` if another published
    model of architecture `arch` has it (a tag names one set of weights per builder)."""
    from keras_lc.weights import PretrainedWeights

    dataset = config["data"]["dataset"]
    default = _frozen_spatial_default(config)
    frozen = kwargs.get("frozen_spatial")
    tag = dataset if default is None or frozen in (None, default) else (
        f"{dataset}_{'frozen' if frozen else 'learnable'}")
    for manifest in Path(zoo_dir).glob("*/manifest.json"):
        other = PretrainedWeights.from_json(manifest)
        if other.name != name and other.model == arch and other.weights == tag:
            raise ValueError(
                f"'{other.name}' in '{zoo_dir}' already publishes weights={tag!r} for '{arch}'; "
                "pass --weights-tag to choose another tag."
            )
    return tag


def portable_path(path, flag=None):
    """`path` as a published card may state it: never a machine's absolute path.

    A path through a `shared/` folder becomes `../shared/...` (where the
    project's data lives beside a checkout); a run directory (`--out`)
    becomes `runs/NAME`; any other absolute path keeps only its file name.

    Example:

    >>> portable_path("/srv/shared/datasets/cifar10-jpeg.tar.gz")
    '../shared/datasets/cifar10-jpeg.tar.gz'
    >>> portable_path("/srv/keras-lc-runs/lc20x128", flag="--out")
    'runs/lc20x128'
    """
    if path is None or not os.path.isabs(str(path)):
        return path
    parts = Path(path).parts
    if "shared" in parts:
        return "/".join(("..",) + parts[parts.index("shared"):])
    return f"runs/{Path(path).name}" if flag == "--out" else Path(path).name


def portable_command(command):
    """A recorded command line with every absolute path made `portable_path`.

    Example:

    >>> portable_command("keras-lc train --data-dir /srv/shared/datasets/c.tar.gz --out=/srv/run")
    'keras-lc train --data-dir ../shared/datasets/c.tar.gz --out runs/run'
    """
    words, out, flag = shlex.split(command or ""), [], None
    for word in words:
        if word.startswith("--") and "=" in word:
            word, value = word.split("=", 1)
            out += [word, portable_path(value, word)]
        else:
            out.append(portable_path(word, flag) if flag else word)
        flag = word if word.startswith("--") else None
    return shlex.join(out)


def _check_replaceable(target, run_sha256, overwrite):
    """Refuse to replace a published model exported from another run, unless `overwrite`."""
    from keras_lc.weights import PretrainedWeights

    if overwrite or not target.exists():
        return
    manifest = target / "manifest.json"
    previous = PretrainedWeights.from_json(manifest) if manifest.is_file() else None
    if previous is not None and run_sha256 is not None and previous.run_sha256 == run_sha256:
        return  # the same run, exported again
    what = f"model {previous.model!r}, {previous.epochs} epochs" if previous else "not a published model"
    raise ValueError(
        f"'{target}' already exists ({what}) and was not exported from this run; pass "
        "--overwrite to replace it, or choose another --name."
    )


def export_run(run_dir, name, zoo_dir="zoo", weights_tag=None, data_dir=None,
               test_per_class=None, batch_size=256, paper_top1=None, hardware=None,
               slice_per_class=100, overwrite=False, formats="auto"):
    """Publish `run_dir` as `zoo_dir/name/`; returns the manifest's `PretrainedWeights`.

    The accuracy recorded is measured on the published file loaded back into a
    fresh model, as users get it. `paper_top1` (fraction) is the paper's
    figure for the configuration, shown beside ours; `hardware` overrides the
    run's recorded machine. The first `slice_per_class` test images of each
    class are a check slice whose top-1 the manifest records too, for tests
    to re-measure quickly. An existing `zoo_dir/name/` is replaced only if it
    was exported from this same run, or with `overwrite=True`. `formats`:
    the exports of the folded model (`keras_lc.interchange.resolve_formats`:
    `"auto"` writes every format whose packages are installed), each checked
    in its own runtime on the shipped sample and recorded in the manifest.
    """
    import keras

    import keras_lc
    from keras_lc import zoo
    from keras_lc.data import load_dataset
    from keras_lc.zoo.pretrained import dataset_preprocessing
    from keras_lc.training.run import parameter_counts
    from keras_lc.weights import PretrainedWeights

    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"--name must be lower-case letters, digits and underscores (e.g. "
            f"resnet_lc20_16x128_frozen_cifar10). Received: {name!r}"
        )
    if paper_top1 is not None and not 0 < paper_top1 <= 1:
        raise ValueError(f"paper_top1 must be a fraction in (0, 1]. Received: paper_top1={paper_top1!r}")
    formats = interchange.resolve_formats(formats)
    run_dir = Path(run_dir)
    summary = read_summary(run_dir)
    run_sha256 = sha256_of(run_dir / FINAL_WEIGHTS) if (run_dir / FINAL_WEIGHTS).is_file() else None
    _check_replaceable(Path(zoo_dir) / name, run_sha256, overwrite)
    config, model = load_run(run_dir)
    kwargs = _builder_kwargs(config)
    dataset, data_dir = config["data"]["dataset"], data_dir or config.get("data_dir")
    test = load_dataset(dataset, "test", data_dir, per_class=test_per_class or config.get("test_per_class"))
    folded = keras_lc.fold(model)
    reexpressed = reexpress_on_seeds(config, model)
    published, published_kwargs = reexpressed or (model, kwargs)
    counts = parameter_counts(model)

    zoo_dir = Path(zoo_dir)
    zoo_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=zoo_dir))
    try:
        weights_file, notop_file = f"{name}.weights.h5", f"{name}_notop.weights.h5"
        published.save_weights(staging / weights_file)
        backbone(config, published, published_kwargs).save_weights(staging / notop_file)
        reloaded = zoo.get_model(config["model"]["name"], **kwargs)
        reloaded.load_weights(staging / weights_file)  # the training form, as users get it
        measured = compare_forms(reloaded, folded, test, batch_size)
        if reexpressed:
            measured["trained"] = compare_forms(model, folded, test, batch_size)
        check = load_dataset(dataset, "test", data_dir, per_class=slice_per_class)
        measured["slice"] = compare_forms(reloaded, folded, check, batch_size)
        serving = serving_model(config["model"]["name"], kwargs, staging / weights_file, dataset)
        exported = write_folded(serving, staging, name)
        images, labels = check_sample(dataset)
        exports = interchange.export_formats(exported, staging, name, formats, images, labels)
        shipped = keras.saving.load_model(staging / f"{name}_folded.keras", safe_mode=True)
        measured["top1_folded"] = top1(shipped, test, batch_size, normalize=False)
        measured["slice"]["top1_folded"] = top1(shipped, check, batch_size, normalize=False)
        entry = PretrainedWeights(
            name=name, model=model.name, model_kwargs=kwargs,
            weights=weights_tag or _default_tag(config, kwargs, model.name, zoo_dir, name),
            dataset=dataset,
            classes=int(model.output_shape[-1]), file_name=weights_file,
            sha256=sha256_of(staging / weights_file), notop_file_name=notop_file,
            notop_sha256=sha256_of(staging / notop_file), top1=measured["top1"],
            top1_folded=measured["top1_folded"], epochs=int(summary["epochs"]),
            recipe=json.dumps(config["recipe"], sort_keys=True),
            command=portable_command(config.get("command", "")), trainable_params=counts["trainable"],
            total_params=counts["trainable"] + counts["non_trainable"],
            paper_top1=paper_top1, hardware=hardware or summary.get("hardware"),
            builder=config["model"]["name"], slice_top1=measured["slice"]["top1"],
            slice_top1_folded=measured["slice"]["top1_folded"], slice_per_class=slice_per_class,
            run_sha256=run_sha256, preprocessing=dataset_preprocessing(dataset),
            class_names=list(test.class_names), sample_top1=sample_top1(serving),
            sample_top1_folded=sample_top1(shipped), exports=exports,
        )
        (staging / "manifest.json").write_text(entry.to_json())
        files = [weights_file, notop_file, f"{name}_folded.keras"] + [e.file_name for e in exports]
        (staging / CARD_FILE).write_text(model_card(
            entry, config, summary, measured, staging, files, reexpressed is not None,
            portable_path(config.get("data_dir"))))
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


def refresh_folded(name, zoo_dir="zoo", formats="auto"):
    """Rewrites `zoo_dir/name/`'s folded files, exports, sample figures and card from its weights file.

    For when the serving form or the export formats change: the weights files
    and the test-set figures are unchanged; the folded `.keras` is rebuilt
    from `serving_model`, its exports are written and checked again
    (`keras_lc.interchange.export_formats`), and the manifest's sample
    figures and `exports` are updated. New files are written beside the old
    ones and renamed into place. Returns the new `PretrainedWeights`.
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
        folded = write_folded(model, staging, name)
        reloaded = keras.saving.load_model(staging / f"{name}_folded.keras", safe_mode=True)
        images, labels = check_sample(entry.dataset)
        exports = interchange.export_formats(folded, folder, name, formats, images, labels)
        entry = dataclasses.replace(entry, sample_top1=sample_top1(model),
                                    sample_top1_folded=sample_top1(reloaded), exports=exports)
        os.replace(staging / f"{name}_folded.keras", folder / f"{name}_folded.keras")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_text_atomic(folder / "manifest.json", entry.to_json())
    old_card = folder / ("MODEL_CARD.md" if (folder / "MODEL_CARD.md").is_file() else CARD_FILE)  # 0.2 name
    card = strip_metadata(old_card.read_text(encoding="utf-8"))
    card = re.sub(r"\nOn the 100 test images shipped in .*?\n\n", "\n", card, flags=re.DOTALL)
    card = re.sub(r"\n## Exports\n.*?(?=\n## )", "\n", card, flags=re.DOTALL)
    card = card_header(entry) + card[card.index("\n## Accuracy"):card.index("\n## Files")]
    card = card.replace("\n## Architecture",
                        f"\n{sample_sentence(entry)}\n\n{exports_section(entry)}## Architecture", 1)
    files = [entry.file_name, entry.notop_file_name, f"{name}_folded.keras"] + [e.file_name for e in exports]
    write_text_atomic(folder / CARD_FILE, hub_metadata(entry) + card + "\n" + files_section(folder, files))
    if old_card.name != CARD_FILE:
        old_card.unlink()
    return entry
