"""No committed text file names a machine's absolute path (cards, manifests, docs, code)."""

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MACHINE_PATH = re.compile(r"(?:^|[^A-Za-z0-9_.])(/(?:work|root|home|tmp|Users)/[^\s'\"`)]*)")
BINARY = (".keras", ".h5", ".npz", ".png", ".pb", ".index", ".data-00000-of-00001")


def _tracked_files():
    try:
        listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the committed files cannot be listed")
    return [REPO / name for name in listed.stdout.splitlines() if not name.endswith(BINARY)]


def test_committed_files_name_no_machine_path():
    found = []
    for path in _tracked_files():
        if path.name == Path(__file__).name or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found += [f"{path.relative_to(REPO)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(1)}"
                  for m in MACHINE_PATH.finditer(text)]
    assert found == [], "\n".join(found[:20])


def test_the_pattern_catches_a_card_path():
    assert MACHINE_PATH.search("Dataset `cifar10` (`/work/shared/datasets/cifar10-jpeg.tar.gz`)")
    assert not MACHINE_PATH.search("--data-dir ../shared/datasets/cifar10-jpeg.tar.gz --out runs/x")
