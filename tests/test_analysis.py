"""Analysis figures and tables on small made-up inputs: every PNG is written, every CSV is right."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from carvana import analysis
from carvana.io import DataError, read_mask, write_jpeg, write_mask_gif, write_prob

W, H = 96, 64
IDS = [f"0123456789ab_{i:02d}" for i in range(1, 9)]
DICE = {i: 0.99 - 0.01 * n for n, i in enumerate(IDS)}  # the last ids are the worst
MODELS = {  # name: (arch, input, size, parameters, dice model res, dice full res, best t)
    "unet32": ("unet", "lowres", 32, 1000, 0.95, 0.93, 0.45),
    "unet64": ("unet", "lowres", 64, 4000, 0.97, 0.96, 0.5),
    "fullres": ("unet", "tiles", None, 9000, 0.985, 0.985, 0.55),
}


def png_ok(path: Path) -> None:
    """A real, non-trivial PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    assert len(data) > 5000, f"{path}: only {len(data)} bytes"


def curve(best: float, peak: float) -> pd.DataFrame:
    t = np.round(np.arange(0.05, 0.96, 0.01), 2)
    return pd.DataFrame({"threshold": t, "dice": peak - 0.3 * (t - best) ** 2})


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    """Metrics, training summaries, histories and threshold curves of three models + ensemble."""
    res = tmp_path / "results"
    (res / "metrics").mkdir(parents=True)
    for name, (arch, inp, size, params, d_model, d_full, best) in MODELS.items():
        metrics = {
            "model": name,
            "val_images": len(IDS),
            "val_dice_model_res": d_model,
            "val_dice_full_res": d_full,
            "best_threshold": best,
            "val_dice_full_res_best_threshold": d_full + 0.001,
            "arch": arch,
            "parameters": params,
            "train_seconds": 12.5,
            "best_epoch": 3,
        }
        if size:
            metrics["size"] = size
        (res / "metrics" / f"{name}.json").write_text(json.dumps(metrics))
        mdir = res / "models" / name
        mdir.mkdir(parents=True)
        train = {"model": name, "name": name, "arch": arch, "input": inp, "parameters": params}
        if size:
            train["size"] = size
        (mdir / "train.json").write_text(json.dumps(train))
        epochs = np.arange(1, 7)
        pd.DataFrame(
            {
                "epoch": epochs,
                "phase": ["main"] * 5 + ["fine_tune"],
                "lr": [1e-3] * 5 + [1e-4],
                "train_loss": 1 / epochs,
                "val_loss": 1.1 / epochs,
                "val_dice": [0.5, 0.7, 0.8, d_model, d_model - 0.01, d_model - 0.005],
                "seconds": 2.0,
            }
        ).to_csv(mdir / "history.csv", index=False)
        curve(best, d_full).to_csv(res / "metrics" / f"{name}_thresholds.csv", index=False)
    ensemble = {"model": "ensemble", "val_dice_model_res": 0.986, "val_dice_full_res": 0.986,
                "best_threshold": 0.5, "val_images": len(IDS)}  # fmt: skip
    (res / "metrics" / "ensemble.json").write_text(json.dumps(ensemble))
    curve(0.5, 0.986).to_csv(res / "metrics" / "ensemble_thresholds.csv", index=False)
    return res


@pytest.fixture()
def predictions(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A 96x64 data folder, 32x32 probability maps and a per-image CSV."""
    data, preds = tmp_path / "data", tmp_path / "preds"
    yy, xx = np.mgrid[:H, :W]
    for n, image_id in enumerate(IDS):
        mask = ((xx - 48) / 30) ** 2 + ((yy - 34) / 16) ** 2 <= 1
        image = np.full((H, W, 3), 200, np.uint8)
        image[mask] = (40 + 20 * n, 60, 120)
        write_jpeg(data / "train" / f"{image_id}.jpg", image)
        write_mask_gif(data / "train_masks" / f"{image_id}_mask.gif", mask)
        prob = np.roll(mask.astype(np.float32), n, axis=1)  # worse with n
        write_prob(preds / f"{image_id}.png", cv2.resize(prob, (32, 32)))
    per_image = pd.DataFrame(
        {"id": IDS, "dice_model_res": [DICE[i] for i in IDS], "dice_full_res": list(DICE.values())}
    )
    csv = tmp_path / "per_image.csv"
    per_image.sample(frac=1, random_state=0).to_csv(csv, index=False)  # unsorted on disk
    return data, preds, csv


def test_model_comparison(results: Path, tmp_path: Path) -> None:
    names = [*MODELS, "ensemble"]
    table = analysis.model_comparison(
        [results / "metrics" / f"{m}.json" for m in names],
        [results / "models" / m / "train.json" for m in MODELS],
        tmp_path / "cmp.png",
        tmp_path / "cmp.csv",
    )
    png_ok(tmp_path / "cmp.png")
    written = pd.read_csv(tmp_path / "cmp.csv")
    assert list(written.columns) == analysis.COMPARISON_COLUMNS
    assert written["model"].tolist() == ["ensemble", "fullres", "unet64", "unet32"]
    assert written["val_dice_full_res"].is_monotonic_decreasing
    row = written.set_index("model").loc["unet64"]
    assert (row["arch"], row["input"], row["size"], row["parameters"]) == (
        "unet",
        "lowres",
        64,
        4000,
    )
    assert pd.isna(written.set_index("model").loc["ensemble", "arch"])  # no train.json
    assert len(table) == 4


def test_ladder(results: Path, tmp_path: Path) -> None:
    table = analysis.ladder_figure(
        [results / "metrics" / f"{m}.json" for m in MODELS],
        [results / "models" / m / "train.json" for m in MODELS],
        tmp_path / "ladder.png",
        tmp_path / "ladder.csv",
    )
    png_ok(tmp_path / "ladder.png")
    written = pd.read_csv(tmp_path / "ladder.csv")
    assert written["size"].tolist() == [32, 64, 128, 256, 512, 1024]  # ours + Kaggle's sizes
    ours = written.dropna(subset=["model"])
    assert ours["model"].tolist() == ["unet32", "unet64"]  # the tile model is not on the ladder
    assert written.set_index("size").loc[1024, "kaggle_public_lb"] == pytest.approx(0.9961)
    assert len(table) == len(written)


def test_ladder_needs_a_lowres_model(results: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no low-res model"):
        analysis.ladder_figure(
            [results / "metrics" / "fullres.json"],
            [results / "models" / "fullres" / "train.json"],
            tmp_path / "l.png",
            tmp_path / "l.csv",
        )


def test_worst_predictions(predictions: tuple[Path, Path, Path], tmp_path: Path) -> None:
    data, preds, csv = predictions
    worst = analysis.worst_predictions(
        "unet32", csv, preds, data, tmp_path / "worst.png", tmp_path / "worst.csv", k=3
    )
    png_ok(tmp_path / "worst.png")
    written = pd.read_csv(tmp_path / "worst.csv", dtype={"id": str})
    assert written["id"].tolist() == IDS[::-1][:3]  # the three lowest Dice, worst first
    assert written["rank"].tolist() == [1, 2, 3]
    assert written["dice_full_res"].is_monotonic_increasing
    assert worst["id"].tolist() == written["id"].tolist()
    wrong = written["fp_px"] + written["fn_px"]
    assert (wrong == written["wrong_within_3px"] + written["wrong_beyond_3px"]).all()
    assert (written["wrong_within_1px"] <= written["wrong_within_3px"]).all()


def test_errors_by_edge_distance_known_values() -> None:
    from carvana.analysis.worst import errors_by_edge_distance

    truth = np.zeros((20, 20), bool)
    truth[5:15, 5:15] = True
    shifted = np.roll(truth, 1, axis=1)  # one column missed on the left, one extra on the right
    assert errors_by_edge_distance(truth, shifted) == {
        "fp_px": 10, "fn_px": 10, "wrong_within_1px": 20, "wrong_within_3px": 20,
        "wrong_beyond_3px": 0, "wrong_lower_part": 6}  # rows 12-14 (the lowest 3 of 10)
    blob = truth.copy()
    blob[0:2, 0:2] = True  # 4 extra pixels at least 4.2 px from the square
    blob[8:10, 8:10] = False  # 4 missed pixels 3-4 px inside the edge
    counts = errors_by_edge_distance(truth, blob)
    assert counts == {"fp_px": 4, "fn_px": 4, "wrong_within_1px": 0, "wrong_within_3px": 0,
                      "wrong_beyond_3px": 8, "wrong_lower_part": 0}
    assert errors_by_edge_distance(truth, truth)["fp_px"] == 0
    shadow = truth.copy()
    shadow[15:18, 5:15] = True  # the floor's shadow under the car, below its lowest row
    assert errors_by_edge_distance(truth, shadow)["wrong_lower_part"] == 30


def test_lower_part_is_the_lowest_quarter_of_the_true_mask_down_to_the_frame() -> None:
    from carvana.analysis.worst import lower_part

    truth = np.zeros((40, 10), bool)
    truth[10:30, 2:8] = True  # 20 rows high: the lowest 5 (25-29) and every row below
    rows = np.flatnonzero(lower_part(truth).all(axis=1))
    assert rows.tolist() == list(range(25, 40))
    assert not lower_part(truth)[:25].any()
    assert lower_part(truth, share=1.0)[10:].all() and not lower_part(truth, share=1.0)[:10].any()
    assert not lower_part(np.zeros((5, 5), bool)).any()  # no car: no lower part


def test_worst_k_larger_than_the_validation_set(
    predictions: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    assert len(analysis.worst_k_table(predictions[2], 50)) == len(IDS)


def test_worst_predictions_missing_prob_names_the_file(
    predictions: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    data, preds, csv = predictions
    (preds / f"{IDS[-1]}.png").unlink()
    with pytest.raises(DataError, match=f"{IDS[-1]}.png"):
        analysis.worst_predictions("m", csv, preds, data, tmp_path / "w.png", tmp_path / "w.csv")


def test_error_overlay_colours() -> None:
    image = np.zeros((2, 2, 3), np.uint8)
    truth = np.array([[1, 1], [0, 0]], bool)
    pred = np.array([[1, 0], [1, 0]], bool)
    out = analysis.error_overlay(image, truth, pred)
    assert tuple(out[0, 1]) == tuple(analysis.FN_COLOR.astype(np.uint8))  # missed: blue
    assert tuple(out[1, 0]) == tuple(analysis.FP_COLOR.astype(np.uint8))  # extra: red
    assert tuple(out[0, 0]) == tuple(out[1, 1])  # right either way: faded image


def test_error_overlay_keeps_thin_errors_when_shrunk() -> None:
    """At display width a one-pixel sliver of missed or extra car still shows in its colour."""
    image = np.zeros((40, 800, 3), np.uint8)
    truth = np.zeros((40, 800), bool)
    truth[:, :400] = True
    pred = truth.copy()
    pred[:, 399] = False  # a missed column at the car's edge
    pred[10, 600] = True  # one extra pixel
    out = analysis.error_overlay(image, truth, pred, width=400)
    assert out.shape == (20, 400, 3)
    colours = {tuple(c) for c in out.reshape(-1, 3)}
    assert tuple(analysis.FN_COLOR.astype(np.uint8)) in colours
    assert tuple(out[5, 300]) == tuple(analysis.FP_COLOR.astype(np.uint8))
    assert tuple(out[5, 100]) == tuple(out[15, 380])  # right: the faded image


def test_worst_test_photos(predictions: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """The same figure for test photos: images under test/, truth from a callable, the
    probabilities spread over shard folders, the table sorted on a source's Dice column."""
    data, preds, _ = predictions
    shards = [tmp_path / "test" / "0000", tmp_path / "test" / "0001"]
    for n, image_id in enumerate(IDS):
        (data / "test").mkdir(exist_ok=True)
        (data / "train" / f"{image_id}.jpg").rename(data / "test" / f"{image_id}.jpg")
        shards[n % 2].mkdir(parents=True, exist_ok=True)
        (preds / f"{image_id}.png").rename(shards[n % 2] / f"{image_id}.png")
    masks = {i: read_mask(data / "train_masks" / f"{i}_mask.gif") for i in IDS}
    table = pd.DataFrame({"id": IDS, "car": [i[:12] for i in IDS],
                          "dice_ensemble": [DICE[i] for i in IDS]})
    table.to_csv(tmp_path / "test_per_image.csv", index=False)
    worst = analysis.worst_k_table(tmp_path / "test_per_image.csv", 2, column="dice_ensemble",
                                   keep=("car",))
    photos = analysis.PhotoSource(data / "test", masks.__getitem__, shards)
    analysis.worst_photos(worst, photos, tmp_path / "w.png", tmp_path / "w.csv", name="ensemble",
                          what="test", column="dice_ensemble", threshold=0.5)
    png_ok(tmp_path / "w.png")
    written = pd.read_csv(tmp_path / "w.csv", dtype=str)
    assert list(written.columns) == ["rank", "id", "car", "dice_ensemble", "fp_px", "fn_px",
                                     "wrong_within_1px", "wrong_within_3px", "wrong_beyond_3px",
                                     "wrong_lower_part"]
    assert written["id"].tolist() == IDS[::-1][:2]  # one from each shard folder


def test_threshold_curves(results: Path, tmp_path: Path) -> None:
    names = [*MODELS, "ensemble"]
    csvs = {m: results / "metrics" / f"{m}_thresholds.csv" for m in names}
    analysis.threshold_curves(csvs, tmp_path / "t.png", tmp_path / "t.csv")
    png_ok(tmp_path / "t.png")
    written = pd.read_csv(tmp_path / "t.csv").set_index("model")
    assert set(written.index) == set(names)
    assert written.loc["unet32", "best_threshold"] == pytest.approx(0.45)
    assert written.loc["ensemble", "gain"] == pytest.approx(0.0)
    assert (written["gain"] >= 0).all()


def test_learning_curves(results: Path, tmp_path: Path) -> None:
    csvs = {m: results / "models" / m / "history.csv" for m in MODELS}
    analysis.learning_curves(csvs, tmp_path / "lc.png", tmp_path / "lc.csv")
    png_ok(tmp_path / "lc.png")
    written = pd.read_csv(tmp_path / "lc.csv").set_index("model")
    assert written.loc["unet64", "best_epoch"] == 4
    assert written.loc["unet64", "fine_tune_epochs"] == 1
    assert written.loc["unet64", "train_seconds"] == pytest.approx(12.0)


def fake_bbox(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """A made-up results/bbox/val_analysis.csv: 1280-row images, a 1024-row band."""
    rng = np.random.default_rng(seed)
    r0 = rng.integers(100, 300, n)
    height = rng.integers(700, 1100, n)
    band_r0 = np.clip(r0 - (1024 - np.minimum(height, 1024)) // 2, 0, 1280 - 1024)
    rows_above = np.maximum(band_r0 - r0, 0)
    rows_below = np.maximum(r0 + height - (band_r0 + 1024), 0)
    return pd.DataFrame(
        {
            "id": [f"0123456789ab_{i % 16 + 1:02d}" for i in range(n)],
            "r0": r0,
            "r1": r0 + height,
            "c0": 200,
            "c1": 1700,
            "band_r0": band_r0,
            "band_r1": band_r0 + 1024,
            "mask_pixels": height * 1200,
            "mask_rows": height,
            "pixels_outside": (rows_above + rows_below) * 900,
            "rows_above": rows_above,
            "rows_below": rows_below,
            "box_height": height,
            "box_width": 1500,
        }
    )


def test_bbox_analysis(tmp_path: Path) -> None:
    frame = fake_bbox()
    frame.to_csv(tmp_path / "val_analysis.csv", index=False)
    analysis.bbox_analysis(tmp_path / "val_analysis.csv", tmp_path / "b.png", tmp_path / "b.csv")
    png_ok(tmp_path / "b.png")
    stats = pd.read_csv(tmp_path / "b.csv").set_index("stat")["value"]
    assert stats["images"] == len(frame)
    assert stats["images_cut"] == int((frame["pixels_outside"] > 0).sum()) > 0
    assert stats["rows_outside_max"] == (frame["rows_above"] + frame["rows_below"]).max()
    assert stats["band_height_median"] == 1024


def test_bbox_analysis_nothing_cut(tmp_path: Path) -> None:
    frame = fake_bbox(10).assign(pixels_outside=0, rows_above=0, rows_below=0)
    frame.to_csv(tmp_path / "v.csv", index=False)
    table = analysis.bbox_analysis(tmp_path / "v.csv", tmp_path / "b.png", tmp_path / "b.csv")
    png_ok(tmp_path / "b.png")
    assert table.set_index("stat").loc["images_cut", "value"] == 0


def test_missing_inputs_name_the_file(results: Path, tmp_path: Path) -> None:
    gone = results / "metrics" / "nope.json"
    with pytest.raises(DataError, match="nope.json: file is missing"):
        analysis.model_comparison([gone], [], tmp_path / "a.png", tmp_path / "a.csv")
    with pytest.raises(DataError, match="nope_thresholds.csv: file is missing"):
        analysis.threshold_curves(
            {"nope": results / "metrics" / "nope_thresholds.csv"},
            tmp_path / "t.png",
            tmp_path / "t.csv",
        )
    with pytest.raises(DataError, match="history.csv: file is missing"):
        analysis.learning_curves(
            {"x": tmp_path / "x" / "history.csv"}, tmp_path / "l.png", tmp_path / "l.csv"
        )
    with pytest.raises(DataError, match="val_analysis.csv: file is missing"):
        analysis.bbox_analysis(
            tmp_path / "val_analysis.csv", tmp_path / "b.png", tmp_path / "b.csv"
        )
    assert not (tmp_path / "a.png").exists() and not (tmp_path / "a.csv").exists()


def test_bad_inputs_name_the_column(results: Path, tmp_path: Path) -> None:
    bad = tmp_path / "val_analysis.csv"
    fake_bbox(5).drop(columns=["rows_below"]).to_csv(bad, index=False)
    with pytest.raises(DataError, match=r"val_analysis.csv: missing column\(s\) rows_below"):
        analysis.bbox_analysis(bad, tmp_path / "b.png", tmp_path / "b.csv")
    (tmp_path / "m.json").write_text(json.dumps({"model": "m"}))
    with pytest.raises(DataError, match="m.json: missing key 'val_dice_full_res'"):
        analysis.comparison_table([tmp_path / "m.json"])


@pytest.mark.parametrize("module", ["carvana.stages", "carvana.comparison"])
def test_light_modules_do_not_import_matplotlib(module: str) -> None:
    """The light stages and the comparison table they use stay free of matplotlib (issue 10)."""
    code = f"import sys, {module}; assert 'matplotlib' not in sys.modules, 'matplotlib loaded'"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_comparison_says_which_models_validated_on_seen_cars(tmp_path: Path) -> None:
    """A refit model's row says its validation cars were seen in training (from train.json)."""
    from carvana.comparison import comparison_table

    paths = []
    for name, seen in (("refit", True), ("held", False)):
        (tmp_path / f"{name}.json").write_text(json.dumps({"model": name,
                                                           "val_dice_full_res": 0.99}))
        (tmp_path / f"{name}_train.json").write_text(json.dumps({"model": name,
                                                                 "validation_seen": seen}))
        paths.append(name)
    table = comparison_table([tmp_path / f"{n}.json" for n in paths],
                             [tmp_path / f"{n}_train.json" for n in paths]).set_index("model")
    assert table.loc["refit", "validation_seen"] == True  # noqa: E712 (a numpy bool)
    assert table.loc["held", "validation_seen"] == False  # noqa: E712
