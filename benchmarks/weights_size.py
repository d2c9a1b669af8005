"""Weights-file sizes of ResNet-20-16 and ResNet-LC-20-16xE, with and without compact kernels.

    python benchmarks/weights_size.py [--expansion 128]

A frozen random kernel is a function of its seed and shape, so `LCConv2D` stores
the seed instead of the kernel. "Full" is the same network with its kernels
stored (`frozen_spatial=False`, whose kernels must be stored because they
train: the same tensors, so the same bytes as a non-compact format). The files
hold model weights only (`save_weights` of a model that was never compiled).
It also checks that a model loaded from the compact file gives bit-identical
outputs.
"""

import argparse
import os
import tempfile

import numpy as np

from keras_lc import zoo


def size(model, folder, name):
    path = os.path.join(folder, f"{name}.weights.h5")
    model.save_weights(path)
    return path, os.path.getsize(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--expansion", type=int, default=128)
    args = parser.parse_args(argv)
    e = args.expansion
    common = dict(expansion=e, seed=0, classifier_activation=None)
    models = {
        "ResNet-20-16 (plain, all stored)": zoo.resnet20(seed=0, classifier_activation=None),
        f"ResNet-LC-20-16x{e}, full (kernels stored)": zoo.resnet_lc20(frozen_spatial=False, **common),
        f"ResNet-LC-20-16x{e}, compact (seeds stored)": zoo.resnet_lc20(implementation="composed", **common),
        f"ResNet-LC-20-16x{e}, basis form": zoo.resnet_lc20(implementation="basis", **common),
    }
    x = np.random.default_rng(0).normal(size=(8, 32, 32, 3)).astype("float32")
    compact_name = f"ResNet-LC-20-16x{e}, compact (seeds stored)"
    for w in models[compact_name].trainable_weights:  # stands for training: not the init
        w.assign(np.asarray(w) * 1.5 + 0.01)
    print("| model | weights file |\n|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for index, (name, model) in enumerate(models.items()):
            paths[name], nbytes = size(model, folder, str(index))
            print(f"| {name} | {nbytes / 2**20:.2f} MiB |")
        reloaded = zoo.resnet_lc20(implementation="composed", **common)
        reloaded.load_weights(paths[compact_name])
        same = np.array_equal(reloaded.predict_on_batch(x), models[compact_name].predict_on_batch(x))
        print(f"\ncompact file reloaded: outputs bit-identical: {same}")


if __name__ == "__main__":
    main()
