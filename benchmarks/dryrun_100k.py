"""Dry-run the workflow on a fake Kaggle folder with 100,064 test ids; report time and job count.

Run by hand:  python benchmarks/dryrun_100k.py [--keep DIR] [--configfile configs/carvana-full.yaml]
The test images are empty files (a dry run only looks at names and times), the train set is a
small synthetic one. Writes benchmarks/results/dryrun_100k.json.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from carvana.synthetic import SyntheticConfig, generate

REPO = Path(__file__).resolve().parents[1]
N_TEST = 100_064


def build(folder: Path) -> None:
    """Kaggle layout: a small synthetic train set, 100,064 empty test files and their sample."""
    generate(folder, folder.parent / "truth",
             SyntheticConfig(train_cars=2, test_cars=1, width=96, height=64), progress=False)
    shutil.rmtree(folder / "test")
    (folder / "test").mkdir()
    cars = N_TEST // 16
    ids = [f"{car:012x}_{angle:02d}" for car in range(cars) for angle in range(1, 17)]
    for image_id in ids:
        (folder / "test" / f"{image_id}.jpg").touch()
    lines = ["img,rle_mask", *(f"{i}.jpg,1 1" for i in ids)]
    (folder / "sample_submission.csv").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=Path, help="build the fake folder here and keep it")
    parser.add_argument("--configfile", default="configs/carvana-full.yaml")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="carvana-100k-"))
    folder = root / "kaggle"
    if not (folder / "sample_submission.csv").exists():
        t0 = time.perf_counter()
        build(folder)
        print(f"built {folder} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    cmd = [sys.executable, "-m", "snakemake", "-n", "submission", "--configfile", args.configfile,
           "--config", f"data_dir={folder}", "--directory", str(root), "-s",
           str(REPO / "Snakefile"), "--quiet", "rules"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
        return 1
    text = proc.stdout + proc.stderr
    total = int(re.search(r"^total\s+(\d+)", text, re.M)[1])
    shards = -(-N_TEST // 500)
    result = {"test_ids": N_TEST, "configfile": args.configfile, "dry_run_seconds": round(seconds, 1),
              "jobs": total, "shards": shards, "jobs_per_shard": round(total / shards, 2)}
    print(json.dumps(result, indent=2))
    out = REPO / "benchmarks" / "results" / "dryrun_100k.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
