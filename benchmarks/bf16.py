"""bf16 autocast on the CPU against float32 for a 960x960 tile forward (issue 11.4).

Run by hand:  python benchmarks/bf16.py [--photos 8] [--repeats 7]
                  [--weights /tmp/realrun/results/models/effl0_tiles/weights.pt]

Models: (a) the default tile U-Net (config.yaml ``models.fullres`` params), (b) the
EfficientNet-Lite0 U-Net (ImageNet encoder) of configs/carvana-cpu.yaml, and with ``--weights``
a trained checkpoint (loaded as the prediction rules load it). Both run channels_last under
``torch.inference_mode`` as ``carvana.predict`` runs them; bf16 is ``torch.autocast('cpu',
dtype=torch.bfloat16)`` around the forward.

Inputs are real: each photo's two 960 tiles, cut on the band of its true mask's box, from the
shared sample (read in place, never copied); one forward is one photo (2 tiles). Timings are
interleaved (float32, bf16, float32, ...) and reported as medians of ``--repeats``.

Decisions need a model that has learned something: a random network's probabilities bunch near
one value and any rounding flips them. So each model without ``--weights`` is first trained
briefly (``--train-steps`` Adam steps on random 256-px crops of the tiles of the sample's other
four cars; a few minutes), then compared on the unseen cars' tiles: changed pixels at 0.5,
max |dp| and the Dice of both against the true masks. A trained checkpoint (``--weights``,
e.g. the real run's tile model) is compared as it is. Writes benchmarks/results/bf16.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

from carvana.bbox import box_from_mask
from carvana.chain import lowres_hw
from carvana.checkpoint import read_torch
from carvana.io import read_image, read_mask, resize_mask
from carvana.losses import bce_dice_loss
from carvana.models import build_for_loading, create_model
from carvana.predict import load_model
from carvana.tensors import to_input
from carvana.tiling import cut_tiles, tile_geometry, tile_rows

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "carvana-sample"
UNSEEN = ("0795e132d090", "0ce66b539f52", "03a857ce842d")  # test and val cars of carvana-cpu
SEEN = ("00087a6bd4dc", "02159e548029", "04bd942b463b", "0789bed99cb8")


def real_tiles(sample: Path, cars: tuple[str, ...], photos: int
               ) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """(photos, 2, 3, 960, 960) uint8 tiles of ``cars``, their (photos, 2, 960, 960) masks and
    the photos' ids."""
    paths = sorted(p for car in cars for p in (sample / "train").glob(f"{car}_*.jpg"))
    if not paths:
        raise SystemExit(f"{sample}/train: no photos of cars {cars}; pass --sample DIR")
    step = max(1, len(paths) // photos)
    images, masks, ids = [], [], []
    for path in paths[::step][:photos]:
        ids.append(path.stem)
        image = read_image(path)
        mask = read_mask(sample / "train_masks" / f"{path.stem}_mask.gif")
        geom = tile_geometry(image.shape[1], image.shape[0])
        box = box_from_mask(mask)
        rows = tile_rows(box.r0, box.r1, geom, 16) if box else tile_rows(0, geom.height, geom)
        images.append(cut_tiles(image, rows, geom).transpose(0, 3, 1, 2))
        masks.append(cut_tiles(mask, rows, geom))
    return torch.from_numpy(np.ascontiguousarray(np.stack(images))), np.stack(masks), ids


def logits(model: torch.nn.Module, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    """float32 logits of a channels_last batch; with ``bf16`` under CPU bf16 autocast."""
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return model(x).float()


def brief_training(model: torch.nn.Module, tiles: torch.Tensor, masks: np.ndarray,
                   steps: int, crop: int = 256) -> None:
    """``steps`` Adam steps (BCE + soft Dice, batch 4) on random crops of the given tiles."""
    gen = torch.Generator().manual_seed(0)
    images, truth = tiles.flatten(0, 1), torch.from_numpy(masks).flatten(0, 1)[:, None]
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(steps):
        pick = torch.randint(0, len(images), (4,), generator=gen).tolist()
        y0, x0 = torch.randint(0, images.shape[-1] - crop + 1, (2,), generator=gen).tolist()
        x = to_input(images[pick][..., y0:y0 + crop, x0:x0 + crop], torch.device("cpu"))
        target = truth[pick][..., y0:y0 + crop, x0:x0 + crop].float()
        loss = bce_dice_loss(model(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two boolean arrays (1 when both are empty)."""
    total = pred.sum() + truth.sum()
    return float(2 * np.logical_and(pred, truth).sum() / total) if total else 1.0


def compare(model: torch.nn.Module, tiles: torch.Tensor, masks: np.ndarray, repeats: int
            ) -> dict[str, float]:
    """Interleaved float32/bf16 timings per photo and the decisions at 0.5 of both."""
    batches = [to_input(t, torch.device("cpu")) for t in tiles]
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for bf16 in (False, True):
            start = time.perf_counter()
            logits(model, batches[0], bf16)
            times[bf16].append(time.perf_counter() - start)
    p32 = np.stack([torch.sigmoid(logits(model, x, False)).squeeze(1).numpy() for x in batches])
    p16 = np.stack([torch.sigmoid(logits(model, x, True)).squeeze(1).numpy() for x in batches])
    changed = int(np.count_nonzero((p32 >= 0.5) != (p16 >= 0.5)))
    f32, b16 = statistics.median(times[False]), statistics.median(times[True])
    return {"float32_s_per_photo": round(f32, 4), "bf16_s_per_photo": round(b16, 4),
            "speedup": round(f32 / b16, 3), "max_abs_dp": float(np.abs(p32 - p16).max()),
            "changed_at_0.5": changed, "changed_share_at_0.5": changed / p32.size,
            "pixels": int(p32.size), "dice_float32": round(dice(p32 >= 0.5, masks > 0), 6),
            "dice_bf16": round(dice(p16 >= 0.5, masks > 0), 6),
            "float32_runs": [round(t, 4) for t in times[False]],
            "bf16_runs": [round(t, 4) for t in times[True]]}


Builder = Callable[[], tuple[torch.nn.Module, tuple[int, int] | None, bool]]


def trained(path: str) -> tuple[torch.nn.Module, tuple[int, int] | None, bool]:
    """A trained model: a weights.pt, or a training resume file ``PATH:MODEL`` (its best state;
    MODEL's spec from configs/carvana-cpu.yaml). Low-res models come with their (h, w)."""
    path, _, name = path.partition(":")
    if not name:
        model, meta = load_model(path, torch.device("cpu"))
    else:
        cpu = yaml.safe_load((REPO / "configs" / "carvana-cpu.yaml").read_text())
        meta = cpu["models"][name]
        model = build_for_loading(meta["arch"], 4 if meta.get("depth_from") else 3,
                                  meta["params"])
        model.load_state_dict(read_torch(path)["best_state"])
        model.eval().to(memory_format=torch.channels_last)
    size = lowres_hw(meta["size"]) if meta.get("input", "lowres") == "lowres" else None
    return model, size, True


def models(weights: list[str]) -> dict[str, Builder]:
    """Name -> builder of (model in eval mode and channels_last, low-res (h, w) or None for
    tiles, whether it is trained)."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    cpu = yaml.safe_load((REPO / "configs" / "carvana-cpu.yaml").read_text())

    def fresh(arch: str, params: dict) -> Builder:
        def build() -> tuple[torch.nn.Module, tuple[int, int] | None, bool]:
            torch.manual_seed(0)
            model = create_model(arch, **params).eval().to(memory_format=torch.channels_last)
            return model, None, False
        return build

    out = {"unet (config.yaml fullres)": fresh("unet", config["models"]["fullres"]["params"]),
           "efficientnet_unet lite0 (carvana-cpu effl0_tiles, ImageNet encoder)":
               fresh("efficientnet_unet", cpu["models"]["effl0_tiles"]["params"])}
    for path in weights:
        out[f"trained {path}"] = lambda path=path: trained(path)
    return out


def lowres_inputs(tiles_of: Path, ids: list[str], size: tuple[int, int]
                  ) -> tuple[torch.Tensor, np.ndarray]:
    """Whole photos at a low-res model's (h, w), one a batch, and their resized masks."""
    images, masks = [], []
    for image_id in ids:
        image = read_image(tiles_of / "train" / f"{image_id}.jpg")
        images.append(cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA)
                      .transpose(2, 0, 1)[None])
        mask = read_mask(tiles_of / "train_masks" / f"{image_id}_mask.gif")
        masks.append(resize_mask(mask, size[::-1])[None])
    return torch.from_numpy(np.ascontiguousarray(np.stack(images))), np.stack(masks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sample", type=Path, default=SAMPLE)
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--train-steps", type=int, default=150,
                        help="brief training of the models without --weights (0: none)")
    parser.add_argument("--only-weights", action="store_true",
                        help="compare the --weights checkpoints only")
    parser.add_argument("--weights", nargs="*", default=[],
                        help="trained checkpoints: weights.pt, or RESUME.pt:MODEL (a training "
                             "resume file's best state, MODEL as in configs/carvana-cpu.yaml)")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 2)))
    tiles, masks, ids = real_tiles(args.sample, UNSEEN, args.photos)
    builders = models(args.weights)
    if args.only_weights:
        builders = {k: v for k, v in builders.items() if k.startswith("trained ")}
    elif args.train_steps:
        train_tiles, train_masks, _ = real_tiles(args.sample, SEEN, 24)
    out = REPO / "benchmarks" / "results" / "bf16.json"
    results = json.loads(out.read_text()) if out.exists() else {"models": {}}
    results.update({"cpu_capability": torch.backends.cpu.get_cpu_capability(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()})
    for name, build in builders.items():
        load = os.getloadavg()[0]
        model, size, is_trained = build()
        if not is_trained and args.train_steps:
            start = time.perf_counter()
            brief_training(model, train_tiles, train_masks, args.train_steps)
            model.to(memory_format=torch.channels_last)
            name = f"{name}, trained {args.train_steps} steps here"
            print(f"{name}: {time.perf_counter() - start:.0f} s of training", flush=True)
        inputs = (tiles, masks) if size is None else lowres_inputs(args.sample, ids, size)
        row = compare(model, *inputs, args.repeats)
        row.update({"input": "2 tiles of 960" if size is None else f"{size[1]}x{size[0]}",
                    "photos": len(ids), "repeats": args.repeats, "load_before": load,
                    "load_after": os.getloadavg()[0]})
        results["models"][name] = row
        print(f"{name} on {row['input']}: float32 {row['float32_s_per_photo']:.3f} s, bf16 "
              f"{row['bf16_s_per_photo']:.3f} s per photo, x{row['speedup']:.2f}; "
              f"changed at 0.5: {row['changed_at_0.5']} of {row['pixels']} "
              f"({100 * row['changed_share_at_0.5']:.3f} %), max |dp| {row['max_abs_dp']:.3g}; "
              f"Dice float32 {row['dice_float32']:.5f} bf16 {row['dice_bf16']:.5f}; load "
              f"{load:.2f} -> {row['load_after']:.2f}", flush=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
