"""Calibrate carvana.resources: peak RSS and time of a training step and a prediction batch.

Run by hand:  python benchmarks/memory_calibration.py [--quick] [--bf16 [--map-point]]
              [--only ARCH ...]

``--bf16`` measures each training point a second time under bfloat16 autocast
(``training.cpu_bf16``) and fits it as its own line (``train_bf16``: carvana.resources'
``train_bf16_mb``); ``--map-point`` adds a bf16 step of 4 inputs at 640x960 (carvana-cpu's
map: about a minute more for the two EfficientNet U-Nets); ``--only`` restricts the run (and the
JSON it writes) to the named architectures.

For each architecture (unet, efficientnet_unet, tiramisu, inception_unet, with the presets'
parameters; plus a narrower U-Net and the Lite2 encoder to check how the cost scales with
``carvana.resources.memory_width``) and a couple of batch shapes, a fresh Python process
imports what a model job imports, builds the model, then either trains it for a few steps
(``carvana.training.train``: the real loop with augmentation, loss, optimizer, one validation)
or predicts a batch (``carvana.predict.predict_to_dir``), and reports:

- ``base``: RSS (MB) after imports, model and data, before the first step;
- ``peak``: the process's peak RSS (``ru_maxrss``);
- ``seconds``: CPU time (user + system) of a step or batch after the first (the median of the
  2nd and 3rd) on one thread: what one core takes, whatever else shares the machine (a job
  with 2 threads takes less wall time).

The activation cost is ``(peak - base) / (width x megapixels of the batch)``; per architecture
the script fits a line through the points (the least-squares slope is the formula's
``train_mb`` / ``infer_mb``; the intercept is raised until no point lies above the line) and
prints the slowest seconds per megapixel, and writes benchmarks/results/memory_calibration.json.
Runs are short (4 steps or 3 batches at up to 448 px, under ``nice``); the whole calibration takes a few minutes on 2
cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "memory_calibration.json"

#: (label, arch, params): the presets' models (config.yaml, configs/carvana-cpu.yaml).
VARIANTS = [
    ("unet f8", "unet", {"initial_filters": 8, "depth": 4, "up_convs": 2}),
    ("unet f4", "unet", {"initial_filters": 4, "depth": 3, "up_convs": 2}),
    ("efficientnet lite0", "efficientnet_unet",
     {"encoder": "lite0", "pretrained": False, "decoder_channels": [256, 128, 64, 32, 16]}),
    ("efficientnet lite2", "efficientnet_unet",
     {"encoder": "lite2", "pretrained": False, "decoder_channels": [256, 128, 64, 32, 16]}),
    ("tiramisu", "tiramisu", {"down_blocks": [3, 3, 3], "bottleneck_layers": 3,
                              "growth_rate": 8, "first_filters": 16, "dropout": 0.2}),
    ("inception_unet f8", "inception_unet", {"initial_filters": 8, "depth": 3}),
]
#: (mode, inputs, side): network inputs per step and their side in pixels.
POINTS = [("train", 2, 256), ("train", 4, 448), ("predict", 4, 256), ("predict", 8, 448)]
QUICK_POINTS = [("train", 2, 192), ("train", 4, 256), ("predict", 2, 192), ("predict", 4, 256)]
#: ``--map-point``: a bfloat16 training step of carvana-cpu's 640x960 map (batch 4), that
#: preset's largest step, so that the bf16 line is fitted where its requests matter.
MAP_POINT = ("train_bf16", 4, (640, 960))


def pixels(side: int | Sequence[int]) -> int:
    """Pixels of one input: ``side`` squared, or ``(height, width)``."""
    return side * side if isinstance(side, int) else int(side[0]) * int(side[1])


def rss_mb() -> float:
    """The current resident set size, MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s() -> float:
    """This process's CPU time (user + system), seconds."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(arch: str, params: dict, mode: str, inputs: int, side: int | Sequence[int],
          bf16: bool = False) -> dict[str, float]:
    """One measurement in this (fresh) process; see the module docstring. ``bf16``: training
    steps under bfloat16 autocast (``training.cpu_bf16``)."""
    import resource
    import statistics

    import snakemake.script  # noqa: F401  (what a script job imports besides the package)
    import torch

    from carvana import training
    from carvana.models import create_model
    from carvana.predict import predict_to_dir
    from carvana.training import TrainConfig

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = create_model(arch, in_channels=3, **params)
    h, w = (side, side) if isinstance(side, int) else side
    items = [{"id": f"x{i}", "image": torch.randint(0, 256, (3, h, w), dtype=torch.uint8),
              "mask": (torch.rand(1, h, w) > 0.5).to(torch.uint8)} for i in range(inputs)]
    base = rss_mb()
    marks: list[float] = []  # CPU time after each step or batch
    if mode == "train":
        cfg = TrainConfig(steps=4, batch_size=inputs, eval_every_steps=4, cache_mb=0,
                          min_val_dice=0.0, cpu_bf16=bf16)
        if hasattr(training, "TrainData"):  # train(model, data, cfg, device, seed)
            training.train(model, training.TrainData(items, items), cfg, torch.device("cpu"), 0,
                           on_step=lambda step, m: marks.append(cpu_s()))
        else:
            training.train(model, items, items, cfg, torch.device("cpu"), 0,
                           on_step=lambda step, m: marks.append(cpu_s()))
    else:
        def write(out: object, ids: list[str], probs: object) -> int:
            marks.append(cpu_s())
            return len(ids)

        predict_to_dir(model.eval(), items * 3, "/tmp", torch.device("cpu"), batch_size=inputs,
                       write=write)
    # the steps (batches) after the first, before the last (which validates)
    seconds = statistics.median(b - a for a, b in zip(marks[:2], marks[1:3], strict=True))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"base_mb": base, "peak_mb": peak, "seconds": seconds}


def measure(arch: str, params: dict, mode: str, inputs: int, side: int | Sequence[int],
            bf16: bool = False) -> dict[str, float]:
    """Run ``child`` in a fresh interpreter, on one thread: its CPU time is then one core's
    compute, with no spinning of idle OpenMP threads (a 2-thread job is faster)."""
    job = json.dumps([arch, params, mode, inputs, side, bf16])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["nice", "-n", "10", sys.executable, __file__, "--child", job], capture_output=True,
                          text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fit(rows: list[dict]) -> dict[str, float]:
    """Per mode: the least-squares slope of (peak - base) on width x megapixels, and the
    smallest intercept that puts every point on or under the line; the slowest s/wMpx."""
    out: dict[str, float] = {"base_mb": max(r["base_mb"] for r in rows)}
    for mode in sorted({r["mode"] for r in rows}):
        pts = [(r["width"] * r["inputs"] * pixels(r["side"]) / 1e6, r["peak_mb"] - r["base_mb"])
               for r in rows if r["mode"] == mode]
        mx, my = (sum(p[i] for p in pts) / len(pts) for i in (0, 1))
        sxx = sum((x - mx) ** 2 for x, _ in pts)
        slope = sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else my / mx
        slope = max(slope, 0.0)
        out[f"{mode}_mb"] = slope
        out[f"{mode}_fixed_mb"] = max(0.0, max(y - slope * x for x, y in pts))
        out[f"{mode}_s"] = max(r["s_per_mpx"] for r in rows if r["mode"] == mode)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, smaller points")
    parser.add_argument("--bf16", action="store_true",
                        help="also each training point under bfloat16 autocast (train_bf16)")
    parser.add_argument("--map-point", action="store_true",
                        help="with --bf16: also a bf16 step of 4 inputs at 640x960")
    parser.add_argument("--only", nargs="+", default=None, metavar="ARCH",
                        help="calibrate only these architectures")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.map_point and not args.bf16:
        parser.error("--map-point is a bf16 point: give --bf16 too")
    if args.child:
        print(json.dumps(child(*json.loads(args.child))))
        return
    from carvana.resources import memory_width

    rows = []
    variants = [v for v in VARIANTS if args.only is None or v[1] in args.only]
    points = QUICK_POINTS if args.quick else POINTS
    if args.bf16:
        points = points + [("train_bf16", n, s) for mode, n, s in points if mode == "train"]
        if args.map_point:
            points.append(MAP_POINT)
    for label, arch, params in variants:
        width = memory_width(arch, params)
        for mode, inputs, side in points:
            m = measure(arch, params, mode.removesuffix("_bf16"), inputs, side,
                        bf16=mode.endswith("_bf16"))
            wmpx = width * inputs * pixels(side) / 1e6
            rows.append({"variant": label, "arch": arch, "width": width, "mode": mode,
                         "inputs": inputs, "side": side, **m,
                         "mb_per_wmpx": (m["peak_mb"] - m["base_mb"]) / wmpx,
                         "s_per_mpx": m["seconds"] / (inputs * pixels(side) / 1e6)})
            r = rows[-1]
            shape = f"{side:3d}^2" if isinstance(side, int) else "x".join(map(str, side))
            print(f"{label:20s} {mode:10s} {inputs:2d} x {shape:7s}  base {r['base_mb']:6.0f} MB"
                  f"  peak {r['peak_mb']:6.0f} MB  {r['mb_per_wmpx']:7.1f} MB/wMpx"
                  f"  {r['seconds']:6.2f} s  {r['s_per_mpx']:6.2f} s/Mpx", flush=True)
    fitted = {label: {"arch": arch, **fit([r for r in rows if r["variant"] == label])}
              for label, arch, _ in variants}
    print("\nper variant: fixed MB + MB per width-megapixel (an upper line through the points), "
          "CPU s per megapixel")
    for label, f in fitted.items():
        print(f"{label:20s} base {f['base_mb']:5.0f}  train {f['train_fixed_mb']:5.0f} + "
              f"{f['train_mb']:6.1f} MB, {f['train_s']:5.2f} s   predict {f['predict_fixed_mb']:5.0f}"
              f" + {f['predict_mb']:6.1f} MB, {f['predict_s']:5.2f} s"
              + (f"   train bf16 {f['train_bf16_fixed_mb']:5.0f} + {f['train_bf16_mb']:6.1f} MB"
                 if "train_bf16_mb" in f else ""))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"load_average": os.getloadavg(), "rows": rows,
                               "fitted": fitted}, indent=1))


if __name__ == "__main__":
    main()
