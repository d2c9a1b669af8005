"""ResNet-20-16 and ResNet-LC-20-16xE for CIFAR in raw PyTorch, for `benchmarks/peer_pytorch.py`.

The network `keras_lc.zoo.resnet20` / `keras_lc.zoo.resnet_lc20` build, written as a PyTorch user
would: He et al.'s CIFAR ResNet (3x3 stem, three stages of three basic blocks with 16, 32 and 64
channels, stride 2 at the first block of stages 2 and 3, global average pooling, a linear
classifier) with option-A shortcuts (`x[:, :, ::2, ::2]` with zero channels appended; `shortcut="B"`:
a strided 1x1 convolution + BatchNorm where the shape changes, as open_lth's `cifar_resnet_20_16`
that the paper's "ResNet-20-16" is named after), BatchNorm
momentum 0.1 (Keras' 0.9) and eps 1e-5, and PyTorch's default initialization (Kaiming-uniform
with a = sqrt(5), what keras-lc's `torch_uniform` draws). An LC convolution is either the paper's
two-stage form (a k x k convolution to c_out * E channels, frozen or learned, then a 1x1
convolution to c_out) or the composed form (one k x k convolution whose kernel is the 1x1
combination applied to the spatial kernel, composed at every step).

PyTorch is a benchmark-only dependency (`pip install 'keras-lc[bench]'`).
"""

import torch
import torch.nn.functional as F
from torch import nn

FORMS = ("plain", "two_stage", "composed")


class LCConv(nn.Module):
    """A 3x3 LC convolution c_in -> c_out with expansion E, in the two-stage or composed form."""

    def __init__(self, c_in, c_out, stride, expansion, form, frozen):
        super().__init__()
        if form not in ("two_stage", "composed"):
            raise ValueError(f"form must be 'two_stage' or 'composed'. Received: {form!r}")
        self.stride, self.form = stride, form
        self.spatial = nn.Parameter(nn.Conv2d(c_in, c_out * expansion, 3, bias=False).weight.detach(),
                                    requires_grad=not frozen)
        self.combination = nn.Parameter(nn.Conv2d(c_out * expansion, c_out, 1, bias=False).weight.detach())

    def forward(self, x):
        if self.form == "two_stage":
            return F.conv2d(F.conv2d(x, self.spatial, stride=self.stride, padding=1), self.combination)
        kernel = torch.einsum("om,mikl->oikl", self.combination[:, :, 0, 0], self.spatial)
        return F.conv2d(x, kernel, stride=self.stride, padding=1)


def two_stage_activation_bytes(batch_size, expansion, bytes_per_value=4, depth=20, width=16):
    """Bytes the two-stage form keeps for the backward pass in its widened activations alone.

    Each LC convolution's k x k output (c_out * E channels at its output size) is saved as the
    input of its 1x1 convolution: the stem and the first stage at 32x32, the second at 16x16,
    the third at 8x8, each with `(depth - 2) // 3` convolutions.
    """
    per_stage = (depth - 2) // 3
    pixels = width * 32 * 32 * (per_stage + 1) + 2 * width * 16 * 16 * per_stage + 4 * width * 8 * 8 * per_stage
    return batch_size * expansion * bytes_per_value * pixels


def conv3x3(c_in, c_out, stride, form, expansion, frozen):
    """A plain 3x3 convolution (`form="plain"`) or an `LCConv`."""
    if form == "plain":
        return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
    return LCConv(c_in, c_out, stride, expansion, form, frozen)


SHORTCUTS = ("A", "B")


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN, plus the shortcut (option A or B), then ReLU."""

    def __init__(self, c_in, c_out, stride, shortcut="A", **conv):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(c_in, c_out, stride, **conv), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = conv3x3(c_out, c_out, 1, **conv), nn.BatchNorm2d(c_out)
        self.stride, self.pad = stride, c_out - c_in
        self.projection = None
        if shortcut == "B" and (stride != 1 or c_in != c_out):
            self.projection = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.projection is not None:
            shortcut = self.projection(x)
        elif self.stride != 1 or self.pad:
            shortcut = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, 0, self.pad))
        return F.relu(out + shortcut)


class ResNetCifar(nn.Module):
    """ResNet-{depth}-{width}: `form="plain"` (the baseline) or an LC form with `expansion`."""

    def __init__(self, depth=20, width=16, classes=10, form="plain", expansion=1, frozen=True,
                 shortcut="A"):
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}. Received: {form!r}")
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {SHORTCUTS}. Received: {shortcut!r}")
        conv = {"form": form, "expansion": expansion, "frozen": frozen}
        blocks = (depth - 2) // 6
        self.stem, self.bn = conv3x3(3, width, 1, **conv), nn.BatchNorm2d(width)
        layers, c_in = [], width
        for stage in range(3):
            c_out = width * 2**stage
            for block in range(blocks):
                layers.append(BasicBlock(c_in, c_out, 2 if stage and not block else 1, shortcut, **conv))
                c_in = c_out
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, classes)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn(self.stem(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
