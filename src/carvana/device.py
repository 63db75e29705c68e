"""Device choice: CUDA when present (one GPU per job, never shared), the CPU otherwise."""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
from pathlib import Path
from typing import IO

import torch

from carvana.host import cpu_has_amx, cpu_model

log = logging.getLogger(__name__)
_held: list[IO[str]] = []  # lock files kept open for the life of the process


class DeviceError(RuntimeError):
    """A job asked for a device this host cannot give."""


def claim_gpu(n_gpus: int, lock_dir: str | Path | None = None) -> int:
    """Claim one of ``n_gpus`` visible GPUs for this process with a file lock and return its index.

    Snakemake's local ``--resources gpu=N`` only caps how many GPU jobs run at once; the lock
    gives each running job its own device. The lock is released when the process exits.
    Under SLURM, ``CUDA_VISIBLE_DEVICES`` already narrows the visible devices to the job's own.
    """
    lock_dir = Path(lock_dir or os.environ.get("CARVANA_GPU_LOCK_DIR")
                    or Path(tempfile.gettempdir()) / "carvana-gpu-locks")
    lock_dir.mkdir(parents=True, exist_ok=True)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "all").replace(",", "-") or "none"
    for index in range(n_gpus):
        handle = open(lock_dir / f"{visible}.{index}.lock", "w")  # noqa: SIM115 (held on purpose)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        handle.write(str(os.getpid()))
        handle.flush()
        _held.append(handle)
        return index
    raise DeviceError(
        f"all {n_gpus} visible GPUs are held by other jobs (locks in {lock_dir}): run with "
        f"--resources gpu={n_gpus} so Snakemake never starts more GPU jobs than there are GPUs"
    )


def select_device(requested: str = "auto", cpu_fallback: bool = True) -> torch.device:
    """Resolve ``auto`` / ``cpu`` / ``cuda`` to a device, claiming a free GPU for CUDA.

    ``cuda`` on a host without CUDA raises DeviceError unless ``cpu_fallback`` is true.
    """
    if requested not in ("auto", "cpu", "cuda"):
        raise DeviceError(f"device must be auto, cpu or cuda, not {requested!r}")
    if requested == "cpu":
        return _cpu()
    if not torch.cuda.is_available():
        if requested == "cuda" and not cpu_fallback:
            raise DeviceError(
                "config asks for device: cuda but this host has no usable CUDA device "
                "(set device: auto or cpu_fallback: true to run on the CPU)"
            )
        if requested == "cuda":
            log.warning("device: cuda requested but CUDA is unavailable; falling back to the CPU")
        return _cpu()
    index = claim_gpu(torch.cuda.device_count())
    torch.cuda.set_device(index)
    log.info("using cuda:%d (%s)", index, torch.cuda.get_device_name(index))
    return torch.device("cuda", index)


def native_cpu_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (else bf16 autocast is emulated)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_bf16_training(asked: bool) -> bool:
    """Whether CPU training steps run under bfloat16 autocast: where ``training: cpu_bf16``
    asks and the CPU has it natively. Emulated, a step would take several times float32's
    (the carvana-cpu preset's 320x480 step: 30 s against 4.5 s on an AVX2-only AMD EPYC), so
    there they run in float32, with a warning."""
    if asked and not native_cpu_bf16():
        log.warning("training.cpu_bf16 is set but this CPU has no native bfloat16 (AVX-512 or "
                    "AMX): emulated, a step takes several times float32's; training in float32 "
                    "instead (its results and memory are float32's). Set `training: cpu_bf16: "
                    "false` here to silence this")
        return False
    return asked


def _cpu() -> torch.device:
    """The CPU, with the machine named in the log: job times are only comparable on one CPU."""
    log.info("using the CPU: %s, %d threads, native bf16: %s, AMX: %s", cpu_model(),
             torch.get_num_threads(), "yes" if native_cpu_bf16() else "no",
             "yes" if cpu_has_amx() else "no")
    return torch.device("cpu")
