"""Carry an unfinished `keras-lc train` run directory between machines inside the repository.

A 75-epoch CIFAR-10 run needs more CPU time than one development session has, and a session's
machine keeps nothing but the repository's committed files. So the resumable part of a run
directory, `config.json`, `history.csv` and `backup/` (the last completed epoch's weights and
optimizer state; a few hundred KB for ResNet-20), is copied into `checkpoints/NAME/` and
committed, and the next session copies it back and runs the same `keras-lc train` command,
which resumes bit-identically at that epoch. TensorBoard event files, the learning-curve
figure and the lock are left out (a resumed run writes them anew).

`save` writes the copy without machine paths: the recorded command line and `data_dir` made
portable (`keras_lc.export.portable_command` / `portable_path`; a resume ignores both) and the
data source spelled by `keras_lc.archives.data_source` (`archive:<stem>-<sha12>/...`, which a
resume compares, the same on every machine with the same archive). The copy is written beside
the old one and renamed into place, so an interrupted save leaves the previous copy whole.
`restore` copies it back to a run directory that does not exist yet.

Usage:

    python tools/carry_run.py save ~/keras-lc-runs/resnet_lc20_16x1_frozen
    python tools/carry_run.py restore resnet_lc20_16x1_frozen ~/keras-lc-runs/resnet_lc20_16x1_frozen

Exit 2 with one line for a folder that is not an unfinished run, or a restore target that exists.
"""

import argparse
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHECKPOINTS = REPO / "checkpoints"
CARRIED = ("config.json", "history.csv", "backup")


def portable_config(config):
    """`config` with no machine path: command and data_dir portable, the data source by content."""
    from keras_lc.export import portable_command, portable_path
    from keras_lc.training.run_dir import with_data_source

    return with_data_source(dict(config, command=portable_command(config.get("command", "")),
                                 data_dir=portable_path(config.get("data_dir"))))

def save(run_dir, checkpoints=CHECKPOINTS):
    """Copy the resumable part of `run_dir` to `checkpoints/<its name>`; returns that folder."""
    run_dir = Path(run_dir).expanduser()
    if not (run_dir / "config.json").is_file() or not (run_dir / "backup").is_dir():
        raise ValueError(f"'{run_dir}' is not an unfinished run directory (it needs config.json and "
                         "backup/, which a run has after its first epoch and until it finishes)")
    target = Path(checkpoints) / run_dir.name
    staging = target.parent / f".{target.name}.new-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        (staging / "config.json").write_text(json.dumps(portable_config(config), indent=2, sort_keys=True) + "\n")
        if (run_dir / "history.csv").is_file():
            shutil.copy2(run_dir / "history.csv", staging / "history.csv")
        _copy_backup(run_dir / "backup", staging / "backup")
        retired = target.parent / f".{target.name}.old-{uuid.uuid4().hex}"
        if target.exists():
            os.replace(target, retired)
        os.replace(staging, target)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _copy_backup(backup, copy, tries=3):
    """Copy `backup/`, again if the running train replaced its checkpoint meanwhile: the copy's
    `training_metadata.json` must name a weights file that the copy holds."""
    for _ in range(tries):
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(backup, copy)
        metadata = copy / "training_metadata.json"
        named = json.loads(metadata.read_text(encoding="utf-8")).get("weights") if metadata.is_file() else None
        if named is not None and (copy / named).is_file():
            return
    raise ValueError(f"'{backup}' holds no complete checkpoint (training_metadata.json and the weights "
                     f"file it names), {tries} tries")


def restore(name, run_dir, checkpoints=CHECKPOINTS):
    """Copy `checkpoints/<name>` to the run directory `run_dir`, which must not exist yet."""
    source, run_dir = Path(checkpoints) / name, Path(run_dir).expanduser()
    if not (source / "config.json").is_file():
        carried = sorted(p.name for p in Path(checkpoints).iterdir() if p.is_dir()) if Path(checkpoints).is_dir() else []
        raise ValueError(f"no carried run {name!r} in '{checkpoints}' (carried: {carried or 'none'})")
    if run_dir.exists():
        raise ValueError(f"'{run_dir}' already exists; restore into a new folder (or resume that one)")
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = run_dir.parent / f".{run_dir.name}.restoring-{uuid.uuid4().hex}"
    try:
        shutil.copytree(source, staging)
        os.replace(staging, run_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return run_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", default=str(CHECKPOINTS),
                        help="the folder of carried runs (default: the repository's checkpoints/)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("save", help="copy a run's resumable part into checkpoints/").add_argument("run_dir")
    restoring = commands.add_parser("restore", help="copy a carried run back to a new run directory")
    restoring.add_argument("name")
    restoring.add_argument("run_dir")
    args = parser.parse_args(argv)
    try:
        if args.command == "save":
            print(f"saved '{save(args.run_dir, args.checkpoints)}'")
        else:
            print(f"restored into '{restore(args.name, args.run_dir, args.checkpoints)}'")
    except (ValueError, OSError) as error:
        print(f"carry_run: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
