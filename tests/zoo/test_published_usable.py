"""Published models as a new user meets them: raw images in, probabilities and class names out,
found by name, built in the form and with the parameter counts their cards state.

Everything here runs on the 100 CIFAR-10 test images shipped in `keras_lc/sample_data`, fed as
the uint8 arrays they are; the figures compared are the ones each manifest (and card) records.
"""

import keras
import numpy as np
import pytest

import keras_lc
from keras_lc import weights, zoo
from keras_lc.data import normalize
from keras_lc.layers import LCConv2D
from keras_lc.samples import cifar10_test_sample
from keras_lc.serving import builder_arguments, builder_call

PUBLISHED = weights.published_weights()


@pytest.fixture(scope="module")
def sample():
    return cifar10_test_sample()


def _builder_call(entry):
    """The model the card's line (`builder_call(entry)`) builds."""
    name, kwargs = builder_arguments(entry)
    assert builder_call(entry) == f"keras_lc.zoo.get_model({name!r}, " + ", ".join(
        f"{k}={v!r}" for k, v in kwargs.items()) + ")"
    return zoo.get_model(name, **kwargs)


def _top1(predictions, labels):
    return float(np.mean(np.argmax(predictions, axis=-1) == labels))


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_builder_call_takes_raw_uint8_images_and_gives_the_cards_accuracy(name, sample):
    entry = PUBLISHED[name]
    model = _builder_call(entry)
    probabilities = np.asarray(model.predict(sample.images, verbose=0))
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)  # softmax by default
    assert _top1(probabilities, sample.labels) == pytest.approx(entry.sample_top1)
    assert entry.sample_top1 > 0.3  # it learned: chance is 0.1
    folded = keras_lc.fold(model)
    assert folded.get_layer("preprocessing").__class__ is keras.layers.Normalization
    assert _top1(folded.predict(sample.images, verbose=0), sample.labels) == pytest.approx(entry.sample_top1_folded)
    # the card's line, the published name and the training form (normalized in, logits out) agree
    trained_form = zoo.load_published(name, classifier_activation=None, include_preprocessing=False)
    logits = trained_form.predict(normalize(sample.images), verbose=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.softmax(logits)), probabilities,
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_builder_call_is_the_published_form_with_the_cards_parameter_counts(name):
    entry = PUBLISHED[name]
    model = _builder_call(entry)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert (model.count_params(), trainable) == (entry.total_params, entry.trainable_params)
    forms = {layer.resolved_implementation for layer in model.layers if isinstance(layer, LCConv2D)}
    assert forms == ({entry.model_kwargs["implementation"]} if "implementation" in entry.model_kwargs
                     else set())
    if forms:  # `implementation=` still overrides the published form
        other = zoo.get_model(entry.model, weights=entry.weights, implementation="two_stage",
                              frozen_spatial=entry.model_kwargs["frozen_spatial"])
        assert {l.resolved_implementation for l in other.layers if isinstance(l, LCConv2D)} == {"two_stage"}


def test_list_models_pretrained_names_every_published_model():
    assert zoo.list_models(pretrained=True) == sorted(PUBLISHED)
    assert zoo.list_models("resnet20*", pretrained=True) == ["resnet20_16_cifar10"]
    assert zoo.list_models("resnet_lc20_16x128", pretrained=True) == [
        "resnet_lc20_16x128_frozen_cifar10", "resnet_lc20_16x128_learnable_cifar10"]
    assert "resnet20_16_cifar10" not in zoo.list_models()  # the registry lists builders
    with pytest.raises(ValueError, match="`pretrained` must be a bool. Received: pretrained='yes'"):
        zoo.list_models(pretrained="yes")


def test_weights_tags_name_one_set_of_weights_per_builder():
    seen = {}
    for entry in PUBLISHED.values():
        assert (entry.model, entry.weights) not in seen, (entry.name, seen.get((entry.model, entry.weights)))
        seen[(entry.model, entry.weights)] = entry.name
    assert seen[("resnet_lc20_16x128", "cifar10")] == "resnet_lc20_16x128_frozen_cifar10"
    assert seen[("resnet_lc20_16x128", "cifar10_learnable")] == "resnet_lc20_16x128_learnable_cifar10"
    message = (r"trained with frozen_spatial=False: pass frozen_spatial=False, or choose weights that fit "
               r"\('cifar10' \(frozen_spatial=True\), 'cifar10_learnable' \(frozen_spatial=False\)\)")
    with pytest.raises(ValueError, match=message):
        zoo.resnet_lc20_16x128(weights="cifar10_learnable")
    with pytest.raises(ValueError, match=r"trained with frozen_spatial=True: pass frozen_spatial=True"):
        zoo.resnet_lc20_16x128(weights="cifar10", frozen_spatial=False)
    with pytest.raises(ValueError, match=r"published for 'resnet20' \('cifar10'.*Received: weights='imagenet'"):
        zoo.resnet20(weights="imagenet")


def test_preprocess_input_and_decode_predictions(sample):
    np.testing.assert_allclose(zoo.preprocess_input(sample.images), normalize(sample.images), rtol=1e-6, atol=1e-6)
    by_name = zoo.preprocess_input(sample.images[:2], weights="resnet20_16_cifar10")
    np.testing.assert_array_equal(by_name, zoo.preprocess_input(sample.images[:2]))
    scores = np.zeros((2, 10), np.float32)
    scores[0, [3, 5, 1]] = [0.7, 0.2, 0.1]
    scores[1, 9] = 1.0
    decoded = zoo.decode_predictions(scores, top=3)
    assert [(i, n) for i, n, _ in decoded[0]] == [(3, "cat"), (5, "dog"), (1, "automobile")]
    assert decoded[0][0][2] == pytest.approx(0.7) and decoded[1][0][:2] == (9, "truck")
    assert list(sample.class_names) == PUBLISHED["resnet20_16_cifar10"].class_names
    with pytest.raises(ValueError, match=r"shape \(samples, 10\)\)\. Received: preds of shape \(10,\)"):
        zoo.decode_predictions(scores[0])
    with pytest.raises(ValueError, match=r"`top` must be an integer in \[1, 10\]. Received: top=0"):
        zoo.decode_predictions(scores, top=0)
    with pytest.raises(ValueError, match=r"No published weights are named or tagged 'imagenet'"):
        zoo.preprocess_input(sample.images, weights="imagenet")


def test_include_preprocessing_values():
    plain = zoo.resnet20(classes=10, input_shape=(32, 32, 3), seed=0)
    assert "preprocessing" not in [layer.name for layer in plain.layers]  # no weights: none
    named = zoo.resnet20(classes=10, input_shape=(32, 32, 3), seed=0, include_preprocessing="cifar10")
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("uint8")
    np.testing.assert_allclose(named.predict(x, verbose=0), plain.predict(normalize(x), verbose=0),
                               rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match=r"`include_preprocessing=True` uses the normalization of "
                                         r"published weights, and `weights=None` names none"):
        zoo.resnet20(include_preprocessing=True)
    with pytest.raises(ValueError, match=r"names no known dataset.*Received: include_preprocessing='cifar11'"):
        zoo.resnet20(include_preprocessing="cifar11")
    with pytest.raises(ValueError, match=r"must be None, True, False or a dataset name. Received: "
                                         r"include_preprocessing=1"):
        zoo.resnet20(include_preprocessing=1)


@pytest.mark.parametrize("dataset", sorted(keras_lc.data.DATASETS))
def test_preprocessing_of_reads_back_what_a_builder_put_in_front(dataset):
    """`preprocessing_of` inverts `include_preprocessing`: each dataset's literal mean and std
    (checked against `keras_lc.data`'s own), the input size and the raw value range."""
    spec = keras_lc.data.datasets.get_spec(dataset)
    size = min(spec.image_size, 64)  # the layer does not depend on the image size
    model = zoo.resnet20(classes=10, input_shape=(size, size, 3), include_preprocessing=dataset)
    prep, rest = zoo.split_preprocessing(model)
    read = zoo.preprocessing_of(prep)
    assert read.input_size == (size, size, 3) and read.value_range == (0, 255)
    np.testing.assert_allclose(read.mean, spec.mean, atol=1e-6)
    np.testing.assert_allclose(read.std, spec.std, atol=1e-6)
    assert zoo.preprocessing_of(prep, value_range=(0, 1)).mean == pytest.approx(
        [255 * m for m in spec.mean], rel=1e-5)
