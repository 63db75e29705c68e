"""Batched augmentation on the training device (kornia): flips, shift/scale, colour jitter,
and a warp of the depth models' low-res map (``prior_warp``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
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
    # Extra input channels only (the depth models' low-res map): a smooth random displacement
    # of up to this many pixels, so that training sees the map as misplaced as a low-res
    # model's map of an unseen car is, rather than as exact as on the cars it trained on.
    prior_warp: float = 0.0



class Augmenter(nn.Module):
    """Batched augmentation on the training device (kornia): flip, shift/scale, HSV-like jitter.

    Geometric transforms move the image, any extra input channels and the mask together;
    colour jitter touches the three RGB channels only, ``prior_warp`` the extra channels only.
    """

    def __init__(self, cfg: AugmentConfig) -> None:
        super().__init__()
        self.prior_warp = float(cfg.prior_warp)
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
        if self.prior_warp > 0 and image.shape[1] > 3:
            image = torch.cat([image[:, :3], warp(image[:, 3:], self.prior_warp)], 1)
        return image, (mask >= 0.5).float()


def warp(channels: torch.Tensor, pixels: float, grid: int = 3) -> torch.Tensor:
    """``channels`` (N,C,H,W) moved by a smooth random displacement field: each image's
    (dx, dy) drawn uniformly in [-pixels, pixels] at ``grid`` x ``grid`` control points and
    interpolated bicubically between them (from torch's global RNG, so a seeded run repeats)."""
    n, _, h, w = channels.shape
    control = (torch.rand(n, 2, grid, grid, device=channels.device) * 2 - 1) * pixels
    flow = F.interpolate(control, size=(h, w), mode="bicubic", align_corners=True)
    scale = torch.tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)], device=channels.device)
    ys = torch.linspace(-1, 1, h, device=channels.device)
    xs = torch.linspace(-1, 1, w, device=channels.device)
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)  # (H, W, 2): x, y
    sample = base + flow.permute(0, 2, 3, 1) * scale
    return F.grid_sample(channels, sample, mode="bilinear", padding_mode="border",
                         align_corners=True)
