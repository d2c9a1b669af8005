"""`tools/jpeg_quality.py`: the quality and subsampling Pillow wrote are read back from the headers."""

import numpy as np
from PIL import Image

from tests.harness import load_file_module


def _tool():
    return load_file_module("tools/jpeg_quality.py")


def test_quality_and_subsampling_read_back(tmp_path, capsys):
    tool = _tool()
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    folder = tmp_path / "train" / "cat"
    folder.mkdir(parents=True)
    written = {"a.jpg": (75, 2), "b.jpg": (75, 2), "c.jpg": (90, 0), "d.jpg": (23, 1)}
    for name, (quality, subsampling) in written.items():
        Image.fromarray(pixels).save(folder / name, quality=quality, subsampling=subsampling)
    Image.fromarray(pixels).save(folder / "e.jpg", qtables=[[3] * 64, [4] * 64])  # not IJG's
    assert [tool.quality(folder / n) for n in sorted(written)] == [
        (75, "4:2:0"), (75, "4:2:0"), (90, "4:4:4"), (23, "4:2:2")]
    assert tool.quality(folder / "e.jpg")[0] == "custom"
    tool.main([str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["5 files of 'train' read", "quality 75, chroma 4:2:0: 2 files (40.0%)"]
    assert sorted(lines[2:]) == ["quality 23, chroma 4:2:2: 1 files (20.0%)",
                                 "quality 90, chroma 4:4:4: 1 files (20.0%)",
                                 "quality custom, chroma 4:2:0: 1 files (20.0%)"]
