"""This host's CPU as ``/proc/cpuinfo`` names it: its model, its flags, and whether it runs
bfloat16 natively.

Nothing here imports torch: the Snakefile reads it while it builds the jobs' memory requests
(carvana.resources), and each job's log names its CPU from it (carvana.device).
"""

from __future__ import annotations

import functools
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")

#: CPU flags with which oneDNN runs bfloat16 natively, any one set suffices (what torch's
#: ``mkldnn._is_mkldnn_bf16_supported`` asks: AVX-512 core or AVX-NE-CONVERT on x86, BF16 on
#: Arm). Without them ``cpu_bf16`` training runs in float32 (carvana.device.cpu_bf16_training).
BF16_FLAG_SETS = ({"avx512f", "avx512bw", "avx512vl", "avx512dq"}, {"avx_ne_convert"},
                  {"bf16"})


@functools.cache
def cpuinfo_fields(cpuinfo: Path = CPUINFO) -> dict[str, str]:
    """Each key's first value in ``cpuinfo`` (the first processor's), read once; empty where
    the file cannot be read (not Linux, or no /proc)."""
    try:
        lines = cpuinfo.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The CPU's feature flags (x86 ``flags``, Arm ``Features``); empty where unknown."""
    fields = cpuinfo_fields(cpuinfo)
    return frozenset((fields.get("flags") or fields.get("Features") or "").split())


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's model name ('unknown' where there is none, as on some Arm hosts)."""
    return cpuinfo_fields(cpuinfo).get("model name") or "unknown"


def cpu_has_amx(cpuinfo: Path = CPUINFO) -> bool:
    """Whether the CPU has AMX-BF16 tiles (this project's chain predicted 2.4x slower in bf16
    on an AMD EPYC with AVX512-BF16 but no AMX than on an Intel Xeon with AMX)."""
    return "amx_bf16" in cpu_flags(cpuinfo)


def host_native_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """Whether this host trains in bfloat16 natively, from its flags (``BF16_FLAG_SETS``;
    ``carvana.device.native_cpu_bf16`` asks torch in the job). False where it cannot tell:
    float32's memory line, the larger request, is the safe one."""
    flags = cpu_flags(cpuinfo)
    return any(needed <= flags for needed in BF16_FLAG_SETS)
