"""The whole DAG on the tiny preset: outputs, nothing-to-do, and reruns of only what is stale."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from carvana import rle

from .conftest import copy_workflow, snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def done(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workflow copy after a complete `snakemake all` on the tiny preset."""
    work = copy_workflow(tmp_path_factory.mktemp("wf") / "run")
    proc = snakemake(work, "--cores", "2", "all")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return work


def planned_jobs(proc) -> dict[str, int]:
    """Rule -> job count from a dry run's 'Job stats' table ({} when nothing is to be done)."""
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1]
    counts = {}
    for line in table.splitlines()[3:]:
        m = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not m:
            break
        counts[m[1]] = int(m[2])
    counts.pop("total", None)
    return counts


def fork(done: Path, tmp_path: Path) -> Path:
    """A copy of the finished run (mtimes and Snakemake's metadata kept) to change."""
    return Path(shutil.copytree(done, tmp_path / "fork", symlinks=True))


def test_outputs(done: Path) -> None:
    results = done / "results"
    sample = pd.read_csv(results / "data/synthetic/kaggle/sample_submission.csv")
    with gzip.open(results / "submission.csv.gz", "rt") as fh:
        sub = pd.read_csv(fh, dtype=str, keep_default_na=False)
    assert list(sub.columns) == ["img", "rle_mask"]
    assert sub["img"].tolist() == sample["img"].tolist()
    for code in sub["rle_mask"]:
        rle.decode(code, (64, 96))  # every row decodes at full size
    check = json.loads((results / "submission_check.json").read_text())
    assert check["rows"] == len(sample)
    assert 0.0 <= check["mean_dice_vs_truth"] <= 1.0
    for model in ("unet32", "unet64"):
        metrics = json.loads((results / f"metrics/{model}.json").read_text())
        assert 0.0 <= metrics["val_dice_full_res"] <= 1.0
        assert (results / f"models/{model}/learning_curve.png").stat().st_size > 1000
        history = pd.read_csv(results / f"models/{model}/history.csv")
        assert len(history) >= 1
        log = (done / f"logs/train/{model}.log").read_text()
        assert "epoch 1" in log and "it/s" in log or "s/it" in log  # tqdm progress in the log


def test_nothing_to_do_after_complete_run(done: Path) -> None:
    proc = snakemake(done, "-n", "all")
    assert proc.returncode == 0
    assert planned_jobs(proc) == {}, proc.stdout[-2000:]


def test_threshold_change_reruns_only_submission(done: Path, tmp_path: Path) -> None:
    work = fork(done, tmp_path)
    (work / "override.yaml").write_text("submission: {source: unet64, threshold: 0.3}\n")
    proc = snakemake(work, "-n", "all", "--configfile", "configs/tiny.yaml", "override.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(planned_jobs(proc)) == {"encode_shard", "write_submission", "check_submission"}
