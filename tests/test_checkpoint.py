"""Checkpoints prove what they are, fail clearly when damaged, are byte-identical; a training
run killed with SIGKILL resumes to the same final weights."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from train_child import KILL_ENV, RESUME_CFG, Blobs, tiny_model

from carvana.checkpoint import (
    CheckpointError,
    clear_resume,
    load_checkpoint,
    params_hash,
    save_checkpoint,
)
from carvana.training import Resume, TrainConfig, TrainData, train

CHILD = Path(__file__).with_name("train_child.py")
META = {"name": "unet32", "arch": "unet", "params": {"initial_filters": 4, "depth": 2},
        "in_channels": 3, "input": "lowres", "size": 32, "params_hash": "abc123"}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models: one thread (see conftest)."""


def _state() -> dict[str, torch.Tensor]:
    return tiny_model().state_dict()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_clear(err: CheckpointError, path: Path) -> None:
    text = str(err)
    assert str(path) in text and "--forcerun" in text and "delete it" in text
    assert "weights_only" not in text


def test_round_trip_and_expected_meta(tmp_path: Path) -> None:
    state = _state()
    save_checkpoint(tmp_path / "w.pt", state, META)
    loaded, meta = load_checkpoint(tmp_path / "w.pt", expect={k: META[k] for k in META})
    assert meta == META and all(torch.equal(loaded[k], state[k]) for k in state)
    # a tuple and a list are the same JSON value, dict order does not matter
    load_checkpoint(tmp_path / "w.pt", expect={"params": {"depth": 2, "initial_filters": 4}})


@pytest.mark.parametrize(("key", "wanted"), [("name", "unet64"), ("size", 64),
                                             ("params_hash", "fff"), ("tile", 256)])
def test_wrong_meta_names_file_key_and_both_values(tmp_path: Path, key: str, wanted: object,
                                                   ) -> None:
    path = tmp_path / "unet64" / "weights.pt"
    save_checkpoint(path, _state(), META)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, expect={key: wanted}, rule="train_lowres")
    text = str(info.value)
    found = META.get(key, "<missing>")
    assert str(path) in text and f"{key}={found!r}" in text and f"expected {wanted!r}" in text
    assert "--forcerun train_lowres" in text


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _random_bytes(path: Path) -> None:
    path.write_bytes(torch.randint(0, 256, (5000,), generator=torch.Generator().manual_seed(3),
                                   dtype=torch.uint8).numpy().tobytes())


def _random_after_zip_magic(path: Path) -> None:
    path.write_bytes(b"PK\x03\x04" + os.urandom(3000))


def _pickle_of_code(path: Path) -> None:  # torch's own error here advises weights_only=False
    torch.save({"state_dict": {}, "meta": {}, "x": zipfile.ZipInfo("x")}, path)


def _zip_without_pickle(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/version", "3")


@pytest.mark.parametrize("damage", [
    lambda p: p.write_bytes(b""), _truncated, _random_bytes, _random_after_zip_magic,
    _pickle_of_code, _zip_without_pickle, lambda p: p.unlink(),
], ids=["empty", "truncated", "random", "zip-magic", "pickled-code", "zip-no-pickle", "missing"])
def test_damaged_file_is_one_clear_error(tmp_path: Path, damage) -> None:
    path = tmp_path / "weights.pt"
    save_checkpoint(path, _state(), META)
    damage(path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    text = str(info.value)
    assert str(path) in text and "--forcerun" in text and "weights_only" not in text


def test_not_a_pipeline_checkpoint(tmp_path: Path) -> None:
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a carvana-pipeline checkpoint") as info:
        load_checkpoint(tmp_path / "other.pt")
    _assert_clear(info.value, tmp_path / "other.pt")
    assert isinstance(info.value, ValueError)


def test_save_needs_a_meta_that_says_what_it_is(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lacks arch, params"):
        save_checkpoint(tmp_path / "w.pt", _state(), {"name": "m", "in_channels": 3,
                                                      "input": "lowres"})
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "w.pt", _state(), {**META, "bad": object()})
    assert not (tmp_path / "w.pt").exists()


def test_same_state_same_bytes(tmp_path: Path) -> None:
    state = _state()
    channels_last = {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v
                     for k, v in state.items()}
    paths = [tmp_path / "a" / "weights.pt", tmp_path / "b" / "other-name.pt",
             tmp_path / "c" / "weights.pt"]
    save_checkpoint(paths[0], state, META)
    save_checkpoint(paths[1], state, META)
    save_checkpoint(paths[2], channels_last, META)  # the layout does not reach the bytes
    assert len({_sha(p) for p in paths}) == 1
    names = zipfile.ZipFile(paths[0]).namelist()
    assert all(n.startswith("archive/") for n in names)  # not the temporary file's name


def test_params_hash_is_canonical() -> None:
    a = params_hash({"lr": 0.001, "spec": {"size": 32, "arch": "unet"}})
    assert a == params_hash({"spec": {"arch": "unet", "size": 32}, "lr": 0.001})
    assert a != params_hash({"lr": 0.002, "spec": {"size": 32, "arch": "unet"}})
    assert len(a) == 64
    with pytest.raises(TypeError, match="JSON"):
        params_hash({"path": Path("x")})


def _child(tmp_path: Path, name: str, resume: Path, kill_at: int | None = None,
           phash: str = "h1") -> subprocess.CompletedProcess:
    out = tmp_path / name
    out.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
    if kill_at is not None:
        env[KILL_ENV] = str(kill_at)
    return subprocess.run([sys.executable, str(CHILD), str(out), str(resume), phash],
                          env=env, capture_output=True, text=True, timeout=120)


def _weights(tmp_path: Path, name: str) -> dict[str, torch.Tensor]:
    return load_checkpoint(tmp_path / name / "weights.pt")[0]


def test_sigkill_then_rerun_resumes_to_identical_weights(tmp_path: Path) -> None:
    ref = _child(tmp_path, "ref", tmp_path / "ref.resume.pt")
    assert ref.returncode == 0, ref.stderr[-2000:]
    resume = tmp_path / "resume" / "run.resume.pt"
    killed = _child(tmp_path, "run", resume, kill_at=7)  # checkpoints at 3, 4, 6: mid-epoch
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert resume.exists() and not (tmp_path / "run" / "weights.pt").exists()
    rerun = _child(tmp_path, "run", resume)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resuming from step 6" in rerun.stderr
    a, b = _weights(tmp_path, "ref"), _weights(tmp_path, "run")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _sha(tmp_path / "ref" / "weights.pt") == _sha(tmp_path / "run" / "weights.pt")
    cols = ["step", "epoch", "phase", "lr", "train_loss", "val_loss", "val_dice"]
    h_ref, h_run = (pd.read_csv(tmp_path / n / "history.csv")[cols] for n in ("ref", "run"))
    pd.testing.assert_frame_equal(h_ref, h_run)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["resumed_from_step"] == 6
    assert not resume.exists()  # cleared once the weights were written


def _run(resume: Path, phash: str, crash_at: int | None = None,
         ) -> tuple[list[int], dict | None]:
    steps: list[int] = []

    def on_step(step: int, model: torch.nn.Module) -> None:
        steps.append(step)
        if step == crash_at:
            raise KeyboardInterrupt

    cfg = TrainConfig.from_dict({**RESUME_CFG, "steps": 6, "fine_tune_epochs": 0})
    try:
        _, _, summary = train(tiny_model(), TrainData(Blobs(16, 0), Blobs(4, 1)), cfg,
                              torch.device("cpu"), 1, resume=Resume(resume, phash),
                              on_step=on_step)
    except KeyboardInterrupt:
        return steps, None
    return steps, summary


def test_changed_params_or_unreadable_file_starts_afresh(tmp_path: Path, caplog) -> None:
    resume = tmp_path / "r.pt"
    caplog.set_level(logging.INFO)
    assert _run(resume, "h1", crash_at=5)[1] is None and resume.exists()  # checkpoint at 4
    steps, summary = _run(resume, "h2", crash_at=3)
    assert steps == [1, 2, 3] and "hash mismatch" in caplog.text
    steps, summary = _run(resume, "h2")  # the afresh run's own checkpoint (step 3): resumed
    assert steps == [4, 5, 6] and summary["resumed_from_step"] == 3
    resume.write_bytes(os.urandom(2000))
    caplog.clear()
    steps, summary = _run(resume, "h2")
    assert steps[0] == 1 and summary["resumed_from_step"] is None
    assert str(resume) in caplog.text and "starting afresh" in caplog.text
    assert "weights_only" not in caplog.text


def test_clear_resume_removes_leftovers(tmp_path: Path) -> None:
    resume = tmp_path / "m.resume.pt"
    resume.write_bytes(b"x")
    (tmp_path / ".m.resume.pt.abc123.pt").write_bytes(b"half-written")
    (tmp_path / "keep.pt").write_bytes(b"y")
    clear_resume(resume)
    clear_resume(resume)  # already gone: no error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.pt"]
