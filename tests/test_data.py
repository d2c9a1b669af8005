"""keras_lc.data: datasets from image folders and tfds, the paper's pipelines, constants."""

import dataclasses
import io
import re
import socket
import time

import numpy as np
import pytest
import tensorflow as tf

from keras_lc.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DATASETS,
    DataError,
    LoadedDataset,
    check_images,
    get_spec,
    load_dataset,
    load_image_folder,
    make_pipeline,
    normalize,
)


def _batches(pipeline):
    images, labels = zip(*((x.numpy(), y.numpy()) for x, y in pipeline))
    return np.concatenate(images), np.concatenate(labels)


def _write_folder(root, split, images, suffix=".png"):
    """One image per class: class_{i}/0.png (PNG is lossless, so pixels compare exactly)."""
    for label, image in enumerate(images):
        folder = root / split / f"class_{label:02d}"
        folder.mkdir(parents=True)
        (folder / f"0{suffix}").write_bytes(tf.io.encode_png(image).numpy())


@pytest.fixture(scope="module")
def cifar_test_small(cifar_archive):
    """5 test images per class through load_dataset and through load_image_folder."""
    return load_dataset("cifar10", "test", cifar_archive, per_class=5), load_image_folder(
        cifar_archive, "test", per_class=5
    )


def test_cifar10_constants_match_the_whole_training_split(cifar_archive):
    """Measured over all 50,000 training images of the JPEG copy: (0.4868, 0.4822, 0.4414) and
    std (0.2451, 0.2425, 0.2605). The JPEG re-encoding (chroma subsampling) moves the red and blue
    means by ~0.005 from the original binary release's constants, hence atol 6e-3; CIFAR-100's
    constants (red mean 0.5071, 0.020 off) or swapped channels fail by far."""
    images, _, _ = load_image_folder(cifar_archive, "train")
    assert images.shape == (50000, 32, 32, 3)
    pixels = images.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(pixels.mean(0), CIFAR10_MEAN, atol=6e-3)
    np.testing.assert_allclose(pixels.std(0), CIFAR10_STD, atol=3e-3)
    assert DATASETS["cifar10"].mean == CIFAR10_MEAN and DATASETS["cifar10"].std == CIFAR10_STD


def test_decode_images_is_tensorflows_decode_of_each_file_in_order(cifar_archive):
    """The parallel tf.data decode gives, file by file and in the order given, what one eager
    `tf.io.decode_image` of that file gives (the pixels the published models were trained on)."""
    from keras_lc.data import decode_images, find_image_folder, list_image_files

    paths, _, _ = list_image_files(find_image_folder(cifar_archive, "test"), 30)
    paths = paths[::-1][:250]  # not the listing's order
    decoded = decode_images(paths)
    assert decoded.shape == (250, 32, 32, 3) and decoded.dtype == np.uint8
    for path, image in zip(paths, decoded):
        expected = tf.io.decode_image(tf.io.read_file(str(path)), channels=3, expand_animations=False)
        np.testing.assert_array_equal(image, expected.numpy(), err_msg=str(path))


def test_dataset_constants_are_the_published_ones():
    """Literal values (torchvision / the paper's code), not values computed by the package."""
    expected = {
        "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 10, 32),
        "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 100, 32),
        "svhn_cropped": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), 10, 32),
        "fashion_mnist": ((0.2860,) * 3, (0.3530,) * 3, 10, 32),
        "imagenet2012": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1000, 224),
    }
    assert {name: (spec.mean, spec.std, spec.num_classes, spec.image_size)
            for name, spec in DATASETS.items()} == expected


def test_the_table_covers_the_papers_datasets():
    assert set(DATASETS) == {"cifar10", "cifar100", "svhn_cropped", "fashion_mnist", "imagenet2012"}
    assert [DATASETS[n].augmentation for n in ("cifar10", "cifar100", "svhn_cropped", "fashion_mnist")] == [
        "cifar", "cifar", "none", "none"]
    assert DATASETS["imagenet2012"].num_classes == 1000 and DATASETS["cifar100"].num_classes == 100
    assert all(len(spec.mean) == 3 and len(spec.std) == 3 for spec in DATASETS.values())


def test_image_folder_archive_loads_like_load_image_folder(cifar_test_small):
    data, (images, labels, class_names) = cifar_test_small
    assert data.num_examples == 50 and data.source.startswith("archive:cifar10-jpeg-")
    assert data.class_names == class_names == sorted(class_names)
    got = list(data.dataset.as_numpy_iterator())
    np.testing.assert_array_equal(np.stack([x for x, _ in got]), images)
    np.testing.assert_array_equal([y for _, y in got], labels)


def test_evaluation_pipeline_is_exactly_normalized_unmodified_images(cifar_test_small):
    data, (images, labels, _) = cifar_test_small
    x, y = _batches(make_pipeline(data, training=False, batch_size=16))
    assert x.shape == (50, 32, 32, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x, normalize(images), rtol=0, atol=2e-6)
    np.testing.assert_array_equal(y, np.eye(10)[labels])


def test_cifar_training_augmentation_is_pad4_crop_and_flip(cifar_test_small):
    data, (images, _, _) = cifar_test_small
    x, _ = _batches(make_pipeline(data, training=True, batch_size=16, seed=0))
    # Undo the normalization; the zero padding becomes the value 0 exactly.
    pixels = np.rint(x * np.float32(CIFAR10_STD) * 255 + np.float32(CIFAR10_MEAN) * 255)
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
    candidates = {}  # every pad-4 crop of every original, and its mirror
    for i in range(len(images)):
        for dy in range(9):
            for dx in range(9):
                crop = padded[i, dy:dy + 32, dx:dx + 32]
                candidates.setdefault(crop.tobytes(), (i, dy, dx, False))
                candidates.setdefault(crop[:, ::-1].tobytes(), (i, dy, dx, True))
    offsets, flips = set(), []
    for image in pixels.astype(np.uint8):
        match = candidates.get(image.tobytes())
        assert match, "an augmented image is not a pad-4 crop (or its mirror) of any original"
        offsets.add(match[1:3])
        flips.append(match[3])
    assert len(offsets) >= 10  # 81 possible offsets, 50 draws
    assert 0.2 <= np.mean(flips) <= 0.8


def test_svhn_is_not_augmented_and_fashion_mnist_is_upscaled_to_rgb(tmp_path):
    rng = np.random.default_rng(0)
    svhn = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    _write_folder(tmp_path / "svhn", "train", svhn)
    data = load_dataset("svhn_cropped", "train", tmp_path / "svhn")
    x, y = _batches(make_pipeline(data, training=True, batch_size=4, seed=0))
    spec = get_spec("svhn_cropped")
    np.testing.assert_allclose(x[np.argsort(y.argmax(1))], normalize(svhn, spec.mean, spec.std), atol=2e-6)

    fmnist = rng.integers(0, 256, (10, 28, 28, 1), dtype=np.uint8)
    _write_folder(tmp_path / "fmnist", "test", fmnist)
    data = load_dataset("fashion_mnist", "test", tmp_path / "fmnist")
    x, y = _batches(make_pipeline(data, training=False, batch_size=4))
    assert x.shape == (10, 32, 32, 3)
    np.testing.assert_array_equal(x[..., 0], x[..., 2])
    spec = get_spec("fashion_mnist")
    expected = tf.image.resize(fmnist.astype(np.float32), (32, 32)).numpy() / 255.0
    np.testing.assert_allclose(x[..., :1], (expected - spec.mean[0]) / spec.std[0], atol=1e-5)


def test_missing_tfds_dataset_fails_fast_without_network(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    empty = tmp_path / "tfds"
    empty.mkdir()
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="not available offline") as error:
        load_dataset("cifar10", "train", empty)
    assert time.perf_counter() - start < 5
    assert str(empty / "cifar10") in str(error.value) and "tfds build cifar10" in str(error.value)
    with pytest.raises(FileNotFoundError, match="manual_dir"):
        load_dataset("imagenet2012", "test", empty)
    with pytest.raises(FileNotFoundError, match="Data directory not found: '.*nowhere'"):
        load_dataset("cifar10", "train", tmp_path / "nowhere")


def test_prepared_tfds_dataset_goes_through_tfds_load(monkeypatch):
    import tensorflow_datasets as tfds

    # No prepared dataset on this machine and no network: tfds' own mock
    # supplies the examples; the offline check is told the data is there.
    monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)
    with tfds.testing.mock_data(num_examples=12):
        data = load_dataset("fashion_mnist", "train")
        x, y = next(iter(make_pipeline(data, training=True, batch_size=6)))
    assert data.source.startswith("tfds:") and data.class_names[0] == "T-shirt/top"
    assert x.shape == (6, 32, 32, 3) and y.shape == (6, 10)
    np.testing.assert_array_equal(y.numpy().sum(1), 1.0)


def test_imagenet_pipeline_crops_randaugments_and_mixes(cifar_test_small):
    data, (images, _, _) = cifar_test_small
    spec = dataclasses.replace(get_spec("imagenet2012"), num_classes=10)
    imagenet_like = LoadedDataset(spec, "train", data.num_examples, data.class_names, "test",
                                  lambda: data.dataset)
    train = make_pipeline(imagenet_like, training=True, batch_size=10, image_size=24, seed=0,
                          randaugment=(2, 0.5), mixup_alpha=0.2, cutmix_alpha=1.0)
    x, y = _batches(train)
    assert x.shape == (50, 24, 24, 3) and np.isfinite(x).all()
    np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-5)
    assert (y.max(1) < 0.999).any(), "MixUp/CutMix never mixed two labels"
    x, _ = _batches(make_pipeline(imagenet_like, training=False, batch_size=10, image_size=24,
                                  crop_fraction=0.75))
    # Evaluation: shorter side to 24 / 0.75 = 32 (no resize here), central 24x24 crop.
    mean, std = np.float32(spec.mean) * 255, np.float32(spec.std) * 255
    np.testing.assert_allclose(x, (images[:, 4:28, 4:28].astype(np.float32) - mean) / std, atol=1e-4)


def test_resumed_epochs_see_the_uninterrupted_order(cifar_test_small):
    data, _ = cifar_test_small

    def labels(epochs):
        pipeline = make_pipeline(data, training=True, batch_size=8, augment=False, seed=3, epochs=epochs)
        return np.concatenate([y.numpy().argmax(1) for _, y in pipeline])

    full = labels(range(0, 3)).reshape(3, 50)
    assert not np.array_equal(full[0], full[1])  # reshuffled every epoch
    np.testing.assert_array_equal(labels(range(2, 3)), full[2])  # epoch 2 alone: same order


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda d: load_dataset("mnist", "train", d), "Unknown dataset 'mnist'"),
        (lambda d: make_pipeline(load_dataset("cifar10", "test", d, per_class=1), False, 0),
         "batch_size=0"),
        (lambda d: make_pipeline(load_dataset("cifar10", "test", d, per_class=1), True, 8, mixup_alpha=0.2),
         "mixup_alpha=0.2"),
        (lambda d: load_dataset("cifar100", "test", d, per_class=1), "has 10 class folders but cifar100"),
    ],
)
def test_bad_input_gets_a_clear_error(cifar_archive, call, message):
    with pytest.raises(ValueError, match=message):
        call(cifar_archive)


def test_augmented_epochs_are_a_function_of_seed_epoch_and_example(cifar_test_small):
    """Crops and flips are stateless: epoch 2 alone equals epoch 2 of a 3-epoch pipeline."""
    data, _ = cifar_test_small

    def images(epochs, seed=3):
        pipeline = make_pipeline(data, training=True, batch_size=8, seed=seed, epochs=epochs)
        return np.concatenate([x.numpy() for x, _ in pipeline])

    full = images(range(0, 3)).reshape(3, 50, 32, 32, 3)
    np.testing.assert_array_equal(images(range(2, 3)), full[2])
    np.testing.assert_array_equal(images(range(0, 3)).reshape(full.shape), full)  # a second process would too
    assert not np.array_equal(images(range(2, 3), seed=4), full[2])  # another seed, other batches


def test_one_example_gets_other_crops_in_other_epochs(cifar_test_small):
    from keras_lc.data.pipeline import _cifar_augment, augmentation_seed

    _, (images, _, _) = cifar_test_small
    image = tf.constant(images[0])
    outputs = [_cifar_augment(image, augmentation_seed(0, epoch, 0)).numpy() for epoch in range(60)]
    # 9 x 9 offsets x 2 flips = 162 equally likely outcomes: 60 draws give > 40 distinct ones.
    assert len({o.tobytes() for o in outputs}) > 40
    keys = {tuple(augmentation_seed(0, e, i).numpy().tolist()) for e in range(3) for i in range(100)}
    assert len(keys) == 300  # one key per (epoch, example)


# ------------------------------------------------------- broken images fail at load time
def _jpeg(width, height, seed=0):
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _cifar_like(root, per_class=2):
    """root/train/class_k/i.jpg: 10 classes of valid 32x32 JPEGs."""
    for label in range(10):
        folder = root / "train" / f"class_{label}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            (folder / f"{i}.jpg").write_bytes(_jpeg(32, 32, seed=10 * label + i))
    return root


@pytest.mark.parametrize(
    "kind, content, message",
    [
        ("garbage", lambda: bytes(range(256)) * 4, r"cannot be read \(.*\); expected a JPEG or PNG image"),
        ("truncated", lambda: _jpeg(32, 32)[:700], r"is truncated \(no JPEG end marker\)"),
        ("wrong_size", lambda: _jpeg(33, 32), r"is 33x32 pixels but cifar10 images are 32x32"),
    ],
)
def test_broken_image_fails_at_load_naming_the_file(tmp_path, monkeypatch, kind, content, message):
    monkeypatch.setenv("KERAS_LC_CACHE", str(tmp_path / "cache"))
    root = _cifar_like(tmp_path / "data")
    bad = root / "train" / "class_7" / "1.jpg"
    bad.write_bytes(content())
    with pytest.raises(DataError, match=rf"^Image '{re.escape(str(bad))}' {message}") as error:
        load_dataset("cifar10", "train", root)
    assert "\n" not in str(error.value)
    with pytest.raises(DataError, match=re.escape(f"Image '{bad}'")):
        load_image_folder(root, "train")
    bad.write_bytes(_jpeg(32, 32))  # repaired: loads, 20 images
    assert load_dataset("cifar10", "train", root).num_examples == 20
    assert load_image_folder(root, "train")[0].shape == (20, 32, 32, 3)


def test_image_folder_of_mixed_sizes_names_both_files(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_LC_CACHE", str(tmp_path / "cache"))
    root = _cifar_like(tmp_path / "data", per_class=1)
    bad = root / "train" / "class_3" / "0.jpg"
    bad.write_bytes(_jpeg(40, 24))
    first = root / "train" / "class_0" / "0.jpg"
    with pytest.raises(DataError, match=re.escape(f"Image '{bad}' is 40x24 pixels but '{first}' is 32x32")):
        load_image_folder(root, "train")


def test_jpeg_that_only_tensorflow_rejects_is_named_by_load_image_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_LC_CACHE", str(tmp_path / "cache"))
    root = _cifar_like(tmp_path / "data", per_class=1)
    bad = root / "train" / "class_5" / "0.jpg"
    data = bytearray(_jpeg(32, 32))
    table = data.find(b"\xff\xc4")  # the first Huffman table: header and end marker stay intact
    data[table + 5:table + 21] = b"\xff" * 16
    bad.write_bytes(bytes(data))
    assert check_images([str(bad)], (32, 32)) == (32, 32)  # the header check passes it
    pattern = rf"^Image '{re.escape(str(bad))}' cannot be decoded \(.*JPEG"
    with pytest.raises(DataError, match=pattern) as error:
        load_image_folder(root, "train")
    assert "\n" not in str(error.value) and "{{" not in str(error.value)


def test_a_missing_split_folder_names_a_few_places_and_counts_the_rest(tmp_path):
    """The message quotes the folder given and the first places searched, not every subfolder."""
    from keras_lc.data import find_image_folder

    for name in ("a", "b", "c", "d", "e", "f"):
        (tmp_path / name).mkdir()
    with pytest.raises(FileNotFoundError) as raised:
        find_image_folder(tmp_path, "train")
    message = str(raised.value)
    assert f"No 'train' folder found in '{tmp_path}'" in message and str(tmp_path / "c" / "train") in message
    assert str(tmp_path / "d" / "train") not in message and "and 3 more subfolders" in message
    assert "\n" not in message
