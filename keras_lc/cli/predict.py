"""`keras-lc predict NAME IMAGE...`: a published model's top-k classes for image files.

Each IMAGE is a file or a folder (its image files, sorted, recursively). The
images are read with `keras.utils.load_img`, resized to the model's input
size when they differ, and fed raw to the builder call (which normalizes
them itself); each gets one line: `PATH: class probability, ...`, best first.
"""

import os
from pathlib import Path

from keras_lc.cli.common import UsageError, hub_manifest, positive_int
from keras_lc.data.folders import IMAGE_EXTENSIONS

name = "predict"

#: What a folder is searched for: the datasets' image files, and what else Pillow reads.
IMAGE_SUFFIXES = IMAGE_EXTENSIONS + (".bmp", ".gif")


def add_parser(subparsers):
    """Add the `predict` subcommand to an argparse `subparsers` object; returns its parser."""
    parser = subparsers.add_parser(
        "predict", help="classify image files with a published model (top-k classes)",
        description="Print a published model's top-k classes with probabilities for each image "
        "file (or each image in a folder).")
    parser.add_argument("model", metavar="NAME", help="published model (see 'keras-lc list --pretrained') or hf://ORG/REPO[@REVISION]")
    parser.add_argument("images", metavar="IMAGE", nargs="+", help="image file or folder of images")
    parser.add_argument("--top", type=positive_int, default=3, help="classes per image (default: 3)")
    parser.add_argument("--batch-size", type=positive_int, default=256,
                        help="images per forward pass (default: 256)")
    return parser


def image_files(paths):
    """The image files `paths` name (folders expanded, sorted); `UsageError` for a bad path."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise UsageError(f"folder '{path}' holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"image '{path}' does not exist")
    return files


def _load(path, size):
    import keras
    import numpy as np

    try:
        image = keras.utils.load_img(path, color_mode="rgb", target_size=size, interpolation="bilinear")
    except (OSError, ValueError) as error:  # PIL.UnidentifiedImageError is an OSError
        reason = ("not an image file Pillow can decode" if "cannot identify image file" in str(error)
                  else " ".join(str(error).split()))
        raise UsageError(f"cannot read image '{path}': {reason}; expected an RGB image file "
                         f"({', '.join(IMAGE_SUFFIXES)})") from None
    return np.asarray(image, dtype=np.uint8)


def run(args):
    """Run `keras-lc predict` from parsed arguments; returns the exit status."""
    import numpy as np

    from keras_lc import hub, zoo
    from keras_lc.weights import published_weights

    if hub.is_hub_id(args.model):
        entry = hub_manifest(args.model)
    else:
        published = published_weights(requested=args.model)
        if args.model not in published:
            raise UsageError(f"{args.model!r} is not a published model; published models: "
                             f"{sorted(published)} (see 'keras-lc list --pretrained'), or hf://ORG/REPO")
        entry = published[args.model]
    if args.top > entry.classes:
        raise UsageError(f"--top must be at most {entry.classes} (the model's classes). Received: {args.top}")
    files = image_files(args.images)
    size = tuple(entry.preprocessing.input_size[:2]) if entry.preprocessing else None
    images = np.stack([_load(path, size) for path in files])
    source = args.model if hub.is_hub_id(args.model) else entry.name
    try:
        model = zoo.load_published(source)
    except ValueError as error:  # e.g. a Hub file whose sha256 is not its manifest's
        raise UsageError(str(error)) from None
    probabilities = np.asarray(model.predict(images, batch_size=args.batch_size, verbose=0))
    for path, best in zip(files, zoo.decode_predictions(probabilities, args.top, weights=source)):
        print(f"{os.fspath(path)}: " + ", ".join(f"{label} {score:.3f}" for _, label, score in best))
    return 0
