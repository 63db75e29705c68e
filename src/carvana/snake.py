"""Glue for the thin scripts under scripts/: logging into the rule's log, clear failures."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from typing import Any


def run_logged(main: Callable[[], Any], log_path: str, threads: int = 1) -> None:
    """Run ``main`` with stderr (tqdm bars, logging, tracebacks) sent to ``log_path``.

    On failure the traceback goes to the log, one line naming the problem to the terminal,
    and the process exits non-zero so Snakemake removes the job's outputs.
    """
    terminal = sys.stderr
    with open(log_path, "w", buffering=1) as log:
        sys.stderr = log
        logging.basicConfig(
            stream=log, level=logging.INFO, force=True,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        if "torch" in sys.modules:  # only the model stages import it
            sys.modules["torch"].set_num_threads(max(1, threads))
        try:
            main()
        except Exception as err:  # report every failure the same way
            traceback.print_exc(file=log)
            print(f"ERROR ({log_path}): {type(err).__name__}: {err}", file=terminal)
            sys.exit(1)
        finally:
            sys.stderr = terminal


def stage_kwargs(sm: Any) -> dict[str, Any]:
    """A rule's named inputs, params and outputs as one dict of keyword arguments.

    Every script calls its stage as ``stage(**stage_kwargs(snakemake))``, so a stage's
    parameters are named exactly as the rule names its inputs, params and outputs. Inputs whose
    name starts with ``_`` are dependencies only (the synthetic data folder, a shard's images)
    and are left out; a name used twice is an error. Lists of files become plain lists of str.
    """
    kwargs: dict[str, Any] = {}
    for part in (sm.input, sm.params, sm.output):
        for name, value in part.items():
            if name.startswith("_"):
                continue
            if name in kwargs:
                raise ValueError(f"rule {sm.rule}: {name!r} names both an input, param or output")
            kwargs[name] = _plain(value)
    return kwargs


def _plain(value: Any) -> Any:
    """Snakemake's path objects and named lists as plain str and list."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
