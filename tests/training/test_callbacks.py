"""keras_lc.training.callbacks.EpochLog: its per-epoch line starts a line of its own after Keras' progress bar."""

import keras
import numpy as np
import pytest

from keras_lc.training import EpochLog

EPOCHS = 3


def _fit_with_epoch_log(verbose, capsys, tmp_path):
    """A tiny `fit` (Keras' progress bar in mode `verbose`, validation each epoch): its stdout."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)).astype("float32"), rng.normal(size=(40, 2)).astype("float32")
    log = EpochLog(tmp_path / "history.csv", None, num_examples=len(x), total_epochs=EPOCHS)
    capsys.readouterr()
    model.fit(x, y, batch_size=8, epochs=EPOCHS, validation_data=(x, y), callbacks=[log], verbose=verbose)
    return capsys.readouterr().out, log


@pytest.mark.parametrize("verbose", [1, 2, 0])
def test_epoch_line_starts_a_line_after_the_progress_bar(verbose, capsys, tmp_path):
    out, log = _fit_with_epoch_log(verbose, capsys, tmp_path)
    lines = out.split("\n")
    ours = [i for i, line in enumerate(lines) if "[keras-lc] epoch" in line]
    # one line per epoch, each starting its own line (not glued to the bar's \r-redrawn line)
    assert [lines[i].split(" done")[0] for i in ours] == [f"[keras-lc] epoch {e}/{EPOCHS}"
                                                          for e in range(1, EPOCHS + 1)], out
    assert len(log.rows) == EPOCHS and (tmp_path / "history.csv").exists()
    if verbose:
        # ... and after the bar's last update of its epoch, the one showing the validation loss
        for i in ours:
            assert "val_loss" in lines[i - 1] and "[keras-lc]" not in lines[i - 1], out
        assert lines[ours[0] + 1].startswith("Epoch 2/3"), out
    else:
        assert [line for line in lines if line] == [lines[i] for i in ours], out


def test_the_last_epoch_line_is_printed_when_training_ends(tmp_path):
    said = []
    log = EpochLog(None, None, num_examples=10, total_epochs=1, print_fn=said.append)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    model.fit(np.zeros((10, 4), "float32"), np.zeros((10, 2), "float32"), epochs=1, callbacks=[log],
              verbose=0)
    assert len(said) == 1 and said[0].startswith("[keras-lc] epoch 1/1 done (") and "loss=0.0000" in said[0]
