"""Initialise a model from another model's weights."""

from __future__ import annotations

import torch
from torch import Tensor, nn

_PREFIXES = ("_orig_mod.", "module.")  # added by torch.compile and DataParallel


def _strip(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix) :], True
    return name


def _is_widened_input(target: Tensor, source: Tensor, in_channels: int | None) -> bool:
    """A conv weight reading the raw input that gained input channels (e.g. 3 -> 4)."""
    return (
        target.ndim >= 3
        and source.ndim == target.ndim
        and source.shape[0] == target.shape[0]
        and source.shape[2:] == target.shape[2:]
        and source.shape[1] < target.shape[1]
        and (in_channels is None or target.shape[1] == in_channels)
    )


@torch.no_grad()
def load_compatible_state(model: nn.Module, state: dict[str, Tensor]) -> list[str]:
    """Initialise model from another model's state_dict (e.g. the full-resolution U-Net from the
    largest low-res U-Net, or a 4-channel depth model from a 3-channel one): copy every tensor
    whose name and shape match; for a first conv whose in-channel count differs (3 -> 4), copy
    the first 3 input channels and zero the extra ones; return the names NOT loaded.

    "First conv" means every conv reading the raw input (with in-channels equal to the model's
    ``in_channels``): the Inception U-Net has four. A model may name more convs whose inputs
    grew at the end in ``grown_inputs`` (the EfficientNet U-Net's last decoder conv, which
    gains a full-resolution skip): they are widened the same way. With zeroed extra channels the new model
    gives exactly the old model's output whatever the extra input holds. ``_orig_mod.`` and
    ``module.`` prefixes (torch.compile, DataParallel) are ignored on both sides.
    """
    in_channels = getattr(model, "in_channels", None)
    grown = set(getattr(model, "grown_inputs", ()))
    source = {_strip(k): v for k, v in state.items()}
    target = model.state_dict()
    missing: list[str] = []
    for name, tensor in target.items():
        src = source.get(_strip(name))
        if src is None:
            missing.append(name)
        elif src.shape == tensor.shape:
            tensor.copy_(src)
        elif _is_widened_input(tensor, src, None if _strip(name) in grown else in_channels):
            tensor.zero_()
            tensor[:, : src.shape[1]].copy_(src)
        else:
            missing.append(name)
    model.load_state_dict(target)
    return missing
