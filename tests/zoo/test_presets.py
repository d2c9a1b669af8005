"""Presets as data (`keras_lc.zoo.registry.register_presets`): each family's table of
fixed arguments, registered by the one mechanism."""

import inspect

import pytest

from keras_lc import zoo
from keras_lc.zoo import registry, resnet
from keras_lc.zoo.resnet_cifar import LC_PRESETS
from keras_lc.zoo.resnet_cifar import PRESETS as CIFAR_PRESETS
from keras_lc.zoo.wide_resnet import PRESETS as WIDE_PRESETS


@pytest.mark.parametrize(
    "builder,presets",
    [
        (zoo.resnet_cifar, CIFAR_PRESETS),
        (zoo.resnet_lc, LC_PRESETS),
        (resnet.resnet_imagenet, {name: p.fixed for name, p in resnet.PRESETS.items()}),
        (zoo.wide_resnet, WIDE_PRESETS),
    ],
)
def test_a_preset_is_its_builder_with_its_arguments_fixed(builder, presets):
    builder_parameters = inspect.signature(builder).parameters
    for name, fixed in presets.items():
        preset = zoo.get_builder(name)
        assert preset is getattr(zoo, name)
        parameters = inspect.signature(preset).parameters
        assert list(parameters) == [p for p in builder_parameters if p not in fixed], name
        assert all(parameters[p].default == builder_parameters[p].default for p in parameters), name


def test_presets_fix_their_arguments_and_bind_like_their_signature():
    with pytest.raises(ValueError, match=r"`resnet50` fixes .*call `resnet_imagenet`.*Received: bottleneck=False"):
        zoo.resnet50(bottleneck=False)
    assert zoo.resnet_lc20_16x128(include_top=False, seed=0).name == "resnet_lc20_16x128"
    with pytest.raises(ValueError, match=r"`resnet_cifar` has no argument\(s\) \['depht'\] for preset 'typo'"):
        registry.register_presets(zoo.resnet_cifar, {"typo": {"depht": 8}})
    assert "typo" not in zoo.list_models()


def test_preset_docstrings_come_from_the_family():
    assert zoo.resnet20.__doc__ == "`resnet_cifar(depth=20, ...)`: see `resnet_cifar`."
    assert zoo.resnet18d.__doc__.startswith("ResNet-18d (deep stem, avg-pool shortcuts), 11.7M parameters.")
    assert "stride-1 3x3 convolutions, no max-pool" in zoo.resnet18d.__doc__
    assert "stride-1 3x3 convolution, no max-pool" in zoo.wide_resnet50_2.__doc__
