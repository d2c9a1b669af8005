"""The model zoo: the architectures the paper studies, as keras.applications-style builders.

`list_models(pattern)` names them, `get_model(name, **kwargs)` builds one,
`load_published(name)` builds a published model with its weights and
`list_models(pretrained=True)` names those; `preprocess_input` and
`decode_predictions` are keras.applications' for their inputs and outputs.
Every builder takes keras.applications' arguments plus `frozen_spatial` and
`seed` (LC builders also `expansion`, `kernel_size`, `implementation`).

Layout: `registry` (names, presets as data), `pretrained` (published weights),
`application` (keras.applications' arguments, input and head), `blocks` (the
conv/BN factory), and one module per family.
"""

from keras_lc.zoo.mobilenet_v2 import mobilenet_v2
from keras_lc.zoo.pretrained import (decode_predictions, load_published, preprocess_input, preprocessing_of,
                                     split_preprocessing)
from keras_lc.zoo.registry import (
    Preset,
    get_builder,
    get_model,
    list_models,
    register_model,
    register_preset,
    register_presets,
)
from keras_lc.zoo.resnet import resnet18, resnet18d, resnet34, resnet50, resnet50d, resnet101
from keras_lc.zoo.resnet_cifar import (
    resnet20,
    resnet32,
    resnet44,
    resnet56,
    resnet110,
    resnet_cifar,
    resnet_lc,
    resnet_lc20,
    resnet_lc20_16x128,
    resnet_lc32,
    resnet_lc44,
    resnet_lc56,
    resnet_lc110,
)
from keras_lc.zoo.wide_resnet import wide_resnet, wide_resnet28_10, wide_resnet50_2

__all__ = [
    "Preset",
    "decode_predictions",
    "get_builder",
    "get_model",
    "load_published",
    "list_models",
    "mobilenet_v2",
    "preprocess_input",
    "preprocessing_of",
    "split_preprocessing",
    "register_model",
    "register_preset",
    "register_presets",
    "resnet101",
    "resnet110",
    "resnet18",
    "resnet18d",
    "resnet20",
    "resnet32",
    "resnet34",
    "resnet44",
    "resnet50",
    "resnet50d",
    "resnet56",
    "resnet_cifar",
    "resnet_lc",
    "resnet_lc110",
    "resnet_lc20",
    "resnet_lc20_16x128",
    "resnet_lc32",
    "resnet_lc44",
    "resnet_lc56",
    "wide_resnet",
    "wide_resnet28_10",
    "wide_resnet50_2",
]
