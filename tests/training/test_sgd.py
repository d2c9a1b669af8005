"""TorchSGD against a NumPy transcription of torch.optim.SGD's update rule."""

import keras
import numpy as np
import pytest

from keras_lc.training import TorchSGD


def torch_sgd_reference(w, grads, lrs, momentum, nesterov, weight_decay):
    """torch.optim.SGD.step (dampening=0, maximize=False), float64, one lr per step."""
    w = np.array(w, dtype=np.float64)
    buf = None
    for g, lr in zip(grads, lrs):
        d_p = g + weight_decay * w
        if momentum != 0:
            buf = d_p.copy() if buf is None else momentum * buf + d_p
            d_p = d_p + momentum * buf if nesterov else buf
        w = w - lr * d_p
    return w


class _StepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, values):
        self.values = values

    def __call__(self, step):
        return keras.ops.take(keras.ops.convert_to_tensor(self.values), keras.ops.cast(step, "int32"))


@pytest.mark.parametrize("nesterov", [True, False])
def test_steps_match_torch_sgd_with_coupled_weight_decay(nesterov):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(4, 3)).astype("float32")
    grads = [rng.normal(size=(4, 3)).astype("float32") for _ in range(6)]
    lrs = [0.1, 0.1, 0.05, 0.02, 0.3, 0.01]  # a changing learning rate, as under cosine
    var = keras.Variable(w0)
    opt = TorchSGD(learning_rate=_StepSchedule(lrs), momentum=0.9, nesterov=nesterov, weight_decay=0.05)
    for g in grads:
        opt.apply_gradients([(g, var)])
    expected = torch_sgd_reference(w0, grads, lrs, 0.9, nesterov, 0.05)
    np.testing.assert_allclose(var.numpy(), expected, rtol=1e-5, atol=1e-6)
    # One step by hand: w1 = w0 - lr * (g + wd w0 + 0.9 (g + wd w0)) with Nesterov.
    one = TorchSGD(learning_rate=0.1, momentum=0.9, nesterov=True, weight_decay=0.05)
    v = keras.Variable(w0)
    one.apply_gradients([(grads[0], v)])
    d = grads[0].astype(np.float64) + 0.05 * w0
    np.testing.assert_allclose(v.numpy(), w0 - 0.1 * (d + 0.9 * d), rtol=1e-6)


def test_keras_decoupled_weight_decay_is_not_the_papers_rule():
    """Why TorchSGD exists: Keras' SGD(weight_decay=...) decays ~10x less at momentum 0.9."""
    w0 = np.ones(3, "float32")
    zero = np.zeros(3, "float32")
    results = {}
    for name, opt in {
        "torch": TorchSGD(learning_rate=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
        "keras": keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    }.items():
        var = keras.Variable(w0)
        for _ in range(50):
            opt.apply_gradients([(zero, var)])
        results[name] = 1 - float(var.numpy()[0])
    expected = 1 - torch_sgd_reference(w0, [zero] * 50, [0.1] * 50, 0.9, True, 0.01)[0]
    assert results["torch"] == pytest.approx(expected, rel=1e-4)
    assert results["torch"] > 5 * results["keras"]  # decay after 50 steps: 0.36 vs 0.049


def test_exclusion_config_round_trip_and_bad_input():
    w, b = keras.Variable(np.ones(2, "float32"), name="kernel"), keras.Variable(np.ones(2, "float32"), name="bias")
    opt = TorchSGD(learning_rate=0.1, momentum=0.0, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_names=["bias"])
    zero = np.zeros(2, "float32")
    opt.apply_gradients([(zero, w), (zero, b)])
    np.testing.assert_allclose(w.numpy(), 0.95)
    np.testing.assert_allclose(b.numpy(), 1.0)
    clone = TorchSGD.from_config(opt.get_config())
    assert (clone.coupled_weight_decay, clone.momentum, clone.nesterov) == (0.5, 0.0, True)
    assert keras.optimizers.deserialize(keras.optimizers.serialize(opt)).coupled_weight_decay == 0.5
    with pytest.raises(ValueError, match="weight_decay=-1"):
        TorchSGD(weight_decay=-1)


def test_defaults_are_the_papers_and_weight_decay_is_checked():
    opt = TorchSGD()
    config = opt.get_config()
    assert config["learning_rate"] == pytest.approx(0.01)
    assert (config["momentum"], config["nesterov"], config["weight_decay"]) == (0.9, True, 0.0)
    assert opt.coupled_weight_decay == 0.0
    # Zero (int or float) is a valid decay: no decay at all.
    w = keras.Variable(np.ones(2, "float32"))
    opt = TorchSGD(learning_rate=0.5, momentum=0.0, weight_decay=0)
    opt.apply_gradients([(np.float32([0.2, -0.4]), w)])
    np.testing.assert_allclose(w.numpy(), [0.9, 1.2], rtol=1e-6)
    for bad in (True, "0.1", None, -0.5):
        with pytest.raises(ValueError, match="non-negative float"):
            TorchSGD(weight_decay=bad)
