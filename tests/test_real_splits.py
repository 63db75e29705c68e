"""benchmarks/real_splits.py: a rerun with this repository's workflow, and its arguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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


BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass"


def test_a_job_beside_the_run_counts_as_others_and_the_runs_own_children_do_not() -> None:
    """others_cpu_share tells a timed run from one that shared the CPU: a finished child's
    CPU time is the run's own; a process still running beside it is another's."""
    if real_splits.cpu_seconds()[0] is None:
        pytest.skip("no /proc/stat on this system: others_cpu_share is not measured")
    ncpu = os.cpu_count() or 1
    idle = share_over(lambda: time.sleep(0.5))
    if idle > 0.25:  # what the test would measure is the machine's other work
        pytest.skip(f"the machine is busy (others used {idle:.0%} of its CPU time)")
    own = share_over(lambda: subprocess.run([sys.executable, "-c", BURN.format(s=0.6)],
                                            check=True))
    beside = subprocess.Popen([sys.executable, "-c", BURN.format(s=30)])
    try:
        time.sleep(0.3)  # the interpreter's start
        other = share_over(lambda: time.sleep(1.0))
    finally:
        beside.kill()
        beside.wait()
    assert own < idle + 0.4 / ncpu  # the finished child's 0.6 CPU-s are the run's own
    assert other > idle + 0.6 / ncpu


def share_over(action) -> float:
    """others_cpu_share over the time ``action`` takes."""
    before, start = real_splits.cpu_seconds(), time.monotonic()
    action()
    return real_splits.others_share(before, real_splits.cpu_seconds(),
                                    time.monotonic() - start) or 0.0


def test_others_share_is_a_share_of_every_cpu_and_marks_the_table(monkeypatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert real_splits.others_share((100.0, 10.0), (103.0, 11.0), 2.0) == 0.5
    assert real_splits.others_share((100.0, 10.0), (101.0, 11.0), 2.0) == 0.0
    assert real_splits.others_share((None, 10.0), (None, 11.0), 2.0) is None
    run = {"split": "C", "test_photos": 96, "wall_s": 2400.0, "peak_gb": 4.7,
           "scores": {"mean": 0.995, "min_photo": 0.99, "per_car": {"a": 0.995}}}
    assert "busy" not in real_splits.table([{**run, "others_cpu_share": 0.01}])
    assert "busy: others 40%" in real_splits.table([{**run, "others_cpu_share": 0.4}])
    assert "busy" not in real_splits.table([run])  # runs from before the measure
