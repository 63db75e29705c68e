"""Shared fixtures: the real sample (skipped when absent), one real-photo workflow run shared by
the tests that need trained real-photo models, tiny synthetic data."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from wfutil import REPO, copy_workflow, snakemake

SAMPLE = REPO.parent / "shared" / "carvana-sample"

# Over configs/carvana-cpu.yaml: the same models and stages, with step budgets and sizes for
# 480x320 photos (tiles of 256 px) and a few minutes of CPU. The preset's Lite2 chain (defined,
# not run) joins its Lite0 chain here, so that two members' weights are chosen on validation.
SMALL_REAL = {
    "test_shard_size": 8,
    "ladder": ["effl0_320", "effl0_640", "effl2_320"],
    "fullres": ["effl0_depth", "effl0_depth_lv", "effl2_depth", "effl2_depth_lv"],
    "models": {
        "effl0_320": {"size": [192, 288], "train": {"steps": 60, "warmup_steps": 6,
                                                    "eval_every_steps": 20}},
        "effl0_640": {"size": [256, 384], "train": {"steps": 16, "warmup_steps": 4,
                                                    "eval_every_steps": 8}},
        "effl0_depth": {"train": {"steps": 24, "warmup_steps": 4, "crop": 128,
                                  "eval_every_steps": 12}},
        "effl0_depth_lv": {"train": {"steps": 8, "warmup_steps": 2, "crop": 128,
                                     "eval_every_steps": 8}},
        "effl2_320": {"size": [192, 288], "train": {"steps": 60, "warmup_steps": 6,
                                                    "eval_every_steps": 20}},
        "effl2_depth": {"train": {"steps": 24, "warmup_steps": 4, "crop": 128,
                                  "eval_every_steps": 12}},
        "effl2_depth_lv": {"train": {"steps": 8, "warmup_steps": 2, "crop": 128,
                                     "eval_every_steps": 8}},
    },
    # the preset fixes its weights and refits on the validation car; here the weights are
    # chosen on it, so that path (and the pseudo-label round's labelling ensemble) runs on
    # real photos too, and the car stays held out (a choice on a seen car is an error)
    "training": {"train_on_val": False},
    "ensemble": {"members": ["effl0_depth_lv", "effl2_depth_lv"], "weights": "validation",
                 "weight_step": 0.1},
    # a few dozen steps leave the models sure of little (p about 0.2 on the floor and 0.75 on
    # the car): the band 0.1-0.9 would ignore every pixel, and the round stops saying so
    # the round fine-tunes the 640 map too, and the depth model's copy reads the new map
    "pseudo_labels": {"rounds": 1, "models": ["effl0_640", "effl0_depth_lv"], "low": 0.35,
                      "high": 0.6,
                      "train": {"steps": 8, "warmup_steps": 2, "eval_every_steps": 8},
                      "train_by_model": {m: {"steps": 8, "warmup_steps": 2, "eval_every_steps": 8}
                                         for m in ("effl0_640", "effl0_depth_lv")}},
}


def slurm_wait_warning() -> str | None:
    """Why every `snakemake` start here may wait on SLURM, or None: its executor plugin runs
    `scontrol show config` when Snakemake loads it (timeout 10 s), and with SLURM's client
    tools installed but no controller answering, each of the suite's Snakemake runs waits
    about 9 s (minutes over the suite). CI starts a cluster first, as a developer can."""
    if shutil.which("scontrol") is None:
        return None
    try:
        subprocess.run(["scontrol", "show", "config"], capture_output=True, timeout=2)
    except subprocess.TimeoutExpired:
        return ("warning: `scontrol show config` did not answer in 2 s, so each snakemake start "
                "waits about 9 s on it (the slurm executor plugin); start a local cluster with "
                "`bash .ci/slurm-up.sh` as CI does")
    return None


def pytest_sessionstart(session: pytest.Session) -> None:
    """Say so at the start (with -q too) when Snakemake's starts will wait on SLURM."""
    warning = slurm_wait_warning()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if warning and reporter is not None:
        reporter.write_line(warning, yellow=True)


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The 16 real Carvana images beside the repo; the test skips when they are absent."""
    if not (SAMPLE / "train_masks").is_dir():
        pytest.skip(f"real sample not present at {SAMPLE}")
    return SAMPLE


@pytest.fixture(scope="session")
def real_run(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workflow copy after `submission` with configs/carvana-cpu.yaml on a real subset: 3 cars
    to train on, a 4th held out as the test set (run once per session: a few minutes)."""
    import yaml

    from carvana.subset import SubsetSpec, make_subset

    root = tmp_path_factory.mktemp("real")
    cars = make_subset(sample_dir, root / "data",
                       SubsetSpec(test_cars=1, train_cars=3, width=480))
    assert len(cars["train"]) == 3 and len(cars["test"]) == 1
    work = copy_workflow(root / "run")
    overrides = {**SMALL_REAL, "data_dir": str(root / "data/kaggle"),
                 "truth": str(root / "data/truth/test_masks.csv")}
    (work / "small_real.yaml").write_text(yaml.safe_dump(overrides))
    proc = snakemake(work, "--cores", "2", "submission", "results/metrics/summary.csv",
                     "--configfile", "configs/carvana-cpu.yaml", "small_real.yaml", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return work


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny synthetic Kaggle folder and its truth folder (generated once per session)."""
    from carvana.synthetic import SyntheticConfig, generate

    root = tmp_path_factory.mktemp("tinydata")
    cfg = SyntheticConfig(seed=5, train_cars=2, test_cars=1, width=96, height=64)
    generate(root / "kaggle", root / "truth", cfg, progress=False)
    return root / "kaggle", root / "truth"


@pytest.fixture()
def one_torch_thread():
    """Tiny models: one torch thread is as fast, and immune to other jobs on the shared cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
