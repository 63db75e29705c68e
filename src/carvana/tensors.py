"""Batch tensors as the models take them: one conversion shared by training and prediction."""

from __future__ import annotations

import torch


def to_input(batch_image: torch.Tensor, device: torch.device,
             channels_last: bool = True) -> torch.Tensor:
    """uint8 (N,C,H,W) -> float [0,1] on the device (channels_last: faster on CPU and GPU)."""
    x = batch_image.to(device, non_blocking=True).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
