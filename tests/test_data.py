"""Low-res datasets and the in-RAM cache both training stages use."""

from __future__ import annotations

import torch

from carvana.data import InMemory, LowResDataset, cache_if_small


def test_lowres_items_and_cache(tiny_data) -> None:
    ids = sorted(p.stem for p in (tiny_data[0] / "train").glob("*.jpg"))[:4]
    ds = LowResDataset(tiny_data[0], "train", ids, 32)
    item = ds[1]
    assert item["id"] == ids[1]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.uint8
    assert item["mask"].shape == (1, 32, 32) and set(item["mask"].unique().tolist()) <= {0, 1}
    assert "mask" not in LowResDataset(tiny_data[0], "train", ids, 32, with_masks=False)[0]
    kept = cache_if_small([ds], item_bytes=32 * 32 * 4, cache_mb=1)
    assert isinstance(kept[0], InMemory) and len(kept[0]) == 4
    assert torch.equal(kept[0][1]["image"], item["image"]) and kept[0][1]["id"] == ids[1]
    assert cache_if_small([ds], item_bytes=2**20, cache_mb=1)[0] is ds  # 4 MB > 1 MB: disk
