"""Parameters and CPU time per training epoch of every model defined in a config.

Run by hand:  python benchmarks/arch_speed.py [--config config.yaml] [--images 205] [--threads 2]
An epoch is --images images (the default data's training fold) at the model's size, batch 8,
forward + backward + Adam step, no augmentation. Writes benchmarks/results/arch_speed.csv.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from carvana.losses import bce_dice_loss
from carvana.models import count_parameters, create_model

REPO = Path(__file__).resolve().parents[1]


def seconds_per_epoch(model: torch.nn.Module, channels: int, size: int, images: int,
                      batch: int = 8, steps: int = 3) -> float:
    """Time a few training steps at (batch, channels, size, size); scale to an epoch."""
    x = torch.rand(batch, channels, size, size)
    y = (torch.rand(batch, 1, size, size) > 0.5).float()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()
    for step in range(steps + 1):  # the first step warms up
        if step == 1:
            start = time.perf_counter()
        opt.zero_grad()
        bce_dice_loss(model(x), y).backward()
        opt.step()
    per_step = (time.perf_counter() - start) / steps
    return per_step * images / batch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml")
    parser.add_argument("--images", type=int, default=205)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tile", type=int, default=256, help="tile side for input: tiles models")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = yaml.safe_load(args.config.read_text())
    rows = []
    for name, spec in config["models"].items():
        tiles = spec.get("input") == "tiles"
        size = args.tile if tiles else spec["size"]
        channels = 4 if spec.get("depth_from") else 3
        model = create_model(spec["arch"], in_channels=channels, **spec.get("params", {}))
        n = args.images * (2 if tiles else 1)  # two tiles an image
        rows.append({"model": name, "arch": spec["arch"], "input": spec.get("input", "lowres"),
                     "size": size, "in_channels": channels, "parameters": count_parameters(model),
                     "cpu_seconds_per_epoch": round(seconds_per_epoch(model, channels, size, n), 1)})
        print(rows[-1], flush=True)
    out = REPO / "benchmarks" / "results" / "arch_speed.csv"
    out.parent.mkdir(exist_ok=True)
    pd.DataFrame(rows).to_csv(out, index=False)
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
