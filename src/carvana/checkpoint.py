"""Checkpoints that prove what they are, read safely, written byte-identically; resume files.

``weights.pt`` is ``{"state_dict": ..., "meta": ...}``: the meta (JSON-able) names the model,
its architecture, parameters, input channels, input kind and size/tile and the training
parameters' hash, and ``load_checkpoint(path, expect)`` checks it against what the caller
expects. Every read is ``torch.load(weights_only=True)``; every failure to read is one
``CheckpointError`` naming the file and saying what to do.

Writes go through a file object, so the zip archive's root folder is always ``archive``
rather than the random temporary file name: the same state gives the same bytes.

Resume files (``save_resume`` / ``read_resume`` / ``clear_resume``) hold a training run's whole
state; see ``carvana.training.train``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from carvana.io import atomic_path

log = logging.getLogger(__name__)

REQUIRED_META = ("name", "arch", "params", "in_channels", "input")
RESUME_FORMAT = "carvana-resume/1"


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, not ours, or not the model that was expected."""


def _advice(rule: str | None) -> str:
    return f"delete it, or rerun with `snakemake --forcerun {rule or '<rule>'}`"


def params_hash(obj: Any) -> str:
    """sha256 (hex) of ``obj`` as canonical JSON (sorted keys, no spaces); TypeError if not JSON."""
    try:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    except TypeError as err:
        raise TypeError(f"params_hash: the parameters must be JSON-serialisable ({err})") from None
    return hashlib.sha256(text.encode()).hexdigest()


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` into ``path`` atomically, with a fixed archive name (byte-identical)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as stream:
        torch.save(obj, stream)  # a file object: torch names the archive "archive", not tmp's stem
        stream.flush()
        os.fsync(stream.fileno())


def _reason(err: BaseException) -> str:
    """A short cause for a failed load; never torch's advice to load unsafely."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if not first or "weights_only" in str(err) or len(first) > 200:
        return type(err).__name__
    return f"{type(err).__name__}: {first}"


def read_torch(path: str | Path, *, rule: str | None = None, kind: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)``; any failure is a CheckpointError naming the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CheckpointError(f"{path}: {kind} file is missing; rerun the rule that writes it"
                              f" (`snakemake --forcerun {rule or '<rule>'}`)") from None
    if size == 0:
        raise CheckpointError(f"{path}: {kind} file is empty (0 bytes): {_advice(rule)}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as err:  # UnpicklingError, RuntimeError, OSError, EOFError, BadZipFile, ...
        raise CheckpointError(f"{path}: {kind} file is corrupt, truncated or not a torch file "
                              f"({_reason(err)}): {_advice(rule)}") from None


def _normalised(value: Any) -> Any:
    """A value as JSON would store it (tuples become lists, key order irrelevant)."""
    return json.loads(json.dumps(value, sort_keys=True))


def check_meta(path: str | Path, meta: dict[str, Any], expect: dict[str, Any],
               *, rule: str | None = None) -> None:
    """CheckpointError naming the file, the key, the expected and found value of any mismatch."""
    for key, wanted in expect.items():
        found = meta.get(key, "<missing>")
        if key in meta and _normalised(meta[key]) == _normalised(wanted):
            continue
        name = meta.get("name", "?")
        raise CheckpointError(
            f"{path}: checkpoint of model {name!r} has {key}={found!r}, expected {wanted!r}: "
            f"it was written for another model or other settings; {_advice(rule)}")


def save_checkpoint(path: str | Path, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write weights plus their JSON-able ``meta`` atomically and byte-identically.

    ``meta`` must hold at least name, arch, params, in_channels and input (ValueError otherwise);
    anything not JSON-able is a TypeError (weights_only loading would refuse it).
    """
    json.dumps(meta)  # TypeError on anything the safe loader could not read back
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"{path}: checkpoint meta lacks {', '.join(missing)}; a weights file "
                         f"must say what it is ({', '.join(REQUIRED_META)}, params_hash, size)")
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    atomic_torch_save({"state_dict": tensors, "meta": meta}, path)


def load_checkpoint(path: str | Path, expect: dict[str, Any] | None = None, *,
                    rule: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read weights and meta safely; check every ``expect`` key against the meta.

    Raises CheckpointError naming the file (and ``rule`` in its advice, if given) when the file
    is missing, empty, corrupt, not a pipeline checkpoint, or its meta differs from ``expect``.
    """
    ckpt = read_torch(path, rule=rule)
    if (not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict)
            or not isinstance(ckpt.get("meta"), dict)
            or not all(isinstance(v, torch.Tensor) for v in ckpt["state_dict"].values())):
        raise CheckpointError(f"{path}: not a carvana-pipeline checkpoint (no state_dict and "
                              f"meta): {_advice(rule)}")
    check_meta(path, ckpt["meta"], expect or {}, rule=rule)
    return ckpt["state_dict"], ckpt["meta"]


def rng_state() -> dict[str, Any]:
    """The global Python, NumPy and torch (CPU and CUDA) random states, weights_only-safe."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                      "has_gauss": has_gauss, "cached": cached},
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` captured."""
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_resume(path: str | Path, state: dict[str, Any]) -> None:
    """Write a training run's resume state atomically (see ``carvana.training.train``)."""
    atomic_torch_save({"format": RESUME_FORMAT, **state}, path)


def read_resume(path: str | Path, fingerprint: str) -> dict[str, Any] | None:
    """The resume state at ``path`` if it is readable and made with ``fingerprint``; else None.

    Why it is not used is logged: no file (info); unreadable or other parameters (warning).
    """
    path = Path(path)
    if not path.exists():
        log.info("no resume checkpoint at %s: starting afresh", path)
        return None
    try:
        state = read_torch(path, kind="resume checkpoint")
    except CheckpointError as err:
        log.warning("%s; starting afresh", err)
        return None
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        log.warning("%s: not a %s file; starting afresh", path, RESUME_FORMAT)
        return None
    if state.get("fingerprint") != fingerprint:
        log.warning("%s: training parameters hash mismatch (checkpoint %.12s, this run %.12s); "
                    "starting afresh", path, state.get("fingerprint"), fingerprint)
        return None
    return state


def clear_resume(path: str | Path) -> None:
    """Delete a resume checkpoint and any temporary file a killed write left beside it."""
    path = Path(path)
    path.unlink(missing_ok=True)
    if path.parent.is_dir():
        for leftover in path.parent.glob(f".{path.name}.*"):
            leftover.unlink(missing_ok=True)
