"""Callbacks of a training run: atomic backup/restore, NaN stop, CSV log + learning curve.

Every file goes through the atomic-write helpers of `keras_lc.files`.
"""

import csv
import io
import json
import math
import os
import time
from pathlib import Path

import keras
import numpy as np

from keras_lc.files import atomic_path, write_json_atomic, write_text_atomic


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; training was stopped."""


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` whose checkpoint can never be half written.

    Keras' callback overwrites `latest.weights.h5` in place and then the
    epoch number, so a kill inside the save leaves a corrupt file or weights
    that do not match the recorded epoch. Here each backup is written to a
    temporary file and renamed to `epoch-NNNNN.weights.h5`, then the metadata
    naming that file is replaced atomically, then older backups are removed:
    at every instant the metadata points at a complete checkpoint of the
    epoch it names (model weights and optimizer state, so the step counter and
    the learning-rate schedule continue exactly).

    Args:
        backup_dir: Folder for the checkpoints (nothing else may write there).
        delete_checkpoint: Remove the folder when training ends normally.
    """

    def __init__(self, backup_dir, delete_checkpoint=True):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=delete_checkpoint)

    @staticmethod
    def saved_epoch(backup_dir):
        """Epochs completed by the checkpoint in `backup_dir` (0 if none)."""
        path = os.path.join(backup_dir, "training_metadata.json")
        if not os.path.exists(path):
            return 0
        with open(path, encoding="utf-8") as f:
            return int(json.load(f)["epoch"])

    def _load_model(self):
        if not self.model.built:
            raise ValueError("BackupAndRestore needs a built model: build it before fit().")
        if not os.path.exists(self._training_metadata_path):
            return
        with open(self._training_metadata_path, encoding="utf-8") as f:
            metadata = json.load(f)
        weights = os.path.join(self.backup_dir, metadata["weights"])
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(weights)
        self.model._initial_epoch = int(metadata["epoch"])

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        name = f"epoch-{self._current_epoch:05d}.weights.h5"
        with atomic_path(os.path.join(self.backup_dir, name), suffix=".weights.h5") as tmp:
            self.model.save_weights(tmp, overwrite=True)
        write_json_atomic(
            self._training_metadata_path, {"epoch": self._current_epoch, "weights": name}
        )
        for old in Path(self.backup_dir).glob("epoch-*.weights.h5"):
            if old.name != name:
                old.unlink()


class NaNGuard(keras.callbacks.TerminateOnNaN):
    """`TerminateOnNaN` that stops at once with a message saying what to do.

    Raises `TrainingDiverged` from the batch whose loss is NaN or infinite,
    before the epoch ends, so the last backup (the last good epoch) is kept
    and never overwritten by diverged weights.

    Args:
        backup_dir: The `AtomicBackupAndRestore` folder, named in the message.
        hint: Advice appended to the message.
    """

    def __init__(self, backup_dir=None, hint=""):
        super().__init__(raise_error=True)
        self.backup_dir, self.hint = backup_dir, hint
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(np.asarray(loss))):
            return
        message = (
            f"Training stopped: the loss became {float(np.asarray(loss))} at epoch "
            f"{self._epoch + 1}, batch {batch + 1}."
        )
        if self.backup_dir is not None:
            saved = AtomicBackupAndRestore.saved_epoch(self.backup_dir)
            message += (
                f" The last good checkpoint (epoch {saved}) is kept in '{self.backup_dir}'."
                if saved
                else " No epoch had completed."
            )
        raise TrainingDiverged(f"{message} {self.hint}".strip())


class EpochLog(keras.callbacks.Callback):
    """Per-epoch CSV log, learning-curve PNG, training throughput and a progress line.

    After every epoch it rewrites `csv_path` and `png_path` atomically with
    all epochs so far. Rows of a previous, interrupted session are kept up to
    the epoch this session starts from (a resumed run has one row per epoch).
    Training time excludes validation; `images_per_s` is `num_examples /
    train_seconds` of the epoch.

    The epoch's line is printed once every callback has ended the epoch: at
    the next epoch's start, or when training ends. Keras runs its progress
    bar after the callbacks given to `fit`, and the bar ends its line (with
    the validation metrics) only in its own `on_epoch_end`: a line printed
    from this `on_epoch_end` would be glued to the unfinished bar.

    Args:
        csv_path, png_path: Output files (`None` skips one).
        num_examples: Training images per epoch.
        total_epochs: For the progress line.
        print_fn: Called with one line per epoch (`None`: silent).
    """

    def __init__(self, csv_path, png_path, num_examples, total_epochs, print_fn=print):
        super().__init__()
        self.csv_path, self.png_path = csv_path, png_path
        self.num_examples, self.total_epochs = num_examples, total_epochs
        self.print_fn = print_fn
        self.rows = {}
        self.first_epoch = None
        self._line = None  # the last epoch's line, printed by `_print_line`

    def on_train_begin(self, logs=None):
        self.rows = {}
        self.first_epoch = None
        self._line = None
        if self.csv_path and os.path.exists(self.csv_path):
            with open(self.csv_path, newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    self.rows[int(row["epoch"]) - 1] = row  # the CSV counts epochs from 1

    def on_epoch_begin(self, epoch, logs=None):
        self._print_line()
        if self.first_epoch is None:
            self.first_epoch = epoch
            self.rows = {e: r for e, r in self.rows.items() if e < epoch}
        self._start = time.perf_counter()
        self._train_seconds = None
        self._learning_rate = self._current_learning_rate()

    def _current_learning_rate(self):
        return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_test_begin(self, logs=None):
        if getattr(self, "_start", None) is not None and self._train_seconds is None:
            self._train_seconds = time.perf_counter() - self._start

    def on_epoch_end(self, epoch, logs=None):
        seconds = self._train_seconds or (time.perf_counter() - self._start)
        self._start = None
        row = {"epoch": epoch + 1}
        row["learning_rate"] = self._learning_rate  # at the epoch's first step
        row.update({k: float(np.asarray(v)) for k, v in (logs or {}).items() if k != "learning_rate"})
        row["train_seconds"] = seconds
        row["images_per_s"] = self.num_examples / seconds
        self.rows[epoch] = row
        if self.csv_path:
            self._write_csv()
        if self.png_path:
            self._write_png()
        if self.print_fn:
            metrics = ", ".join(f"{k}={row[k]:.4f}" for k in sorted(logs or {}) if k in row)
            self._line = (
                f"[keras-lc] epoch {epoch + 1}/{self.total_epochs} done ({seconds:.1f} s train, "
                f"{row['images_per_s']:.0f} images/s): {metrics}"
            )

    def on_train_end(self, logs=None):
        self._print_line()

    def _print_line(self):
        if self._line is not None:
            line, self._line = self._line, None
            self.print_fn(line)

    def _write_csv(self):
        rows = [self.rows[e] for e in sorted(self.rows)]
        names = list(dict.fromkeys(k for row in rows for k in row))
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(self.csv_path, out.getvalue())

    def _write_png(self):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        rows = [self.rows[e] for e in sorted(self.rows)]
        figure = Figure(figsize=(10, 4), layout="constrained")
        FigureCanvasAgg(figure)
        for ax, (metric, title) in zip(
            figure.subplots(1, 2), (("loss", "loss"), ("top1", "top-1 accuracy"))
        ):
            for prefix, label in (("", "train"), ("val_", "test")):
                # Epochs without validation (`validation_freq`) have no test point.
                points = [(int(r["epoch"]), float(r[prefix + metric]))
                          for r in rows if r.get(prefix + metric) not in (None, "")]
                if points:
                    ax.plot(*zip(*points), marker="o", label=label)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(title)
            ax.grid(alpha=0.3)
            ax.legend()
        with atomic_path(self.png_path) as tmp:
            figure.savefig(tmp, format="png", dpi=100)
