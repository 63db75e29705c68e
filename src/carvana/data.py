"""Datasets: whole images squashed to a square for the low-res models, read lazily or cached."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from carvana.chain import lowres_hw
from carvana.ids import validate_id
from carvana.io import image_path, mask_path, read_image, read_labels, read_mask, resize_mask

log = logging.getLogger(__name__)


def load_resized(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Decode an image (at a reduced JPEG scale when possible) and resize to (width, height)."""
    image = read_image(path, min_size=size)
    if image.shape[1::-1] != size:
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize labels (0, 1, IGNORE) to (width, height) by the nearest pixel: no new values."""
    if labels.shape[::-1] == size:
        return labels
    return cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)


class LowResDataset(Dataset):
    """Images (and masks) resized to ``size`` (a side, or [height, width]): uint8 tensors
    (3,H,W) and (1,H,W), read from disk item by item (wrap in ``cache_if_small`` to keep them
    in RAM). With ``labels_dir`` the masks are that folder's pseudo-labels (0, 1 and IGNORE,
    ``carvana.io.read_labels``) instead of the true masks."""

    def __init__(self, data_dir: str | Path, split: str, ids: list[str],
                 size: int | list[int], with_masks: bool = True,
                 labels_dir: str | Path | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.split = split
        self.ids = [validate_id(i) for i in ids]
        height, width = lowres_hw(size)
        self.size = (width, height)  # cv2 order
        self.with_masks = with_masks
        self.labels_dir = Path(labels_dir) if labels_dir is not None else None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        image_id = self.ids[index]
        image = load_resized(image_path(self.data_dir, self.split, image_id), self.size)
        item: dict[str, torch.Tensor | str] = {
            "id": image_id,
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
        }
        if self.labels_dir is not None:
            labels = resize_labels(read_labels(self.labels_dir / f"{image_id}.png"), self.size)
            item["mask"] = torch.from_numpy(np.ascontiguousarray(labels[None]))
        elif self.with_masks:
            mask = resize_mask(read_mask(mask_path(self.data_dir, image_id)), self.size)
            item["mask"] = torch.from_numpy(mask[None])
        return item


class InMemory(Dataset):
    """Another dataset's items, decoded once and kept in RAM."""

    def __init__(self, base: Dataset) -> None:
        self.items = [base[i] for i in tqdm(range(len(base)), desc="cache", mininterval=10)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        return self.items[index]


def cache_if_small(datasets: list[Dataset], item_bytes: int, cache_mb: int) -> list[Dataset]:
    """The datasets held in RAM when all their items (``item_bytes`` each) fit in ``cache_mb``,
    else unchanged (read from disk every epoch)."""
    if sum(len(d) for d in datasets) * item_bytes <= cache_mb * 2**20:
        return [InMemory(d) for d in datasets]
    return datasets
