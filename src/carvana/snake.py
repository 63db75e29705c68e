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
