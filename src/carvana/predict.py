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

from carvana.backends import BackendSpec, model_runner, probabilities
from carvana.checkpoint import load_checkpoint
from carvana.io import write_prob
from carvana.models import SegmentationModel, build_for_loading
from carvana.tensors import to_input

log = logging.getLogger(__name__)
CPU = torch.device("cpu")

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


def write_each(out_dir: Path, ids: list[str], probs: np.ndarray) -> int:
    """The default writer: ``<id>.png`` for every item, at the size it was predicted."""
    for image_id, prob in zip(ids, probs, strict=True):
        write_prob(out_dir / f"{image_id}.png", prob)
    return len(ids)


# Past ``device`` every argument is keyword-only with a default: callers name what they
# change (test and tile jobs, benchmarks), and existing calls keep working.
def predict_to_dir(  # noqa: PLR0913
        model: torch.nn.Module, dataset: Dataset, out_dir: str | Path, device: torch.device, *,
        batch_size: int = 8, tta_hflip: bool = False,
        collate_fn: Callable[[list[Any]], Any] | None = None, write: Writer = write_each,
        spec: BackendSpec | None = None, cache_dir: str | Path | None = None
) -> dict[str, Any]:
    """Predict every item of ``dataset`` and hand each batch's probabilities to ``write``.

    Items (or what ``collate_fn`` makes of them) have ``"id"`` and a uint8 ``"image"``; the
    probabilities go to ``write(out_dir, ids, probs)`` with ``probs`` float32 (N, H, W).
    Images stream through a DataLoader (in this process: decoding is a few % of the forward,
    benchmarks/predict_throughput.py), so memory depends on the batch, not the number of images.
    The forward passes run on one ``carvana.backends.model_runner`` for ``spec`` (default
    PyTorch float32: the model switched to channels_last in place, as is each batch, on every
    device; onnxruntime / openvino: one graph per input shape, exported on first use into
    ``cache_dir`` (reused by every later job on the same weights) or a temporary folder).
    Returns the number of images written, the seconds, the seconds per image, and the backend
    and precision that ran (after any fallback: bf16 without native support, torch on CUDA).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn)
    # torch: NHWC weights (in place, idempotent); on a 2-core CPU a 960x960 tile forward of the
    # default tile U-Net is ~1.8x faster, same decisions (benchmarks/cpu_fastpaths.py); CUDA too
    runner = model_runner(model, spec or BackendSpec(), device=device, cache_dir=cache_dir)
    start = time.perf_counter()
    images = inputs = 0
    for batch in tqdm(loader, desc=f"predict {out_dir}", mininterval=5):
        x = to_input(batch["image"], CPU, channels_last=False).numpy()  # the runner moves it
        probs = probabilities(runner, x, tta_hflip=tta_hflip)
        images += write(out_dir, list(batch["id"]), probs)
        inputs += len(probs)
    seconds = time.perf_counter() - start
    log.info("predicted %d images (%d model inputs) in %.1f s", images, inputs, seconds)
    return {"images": images, "seconds": seconds, "seconds_per_image": seconds / max(images, 1),
            "backend": runner.spec.backend, "precision": runner.spec.precision}
