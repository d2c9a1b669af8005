"""Registry-wide: every registered model builds at 32x32, runs on real CIFAR-10 images, folds
exactly into stock Keras layers (a config naming nothing from keras_lc), round-trips through `.keras` (safe_mode) and `.weights.h5`, has the published parameter
count, conv -> BN order and exactly its k x k kernels frozen."""

import inspect

import keras
import numpy as np
import pytest

from keras_lc import LCConv2D, fold, zoo
from keras_lc.folding import keras_lc_references
from keras_lc.zoo import registry
from tests.harness import check_model_round_trip
from tests.reference import randomize_batchnorm, rel_error, to_numpy

CONVS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, LCConv2D)
PREACTIVATION = {"wide_resnet", "wide_resnet28_10"}  # CIFAR WRNs: BN-ReLU-conv blocks


def cifar_resnet_params(depth, width=16, expansion=None, classes=10):
    """He et al.'s CIFAR ResNet-{depth}-{width} (option A) from its description.

    With `expansion` E: the ResNet-LC, each k x k conv with m = c_out * E
    spatial filters and a (m, c_out) combination.
    """
    blocks = (depth - 2) // 6
    pairs = [(3, width)]
    for stage in range(3):
        filters = width * 2**stage
        for block in range(blocks):
            pairs += [(pairs[-1][1], filters), (filters, filters)]
    e = expansion or 1
    params = sum(9 * c_in * c_out * e for c_in, c_out in pairs)
    if expansion:
        params += sum(c_out * e * c_out for _, c_out in pairs)
    params += sum(2 * c_out for _, c_out in pairs)  # BN gamma and beta
    return params + 4 * width * classes + classes


# Trainable parameters of the learnable model, from the literature, and with
# frozen spatial kernels where the paper's authors report it (ResNet-50 14.2M,
# Wide-ResNet-50x2 23.6M). torchvision / timm counts; He et al. Table 6 (CIFAR
# ResNets 0.27M ... 1.7M); Zagoruyko & Komodakis (WRN-28-10 36.5M).
REFERENCE = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet18d": 11_708_744,
    "resnet50d": 25_576_264,
    "wide_resnet50_2": 68_883_240,
    "wide_resnet": 36_479_194,
    "wide_resnet28_10": 36_479_194,
    "mobilenet_v2": 3_504_872,
    "resnet_cifar": cifar_resnet_params(20),
    "resnet20": cifar_resnet_params(20),
    "resnet32": cifar_resnet_params(32),
    "resnet44": cifar_resnet_params(44),
    "resnet56": cifar_resnet_params(56),
    "resnet110": cifar_resnet_params(110),
    "resnet_lc": cifar_resnet_params(20, expansion=1),
    "resnet_lc20": cifar_resnet_params(20, expansion=1),
    "resnet_lc32": cifar_resnet_params(32, expansion=1),
    "resnet_lc44": cifar_resnet_params(44, expansion=1),
    "resnet_lc56": cifar_resnet_params(56, expansion=1),
    "resnet_lc110": cifar_resnet_params(110, expansion=1),
    "resnet_lc20_16x128": cifar_resnet_params(20, expansion=128),
}
FROZEN_REFERENCE = {"resnet50": (14.2e6, 0.01), "wide_resnet50_2": (23.6e6, 0.01)}


def _size(variable):
    return int(np.prod(variable.shape))


def _spatial_kernels(model):
    """ids of the k x k kernels (LC: spatial kernels) of `model`."""
    kernels = set()
    for layer in model.layers:
        if isinstance(layer, LCConv2D):
            kernels.add(id(layer.spatial_kernel))
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            if max(layer.kernel_size) > 1:
                kernels.add(id(layer.kernel))
    return kernels


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_registered_model(name, cifar_test_images):
    images, _ = cifar_test_images
    builder = getattr(zoo, name)  # every registered model is public API
    classes = inspect.signature(builder).parameters["classes"].default
    model = zoo.get_model(
        name, input_shape=(32, 32, 3), frozen_spatial=True, classifier_activation=None, seed=0
    )
    assert isinstance(model, keras.Model) and model.output_shape == (None, classes)
    randomize_batchnorm(model)
    logits = to_numpy(model(images[:2], training=False))
    assert logits.shape == (2, classes) and np.all(np.isfinite(logits))
    # The design invariant: the folded model (stock Keras layers) computes the same function,
    # on real CIFAR-10 images and on random inputs.
    folded = fold(model)
    assert rel_error(folded(images[:2]), logits) <= 1e-5
    # ... built from stock Keras layers only: loadable where keras_lc is not installed.
    assert keras_lc_references(model.get_config())  # the zoo builds with keras_lc objects
    assert keras_lc_references(folded.get_config()) == []
    assert all(type(layer).__module__.startswith("keras.") for layer in folded.layers)
    noise = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")
    assert rel_error(folded(noise), model(noise, training=False)) <= 1e-5
    # Saved and loaded (.keras with safe_mode=True, .weights.h5): bit-identical weights and outputs.
    # On TensorFlow; on JAX and PyTorch, files of every kind of weight are written and read across
    # all three backends by tests/test_backends.py (here a third of a big model's time there).
    if keras.backend.backend() == "tensorflow":
        check_model_round_trip(model, images[:2], outputs=logits)

    # Parameter counts: learnable (all but BN moving statistics) and frozen (trainable).
    statistics = [v for v in model.weights if v.path.endswith(("moving_mean", "moving_variance"))]
    learnable = sum(map(_size, model.weights)) - sum(map(_size, statistics))
    assert learnable == REFERENCE[name]
    trainable = sum(map(_size, model.trainable_weights))
    if name in FROZEN_REFERENCE:
        figure, tolerance = FROZEN_REFERENCE[name]
        assert abs(trainable / figure - 1) < tolerance
    # Exactly the k x k kernels are frozen: non-trainable = spatial kernels + BN statistics.
    spatial = _spatial_kernels(model)
    assert spatial and not spatial & {id(v) for v in model.trainable_weights}
    frozen_ids = {id(v) for v in model.non_trainable_weights} - {id(v) for v in statistics}
    assert frozen_ids == spatial

    # conv -> BN order: a conv's output feeds exactly one layer, a BatchNormalization
    # (pre-activation WRNs: a block's second conv and 1x1 shortcut feed its addition).
    for layer in model.layers:
        if not isinstance(layer, CONVS):
            continue
        consumers = [node.operation for node in layer._outbound_nodes]
        if name in PREACTIVATION and not layer.name.endswith(("_conv1", "stem_conv")):
            assert [type(c).__name__ for c in consumers] == ["Add"], layer.name
        else:
            assert len(consumers) == 1, layer.name
            assert isinstance(consumers[0], keras.layers.BatchNormalization), layer.name
            assert not layer.use_bias, layer.name

    # One training step: the loss is finite, every learnable weight moves (but BatchNorm betas,
    # whose gradient is exactly zero where a linear path leads to the next training-mode
    # BatchNorm, which removes a per-channel shift: MobileNetV2's stride-2 projections; rounding
    # decides whether they move) and no frozen kernel does.
    before = {id(v): to_numpy(v) for v in model.weights}
    # Eager (no trace) on TensorFlow and PyTorch; on JAX, which compiles every op on its first
    # eager use, the jitted step is 3x faster (MobileNetV2: 11.6 s against 35.9 s).
    model.compile(optimizer=keras.optimizers.SGD(0.1), run_eagerly=keras.backend.backend() != "jax",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loss = model.train_on_batch(images[:2], np.array([0, 1]))
    assert np.isfinite(loss)
    for v in model.trainable_weights:
        if not v.path.endswith("/beta"):
            assert np.any(to_numpy(v) != before[id(v)]), v.path
    for v in model.non_trainable_weights:
        if id(v) in spatial:
            np.testing.assert_array_equal(to_numpy(v), before[id(v)], err_msg=v.path)
    keras.backend.clear_session()


def test_list_models_filters_with_shell_patterns():
    assert zoo.list_models("resnet_lc*") == [
        "resnet_lc",
        "resnet_lc110",
        "resnet_lc20",
        "resnet_lc20_16x128",
        "resnet_lc32",
        "resnet_lc44",
        "resnet_lc56",
    ]
    assert zoo.list_models("wide_*") == ["wide_resnet", "wide_resnet28_10", "wide_resnet50_2"]
    assert zoo.list_models("no_such_model*") == []
    assert sorted(REFERENCE) == zoo.list_models()
    with pytest.raises(ValueError, match="`pattern` must be a string. Received: pattern=3"):
        zoo.list_models(3)


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"Unknown model name 'resnet_20'\. Did you mean .*'resnet20'"):
        zoo.get_model("resnet_20")
    with pytest.raises(ValueError, match="Unknown model name 'zzz'. `keras_lc.zoo.list_models"):
        zoo.get_model("zzz")


def test_get_model_forwards_arguments_and_presets_fix_theirs():
    model = zoo.get_model("resnet_lc20", expansion=4, seed=3, include_top=False, pooling="avg")
    assert model.get_layer("stage1_block1_conv1").spatial_filters == 64
    assert model.output_shape == (None, 64) and model.name == "resnet_lc20_16x4"
    with pytest.raises(ValueError, match="`resnet_lc20` fixes .*Received: depth=32"):
        zoo.get_model("resnet_lc20", depth=32)
    assert "depth" not in inspect.signature(zoo.resnet_lc20).parameters


def test_register_model_rejects_a_taken_name():
    with pytest.raises(ValueError, match="A model is already registered as 'resnet20'"):
        zoo.register_model(name="resnet20")(lambda **kwargs: None)

    @zoo.register_model(name="registry_test_model")
    def builder(**kwargs):
        return kwargs

    try:
        assert zoo.get_model("registry_test_model", a=1) == {"a": 1}
    finally:
        registry._BUILDERS.pop("registry_test_model")
