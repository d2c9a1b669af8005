"""keras-lc's training step against raw PyTorch's on the same network, side by side (issue 18).

    python benchmarks/peer_pytorch.py
    python benchmarks/peer_pytorch.py --models resnet20 --precisions float32 --rounds 7

Both frameworks run in this one process, in alternating rounds (keras-lc, then each PyTorch
form, round after round), so that other load on the machine falls on all of them alike. Each
round times `--steps` training steps after one untimed step; printed: the median images/s over
the rounds and the ratio keras-lc / PyTorch. The step: forward, loss (cross-entropy with label
smoothing 0.1), backward, SGD Nesterov 0.9 with coupled weight decay 1e-2 at lr 1e-2, batch 256,
on an in-memory batch (no input cost).

- keras-lc: the zoo builder's model, `model.fit` with the recipe's `TorchSGD`, on the backend in
  `KERAS_BACKEND` (TensorFlow by default); bfloat16 is Keras' `mixed_bfloat16` policy.
- PyTorch: `benchmarks/torch_resnet_cifar.py`, channels_last, `torch.autocast(bfloat16)` for
  bfloat16, `torch.set_num_threads(os.cpu_count())`.

Models: ResNet-20-16 (keras-lc `resnet20` vs PyTorch plain convolutions); ResNet-LC-20-16x128
frozen (keras-lc in its basis form, what `keras-lc train` uses, vs PyTorch's two-stage form, the
paper's code, and a composed form); learnable (keras-lc composed vs the same two PyTorch forms).
PyTorch is a benchmark-only dependency: `pip install 'keras-lc[bench]'`.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import keras
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_timer import StepTimer  # noqa: E402  (this folder's)
from torch_resnet_cifar import ResNetCifar, two_stage_activation_bytes  # noqa: E402  (this folder's model file)

from keras_lc import zoo  # noqa: E402
from keras_lc.training import Recipe  # noqa: E402

#: The PyTorch two-stage form is not run where its activations alone would take more of the
#: machine's memory than this (at batch 256 and E = 128: 23 GiB in float32, 11.5 in bfloat16).
MEMORY_SHARE = 0.4
#: model -> (keras-lc builder keyword arguments, the PyTorch forms it is compared with, frozen)
MODELS = {
    "resnet20": ({}, ("plain",), True),
    "resnet_lc20_16x128_frozen": ({"expansion": 128, "implementation": "basis", "frozen_spatial": True},
                                  ("two_stage", "composed"), True),
    "resnet_lc20_16x128_learnable": ({"expansion": 128, "implementation": "composed", "frozen_spatial": False},
                                     ("two_stage", "composed"), False),
}


class KerasStep:
    """keras-lc's model and a `fit` over in-memory batches, timed per step."""

    def __init__(self, name, precision, batch_size):
        kwargs = MODELS[name][0]
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
        try:
            builder = zoo.resnet20 if name == "resnet20" else zoo.resnet_lc20
            self.model = builder(classifier_activation=None, seed=0, **kwargs)
        finally:
            keras.config.set_dtype_policy(previous)
        recipe = Recipe(batch_size=batch_size)
        self.model.compile(optimizer=recipe.make_optimizer(100), loss=recipe.make_loss(from_logits=True))
        rng = np.random.default_rng(0)
        self.batch_size = batch_size
        self.x = rng.normal(size=(batch_size, 32, 32, 3)).astype("float32")
        self.y = np.eye(10, dtype="float32")[rng.integers(0, 10, batch_size)]
        self.times = []
        # the first step of each round (tracing, in the first) is not timed
        self.timer = StepTimer(warmup=1, times=self.times)

    def round(self, steps):
        x = np.concatenate([self.x] * (steps + 1))
        y = np.concatenate([self.y] * (steps + 1))
        self.model.fit(x, y, batch_size=self.batch_size, epochs=1, shuffle=False, callbacks=[self.timer],
                       verbose=0)


class TorchStep:
    """The same network in raw PyTorch (`form`), channels_last, timed per step."""

    def __init__(self, name, form, precision, batch_size):
        _, _, frozen = MODELS[name]
        expansion = MODELS[name][0].get("expansion", 1)
        torch.manual_seed(0)
        self.model = ResNetCifar(form=form, expansion=expansion, frozen=frozen).to(memory_format=torch.channels_last)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(params, lr=1e-2, momentum=0.9, nesterov=True, weight_decay=1e-2)
        self.x = torch.randn(batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
        self.y = torch.randint(0, 10, (batch_size,))
        self.bf16 = precision == "bfloat16"
        self.batch_size = batch_size
        self.times = []

    def step(self):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            loss = F.cross_entropy(self.model(self.x), self.y, label_smoothing=0.1)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def round(self, steps):
        self.model.train()
        self.step()  # not timed, as keras-lc's first step of a round
        for _ in range(steps):
            start = time.perf_counter()
            self.step()
            self.times.append(time.perf_counter() - start)


def images_per_s(runner):
    return runner.batch_size / statistics.median(runner.times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per round")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)
    torch.set_num_threads(os.cpu_count())
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    print(f"keras {keras.__version__} on {keras.backend.backend()}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPU cores, batch {args.batch_size}, {args.rounds} rounds x {args.steps} steps")
    rows = []
    for name in args.models:
        for precision in args.precisions:
            runners = {"keras-lc": KerasStep(name, precision, args.batch_size)}
            for form in MODELS[name][1]:
                if form == "two_stage":
                    needed = two_stage_activation_bytes(args.batch_size, MODELS[name][0]["expansion"],
                                                        2 if precision == "bfloat16" else 4)
                    if needed > MEMORY_SHARE * memory:
                        print(f"{name} {precision}: PyTorch two_stage not run: its widened activations "
                              f"alone need {needed / 2**30:.1f} GiB at batch {args.batch_size}, more than "
                              f"{MEMORY_SHARE:.0%} of this machine's {memory / 2**30:.0f} GiB", flush=True)
                        continue
                runners[f"PyTorch {form}"] = TorchStep(name, form, precision, args.batch_size)
            for _ in range(args.rounds):
                for runner in runners.values():
                    runner.round(args.steps)
            rates = {label: images_per_s(r) for label, r in runners.items()}
            rows.append((name, precision, rates))
            print(f"{name:<30} {precision:<9} " + "  ".join(f"{k}: {v:,.0f}" for k, v in rates.items()), flush=True)
            keras.backend.clear_session()
    print("\n| model | precision | keras-lc images/s | PyTorch images/s (form) | keras-lc / PyTorch |")
    print("|---|---|---|---|---|")
    for name, precision, rates in rows:
        ours = rates["keras-lc"]
        peers = [(k.split(" ", 1)[1], v) for k, v in rates.items() if k != "keras-lc"]
        print(f"| {name} | {precision} | {ours:,.0f} | " + ", ".join(f"{v:,.0f} ({f})" for f, v in peers)
              + " | " + ", ".join(f"{ours / v:.2f}x vs {f}" for f, v in peers) + " |")


if __name__ == "__main__":
    main()
