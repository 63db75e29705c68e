"""Helpers for the tests that run the workflow: copy it somewhere, run snakemake there."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
# Over the tiny preset: one low-res model and its submission, the smallest complete DAG.
SMALL = """ladder: [unet32]
fullres: []
ensemble: {members: [], weights: []}
submission: {source: unet32, threshold: 0.5}
"""
WORKFLOW_PARTS = ["Snakefile", "config.yaml", "rules", "scripts", "schemas", "configs", "envs",
                  "profiles", "report"]


def load_benchmark(name: str) -> ModuleType:
    """The script ``benchmarks/<name>.py`` as a module (benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_workflow(dest: Path) -> Path:
    """Copy the workflow (not results) into ``dest``; return it."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / part)
    return dest


def snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir`` (with the tiny preset unless args name configfiles)."""
    configfile = [] if "--configfile" in args else ["--configfile", "configs/tiny.yaml"]
    cmd = [sys.executable, "-m", "snakemake", *args, *configfile]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout,
                          env=env)
