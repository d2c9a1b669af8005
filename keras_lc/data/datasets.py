"""The dataset table: every per-dataset constant, stated here and only here.

`DatasetSpec` is what the pipelines need to know about one dataset,
`DATASETS` the paper's datasets (Appendix A) with their normalization
constants, `get_spec` looks one up by name; `CIFAR10_MEAN`/`CIFAR10_STD` and
`normalize` standardize uint8 images outside a `tf.data` pipeline.
"""

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

#: Per-channel mean and standard deviation of the CIFAR-10 training images
#: (pixel values in [0, 1]); the normalization every CIFAR model here uses.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def normalize(images, mean=CIFAR10_MEAN, std=CIFAR10_STD):
    """uint8 images -> float32 per-channel standardized images."""
    x = np.asarray(images, dtype=np.float32) / 255.0
    return (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


@dataclass(frozen=True)
class DatasetSpec:
    """What the pipelines need to know about one dataset.

    Attributes:
        name: The tensorflow-datasets name.
        num_classes: Number of classes.
        image_size: Side of the square images the models see.
        native_size: Side of the stored images (`None`: variable, ImageNet).
        channels: Channels of the stored images (1 for Fashion-MNIST, which
            the pipeline repeats to 3 so every model takes RGB input).
        mean, std: Per-channel statistics of the training images in [0, 1]
            (3 values; the grey level repeated for Fashion-MNIST).
        augmentation: `"cifar"` (pad 4 + random 32 crop + horizontal flip),
            `"none"`, or `"imagenet"` (random-resized crop + flip; RandAugment,
            MixUp and CutMix on request).
        test_split: The tfds split holding labelled evaluation images.
    """

    name: str
    num_classes: int
    image_size: int
    native_size: Optional[int]
    channels: int
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    augmentation: str
    test_split: str = "test"


#: The datasets of the paper (Appendix A) with their normalization constants.
DATASETS = {
    spec.name: spec
    for spec in (
        DatasetSpec("cifar10", 10, 32, 32, 3, CIFAR10_MEAN, CIFAR10_STD, "cifar"),
        DatasetSpec(
            "cifar100", 100, 32, 32, 3, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), "cifar"
        ),
        DatasetSpec(
            "svhn_cropped", 10, 32, 32, 3, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), "none"
        ),
        DatasetSpec("fashion_mnist", 10, 32, 28, 1, (0.2860,) * 3, (0.3530,) * 3, "none"),
        DatasetSpec(
            "imagenet2012", 1000, 224, None, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
            "imagenet", test_split="validation",
        ),
    )
}


def get_spec(name):
    """The `DatasetSpec` of a dataset name (see `DATASETS`)."""
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}. Known datasets: {sorted(DATASETS)}.")
    return DATASETS[name]
