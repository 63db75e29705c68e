"""The whole workflow on a SLURM cluster, through snakemake's slurm executor plugin.

Runs when a cluster answers `sinfo` (CI: `.ci/slurm-up.sh` starts a single-node one and
exports CARVANA_SLURM=1). With CARVANA_SLURM=1 but no cluster the test FAILS, so CI cannot
silently skip it; without either it is skipped with the reason.

    .ci/slurm-up.sh && CARVANA_SLURM=1 pytest -m slurm -v

What it checks, on the tiny preset in a copy of the workflow:
- `snakemake --workflow-profile none --profile profiles/slurm --profile .ci/slurm-profile
  --configfile configs/tiny.yaml submission` exits 0;
- every non-local job went through sbatch and left its SLURM log: one sbatch call per job
  that runs alone and one per group job (carvana.workflow.shard_group: the short per-shard
  jobs run in the cluster job of the prediction they encode), none for the jobs inside groups;
- results/submission.csv.gz exists with header `img,rle_mask`;
- the one rule forced to `gpu=1` (GPU_RULE) was submitted with a GPU request (the CI
  cluster has a fake `gpu` gres; the job itself still runs on CPU: `device: auto`);
- a second (dry) run has nothing to do.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from wfutil import REPO, SMALL, copy_workflow

pytestmark = pytest.mark.slurm

# The rule forced to request one GPU (the tiny preset declares gpu=0 everywhere).
GPU_RULE = "train_lowres"
TARGET = "submission"
CONFIGFILE = "configs/tiny.yaml"  # with wfutil.SMALL over it: one model, its submission
TIMEOUT_S = 600

CI_PROFILE = REPO / ".ci" / "slurm-profile"
UP_STATES = {"idle", "mixed", "allocated", "completing"}

# A group job is submitted under its own id (a uuid), a plain job under its number.
SUBMITTED_RE = re.compile(
    r"^Job (?P<job>\S+) has been submitted with SLURM jobid (?P<slurm>\S+) \(log: (?P<log>.+)\)\.$"
)
# Jobs of a group job are listed indented under its "Group job" line.
RULE_HEADER_RE = re.compile(r"^(?P<indent>\s*)(?P<local>local)?rule (?P<rule>\w+):$")
GROUP_RE = re.compile(r"Group job (?P<group>\S+) \(jobs in lexicogr\. order\):$")
JOBID_RE = re.compile(r"^\s*jobid: (?P<job>\d+)$")
FINISHED_RE = re.compile(r"^Finished jobid: (?P<job>\d+) \(Rule: (?P<rule>\w+)\)$")
# The short per-shard rules (carvana.workflow.shard_group): never a cluster job of their own.
GROUPED_RULES = {"encode_shard", "boxes_test", "ensemble_test"}


def cluster_state() -> tuple[bool, str]:
    """(True, states) if `sinfo` reports at least one usable node, else (False, why not)."""
    if shutil.which("sinfo") is None:
        return False, "sinfo not installed"
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return False, "sinfo timed out"
    if proc.returncode != 0:
        return False, f"sinfo failed: {proc.stderr.strip()}"
    states = {s.strip().rstrip("*~#$@^-").lower() for s in proc.stdout.split()}
    if states & UP_STATES:
        return True, ",".join(sorted(states))
    return False, f"no usable node (states: {','.join(sorted(states)) or 'none'})"


@pytest.fixture(scope="module")
def slurm_cluster() -> str:
    up, detail = cluster_state()
    if up:
        return detail
    if os.environ.get("CARVANA_SLURM") == "1":
        pytest.fail(
            f"CARVANA_SLURM=1 but no SLURM cluster is up ({detail}); run .ci/slurm-up.sh first"
        )
    pytest.skip(f"no SLURM cluster ({detail}); run .ci/slurm-up.sh and set CARVANA_SLURM=1")


def snakemake_cmd(*extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        TARGET,  # first: --configfile/--set-resources take several values and would eat it
        # profiles/default (the local profile) would override the slurm profile key by key,
        # including its `resources: gpu=0` cap, which strips GPU requests from sbatch.
        "--workflow-profile",
        "none",
        "--profile",
        "profiles/slurm",
        "--profile",
        str(CI_PROFILE),
        "--configfile",
        CONFIGFILE,
        "small.yaml",
        "--set-resources",
        f"{GPU_RULE}:gpu=1",
        *extra,
    ]


def scontrol_job(jobid: str) -> str | None:
    """`scontrol show job -o` for one job, or None once slurmctld has forgotten it."""
    proc = subprocess.run(
        ["scontrol", "show", "job", "-o", jobid], capture_output=True, text=True, timeout=30
    )
    return proc.stdout if proc.returncode == 0 and "JobId=" in proc.stdout else None


def sbatch_calls(log: str) -> dict[str, str]:
    """The plugin's `sbatch call:` lines (logged with --verbose), by rule (`--comment rule_X`)."""
    calls = {}
    for line in log.splitlines():
        if line.startswith("sbatch call: "):
            m = re.search(r"--comment '?rule_(\w+?)(?:_wildcards_\S*)?'? ", line)
            if m:
                calls.setdefault(m.group(1), "")
                calls[m.group(1)] += line + "\n"
    return calls


def job_listing(log: str) -> tuple[list[dict], list[list[dict]]]:
    """The jobs the log lists, as (jobs alone, group jobs), each job {rule, local, job}."""
    alone: list[dict] = []
    groups: list[list[dict]] = []
    last: dict | None = None
    for line in log.splitlines():
        if GROUP_RE.search(line):
            groups.append([])
        elif m := RULE_HEADER_RE.match(line):
            last = {"rule": m["rule"], "local": bool(m["local"]), "job": None}
            (groups[-1] if m["indent"] and groups else alone).append(last)
        elif (m := JOBID_RE.match(line)) and last is not None and last["job"] is None:
            last["job"] = m["job"]
    return alone, groups


def test_workflow_on_slurm(slurm_cluster: str, tmp_path: Path) -> None:
    copy_workflow(tmp_path)
    (tmp_path / "small.yaml").write_text(SMALL)
    log_path = tmp_path / "snakemake-slurm.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.run(
            snakemake_cmd("--verbose"),
            cwd=tmp_path,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=TIMEOUT_S,
        )
    log = log_path.read_text()
    tail = "\n".join(log.splitlines()[-60:])
    assert proc.returncode == 0, f"snakemake failed (exit {proc.returncode}); log tail:\n{tail}"

    lines = [line.strip() for line in log.splitlines()]
    submitted = [m.groupdict() for line in lines if (m := SUBMITTED_RE.match(line))]
    finished = [m.groupdict() for line in lines if (m := FINISHED_RE.match(line))]
    alone, groups = job_listing(log)
    remote = [j for j in alone if not j["local"]]
    every_job = alone + [j for group in groups for j in group]

    # One sbatch call per job that runs alone and per group job; every job that ran finished.
    assert submitted, f"no job was submitted to SLURM; log tail:\n{tail}"
    assert len(submitted) == len(remote) + len(groups), (
        f"{len(remote)} non-local jobs and {len(groups)} group jobs but {len(submitted)} "
        "sbatch submissions"
    )
    assert len(finished) == len(every_job), (
        f"{len(every_job)} jobs started, {len(finished)} finished"
    )
    submitted_job_ids = {s["job"] for s in submitted}
    assert {j["job"] for j in remote} <= submitted_job_ids
    assert {f["job"] for f in finished} == {j["job"] for j in every_job}
    # The short per-shard jobs ran inside group jobs (with the prediction they encode), and
    # each group job holds more than one job.
    assert groups, "no group job: the per-shard rules were submitted one by one"
    assert all(len(group) >= 2 for group in groups), groups
    assert not GROUPED_RULES & {j["rule"] for j in alone}, [j["rule"] for j in alone]
    print(f"SLURM: {len(submitted)} sbatch jobs ({len(remote)} alone, {len(groups)} groups "
          f"holding {len(every_job) - len(alone)} jobs), {len(alone) - len(remote)} local")

    # Each submission left its SLURM log (the CI profile keeps successful jobs' logs).
    slurm_dir = tmp_path / ".snakemake" / "slurm_logs"
    slurm_logs = sorted(p for pattern in ("rule_*/**/*.log", "group_*/**/*.log")
                        for p in slurm_dir.glob(pattern))
    for s in submitted:
        path = Path(s["log"])
        assert path.is_file() and path.stat().st_size > 0, f"missing SLURM log {path}"
    assert len(slurm_logs) == len(submitted), (
        f"{len(slurm_logs)} SLURM logs for {len(submitted)} submissions: {slurm_logs}"
    )

    # The submission.
    sub = tmp_path / "results" / "submission.csv.gz"
    assert sub.is_file(), "results/submission.csv.gz was not written"
    with gzip.open(sub, "rt") as fh:
        assert fh.readline().strip() == "img,rle_mask"
        assert fh.readline(), "submission has no rows"

    # The GPU rule asked SLURM for a GPU. Primary evidence: slurmctld's own record of the
    # job (TresPerJob=gres:gpu:1; finished jobs stay visible for MinJobAge). Fallback when it
    # has been purged: the sbatch command line the plugin logged with --verbose.
    gpu_jobs = [s for s in submitted if f"/rule_{GPU_RULE}/" in s["log"]]
    assert gpu_jobs, f"rule {GPU_RULE} was not submitted (submitted: {submitted})"
    calls = sbatch_calls(log)
    for s in gpu_jobs:
        record = scontrol_job(s["slurm"])
        if record is not None:
            assert re.search(r"\b(TresPerJob|TresPerNode|TRES)=\S*gpu", record), (
                f"SLURM job {s['slurm']} ({GPU_RULE}) has no GPU request:\n{record}"
            )
        else:
            assert "--gpus=1" in calls.get(GPU_RULE, ""), (
                f"no --gpus=1 in the sbatch call of {GPU_RULE}: {calls.get(GPU_RULE)}"
            )
    # ...and the CPU rules did not (gpu=0 must not turn into a GPU request).
    for rule, call in calls.items():
        if rule != GPU_RULE:
            assert "--gpus" not in call and "--gres" not in call, f"{rule} asked for a GPU: {call}"

    # A second run has nothing to do.
    dry = subprocess.run(
        snakemake_cmd("--dry-run"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout + dry.stderr


def test_the_suite_warns_when_scontrol_would_stall_snakemake(monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    """tests/conftest.py's start-of-session probe: no scontrol or a prompt one, no warning; a
    scontrol that outlasts 2 s, a warning naming the way out."""
    import conftest

    def slow(cmd, **kwargs):
        raise subprocess.TimeoutExpired(cmd, kwargs["timeout"])

    monkeypatch.setattr(conftest.shutil, "which", lambda name: None)
    assert conftest.slurm_wait_warning() is None
    monkeypatch.setattr(conftest.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(conftest.subprocess, "run", lambda cmd, **kw: None)
    assert conftest.slurm_wait_warning() is None
    monkeypatch.setattr(conftest.subprocess, "run", slow)
    warning = conftest.slurm_wait_warning()
    assert warning is not None and "bash .ci/slurm-up.sh" in warning and "9 s" in warning
