"""Shared fixtures: the real sample (skipped when absent), tiny synthetic data, workflow copies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "carvana-sample"
WORKFLOW_PARTS = ["Snakefile", "config.yaml", "rules", "scripts", "schemas", "configs", "envs",
                  "profiles"]


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The 16 real Carvana images beside the repo; the test skips when they are absent."""
    if not (SAMPLE / "train_masks").is_dir():
        pytest.skip(f"real sample not present at {SAMPLE}")
    return SAMPLE


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny synthetic Kaggle folder and its truth folder (generated once per session)."""
    from carvana.synthetic import SyntheticConfig, generate

    root = tmp_path_factory.mktemp("tinydata")
    cfg = SyntheticConfig(seed=5, train_cars=2, test_cars=1, width=96, height=64)
    generate(root / "kaggle", root / "truth", cfg, progress=False)
    return root / "kaggle", root / "truth"


def copy_workflow(dest: Path) -> Path:
    """Copy the workflow (not results) into ``dest``; return it."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part)
        else:
            shutil.copy2(src, dest / part)
    return dest


def snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir`` with the tiny preset; return the finished process."""
    cmd = [sys.executable, "-m", "snakemake", *args, "--configfile", "configs/tiny.yaml"]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout,
                          env=env)
