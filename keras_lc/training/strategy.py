"""Choosing a `tf.distribute` strategy, and synchronized BatchNorm for it.

On the JAX and PyTorch backends (or without TensorFlow) training runs on one
device: `auto` and `default` give a `SingleDevice`, and the TensorFlow
strategies say so in one line.

- `default`: one device (TensorFlow's default strategy).
- `mirrored`: `MirroredStrategy` over every visible GPU (or, with no GPU,
  every visible logical CPU device); the global batch is split across the
  replicas and gradients are all-reduced.
- `multiworker`: `MultiWorkerMirroredStrategy`; the cluster comes from the
  `TF_CONFIG` environment variable (same command on every worker).
- `data_parallel` (JAX backend): Keras' `keras.distribution.DataParallel`
  over every device (`KerasDataParallel`).
- `auto`: `multiworker` when `TF_CONFIG` names more than one worker, else
  `mirrored` when more than one GPU is visible, else `default`; on JAX,
  `data_parallel` when it sees several devices, else `default`.

BatchNorm under several replicas: Keras' `BatchNormalization` normalizes with
the statistics of each replica's share of the batch unless
`synchronized=True`, in which case mean and variance are all-reduced over the
global batch. The zoo builds ordinary BatchNorm layers; `synchronize_batchnorm`
switches the flag on every BatchNorm layer of a built model (including those
nested inside other layers, e.g. `LCConv2D(intermediate="bn")`) before
training, so training and the saved moving statistics are those of the global
batch, exactly as on one device. The flag only changes `call` (no weights),
and it is switched off again before saving so the files load on any backend.
"""

import json
import os

STRATEGIES = ("auto", "default", "mirrored", "multiworker", "data_parallel")


class SingleDevice:
    """The one-device "strategy" of the JAX and PyTorch backends: Keras places the model itself.

    It has what `train` reads of a `tf.distribute.Strategy`: `scope()`,
    `num_replicas_in_sync` and no `cluster_resolver`.
    """

    num_replicas_in_sync = 1
    cluster_resolver = None

    def scope(self):
        import contextlib

        return contextlib.nullcontext()


class KerasDataParallel:
    """Keras' own `keras.distribution.DataParallel` over every device, as `train` uses a strategy.

    The JAX backend's data parallelism: each batch is split over the devices
    and the step is one program over the whole mesh (BatchNorm statistics
    are those of the global batch). Created, it sets the global Keras
    distribution (it also shards what `fit` feeds); `release()` unsets it.
    """

    cluster_resolver = None

    def __init__(self, devices=None):
        import keras

        self.distribution = keras.distribution.DataParallel(devices=devices)
        self.num_replicas_in_sync = int(self.distribution.device_mesh.devices.size)
        self._previous = keras.distribution.distribution()
        keras.distribution.set_distribution(self.distribution)

    def scope(self):
        return self.distribution.scope()

    def release(self):
        import keras

        keras.distribution.set_distribution(self._previous)


def accelerators():
    """Names of the GPUs (or other accelerators) the current Keras backend sees."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return [getattr(d, "device_kind", d.platform) for d in jax.devices() if d.platform != "cpu"]
    if backend == "torch":
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    import tensorflow as tf

    return [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
            for gpu in tf.config.list_physical_devices("GPU")]


def describe_hardware():
    """One line naming the machine a run trains on: CPU model and cores, GPUs."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpus = accelerators()
    return f"{os.cpu_count()} CPU cores ({cpu}), {', '.join(gpus) if gpus else 'no GPU'}"


def _tf_config_workers():
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0
    try:
        cluster = json.loads(raw).get("cluster", {})
    except (ValueError, AttributeError) as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}). Received: TF_CONFIG={raw!r}")
    return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))


def resolve_strategy_name(name="auto"):
    """The concrete strategy name `auto` stands for on this machine."""
    from keras_lc.startup import uses_tensorflow

    if name not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {STRATEGIES}. Received: strategy={name!r}")
    import keras

    backend = keras.backend.backend()
    if name == "data_parallel" and backend != "jax":
        raise ValueError(
            f"strategy='data_parallel' is Keras' keras.distribution.DataParallel, which keras-lc "
            f"uses on the JAX backend; Keras runs on {backend!r} here "
            + ("(on TensorFlow use strategy='mirrored')." if backend == "tensorflow" else "(use 'default').")
        )
    if not uses_tensorflow():
        if name in ("mirrored", "multiworker"):
            raise ValueError(
                f"strategy={name!r} is TensorFlow's tf.distribute; Keras runs on {backend!r} here "
                "(without TensorFlow, or KERAS_BACKEND): use 'default'"
                + (", or 'data_parallel' over several devices." if backend == "jax" else ".")
            )
        if name == "auto" and backend == "jax":
            import jax

            return "data_parallel" if len(jax.devices()) > 1 else "default"
        return name if name == "data_parallel" else "default"
    import tensorflow as tf

    if name != "auto":
        return name
    if _tf_config_workers() > 1:
        return "multiworker"
    # Physical, not logical, devices: listing logical ones initializes the
    # runtime, after which no MultiWorkerMirroredStrategy can be created.
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return "mirrored"
    return "default"


def get_strategy(name="auto", devices=None):
    """A `tf.distribute.Strategy` by name (see the module docstring).

    Args:
        name: One of `STRATEGIES`.
        devices: `mirrored` only: explicit device names; `None` takes every
            visible GPU, or every logical CPU device when there is no GPU.
    """
    from keras_lc.startup import uses_tensorflow

    name = resolve_strategy_name(name)
    if name == "data_parallel":
        return KerasDataParallel(devices)
    if not uses_tensorflow():
        return SingleDevice()
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if devices is None:
            devices = [d.name for d in tf.config.list_logical_devices("GPU")]
            devices = devices or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=list(devices))
    if _tf_config_workers() < 1:
        raise ValueError(
            "strategy='multiworker' needs the cluster in the TF_CONFIG environment variable, "
            'e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}. Received: TF_CONFIG='
            f"{os.environ.get('TF_CONFIG')!r}"
        )
    return tf.distribute.MultiWorkerMirroredStrategy()


def strategy_name_of(strategy):
    """The `STRATEGIES` name of a strategy object (its class name if none fits)."""
    if isinstance(strategy, SingleDevice):
        return "default"
    if isinstance(strategy, KerasDataParallel):
        return "data_parallel"
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multiworker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    if strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy():
        return "default"
    return type(strategy).__name__


def worker_role(strategy):
    """`(is_chief, task_type, task_id)` of this process under `strategy`.

    The chief is the `chief` task, or worker 0 when the cluster has no chief;
    a single-process strategy is always the chief.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", None)
    if task_type is None:
        return True, None, None
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief)
    return is_chief, task_type, task_id


def batchnorm_layers(model):
    """Every `keras.layers.BatchNormalization` in `model`, nested ones included."""
    import keras

    # `_flatten_layers` walks sublayers tracked as attributes too (e.g. the
    # intermediate BatchNorm inside LCConv2D), which `model.layers` does not.
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def synchronize_batchnorm(model, synchronized=True):
    """Set `synchronized` on every BatchNorm layer of `model`; returns how many.

    Call before the first training step (the flag is read when `call` is
    traced). Only the TensorFlow backend supports `synchronized=True`.
    """
    layers = batchnorm_layers(model)
    for layer in layers:
        layer.synchronized = bool(synchronized)
    return len(layers)


def work_around_multiworker_keras_bugs(model, strategy):
    """Two Keras 3 bugs under MultiWorkerMirroredStrategy (keras-team/keras#20585,
    tensorflow/tensorflow#72388), worked around on this model instance only.

    - Before training, Keras' TF trainer peeks at one distributed batch and
      all-reduces it (MEAN) only to learn its shapes for a symbolic build; that
      reduction of a `PerReplica` batch fails. The local replica's values carry
      the same specs, so they are used instead.
    - Each step's logs are reduced across workers with `reduce("MEAN", v,
      axis=0)`, which fails for the scalar metric values; the steps here
      return them with shape (1,), so that reduction yields the scalar mean.
    """
    import types

    import tensorflow as tf
    from keras import tree

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = next(batches)
                break
            data_batch = tree.map_structure(
                lambda v: strategy.experimental_local_results(v)[0]
                if isinstance(v, tf.distribute.DistributedValues)
                else v,
                data_batch,
            )
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def vector_logs(step):
        def wrapped(self, data):
            return tree.map_structure(lambda v: tf.reshape(v, [1]), step(data))

        return wrapped

    model._maybe_symbolic_build = types.MethodType(maybe_symbolic_build, model)
    model.train_step = types.MethodType(vector_logs(model.train_step), model)
    model.test_step = types.MethodType(vector_logs(model.test_step), model)
