"""The plan's projected wall time, printed before a run's first job.

Each heavy job (a rule with a ``benchmark:``) counts its ``runtime`` request without the
formula's ``TIME_SAFETY`` (a request at the ``MIN_RUNTIME`` floor counts as its start-up), each
light job ``LIGHT_JOB_S``; the jobs' core-seconds are spread over the cores, and the projection
is never shorter than the longest job.

The formula (carvana.resources) does not know the CPU: its step times were calibrated on one
machine, in float32. Where jobs of the run's DAG have already run here and will not rerun (a
changed parameter, a resumed run), their benchmark files say how far the requests are from
this host: each planned heavy job is scaled by the median ratio, measured over expected, of its
rule's finished jobs, else of all finished heavy jobs (those whose requests are above the
``MIN_RUNTIME`` floor).

Nothing here imports torch: the Snakefile's ``onstart`` calls it.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from carvana.resources import MIN_RUNTIME, STARTUP_S, TIME_SAFETY

#: A light job (ingest, boxes, ensemble, encoding, ...: rules without a benchmark), seconds.
LIGHT_JOB_S = 4.0
#: The key of ``host_factors`` for all finished jobs together.
ALL_RULES = "*"


@dataclass(frozen=True)
class PlannedJob:
    """One job of a plan: its runtime request (minutes), its threads, whether it is heavy, and
    its rule."""

    runtime_min: float
    threads: int
    heavy: bool
    rule: str = ""


@dataclass(frozen=True)
class FinishedJob:
    """A heavy job of the DAG that ran before and will not rerun: its rule, its runtime
    request (minutes) and the wall seconds its benchmark file holds."""

    rule: str
    runtime_min: float
    wall_s: float


def expected_seconds(job: PlannedJob) -> float:
    """What the formula expects a job to take: its request without ``TIME_SAFETY`` (a request
    at the ``MIN_RUNTIME`` floor says only "short": its start-up); a light job ``LIGHT_JOB_S``."""
    if not job.heavy:
        return LIGHT_JOB_S
    if job.runtime_min <= MIN_RUNTIME:
        return STARTUP_S
    return job.runtime_min * 60.0 / TIME_SAFETY


def benchmark_seconds(path: str | Path) -> float | None:
    """The median wall seconds (column ``s``) of a Snakemake benchmark file; None where it is
    missing, unreadable, or holds no positive time."""
    try:
        with open(path, newline="") as fh:
            times = [float(row["s"]) for row in csv.DictReader(fh, delimiter="\t")]
    except (OSError, KeyError, ValueError, TypeError, csv.Error):
        return None
    times = [t for t in times if t > 0 and math.isfinite(t)]
    return statistics.median(times) if times else None


def host_factors(done: Iterable[FinishedJob]) -> dict[str, float]:
    """Per rule, and under ``ALL_RULES`` for all, the median of measured / expected seconds of
    the finished jobs. A request at the ``MIN_RUNTIME`` floor says only "short": such a job
    speaks for its own rule (its other shards: the same work) but not for all rules."""
    ratios: dict[str, list[float]] = {}
    for job in done:
        ratio = job.wall_s / expected_seconds(PlannedJob(job.runtime_min, 1, True))
        keys = (job.rule,) if job.runtime_min <= MIN_RUNTIME else (job.rule, ALL_RULES)
        for key in keys:
            ratios.setdefault(key, []).append(ratio)
    return {key: statistics.median(values) for key, values in ratios.items()}


def job_seconds(job: PlannedJob, factors: dict[str, float]) -> float:
    """A planned job's expected seconds, a heavy one scaled by its rule's factor (else all
    finished jobs' factor, else 1)."""
    if not job.heavy:
        return LIGHT_JOB_S
    return expected_seconds(job) * factors.get(job.rule, factors.get(ALL_RULES, 1.0))


def projected_seconds(jobs: list[PlannedJob], cores: int,
                      factors: dict[str, float] | None = None) -> float:
    """The plan's wall time on ``cores`` cores: the jobs' core-seconds (each on at most
    ``cores`` threads) spread over the cores, and never less than its longest job."""
    if not jobs:
        return 0.0
    factors = factors or {}
    cores = max(1, int(cores))
    seconds = [job_seconds(j, factors) for j in jobs]
    work = sum(s * min(max(1, j.threads), cores) for s, j in zip(seconds, jobs, strict=True))
    return max(work / cores, max(seconds))


def duration(seconds: float) -> str:
    """A rough human duration: seconds, minutes, hours or days."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def projection_note(jobs: list[PlannedJob], cores: int,
                    done: Iterable[FinishedJob] = ()) -> str:
    """The line printed before a run: jobs, projected wall time, cores, and what it rests on
    (the formula alone, or the formula scaled by the finished jobs measured here)."""
    done = list(done)
    factors = host_factors(done)
    head = (f"projected: {len(jobs)} jobs, about "
            f"{duration(projected_seconds(jobs, cores, factors))} on {cores} cores")
    if not factors:
        return f"{head} (the resource formula's runtimes; see docs/configuration.md)"
    by_rule = [value for key, value in factors.items() if key != ALL_RULES]
    return (f"{head} (the resource formula's runtimes, {duration(projected_seconds(jobs, cores))}"
            f" alone, times what {len(done)} finished jobs of this DAG took here: "
            f"x{min(by_rule):.2g} to x{max(by_rule):.2g} by rule; see docs/configuration.md)")
