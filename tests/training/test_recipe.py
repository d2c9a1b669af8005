"""Recipe: the paper's CIFAR defaults, overrides, validation, schedule, loss and optimizer."""

import json

import keras
import numpy as np
import pytest

from keras_lc.training import Recipe, TorchSGD


def test_defaults_are_the_papers_cifar_recipe():
    r = Recipe()
    assert (r.epochs, r.batch_size, r.optimizer, r.learning_rate, r.momentum, r.nesterov) == (
        75, 256, "sgd", 1e-2, 0.9, True)
    assert (r.weight_decay, r.weight_decay_mode, r.schedule, r.label_smoothing) == (
        1e-2, "coupled", "cosine", 0.1)
    opt = r.make_optimizer(steps_per_epoch=196)
    assert isinstance(opt, TorchSGD) and opt.coupled_weight_decay == 1e-2 and opt.nesterov


def test_every_field_overrides_and_round_trips_through_json():
    changes = dict(epochs=3, batch_size=64, optimizer="adamw", learning_rate=0.5, momentum=0.0,
                   nesterov=False, weight_decay=0.0, weight_decay_mode="decoupled", schedule="constant",
                   warmup_epochs=1, label_smoothing=0.0, augment=False, randaugment=(2, 0.5),
                   mixup_alpha=0.2, cutmix_alpha=1.0, mixed_precision=True, xla=True, seed=7)
    r = Recipe(**changes)
    assert Recipe.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    assert set(changes) == set(r.to_dict())  # the test covers every field
    assert r.replace(epochs=5).epochs == 5 and r.replace(epochs=5).seed == 7


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(epochs=0), "epochs=0"),
        (dict(batch_size=2.5), "batch_size=2.5"),
        (dict(optimizer="adam"), "optimizer='adam'"),
        (dict(learning_rate=-1.0), "learning_rate=-1.0"),
        (dict(momentum=1.5), "momentum=1.5"),
        (dict(label_smoothing=1.0), "label_smoothing=1.0"),
        (dict(warmup_epochs=75), "warmup_epochs=75"),
        (dict(randaugment=(0, 0.5)), r"randaugment=\(0, 0.5\)"),
        (dict(optimizer="adamw"), "weight_decay_mode='coupled'"),
        (dict(nesterov="yes"), "nesterov='yes'"),
    ],
)
def test_bad_fields_are_refused_quoting_the_value(changes, message):
    with pytest.raises(ValueError, match=message):
        Recipe(**changes)
    with pytest.raises(ValueError, match="Unknown recipe fields"):
        Recipe.from_dict({"epoch": 3})


def test_cosine_schedule_and_warmup():
    lr = Recipe(epochs=10).learning_rate_schedule(steps_per_epoch=20)
    values = [float(lr(step)) for step in (0, 50, 100, 150, 200)]
    expected = [0.01 * 0.5 * (1 + np.cos(np.pi * s / 200)) for s in (0, 50, 100, 150, 200)]
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-9)
    warm = Recipe(epochs=10, warmup_epochs=1).learning_rate_schedule(steps_per_epoch=20)
    np.testing.assert_allclose([float(warm(s)) for s in (0, 10, 20)], [0.0, 0.005, 0.01], rtol=1e-5)
    assert Recipe(schedule="constant").learning_rate_schedule(5) == 0.01


def test_loss_is_label_smoothed_cross_entropy_on_logits():
    logits = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3]], "float32")
    y = np.eye(3, dtype="float32")[[0, 2]]
    smoothed = y * 0.9 + 0.1 / 3
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = float(np.mean(-(smoothed * log_p).sum(1)))
    assert float(Recipe().make_loss(from_logits=True)(y, logits)) == pytest.approx(expected, rel=1e-6)
    probs = keras.ops.softmax(logits)
    assert float(Recipe().make_loss(from_logits=False)(y, probs)) == pytest.approx(expected, rel=1e-5)


def test_decoupled_mode_uses_keras_weight_decay():
    opt = Recipe(weight_decay_mode="decoupled").make_optimizer(10)
    assert type(opt) is keras.optimizers.SGD and opt.weight_decay == 0.01
    assert isinstance(Recipe(optimizer="adamw", weight_decay_mode="decoupled").make_optimizer(10),
                      keras.optimizers.AdamW)
    with pytest.raises(ValueError, match="steps_per_epoch=0"):
        Recipe().make_optimizer(0)
