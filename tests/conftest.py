"""Shared fixtures: the real sample (skipped when absent), tiny synthetic data."""

from __future__ import annotations

from pathlib import Path

import pytest
from wfutil import REPO

SAMPLE = REPO.parent / "shared" / "carvana-sample"


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


@pytest.fixture()
def one_torch_thread():
    """Tiny models: one torch thread is as fast, and immune to other jobs on the shared cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
