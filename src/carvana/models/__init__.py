"""The model registry: every architecture built by name, as ``smp.create_model`` does.

>>> model = create_model("unet", in_channels=4, initial_filters=8, depth=3)
>>> model.stride, count_parameters(model) > 0
(8, True)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from .base import SegmentationHead, SegmentationModel, set_encoder_trainable
from .efficientnet import EfficientNetUNet
from .inception_unet import InceptionUNet
from .tiramisu import PRESETS as TIRAMISU_PRESETS
from .tiramisu import Tiramisu
from .transfer import load_compatible_state
from .unet import UNet

__all__ = [
    "ARCHITECTURES",
    "EfficientNetUNet",
    "TIRAMISU_PRESETS",
    "InceptionUNet",
    "SegmentationHead",
    "SegmentationModel",
    "Tiramisu",
    "UNet",
    "arch_params",
    "build_for_loading",
    "count_parameters",
    "create_model",
    "load_compatible_state",
    "set_encoder_trainable",
]

ARCHITECTURES: dict[str, Callable[..., SegmentationModel]] = {
    "unet": UNet,
    "tiramisu": Tiramisu,
    "inception_unet": InceptionUNet,
    "efficientnet_unet": EfficientNetUNet,
}


def arch_params(arch: str) -> list[str]:
    """The parameter names ``create_model`` accepts for ``arch`` (besides in_channels, classes)."""
    if arch not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {arch!r}; choose from {', '.join(sorted(ARCHITECTURES))}"
        )
    signature = inspect.signature(ARCHITECTURES[arch])
    return [name for name in signature.parameters if name not in ("in_channels", "classes")]


def create_model(
    arch: str, in_channels: int = 3, classes: int = 1, **params: Any
) -> SegmentationModel:
    """Build architecture ``arch`` with ``params``; ValueError for an unknown arch or parameter.

    The result's ``config`` holds the call's arguments, so ``create_model(**model.config)``
    rebuilds it (e.g. from a checkpoint).
    """
    allowed = arch_params(arch)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)} for architecture {arch!r}; "
            f"allowed: {', '.join(allowed)}"
        )
    try:
        model = ARCHITECTURES[arch](in_channels=in_channels, classes=classes, **params)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"invalid parameters for architecture {arch!r}: {err} (allowed: {', '.join(allowed)})"
        ) from err
    model.config = {"arch": arch, "in_channels": in_channels, "classes": classes, **params}
    return model


def build_for_loading(arch: str, in_channels: int, params: dict[str, Any]) -> SegmentationModel:
    """``create_model`` for a model whose weights come next from a checkpoint: an architecture
    with a ``pretrained`` parameter is built with ``pretrained=False``, so the pretrained file is
    not read. ``config`` keeps ``params`` as given.
    """
    if "pretrained" in arch_params(arch):
        model = create_model(arch, in_channels=in_channels, **{**params, "pretrained": False})
        model.config = {k: v for k, v in model.config.items() if k != "pretrained"} | params
        return model
    return create_model(arch, in_channels=in_channels, **params)


def count_parameters(model: nn.Module) -> int:
    """The number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
