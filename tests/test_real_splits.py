"""benchmarks/real_splits.py: a rerun with this repository's workflow, and its arguments."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from wfutil import REPO, load_benchmark

real_splits = load_benchmark("real_splits")

OLD_NS = 1_000_000_000 * 10**9  # 2001: older than any output of the run


def test_unchanged_workflow_files_keep_their_old_mtime(tmp_path: Path) -> None:
    """Snakemake reruns a job whose script is newer than its outputs: a rerun with the current
    workflow must not make every unchanged script look new."""
    run = tmp_path / "run"
    real_splits.copy_workflow(run)
    files = [p for p in run.rglob("*") if p.is_file()]
    for path in files:
        os.utime(path, ns=(OLD_NS, OLD_NS))
    edited = run / "scripts" / "split.py"
    edited.write_text("# the old run's version\n")
    os.utime(edited, ns=(OLD_NS, OLD_NS))
    (run / "rules" / "gone.smk").write_text("# a file the current workflow no longer has\n")
    real_splits.replace_workflow(run)
    assert edited.read_bytes() == (REPO / "scripts" / "split.py").read_bytes()
    assert edited.stat().st_mtime_ns > OLD_NS
    assert not (run / "rules" / "gone.smk").exists()
    kept = [p for p in files if p != edited]
    assert len(kept) > 50 and all(p.stat().st_mtime_ns == OLD_NS for p in kept)


def test_a_whole_runs_time_counts_the_chain_models_fold_copies(tmp_path: Path) -> None:
    """The estimated whole-run time sums the stages of the chain's models, their fold copies'
    training and prediction too, not a model the run no longer uses."""
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "chain.json").write_text(json.dumps({"models": {"low": {}, "deep": {}}}))
    stages = {"train/low": 100.0, "predict/low_test": 5.0, "predict/low_train_all": 7.0,
              "train/low_oof_k2_0": 90.0, "train/low_oof_k2_1": 80.0,
              "predict/low_oof_k2_0": 3.0, "train/deep": 200.0, "predict/deep_val": 11.0,
              "train/gone": 1000.0, "train/gone_oof_k2_0": 1000.0}
    assert real_splits.chain_seconds(stages, tmp_path) == 100 + 5 + 7 + 90 + 80 + 3 + 200 + 11


@pytest.mark.parametrize(("extra", "message"), [
    (["--train-cars", "1"], "at least 2"),
    (["--train-cars", "3", "--rerun-from", "old"], "does not apply with --rerun-from"),
])
def test_a_train_car_count_the_run_cannot_use_is_refused(extra: list[str], message: str,
                                                         capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["real_splits.py", "--out", "x", "--split", "A", *extra])
    with pytest.raises(SystemExit) as exit_:
        real_splits.main()
    assert exit_.value.code == 2 and message in capsys.readouterr().err
