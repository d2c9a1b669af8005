"""The JPEG quality and chroma subsampling of an image folder's files, from their headers.

Why: the CIFAR-10 copy here is a JPEG re-encoding of the original pixels, and how lossy it is
bears on comparing our top-1 with the paper's (`docs/RESULTS.md`). A JPEG file does not store
its quality; its quantization tables do, when they are the IJG (libjpeg) standard tables scaled
by a quality q in 1..100 (what Pillow, libjpeg and OpenCV write). This reads each file's
tables with Pillow, finds the q that reproduces both exactly (or none: "custom"), and reads the
chroma subsampling (4:4:4, 4:2:2, 4:2:0). Pillow has no quality estimate of its own, hence
this script.

    python tools/jpeg_quality.py ../shared/datasets/cifar10-jpeg.tar.gz
    python tools/jpeg_quality.py DIR --split test --every 10
"""

import argparse
import collections

from PIL import Image, JpegImagePlugin

from keras_lc.data.folders import find_image_folder, list_image_files

#: The IJG standard tables (ITU-T T.81 Annex K), row by row, the order Pillow returns them in.
LUMA = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
        14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
        18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
        49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
CHROMA = ((17, 18, 24, 47) + (99,) * 4 + (18, 21, 26, 66) + (99,) * 4 + (24, 26, 56) + (99,) * 5
          + (47, 66) + (99,) * 6 + (99,) * 32)
SAMPLING = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}


def scaled(table, quality):
    """libjpeg's `jpeg_quality_scaling` applied to `table`."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return tuple(min(max((v * scale + 50) // 100, 1), 255) for v in table)


TABLES = {(scaled(LUMA, q), scaled(CHROMA, q)): q for q in range(1, 101)}


def quality(path):
    """(IJG quality or "custom", chroma subsampling) of one JPEG file."""
    with Image.open(path) as image:
        if image.format != "JPEG":
            return image.format, "-"
        tables = image.quantization
        key = (tuple(tables.get(0, ())), tuple(tables.get(1, ())))
        return TABLES.get(key, "custom"), SAMPLING.get(JpegImagePlugin.get_sampling(image), "other")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="image-folder archive or folder (split/class/image.jpg)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--every", type=int, default=1, help="read every N-th file only")
    args = parser.parse_args(argv)
    paths, _, _ = list_image_files(find_image_folder(args.data, args.split))
    counts = collections.Counter(quality(p) for p in paths[::args.every])
    total = sum(counts.values())
    print(f"{total} files of '{args.split}' read")
    for (q, sampling), n in counts.most_common():
        print(f"quality {q}, chroma {sampling}: {n} files ({100 * n / total:.1f}%)")


if __name__ == "__main__":
    main()
