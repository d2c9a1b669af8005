"""`tools/carry_run.py`: an unfinished run directory carried in the repository, without machine paths."""

import json

import pytest

from tests.harness import load_file_module
from tests.test_no_machine_paths import MACHINE_PATH


def _tool():
    return load_file_module("tools/carry_run.py")


def _run_dir(tmp_path, cache):
    run = tmp_path / "home" / "keras-lc-runs" / "lc20x1"
    (run / "backup").mkdir(parents=True)
    (run / "tensorboard" / "train").mkdir(parents=True)
    (run / "tensorboard" / "train" / "events").write_bytes(b"\x00event")
    (run / ".lock").write_text("")
    (run / "backup" / "epoch-00010.weights.h5").write_bytes(bytes(range(256)) * 4)
    (run / "backup" / "training_metadata.json").write_text('{"epoch": 10, "weights": "epoch-00010.weights.h5"}')
    (run / "history.csv").write_text("epoch,loss\n1,2.0\n")
    config = {
        "command": f"keras-lc train --model resnet_lc20 --data-dir {tmp_path}/shared/datasets/c.tar.gz "
                   f"--out {run}",
        "data_dir": f"{tmp_path}/shared/datasets/c.tar.gz",
        "data": {"dataset": "cifar10", "source": f"folder:{cache}/datasets/c-0123456789ab/cifar10/train"},
        "recipe": {"epochs": 75},
    }
    (run / "config.json").write_text(json.dumps(config))
    return run, config


def test_save_and_restore_carry_the_resumable_part_without_machine_paths(tmp_path, monkeypatch):
    tool = _tool()
    cache = tmp_path / "cache"
    monkeypatch.setenv("KERAS_LC_CACHE", str(cache))
    run, config = _run_dir(tmp_path, cache)
    carried = tool.save(run, checkpoints=tmp_path / "repo" / "checkpoints")
    assert sorted(p.name for p in carried.iterdir()) == ["backup", "config.json", "history.csv"]
    text = (carried / "config.json").read_text()
    assert MACHINE_PATH.findall(text) == [] and str(tmp_path) not in text
    saved = json.loads(text)
    assert saved["command"] == ("keras-lc train --model resnet_lc20 --data-dir ../shared/datasets/c.tar.gz "
                                "--out runs/lc20x1")
    assert saved["data"]["source"] == "archive:c-0123456789ab/cifar10/train"
    assert saved["recipe"] == config["recipe"] and saved["data_dir"] == "../shared/datasets/c.tar.gz"
    assert (carried / "backup" / "epoch-00010.weights.h5").read_bytes() == bytes(range(256)) * 4

    # A second save replaces the first whole; nothing is left beside it.
    (run / "backup" / "training_metadata.json").write_text('{"epoch": 11, "weights": "epoch-00010.weights.h5"}')
    tool.save(run, checkpoints=tmp_path / "repo" / "checkpoints")
    assert [p.name for p in (tmp_path / "repo" / "checkpoints").iterdir()] == ["lc20x1"]
    assert json.loads((carried / "backup" / "training_metadata.json").read_text())["epoch"] == 11

    # A checkpoint that names a weights file it does not hold (replaced while copying) is refused,
    # and the earlier copy stays whole.
    (run / "backup" / "training_metadata.json").write_text('{"epoch": 12, "weights": "epoch-00012.weights.h5"}')
    with pytest.raises(ValueError, match=r"holds no complete checkpoint"):
        tool.save(run, checkpoints=tmp_path / "repo" / "checkpoints")
    assert json.loads((carried / "backup" / "training_metadata.json").read_text())["epoch"] == 11
    (run / "backup" / "training_metadata.json").write_text('{"epoch": 11, "weights": "epoch-00010.weights.h5"}')

    restored = tool.restore("lc20x1", tmp_path / "elsewhere" / "lc20x1", checkpoints=tmp_path / "repo" / "checkpoints")
    assert (restored / "backup" / "epoch-00010.weights.h5").read_bytes() == bytes(range(256)) * 4
    assert json.loads((restored / "config.json").read_text()) == json.loads(text)
    assert json.loads((restored / "backup" / "training_metadata.json").read_text())["epoch"] == 11


def test_bad_folders_get_one_line_and_exit_2(tmp_path, capsys):
    tool = _tool()
    where = ["--checkpoints", str(tmp_path / "checkpoints")]
    assert tool.main([*where, "save", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"carry_run: '{tmp_path}' is not an unfinished run directory (it needs "
                                       "config.json and backup/, which a run has after its first epoch and until "
                                       "it finishes)\n")
    run, _ = _run_dir(tmp_path, tmp_path / "cache")
    assert tool.main([*where, "save", str(run)]) == 0
    assert tool.main([*where, "restore", "lc20x1", str(run)]) == 2
    assert capsys.readouterr().err == (f"carry_run: '{run}' already exists; restore into a new folder "
                                       "(or resume that one)\n")
    assert tool.main([*where, "restore", "other", str(tmp_path / "new")]) == 2
    assert capsys.readouterr().err == (f"carry_run: no carried run 'other' in '{tmp_path / 'checkpoints'}' "
                                       "(carried: ['lc20x1'])\n")
    assert not (tmp_path / "new").exists()
