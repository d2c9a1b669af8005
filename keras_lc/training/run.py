"""`train`: one training run into a resumable run directory.

The run directory's files, its lock and its configuration check are
`keras_lc.training.run_dir`'s. Every file is written to a temporary name and
renamed into place. Under `MultiWorkerMirroredStrategy` only the chief writes
them; the other workers keep their backups and final weights under
`workers/<type>-<index>/`.
"""

import json
import math
import statistics
import sys
import time
from pathlib import Path

from keras_lc.files import atomic_path, write_json_atomic
from keras_lc.training.callbacks import (
    AtomicBackupAndRestore,
    EpochLog,
    NaNGuard,
    TrainingDiverged,
)
from keras_lc.training.recipe import Recipe
from keras_lc.training.run_dir import (
    BACKUP,
    FINAL_WEIGHTS,
    HISTORY,
    LEARNING_CURVE,
    MODEL,
    SUMMARY,
    RunDirectory,
    RunDirectoryError,
)
from keras_lc.training.strategy import (
    batchnorm_layers,
    accelerators,
    describe_hardware,
    get_strategy,
    resolve_strategy_name,
    strategy_name_of,
    synchronize_batchnorm,
    work_around_multiworker_keras_bugs,
    worker_role,
)

__all__ = ["train", "parameter_counts", "outputs_logits", "RunDirectoryError", "TrainingDiverged"]


def parameter_counts(model):
    """`{"trainable", "frozen", "non_trainable"}` parameter counts of `model`.

    `frozen` counts non-trainable weights that are not BatchNorm moving
    statistics (for LC models: the frozen random spatial kernels, or the
    basis P of the `"basis"` form); `non_trainable` counts all of them.
    """
    import numpy as np

    def size(weights):
        return int(sum(int(np.prod(w.shape)) for w in weights))

    statistics_ids = {
        id(w) for layer in batchnorm_layers(model) for w in (layer.moving_mean, layer.moving_variance)
    }
    non_trainable = model.non_trainable_weights
    return {
        "trainable": size(model.trainable_weights),
        "frozen": size(w for w in non_trainable if id(w) not in statistics_ids),
        "non_trainable": size(non_trainable),
    }


def outputs_logits(model):
    """False if the model's last layer ends in a softmax, else True (logits)."""
    import keras

    activation = getattr(model.layers[-1], "activation", None)
    return activation not in (keras.activations.softmax, "softmax")


def lc_implementations(model):
    """Sorted set of the resolved implementations of the model's LCConv2D layers."""
    from keras_lc.layers import LCConv2D

    return sorted(
        {
            layer.resolved_implementation
            for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, LCConv2D) and layer.built
        }
    )


def _mixed_policy():
    return "mixed_float16" if accelerators() else "mixed_bfloat16"


def train(
    build_model,
    train_data,
    test_data,
    out_dir,
    recipe=None,
    strategy="auto",
    config=None,
    validate=True,
    validation_freq=1,
    verbose="auto",
    print_fn=print,
    callbacks=(),
):
    """Train a model with a `Recipe` into a resumable run directory.

    Args:
        build_model: Callable returning a `keras.Model` (called inside the
            strategy's scope). Its outputs are logits unless its last layer
            ends in a softmax (the loss is chosen accordingly).
        train_data, test_data: `keras_lc.data.LoadedDataset`s.
        out_dir: The run directory (see the module docstring). Starting the
            same run again continues from its last completed epoch.
        recipe: A `Recipe` (default: the paper's CIFAR recipe).
        strategy: A name of `keras_lc.training.strategy.STRATEGIES` or a
            `tf.distribute.Strategy`.
        config: Extra JSON-able description stored in `config.json` (model
            name and arguments, data location, ...).
        validate: Evaluate on `test_data` during training (learning curve).
        validation_freq: With `validate`, evaluate after every
            `validation_freq`-th epoch (Keras' `validation_freq`); the final
            weights are always evaluated.
        verbose: Keras progress bar mode for `fit`.
        print_fn: Where status lines go (`None`: silent).
        callbacks: Extra Keras callbacks for `fit`.

    Returns:
        The summary dict (also written to `summary.json` by the chief).

    Raises:
        RunDirectoryError: `out_dir` is a file or unwritable, holds a finished
            or different run, or another `train` holds its lock.
        TrainingDiverged: the loss became NaN/inf (the last good epoch's
            backup is kept).
    """
    import keras

    recipe = (recipe or Recipe()).validate()
    if isinstance(validation_freq, bool) or not isinstance(validation_freq, int) or validation_freq < 1:
        raise ValueError(
            f"`validation_freq` must be a positive integer. Received: validation_freq={validation_freq!r}"
        )

    def say(line):
        if print_fn is not None:
            print_fn(line)
            sys.stdout.flush()

    out = Path(out_dir)
    if isinstance(strategy, str):
        strategy_name = resolve_strategy_name(strategy)
        strategy = get_strategy(strategy_name)
    else:
        strategy_name = strategy_name_of(strategy)
    is_chief, task_type, task_id = worker_role(strategy)
    replicas = int(strategy.num_replicas_in_sync)
    own_dir = out if is_chief else out / "workers" / f"{task_type}-{task_id}"
    steps_per_epoch = math.ceil(train_data.num_examples / recipe.batch_size)
    run_config = {
        "recipe": recipe.to_dict(),
        "data": {
            "dataset": train_data.spec.name,
            "train_examples": train_data.num_examples,
            "test_examples": None if test_data is None else test_data.num_examples,
            "source": train_data.source,
        },
        **(config or {}),
    }
    run_config = json.loads(json.dumps(run_config))
    # The chief locks the run directory for the whole run; the configuration is
    # only stored once the model is built, so a failed start leaves none behind.
    run_dir = RunDirectory.open(out) if is_chief else None
    try:
        resuming = run_dir.check(run_config) if is_chief else False
        own_dir.mkdir(parents=True, exist_ok=True)
    except BaseException:
        if run_dir is not None:
            run_dir.close()
        raise

    previous_policy = keras.mixed_precision.global_policy()
    if recipe.mixed_precision:
        keras.mixed_precision.set_global_policy(_mixed_policy())
    try:
        keras.utils.set_random_seed(recipe.seed)
        # The pipeline holds the epochs still to run, epoch e's order a function
        # of (seed, e) only: a resumed run sees the uninterrupted run's data order.
        backup_dir = own_dir / BACKUP
        first_epoch = min(AtomicBackupAndRestore.saved_epoch(backup_dir), recipe.epochs - 1)
        train_ds, test_ds = _pipelines(train_data, test_data, recipe, first_epoch)

        model, synced = _compiled_model(build_model, strategy, strategy_name, replicas, recipe,
                                        steps_per_epoch)
        if is_chief:
            run_dir.write_config(run_config)
        implementations = lc_implementations(model)
        say(
            f"[keras-lc] {'resuming' if resuming else 'starting'} run '{out}': strategy "
            f"{strategy_name} ({replicas} replica{'s' * (replicas > 1)}"
            f"{f', {synced} BatchNorm layers synchronized' if synced else ''}), "
            f"{steps_per_epoch} steps/epoch x {recipe.epochs} epochs, policy "
            f"{keras.mixed_precision.global_policy().name}"
            + (f", LCConv2D implementation {'/'.join(implementations)}" if implementations else "")
        )
        backup = AtomicBackupAndRestore(str(backup_dir), delete_checkpoint=False)
        log = EpochLog(
            own_dir / HISTORY if is_chief else None,
            own_dir / LEARNING_CURVE if is_chief else None,
            train_data.num_examples,
            recipe.epochs,
            print_fn=say if print_fn and is_chief else None,
        )
        callbacks = [
            NaNGuard(
                backup_dir,
                hint="Lower the learning rate or disable mixed precision, and start a new run.",
            ),
            backup,
            log,
            *callbacks,
        ]
        tensorboard = is_chief and _tensorboard_installed()
        if tensorboard:
            callbacks.append(
                keras.callbacks.TensorBoard(str(out / "tensorboard"), write_graph=False, profile_batch=0)
            )
        elif is_chief:
            say("[keras-lc] tensorboard or TensorFlow is not installed: no TensorBoard logs "
                "(pip install tensorboard tensorflow); history.csv and learning_curve.png are written.")
        start = time.perf_counter()
        history = model.fit(
            train_ds,
            epochs=recipe.epochs,
            steps_per_epoch=steps_per_epoch,
            validation_data=test_ds if validate else None,
            validation_freq=validation_freq,
            callbacks=callbacks,
            shuffle=False,  # the pipeline shuffles
            verbose=verbose if print_fn else 0,
        )
        synchronize_batchnorm(model, False)
        metrics = _final_metrics(model, history.history, test_ds, validate and recipe.epochs %
                                 validation_freq == 0, verbose if print_fn else 0)
        wall = time.perf_counter() - start
        with atomic_path(own_dir / FINAL_WEIGHTS, suffix=".weights.h5") as tmp:
            model.save_weights(tmp)
        with atomic_path(own_dir / MODEL) as tmp:
            model.save(tmp)  # architecture + weights: for `analyze`, `export`, load_model
        rows = [log.rows[e] for e in sorted(log.rows)]
        summary = {
            "top1": metrics.get("top1"),
            "top5": metrics.get("top5"),
            "test_loss": metrics.get("loss"),
            "epochs": recipe.epochs,
            "resumed_from_epoch": recipe.epochs if log.first_epoch is None else log.first_epoch,
            "steps": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
            "steps_per_epoch": steps_per_epoch,
            "wall_time_s": wall,
            "train_seconds_all_epochs": sum(float(r["train_seconds"]) for r in rows),
            "images_per_s": (
                statistics.median(float(r["images_per_s"]) for r in rows) if rows else None
            ),
            "parameters": parameter_counts(model),
            "lc_implementations": implementations,
            "strategy": strategy_name,
            "replicas": replicas,
            "hardware": describe_hardware(),
            "mixed_precision_policy": keras.mixed_precision.global_policy().name,
            "xla": bool(model.jit_compile),
            "batchnorm_synchronized": synced,
            "tensorboard_logs": bool(tensorboard),
        }
        if is_chief:
            write_json_atomic(out / SUMMARY, summary)
        _remove_tree(backup_dir)
        say(
            f"[keras-lc] finished: top-1 {_percent(summary['top1'])}, "
            f"top-5 {_percent(summary['top5'])}, "
            f"{summary['steps']} steps, {wall:.1f} s; run directory '{out}'"
        )
        return summary
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        if hasattr(strategy, "release"):  # Keras' DataParallel: the global distribution unset
            strategy.release()
        if run_dir is not None:
            run_dir.close()


def _percent(fraction):
    """`0.8808` -> `"88.08%"`; `None` (not evaluated) -> `"n/a"`."""
    return "n/a" if fraction is None else f"{fraction:.2%}"


def _pipelines(train_data, test_data, recipe, first_epoch):
    """The training pipeline of epochs `first_epoch..recipe.epochs-1` and the test pipeline."""
    from keras_lc.data import make_pipeline
    from keras_lc.startup import has_tensorflow

    def sharded(pipeline):  # tf.data only: shard by batch under multi-worker strategies
        if pipeline is None or not has_tensorflow():
            return pipeline
        import tensorflow as tf

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return pipeline.with_options(options)

    train_ds = make_pipeline(
        train_data,
        training=True,
        epochs=range(first_epoch, recipe.epochs),
        batch_size=recipe.batch_size,
        augment=recipe.augment,
        seed=recipe.seed,
        randaugment=recipe.randaugment,
        mixup_alpha=recipe.mixup_alpha,
        cutmix_alpha=recipe.cutmix_alpha,
    )
    test_ds = None
    if test_data is not None:
        test_ds = make_pipeline(test_data, training=False, batch_size=recipe.batch_size)
    return sharded(train_ds), sharded(test_ds)


def _compiled_model(build_model, strategy, strategy_name, replicas, recipe, steps_per_epoch):
    """`(model, BatchNorm layers synchronized)`: built in the strategy's scope and compiled."""
    import keras

    with strategy.scope():
        model = build_model()
        if not model.built:
            raise ValueError("`build_model` must return a built model (give it an input shape).")
        model = _float32_outputs(model)
        # tf.distribute splits BatchNorm statistics per replica unless synchronized; Keras'
        # DataParallel (JAX) computes them over the global batch by itself.
        synced = synchronize_batchnorm(model) if replicas > 1 and strategy_name in ("mirrored", "multiworker") else 0
        if strategy_name == "multiworker":
            work_around_multiworker_keras_bugs(model, strategy)
        model.compile(
            optimizer=recipe.make_optimizer(steps_per_epoch),
            loss=recipe.make_loss(from_logits=outputs_logits(model)),
            metrics=[
                keras.metrics.CategoricalAccuracy(name="top1"),
                keras.metrics.TopKCategoricalAccuracy(k=5, name="top5"),
            ],
            jit_compile="auto" if recipe.xla is None else recipe.xla,
        )
    return model, synced


def _final_metrics(model, history, test_ds, last_epoch_validated, verbose):
    """The final weights' test metrics: the last validation's, else a final evaluation."""
    if test_ds is not None and last_epoch_validated and history.get("val_top1"):
        return {k[4:]: float(v[-1]) for k, v in history.items() if k.startswith("val_")}
    if test_ds is not None:
        metrics = model.evaluate(test_ds, return_dict=True, verbose=verbose)
        return {k: float(v) for k, v in metrics.items()}
    return {}


def _float32_outputs(model):
    """The model, with its outputs cast to float32 if a mixed policy made them lower.

    Losses and metrics (e.g. top-5's `in_top_k`) want float32 logits; the
    added layer has no weights, so the weights file is the model's own.
    """
    import keras

    if all(keras.backend.standardize_dtype(t.dtype) == "float32" for t in model.outputs):
        return model
    cast = keras.layers.Activation("linear", dtype="float32", name="float32_outputs")
    return keras.Model(model.inputs, [cast(t) for t in model.outputs], name=model.name)


def _tensorboard_installed():
    """Keras' TensorBoard callback writes with `tf.summary`: it needs tensorboard and TensorFlow."""
    from keras_lc.startup import has_tensorflow, is_installed

    return is_installed("tensorboard") and has_tensorflow()


def _remove_tree(path):
    import shutil

    shutil.rmtree(path, ignore_errors=True)
