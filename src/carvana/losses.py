"""Training losses by name: BCE + soft Dice (the original's), and the Lovász hinge.

The Lovász hinge (Berman, Rannen Triki and Blaschko, CVPR 2018) is a convex surrogate of
per-image IoU: it weighs each pixel's hinge error by how much it changes the IoU, so the
pixels that decide the edge get the gradient. Several top Carvana solutions fine-tuned with
it after BCE + Dice. Labels may hold ``IGNORE`` (pseudo-labels): ``split_labels`` turns them
into a target and a validity channel, and every loss leaves the invalid pixels out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from carvana.io import IGNORE

#: The losses a training phase can use (``training: loss`` and ``fine_tune_loss``).
LOSSES = ("bce_dice", "lovasz")


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0,
                  valid: torch.Tensor | None = None) -> torch.Tensor:
    """BCE + (1 - soft dice) over the batch, as the original (soft dice with smooth 1).
    ``valid`` (same shape, 0 or 1) leaves the pixels where it is 0 out of both terms."""
    logits = logits.float()
    prob = torch.sigmoid(logits)
    if valid is None:
        bce = F.binary_cross_entropy_with_logits(logits, target)
        inter, total = (prob * target).sum(), prob.sum() + target.sum()
    else:
        bce = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * valid
               ).sum() / valid.sum().clamp(min=1)
        inter, total = (prob * target * valid).sum(), (prob * valid).sum() + (target * valid).sum()
    soft_dice = (2 * inter + smooth) / (total + smooth)
    return bce + (1 - soft_dice)


def _lovasz_grad(truth_sorted: torch.Tensor) -> torch.Tensor:
    """The IoU loss's gradient along pixels sorted by decreasing error (Berman et al., alg. 1)."""
    positives = truth_sorted.sum()
    intersection = positives - truth_sorted.cumsum(0)
    union = positives + (1 - truth_sorted).cumsum(0)
    jaccard = 1 - intersection / union
    return torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])


def lovasz_hinge(logits: torch.Tensor, target: torch.Tensor,
                 valid: torch.Tensor | None = None) -> torch.Tensor:
    """The Lovász hinge of each image (N, 1, H, W), averaged; ``valid`` as in bce_dice_loss.
    An image with no valid pixel adds 0."""
    losses = []
    for i in range(logits.shape[0]):
        score, truth = logits[i].float().flatten(), target[i].float().flatten()
        if valid is not None:
            keep = valid[i].flatten() > 0
            score, truth = score[keep], truth[keep]
        if score.numel() == 0:
            losses.append(logits[i].float().sum() * 0)
            continue
        errors = 1 - score * (2 * truth - 1)
        errors_sorted, order = torch.sort(errors, descending=True)
        losses.append(torch.dot(F.relu(errors_sorted), _lovasz_grad(truth[order])))
    return torch.stack(losses).mean()


def segmentation_loss(name: str, logits: torch.Tensor, target: torch.Tensor,
                      valid: torch.Tensor | None = None) -> torch.Tensor:
    """The loss ``name`` (one of ``LOSSES``) of a batch."""
    if name == "bce_dice":
        return bce_dice_loss(logits, target, valid=valid)
    if name == "lovasz":
        return lovasz_hinge(logits, target, valid=valid)
    raise ValueError(f"loss {name!r}: use one of {', '.join(LOSSES)}")


def split_labels(y: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """Labels (N, 1, H, W) of 0, 1 and IGNORE as (N, 2, H, W) target and validity channels
    (augmented together), and whether any pixel is ignored; without one, ``y`` unchanged."""
    ignored = bool((y == IGNORE).any())
    if not ignored:
        return y, False
    return torch.cat([(y == 1).float(), (y != IGNORE).float()], 1), True
