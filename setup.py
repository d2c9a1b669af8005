"""Build hook: the published models' weights ship inside the wheel.

The published models live in `zoo/NAME/` (source of truth: manifest, card,
weights, folded model). A wheel carries each one's manifest and its two
weights files as package data under `keras_lc/published/NAME/`, where
`keras_lc.weights` finds them, so `weights="cifar10"` works offline from an
installed wheel as it does from a source checkout. Everything else
(metadata, dependencies) is in setup.cfg.
"""

import json
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ZOO = Path(__file__).resolve().parent / "zoo"


class BuildPyWithPublishedWeights(build_py):
    """`build_py` that also copies zoo/NAME/{manifest.json, weights files} into the package."""

    def run(self):
        super().run()
        published = Path(self.build_lib) / "keras_lc" / "published"
        shutil.rmtree(published, ignore_errors=True)  # no stale model from an earlier build
        for manifest in sorted(ZOO.glob("*/manifest.json")):
            entry = json.loads(manifest.read_text(encoding="utf-8"))
            target = published / manifest.parent.name
            self.mkpath(str(target))
            for name in ("manifest.json", entry["file_name"], entry.get("notop_file_name")):
                if name:
                    self.copy_file(str(manifest.parent / name), str(target / name))


setup(cmdclass={"build_py": BuildPyWithPublishedWeights})
