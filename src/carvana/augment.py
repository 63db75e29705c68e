"""Batched augmentation on the training device (kornia): flips, shift/scale, colour jitter."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class AugmentConfig:
    """Augmentation strengths; 0 switches a transform off."""

    hflip: float = 0.5
    shift: float = 0.06
    scale: float = 0.1
    hue: float = 0.03
    saturation: float = 0.15
    value: float = 0.15



class Augmenter(nn.Module):
    """Batched augmentation on the training device (kornia): flip, shift/scale, HSV-like jitter.

    Geometric transforms move the image, any extra input channels and the mask together;
    colour jitter touches the three RGB channels only.
    """

    def __init__(self, cfg: AugmentConfig) -> None:
        super().__init__()
        import kornia.augmentation as K  # imported here: it is slow to import

        geometric: list[nn.Module] = []
        if cfg.hflip > 0:
            geometric.append(K.RandomHorizontalFlip(p=cfg.hflip))
        if cfg.shift > 0 or cfg.scale > 0:
            geometric.append(K.RandomAffine(
                degrees=0.0, translate=(cfg.shift, cfg.shift),
                scale=(1 - cfg.scale, 1 + cfg.scale), padding_mode="reflection", p=1.0))
        self.geometric = (K.AugmentationSequential(*geometric, data_keys=["input", "mask"])
                          if geometric else None)
        self.colour = (K.ColorJiggle(brightness=cfg.value, saturation=cfg.saturation,
                                     hue=cfg.hue, p=1.0)
                       if max(cfg.hue, cfg.saturation, cfg.value) > 0 else None)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image (N,C,H,W) float in [0,1], mask (N,1,H,W) float; returns both augmented."""
        if self.geometric is not None:
            image, mask = self.geometric(image, mask)
        if self.colour is not None:
            rgb = self.colour(image[:, :3]).clamp(0, 1)
            image = torch.cat([rgb, image[:, 3:]], 1) if image.shape[1] > 3 else rgb
        return image, (mask >= 0.5).float()
