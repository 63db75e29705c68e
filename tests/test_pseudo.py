"""Ensemble weights chosen on validation, pseudo-labels, and the loss that ignores pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from carvana import workflow as wf
from carvana.chain import needed_models
from carvana.ensemble import choose_weights, grid_dice, weight_grid
from carvana.io import IGNORE, DataError, read_labels, write_labels, write_prob
from carvana.losses import bce_dice_loss, split_labels
from carvana.metrics import dice
from carvana.pseudo import labels_from_prob, pseudo_labels_to_dir
from carvana.split import pseudo_cap, thin_to_share
from carvana.stages import ensemble_stage, member_weights

ID = "0123456789ab_01"


def test_weight_grid_covers_the_simplex() -> None:
    grid = weight_grid(3, 0.1)
    assert grid.shape == (66, 3)  # C(12, 2)
    assert np.allclose(grid.sum(axis=1), 1)
    assert {tuple(r) for r in weight_grid(2, 0.5)} == {(0, 1), (0.5, 0.5), (1, 0)}
    with pytest.raises(ValueError, match="divide 1"):
        weight_grid(2, 0.3)


def test_grid_dice_equals_thresholding_each_stored_average() -> None:
    """The shortcut (score only pixels where members disagree) gives exactly the Dice of the
    ensemble the workflow writes: the average stored as round(255 p), then thresholded (maps
    off the 1/255 grid, so that no average falls on a rounding tie)."""
    rng = np.random.default_rng(0)
    probs = rng.random((3, 40, 50))
    truth = rng.random((40, 50)) > 0.6
    grid = weight_grid(3, 0.25)
    got = grid_dice(probs, truth, grid, 0.5)
    for row, weights in enumerate(grid):
        stored = np.rint(np.tensordot(weights, probs, 1) * 255) / 255
        assert got[row] == pytest.approx(dice(stored >= 0.5, truth), abs=1e-12)


def test_choose_weights_drops_a_member_that_only_hurts() -> None:
    """A member of noise gets weight 0 and the choice says what keeping it would cost; the
    best member alone is found when it is perfect."""
    rng = np.random.default_rng(1)
    truths = {f"{ID[:-2]}{k:02d}": rng.random((30, 30)) > 0.5 for k in range(1, 5)}

    def load(image_id: str) -> tuple[np.ndarray, np.ndarray]:
        t = truths[image_id]
        good = np.where(t, 0.8, 0.2)
        near = np.where(t ^ (rng.random(t.shape) > 0.9), 0.7, 0.3)  # 10 % of pixels wrong
        return np.stack([good, near, rng.random(t.shape)]), t

    choice = choose_weights(["good", "near", "noise"], sorted(truths), load, threshold=0.5,
                            step=0.25)
    assert choice.dice == pytest.approx(1.0)
    assert choice.weights["noise"] == 0
    assert choice.alone["good"] == pytest.approx(1.0) and choice.alone["noise"] < 0.6
    record = choice.to_json()
    assert "noise" in record["dropped"] and any("noise" in n for n in record["notes"])
    assert choice.table["dice"].is_monotonic_decreasing


def test_ensemble_stage_reads_chosen_weights_and_refuses_stale_ones(tmp_path: Path) -> None:
    for name, value in (("a", 0.2), ("b", 1.0)):
        write_prob(tmp_path / name / f"{ID}.png", np.full((16, 24), value, np.float32))
    (tmp_path / "ingest.json").write_text(json.dumps({"width": 24, "height": 16}))
    chosen = tmp_path / "weights.json"
    chosen.write_text(json.dumps({"weights": {"a": 0.0, "b": 1.0}}))
    ensemble_stage(member_preds=[str(tmp_path / "a"), str(tmp_path / "b")],
                   members={"a": None, "b": None}, ingest=str(tmp_path / "ingest.json"),
                   ids=[ID], ensemble_weights=str(chosen), preds=str(tmp_path / "out"))
    from carvana.io import read_prob

    assert np.allclose(read_prob(tmp_path / "out" / f"{ID}.png"), 1.0)
    with pytest.raises(ValueError, match="ensemble_weights.json as an input"):
        member_weights({"a": None}, None)
    with pytest.raises(ValueError, match="rerun the ensemble_weights rule"):
        member_weights({"a": None, "c": None}, str(chosen))
    assert member_weights({"a": 1, "b": 3}, None) == {"a": 1.0, "b": 3.0}


def test_a_member_of_weight_zero_does_not_run() -> None:
    tiles = {"tiles": None, "depth": "low"}
    assert needed_models("ensemble", members={"low": 0.0, "tiles": 0.0, "depth": 1.0},
                         tile_models=tiles, box_model="low") == ["low", "depth"]
    assert needed_models("ensemble", members={"low": None, "tiles": None},
                         tile_models=tiles, box_model="low") == ["low", "tiles"]


def test_labels_keep_only_confident_pixels_and_round_trip(tmp_path: Path) -> None:
    prob = np.array([[0.0, 0.1, 0.11, 0.5], [0.89, 0.9, 1.0, 0.95]], np.float32)
    labels = labels_from_prob(prob, low=0.1, high=0.9)
    assert labels.tolist() == [[0, 0, IGNORE, IGNORE], [IGNORE, 1, 1, 1]]
    write_labels(tmp_path / "l.png", labels)
    assert np.array_equal(read_labels(tmp_path / "l.png"), labels)
    write_prob(tmp_path / "p.png", np.full((4, 4), 0.3, np.float32))  # other grey levels
    with pytest.raises(DataError, match="not a label file"):
        read_labels(tmp_path / "p.png")
    with pytest.raises(ValueError, match="low < high"):
        labels_from_prob(prob, low=0.9, high=0.1)


def test_pseudo_labels_refuse_an_ensemble_that_knows_nothing(tmp_path: Path) -> None:
    car = np.zeros((16, 24), np.float32)
    car[4:12, 6:18] = 1.0
    write_prob(tmp_path / "m" / f"{ID}.png", car)
    stats = pseudo_labels_to_dir({"m": (tmp_path / "m", 1.0)}, [ID], size=(24, 16), low=0.1,
                                 high=0.9, out_dir=tmp_path / "out")
    assert stats["car_fraction"] == pytest.approx(96 / 384) and stats["ignored_fraction"] == 0
    assert read_labels(tmp_path / "out" / f"{ID}.png").sum() == 96
    write_prob(tmp_path / "flat" / f"{ID}.png", np.full((16, 24), 0.5, np.float32))
    with pytest.raises(DataError, match=f"{ID}: the ensemble is confident of no car"):
        pseudo_labels_to_dir({"m": (tmp_path / "flat", 1.0)}, [ID], size=(24, 16), low=0.1,
                             high=0.9, out_dir=tmp_path / "bad")


def test_ignored_pixels_leave_the_loss_and_its_gradient() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 6, 6, requires_grad=True)
    labels = (torch.rand(2, 1, 6, 6) > 0.5).float()
    labels[:, :, :3] = IGNORE
    y, ignored = split_labels(labels)
    assert ignored and y.shape == (2, 2, 6, 6)
    loss = bce_dice_loss(logits, y[:, :1], valid=y[:, 1:])
    loss.backward()
    assert torch.all(logits.grad[:, :, :3] == 0) and torch.any(logits.grad[:, :, 3:] != 0)
    # the same as the loss of the labelled rows alone
    alone = bce_dice_loss(logits[:, :, 3:].detach(), labels[:, :, 3:])
    assert float(loss.detach()) == pytest.approx(float(alone), rel=1e-6)
    plain = (torch.rand(1, 1, 4, 4) > 0.5).float()
    assert split_labels(plain) == (plain, False)


def pseudo_config() -> dict:
    """A config of two tile models, one fine-tuned for two pseudo-label rounds."""
    return {
        "ladder": ["low"], "fullres": ["tiles", "depth"], "bbox": {"model": "low"},
        "training": {"epochs": 1},
        "models": {"low": {"arch": "unet", "size": 32},
                   "tiles": {"arch": "unet", "input": "tiles", "init_from": "low"},
                   "depth": {"arch": "unet", "input": "tiles", "depth_from": "low",
                             "train": {"lr": 0.01}}},
        "ensemble": {"members": ["low", "tiles", "depth"], "weights": "validation"},
        "submission": {"source": "ensemble", "threshold": 0.5},
        "pseudo_labels": {"rounds": 2, "models": ["depth"], "train": {"steps": 7}},
    }


def test_pseudo_rounds_become_models_of_the_dag() -> None:
    config = wf.with_pseudo_rounds(pseudo_config())
    wf.check_config(config)
    assert config["fullres"] == ["tiles", "depth", "depth_pl1", "depth_pl2"]
    assert config["ensemble"]["members"] == ["low", "tiles", "depth_pl2"]
    assert config["models"]["depth_pl1"]["init_from"] == "depth"
    assert config["models"]["depth_pl2"]["init_from"] == "depth_pl1"
    spec = wf.model_spec(config, "depth_pl2")
    assert spec["train"]["steps"] == 7 and spec["train"]["lr"] == 0.01
    assert spec["pseudo"] == {"round": 2, "base": "depth"} and spec["depth_from"] == "low"
    assert wf.pseudo_sources(config, 1) == {"low": None, "tiles": None, "depth": None}
    assert wf.pseudo_sources(config, 2) == {"low": None, "tiles": None, "depth_pl1": None}
    fixed = wf.with_pseudo_rounds({**pseudo_config(), "ensemble": {
        "members": ["low", "depth"], "weights": [1, 3]}})
    assert wf.pseudo_sources(fixed, 2) == {"low": 1, "depth_pl1": 3}
    assert wf.weights_chosen(config)
    assert wf.with_pseudo_rounds({**pseudo_config(), "pseudo_labels": {"rounds": 0}}) == {
        **pseudo_config(), "pseudo_labels": {"rounds": 0}}


def test_a_pseudo_round_of_the_map_feeds_the_same_rounds_depth_model() -> None:
    """A ladder model in the rounds: its copy joins the ladder (after the model it starts
    from), the depth model's copy of the same round reads it, the context-free tile model
    keeps its map, and each listed model gets its own training settings."""
    config = wf.with_pseudo_rounds({**pseudo_config(), "pseudo_labels": {
        "rounds": 2, "models": ["low", "depth"], "train": {"steps": 7},
        "train_by_model": {"low": {"steps": 3, "lr": 0.5}}}})
    wf.check_config(config)
    assert config["ladder"] == ["low", "low_pl1", "low_pl2"]
    assert config["fullres"] == ["tiles", "depth", "depth_pl1", "depth_pl2"]
    assert config["ensemble"]["members"] == ["low_pl2", "tiles", "depth_pl2"]
    assert [wf.model_spec(config, m)["depth_from"] for m in ("depth", "depth_pl1", "depth_pl2")
            ] == ["low", "low_pl1", "low_pl2"]
    assert [wf.model_spec(config, m)["init_from"] for m in ("low_pl1", "low_pl2", "depth_pl1")
            ] == ["low", "low_pl1", "depth"]
    low, depth = wf.model_spec(config, "low_pl2"), wf.model_spec(config, "depth_pl1")
    assert (low["train"]["steps"], low["train"]["lr"], low["size"]) == (3, 0.5, 32)
    assert (depth["train"]["steps"], depth["train"]["lr"]) == (7, 0.01)
    assert low["pseudo"] == {"round": 2, "base": "low"}
    assert wf.pseudo_sources(config, 2) == {"low_pl1": None, "tiles": None, "depth_pl1": None}
    # the depth model alone in the rounds keeps the round-0 map
    alone = wf.with_pseudo_rounds(pseudo_config())
    assert wf.model_spec(alone, "depth_pl2")["depth_from"] == "low"


@pytest.mark.parametrize(("change", "message"), [
    ({"pseudo_labels": {"rounds": 1, "models": ["elsewhere"]}}, "not a ladder or fullres"),
    ({"pseudo_labels": {"rounds": 1, "models": ["depth"], "train_by_model": {"low": {}}}},
     "'low' is not in pseudo_labels.models"),
    ({"models": {**pseudo_config()["models"], "low_pl1": {"arch": "unet", "size": 32}},
      "pseudo_labels": {"rounds": 1, "models": ["low"]}}, "taken by pseudo-label round 1"),
    ({"ensemble": {}}, "needs an ensemble"),
])
def test_pseudo_rounds_name_what_is_wrong(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wf.with_pseudo_rounds({**pseudo_config(), **change})


def test_a_pseudo_round_asks_memory_for_the_test_photos_it_caches() -> None:
    from carvana import resources as rs

    config = wf.with_pseudo_rounds(pseudo_config())
    config["tiles"] = {"size": None, "multiple": 32, "min_overlap": 0}
    shape = rs.DataShape(1918, 1280, 64)
    plain, round1 = wf.model_spec(config, "depth"), wf.model_spec(config, "depth_pl1")
    assert rs.training_shape(shape, plain, 32) == shape
    assert rs.training_shape(shape, round1, 32).n_train == 96


def test_a_folder_of_pseudo_labels_names_its_photos_or_fails(tmp_path: Path) -> None:
    """Both training stages read a round's labels through one listing: the photos it labels,
    in order; an empty folder (a round that labelled nothing) is an error naming it."""
    from carvana.model_stages import _label_ids

    with pytest.raises(ValueError, match=f"{tmp_path}: no pseudo-labels"):
        _label_ids(str(tmp_path))
    for image_id in (f"{ID[:-2]}02", ID):
        write_labels(tmp_path / f"{image_id}.png", np.zeros((4, 4), np.uint8))
    assert _label_ids(str(tmp_path)) == [ID, f"{ID[:-2]}02"]


def test_max_share_thins_the_labelled_photos_evenly() -> None:
    """At most ``max_share`` of a fine-tune's photos are pseudo-labelled: an evenly spread
    subset across the shards when there are more (known picks), all of them otherwise."""
    shards = [list("abcdefghij"), list("klmnop")]
    assert pseudo_cap(10, 0.3) == 4  # 4 / (10 + 4) <= 0.3 < 5 / (10 + 5)
    assert thin_to_share(shards, own=10, max_share=0.3) == [["a", "f"], ["k", "p"]]
    assert thin_to_share(shards, own=10, max_share=None) == shards
    assert thin_to_share(shards, own=100, max_share=0.3) == shards
    for own, share in [(80, 0.3), (80, 0.5), (7, 0.25), (5088, 0.3)]:
        kept = sum(map(len, thin_to_share([[f"{k:06d}" for k in range(100_000)]], own=own,
                                          max_share=share)))
        assert kept / (own + kept) <= share < (kept + 1) / (own + kept + 1)
    with pytest.raises(ValueError, match=r"must lie in \(0, 1\), got 1.0"):
        thin_to_share(shards, own=10, max_share=1.0)
    with pytest.raises(ValueError, match="max_share 0.05 of 10 train photos keeps none of the 16"):
        thin_to_share(shards, own=10, max_share=0.05)


def test_a_capped_round_names_its_share_and_asks_memory_for_what_it_keeps(
        tmp_path: Path) -> None:
    """``pseudo_labels: max_share`` reaches each round's spec (and only when set), the memory
    request counts only the photos it keeps, and the training stages list the kept ones."""
    from carvana import resources as rs
    from carvana.model_stages import _pseudo_ids, _pseudo_lowres

    config = wf.with_pseudo_rounds({**pseudo_config(), "pseudo_labels": {
        **pseudo_config()["pseudo_labels"], "max_share": 0.25}})
    wf.check_config(config)
    spec = wf.model_spec(config, "depth_pl2")
    assert spec["pseudo"] == {"round": 2, "base": "depth", "max_share": 0.25}
    shape = rs.DataShape(1918, 1280, 64)
    assert rs.training_shape(shape, spec, 96).n_train == 64 + 21
    assert rs.training_shape(shape, spec, 8).n_train == 64 + 8
    folders = [tmp_path / "0000", tmp_path / "0001"]
    for k, folder in enumerate(folders):
        folder.mkdir()
        for view in range(1, 5):
            write_labels(folder / f"{ID[:-4]}{k}_{view:02d}.png", np.zeros((4, 4), np.uint8))
    kept = _pseudo_ids(spec, [str(f) for f in folders], own=6)
    assert kept == [[f"{ID[:-4]}0_01"], [f"{ID[:-4]}1_04"]]
    assert _pseudo_ids({}, [str(f) for f in folders], own=6)[1] == [
        f"{ID[:-4]}1_{view:02d}" for view in range(1, 5)]
    # a shard the cap empties adds no dataset; the others keep their own label folder
    sets = _pseudo_lowres(str(tmp_path), 32, [str(f) for f in folders], [[], kept[1]])
    assert [(d.ids, d.labels_dir) for d in sets] == [(kept[1], folders[1])]
