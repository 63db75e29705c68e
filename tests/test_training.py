"""Training: same seed, same numbers; step budgets, schedules, min_steps, a frozen encoder,
validation every N steps, channels_last; the checkpoint round trip is safe and exact."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from carvana.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from carvana.model_stages import train_lowres_stage
from carvana.predict import load_model
from carvana.schedule import lr_factor
from carvana.training import AugmentConfig, TrainConfig, TrainData, train

SPEC = {"arch": "unet", "size": 32, "params": {"initial_filters": 4, "depth": 2, "up_convs": 2},
        "train": {"epochs": 2, "batch_size": 8, "min_val_dice": 0.0}}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models: one thread (see conftest)."""


@pytest.fixture()
def split_csv(tiny_data, tmp_path: Path) -> Path:
    ids = sorted(p.stem for p in (tiny_data[0] / "train").glob("*.jpg"))
    cars = sorted({i.split("_")[0] for i in ids})
    folds = pd.DataFrame({"id": ids, "car": [i.split("_")[0] for i in ids]})
    folds["fold"] = ["val" if c == cars[0] else "train" for c in folds["car"]]
    folds.to_csv(tmp_path / "split.csv", index=False)
    return tmp_path / "split.csv"


def _train(tiny_data, split_csv: Path, out: Path, seed: int, spec: dict = SPEC,
           init: Path | None = None) -> tuple[pd.DataFrame, dict]:
    out.mkdir()
    paths = [str(out / n) for n in ("w.pt", "h.csv", "c.png", "s.json")]
    torch.manual_seed(ord(out.name[0]))  # a different global state each call: must not matter
    train_lowres_stage(name="m", spec=spec, data_dir=str(tiny_data[0]), split=str(split_csv),
                       seed=seed, device="cpu", cpu_fallback=True, resume=None,
                       weights=paths[0], history=paths[1], curve=paths[2], summary=paths[3],
                       init=str(init) if init else None)
    return pd.read_csv(paths[1]), load_checkpoint(paths[0])[0]


def test_same_seed_same_numbers(tiny_data, split_csv: Path, tmp_path: Path) -> None:
    h1, w1 = _train(tiny_data, split_csv, tmp_path / "a", seed=3)
    h2, w2 = _train(tiny_data, split_csv, tmp_path / "b", seed=3)
    h3, _ = _train(tiny_data, split_csv, tmp_path / "c", seed=4)
    cols = ["train_loss", "val_loss", "val_dice"]
    pd.testing.assert_frame_equal(h1[cols], h2[cols])
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert not h1[cols].equals(h3[cols])


def test_train_on_val_refits_on_the_validation_cars_too(
        tiny_data, split_csv: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A refit trains on every car and says that validation now scores seen cars."""
    folds = pd.read_csv(split_csv)["fold"]
    n_train, n_val = int((folds == "train").sum()), int((folds == "val").sum())
    refit = {**SPEC, "train": {**SPEC["train"], "train_on_val": True}}
    with caplog.at_level("INFO", logger="carvana.model_stages"):
        _, refitted = _train(tiny_data, split_csv, tmp_path / "r", seed=3, spec=refit)
    assert f"{n_train + n_val} train / {n_val} val images" in caplog.text
    assert "validation now scores seen cars" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="carvana.model_stages"):
        _, plain = _train(tiny_data, split_csv, tmp_path / "p", seed=3)
    assert f"{n_train} train / {n_val} val images" in caplog.text
    assert "seen cars" not in caplog.text
    assert not all(torch.equal(plain[k], refitted[k]) for k in plain)
    seen = [json.loads((tmp_path / run / "s.json").read_text())["validation_seen"]
            for run in ("r", "p")]
    assert seen == [True, False]  # the summary, and so the report's table, says which is which


class _Started(Exception):
    """Raised by a stand-in for `train`, once it has seen the model it was given."""


def test_a_ladder_model_starts_from_a_smaller_ones_weights(
        tiny_data, split_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`init_from` on a low-res model: training starts from exactly the earlier model's tensors
    (trained at 32 px, loaded into the same network at 48 px); a network they do not fit, a
    missing weights file or another model's checkpoint is an error, not a fresh start."""
    import carvana.model_stages as stages

    _, small = _train(tiny_data, split_csv, tmp_path / "s", seed=3)
    started: dict[str, torch.Tensor] = {}

    def first_state(model: torch.nn.Module, *args, **kwargs):
        started.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        raise _Started

    monkeypatch.setattr(stages, "train", first_state)
    larger = {**SPEC, "size": 48, "init_from": "m"}
    with pytest.raises(_Started):
        _train(tiny_data, split_csv, tmp_path / "w", seed=3, spec=larger, init=tmp_path / "s/w.pt")
    assert started.keys() == small.keys()
    assert all(torch.equal(started[k], small[k]) for k in small)
    with pytest.raises(_Started):  # without init_from: the seed's weights, not the small model's
        _train(tiny_data, split_csv, tmp_path / "c", seed=3, spec={**SPEC, "size": 48})
    assert not all(torch.equal(started[k], small[k]) for k in small)
    deeper = {**larger, "params": {**SPEC["params"], "depth": 3}}
    with pytest.raises(ValueError, match="tensors of .* do not fit this network"):
        _train(tiny_data, split_csv, tmp_path / "d", seed=3, spec=deeper, init=tmp_path / "s/w.pt")
    with pytest.raises(ValueError, match="init_from: 'm' but no weights were given"):
        _train(tiny_data, split_csv, tmp_path / "n", seed=3, spec=larger)
    with pytest.raises(CheckpointError, match="has name='m', expected 'other'"):
        _train(tiny_data, split_csv, tmp_path / "o", seed=3, spec={**larger, "init_from": "other"},
               init=tmp_path / "s/w.pt")


def test_the_resume_key_covers_the_starting_weights(tiny_data, split_csv: Path,
                                                    tmp_path: Path) -> None:
    """A warm-started run's key (params_hash, which names its resume file's run) changes with the
    content of the weights it starts from: after the earlier model retrains, an interrupted
    run's old checkpoints, begun from the old weights, are not resumed from."""
    _train(tiny_data, split_csv, tmp_path / "a", seed=3)
    _train(tiny_data, split_csv, tmp_path / "b", seed=4)  # the same model, retrained
    larger = {**SPEC, "size": 48, "init_from": "m"}
    keys = []
    for out, start in (("x", "a"), ("y", "a"), ("z", "b")):
        _train(tiny_data, split_csv, tmp_path / out, seed=3, spec=larger,
               init=tmp_path / start / "w.pt")
        keys.append(load_checkpoint(tmp_path / out / "w.pt")[1]["params_hash"])
    assert keys[0] == keys[1] != keys[2]


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    from carvana.models import create_model

    model = create_model("unet", 3, initial_filters=4, depth=2, up_convs=2)
    meta = {"name": "m", "arch": "unet", "in_channels": 3,
            "params": {"initial_filters": 4, "depth": 2, "up_convs": 2}, "size": 32,
            "input": "lowres"}
    save_checkpoint(tmp_path / "w.pt", model.state_dict(), meta)
    loaded, meta2 = load_model(tmp_path / "w.pt", torch.device("cpu"))
    assert meta2 == meta
    x = torch.rand(1, 3, 32, 32)
    model.eval()
    # load_model puts the model in channels_last (faster on CPU too): same numbers up to the
    # order of summation
    torch.testing.assert_close(model(x), loaded(x), rtol=0, atol=1e-6)
    with pytest.raises(TypeError):  # only JSON-able metadata: weights_only loading needs it
        save_checkpoint(tmp_path / "x.pt", model.state_dict(), {"bad": object()})
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a carvana-pipeline checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_unknown_training_key_is_an_error() -> None:
    with pytest.raises(TypeError, match="learning_rate"):
        TrainConfig.from_dict({"epochs": 1, "learning_rate": 0.1})
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig.from_dict({"schedule": "linear"})
    with pytest.raises(ValueError, match="steps"):
        TrainConfig.from_dict({"steps": 0})
    for key in ("crop_edge", "crop_edge_lower"):
        with pytest.raises(ValueError, match=f"training {key} is a fraction in \\[0, 1\\], got 1.5"):
            TrainConfig.from_dict({key: 1.5})
    cfg = TrainConfig.from_dict({"min_val_dice": 0.9, "crop": 384, "steps": 500})
    assert (cfg.min_val_dice, cfg.crop, cfg.steps, cfg.schedule) == (0.9, 384, 500, "plateau")


NO_AUGMENT = AugmentConfig(hflip=0, shift=0, scale=0, hue=0, saturation=0, value=0)


def _fit(settings: dict, *, augment: bool = False, constant_dice: float | None = None,
         monkeypatch: pytest.MonkeyPatch | None = None, on_step=None,
         ) -> tuple[list[int], pd.DataFrame, dict, torch.nn.Module]:
    """Train the tiny model on 16 images (4 steps an epoch); the steps seen by on_step."""
    from train_child import Blobs, tiny_model

    if constant_dice is not None:
        monkeypatch.setattr("carvana.training.evaluate", lambda *a, **k: (0.5, constant_dice))
    steps: list[int] = []

    def hook(step: int, model: torch.nn.Module) -> None:
        steps.append(step)
        if on_step is not None:
            on_step(step, model)

    cfg = TrainConfig(batch_size=4, **settings)
    if not augment:
        cfg.augment = NO_AUGMENT
    model = tiny_model()
    _, history, summary = train(model, TrainData(Blobs(16, 0), Blobs(4, 1)), cfg,
                                torch.device("cpu"), 1, on_step=hook)
    return steps, history, summary, model


def test_warmup_then_cosine_factors() -> None:
    f = [lr_factor(s, total=13, warmup=4, schedule="cosine", min_factor=0.1) for s in range(13)]
    assert f[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert f[8] == pytest.approx(0.55)  # half way down the 9 cosine steps
    assert f[12] == pytest.approx(0.1)  # min_lr_factor at the budget's last step
    assert all(a >= b for a, b in zip(f[4:], f[5:], strict=False))
    one = [lr_factor(s, total=10, warmup=0, schedule="onecycle", min_factor=0.01)
           for s in range(10)]
    assert one[0] == pytest.approx(1 / 25) and one[3] == pytest.approx(1.0)  # 30 % rise
    assert one[9] == pytest.approx(0.01) and max(one) == pytest.approx(1.0)
    flat = [lr_factor(s, total=10, warmup=2, schedule="plateau", min_factor=0.01)
            for s in range(10)]
    assert flat == pytest.approx([1 / 3, 2 / 3] + [1.0] * 8)


def test_learning_rate_follows_the_schedule_step_by_step() -> None:
    settings = {"steps": 9, "warmup_steps": 3, "schedule": "cosine", "min_lr_factor": 0.1,
                "lr": 0.01, "eval_every_steps": 1, "early_stopping_patience": 100}
    _, history, _, _ = _fit(settings)
    expected = [0.01 * lr_factor(s - 1, total=9, warmup=3, schedule="cosine", min_factor=0.1)
                for s in history["step"]]
    assert history["step"].tolist() == list(range(1, 10))
    assert history["lr"].tolist() == pytest.approx(expected)
    assert history["lr"].iloc[-1] == pytest.approx(0.001)


def test_step_budget_is_exact_and_wins_over_epochs() -> None:
    steps, history, summary, _ = _fit({"steps": 7, "epochs": 50})
    assert steps == list(range(1, 8)) and summary["steps"] == 7
    assert history["step"].tolist() == [4, 7]  # once an epoch, and at the end of the budget
    assert history["epoch"].tolist() == [1.0, 1.75] and summary["epochs_run"] == 2
    steps, history, summary, _ = _fit({"epochs": 2})  # no budget: epochs x steps per epoch
    assert steps == list(range(1, 9)) and history["step"].tolist() == [4, 8]
    steps, history, _, _ = _fit({"steps": 5, "fine_tune_epochs": 1})  # fine-tune: one epoch more
    assert steps == list(range(1, 10))
    assert history["phase"].tolist() == ["main", "main", "fine_tune"]


def test_validation_every_n_steps() -> None:
    _, history, summary, _ = _fit({"steps": 10, "eval_every_steps": 3})
    assert history["step"].tolist() == [3, 6, 9, 10]
    assert history["epoch"].tolist() == [0.75, 1.5, 2.25, 2.5]
    assert summary["best_step"] in (3, 6, 9, 10)


def test_validating_more_often_leaves_the_weights_as_they_are() -> None:
    """Validation draws nothing from the global RNG that the augmentations (and the tile
    crops) use: 8 augmented steps, validated after every step or only after the last, end
    with the same weights and the same last validation."""
    settings = {"steps": 8, "schedule": "cosine", "early_stopping_patience": 100}
    runs = [_fit({**settings, "eval_every_steps": every}, augment=True) for every in (1, 8)]
    (_, often, _, model_often), (_, once, _, model_once) = runs
    assert often["step"].tolist() == list(range(1, 9)) and once["step"].tolist() == [8]
    assert often["val_dice"].iloc[-1] == once["val_dice"].iloc[-1]
    weights_often, weights_once = model_often.state_dict(), model_once.state_dict()
    assert all(torch.equal(weights_often[k], weights_once[k]) for k in weights_often)
    # not vacuous: one draw from the global RNG mid-run (as a validation pass made before)
    # changes what the augmentations draw after it, and so the weights
    drawn = _fit({**settings, "eval_every_steps": 8}, augment=True,
                 on_step=lambda step, _: torch.rand(1) if step == 4 else None)[3].state_dict()
    assert not all(torch.equal(drawn[k], weights_once[k]) for k in drawn)


def test_min_steps_blocks_early_stopping(monkeypatch: pytest.MonkeyPatch) -> None:
    flat = {"steps": 20, "eval_every_steps": 2, "early_stopping_patience": 1}
    steps, history, _, _ = _fit(flat, constant_dice=0.7, monkeypatch=monkeypatch)
    assert history["step"].tolist() == [2, 4] and steps[-1] == 4  # no gain at 4: stop
    steps, history, summary, _ = _fit({**flat, "min_steps": 8}, constant_dice=0.7,
                                      monkeypatch=monkeypatch)
    assert history["step"].tolist() == [2, 4, 6, 8] and summary["steps"] == 8


def test_plateau_cuts_only_after_min_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = {"steps": 10, "eval_every_steps": 2, "plateau_patience": 0,
                "plateau_factor": 0.5, "min_steps": 5, "lr": 0.01}
    _, history, _, _ = _fit(settings, constant_dice=0.7, monkeypatch=monkeypatch)
    # validations at 2 (best), 4 (no cut before step 5), 6 (cut), 8 (cut), 10 (cut); a row's
    # lr is the one of the step before it
    assert history["lr"].tolist() == pytest.approx([0.01, 0.01, 0.01, 0.005, 0.0025])


def test_frozen_encoder_for_the_first_steps() -> None:
    from train_child import tiny_model

    initial = {k: v.clone() for k, v in tiny_model().state_dict().items()}
    seen: dict[int, tuple[bool, bool, bool]] = {}

    def on_step(step: int, model: torch.nn.Module) -> None:
        state = model.state_dict()
        enc_same = all(torch.equal(state[k], initial[k]) for k in state if k.startswith("encoder."))
        dec_same = all(torch.equal(state[k], initial[k]) for k in state if k.startswith("decoder."))
        grads = [p.grad for p in model.encoder.parameters()]
        seen[step] = (enc_same, dec_same, all(g is None for g in grads))

    _, _, _, model = _fit({"steps": 6, "freeze_encoder_steps": 3}, augment=True, on_step=on_step)
    assert [seen[s] for s in (1, 2, 3)] == [(True, False, True)] * 3  # BN statistics too
    assert [seen[s][0] or seen[s][2] for s in (4, 5, 6)] == [False] * 3
    assert all(p.requires_grad for p in model.parameters())


def test_channels_last_on_the_cpu() -> None:
    layouts: list[bool] = []

    def on_step(step: int, model: torch.nn.Module) -> None:
        if step == 1:
            model.register_forward_pre_hook(lambda m, args: layouts.append(
                args[0].is_contiguous(memory_format=torch.channels_last)))

    _fit({"steps": 3}, augment=True, on_step=on_step)  # steps 2, 3 and the validation
    assert len(layouts) == 3 and all(layouts)


@pytest.mark.parametrize("cpu_bf16", [False, True])
def test_cpu_bf16_autocasts_training_steps_only(monkeypatch: pytest.MonkeyPatch,
                                                cpu_bf16: bool) -> None:
    """``cpu_bf16`` runs the training steps' forward in bfloat16 on a CPU with native bfloat16
    (here asserted so, so that the path runs on any host); validation (whose Dice the quality
    gate judges) stays float32, as does everything without the flag."""
    monkeypatch.setattr("carvana.device.native_cpu_bf16", lambda: True)
    dtypes: list[torch.dtype] = []

    def on_step(step: int, model: torch.nn.Module) -> None:
        if step == 1:
            model.register_forward_hook(lambda m, args, out: dtypes.append(out.dtype))

    _, history, _, model = _fit({"steps": 3, "cpu_bf16": cpu_bf16}, on_step=on_step)
    step_dtype = torch.bfloat16 if cpu_bf16 else torch.float32
    assert dtypes == [step_dtype, step_dtype, torch.float32]  # steps 2, 3, then validation
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights
    assert history["train_loss"].notna().all() and history["val_dice"].notna().all()


def test_cpu_bf16_without_native_support_trains_float32(monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Where bfloat16 would be emulated (an AVX2-only AMD EPYC: the carvana-cpu preset's
    320x480 job took 30 s a step so, 4.5 s in float32), ``cpu_bf16`` trains in float32 and
    says so."""
    monkeypatch.setattr("carvana.device.native_cpu_bf16", lambda: False)
    dtypes: list[torch.dtype] = []

    def on_step(step: int, model: torch.nn.Module) -> None:
        if step == 1:
            model.register_forward_hook(lambda m, args, out: dtypes.append(out.dtype))

    with caplog.at_level("WARNING", logger="carvana.device"):
        _fit({"steps": 2, "cpu_bf16": True}, on_step=on_step)
    assert dtypes == [torch.float32, torch.float32]  # step 2, then validation
    assert "emulated" in caplog.text and "training in float32" in caplog.text
    assert "cpu_bf16: false" in caplog.text
