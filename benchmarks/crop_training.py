"""Training a tile model on random crops of the full-resolution band against whole tiles:
seconds per optimizer step and peak memory, each setting in a fresh process.

    python benchmarks/crop_training.py [--repeats 5] [--threads 2]

Each child process builds the model, runs 2 warm-up steps and ``--repeats`` timed steps of
Adam on random data shaped as the workflow's batches (``batch`` images -> 2 tiles each, RGB
plus, for the depth model, a 4th channel), in channels_last as ``carvana.training`` does
(float32, or bfloat16 autocast as ``training: cpu_bf16`` sets), and reports the median step time and its peak RSS (ru_maxrss). Results go to stdout and to
benchmarks/results/crop_training.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

SETTINGS = [  # (label, arch params, channels, side, images per batch, bf16 autocast)
    ("efficientnet_unet lite0, whole 960 tiles", "effl0", 3, 960, 2, False),
    ("efficientnet_unet lite0, 384 crops", "effl0", 3, 384, 2, False),
    ("efficientnet_unet lite0, 384 crops, bf16", "effl0", 3, 384, 2, True),
    ("efficientnet_unet lite0 + depth, 384 crops", "effl0", 4, 384, 2, False),
    ("efficientnet_unet lite0 + depth, 384 crops, bf16", "effl0", 4, 384, 2, True),
    ("unet 8->128 (config.yaml fullres), whole 960 tiles", "unet8", 3, 960, 4, False),
    ("unet 8->128 (config.yaml fullres), 384 crops", "unet8", 3, 384, 4, False),
]
ARCHS = {
    "effl0": ("efficientnet_unet", {"encoder": "lite0", "pretrained": False}),
    "unet8": ("unet", {"initial_filters": 8, "depth": 4, "up_convs": 2}),
}


def child(arch_key: str, channels: int, side: int, images: int, repeats: int,
          threads: int, bf16: bool) -> dict:
    """One setting, in this process: median seconds per step and peak RSS in MB."""
    import torch

    from carvana.losses import bce_dice_loss
    from carvana.models import create_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    arch, params = ARCHS[arch_key]
    model = create_model(arch, in_channels=channels, **params).train()
    model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(2 * images, channels, side, side).contiguous(memory_format=torch.channels_last)
    y = (torch.rand(2 * images, 1, side, side) > 0.5).float()
    times = []
    for i in range(2 + repeats):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        bce_dice_loss(logits, y).backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"median_s": statistics.median(times), "min_s": min(times), "peak_rss_mb": rss_mb,
            "pixels_per_step": 2 * images * side * side}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        arch, channels, side, images, bf16 = args.child
        print(json.dumps(child(arch, int(channels), int(side), int(images), args.repeats,
                               args.threads, bf16 == "bf16")))
        return
    rows = []
    for label, arch, channels, side, images, bf16 in SETTINGS:
        out = subprocess.run(
            [sys.executable, __file__, "--repeats", str(args.repeats), "--threads",
             str(args.threads), "--child", arch, str(channels), str(side), str(images),
             "bf16" if bf16 else "float32"],
            capture_output=True, text=True, check=True)
        row = {"setting": label, "images_per_batch": images, **json.loads(out.stdout)}
        rows.append(row)
        print(f"{label:55s} {row['median_s']:7.2f} s/step  {row['peak_rss_mb']:7.0f} MB peak"
              f"  ({row['pixels_per_step'] / 1e6:.2f} Mpx/step)", flush=True)
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "crop_training.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
