"""Peak memory of every Snakemake script job, for tests/test_full_preset.py.

Put on PYTHONPATH with CARVANA_PEAK_RSS_DIR set: each Python process that runs a Snakemake
script (``.snakemake/scripts/tmp*.py``) writes, at exit, its peak RSS (the kernel's high-water mark
``VmHWM``: exact, not sampled; ``ru_maxrss`` would also count the forking Snakemake process's
pages) and the job's log path (which names the job) to ``$CARVANA_PEAK_RSS_DIR/<pid>.json``.
Other processes are left alone.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import sys

_OUT = os.environ.get("CARVANA_PEAK_RSS_DIR")
_SCRIPT = sys.argv[0] if sys.argv else ""


def _record() -> None:
    """Write this job's log path and peak RSS (KiB)."""
    try:
        with open(_SCRIPT, "rb") as fh:
            found = re.search(rb"logs/[\w./-]+\.log", fh.read())
    except OSError:
        found = None
    with open("/proc/self/status") as fh:
        peak = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    row = {"script": os.path.basename(_SCRIPT), "peak_kib": peak,
           "log": found.group().decode() if found else None}
    with open(os.path.join(_OUT or ".", f"{os.getpid()}.json"), "w") as fh:
        json.dump(row, fh)


if _OUT and "/.snakemake/scripts/" in _SCRIPT:
    atexit.register(_record)
