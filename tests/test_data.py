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


def test_lowres_pseudo_labels_keep_their_three_values(tiny_data, tmp_path) -> None:
    """A test photo with pseudo-labels: resized by the nearest pixel, so the left-out band
    stays left out (IGNORE) and no value in between appears; a missing file names itself."""
    import numpy as np
    import pytest

    from carvana.io import IGNORE, DataError, write_labels

    image_id = sorted(p.stem for p in (tiny_data[0] / "test").glob("*.jpg"))[0]
    labels = np.zeros((64, 96), np.uint8)  # the tiny photos are 96x64
    labels[:, :23] = IGNORE  # odd edges: an average of 2x2 blocks would blend 0 and IGNORE
    labels[17:47, 41:79] = 1
    write_labels(tmp_path / f"{image_id}.png", labels)
    ds = LowResDataset(tiny_data[0], "test", [image_id], [32, 48], labels_dir=tmp_path)
    mask = ds[0]["mask"][0].numpy()
    assert mask.shape == (32, 48) and ds[0]["image"].shape == (3, 32, 48)
    assert np.array_equal(mask, labels[::2, ::2])
    assert (mask == IGNORE).sum() == 32 * 12 and (mask == 1).sum() == 15 * 19
    with pytest.raises(DataError, match="missing"):
        LowResDataset(tiny_data[0], "test", [image_id], 32, labels_dir=tmp_path / "none")[0]
