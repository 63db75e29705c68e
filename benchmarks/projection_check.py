"""How well the projection printed before a run knows each job: leave one out over a finished run.

Run by hand:  python benchmarks/projection_check.py SNAKEMAKE_LOG RUN_DIR
SNAKEMAKE_LOG is a finished run's Snakemake output (``benchmarks/real_splits.py`` keeps it as
``<split>/snakemake.log``), RUN_DIR the folder it ran in (its ``results/benchmarks``). For each
heavy job it compares three seconds: measured (its benchmark file), the resource formula's
(``carvana.projection.expected_seconds``), and the formula scaled by what the run's *other*
jobs took (``host_factors`` of all but this one), as a rerun of that job alone would project it.

Measured (docs/configuration.md): the carvana-cpu preset with a tenth of its steps on an
AVX2-only AMD EPYC, 21 heavy jobs: the median job off by 2.4x (formula) against 1.15x (scaled).
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
from pathlib import Path

from carvana import projection as pj

JOB = re.compile(r"^(?:local)?rule (\w+):", re.M)


def finished_jobs(log: Path, run: Path) -> list[pj.FinishedJob]:
    """The log's heavy jobs (those with a benchmark file) with their runtime request and time."""
    jobs = []
    for block in log.read_text(errors="replace").split("\n\n"):
        rule, bench = JOB.search(block), re.search(r"benchmark: (\S+)", block)
        runtime = re.search(r"runtime=(\d+)", block)
        wall = pj.benchmark_seconds(run / bench[1]) if rule and bench and runtime else None
        if wall is not None:
            jobs.append(pj.FinishedJob(rule[1], float(runtime[1]), wall))
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("run", type=Path)
    args = parser.parse_args()
    done = finished_jobs(args.log, args.run)
    if len(done) < 2:
        raise SystemExit(f"{args.log}: fewer than two heavy jobs with benchmark files in {args.run}")
    errors: dict[str, list[float]] = {"formula": [], "scaled": []}
    print(f"{'rule':28s} {'request':>7s} {'measured':>9s} {'formula':>8s} {'scaled':>8s}")
    for i, job in enumerate(done):
        planned = pj.PlannedJob(job.runtime_min, 1, True, job.rule)
        formula = pj.expected_seconds(planned)
        scaled = pj.job_seconds(planned, pj.host_factors(done[:i] + done[i + 1:]))
        errors["formula"].append(abs(math.log(formula / job.wall_s)))
        errors["scaled"].append(abs(math.log(scaled / job.wall_s)))
        print(f"{job.rule:28s} {job.runtime_min:5.0f} m {job.wall_s:8.1f}s {formula:7.0f}s "
              f"{scaled:7.1f}s")
    for name, values in errors.items():
        print(f"{name}: the median job off by {math.exp(statistics.median(values)):.2f}x, "
              f"the worst by {math.exp(max(values)):.1f}x")


if __name__ == "__main__":
    main()
