"""keras.applications-style arguments: every bad one gets its error; head, input, weights hook, convs."""

import keras
import numpy as np
import pytest

import keras_lc.weights
from keras_lc import LCConv2D, zoo
from keras_lc.data import sha256_of
from keras_lc.initializers import torch_uniform
from keras_lc.initializers import layer_seed
from keras_lc.zoo import common

BAD_ARGUMENTS = [
    (
        zoo.resnet20,
        {"include_top": "yes"},
        "`include_top` must be a bool. Received: include_top='yes'",
    ),
    (
        zoo.resnet20,
        {"weights": "imagenet"},
        r"published for 'resnet20' with frozen_spatial=False \(\['cifar10'\]\).*Received: weights='imagenet'",
    ),
    (
        zoo.resnet20,
        {"weights": "/no/such/file.weights.h5"},
        "Received: weights='/no/such/file.weights.h5'",
    ),
    (
        zoo.resnet20,
        {"weights": 3},
        "The `weights` argument should be either `None`.*Received: weights=3",
    ),
    (
        zoo.resnet20,
        {"pooling": "mean"},
        r"`pooling` must be one of \(None, 'avg', 'max'\). Received: pooling='mean'",
    ),
    (zoo.resnet20, {"classes": 0}, "`classes` must be a positive integer. Received: classes=0"),
    (
        zoo.resnet20,
        {"classifier_activation": "nope"},
        "`classifier_activation` must be None, an activation.*Received: classifier_activation='nope'",
    ),
    (
        zoo.resnet20,
        {"input_shape": (32, 32)},
        r"`input_shape` must be a tuple of three integers. Received: input_shape=\(32, 32\)",
    ),
    (
        zoo.resnet20,
        {"input_shape": (32, 32, None)},
        "The channel dimension of `input_shape` must be defined",
    ),
    (
        zoo.resnet20,
        {"input_shape": (2, 32, 3)},
        r"Input size must be at least 4x4; Received: input_shape=\(2, 32, 3\)",
    ),
    (zoo.resnet50, {"input_shape": (16, 16, 3)}, "Input size must be at least 32x32"),
    (
        zoo.resnet20,
        {"input_shape": (None, None, 3)},
        "If `include_top` is True, you should specify a static `input_shape`",
    ),
    (
        zoo.resnet20,
        {"input_tensor": np.zeros((1, 32, 32, 3))},
        "`input_tensor` must be a Keras tensor.*Received: input_tensor of type ndarray",
    ),
    (zoo.resnet20, {"name": ""}, "`name` must be a non-empty string. Received: name=''"),
    (
        zoo.resnet20,
        {"frozen_spatial": 1},
        "`frozen_spatial` must be a bool. Received: frozen_spatial=1",
    ),
    (zoo.resnet20, {"seed": -1}, "`seed` must be an integer in \\[0, 2\\*\\*63 - 1\\]. Received: seed=-1"),
    (zoo.resnet_cifar, {"depth": 21}, r"`depth` must be 6n \+ 2 .*Received: depth=21"),
    (zoo.resnet_cifar, {"width": 0}, "`width` must be a positive integer. Received: width=0"),
    (
        zoo.resnet_cifar,
        {"kernel_size": 0},
        "`kernel_size` must be a positive integer. Received: kernel_size=0",
    ),
    (
        zoo.resnet_cifar,
        {"shortcut": "D"},
        r"`shortcut` must be one of \('A', 'B'\). Received: shortcut='D'",
    ),
    (
        zoo.resnet_lc,
        {"expansion": 0},
        "`expansion` must be a positive integer. Received: expansion=0",
    ),
    (
        zoo.resnet_lc,
        {"implementation": "fast"},
        "`implementation` must be one of .*Received: implementation='fast'",
    ),
    (
        zoo.resnet_lc,
        {"shared_spatial": True, "frozen_spatial": False},
        "needs frozen_spatial=True. Received: frozen_spatial=False",
    ),
    (
        zoo.resnet_lc,
        {"shared_spatial": "yes"},
        "`shared_spatial` must be a bool. Received: shared_spatial='yes'",
    ),
    (zoo.resnet18, {"low_res": 1}, "`low_res` must be a bool. Received: low_res=1"),
    (zoo.wide_resnet, {"depth": 27}, r"`depth` must be 6n \+ 4 .*Received: depth=27"),
    (
        zoo.wide_resnet,
        {"dropout_rate": 1.5},
        r"`dropout_rate` must be in \[0, 1\). Received: dropout_rate=1.5",
    ),
    (zoo.mobilenet_v2, {"alpha": 0}, "`alpha` must be a positive number. Received: alpha=0"),
    (zoo.mobilenet_v2, {"low_res": "no"}, "`low_res` must be a bool. Received: low_res='no'"),
]


@pytest.mark.parametrize("builder,kwargs,message", BAD_ARGUMENTS)
def test_bad_argument_gets_its_error(builder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        builder(**kwargs)


def test_channels_first_is_refused():
    keras.config.set_image_data_format("channels_first")
    try:
        with pytest.raises(ValueError, match="channels_last models. Received: .*'channels_first'"):
            zoo.resnet20()
    finally:
        keras.config.set_image_data_format("channels_last")


@pytest.fixture(scope="module")
def resnet8_weights(tmp_path_factory):
    model = zoo.resnet_cifar(depth=8, width=4, seed=1)
    path = tmp_path_factory.mktemp("weights") / "resnet8.weights.h5"
    model.save_weights(path)
    return model, path


def test_weights_from_a_local_file(resnet8_weights, tmp_path, cifar_test_images):
    reference, path = resnet8_weights
    x, _ = cifar_test_images
    model = zoo.resnet_cifar(depth=8, width=4, seed=2, weights=str(path))
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), reference.get_weights()))
    np.testing.assert_array_equal(model(x[:8], training=False), reference(x[:8], training=False))
    archive = tmp_path / "resnet8.keras"  # a whole-model file works too
    reference.save(archive)
    from_archive = zoo.resnet_cifar(depth=8, width=4, seed=3, weights=archive)
    assert all(np.array_equal(a, b) for a, b in zip(from_archive.get_weights(), reference.get_weights()))
    with pytest.raises(ValueError, match="Only `None` and `softmax` activations are allowed"):
        zoo.resnet_cifar(depth=8, width=4, weights=str(path), classifier_activation="relu")
    text = tmp_path / "weights.txt"
    text.write_text("not weights")
    with pytest.raises(ValueError, match="existing .weights.h5 or .keras file"):
        zoo.resnet_cifar(depth=8, width=4, weights=str(text))


def test_pretrained_weights_hook(resnet8_weights, monkeypatch, tmp_path):
    """A published entry for the architecture is fetched (sha256-checked) and loaded."""
    reference, path = resnet8_weights
    cached = tmp_path / "weights" / "resnet8_4_demo.weights.h5"
    cached.parent.mkdir()
    cached.write_bytes(path.read_bytes())
    entry = keras_lc.weights.PretrainedWeights(
        name="resnet8_4_demo", model="resnet8_4", model_kwargs={"depth": 8, "width": 4},
        weights="demo", dataset="cifar10", classes=10, file_name=cached.name,
        sha256=sha256_of(cached), top1=0.1, top1_folded=0.1, epochs=0, recipe="-", command="-",
        trainable_params=0, total_params=0,
    )
    monkeypatch.setattr(keras_lc.weights, "published_weights", lambda requested=None: {entry.name: entry})
    monkeypatch.setenv("KERAS_LC_CACHE", str(tmp_path))
    model = zoo.resnet_cifar(depth=8, width=4, seed=5, weights="demo")
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), reference.get_weights()))
    message = r"If using `weights='demo'` with `include_top=True`, `classes` should be 10.  Received classes=100"
    with pytest.raises(ValueError, match=message):
        zoo.resnet_cifar(depth=8, width=4, weights="demo", classes=100)
    with pytest.raises(ValueError, match=r"published for 'resnet8_4' with frozen_spatial=False \(\['demo'\]\)"):
        zoo.resnet_cifar(depth=8, width=4, weights="other")
    with pytest.raises(ValueError, match=r"published for 'resnet8'.* \(none published\)"):
        zoo.resnet_cifar(depth=8, width=16, weights="demo")  # another architecture
    cached.write_bytes(b"corrupted")  # the registry's sha256 check guards the hook
    monkeypatch.delenv("KERAS_LC_WEIGHTS_URL", raising=False)
    with pytest.raises(ValueError, match="'resnet8_4_demo' are not shipped with this installation"):
        zoo.resnet_cifar(depth=8, width=4, weights="demo")
    assert not cached.exists()


def test_published_weights_pick_variant_and_seed(monkeypatch, tmp_path):
    """Frozen and learnable weights of one architecture are told apart by
    `frozen_spatial`, and `seed=None` adopts the published seed (the frozen
    kernels are defined by it)."""
    entries = {}
    references = {}
    for frozen, seed in ((True, 11), (False, 12)):
        reference = zoo.resnet_lc(depth=8, width=4, expansion=2, frozen_spatial=frozen, seed=seed)
        path = tmp_path / f"lc8_{frozen}.weights.h5"
        reference.save_weights(path)
        references[frozen] = reference
        entry = keras_lc.weights.PretrainedWeights(
            name=f"lc8_{frozen}", model="resnet_lc8_4x2",
            model_kwargs={"depth": 8, "width": 4, "expansion": 2, "frozen_spatial": frozen, "seed": seed},
            weights="demo", dataset="cifar10", classes=10, file_name=str(path),
            sha256=sha256_of(path), top1=0.1, top1_folded=0.1, epochs=0, recipe="-", command="-",
            trainable_params=0, total_params=0,
        )
        entries[entry.name] = entry
    monkeypatch.setattr(keras_lc.weights, "published_weights", lambda requested=None: dict(entries))
    monkeypatch.setattr(keras_lc.weights, "fetch", lambda entry, include_top=True: entry.file_name)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    for frozen in (True, False):
        model = zoo.resnet_lc(depth=8, width=4, expansion=2, frozen_spatial=frozen, weights="demo")
        layer = model.get_layer("stem_conv")
        assert layer.seed == references[frozen].get_layer("stem_conv").seed
        assert layer.spatial_trainable is not frozen
        np.testing.assert_array_equal(model(x, training=False), references[frozen](x, training=False))
    with pytest.raises(ValueError, match=r"trained from seed=11.*pass seed=None or seed=11. Received: seed=3"):
        zoo.resnet_lc(depth=8, width=4, expansion=2, seed=3, weights="demo")


def test_head_pooling_and_input_tensor():
    no_top = zoo.resnet_cifar(depth=8, width=4, include_top=False, seed=0)
    assert no_top.input_shape == (None, None, None, 3) and no_top.output_shape == (None, None, None, 16)
    avg = zoo.resnet_cifar(depth=8, width=4, include_top=False, pooling="avg", seed=0)
    top = zoo.resnet_cifar(depth=8, width=4, classifier_activation=None, seed=0)
    assert avg.output_shape == (None, 16) and avg.layers[-1].name == "avg_pool"
    assert zoo.resnet_cifar(depth=8, width=4, include_top=False, pooling="max").layers[-1].name == "max_pool"
    assert top.layers[-1].name == "predictions" and top.layers[-1].activation is keras.activations.linear
    x = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype("float32")
    dense = top.get_layer("predictions")
    np.testing.assert_allclose(top(x), avg(x) @ dense.kernel + dense.bias, rtol=1e-5, atol=1e-6)
    # input_tensor: the model starts at the tensor's source input.
    source = keras.Input((32, 32, 3))
    scaled = keras.layers.Rescaling(2.0)(source)
    model = zoo.resnet_cifar(depth=8, width=4, input_tensor=scaled, seed=0)
    assert model.inputs[0] is source
    np.testing.assert_allclose(model(x), zoo.resnet_cifar(depth=8, width=4, seed=0)(2 * x), rtol=1e-5)


def test_seed_defines_the_model_and_layer_seeds_follow_names():
    a, b = zoo.resnet20(seed=7), zoo.resnet20(seed=7)
    assert all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))
    c = zoo.resnet20(seed=8)
    assert not np.array_equal(a.get_layer("stem_conv").kernel, c.get_layer("stem_conv").kernel)
    # A layer's kernel depends on the model seed and its name only, not on the depth.
    deeper = zoo.resnet32(seed=7)
    name = "stage3_block1_conv2"
    np.testing.assert_array_equal(a.get_layer(name).kernel, deeper.get_layer(name).kernel)
    expected = torch_uniform((3, 3, 64, 64), layer_seed(7, name)).astype("float32")
    np.testing.assert_array_equal(a.get_layer(name).kernel, expected)
    # Frozen and learnable variants of one seed start from the same function.
    frozen = zoo.resnet20(seed=7, frozen_spatial=True)
    assert all(np.array_equal(u, v) for u, v in zip(a.get_weights(), frozen.get_weights()))


def test_conv_factory():
    frozen = common.ConvOptions.create(seed=3, frozen_spatial=True)
    learnable = common.ConvOptions.create(seed=3)
    lc = common.ConvOptions.create(seed=3, frozen_spatial=False, lc=True, expansion=4)
    x = np.zeros((1, 8, 8, 6), "float32")
    spatial = common.conv(5, 3, 2, "c", frozen)
    spatial(x)
    assert isinstance(spatial, keras.layers.Conv2D) and not spatial.trainable and not spatial.use_bias
    assert spatial.strides == (2, 2) and spatial.padding == "same"
    expected = torch_uniform((3, 3, 6, 5), layer_seed(3, "c")).astype("float32")
    np.testing.assert_array_equal(spatial.kernel, expected)
    pointwise = common.conv(5, 1, 1, "p", frozen)
    assert pointwise.trainable and common.conv(5, 3, 1, "c", learnable).trainable
    block = common.conv(5, 3, 1, "l", lc)
    assert isinstance(block, LCConv2D) and block.spatial_trainable and block.expansion == 4
    assert block.seed == layer_seed(3, "l")
    depthwise = common.depthwise_conv(3, 1, "d", frozen)
    depthwise(np.zeros((1, 8, 8, 200), "float32"))
    # PyTorch's depthwise fan-in is k*k (weight (C, 1, k, k)): bound 1/3, whatever C.
    bound = np.abs(np.asarray(depthwise.kernel)).max()
    assert not depthwise.trainable and 0.9 / 3 < bound <= 1 / 3
    bn = common.batch_norm("b")
    assert (bn.momentum, bn.epsilon) == (0.9, 1e-5)


def test_load_published_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"No published model is named 'resnet20_cifar10'; did you mean one of "
                                         r"\['resnet20_16_cifar10'.*Published: \["):
        zoo.load_published("resnet20_cifar10")
