"""benchmarks/inference_ceiling.py: the seeds' mean and the oracle on stored maps of known
error, and the shifted runner on a model that only copies its input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from wfutil import REPO, load_benchmark

from carvana import rle
from carvana.io import write_prob

sys.path.insert(0, str(REPO / "benchmarks"))  # the script imports its folder's edge_errors
try:
    ceiling = load_benchmark("inference_ceiling")
finally:
    sys.path.remove(str(REPO / "benchmarks"))

H, W = ceiling.SHAPE
CAR = "0123456789ab"
ID = f"{CAR}_01"


def _run(folder: Path, truth: np.ndarray, maps: dict[str, np.ndarray]) -> Path:
    """A split folder with one test photo and the stored maps ``maps`` (name -> probability)."""
    for name, prob in maps.items():
        shard = folder / "run" / "results" / "predict" / name / "test" / "0"
        shard.mkdir(parents=True)
        write_prob(shard / f"{ID}.png", prob)
    (folder / "data" / "truth").mkdir(parents=True)
    pd.DataFrame({"img": [f"{ID}.jpg"], "rle_mask": [rle.encode(truth)]}).to_csv(
        folder / "data" / "truth" / "test_masks.csv", index=False)
    (folder / "test_cars.json").write_text(json.dumps([CAR]))
    return folder


def _two_seeds(tmp_path: Path) -> tuple[list[Path], float, float]:
    """Seed 0's chain half-misses the car's top row (0.2); seed 1's takes it (1.0) and paints
    a row of floor (0.8): their mean takes the row and not the floor, so it is exact."""
    truth = np.zeros((H, W), np.uint8)
    truth[400:800, 500:1500] = 1
    chain0, chain1 = truth.astype(np.float32), truth.astype(np.float32)
    chain0[400, 500:1500] = 0.2
    chain1[810, 500:1500] = 0.8
    runs = [_run(tmp_path / "s0", truth, {"ensemble": chain0, "map": truth.astype(np.float32)}),
            _run(tmp_path / "s1", truth, {"ensemble": chain1, "map": np.zeros((H, W), np.float32)})]
    return runs, 2 * 399_000 / 799_000, 2 * 400_000 / 801_000


def test_the_seeds_mean_and_the_oracle_are_the_known_dice(tmp_path: Path) -> None:
    runs, chain0, chain1 = _two_seeds(tmp_path)
    row = ceiling.stored_scores(runs, map_name="map", chain_name="ensemble").iloc[0]
    assert row["id"] == ID
    assert row["chain0"] == pytest.approx(chain0) and row["chain1"] == pytest.approx(chain1)
    assert row["map0"] == 1.0 and row["map1"] == 0.0
    assert row["oracle0"] == 1.0 and row["oracle1"] == pytest.approx(chain1)
    assert row["seeds"] == 1.0
    assert "seeds: 1.00000 (below 0.99: 0" in ceiling.summary(
        ceiling.stored_scores(runs, map_name="map", chain_name="ensemble"))


def test_a_run_missing_a_test_photo_is_an_error_naming_it(tmp_path: Path) -> None:
    runs, _, _ = _two_seeds(tmp_path)
    (runs[1] / "run/results/predict/map/test/0" / f"{ID}.png").unlink()
    (runs[1] / "run/results/predict/map/test/0" / "ba9876543210_01.png").write_bytes(b"")
    with pytest.raises(SystemExit, match=f"s1: no stored ensemble or map map .* {ID}"):
        ceiling.stored_scores(runs, map_name="map", chain_name="ensemble")


class _Corner:
    """Logit +2 everywhere when the input's bottom-right pixel is 1, else -20."""

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.where(x[:, :1, -1:, -1:] > 0.5, 2.0, -20.0) * np.ones_like(x[:, :1])


def test_shifts_average_probabilities_not_logits() -> None:
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 3, 2] = x[0, 0, 2, 3] = 1.0  # seen at the corner when shifted by (0, 1) or (1, 0)
    logit = ceiling.ShiftedRunner(_Corner(), [(0, 0), (0, 1), (1, 0)]).logits(x)
    prob = (2 / (1 + np.exp(-2.0)) + 1 / (1 + np.exp(20.0))) / 3  # 0.587; the logits' mean: -5.3
    np.testing.assert_allclose(logit, np.log(prob / (1 - prob)), rtol=1e-5)


class _Copy:
    """A model whose logits are its input's first channel: it moves as its input moves."""

    def logits(self, x: np.ndarray) -> np.ndarray:
        return x[:, :1].copy()


def test_shifted_logits_are_moved_back_onto_the_input() -> None:
    x = np.random.default_rng(0).random((2, 3, 12, 16), dtype=np.float32)
    np.testing.assert_allclose(ceiling.ShiftedRunner(_Copy(), [(0, 0)]).logits(x), x[:, :1],
                               atol=1e-5)
    out = ceiling.ShiftedRunner(_Copy(), [(0, 0), (1, 2), (3, 0)]).logits(x)
    assert out.shape == (2, 1, 12, 16) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., :9, :14], x[:, :1, :9, :14], atol=1e-5)
    assert not np.allclose(out[..., 9:, :], x[:, :1, 9:, :])  # the edge repeated, not wrapped


@pytest.mark.parametrize("spec", ["1", "a:1", "-1:0", "1:2:3"])
def test_a_malformed_shift_is_refused(spec: str) -> None:
    with pytest.raises(Exception, match="expected DY:DX"):
        ceiling._shift(spec)
