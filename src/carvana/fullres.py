"""The full-resolution branch: tile datasets (2 tiles per image) and stitched prediction.

Tile models predict through ``carvana.predict.predict_to_dir`` with ``collate_fn=collate_tiles``
and ``write=stitch_writer(dataset.bands, dataset.geom)``.

Tiles are cut on the fly in the loader from the decoded full-size JPEG: storing them would
double the disk use of the data and cost more I/O than the decode (see docs/fullres.md).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from carvana.data import image_path, mask_path
from carvana.io import full_size_prob, read_image, read_labels, read_mask, write_prob
from carvana.predict import Writer
from carvana.tiling import TileGeometry, box_outside_band, cut_tiles, fill_box_rows, stitch


class TileDataset(Dataset):
    """Both tiles of an image per item: image (2, C, T, T) uint8, mask (2, 1, T, T).

    C is 3, or 4 when ``depth_dir`` names a low-res model's predictions: the probability map,
    resized to full size and cut like the image, is the 4th channel. With ``labels_dir`` the
    masks are pseudo-labels (0, 1 and IGNORE, ``carvana.io.read_labels``) of that folder.
    """

    def __init__(self, data_dir: str | Path, split: str, ids: list[str],
                 bands: dict[str, tuple[int, int]], geom: TileGeometry, with_masks: bool = True,
                 depth_dir: str | Path | None = None,
                 labels_dir: str | Path | None = None) -> None:
        missing = [i for i in ids if i not in bands]
        if missing:
            raise ValueError(f"no bounding box band for {len(missing)} images, e.g. {missing[:3]}")
        self.data_dir, self.split, self.ids = Path(data_dir), split, list(ids)
        self.bands, self.geom, self.with_masks = bands, geom, with_masks
        self.depth_dir = Path(depth_dir) if depth_dir else None
        self.labels_dir = Path(labels_dir) if labels_dir else None

    def __len__(self) -> int:
        return len(self.ids)

    def full_input(self, image_id: str) -> np.ndarray:
        """The full-size (H, W, C) uint8 input: the image, plus the depth channel if any."""
        image = read_image(image_path(self.data_dir, self.split, image_id))
        if image.shape[:2] != (self.geom.height, self.geom.width):
            raise ValueError(f"{image_path(self.data_dir, self.split, image_id)}: size "
                             f"{image.shape[1]}x{image.shape[0]}, expected "
                             f"{self.geom.width}x{self.geom.height}")
        if self.depth_dir is None:
            return image
        depth = full_size_prob(self.depth_dir, image_id, (self.geom.width, self.geom.height))
        depth8 = np.rint(depth * 255).astype(np.uint8)
        return np.concatenate([image, depth8[..., None]], axis=2)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        image_id = self.ids[index]
        rows = self.bands[image_id]
        tiles = cut_tiles(self.full_input(image_id), rows, self.geom)  # (2, T, T, C)
        item: dict[str, torch.Tensor | str] = {
            "id": image_id,
            "image": torch.from_numpy(np.ascontiguousarray(tiles.transpose(0, 3, 1, 2))),
        }
        if self.with_masks:
            full = (read_labels(self.labels_dir / f"{image_id}.png") if self.labels_dir
                    else read_mask(mask_path(self.data_dir, image_id)))
            mask = cut_tiles(full, rows, self.geom)
            item["mask"] = torch.from_numpy(np.ascontiguousarray(mask[:, None]))
        return item


class RandomCrops(Dataset):
    """Random ``crop`` x ``crop`` windows of another tile dataset's tiles (each tile its own).

    Training on crops of the full-resolution band costs a fraction of whole-tile steps in time
    and memory; the network is fully convolutional, so prediction still runs on whole tiles.
    A window drawn uniformly sees the middle of a tile about twice as often as the car's roof
    and sills, which lie near the band's top and bottom; with ``edge`` > 0 that fraction of
    the windows is centred instead (within a quarter crop) on a random pixel of the car's
    outline, clamped inside the tile. Of those, a fraction ``lower`` is centred on the outline's
    lower edges only (car above, background below: the sills, the bumpers' undersides and the
    tyres on the floor's shadow). A tile with no such outline gets a uniform window. The
    windows come from torch's global RNG, so a seeded (and resumed) run draws the same ones.
    """

    def __init__(self, base: Dataset, crop: int, edge: float = 0.0, lower: float = 0.0) -> None:
        for name, value in (("crop_edge", edge), ("crop_edge_lower", lower)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a fraction of the crops in [0, 1], got {value}")
        self.base, self.crop, self.edge, self.lower = base, int(crop), float(edge), float(lower)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        item = dict(self.base[index])
        image, mask = item["image"], item["mask"]
        size = image.shape[-1]
        if self.crop > size:
            raise ValueError(f"crop {self.crop} is larger than the {size}px tiles: lower "
                             "`train: crop` or set it to null for whole tiles")
        starts = torch.randint(0, size - self.crop + 1, (len(image), 2))
        if self.edge > 0:
            centred = torch.rand(len(image)) < self.edge
            # drawn only when asked: the default's windows stay those of older runs (same bytes)
            lower = torch.rand(len(image)) < self.lower if self.lower > 0 else None
            for k in torch.nonzero(centred).flatten().tolist():
                start = self._edge_start(mask[k, 0], lower=lower is not None and bool(lower[k]))
                if start is not None:
                    starts[k] = start
        c = self.crop
        item["image"] = torch.stack([t[:, y:y + c, x:x + c]
                                     for t, (y, x) in zip(image, starts.tolist(), strict=True)])
        item["mask"] = torch.stack([t[:, y:y + c, x:x + c]
                                    for t, (y, x) in zip(mask, starts.tolist(), strict=True)])
        return item

    def _edge_start(self, mask: torch.Tensor, *, lower: bool = False) -> torch.Tensor | None:
        """A window's (row, col) start centred near a random outline pixel (``lower``: of the
        outline's lower edges, the first background row under the car); None if none."""
        car = mask == 1  # pseudo-labels' ignored pixels are not car
        outline = torch.zeros_like(car)
        if lower:
            outline[1:] = car[:-1] & ~car[1:]
        else:
            outline[1:] |= car[1:] != car[:-1]
            outline[:, 1:] |= car[:, 1:] != car[:, :-1]
        points = torch.nonzero(outline)
        if len(points) == 0:
            return None
        centre = points[torch.randint(len(points), (1,))][0]
        jitter = torch.randint(-(self.crop // 4), self.crop // 4 + 1, (2,))
        return (centre + jitter - self.crop // 2).clamp(0, mask.shape[-1] - self.crop)


def collate_tiles(batch: list[dict[str, torch.Tensor | str]]) -> dict[str, torch.Tensor | list]:
    """Flatten items of two tiles into one batch of 2N tiles (ids repeated)."""
    out: dict[str, torch.Tensor | list] = {
        "id": [i["id"] for i in batch for _ in range(2)],
        "image": torch.cat([i["image"] for i in batch]),
    }
    if "mask" in batch[0]:
        out["mask"] = torch.cat([i["mask"] for i in batch])
    return out


def stitch_writer(bands: dict[str, tuple[int, int]], geom: TileGeometry,
                  fill: Callable[[str, np.ndarray], np.ndarray] | None = None) -> Writer:
    """The tile models' writer for ``predict_to_dir``: each image's two tiles (consecutive rows,
    as ``collate_tiles`` lays them out) stitched into one full-size ``<id>.png``; ``fill(id,
    map)``, if given, mends the rows the band left out (:func:`depth_fill`)."""

    def write(out_dir: Path, ids: list[str], probs: np.ndarray) -> int:
        if len(ids) % 2 or any(ids[k] != ids[k + 1] for k in range(0, len(ids), 2)):
            raise ValueError(f"tile batch ids {ids[:4]}... are not pairs: predict tile "
                             "datasets with collate_fn=collate_tiles")
        for k in range(0, len(ids), 2):
            full = stitch(probs[k : k + 2], bands[ids[k]], geom)
            write_prob(out_dir / f"{ids[k]}.png", fill(ids[k], full) if fill else full)
        return len(ids) // 2

    return write


def depth_fill(depth_dir: str | Path, bands: dict[str, tuple[int, int]],
               boxes: dict[str, tuple[int, int]], geom: TileGeometry
               ) -> Callable[[str, np.ndarray], np.ndarray]:
    """A depth model's ``fill`` for :func:`stitch_writer`: rows of the car's box that the band
    cut take the depth channel's map (the low-res model's), not 0 (``tiling.fill_box_rows``)."""

    def fill(image_id: str, full: np.ndarray) -> np.ndarray:
        rows, box = bands[image_id], boxes[image_id]
        if not box_outside_band(rows, box):  # no depth map read for a box the band holds
            return full
        prior = full_size_prob(depth_dir, image_id, (geom.width, geom.height))
        return fill_box_rows(full, prior.astype(np.float32), rows, box)

    return fill
