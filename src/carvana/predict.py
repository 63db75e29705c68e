"""Prediction: stream images through a trained model, store uint8 probability PNGs per image.

One loop, :func:`predict_to_dir`, serves every model; what a batch's probabilities become on
disk is its ``write`` argument: :func:`write_each` (low-res models: one map per item, at the
model's size) by default, ``carvana.fullres.stitch_writer`` for tile models (two tiles per
image, stitched back to full size).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from carvana.checkpoint import load_checkpoint
from carvana.io import write_prob
from carvana.models import SegmentationModel, build_for_loading
from carvana.training import to_input

log = logging.getLogger(__name__)

Writer = Callable[[Path, list[str], np.ndarray], int]
"""``write(out_dir, ids, probs)``: a batch's float32 probabilities ``(N, H, W)`` (row k belongs
to ``ids[k]``) into files in ``out_dir``; returns the number of images written."""


def load_model(weights: str | Path, device: torch.device, expect: dict[str, Any] | None = None,
               rule: str | None = None) -> tuple[SegmentationModel, dict[str, Any]]:
    """Rebuild a model from its checkpoint (architecture from the stored meta, weights_only).

    ``expect`` (e.g. ``{"name": "unet64", "input": "lowres"}``) is checked against the stored
    meta: a checkpoint of another model is an error naming both, never a silent wrong answer.
    """
    state, meta = load_checkpoint(weights, expect, rule=rule)
    model = build_for_loading(meta["arch"], in_channels=meta["in_channels"], params=meta["params"])
    model.load_state_dict(state)
    model.to(device).eval()
    model.to(memory_format=torch.channels_last)
    return model, meta


@torch.inference_mode()
def predict_probs(model: torch.nn.Module, x: torch.Tensor, tta_hflip: bool,
                  amp: bool = True) -> torch.Tensor:
    """Sigmoid probabilities (N,1,H,W); with ``tta_hflip`` averaged with the flipped image's.

    Runs under ``torch.inference_mode``; pass ``x`` and the model in channels_last layout (see
    ``predict_to_dir``) for the fast convolutions, on the CPU as on CUDA. ``amp`` is float16
    autocast on CUDA only: bf16 autocast on the CPU flips decisions (docs/throughput.md).
    """
    with torch.autocast(x.device.type, enabled=amp and x.device.type == "cuda"):
        prob = torch.sigmoid(model(x).float())
        if tta_hflip:
            prob = 0.5 * (prob + torch.sigmoid(model(x.flip(-1)).float()).flip(-1))
    return prob


def write_each(out_dir: Path, ids: list[str], probs: np.ndarray) -> int:
    """The default writer: ``<id>.png`` for every item, at the size it was predicted."""
    for image_id, prob in zip(ids, probs, strict=True):
        write_prob(out_dir / f"{image_id}.png", prob)
    return len(ids)


def predict_to_dir(model: torch.nn.Module, dataset: Dataset, out_dir: str | Path,
                   device: torch.device, *, batch_size: int = 8, tta_hflip: bool = False,
                   collate_fn: Callable[[list[Any]], Any] | None = None,
                   write: Writer = write_each) -> dict[str, float]:
    """Predict every item of ``dataset`` and hand each batch's probabilities to ``write``.

    Items (or what ``collate_fn`` makes of them) have ``"id"`` and a uint8 ``"image"``; the
    probabilities go to ``write(out_dir, ids, probs)`` with ``probs`` float32 (N, H, W).
    Images stream through a DataLoader (in this process: decoding is a few % of the forward,
    benchmarks/predict_throughput.py), so memory depends on the batch, not the number of images.
    The model is switched to channels_last (in place) and so is each batch, on every device.
    Returns the number of images written, the seconds and the seconds per image.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False,
                        pin_memory=device.type == "cuda", collate_fn=collate_fn)
    # NHWC weights (in place, idempotent): on a 2-core CPU a 960x960 tile forward of the default
    # tile U-Net is ~1.8x faster, same decisions (benchmarks/cpu_fastpaths.py); CUDA too
    model.to(memory_format=torch.channels_last)
    start = time.perf_counter()
    images = inputs = 0
    for batch in tqdm(loader, desc=f"predict {out_dir}", mininterval=5):
        x = to_input(batch["image"], device, channels_last=True)
        probs = predict_probs(model, x, tta_hflip).squeeze(1).cpu().numpy()
        images += write(out_dir, list(batch["id"]), probs)
        inputs += len(probs)
    seconds = time.perf_counter() - start
    log.info("predicted %d images (%d model inputs) in %.1f s", images, inputs, seconds)
    return {"images": images, "seconds": seconds, "seconds_per_image": seconds / max(images, 1)}
