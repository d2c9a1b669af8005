"""The run directory of `keras-lc train`: its lock, its configuration check, its leftovers.

A run directory holds `config.json` (the resolved configuration: model,
recipe, data source), `history.csv`, `learning_curve.png`, `tensorboard/`,
`backup/` while unfinished, then `final.weights.h5`, `model.keras` and
`summary.json`, and `.lock`, the lock file a running `train` holds. The names
are this module's constants; `read_config`, `read_summary` and `load_run`
read a run, `RunDirectory` writes one.

- `RunDirectory.open(out)` takes the lock (an exclusive `fcntl.flock`, released
  when the process ends however it ends) or refuses with the holder's pid,
  and removes temporaries that an interrupted write left behind.
- `RunDirectory.check(config)` compares the resolved configuration with a
  stored one, ignoring how it was spelled on the command line
  (`IGNORED_ON_RESUME`) and where the machine's cache is (the data source as
  `keras_lc.archives.data_source` spells it), and says whether the run
  resumes: a run directory copied to another machine resumes there.
- `RunDirectory.write_config(config)` stores it, once the model is built and
  everything is validated, so a failed start leaves no configuration behind.
"""

import fcntl
import json
import os
from pathlib import Path

from keras_lc.archives import data_source
from keras_lc.files import write_json_atomic

__all__ = ["RunDirectory", "RunDirectoryError", "IGNORED_ON_RESUME", "CONFIG", "SUMMARY",
           "FINAL_WEIGHTS", "MODEL", "HISTORY", "LEARNING_CURVE", "BACKUP", "read_config",
           "read_summary", "load_run", "with_data_source"]

# The files of a run directory: every module that reads or writes one names them from here.
CONFIG = "config.json"  #: the resolved configuration (model, recipe, data source, command)
SUMMARY = "summary.json"  #: written last: the run finished (top-1, epochs, wall time, ...)
FINAL_WEIGHTS = "final.weights.h5"  #: the final weights (compact: frozen kernels as seeds)
MODEL = "model.keras"  #: architecture + final weights, loadable after `import keras_lc`
HISTORY = "history.csv"  #: one row per epoch
LEARNING_CURVE = "learning_curve.png"
BACKUP = "backup"  #: the last completed epoch's checkpoint while the run is unfinished

#: Configuration keys a resume does not compare: the command line as typed
#: and the data location as typed (the data's identity is compared in `data`).
IGNORED_ON_RESUME = ("command", "data_dir")


class RunDirectoryError(ValueError):
    """The run directory is unusable: a file, unwritable, finished, another run's, or in use."""


class RunDirectory:
    """A locked run directory (see the module docstring).

    Example:

    >>> import tempfile
    >>> run = RunDirectory.open(tempfile.mkdtemp())
    >>> run.check({"recipe": {"epochs": 2}})  # nothing stored yet: a new run
    False
    >>> run.write_config({"recipe": {"epochs": 2}, "command": "keras-lc train ..."})
    >>> run.check({"recipe": {"epochs": 2}, "command": "keras-lc train (flags swapped)"})
    True
    >>> run.close()
    """

    def __init__(self, path, lock_file):
        self.path = Path(path)
        self._lock_file = lock_file

    @classmethod
    def open(cls, out):
        """Create (if needed) and lock `out`; clean up its orphan temporaries."""
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise RunDirectoryError(f"--out '{out}' is a file, not a directory; choose a directory.")
        try:
            out.mkdir(parents=True, exist_ok=True)
            lock_file = open(out / ".lock", "a+", encoding="utf-8")
        except OSError as error:
            raise RunDirectoryError(
                f"cannot create or write the run directory '{out}' ({error.strerror or error}); "
                "choose a writable --out."
            ) from None
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "unknown"
            lock_file.close()
            raise RunDirectoryError(
                f"'{out}' is in use by another keras-lc train (pid {holder}); wait for it to end "
                "or choose another --out."
            ) from None
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(f"{os.getpid()}\n")
        lock_file.flush()
        run = cls(out, lock_file)
        run.remove_temporaries()
        return run

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        """Release the lock (the `.lock` file stays; it is only ever locked, never trusted)."""
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def remove_temporaries(self):
        """Delete the `.NAME.*.tmp*` files an interrupted atomic write left; return their names."""
        removed = []
        for folder in (self.path, self.path / BACKUP):
            if folder.is_dir():
                for leftover in folder.glob(".*.tmp*"):
                    if leftover.is_file():
                        leftover.unlink()
                        removed.append(leftover.name)
        return removed

    def check(self, config):
        """True if `config` resumes the stored run, False if there is none; else refuse."""
        if (self.path / SUMMARY).exists():
            raise RunDirectoryError(
                f"'{self.path}' already holds a finished run (summary.json exists); choose a new --out."
            )
        config_path = self.path / CONFIG
        if not config_path.exists():
            return False
        try:
            with open(config_path, encoding="utf-8") as f:
                previous = json.load(f)
        except (OSError, ValueError) as error:
            raise RunDirectoryError(
                f"cannot read '{config_path}' ({error}); restore it or choose a new --out."
            ) from None
        previous, config = with_data_source(previous), with_data_source(config)
        keys = (set(previous) | set(config)) - set(IGNORED_ON_RESUME)
        changed = sorted(k for k in keys if previous.get(k) != config.get(k))
        if changed:
            raise RunDirectoryError(
                f"'{self.path}' holds an unfinished run with a different configuration (differs in "
                f"{changed}); resume it with the same settings or choose a new --out."
            )
        return True

    def write_config(self, config):
        """Store the run's configuration (a resume keeps the first one)."""
        if not (self.path / CONFIG).exists():
            write_json_atomic(self.path / CONFIG, config)


def with_data_source(config):
    """`config` with its data source spelled by `data_source` (a run directory recorded with a
    machine's cache path, as before, compares equal to the same data anywhere)."""
    source = (config.get("data") or {}).get("source")
    if not isinstance(source, str):
        return config
    return dict(config, data=dict(config["data"], source=data_source(source)))


def _read_json(path, missing):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(missing)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as error:
        raise ValueError(f"'{path}' is not valid JSON ({error}); the run directory is damaged.") from None


def read_config(run_dir):
    """The run's `config.json` (a `FileNotFoundError` naming the folder if it is none)."""
    if Path(run_dir).is_file():
        raise FileNotFoundError(f"'{run_dir}' is a file, not a run directory")
    return _read_json(Path(run_dir) / CONFIG, f"'{run_dir}' is not a run directory: no {CONFIG} in it")


def read_summary(run_dir):
    """The finished run's `summary.json` (a `FileNotFoundError` if the run has not finished)."""
    return _read_json(Path(run_dir) / SUMMARY, f"'{run_dir}' has no {SUMMARY}: has the run finished?")


def load_run(run_dir, weights=None):
    """`(config, model)`: a run's configuration and its model with the final weights.

    The model is rebuilt by its zoo builder from the stored arguments, then
    `weights` (default: the run's `final.weights.h5`) is loaded into it.
    """
    from keras_lc import zoo

    run_dir = Path(run_dir)
    config = read_config(run_dir)
    weights = Path(weights or run_dir / FINAL_WEIGHTS)
    if not weights.is_file():
        raise FileNotFoundError(f"no weights file '{weights}' (has the run finished?)")
    model = zoo.get_model(config["model"]["name"], **config["model"]["kwargs"])
    try:
        model.load_weights(weights)
    except (ValueError, OSError) as error:
        raise ValueError(f"cannot load '{weights}' into {config['model']['name']!r}: {error}") from None
    return config, model
