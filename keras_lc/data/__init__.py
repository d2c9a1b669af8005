"""Datasets: tfds and image folders, the paper's tf.data pipelines, normalization constants.

`load_dataset` gives one split as decoded examples (from tensorflow-datasets
or from an image folder/archive), `make_pipeline` the batched, augmented,
normalized `tf.data` pipeline; `DATASETS` states every per-dataset constant.

The CIFAR-10 used here is an archive of JPEGs laid out
`cifar10/{train,test}/{class}/NNNN.jpg` (class index = alphabetical order of
the folder names, the standard CIFAR-10 label order).

One module per concern; every name is importable from `keras_lc.data`:

- `datasets`: `DatasetSpec`, `DATASETS`, `get_spec`, `CIFAR10_MEAN`,
  `CIFAR10_STD`, `normalize`.
- `folders`: image folders: `find_image_folder`, `is_image_folder`,
  `list_image_files`, `check_images`, `load_image_folder`, `decode_images`,
  `IMAGE_EXTENSIONS`, `TEST_SPLIT_FOLDERS`.
- `sources`: `load_dataset` (image folders and tensorflow-datasets) and the
  `LoadedDataset` it returns.
- `pipeline`: `make_pipeline` and its stateless augmentation
  (`augmentation_seed`).

The cache, hashing and archive unpacking live in `keras_lc.archives`
(`cache_dir`, `sha256_of`, `extract_archive`, `DataError`, `CacheError`);
they are re-exported here.
"""

from keras_lc.archives import CacheError, DataError, cache_dir, extract_archive, sha256_of
from keras_lc.data.datasets import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DATASETS,
    DatasetSpec,
    get_spec,
    normalize,
)
from keras_lc.data.folders import (
    IMAGE_EXTENSIONS,
    TEST_SPLIT_FOLDERS,
    check_images,
    decode_images,
    find_image_folder,
    is_image_folder,
    list_image_files,
    load_image_folder,
)
from keras_lc.data.pipeline import augmentation_seed, check_pipeline_options, make_pipeline
from keras_lc.data.sources import LoadedDataset, load_dataset

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CacheError",
    "DATASETS",
    "DataError",
    "DatasetSpec",
    "IMAGE_EXTENSIONS",
    "LoadedDataset",
    "TEST_SPLIT_FOLDERS",
    "augmentation_seed",
    "cache_dir",
    "check_images",
    "check_pipeline_options",
    "decode_images",
    "extract_archive",
    "find_image_folder",
    "get_spec",
    "is_image_folder",
    "list_image_files",
    "load_dataset",
    "load_image_folder",
    "make_pipeline",
    "normalize",
    "sha256_of",
]
