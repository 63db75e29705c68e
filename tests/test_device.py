"""Device choice: CPU fallback, a clear error without CUDA, one GPU per job via locks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from carvana.device import DeviceError, claim_gpu, select_device
from carvana.host import cpu_has_amx, cpu_model


def test_cpu_and_auto_without_cuda(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="carvana.device"):
        assert select_device("cpu") == torch.device("cpu")
    # the job log names the machine, so a slow run can be told from a slower CPU
    assert f"using the CPU: {cpu_model()}, {torch.get_num_threads()} threads" in caplog.text
    info = Path("/proc/cpuinfo")
    text = info.read_text() if info.exists() else ""
    if "model name" in text:  # x86 Linux names its CPU there (not every aarch64 does)
        assert cpu_model() != "unknown" and cpu_model() in text
        assert cpu_has_amx() == (" amx_bf16" in text)
    if not torch.cuda.is_available():
        assert select_device("auto") == torch.device("cpu")
        assert select_device("cuda", cpu_fallback=True) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the host-without-CUDA message")
def test_cuda_without_fallback_fails_clearly() -> None:
    with pytest.raises(DeviceError, match="no usable CUDA device"):
        select_device("cuda", cpu_fallback=False)


def test_unknown_device() -> None:
    with pytest.raises(DeviceError, match="auto, cpu or cuda"):
        select_device("tpu")


def test_each_claim_gets_its_own_gpu(tmp_path: Path) -> None:
    # two GPUs: this process takes one, a second process the other, a third finds none
    first = claim_gpu(2, tmp_path)
    script = (f"from carvana.device import claim_gpu; print(claim_gpu(2, {str(tmp_path)!r}))")
    second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert {first, int(second.stdout)} == {0, 1}
    # the second process exited, so its GPU is free again; this process still holds `first`
    assert claim_gpu(2, tmp_path) == 1 - first
    with pytest.raises(DeviceError, match="held by other jobs"):
        claim_gpu(2, tmp_path)
