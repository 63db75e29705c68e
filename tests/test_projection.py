"""The plan's projected wall time (carvana.projection): the formula's requests, scaled by what
the DAG's finished jobs took on this host."""

from __future__ import annotations

from pathlib import Path

import pytest
from wfutil import load_benchmark

from carvana import projection as pj
from carvana.resources import MIN_RUNTIME, STARTUP_S

HEAVY = pj.PlannedJob(runtime_min=20, threads=2, heavy=True, rule="train")  # 10 min expected
#: Snakemake's benchmark file: a header and one row a repeat.
BENCH_HEAD = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def test_projection_known_values() -> None:
    """Heavy jobs count their request without the safety factor, floor requests their start-up,
    light jobs a few seconds; the work is spread over the cores, never below the longest job."""
    floor = pj.PlannedJob(runtime_min=MIN_RUNTIME, threads=2, heavy=True)
    light = pj.PlannedJob(runtime_min=10, threads=1, heavy=False)
    assert pj.expected_seconds(HEAVY) == 600 and pj.expected_seconds(floor) == STARTUP_S
    assert pj.expected_seconds(light) == pj.LIGHT_JOB_S
    assert pj.projected_seconds([HEAVY, HEAVY], cores=2) == 1200  # one at a time on 2 cores
    assert pj.projected_seconds([HEAVY, HEAVY], cores=4) == 600  # side by side
    assert pj.projected_seconds([HEAVY, light], cores=64) == 600  # the longest job
    assert pj.projected_seconds([], cores=2) == 0
    note = pj.projection_note([HEAVY] * 300, cores=2)
    assert note.startswith("projected: 300 jobs, about 2.1 days on 2 cores")
    assert note.endswith("(the resource formula's runtimes; see docs/configuration.md)")


def test_benchmark_seconds_reads_snakemakes_file(tmp_path: Path) -> None:
    bench = tmp_path / "job.tsv"
    bench.write_text(BENCH_HEAD + "732.51\t0:12:12\t6996.39\t1\t1\t1\t0\t0\t95\t1400\n")
    assert pj.benchmark_seconds(bench) == pytest.approx(732.51)
    bench.write_text(BENCH_HEAD + "10\t-\t1\n30\t-\t1\n20\t-\t1\n")  # repeats: their median
    assert pj.benchmark_seconds(bench) == 20
    for text in (BENCH_HEAD, "no header\n1\n", BENCH_HEAD + "0\t-\n", BENCH_HEAD + "nan\t-\n",
                 BENCH_HEAD + "abc\t-\n"):
        bench.write_text(text)
        assert pj.benchmark_seconds(bench) is None, text
    assert pj.benchmark_seconds(tmp_path / "missing.tsv") is None


def test_finished_jobs_scale_the_plan_by_rule() -> None:
    """A rule's own finished jobs set its factor; a rule without any takes the median over all
    jobs above the request floor; a job at the floor speaks for its own rule only; light jobs
    are never scaled."""
    done = [pj.FinishedJob("train", 20, 300.0), pj.FinishedJob("train", 20, 900.0),  # x0.5, x1.5
            pj.FinishedJob("train", 20, 600.0),  # x1
            pj.FinishedJob("predict", 40, 2400.0),  # x2
            pj.FinishedJob("predict_test", MIN_RUNTIME, 5 * STARTUP_S)]  # at the floor: x5
    factors = pj.host_factors(done)
    assert factors == {"train": 1.0, "predict": 2.0, "predict_test": 5.0, pj.ALL_RULES: 1.25}
    predict = pj.PlannedJob(runtime_min=20, threads=2, heavy=True, rule="predict")
    other = pj.PlannedJob(runtime_min=20, threads=2, heavy=True, rule="ensemble_model")
    shard = pj.PlannedJob(runtime_min=MIN_RUNTIME, threads=2, heavy=True, rule="predict_test")
    light = pj.PlannedJob(runtime_min=10, threads=1, heavy=False, rule="predict")
    assert pj.job_seconds(predict, factors) == 1200
    assert pj.job_seconds(other, factors) == 750
    assert pj.job_seconds(shard, factors) == 5 * STARTUP_S
    assert pj.job_seconds(light, factors) == pj.LIGHT_JOB_S
    assert pj.projected_seconds([HEAVY, predict, other], cores=2, factors=factors) == 2550


def test_the_note_says_what_it_rests_on() -> None:
    """A host 6x slower than the formula: the note gives the scaled figure first, the
    formula's alone beside it, and the range of the rules' factors."""
    done = [pj.FinishedJob("train", 20, 3600.0), pj.FinishedJob("predict", 20, 1800.0)]
    note = pj.projection_note([HEAVY] * 3, cores=2, done=done)
    assert note.startswith("projected: 3 jobs, about 3.0 h on 2 cores (")  # 3 x 600 s x 6
    assert "30 min alone, times what 2 finished jobs of this DAG took here: x3 to x6" in note
    floor_only = [pj.FinishedJob("predict_test", MIN_RUNTIME, 5 * STARTUP_S)]
    note = pj.projection_note([HEAVY], cores=2, done=floor_only)
    assert note.startswith("projected: 1 jobs, about 10 min on 2 cores")  # no factor for it


def test_the_check_script_reads_a_runs_log(tmp_path: Path) -> None:
    """benchmarks/projection_check.py: the log's heavy jobs (local or not) with their request
    and their benchmark file's time; a job without a readable benchmark file is left out."""
    check = load_benchmark("projection_check")
    (tmp_path / "results/benchmarks").mkdir(parents=True)
    (tmp_path / "results/benchmarks/a.tsv").write_text(BENCH_HEAD + "732.5\t-\n")
    (tmp_path / "results/benchmarks/b.tsv").write_text(BENCH_HEAD + "48.0\t-\n")
    log = tmp_path / "snakemake.log"
    log.write_text(
        "[Mon Dec  7 20:00:00 2026]\nlocalrule train_lowres:\n    benchmark: "
        "results/benchmarks/a.tsv\n    threads: 2\n    resources: tmpdir=/tmp, runtime=18\n\n"
        "[Mon Dec  7 20:12:00 2026]\nrule predict_lowres_test:\n    benchmark: "
        "results/benchmarks/b.tsv\n    resources: tmpdir=/tmp, gpu=0, runtime=5\n\n"
        "rule predict_tiles_test:\n    benchmark: results/benchmarks/gone.tsv\n"
        "    resources: runtime=5\n\nlocalrule ensemble_test:\n    resources: runtime=10\n")
    assert check.finished_jobs(log, tmp_path) == [
        pj.FinishedJob("train_lowres", 18.0, 732.5),
        pj.FinishedJob("predict_lowres_test", 5.0, 48.0)]
