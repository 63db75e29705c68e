"""The CPU as /proc/cpuinfo names it (carvana.host): model, flags, native bfloat16, read
once and without torch, for the DAG's memory requests and each job's log."""

from __future__ import annotations

from pathlib import Path

import pytest

from carvana import host

XEON = ("fpu sse2 avx avx2 fma avx512f avx512dq avx512bw avx512vl avx512_bf16 amx_bf16 "
        "amx_tile")
ZEN3 = "fpu sse2 avx avx2 fma bmi2 vaes vpclmulqdq"
XEON_INFO = (f"processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) "
             f"Platinum 8488C\nflags\t\t: {XEON}\n\nprocessor\t: 1\nmodel name\t: other\n"
             f"flags\t\t: fpu\n")


@pytest.mark.parametrize(("text", "native"), [
    (f"processor\t: 0\nflags\t\t: {XEON}\n", True),
    (f"processor\t: 0\nflags\t\t: {ZEN3}\n", False),
    (f"flags\t\t: {ZEN3} avx_ne_convert avx_vnni\n", True),  # AVX2 with AVX-NE-CONVERT
    ("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n", True),  # Arm with BF16
    ("processor\t: 0\nFeatures\t: fp asimd evtstrm crc32\n", False),
    ("", False),
])
def test_host_native_bf16_reads_the_cpu_flags(tmp_path: Path, text: str, native: bool) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(text)
    assert host.host_native_bf16(cpuinfo) is native
    assert host.host_native_bf16(tmp_path / "missing") is False  # cannot tell: float32's line


def test_model_and_amx_come_from_the_first_processor(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(XEON_INFO)
    assert host.cpu_model(cpuinfo) == "Intel(R) Xeon(R) Platinum 8488C"
    assert host.cpu_has_amx(cpuinfo) and "avx512bw" in host.cpu_flags(cpuinfo)
    zen3 = tmp_path / "zen3"
    zen3.write_text(f"model name\t: AMD EPYC\nflags\t\t: {ZEN3}\n")
    assert host.cpu_model(zen3) == "AMD EPYC" and not host.cpu_has_amx(zen3)
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd\n")  # many Arm hosts name no model
    assert host.cpu_model(arm) == "unknown" and host.cpu_flags(arm) == {"fp", "asimd"}
    assert host.cpu_model(tmp_path / "missing") == "unknown"
    assert host.cpu_flags(tmp_path / "missing") == frozenset()


def test_the_file_is_read_once(tmp_path: Path) -> None:
    """The Snakefile asks for every training job's request: one read serves them all."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"flags\t\t: {XEON}\n")
    assert host.host_native_bf16(cpuinfo)
    cpuinfo.write_text(f"flags\t\t: {ZEN3}\n")
    assert host.host_native_bf16(cpuinfo)  # the first reading stands for the process


def test_host_native_bf16_agrees_with_torch_here() -> None:
    """The DAG's torch-free reading and the job's (torch's oneDNN check) on this machine."""
    from carvana.device import native_cpu_bf16

    if not host.CPUINFO.is_file():
        pytest.skip("no /proc/cpuinfo on this host: the DAG declares float32's line")
    assert host.host_native_bf16() is native_cpu_bf16()
