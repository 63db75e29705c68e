"""The real-photo preset end to end on real Carvana photos (the shared sample, never copied into
the repository): 3 cars to train and validate on, a 4th car as the test set with its masks kept
aside, photos at a quarter of their size so the whole DAG takes a few minutes on 2 cores. The run
itself is the session fixture ``real_run`` (conftest.py), shared with the browser test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from wfutil import copy_workflow, snakemake

from carvana.subset import SubsetSpec, make_subset

pytestmark = pytest.mark.slow

DICE_FLOOR = 0.9  # an untrained network scores ~0.3 (all car) or 0 (no car) here
#: One photo's Dice, resized to an odd size, from the small run's chain (a few dozen steps a
#: model; two depth models, Lite2 the slower learner): 0.8875 and 0.898 on the worst ones,
#: measured 2026-12-03, before Lite2's 8-step Lovász fine-tune joined the chain.
PHOTO_FLOOR = 0.85


def test_real_photos_score_above_an_untrained_floor(real_run: Path) -> None:
    """The held-out car's submission, decoded and scored against its kept masks."""
    check = json.loads((real_run / "results/submission_check.json").read_text())
    assert check["rows"] == 16
    assert check["empty_masks"] == 0
    assert check["mean_dice_vs_truth"] >= DICE_FLOOR, check
    summary = pd.read_csv(real_run / "results/metrics/summary.csv").set_index("model")
    assert summary.loc["effl0_640", "val_dice_full_res"] >= DICE_FLOOR
    warm = (real_run / "logs/train/effl0_640.log").read_text()
    assert "initialised from results/models/effl0_320/weights.pt (0 tensors not loaded)" in warm
    boxes = pd.read_csv(real_run / "results/bbox/train.csv")
    assert not boxes["empty"].any()
    for name, encoder in (("effl0_depth", "lite0"), ("effl2_depth", "lite2")):
        depth = json.loads((real_run / f"results/models/{name}/train.json").read_text())
        assert depth["in_channels"] == 4 and depth["params"]["encoder"] == encoder
        # the preset's Lite0 depth model corrects its map's logit; Lite2's was not measured so
        assert depth["params"].get("prior_residual", False) is (encoder == "lite0")
    for name, start in (("effl0_depth_lv", "effl0_depth"), ("effl2_depth_lv", "effl2_depth")):
        lovasz = (real_run / f"logs/train/{name}.log").read_text()
        assert f"initialised from results/models/{start}/weights.pt" in lovasz
        assert summary.loc[name, "val_dice_full_res"] >= DICE_FLOOR
    assert np.isfinite(summary["val_dice_full_res"]).all()


def test_pseudo_labels_and_chosen_weights_on_real_photos(real_run: Path) -> None:
    """The preset's pseudo-label round: the held-out car labelled by the first ensemble (few
    pixels left out); the 640 map and the depth model fine-tuned on it from their own weights
    and validated on a train car, the depth model's copy reading the new map; the ensemble's
    weights chosen on validation and used by the chain."""
    labels = json.loads((real_run / "results/pseudo/r1/0000.json").read_text())
    assert labels["images"] == 8 and labels["car_fraction"] > 0.1
    assert labels["max_ignored_fraction"] < 0.5, labels
    assert set(labels["members"]) == {"effl0_depth_lv", "effl2_depth_lv"}
    log = (real_run / "logs/train/effl0_depth_lv_pl1.log").read_text()
    assert "initialised from results/models/effl0_depth_lv/weights.pt" in log
    assert "plus 16 pseudo-labelled test images" in log
    log = (real_run / "logs/train/effl0_640_pl1.log").read_text()
    assert "initialised from results/models/effl0_640/weights.pt" in log
    assert "plus 16 pseudo-labelled test images" in log
    summary = pd.read_csv(real_run / "results/metrics/summary.csv").set_index("model")
    assert summary.loc["effl0_depth_lv_pl1", "val_dice_full_res"] >= DICE_FLOOR
    chosen = json.loads((real_run / "results/metrics/ensemble_weights.json").read_text())
    assert set(chosen["weights"]) == {"effl0_depth_lv_pl1", "effl2_depth_lv"}
    assert chosen["val_dice"] >= max(chosen["alone"].values()) - 1e-9
    chain = json.loads((real_run / "results/chain.json").read_text())
    assert chain["members"] == chosen["weights"]
    assert chain["models"]["effl0_depth_lv_pl1"]["depth_from"] == "effl0_640_pl1"
    assert summary.loc["effl0_640_pl1", "val_dice_full_res"] >= DICE_FLOOR


def test_cutouts_of_real_photos_at_odd_sizes(real_run: Path, sample_dir: Path,
                                             tmp_path: Path) -> None:
    """`cutouts` on three photos of the held-out car, resized to odd sizes and saved as PNG
    under other names: masks of each photo's own size that match its true mask."""
    import cv2

    from carvana.io import read_mask
    from carvana.metrics import dice

    photos = tmp_path / "photos"
    photos.mkdir()
    test_car = sorted(p.stem for p in (real_run.parent / "data/kaggle/test").glob("*.jpg"))
    # the names people give photos: spaces, parentheses, unicode, several dots
    sizes = {"front view": (1001, 667), "IMG 2031 (1)": (640, 427), "arri\u00e8re.v3": (517, 517)}
    truths = {}
    for (stem, size), image_id in zip(sizes.items(), test_car[::5], strict=False):
        image = cv2.imread(str(sample_dir / "train" / f"{image_id}.jpg"))
        Image.fromarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA)[..., ::-1]).save(
            photos / f"{stem}.png")
        mask = read_mask(sample_dir / "train_masks" / f"{image_id}_mask.gif")
        truths[stem] = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    proc = snakemake(real_run, "--cores", "2", "cutouts", "--configfile",
                     "configs/carvana-cpu.yaml", "small_real.yaml", "--config",
                     f"photos_dir={photos}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    out = real_run / "results/cutouts"
    for stem, truth in truths.items():
        mask = np.asarray(Image.open(out / f"{stem}_mask.png"))
        assert mask.shape == truth.shape and set(np.unique(mask)) <= {0, 255}
        assert dice(mask > 0, truth > 0) >= PHOTO_FLOOR, stem
        rgba = np.asarray(Image.open(out / f"{stem}.png"))
        assert rgba.shape == (*truth.shape, 4)
        assert np.array_equal(rgba[..., 3], mask)
    assert cv2.imread(str(out / "contact_sheet.jpg")) is not None


def test_default_config_on_real_photos_stops_at_a_gate(sample_dir: Path,
                                                       tmp_path: Path) -> None:
    """The new user's first try: config.yaml (small synthetic-sized U-Nets) on a real folder of
    2 train cars and 1 test car. It must not end green with empty masks: the first low-res
    model fails its quality gate, naming itself, its Dice and the real-photo preset."""
    make_subset(sample_dir, tmp_path / "data", SubsetSpec(test_cars=1, train_cars=2, width=480))
    work = copy_workflow(tmp_path / "run")
    proc = snakemake(work, "--cores", "2", "submission", "--configfile", "config.yaml",
                     "--config", f"data_dir={tmp_path / 'data/kaggle'}",
                     f"truth={tmp_path / 'data/truth/test_masks.csv'}")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert "GateError: model 'unet128'" in output and "min_val_dice" in output, output[-3000:]
    assert "configs/carvana-cpu.yaml" in output
    # the note comes first, before any job: what this config is and what to run instead
    note = output.index("note: config.yaml is the synthetic demo's config")
    assert note < output.index("rule train_lowres") and "0.948" in output[note:note + 300]
    assert not (work / "results/models/unet128/weights.pt").exists()
    assert not (work / "results/submission.csv.gz").exists()
