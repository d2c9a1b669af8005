"""A published model's card, `README.md`: how to get it, what it takes, what was measured.

The card starts with the YAML metadata the Hugging Face Hub reads
(`hub_metadata`: library, license, datasets, metrics), so a published folder
is a Hub repository as it is (`keras_lc.hub`).

`model_card` writes the whole card when `keras-lc export` publishes a run;
`card_header`, `sample_sentence`, `exports_section` and `files_section` are
the parts `keras_lc.export.refresh_folded` rewrites when the serving form
changes (the rest needs the run, which a published folder does not hold).
"""

import json
import re
from pathlib import Path

from keras_lc.archives import path_sha256
from keras_lc.serving import builder_call


#: The card's file name in a published folder (what the Hub and GitHub show for a folder).
CARD_FILE = "README.md"
LICENSE = "apache-2.0"


def hub_metadata(entry):
    """The card's YAML front matter for the Hugging Face Hub (values written as JSON, which is YAML)."""
    q = json.dumps
    return f"""---
library_name: keras
license: {LICENSE}
pipeline_tag: image-classification
tags:
- keras-lc
- linear-combinations
- frozen-random-convolutions
datasets:
- {q(entry.dataset)}
metrics:
- accuracy
model-index:
- name: {q(entry.name)}
  results:
  - task:
      type: image-classification
    dataset:
      name: {q(entry.dataset)}
      type: {q(entry.dataset)}
      split: test
    metrics:
    - type: accuracy
      name: top-1 (training form)
      value: {entry.top1}
    - type: accuracy
      name: top-1 (folded)
      value: {entry.top1_folded}
---
"""


def strip_metadata(card):
    """`card` without its YAML front matter (if it has one)."""
    return re.sub(r"\A---\n.*?\n---\n", "", card, count=1, flags=re.DOTALL)


def percent(value):
    """A fraction as a percentage with two decimals, `-` for `None`."""
    return "-" if value is None else f"{value:.2%}"


def size_of(path):
    """Bytes of a file, or of all files under a folder."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


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
`safe_mode=True` without keras-lc); so are its exports below. A copy of this folder on the
Hugging Face Hub loads with `keras_lc.zoo.load_published("hf://ORG/REPO")`.
"""


def sample_sentence(entry):
    """The card's sentence stating the shipped-sample figures of `entry`."""
    return (f"On the 100 test images shipped in `keras_lc/sample_data` (10 per class), fed as raw "
            f"uint8 images to the builder call: top-1 {entry.sample_top1:.0%}; through `fold()` and "
            f"the published `{entry.name}_folded.keras`: {entry.sample_top1_folded:.0%}.")


def exports_section(entry):
    """The card's `## Exports` section: each exported file, its runtime and how it was checked."""
    if not entry.exports:
        return ""
    p = entry.preprocessing
    shape = f"(batch, {', '.join(str(d) for d in p.input_size)})" if p else "(batch, height, width, 3)"
    rows = "\n".join(
        f"| {e.format} | `{e.file_name}` | {e.runtime} | {e.max_relative_difference:.1e} | "
        f"{'-' if e.sample_top1 is None else f'{e.sample_top1:.0%}'} |" for e in entry.exports)
    return f"""## Exports
Written from the folded model by Keras' own `model.export` and loaded back in their own runtime
by `keras-lc export`. Each takes float32 images {shape}, raw RGB values in [0, 255]
(the normalization is inside), and outputs probabilities (batch, {entry.classes}).

| format | file | checked in | largest relative difference from Keras | top-1, shipped sample |
|---|---|---|---|---|
{rows}

"""


def files_section(folder, file_names):
    """The card's `## Files` table: size and sha256 (of a folder: `tree_sha256`) of each file."""
    folder, rows = Path(folder), []
    for name in file_names:
        path = folder / name
        if path.exists():
            rows.append(f"| `{name}` | {size_of(path) / 2**20:.2f} MiB | `{path_sha256(path)}` |")
    return "## Files\n| file | size | sha256 |\n|---|---|---|\n" + "\n".join(rows) + "\n"


def training_time(summary):
    """The run's training time: all epochs (across resumes) when recorded, else the last process's."""
    if summary.get("train_seconds_all_epochs"):
        resumed = summary.get("resumed_from_epoch")
        return (f"{summary['train_seconds_all_epochs']:.0f} s of training over all epochs"
                + (f" (resumed at epoch {resumed})" if resumed else ""))
    return f"{summary.get('wall_time_s', 0):.0f} s wall time"


def model_card(entry, config, summary, measured, folder, file_names, reexpressed, data_dir):
    """The whole card (`README.md`) of a run published as `entry` into `folder`.

    `measured` is what `keras-lc export` measured (`keras_lc.serving.compare_forms`
    on the test split, `"slice"` on the check slice, `"trained"` before
    re-expression); `data_dir` is the run's data location as the card states it.
    """
    recipe = "\n".join(f"| {k} | {v} |" for k, v in sorted(config["recipe"].items()))
    epochs = config["recipe"].get("epochs")
    note = "" if epochs == 75 else (
        f"**Not the paper's full recipe**: {epochs} epochs instead of 75, with the same "
        "optimizer, learning-rate schedule (cosine over the run's own length), batch size, "
        "weight decay, label smoothing and augmentation. A full-recipe run will replace it."
    )
    trained = measured.get("trained")
    reexpression = "" if not reexpressed else f"""
The learned spatial kernels are not stored: the weights file re-expresses every learned
LC-block kernel W = W_spatial C on the block's seeded kernel (W = P A, exact because the seeded
kernel has full row rank), which keeps the file at {size_of(Path(folder) / entry.file_name) / 2**20:.2f} MiB.
Loaded into the learnable model it computes the trained function (top-1 of the trained model
before re-expression: {percent(trained['top1'])}, after: {percent(measured['top1'])}); the
spatial kernels start from their seeded values and the 1x1 combinations are the minimum-norm
solution, so continued training starts from the same function but other factors.
"""
    paper = percent(entry.paper_top1) if entry.paper_top1 is not None else "not tabulated"
    return f"""{hub_metadata(entry)}{card_header(entry)}
## Accuracy (CIFAR-10 test set, {measured['test_examples']:,} images, measured by `keras-lc export`)
| | paper (Gavrikov & Keuper, 75 epochs) | this model ({entry.epochs} epochs) |
|---|---|---|
| training form | {paper} | {percent(entry.top1)} |
| folded (one conv per block, BatchNorm folded; the published `.keras`, fed raw images) | - | {percent(entry.top1_folded)} |

On the check slice (the first {entry.slice_per_class} test images of each class,
{measured['slice']['test_examples']:,} images, re-measured by the test suite): training form
{percent(entry.slice_top1)}, folded {percent(entry.slice_top1_folded)}.

{note}

Largest relative difference of the folded outputs from the training form's on a batch:
{measured['fold_relative_error']:.1e}.

{sample_sentence(entry)}
{reexpression}
{exports_section(entry)}## Architecture
Builder `{entry.model}` with `{json.dumps(entry.model_kwargs, sort_keys=True)}`:
{entry.trainable_params:,} trainable parameters, {entry.total_params:,} in all (frozen included),
counted in the form it trained in (`implementation` above; the basis form trains A, k*k*c_in x
c_out per block, as many values as a plain convolution's kernel).

## Training
Dataset `{entry.dataset}` (`{data_dir}`), {summary.get('epochs')} epochs,
{summary.get('steps')} steps, {training_time(summary)}, median
{summary.get('images_per_s') or 0:.0f} training images/s, on {entry.hardware or "(hardware not recorded)"}
({summary.get('strategy')} strategy, {summary.get('replicas')} replica(s)).

| recipe field | value |
|---|---|
{recipe}

Command:

    {entry.command or '(not recorded by this run)'}

{files_section(folder, file_names)}"""
