"""Published weights: a typed registry, verified downloads and the cache.

Each published model has a JSON manifest (written by `keras-lc export` into
`zoo/NAME/manifest.json`) that reads into a `PretrainedWeights`. Weight files
that ship with the package (`keras_lc/published/NAME/`, or `zoo/NAME/` in a
source checkout) are used without any network access; others are fetched
with `keras.utils.get_file` and verified by sha256.

Configuration, read at call time:
- `KERAS_LC_CACHE`: the cache directory (weights go to `$KERAS_LC_CACHE/weights`);
  `cache_dir=` overrides it per call.
- `KERAS_LC_WEIGHTS_URL`: the base URL of a mirror; `base_url=` overrides it per call.
- `KERAS_LC_ZOO`: another folder of published models (`NAME/manifest.json`), searched
  first, e.g. the `--zoo-dir` of your own `keras-lc export`.
"""

import dataclasses
import json
import os
import uuid
import warnings
from pathlib import Path

import keras

from keras_lc import manifest
from keras_lc.archives import cache_subdir, sha256_of
from keras_lc.files import one_line
from keras_lc.manifest import ExportCheck, ManifestError, ManifestWarning, Preprocessing  # noqa: F401 (public here too)

def _type_ok(value, field):
    if value is None and field.default is None:
        return True
    if field.type is Preprocessing:
        return isinstance(value, dict)
    if field.type is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if field.type is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, field.type)


@dataclasses.dataclass(frozen=True)
class PretrainedWeights:
    """One published weights file and what was measured with it.

    Attributes:
        name: Registry key, e.g. `"resnet_lc20_16x128_frozen_cifar10"`.
        model: The zoo builder (`keras_lc.zoo.get_model` name).
        model_kwargs: Builder arguments that define the architecture.
        weights: The `weights=` value that selects this entry, e.g. `"cifar10"`.
        dataset: Training dataset.
        classes: Number of classes of the classifier.
        file_name: The weights file's name.
        sha256: Hex sha256 of the weights file.
        top1: Test top-1 accuracy (fraction) of the training form.
        top1_folded: Test top-1 accuracy (fraction) of the folded model.
        epochs: Epochs actually trained.
        recipe: One-line description of the training recipe.
        command: The exact command that trained it.
        trainable_params: Trainable parameters.
        total_params: All parameters (frozen included).
        notop_file_name: The backbone-only weights (for `include_top=False`),
            or `None` when none is published.
        notop_sha256: Hex sha256 of the no-top file.
        url: Base URL the files are published under (`None`: not published
            online); a mirror given by `base_url=` or `$KERAS_LC_WEIGHTS_URL`
            takes precedence.
        paper_top1: The paper's top-1 (fraction) for this configuration, or
            `None` when the paper tabulates none.
        hardware: The machine it was trained on.
        builder: The registered builder `model_kwargs` are for (`None`:
            `model`); `keras_lc.zoo.load_published` calls it.
        slice_top1: Top-1 of the training form on the fixed check slice: the
            first `slice_per_class` test images of each class (what the test
            suite re-measures).
        slice_top1_folded: The same for the folded model.
        slice_per_class: Test images per class in the check slice.
        run_sha256: sha256 of the run's `final.weights.h5` it was exported
            from: a re-export of the same run may replace it, another run
            needs `--overwrite`.
        preprocessing: The `Preprocessing` its inputs need (builders include
            it with `include_preprocessing`), or `None` if not recorded.
        class_names: The class names in label order (`decode_predictions`),
            or `None` if not recorded.
        sample_top1: Top-1 of the builder call on the 100 test images shipped
            in `keras_lc/sample_data`, fed raw (`keras_lc.serving.sample_top1`).
        sample_top1_folded: The same for the published folded `.keras`.
        exports: The `ExportCheck` of each exported file (SavedModel, ONNX,
            LiteRT), or `None` if not recorded.
    """

    name: str
    model: str
    model_kwargs: dict
    weights: str
    dataset: str
    classes: int
    file_name: str
    sha256: str
    top1: float
    top1_folded: float
    epochs: int
    recipe: str
    command: str
    trainable_params: int
    total_params: int
    notop_file_name: str = None
    notop_sha256: str = None
    url: str = None
    paper_top1: float = None
    hardware: str = None
    builder: str = None
    slice_top1: float = None
    slice_top1_folded: float = None
    slice_per_class: int = None
    run_sha256: str = None
    preprocessing: Preprocessing = None
    class_names: list = None
    sample_top1: float = None
    sample_top1_folded: float = None
    exports: list = None

    @classmethod
    def from_json(cls, path):
        """Reads a manifest; invalid JSON, unknown, missing or mistyped fields raise `ManifestError`."""
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as error:
            raise ManifestError(
                f"Manifest '{path}' is not valid JSON ({error.msg} at line {error.lineno} column "
                f"{error.colno}); {manifest.advice(path)}."
            ) from None
        except (OSError, ValueError) as error:  # unreadable, or not UTF-8
            raise ManifestError(
                f"Manifest '{path}' cannot be read ({one_line(error)}); {manifest.advice(path)}."
            ) from None
        if not isinstance(data, dict):
            raise ManifestError(
                f"Manifest '{path}' holds a JSON {type(data).__name__}, not an object of fields; "
                f"{manifest.advice(path)}."
            )
        fields = {f.name: f for f in dataclasses.fields(cls)}
        required = {name for name, f in fields.items() if f.default is dataclasses.MISSING}
        unknown, missing = set(data) - set(fields), required - set(data)
        if unknown or missing:
            raise ManifestError(
                f"Manifest '{path}' does not describe published weights: missing fields "
                f"{sorted(missing)}, unknown fields {sorted(unknown)}; {manifest.advice(path)}."
            )
        wrong = sorted(k for k, v in data.items() if not _type_ok(v, fields[k]))
        if wrong:
            raise ManifestError(
                f"Manifest '{path}' has fields of the wrong type: "
                + ", ".join(f"{k}={data[k]!r} (expected {fields[k].type.__name__})" for k in wrong)
                + f"; {manifest.advice(path)}."
            )
        if data.get("preprocessing") is not None:
            data["preprocessing"] = Preprocessing.from_dict(data["preprocessing"], path)
        if data.get("exports") is not None:
            data["exports"] = [ExportCheck.from_dict(e, path) for e in data["exports"]]
            formats = [e.format for e in data["exports"]]
            if len(set(formats)) != len(formats):
                raise ManifestError(
                    f"Manifest '{path}' lists a format twice in `exports` (one entry per format). "
                    f"Received formats: {formats}; {manifest.advice(path)}."
                )
        names = data.get("class_names")
        if names is not None and (not all(isinstance(n, str) for n in names) or len(names) != data["classes"]):
            raise ManifestError(
                f"Manifest '{path}' has `class_names` that are not {data['classes']} strings "
                f"(its `classes`). Received: {names!r}; {manifest.advice(path)}."
            )
        return cls(**data)

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    def export(self, format):
        """The `ExportCheck` of the `format` export (`"onnx"`, `"litert"`, `"saved_model"`)."""
        found = [e for e in self.exports or () if e.format == format]
        if not found:
            raise ValueError(
                f"The published model '{self.name}' has no {format!r} export; it has "
                f"{sorted(e.format for e in self.exports or ())}. Re-export it with "
                "`keras-lc export` (the 'export' extra installed) to add one."
            )
        return found[0]

    def file(self, include_top=True):
        """`(file_name, sha256)` of the full or the no-top weights file."""
        if include_top:
            return self.file_name, self.sha256
        if not self.notop_file_name:
            raise ValueError(
                f"The weights '{self.name}' have no no-top file, so they cannot be loaded "
                "with `include_top=False`; use `include_top=True`."
            )
        return self.notop_file_name, self.notop_sha256

    def download_url(self, file_name=None, base_url=None):
        """URL of one of this entry's files (default: the full weights file).

        The base is `base_url=`, else `$KERAS_LC_WEIGHTS_URL` (a mirror), else
        the manifest's `url`.
        """
        base = base_url or os.environ.get("KERAS_LC_WEIGHTS_URL") or self.url
        file_name = file_name or self.file_name
        if not base:
            raise ValueError(
                f"The weights '{self.name}' are not shipped with this installation and no "
                "download location is set: set KERAS_LC_WEIGHTS_URL (or pass base_url=) to a "
                f"mirror holding '{file_name}', or pass weights=<path of a local file>."
            )
        return f"{base.rstrip('/')}/{file_name}"


def _manifest_dirs():
    extra = os.environ.get("KERAS_LC_ZOO")
    candidates = ([Path(extra)] if extra else []) + [manifest.PACKAGED_ZOO, manifest.SOURCE_ZOO]
    return [d for d in candidates if d.is_dir()]


def _concerns(manifest, requested):
    """True if the (broken) `manifest` may describe one of the `requested` names or architectures."""
    names = {manifest.parent.name}
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            names |= {data.get(k) for k in ("name", "model", "builder") if isinstance(data.get(k), str)}
    except (OSError, ValueError):
        pass
    return bool(names & requested)


def published_weights(requested=None):
    """{name: PretrainedWeights} of every manifest found, in search order (the first of a name wins).

    Manifests are read from `$KERAS_LC_ZOO`, the package's `published/` and
    the checkout's `zoo/`. A manifest that cannot be read is skipped with a
    `ManifestWarning` naming the file, unless it concerns `requested` (a
    published name or a builder's architecture name, or several): its folder
    name or its `name`/`model`/`builder` field is one of them. Then it raises
    `ManifestError`, naming the file and what to do about it.
    """
    requested = {requested} if isinstance(requested, str) else set(requested or ())
    registry = {}
    for root in _manifest_dirs():
        for path in sorted(root.glob("*/manifest.json")):
            try:
                entry = PretrainedWeights.from_json(path)
            except ManifestError as error:
                if _concerns(path, requested):
                    raise
                warnings.warn(f"Skipped a broken manifest: {error}", ManifestWarning, stacklevel=2)
                continue
            registry.setdefault(entry.name, entry)
    return registry


def packaged_file(entry, file_name):
    """The local copy of `entry`'s file `file_name` (shipped, checkout or `$KERAS_LC_ZOO`), or `None`."""
    for root in _manifest_dirs():
        candidate = root / entry.name / file_name
        if candidate.is_file():
            return candidate
    return None


def location(entry, include_top=True):
    """`(where its file comes from, its size in bytes or None)` for a published `entry`.

    A file shipped with the package (or the checkout's `zoo/`, or
    `$KERAS_LC_ZOO`) is named by its folder; otherwise the URL it would be
    downloaded from (or that none is set).
    """
    file_name = entry.file(include_top)[0]
    packaged = packaged_file(entry, file_name)
    if packaged is not None:
        extra = os.environ.get("KERAS_LC_ZOO")
        where = ("KERAS_LC_ZOO" if extra and packaged.resolve().is_relative_to(Path(extra).resolve())
                 else "shipped with keras-lc")
        return f"{where} ({packaged.parent.name}/)", packaged.stat().st_size
    try:
        return f"downloaded from {entry.download_url(file_name)}", None
    except ValueError:
        return "not shipped here and no download location set (KERAS_LC_WEIGHTS_URL)", None


def fetch(entry, cache_dir=None, base_url=None, include_top=True):
    """Local path of `entry`'s file (its no-top file with `include_top=False`), verified by sha256.

    A file shipped with the package is used as is. Otherwise the cached copy is
    used if its sha256 matches; a corrupted or truncated copy is fetched again.
    Downloads go through `keras.utils.get_file` to a unique temporary name and
    are renamed into place only after the sha256 check, so a failed or partial
    download never sits in the cache under the final name.
    """
    file_name, sha256 = entry.file(include_top)
    packaged = packaged_file(entry, file_name)
    if packaged is not None:
        actual = sha256_of(packaged)
        if actual != sha256:
            raise ValueError(
                f"The weights file '{packaged}' shipped for '{entry.name}' has sha256 {actual}, "
                f"but its manifest expects {sha256}; {manifest.advice(packaged)}."
            )
        return packaged
    folder = cache_subdir("weights", cache_dir)
    target = folder / file_name
    if target.is_file():
        if sha256_of(target) == sha256:
            return target
        target.unlink()  # corrupted or truncated: fetch again
    url = entry.download_url(file_name, base_url)
    part = folder / f"{file_name}.{uuid.uuid4().hex}.part"
    try:
        try:
            keras.utils.get_file(part.name, origin=url, file_hash=sha256,
                                 hash_algorithm="sha256", cache_dir=str(folder.parent),
                                 cache_subdir=folder.name)
        except ValueError as error:  # get_file's sha256 check
            actual = sha256_of(part) if part.exists() else "unknown"
            raise ValueError(
                f"The file downloaded for '{entry.name}' from {url} has sha256 {actual}, "
                f"expected {sha256}: the server or mirror holds a different or corrupted "
                "file. Point KERAS_LC_WEIGHTS_URL (or base_url=) at a mirror holding the "
                "published file."
            ) from error
        except Exception as error:  # get_file wraps network errors in a bare Exception
            raise OSError(
                f"Could not download the weights '{entry.name}' from {url}: {error}. Check the "
                "network, point KERAS_LC_WEIGHTS_URL (or base_url=) at a mirror, or pass "
                "weights=<path of a local weights file>."
            ) from error
        os.replace(part, target)
    finally:
        if part.exists():
            part.unlink()
    return target
