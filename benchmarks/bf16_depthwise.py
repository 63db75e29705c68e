"""A training step of the carvana-cpu preset's models: float32, bf16 autocast with the
depthwise convolutions in float32 (``carvana.models.precision``, the default), and bf16 with
them in bf16 (as before that module).

    python benchmarks/bf16_depthwise.py [--repeats 5] [--rounds 3] [--threads 2]

Each (shape, mode) runs in a fresh process: the EfficientNet-Lite0 U-Net (random encoder
weights: speed does not depend on them) in channels_last, 2 warm-up Adam steps on random data
of the preset's batch shape, then ``--repeats`` timed steps; its median. The settings run in
``--rounds`` interleaved rounds (this machine's speed drifts between minutes), and each row
reports the median of the rounds' medians and their range. Also the peak RSS (ru_maxrss).
Results go to stdout and benchmarks/results/bf16_depthwise.json. What the change does to
Dice is measured whole by benchmarks/real_splits.py (docs/real-photos.md).
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

#: (label, input channels, (height, width), images a batch, prior_residual): the preset's
#: low-res models on whole photos, and its depth models on 384-px crops (2 photos, 2 tiles each).
SHAPES = {
    "effl0_320": (3, (320, 480), 4, False),
    "effl0_640": (3, (640, 960), 4, False),
    "effl0_depth": (4, (384, 384), 4, True),
}
MODES = ("float32", "bf16", "bf16_depthwise_bf16")


def child(shape: str, mode: str, repeats: int, threads: int) -> dict:
    """One setting, in this process: median seconds per step and peak RSS in MB."""
    import torch

    from carvana.losses import bce_dice_loss
    from carvana.models import create_model
    from carvana.models.precision import float32_depthwise

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    channels, (height, width), images, prior = SHAPES[shape]
    model = create_model("efficientnet_unet", in_channels=channels, encoder="lite0",
                         pretrained=False, prior_residual=prior).train()
    if mode == "bf16_depthwise_bf16":
        float32_depthwise(model, enabled=False)
    model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(images, channels, height, width).contiguous(memory_format=torch.channels_last)
    y = (torch.rand(images, 1, height, width) > 0.5).float()
    times = []
    for i in range(2 + repeats):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode != "float32"):
            logits = model(x)
        bce_dice_loss(logits, y).backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"median_s": statistics.median(times), "peak_rss_mb": rss_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.repeats, args.threads)))
        return
    runs: dict[tuple[str, str], list[dict]] = {(s, m): [] for s in SHAPES for m in MODES}
    for _ in range(args.rounds):
        for shape, mode in runs:
            out = subprocess.run(
                [sys.executable, __file__, "--repeats", str(args.repeats), "--threads",
                 str(args.threads), "--child", shape, mode],
                capture_output=True, text=True, check=True)
            runs[shape, mode].append(json.loads(out.stdout))
    rows = []
    for (shape, mode), found in runs.items():
        steps = [r["median_s"] for r in found]
        rows.append({"shape": shape, "mode": mode, "median_s": statistics.median(steps),
                     "min_s": min(steps), "max_s": max(steps),
                     "peak_rss_mb": max(r["peak_rss_mb"] for r in found)})
        print(f"{shape:12s} {mode:20s} {rows[-1]['median_s']:6.2f} s/step "
              f"({min(steps):.2f}-{max(steps):.2f})  {rows[-1]['peak_rss_mb']:6.0f} MB peak",
              flush=True)
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "bf16_depthwise.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
