"""Before/after medians of the CPU fast paths (issue 11.4), on the real sample when present.

Run by hand:  python benchmarks/cpu_fastpaths.py [--repeats 7] [--files 16]

- tile forward: one 960x960 tile through the default tile U-Net (config.yaml ``models.fullres``
  params), before = contiguous under ``no_grad``, after = channels_last under ``inference_mode``
  (as ``predict_to_dir`` runs them, with either writer); max |dp| and changed decisions
  at 0.5;
- read_mask: the old version (``np.unique``) against ``carvana.io.read_mask``, per GIF mask;
- JPEG decode: PIL (the old ``read_image``) against ``carvana.io.read_image`` (cv2), full size and
  reduced (``min_size`` 128x128, i.e. 1/8), with a check that the pixels are identical.

The real photos are read in place from ../shared/carvana-sample (never copied); without them,
synthetic 1918x1280 files are written to a temporary folder. Each figure is the median of
``--repeats`` runs; the table says the load average, since other jobs may share the CPU.
Writes benchmarks/results/cpu_fastpaths.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from carvana.io import DataError, read_image, read_mask
from carvana.models import create_model

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "carvana-sample"
TILE = 960


def old_read_mask(path: Path) -> np.ndarray:
    """read_mask before the fast path: the values checked with np.unique."""
    with Image.open(path) as im:
        arr = np.asarray(im.convert("L") if im.mode not in ("P", "L", "1") else im)
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    values = np.unique(arr)
    if np.isin(values, (0, 1)).all():
        return arr.astype(np.uint8)
    if np.isin(values, (0, 255)).all():
        return (arr > 0).astype(np.uint8)
    raise DataError(f"{path}: mask values must be {{0,1}} or {{0,255}}")


def pil_read_image(path: Path, min_size: tuple[int, int] | None = None) -> np.ndarray:
    """read_image before the fast path: PIL, ``draft`` for a reduced scale."""
    with Image.open(path) as im:
        if min_size is not None:
            im.draft("RGB", min_size)
        return np.asarray(im.convert("RGB"))


def median_seconds(fn: Callable[[], object], repeats: int, per: int = 1) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs (after one warm-up), divided by ``per``."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) / per)
    return statistics.median(times)


def sample_files(n: int) -> tuple[list[Path], list[Path], str]:
    """(photos, masks, source): the real sample, spread over its cars, or synthetic stand-ins."""
    if (SAMPLE / "train").is_dir():
        photos = sorted((SAMPLE / "train").glob("*.jpg"))
        photos = photos[:: max(1, len(photos) // n)][:n]
        masks = [SAMPLE / "train_masks" / f"{p.stem}_mask.gif" for p in photos]
        return photos, masks, f"real sample ({SAMPLE})"
    folder = Path(tempfile.mkdtemp(prefix="carvana-fastpaths-"))
    rng = np.random.default_rng(0)
    photos, masks = [], []
    for k in range(n):
        yy, xx = np.mgrid[0:1280, 0:1918]
        inside = ((xx - 959) / 700.0) ** 2 + ((yy - 640) / 400.0) ** 2 < 1
        image = np.stack([xx % 256, yy % 256, inside * 200], axis=2) + rng.integers(0, 40, (1280, 1918, 3))
        photos.append(folder / f"{k:012x}_01.jpg")
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(photos[-1], quality=90)
        masks.append(folder / f"{k:012x}_01_mask.gif")
        mask = Image.fromarray(inside.astype(np.uint8), "P")
        mask.putpalette([0, 0, 0, 255, 255, 255])
        mask.save(masks[-1])
    return photos, masks, f"synthetic 1918x1280 files in {folder}"


def tile_forward(photo: Path, repeats: int) -> dict[str, float]:
    """One 960x960 tile through the default tile U-Net: contiguous vs channels_last."""
    params = yaml.safe_load((REPO / "config.yaml").read_text())["models"]["fullres"]["params"]
    torch.manual_seed(0)
    model = create_model("unet", in_channels=3, **params).eval()
    x = torch.from_numpy(read_image(photo)[:TILE, :TILE].transpose(2, 0, 1).copy())[None]
    x = x.float().div_(255.0)

    def before() -> torch.Tensor:
        with torch.no_grad():
            return torch.sigmoid(model(x))

    ref = before()
    t_before = median_seconds(before, repeats)
    with torch.inference_mode():
        t_inference = median_seconds(lambda: torch.sigmoid(model(x)), repeats)
    model.to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        fast = torch.sigmoid(model(x_cl))
        t_after = median_seconds(lambda: torch.sigmoid(model(x_cl)), repeats)
    return {"before_s": t_before, "inference_mode_only_s": t_inference, "after_s": t_after,
            "max_abs_dp": float((fast - ref).abs().max()),
            "changed_at_0.5": int(((fast > 0.5) != (ref > 0.5)).sum()),
            "params": params, "threads": torch.get_num_threads()}


def readers(photos: list[Path], masks: list[Path], repeats: int) -> dict[str, dict[str, float]]:
    """Per-file medians of the mask and JPEG readers, old against new, with identity checks."""
    n = len(photos)
    out: dict[str, dict[str, float]] = {}
    same = all(np.array_equal(old_read_mask(m), read_mask(m)) for m in masks)
    out["read_mask"] = {
        "before_s": median_seconds(lambda: [old_read_mask(m) for m in masks], repeats, n),
        "after_s": median_seconds(lambda: [read_mask(m) for m in masks], repeats, n),
        "identical": same}
    for label, size in (("jpeg_full", None), ("jpeg_reduced_1/8", (128, 128))):
        same = all(np.array_equal(pil_read_image(p, size), read_image(p, min_size=size))
                   for p in photos)
        out[label] = {
            "before_s": median_seconds(lambda s=size: [pil_read_image(p, s) for p in photos],
                                       repeats, n),
            "after_s": median_seconds(lambda s=size: [read_image(p, min_size=s) for p in photos],
                                      repeats, n),
            "identical": same}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per figure (median)")
    parser.add_argument("--files", type=int, default=16, help="photos/masks per reader run")
    args = parser.parse_args()
    photos, masks, source = sample_files(args.files)
    load_before = os.getloadavg()[0]
    rows = {"tile_forward_960": tile_forward(photos[0], args.repeats),
            **readers(photos, masks, args.repeats)}
    result = {"source": source, "files": len(photos), "repeats": args.repeats,
              "cpus": os.cpu_count(), "loadavg_1min": [load_before, os.getloadavg()[0]],
              "rows": rows}
    print(f"{source}; {len(photos)} files; median of {args.repeats}; cpus {os.cpu_count()}; "
          f"1-min load {load_before:.2f} -> {os.getloadavg()[0]:.2f}")
    print(f"{'path':<18} {'before ms':>10} {'after ms':>10} {'speed-up':>9}  same result")
    for name, row in rows.items():
        same = (f"max|dp| {row['max_abs_dp']:.1e}, {row['changed_at_0.5']} flips at 0.5"
                if "max_abs_dp" in row else ("identical" if row["identical"] else "DIFFERENT"))
        print(f"{name:<18} {1e3 * row['before_s']:>10.2f} {1e3 * row['after_s']:>10.2f} "
              f"{row['before_s'] / row['after_s']:>8.2f}x  {same}")
    tile = rows["tile_forward_960"]
    print(f"(tile forward under inference_mode, still contiguous: "
          f"{1e3 * tile['inference_mode_only_s']:.1f} ms)")
    out = REPO / "benchmarks" / "results" / "cpu_fastpaths.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
