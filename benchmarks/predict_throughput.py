"""Throughput of a preset's submission chain per real photo, and 100,064 photos projected (11.5).

Run by hand (one preset a run; OMP threads = 2 unless OMP_NUM_THREADS says otherwise):

    python benchmarks/predict_throughput.py configs/carvana-cpu.yaml \\
        --weights /tmp/realrun/results/models --photos 8
    python benchmarks/predict_throughput.py config.yaml --size synthetic --photos 8

Per photo, in process, with the package's functions and the preset's models (``submission:
source`` and every model its chain needs, ``carvana.cutouts.chain_models``):

1. decode the real JPEG with cv2 (``carvana.io.read_image``); with ``--size synthetic`` (for
   config.yaml, whose models expect its synthetic 480x320 photos) the photos are first resized
   to the preset's ``synthetic`` size and re-encoded as JPEGs in a temporary folder, so the
   decode is of a photo of the size that preset predicts;
2. every low-res model: resize, forward (``carvana.predict.predict_probs``, channels_last,
   inference_mode), 8-bit levels; the box model's box gives the tile band;
3. every tile model: the two tiles (plus the depth channel), forward, ``stitch``, 8-bit levels;
4. the ensemble's weighted average at full size (as ``carvana.ensemble``), 8-bit levels;
5. threshold + RLE (``carvana.rle.encode_prob8``);
6. the stored maps' PNG I/O the workflow adds between its jobs: each model's and the
   ensemble's map written (``write_prob``) and read back by the next job.

Models load from ``--weights DIR/<model>/weights.pt``; a model without a file is built from its
spec with random init (same arithmetic, same time) and the output says so. Forward FLOPs come
from ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs a multiply-add).

Measured: seconds per photo by stage (median over ``--photos`` real photos after one warm-up;
the shared sample is read in place, never copied), FLOPs. Projected: per core-hour, 100,064
photos on N cores (linear scaling across independent 2-thread jobs, which the shards are), and
a GPU's forward time from FLOPs / (peak x assumed utilisation), with the rest of the chain
(measured here, everything but the forwards) spread over ``HOST_CORES`` host cores. Writes
benchmarks/results/predict_throughput_<preset>.json.
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
from typing import Any

import cv2
import numpy as np
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from carvana import workflow as wf
from carvana.bbox import box_from_prob
from carvana.chain import lowres_hw
from carvana.cutouts import chain_models
from carvana.io import (
    prob_levels,
    read_image,
    read_prob,
    resize_prob,
    write_jpeg,
    write_prob,
)
from carvana.models import create_model
from carvana.predict import load_model, predict_probs
from carvana.rle import encode_prob8
from carvana.tiling import TileGeometry, cut_tiles, stitch, tile_geometry, tile_rows
from carvana.training import to_input

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "carvana-sample"
KAGGLE_TEST = 100_064
CPU = torch.device("cpu")
# Assumed GPU peaks (dense tensor-core FLOP/s, vendor sheets) and utilisation: projections only
GPUS = {"A100 (bf16 dense 312 TFLOP/s)": 312e12, "T4 (fp16 dense 65 TFLOP/s)": 65e12}
GPU_UTILISATION = 0.3
CORES = (2, 16, 64, 256)
HOST_CORES = 16  # CPU cores of the assumed GPU host: decode, stitch, PNG I/O, encode run there


def build_models(config: dict[str, Any], names: list[str], weights: Path | None
                 ) -> dict[str, tuple[torch.nn.Module, dict[str, Any], bool]]:
    """Name -> (model in eval mode and channels_last, its spec, loaded from trained weights)."""
    out = {}
    for name in names:
        spec = wf.model_spec(config, name)
        path = weights / name / "weights.pt" if weights else None
        if path is not None and path.exists():
            model, _ = load_model(path, CPU, {"name": name})
            trained = True
        else:
            torch.manual_seed(0)
            channels = 4 if spec.get("depth_from") else 3
            model = create_model(spec["arch"], in_channels=channels, **spec["params"]).eval()
            model.to(memory_format=torch.channels_last)
            trained = False
        out[name] = (model, spec, trained)
    return out


class Chain:
    """The submission chain of one preset, stage by stage, with a clock per stage."""

    def __init__(self, config: dict[str, Any], weights: Path | None, synthetic: bool) -> None:
        self.source = config["submission"]["source"]
        self.members = (wf.ensemble_members(config) if self.source == "ensemble"
                        else {self.source: 1.0})
        self.models = build_models(config, chain_models(config, self.source), weights)
        self.bbox, self.tta = config["bbox"], bool(config["predict"]["tta_hflip"])
        threshold = config["submission"]["threshold"]
        self.threshold = 0.5 if threshold == "best" else float(threshold)
        syn = config["synthetic"]
        self.size = (syn["width"], syn["height"]) if synthetic else None
        self.tiles = config["tiles"]
        self.geom: TileGeometry | None = None
        self.clock: dict[str, float] = {}

    def _timed(self, stage: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        out = fn()
        self.clock[stage] = self.clock.get(stage, 0.0) + time.perf_counter() - start
        return out

    def _forward(self, model: torch.nn.Module, batch: np.ndarray) -> np.ndarray:
        x = to_input(torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2))), CPU)
        return predict_probs(model, x, self.tta).squeeze(1).numpy()

    def _lowres(self, name: str, image: np.ndarray) -> np.ndarray:
        model, spec, _ = self.models[name]
        height, width = lowres_hw(spec["size"])
        small = self._timed(f"{name}: resize", lambda: cv2.resize(
            image, (width, height), interpolation=cv2.INTER_AREA)[None])
        prob = self._timed(f"{name}: forward", lambda: self._forward(model, small)[0])
        return self._timed(f"{name}: 8-bit", lambda: prob_levels(prob))

    def _tiles(self, name: str, image: np.ndarray, levels: dict[str, np.ndarray]) -> np.ndarray:
        model, spec, _ = self.models[name]
        geom, size = self.geom, image.shape[1::-1]
        box = box_from_prob(levels[self.bbox["model"]] / np.float32(255), self.bbox["threshold"],
                            size)
        rows = (tile_rows(box.r0, box.r1, geom, int(self.bbox["margin"])) if box
                else tile_rows(0, geom.height, geom))
        full = image
        if spec.get("depth_from"):
            depth = resize_prob(levels[spec["depth_from"]] / np.float32(255), size)
            full = self._timed(f"{name}: depth channel", lambda: np.concatenate(
                [image, np.rint(depth * 255).astype(np.uint8)[..., None]], 2))
        tiles = self._timed(f"{name}: cut", lambda: cut_tiles(full, rows, geom))
        prob = self._timed(f"{name}: forward", lambda: self._forward(model, tiles))
        return self._timed(f"{name}: stitch + 8-bit",
                           lambda: prob_levels(stitch(prob, rows, geom)))

    def photo(self, path: Path, store: Path) -> str:
        """One photo through the chain; returns its RLE string."""
        image = self._timed("decode (cv2)", lambda: read_image(path))
        if self.geom is None:
            self.geom = tile_geometry(image.shape[1], image.shape[0], self.tiles.get("size"),
                                      self.tiles.get("multiple", 32),
                                      self.tiles.get("min_overlap", 0))
        levels: dict[str, np.ndarray] = {}
        for name, (_, spec, _) in self.models.items():  # chain order: box/depth models first
            levels[name] = (self._tiles(name, image, levels) if spec.get("input") == "tiles"
                            else self._lowres(name, image))
            self._timed("PNG write + read", lambda name=name: _round_trip(store, name,
                                                                          levels[name]))
        final = levels[self.source] if self.source != "ensemble" else self._timed(
            "ensemble", lambda: _ensemble(levels, self.members, image.shape[1::-1]))
        if self.source == "ensemble":
            self._timed("PNG write + read", lambda: _round_trip(store, "ensemble", final))
        return self._timed("threshold + RLE", lambda: encode_prob8(final, self.threshold))


def _round_trip(store: Path, name: str, levels: np.ndarray) -> None:
    """Write a map as the prediction jobs do and read it back as the next job does."""
    write_prob(store / f"{name}.png", levels / np.float32(255))
    read_prob(store / f"{name}.png")


def _ensemble(levels: dict[str, np.ndarray], members: dict[str, float],
              size: tuple[int, int]) -> np.ndarray:
    """The members' weighted average at full size (``carvana.ensemble``), as 8-bit levels."""
    total = sum(members.values())
    acc = np.zeros(size[::-1], np.float32)
    for name, weight in members.items():
        acc += (weight / total) * resize_prob(levels[name] / np.float32(255), size)
    return prob_levels(acc)


def forward_flops(chain: Chain, image_hw: tuple[int, int]) -> dict[str, int]:
    """FLOPs of each model's forward for one photo (TTA doubles them)."""
    out = {}
    for name, (model, spec, _) in chain.models.items():
        channels = 4 if spec.get("depth_from") else 3
        if spec.get("input") == "tiles":
            t = chain.geom.tile
            x = torch.zeros(2, channels, t, t)
        else:
            x = torch.zeros(1, channels, *lowres_hw(spec["size"]))
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            model(x.contiguous(memory_format=torch.channels_last))
        out[name] = int(counter.get_total_flops()) * (2 if chain.tta else 1)
    return out


def photos_of(sample: Path, n: int) -> list[Path]:
    """``n`` + 1 real photos spread over the sample's cars (the first is the warm-up)."""
    paths = sorted((sample / "train").glob("*.jpg"))
    if len(paths) < 2:
        raise SystemExit(f"{sample}/train: no real photos; pass --sample DIR")
    step = max(1, len(paths) // (n + 1))
    return paths[::step][: n + 1]


def resized_copies(paths: list[Path], size: tuple[int, int], quality: int, folder: Path
                   ) -> list[Path]:
    """The photos resized to ``size`` (width, height) as JPEGs in ``folder`` (a temporary one)."""
    out = []
    for path in paths:
        small = cv2.resize(read_image(path), size, interpolation=cv2.INTER_AREA)
        out.append(folder / path.name)
        write_jpeg(out[-1], small, quality=quality)
    return out


def measure(chain: Chain, paths: list[Path], quality: int) -> dict[str, Any]:
    """Per-stage seconds of each photo after the warm-up: medians and every total."""
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as store:
        if chain.size is not None:
            paths = resized_copies(paths, chain.size, quality, Path(store))
        for k, path in enumerate(paths):
            chain.clock = {}
            start = time.perf_counter()
            chain.photo(path, Path(store))
            total = time.perf_counter() - start
            if k:
                runs.append({**chain.clock, "total": total})
    stages = list(runs[0])
    return {"stages": {s: statistics.median(r[s] for r in runs) for s in stages},
            "totals": [round(r["total"], 4) for r in runs]}


def project(seconds: float, threads: int, flops: int, cpu_side: float) -> dict[str, Any]:
    """Measured rate to per core-hour, 100,064 photos on N cores, and GPU projections."""
    core_seconds = seconds * threads
    gpu = {}
    for name, peak in GPUS.items():
        forward = flops / (peak * GPU_UTILISATION)
        host = cpu_side * threads / HOST_CORES  # the rest of the chain, spread over the host
        gpu[name] = {"forward_s_per_photo": forward,
                     "hours_100k_forward": KAGGLE_TEST * forward / 3600,
                     "host_cores_to_keep_up": cpu_side * threads / forward,
                     "hours_100k_with_host": KAGGLE_TEST * max(forward, host) / 3600}
    return {"photos_per_second": 1 / seconds, "photos_per_core_hour": 3600 / core_seconds,
            "hours_100k_on_cores": {n: KAGGLE_TEST * core_seconds / n / 3600 for n in CORES},
            "gpu": gpu}


def duration(hours: float) -> str:
    """Hours as h, min or s, whichever reads best."""
    if hours >= 1:
        return f"{hours:.1f} h"
    return f"{60 * hours:.1f} min" if hours >= 1 / 60 else f"{3600 * hours:.0f} s"


def table(result: dict[str, Any]) -> str:
    """The markdown lines of one run: stages measured, then the projections."""
    stages, proj = result["stages"], result["projection"]
    lines = ["| stage (measured, median s per photo) | s |", "|---|---|"]
    lines += [f"| {name} | {sec:.4f} |" for name, sec in stages.items()]
    lines += ["", "| figure | value | kind |", "|---|---|---|",
              f"| photos per second (2 threads) | {proj['photos_per_second']:.3f} | measured |",
              f"| photos per core-hour | {proj['photos_per_core_hour']:.0f} | measured |",
              f"| forward FLOPs per photo (2 a multiply-add) | "
              f"{result['flops_per_photo'] / 1e9:.1f} G | measured |"]
    lines += [f"| 100,064 photos on {n} cores | {duration(h)} | projected (linear) |"
              for n, h in proj["hours_100k_on_cores"].items()]
    for name, gpu in proj["gpu"].items():
        lines.append(f"| 100,064 photos, forward only, one {name} at "
                     f"{GPU_UTILISATION:.0%} | {duration(gpu['hours_100k_forward'])} | "
                     "projected |")
        lines.append(f"| host cores to keep that {name.split()[0]} fed | "
                     f"{gpu['host_cores_to_keep_up']:.0f} | projected |")
        lines.append(f"| 100,064 photos, that {name.split()[0]} + {HOST_CORES} host cores "
                     f"(the slower of the two) | {duration(gpu['hours_100k_with_host'])} | "
                     "projected |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", type=Path, help="a preset: config.yaml or configs/*.yaml")
    parser.add_argument("--weights", type=Path, help="a results/models folder of trained models")
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--sample", type=Path, default=SAMPLE)
    parser.add_argument("--size", choices=["native", "synthetic"], default="native",
                        help="photos as they are (1918x1280), or resized to the preset's "
                             "synthetic size (config.yaml's models expect 480x320)")
    args = parser.parse_args()
    threads = int(os.environ.get("OMP_NUM_THREADS", 2))
    torch.set_num_threads(threads)
    config = yaml.safe_load(args.config.read_text())
    chain = Chain(config, args.weights, args.size == "synthetic")
    paths = photos_of(args.sample, args.photos)
    load = os.getloadavg()[0]
    run = measure(chain, paths, int(config["synthetic"]["jpeg_quality"]))
    flops = forward_flops(chain, (chain.geom.height, chain.geom.width))
    seconds = run["stages"]["total"]
    forward = sum(v for k, v in run["stages"].items() if k.endswith(": forward"))
    result = {
        "preset": str(args.config), "source": chain.source, "threshold": chain.threshold,
        "models": {n: "trained " + str(args.weights / n / "weights.pt") if t
                   else "random init (no weights file; the time is the same)"
                   for n, (_, _, t) in chain.models.items()},
        "photo_size": [chain.geom.width, chain.geom.height], "tile": chain.geom.tile,
        "photos": len(paths) - 1, "threads": threads, "torch": torch.__version__,
        "load_before": load, "load_after": os.getloadavg()[0], "stages": run["stages"],
        "totals": run["totals"], "forward_share": forward / seconds, "flops": flops,
        "flops_per_photo": sum(flops.values()),
        "projection": project(seconds, threads, sum(flops.values()), seconds - forward)}
    for name, how in result["models"].items():
        print(f"{name}: {how}")
    print(f"{result['photos']} photos of {chain.geom.width}x{chain.geom.height}, {threads} "
          f"threads, load {load:.2f} -> {result['load_after']:.2f}; forward "
          f"{100 * result['forward_share']:.0f} % of the time")
    print(table(result))
    out = REPO / "benchmarks" / "results" / f"predict_throughput_{args.config.stem}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
