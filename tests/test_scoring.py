"""The test photos scored against kept truth (carvana.scoring, the score_test stage): per photo
and per car, on tiny made-up masks whose Dice is known; and the workflow's lists for it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from carvana import rle, scoring, stages
from carvana import workflow as wf
from carvana.io import DataError, write_prob

H, W = 4, 8
CAR_A, CAR_B = "aaaaaaaaaaaa", "bbbbbbbbbbbb"
SHARDS = {"0000": [f"{CAR_A}_01", f"{CAR_A}_02"], "0001": [f"{CAR_B}_01", f"{CAR_B}_02"]}
TRUTH = np.zeros((H, W), np.uint8)
TRUTH[:, :4] = 1  # 16 car pixels
REPO = Path(__file__).resolve().parents[1]


def with_extra(pixels: int) -> np.ndarray:
    """The truth plus ``pixels`` extra car pixels on the first background row: Dice
    2*16 / (32 + pixels)."""
    pred = TRUTH.astype(np.float32)
    pred[0, 4:4 + pixels] = 1.0
    return pred


#: source -> id -> predicted probability; the Dice of each is known.
PROBS = {
    "good": {i: TRUTH.astype(np.float32) for ids in SHARDS.values() for i in ids},
    "bad": {SHARDS["0000"][0]: with_extra(0), SHARDS["0000"][1]: with_extra(4),
            SHARDS["0001"][0]: with_extra(2), SHARDS["0001"][1]: np.zeros((H, W), np.float32)},
}
BAD_DICE = {SHARDS["0000"][0]: 1.0, SHARDS["0000"][1]: 32 / 36, SHARDS["0001"][0]: 32 / 34,
            SHARDS["0001"][1]: 0.0}


@pytest.fixture()
def preds(tmp_path: Path) -> dict[str, list[Path]]:
    """Each source's probabilities in one folder per shard, as the workflow stores them."""
    out: dict[str, list[Path]] = {}
    for source, probs in PROBS.items():
        out[source] = []
        for shard, ids in SHARDS.items():
            folder = tmp_path / source / "test" / shard
            for image_id in ids:
                write_prob(folder / f"{image_id}.png", probs[image_id])
            out[source].append(folder)
    return out


def test_photo_scores_known_dice(preds: dict[str, list[Path]]) -> None:
    table = scoring.photo_scores(preds, SHARDS, lambda i: TRUTH, threshold=0.5)
    assert list(table.columns) == ["id", "car", "dice_good", "dice_bad"]
    assert table["id"].tolist() == [i for ids in SHARDS.values() for i in ids]  # shard order
    assert table["car"].tolist() == [CAR_A, CAR_A, CAR_B, CAR_B]
    assert (table["dice_good"] == 1.0).all()
    assert table["dice_bad"].tolist() == pytest.approx([BAD_DICE[i] for i in table["id"]])


def test_per_car_mean_min_and_all(preds: dict[str, list[Path]]) -> None:
    photos = scoring.photo_scores(preds, SHARDS, lambda i: TRUTH, threshold=0.5)
    cars = scoring.per_car(photos, ["good", "bad"]).set_index("car")
    assert list(cars.index) == [CAR_A, CAR_B, scoring.ALL_CARS]
    assert list(cars.columns) == ["n", "mean_good", "min_good", "mean_bad", "min_bad"]
    assert cars["n"].tolist() == [2, 2, 4]
    assert cars.loc[CAR_A, "mean_bad"] == pytest.approx((1 + 32 / 36) / 2)
    assert cars.loc[CAR_A, "min_bad"] == pytest.approx(32 / 36)
    assert cars.loc[CAR_B, "mean_bad"] == pytest.approx(16 / 34)
    assert cars.loc[CAR_B, "min_bad"] == 0.0
    assert cars.loc["all", "mean_bad"] == pytest.approx(np.mean(list(BAD_DICE.values())))
    assert cars.loc["all", "min_bad"] == 0.0 and cars.loc["all", "min_good"] == 1.0


def test_threshold_decides_what_counts_as_car(tmp_path: Path) -> None:
    image_id = SHARDS["0000"][0]
    prob = TRUTH * 0.4  # the car at p = 0.4
    write_prob(tmp_path / f"{image_id}.png", prob)
    score = {t: scoring.photo_scores({"m": [tmp_path]}, {"0000": [image_id]}, lambda i: TRUTH,
                                     threshold=t)["dice_m"].iloc[0] for t in (0.3, 0.5)}
    assert score == {0.3: 1.0, 0.5: 0.0}


def test_a_missing_probability_names_the_file(preds: dict[str, list[Path]]) -> None:
    missing = preds["bad"][1] / f"{SHARDS['0001'][1]}.png"
    missing.unlink()
    with pytest.raises(DataError, match=str(missing)):
        scoring.photo_scores(preds, SHARDS, lambda i: TRUTH, threshold=0.5)


def test_folders_must_match_the_shards(preds: dict[str, list[Path]]) -> None:
    with pytest.raises(ValueError, match="1 prediction folders for 2 shards"):
        scoring.photo_scores({"good": preds["good"][:1]}, SHARDS, lambda i: TRUTH, 0.5)


def test_submission_threshold(tmp_path: Path) -> None:
    choice = tmp_path / "threshold.json"
    choice.write_text(json.dumps({"threshold": 0.42}))
    assert scoring.submission_threshold(0.5, None) == 0.5
    assert scoring.submission_threshold("best", choice) == 0.42
    with pytest.raises(ValueError, match="threshold.json"):
        scoring.submission_threshold("best", None)


def test_stage_scores_against_an_rle_truth_csv(preds: dict[str, list[Path]],
                                              tmp_path: Path) -> None:
    """The rule's stage: truth as Kaggle's img,rle_mask CSV, folders source by source."""
    truth = tmp_path / "test_masks.csv"
    ids = [i for ids in SHARDS.values() for i in ids]
    pd.DataFrame({"img": [f"{i}.jpg" for i in ids],
                  "rle_mask": [rle.encode(TRUTH)] * len(ids)}).to_csv(truth, index=False)
    ingest = tmp_path / "ingest.json"
    ingest.write_text(json.dumps({"width": W, "height": H}))
    per_image, per_car = tmp_path / "per_image.csv", tmp_path / "per_car.csv"
    stages.score_test_stage(preds=[str(p) for s in ("bad", "good") for p in preds[s]],
                            sources=["bad", "good"], shards=SHARDS, truth=str(truth),
                            ingest=str(ingest), threshold=0.5, per_image=str(per_image),
                            per_car=str(per_car))
    photos = pd.read_csv(per_image, dtype={"id": str, "car": str})
    assert photos["dice_bad"].tolist() == pytest.approx([BAD_DICE[i] for i in ids], abs=1e-6)
    cars = pd.read_csv(per_car, dtype={"car": str})
    assert cars["car"].tolist() == [CAR_A, CAR_B, "all"]
    assert cars["mean_good"].tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="3 prediction folders for 2 sources x 2 shards"):
        stages.score_test_stage(preds=[str(p) for p in preds["bad"]] + [str(preds["good"][0])],
                                sources=["bad", "good"], shards=SHARDS, truth=str(truth),
                                ingest=str(ingest), threshold=0.5, per_image=str(per_image),
                                per_car=str(per_car))


# --- the workflow's lists (rules/common.smk) -----------------------------------------------

@pytest.fixture(scope="module")
def tiny() -> dict:
    return yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())


def test_scored_sources_are_the_members_the_ensemble_and_the_source(tiny: dict) -> None:
    assert wf.scored_test_sources(tiny) == ["tiles", "unet64", "ensemble"]
    other = copy.deepcopy(tiny)
    other["submission"]["source"] = "depth"
    assert wf.scored_test_sources(other) == ["tiles", "unet64", "ensemble", "depth"]
    alone = {**copy.deepcopy(tiny), "ensemble": {"members": [], "weights": []}}
    alone["submission"]["source"] = "unet32"
    assert wf.scored_test_sources(alone) == ["unet32"]


def test_score_test_input_source_by_source(tiny: dict) -> None:
    inputs = wf.score_test_input(tiny, ["0000", "0001"])
    assert inputs["truth"] == wf.SYNTHETIC_TRUTH  # the synthetic set keeps its truth
    assert inputs["preds"][:3] == ["results/predict/tiles/test/0000",
                                   "results/predict/tiles/test/0001",
                                   "results/predict/unet64/test/0000"]
    assert inputs["preds"][-1] == "results/predict/ensemble/test/0001"


def test_without_truth_nothing_is_scored(tiny: dict) -> None:
    real = {**tiny, "data_dir": "data/real/kaggle", "truth": None}
    assert wf.truth_outputs(real, "scores") == wf.truth_outputs(real, "analysis") == []
    with pytest.raises(ValueError, match="set `truth:`"):
        wf.score_test_input(real, ["0000"])
    kept = {**real, "truth": "data/real/truth/test_masks.csv"}
    assert wf.score_test_input(kept, ["0000"])["truth"] == "data/real/truth/test_masks.csv"
    assert wf.truth_outputs(kept, "scores") == ["results/metrics/test_per_image.csv",
                                                "results/metrics/test_per_car.csv"]
    assert wf.truth_outputs(kept, "analysis") == ["results/analysis/worst/test.png",
                                                  "results/analysis/worst/test.csv"]


def test_test_is_a_reserved_model_name(tiny: dict) -> None:
    """A model named `test` would collide with the worst test photos' figure."""
    config = copy.deepcopy(tiny)
    config["models"]["test"] = config["models"].pop("unet32")
    config["ladder"] = ["test", "unet64"]
    config["bbox"]["model"] = "test"
    config["models"]["depth"]["depth_from"] = "test"
    with pytest.raises(ValueError, match="'test' is a reserved name"):
        wf.check_config(config)
