"""Depthwise convolutions in float32 while training under CPU bfloat16 autocast.

oneDNN's bfloat16 backward of a depthwise convolution is several times slower than its
float32 one where measured (an Intel Xeon with AMX-BF16, torch 2.13, channels_last: 386
against 82 ms for a 5x5 stride-2 layer of 144 channels at 163x243, batch 4), and the
EfficientNet-Lite encoder's depthwise layers took 43 % of a bf16 training step's time (grouped
bf16 convolutions on the CPU are a known open torch 2.13 regression: pytorch/pytorch#183815). So
under CPU autocast with gradients on, those layers compute in float32 and hand on their output
in the autocast dtype, as autocast would have: the rest of the step is unchanged. Without
gradients (validation, prediction) or off the CPU they run as before, so predictions of a
trained model are the same bytes. ``benchmarks/bf16_depthwise.py`` measures the step.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor, nn


class _Float32Training(nn.Module):
    """Mixin before a convolution class: its forward in float32 under CPU training autocast."""

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type == "cpu" and torch.is_grad_enabled() and torch.is_autocast_enabled("cpu"):
            dtype = torch.get_autocast_dtype("cpu")
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float()).to(dtype)  # type: ignore[misc]
        return super().forward(x)  # type: ignore[misc]


@functools.cache
def _float32_class(base: type[nn.Module]) -> type[nn.Module]:
    """``base`` with the float32 forward (one class per base, so swaps are idempotent)."""
    return type(f"Float32Training{base.__name__}", (_Float32Training, base), {"plain": base})


def _plain_class(cls: type[Any]) -> type[Any]:
    """The class a switched layer had before (``cls`` itself when it was never switched)."""
    return cls.__dict__.get("plain", cls)


def is_depthwise(module: nn.Module) -> bool:
    """A 2-d convolution with one group per input channel (and more than one channel)."""
    return (isinstance(module, nn.Conv2d) and module.groups > 1
            and module.groups == module.in_channels)


def float32_depthwise(module: nn.Module, enabled: bool = True) -> int:
    """Switch every depthwise convolution in ``module`` to (or, ``enabled=False``, back from)
    the float32 training forward; returns how many. Parameters and state-dict keys stay."""
    count = 0
    for layer in module.modules():
        if is_depthwise(layer):
            plain = _plain_class(type(layer))
            layer.__class__ = _float32_class(plain) if enabled else plain
            count += 1
    return count
