"""Training: same seed, same numbers; the checkpoint round trip is safe and exact."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from carvana.model_stages import train_lowres_stage
from carvana.predict import load_model
from carvana.training import TrainConfig, load_checkpoint, save_checkpoint

SPEC = {"arch": "unet", "size": 32, "params": {"initial_filters": 4, "depth": 2, "up_convs": 2},
        "train": {"epochs": 2, "batch_size": 8}}


@pytest.fixture()
def split_csv(tiny_data, tmp_path: Path) -> Path:
    ids = sorted(p.stem for p in (tiny_data[0] / "train").glob("*.jpg"))
    cars = sorted({i.split("_")[0] for i in ids})
    folds = pd.DataFrame({"id": ids, "car": [i.split("_")[0] for i in ids]})
    folds["fold"] = ["val" if c == cars[0] else "train" for c in folds["car"]]
    folds.to_csv(tmp_path / "split.csv", index=False)
    return tmp_path / "split.csv"


def _train(tiny_data, split_csv: Path, out: Path, seed: int) -> tuple[pd.DataFrame, dict]:
    out.mkdir()
    paths = [str(out / n) for n in ("w.pt", "h.csv", "c.png", "s.json")]
    torch.manual_seed(ord(out.name[0]))  # a different global state each call: must not matter
    train_lowres_stage("m", SPEC, str(tiny_data[0]), str(split_csv), seed, "cpu", True, *paths)
    return pd.read_csv(paths[1]), load_checkpoint(paths[0])[0]


def test_same_seed_same_numbers(tiny_data, split_csv: Path, tmp_path: Path) -> None:
    h1, w1 = _train(tiny_data, split_csv, tmp_path / "a", seed=3)
    h2, w2 = _train(tiny_data, split_csv, tmp_path / "b", seed=3)
    h3, _ = _train(tiny_data, split_csv, tmp_path / "c", seed=4)
    cols = ["train_loss", "val_loss", "val_dice"]
    pd.testing.assert_frame_equal(h1[cols], h2[cols])
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert not h1[cols].equals(h3[cols])


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    from carvana.models import create_model

    model = create_model("unet", 3, initial_filters=4, depth=2, up_convs=2)
    meta = {"name": "m", "arch": "unet", "in_channels": 3,
            "params": {"initial_filters": 4, "depth": 2, "up_convs": 2}, "size": 32}
    save_checkpoint(tmp_path / "w.pt", model.state_dict(), meta)
    loaded, meta2 = load_model(tmp_path / "w.pt", torch.device("cpu"))
    assert meta2 == meta
    x = torch.rand(1, 3, 32, 32)
    model.eval()
    assert torch.equal(model(x), loaded(x))
    with pytest.raises(TypeError):  # only JSON-able metadata: weights_only loading needs it
        save_checkpoint(tmp_path / "x.pt", model.state_dict(), {"bad": object()})
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a carvana-pipeline checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_unknown_training_key_is_an_error() -> None:
    with pytest.raises(TypeError):
        TrainConfig.from_dict({"epochs": 1, "learning_rate": 0.1})
