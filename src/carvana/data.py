"""Datasets: whole images squashed to a square for the low-res models, read lazily or cached."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from carvana.ids import validate_id
from carvana.io import image_path, mask_path, read_image, read_mask, resize_mask

log = logging.getLogger(__name__)


def load_resized(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Decode an image (at a reduced JPEG scale when possible) and resize to (width, height)."""
    image = read_image(path, min_size=size)
    if image.shape[1::-1] != size:
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image


class LowResDataset(Dataset):
    """Images (and masks) resized to ``size`` x ``size``: uint8 tensors (3,S,S) and (1,S,S).

    With ``cache`` the resized arrays are decoded once and kept in RAM (small sizes);
    otherwise every item is read from disk (large sizes, real data).
    """

    def __init__(self, data_dir: str | Path, split: str, ids: list[str], size: int,
                 with_masks: bool = True, cache: bool = False) -> None:
        self.data_dir = Path(data_dir)
        self.split = split
        self.ids = [validate_id(i) for i in ids]
        self.size = (size, size)
        self.with_masks = with_masks
        self._cache: list[tuple[np.ndarray, np.ndarray | None]] | None = None
        if cache:
            self._cache = [self._load(i) for i in tqdm(range(len(self.ids)), desc="cache",
                                                        mininterval=10)]

    @staticmethod
    def bytes_needed(n: int, size: int) -> int:
        """RAM the cache would take for ``n`` images."""
        return n * size * size * 4

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        image_id = self.ids[index]
        image = load_resized(image_path(self.data_dir, self.split, image_id), self.size)
        mask = None
        if self.with_masks:
            mask = resize_mask(read_mask(mask_path(self.data_dir, image_id)), self.size)
        return image, mask

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        image, mask = self._cache[index] if self._cache is not None else self._load(index)
        item: dict[str, torch.Tensor | str] = {
            "id": self.ids[index],
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
        }
        if mask is not None:
            item["mask"] = torch.from_numpy(mask[None])
        return item
