"""`benchmarks/torch_resnet_cifar.py` computes the function keras-lc's `resnet20` computes.

The PyTorch network is the reference side of `benchmarks/peer_pytorch.py` (speed) and
`benchmarks/peer_pytorch_accuracy.py` (top-1 under the paper's recipe): a comparison is only
fair if both build the same network. keras-lc's weights, with BatchNorm statistics randomized
over a wide range, are copied into the PyTorch network layer by layer; with
`padding="symmetric"` (PyTorch's `padding=1` at stride 2) the eval-mode logits then agree, for
option-A and option-B shortcuts, and the trainable parameter counts are equal. With Keras'
"same" padding (the default, the published models') they do not: that padding is the one
difference between the two networks.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from keras_lc import zoo  # noqa: E402
from tests.harness import load_file_module  # noqa: E402


def _network_module():
    return load_file_module("benchmarks/torch_resnet_cifar.py")


def _copy_conv(layer, conv):
    kernel = layer.get_weights()[0]  # (kh, kw, in, out) -> PyTorch's (out, in, kh, kw)
    conv.weight.data = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))


def _copy_bn(layer, bn):
    gamma, beta, mean, variance = layer.get_weights()
    for target, value in ((bn.weight, gamma), (bn.bias, beta), (bn.running_mean, mean), (bn.running_var, variance)):
        target.data = torch.from_numpy(value.copy())
    assert bn.eps == layer.epsilon
    assert bn.momentum == pytest.approx(1 - layer.momentum)


def _randomize_bn(model, rng):
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, c), rng.normal(0, 0.5, c), rng.normal(0, 0.5, c),
                               10.0 ** rng.uniform(-2, 1, c)])


def _logits_of_both(shortcut, padding):
    rng = np.random.default_rng(0)
    keras_model = zoo.resnet20(shortcut=shortcut, padding=padding, classifier_activation=None, seed=3)
    _randomize_bn(keras_model, rng)
    net = _network_module().ResNetCifar(shortcut=shortcut).eval()
    layers = {layer.name: layer for layer in keras_model.layers}
    _copy_conv(layers["stem_conv"], net.stem)
    _copy_bn(layers["stem_bn"], net.bn)
    blocks = iter(net.blocks)
    for stage in (1, 2, 3):
        for b in (1, 2, 3):
            block, prefix = next(blocks), f"stage{stage}_block{b}"
            for i in (1, 2):
                _copy_conv(layers[f"{prefix}_conv{i}"], getattr(block, f"conv{i}"))
                _copy_bn(layers[f"{prefix}_bn{i}"], getattr(block, f"bn{i}"))
            has_projection = f"{prefix}_shortcut_conv" in layers
            assert has_projection == (block.projection is not None)
            if has_projection:
                _copy_conv(layers[f"{prefix}_shortcut_conv"], block.projection[0])
                _copy_bn(layers[f"{prefix}_shortcut_bn"], block.projection[1])
    kernel, bias = layers["predictions"].get_weights()
    net.fc.weight.data, net.fc.bias.data = torch.from_numpy(kernel.T.copy()), torch.from_numpy(bias)

    images = rng.normal(size=(4, 32, 32, 3)).astype("float32")
    expected = np.asarray(keras_model(images, training=False))
    with torch.no_grad():
        got = net(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy()
    trainable = sum(int(np.prod(w.shape)) for w in keras_model.trainable_weights)
    assert sum(p.numel() for p in net.parameters()) == trainable == {"A": 269_722, "B": 272_474}[shortcut]
    return got, expected


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_pytorch_network_gives_keras_lcs_logits_with_symmetric_padding(shortcut):
    got, expected = _logits_of_both(shortcut, "symmetric")
    assert np.abs(expected).max() > 0.1  # the comparison is not of near-zero outputs
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_keras_same_padding_is_not_pytorchs():
    got, expected = _logits_of_both("A", "same")
    assert np.abs(got - expected).max() > 0.05 * np.abs(expected).max()
