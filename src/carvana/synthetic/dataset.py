"""Write a synthetic data set in the Kaggle layout: images, GIF masks and the CSV tables."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from carvana import ids as ids_mod
from carvana import io as cio
from carvana import rle
from carvana.synthetic.config import N_ANGLES, TEST, TRAIN, CarSpec, SyntheticConfig
from carvana.synthetic.render import render_car
from carvana.synthetic.specs import car_specs

Row = tuple[int, str, str]  # (split, image file name, RLE of its mask)


@dataclass(frozen=True)
class RenderTask:
    """One image to render and write (picklable, for the process pool)."""

    out_dir: str
    split: int
    index: int
    angle: int
    car: CarSpec
    cfg: SyntheticConfig


def image_rng(seed: int, split: int, index: int, angle: int) -> np.random.Generator:
    """The random stream of one image (pose jitter and grain)."""
    return np.random.default_rng([seed, split, index, angle, 2])


def render_image(task: RenderTask) -> tuple[str, np.ndarray, np.ndarray]:
    """Render one image without writing it: (image id, (H, W, 3) uint8 RGB, (H, W) {0,1} mask)."""
    cfg = task.cfg
    rng = image_rng(cfg.seed, task.split, task.index, task.angle)
    image, mask = render_car(task.car, task.angle, cfg.width, cfg.height, rng)
    image_id = ids_mod.validate_id(f"{task.car.car_id}_{task.angle:02d}", "synthetic")
    return image_id, image, mask


def render_task(task: RenderTask) -> Row:
    """Render and write one image (and its mask for train); return (split, img name, rle)."""
    image_id, image, mask = render_image(task)
    split, cfg = task.split, task.cfg
    folder = "train" if split == TRAIN else "test"
    out_dir = Path(task.out_dir)
    cio.write_jpeg(out_dir / folder / f"{image_id}.jpg", image, quality=cfg.jpeg_quality)
    if split == TRAIN:
        cio.write_mask_gif(out_dir / "train_masks" / f"{image_id}_mask.gif", mask)
    return split, f"{image_id}.jpg", rle.encode(mask)


def write_csv(path: Path, header: list[str], rows: Iterable[Iterable]) -> None:
    """Write a CSV table atomically, with Unix line endings."""
    with cio.atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _render_all(tasks: list[RenderTask], *, threads: int, progress: bool) -> list[Row]:
    """Run every task, in ``threads`` processes if more than one, with a progress bar."""
    results: list[Row] = []
    bar = tqdm(
        total=len(tasks), desc="synthetic images", unit="img", file=sys.stderr, disable=not progress
    )
    try:
        if threads > 1:
            with ProcessPoolExecutor(max_workers=threads) as pool:
                for res in pool.map(render_task, tasks, chunksize=N_ANGLES):
                    results.append(res)
                    bar.update()
        else:
            for task in tasks:
                results.append(render_task(task))
                bar.update()
    finally:
        bar.close()
    return results


def _write_tables(out_dir: Path, truth_dir: Path, results: list[Row], cars: list[CarSpec]) -> None:
    """train_masks.csv, sample_submission.csv, metadata.csv and the hidden test_masks.csv."""
    train_rows = sorted((name, code) for split, name, code in results if split == TRAIN)
    test_rows = sorted((name, code) for split, name, code in results if split == TEST)
    write_csv(out_dir / "train_masks.csv", ["img", "rle_mask"], train_rows)
    write_csv(
        out_dir / "sample_submission.csv",
        ["img", "rle_mask"],
        [(name, "1 1") for name, _ in test_rows],
    )
    write_csv(truth_dir / "test_masks.csv", ["img", "rle_mask"], test_rows)
    meta = sorted((c.car_id, c.year, c.make, c.model, c.trim1, c.trim2) for c in cars)
    write_csv(out_dir / "metadata.csv", ["id", "year", "make", "model", "trim1", "trim2"], meta)


def generate(
    out_dir: Path, truth_dir: Path, cfg: SyntheticConfig, threads: int = 1, progress: bool = True
) -> None:
    """Write the Kaggle layout into ``out_dir`` and the test truth into ``truth_dir``."""
    if cfg.train_cars < 1 or cfg.test_cars < 1:
        raise ValueError("need at least one train car and one test car")
    if cfg.width < 64 or cfg.height < 48:
        raise ValueError(f"image size {cfg.width}x{cfg.height} is below the minimum 64x48")
    out_dir, truth_dir = Path(out_dir), Path(truth_dir)
    cars = car_specs(cfg)
    tasks = [
        RenderTask(out_dir=str(out_dir), split=split, index=index, angle=angle, car=car, cfg=cfg)
        for split, index, car in cars
        for angle in range(1, N_ANGLES + 1)
    ]
    for sub in ("train", "train_masks", "test"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    results = _render_all(tasks, threads=threads, progress=progress)
    _write_tables(out_dir, truth_dir, results, [car for _, _, car in cars])
