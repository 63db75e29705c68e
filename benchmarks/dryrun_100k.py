"""Dry-run the workflow on a fake Kaggle folder with 100,064 test ids; report time and job count.

Run by hand:  python benchmarks/dryrun_100k.py [--keep DIR] [--configfile configs/carvana-full.yaml]
(``--configfile none``: config.yaml alone). No shard flag is passed: the run uses the config's
``test_shard_size`` (``auto`` in both), which must keep it at <= 1,500 jobs and < 60 s.
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

import yaml

from carvana import workflow as wf
from carvana.ingest import shards as split_shards
from carvana.synthetic import SyntheticConfig, generate

REPO = Path(__file__).resolve().parents[1]
N_TEST = 100_064
MAX_JOBS, MAX_SECONDS = 1500, 60  # issue 11: a run without flags stays bounded


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


def shard_size(configfile: str) -> int | str:
    """The ``test_shard_size`` the dry run uses: config.yaml's, or the preset's over it."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    if configfile != "none":
        config = wf.deep_merge(config, yaml.safe_load((REPO / configfile).read_text()))
    return config.get("test_shard_size", "auto")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=Path, help="build the fake folder here and keep it")
    parser.add_argument("--configfile", default="configs/carvana-full.yaml",
                        help="a preset merged over config.yaml, or 'none'")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="carvana-100k-"))
    folder = root / "kaggle"
    if not (folder / "sample_submission.csv").exists():
        t0 = time.perf_counter()
        build(folder)
        print(f"built {folder} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    preset = [] if args.configfile == "none" else ["--configfile", args.configfile]
    cmd = [sys.executable, "-m", "snakemake", "-n", "submission", *preset,
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
    size = shard_size(args.configfile)
    shards = len(split_shards([str(i) for i in range(N_TEST)], size))
    result = {"test_ids": N_TEST, "configfile": args.configfile, "test_shard_size": size,
              "dry_run_seconds": round(seconds, 1), "jobs": total, "shards": shards,
              "jobs_per_shard": round(total / shards, 2),
              "bounded": total <= MAX_JOBS and seconds < MAX_SECONDS}
    print(json.dumps(result, indent=2))
    out = REPO / "benchmarks" / "results" / "dryrun_100k.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(root)
    return 0 if result["bounded"] else 2


if __name__ == "__main__":
    raise SystemExit(main())
