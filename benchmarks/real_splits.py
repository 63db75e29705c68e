"""A preset on several splits of the shared real sample: Dice per car and per split, mean and
spread over the splits, the wall time and peak memory of each whole ``submission`` run, and
each stage's time (issue 15.5: one 2-car split moves by about ±0.0005 between settings, so
decisions are taken on more than one).

Run by hand, one split after the other, on an otherwise idle machine (the load average at
the start and end of each run is reported, and the share of the machine's CPU time other
processes used during it, ``others_cpu_share``: a warning above 5 %, as the times are then
not an idle machine's):

    python benchmarks/real_splits.py --out /tmp/splits \\
        --split A=0795e132d090,0ce66b539f52 --split B=03a857ce842d,04bd942b463b

Each split moves the named cars (whole cars, never single photos) to ``test/`` and keeps their
masks aside as the truth; every other car of the sample trains (``carvana-subset``, one car of
them validates by the preset's split). ``--test-copies 3`` adds the test photos twice more
under other car ids, so the run predicts 96 test photos as a 4-5 car, 96-photo Kaggle-like
folder would (the time budget's case); only the originals are scored. ``--train-cars N``
trains on only the first N other cars in id order (how Dice grows with the cars). The
workflow runs in a copy of this repository under ``--out`` with ``/usr/bin/time -v`` (the peak is the largest
process of the run: jobs run one at a time on 2 cores). The CPU's model is recorded: this
project's machine has not always had the same one (docs/throughput.md measured an Intel Xeon
with AMX-BF16; the runs of 2026-12-04's evening ran on an AMD EPYC without AMX). Writes ``--out/real_splits.json`` and
prints a Markdown table.

To measure a change of the preset's later stages on splits already run, ``--rerun-from OLD``
copies each ``--split NAME``'s finished run from the earlier ``--out OLD`` and runs it again
with ``--configfile`` (the preset and an override file): only the jobs whose parameters
changed rerun, as in a user's folder, and ``est_wall_s`` estimates a whole run's wall (the
old one with the rerun stages' times in place of the old), e.g.

    python benchmarks/real_splits.py --out /tmp/lv240 --rerun-from /tmp/splits \\
        --split A --split B --configfile configs/carvana-cpu.yaml lv240.yaml
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from carvana import rle
from carvana.device import native_cpu_bf16
from carvana.ensemble import choose_weights, full_size_loader, grid_dice
from carvana.host import cpu_has_amx, cpu_model
from carvana.ids import car_of
from carvana.io import full_size_prob, mask_path, read_mask
from carvana.metrics import dice
from carvana.projection import benchmark_seconds
from carvana.split import fold_ids
from carvana.subset import SubsetSpec, make_subset

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "carvana-sample"
PARTS = ["Snakefile", "config.yaml", "rules", "scripts", "schemas", "configs", "envs",
         "profiles", "report"]
SHAPE = (1280, 1918)
BUSY = 0.05  # others' share of the CPU time above which a run's times are not an idle machine's


def copy_test(kaggle: Path, truth_csv: Path, copies: int) -> None:
    """Add ``copies - 1`` more copies of every test photo under other car ids (the car id's
    last hex digit changed), in the sample submission and the truth alike."""
    truth = pd.read_csv(truth_csv)
    originals = list(truth["img"])
    rows = [truth]
    for k in range(1, copies):
        renamed = {}
        for img in originals:
            car, rest = img.split("_", 1)
            new = f"{car[:-1]}{(int(car[-1], 16) + k) % 16:x}_{rest}"
            shutil.copyfile(kaggle / "test" / img, kaggle / "test" / new)
            renamed[img] = new
        rows.append(truth.assign(img=truth["img"].map(renamed)))
    full = pd.concat(rows, ignore_index=True)
    full.to_csv(truth_csv, index=False)
    full.assign(rle_mask="1 1").to_csv(kaggle / "sample_submission.csv", index=False)


def copy_workflow(work: Path, *, exist_ok: bool = False) -> None:
    """A fresh copy of this repository's workflow (``PARTS``) in ``work``, a new folder (or
    one whose ``PARTS`` were removed, with ``exist_ok``)."""
    work.mkdir(parents=True, exist_ok=exist_ok)
    for part in PARTS:
        src = REPO / part
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / part)


def replace_workflow(run: Path) -> None:
    """Put this repository's workflow files (``PARTS``) in place of a finished run's. A file
    whose bytes are unchanged keeps the old copy's mtime: Snakemake reruns every job whose
    script is newer than its outputs, so a fresh checkout would otherwise rerun them all."""
    old = {p.relative_to(run): (p.read_bytes(), p.stat()) for part in PARTS
           for p in ([run / part] if (run / part).is_file() else (run / part).rglob("*"))
           if p.is_file()}
    for part in PARTS:
        target = run / part
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    copy_workflow(run, exist_ok=True)
    for rel, (data, stat) in old.items():
        path = run / rel
        if path.is_file() and path.read_bytes() == data:
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def run_split(name: str, test_cars: list[str], args: argparse.Namespace) -> dict:
    """Build the split's folder, run the preset's ``submission`` on it, score and time it."""
    root = Path(args.out) / name
    if root.exists():
        shutil.rmtree(root)
    made = make_subset(args.sample, root / "data",
                       SubsetSpec(test=tuple(test_cars), train_cars=args.train_cars))
    (root / "test_cars.json").write_text(json.dumps(test_cars))
    truth_csv = root / "data" / "truth" / "test_masks.csv"
    originals = set(pd.read_csv(truth_csv)["img"])
    if args.test_copies > 1:
        copy_test(root / "data" / "kaggle", truth_csv, args.test_copies)
    copy_workflow(root / "run")
    return {"split": name, "train_cars": made["train"], "test_cars": test_cars,
            **measure(root / "run", root / "data", originals, args)}


def rerun_split(name: str, args: argparse.Namespace) -> dict:
    """Split ``name`` of the finished ``--rerun-from`` folder, copied and run again with
    ``--configfile``: its own copy of the workflow (the code and the ``configs/`` presets it was
    made with: an override file must set what the old preset lacked) and its data, so only the
    jobs whose parameters changed rerun (``--current-workflow``: this repository's workflow
    files and presets in place of the old run's). ``est_wall_s`` is what a whole run would
    take: the old wall (or the old estimate, for a rerun of a rerun) with the times of the
    stages its chain used replaced by the new chain's (the jobs run one at a time), so rerun
    with the old run's ``--cores`` on an equally loaded machine."""
    source, root = Path(args.rerun_from).resolve() / name, Path(args.out).resolve() / name
    if source == root or not (source / "run" / "results" / "submission.csv.gz").exists():
        raise SystemExit(f"--rerun-from: {source} holds no finished run (or is --out)")
    old = {r["split"]: r for r in json.loads((source.parent / "real_splits.json")
                                             .read_text())["runs"]}.get(name)
    if old is None:
        raise SystemExit(f"--rerun-from: {source.parent / 'real_splits.json'} has no split {name}")
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    shutil.copytree(source / "run", root / "run", symlinks=True)  # copy2: mtimes kept
    if args.current_workflow:
        replace_workflow(root / "run")
    shutil.copy2(source / "test_cars.json", root / "test_cars.json")
    (root / "data").symlink_to(source / "data")
    # the data folder as the run named it: a changed data_dir would rerun every job
    data = Path(json.loads((source / "run" / "results" / "data" / "ingest.json")
                           .read_text())["data_dir"]).parent
    old_chain = chain_seconds(old["stages"], source / "run")  # before the rerun rewrites it
    new = measure(root / "run", data, kept_photos(source), args)
    est = (old.get("est_wall_s", old["wall_s"]) - old_chain
           + chain_seconds(new["stages"], root / "run"))
    return {"split": name, "train_cars": old["train_cars"], "test_cars": old["test_cars"],
            "rerun_from": str(source), "est_wall_s": round(est, 1), **new}


def measure(work: Path, data: Path, originals: set[str], args: argparse.Namespace) -> dict:
    """Run ``submission`` in ``work`` on the Kaggle folder under ``data``; its time, peak
    memory, the CPU, the scores of the ``originals`` photos and each stage's time."""
    for extra in args.configfile:
        if not (REPO / extra).exists():  # an override file from outside the repo: always
            shutil.copy2(extra, work / Path(extra).name)  # fresh (a copied run holds its own)
    configs = [c if (REPO / c).exists() else Path(c).name for c in args.configfile]
    truth_csv = data / "truth" / "test_masks.csv"
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "snakemake", "--cores",
           str(args.cores), "submission", "--configfile", *configs, "--config",
           f"data_dir={data / 'kaggle'}", f"truth={truth_csv}"]
    load0, cpu0, start = os.getloadavg()[0], cpu_seconds(), time.monotonic()
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    wall, load1 = time.monotonic() - start, os.getloadavg()[0]
    others = others_share(cpu0, cpu_seconds(), wall)
    (work.parent / "snakemake.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"{work}: snakemake failed, see {work.parent / 'snakemake.log'}")
    if others is not None and others > BUSY:
        print(f"warning: {work}: other processes used {others:.0%} of the machine's CPU time "
              "during this run: its times are not an idle machine's", file=sys.stderr)
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    return {"test_photos": len(pd.read_csv(truth_csv)), "wall_s": round(wall, 1),
            "peak_gb": round(int(peak.group(1)) / 2**20, 2) if peak else None,
            "load_start": round(load0, 2), "load_end": round(load1, 2),
            "others_cpu_share": None if others is None else round(others, 3),
            "cpu": cpu_model(), "native_bf16": native_cpu_bf16(), "amx": cpu_has_amx(),
            "scores": score(work / "results" / "submission.csv.gz", truth_csv, originals),
            "stages": stage_times(work / "results" / "benchmarks"),
            "ensemble_weights": _json(work / "results" / "metrics" / "ensemble_weights.json"),
            "subsets": member_subsets(work, truth_csv, originals)}


def cpu_seconds() -> tuple[float | None, float]:
    """The machine's busy CPU seconds since boot, every CPU (``/proc/stat``: idle, iowait and
    a hypervisor's steal left out; None without it), and this process's with its finished
    children's (``getrusage``)."""
    stat = Path("/proc/stat")
    busy = None
    if stat.exists():
        fields = [int(v) for v in stat.read_text().split("\n", 1)[0].split()[1:8]]
        user, nice, system, _idle, _iowait, irq, softirq = fields
        busy = (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
    ours = sum(getattr(resource.getrusage(who), field)
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for field in ("ru_utime", "ru_stime"))
    return busy, ours


def others_share(before: tuple[float | None, float], after: tuple[float | None, float],
                 wall_s: float) -> float | None:
    """The share of the machine's CPU time over ``wall_s`` that processes other than this one
    and its children used, from two ``cpu_seconds``: about 0 on an idle machine, 0.5 when a
    job as large as the run's shared it throughout (None without ``/proc/stat``)."""
    if before[0] is None or after[0] is None or wall_s <= 0:
        return None
    others = (after[0] - before[0]) - (after[1] - before[1])
    return min(1.0, max(0.0, others / (wall_s * (os.cpu_count() or 1))))


def kept_photos(split: Path) -> set[str]:
    """The truth's photos of a split folder's test cars themselves (``test_cars.json``), not
    the copies ``--test-copies`` added under other car ids."""
    cars = set(json.loads((split / "test_cars.json").read_text()))
    truth = pd.read_csv(split / "data" / "truth" / "test_masks.csv")["img"]
    return {img for img in truth if car_of(img.removesuffix(".jpg")) in cars}


def chain_seconds(stages: dict[str, float], work: Path) -> float:
    """The seconds of the stages (``stage_times``) of the models the run's submission uses,
    their fold copies (``depth_folds``) included: a copied run keeps the benchmark files of
    models a new config no longer runs (not told apart: fold copies the new config dropped)."""
    models = json.loads((work / "results" / "chain.json").read_text())["models"]
    return sum(t for key, t in stages.items()
               if re.sub(r"_(test|val|train_all|oof_k\d+_\d+)$", "", key.split("/", 1)[1])
               in models)


def photo_dice(submission: Path, truth_csv: Path, keep: set[str]) -> pd.Series:
    """Dice of each kept photo of the submission against the truth, by photo name."""
    sub = pd.read_csv(submission).set_index("img")["rle_mask"]
    per = {}
    with open(truth_csv) as f:
        for row in csv.DictReader(f):
            if row["img"] in keep:
                per[row["img"]] = dice(rle.decode(sub[row["img"]], SHAPE),
                                       rle.decode(row["rle_mask"], SHAPE))
    return pd.Series(per, dtype=float)


def score(submission: Path, truth_csv: Path, keep: set[str]) -> dict:
    """Dice of each kept photo of the submission against the truth: per car and overall."""
    table = photo_dice(submission, truth_csv, keep)
    cars = table.groupby([car_of(i.removesuffix(".jpg")) for i in table.index])
    return {"mean": round(float(table.mean()), 6), "min_photo": round(float(table.min()), 6),
            "per_car": {c: round(float(v), 6) for c, v in cars.mean().items()},
            "photos_below_0.99": int((table < 0.99).sum())}


def stage_times(bench_dir: Path) -> dict[str, float]:
    """Seconds per rule, summed over its jobs (Snakemake's benchmark files, as the projection
    reads them)."""
    times: dict[str, float] = {}
    for tsv in sorted(bench_dir.rglob("*.tsv")):
        stem = tsv.relative_to(bench_dir).with_suffix("").as_posix()
        key = re.sub(r"_(test|val|train_all)(_\d{4})?$", r"_\1", stem)
        times[key] = round(times.get(key, 0.0) + (benchmark_seconds(tsv) or 0.0), 1)
    return times


def member_subsets(work: Path, truth_csv: Path, keep: set[str], step: float = 0.1,
                   only: list[str] | None = None) -> list[dict]:
    """Every ensemble of the run's trained models (each subset of them, or of ``only``): weights
    chosen on the validation images as the workflow chooses them, then scored on the kept test
    photos, mean and per car. Answers "which members, and does this lever pay" from one run."""
    res = work / "results"
    def predicted(name: str) -> bool:  # a model that is no member is not predicted on test
        return any((res / "predict" / name / part).is_dir() for part in ("val", "train_all")) \
            and (res / "predict" / name / "test").is_dir()

    models = sorted(p.name for p in (res / "models").iterdir() if (p / "weights.pt").exists()
                    and predicted(p.name) and (only is None or p.name in only))
    if only is not None and len(models) != len(set(only)):
        raise SystemExit(f"--models: {sorted(set(only) - set(models))} not trained in {work}")
    val_dir = {m: res / "predict" / m / ("train_all" if (res / "predict" / m / "train_all")
                                          .exists() else "val") for m in models}
    test_dir = test_shard_dirs(res, models)
    val_ids = fold_ids(res / "data" / "split.csv", "val")
    truth = pd.read_csv(truth_csv).set_index("img")["rle_mask"]
    data = Path(json.loads((res / "data" / "ingest.json").read_text())["data_dir"])
    out = []
    for k in range(1, len(models) + 1):
        for subset in itertools.combinations(models, k):
            load = full_size_loader([val_dir[m] for m in subset], (SHAPE[1], SHAPE[0]),
                                    lambda i: read_mask(mask_path(data, i)))
            chosen = choose_weights(list(subset), val_ids, load, threshold=0.5, step=step)
            grid = np.array([[chosen.weights[m] for m in subset]])
            per = {}
            for img in sorted(keep):
                image_id = img.removesuffix(".jpg")
                probs = np.stack([full_size_prob(test_dir[m][image_id], image_id,
                                                 (SHAPE[1], SHAPE[0])) for m in subset])
                true = rle.decode(truth[img], SHAPE).astype(bool)
                per[image_id] = float(grid_dice(probs, true, grid, 0.5)[0])
            table = pd.Series(per)
            cars = table.groupby([car_of(i) for i in table.index]).mean()
            out.append({"members": chosen.weights, "val": round(chosen.dice, 6),
                        "test": round(float(table.mean()), 6),
                        "test_min_photo": round(float(table.min()), 6),
                        "test_per_car": {c: round(float(v), 6) for c, v in cars.items()}})
    return sorted(out, key=lambda r: -r["val"])


def test_shard_dirs(results: Path, models: list[str]) -> dict[str, dict[str, Path]]:
    """model -> image id -> the test shard folder holding its stored probability PNG."""
    return {m: {p.stem: p.parent for p in (results / "predict" / m / "test").glob("*/*.png")}
            for m in models}


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def table(runs: list[dict]) -> str:
    """The Markdown summary: one row per split, then mean and spread."""
    lines = ["| split | test cars | Dice | per car | worst photo | wall | peak |",
             "|---|---|---|---|---|---|---|"]
    for r in runs:
        s = r["scores"]
        cars = " / ".join(f"{c}: {d:.4f}" for c, d in s["per_car"].items())
        wall = (f"{r['est_wall_s'] / 60:.1f} min (est.; rerun {r['wall_s'] / 60:.1f})"
                if "est_wall_s" in r else f"{r['wall_s'] / 60:.1f} min")
        if (r.get("others_cpu_share") or 0) > BUSY:
            wall += f", busy: others {r['others_cpu_share']:.0%}"  # not an idle machine's
        lines.append(f"| {r['split']} | {r['test_photos']} photos | {s['mean']:.4f} | {cars} | "
                     f"{s['min_photo']:.4f} | {wall} | {r['peak_gb']} GB |")
    means = [r["scores"]["mean"] for r in runs]
    spread = (max(means) - min(means)) / 2 if len(means) > 1 else 0.0
    lines.append(f"| **mean** | | **{statistics.mean(means):.4f} ± {spread:.4f}** | | "
                 f"{min(r['scores']['min_photo'] for r in runs):.4f} | | |")
    cpus = sorted({f"{r.get('cpu', 'unknown')} (native bf16: {r.get('native_bf16')}, AMX: "
                   f"{r.get('amx')})" for r in runs})
    lines.append(f"\nCPU: {'; '.join(cpus)} (times are only comparable on one CPU)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", default=str(SAMPLE))
    parser.add_argument("--out", required=True, help="a scratch folder (runs, data, JSON)")
    parser.add_argument("--split", action="append", default=[],
                        help="NAME=CAR,CAR: the cars of one split's test set")
    parser.add_argument("--configfile", nargs="+", default=["configs/carvana-cpu.yaml"],
                        help="the preset, then any override files (paths in the repo copy)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--test-copies", type=int, default=1)
    parser.add_argument("--train-cars", type=int, default=None, metavar="N",
                        help="train on only the first N of the other cars, in id order "
                             "(a learning curve over cars; default: all of them)")
    parser.add_argument("--subsets-of", default=None, metavar="RUN_DIR",
                        help="only score every member subset of a finished split: its folder "
                             "(holding run/ and data/)")
    parser.add_argument("--rerun-from", default=None, metavar="OUT",
                        help="copy each --split NAME's finished run from this earlier --out "
                             "and run it again with --configfile (only changed jobs rerun; "
                             "give NAME alone)")
    parser.add_argument("--current-workflow", action="store_true",
                        help="with --rerun-from: run this repository's workflow files instead "
                             "of the old run's (for a change that needs them, e.g. a new "
                             "config key; jobs whose rule code changed rerun too)")
    parser.add_argument("--models", nargs="+", default=None,
                        help="with --subsets-of: only subsets of these trained models")
    args = parser.parse_args()
    if args.current_workflow and not args.rerun_from:
        parser.error("--current-workflow only applies with --rerun-from (a new run always "
                     "copies this repository's workflow)")
    if args.train_cars is not None and args.train_cars < 2:
        parser.error("--train-cars: at least 2 (one of them validates)")
    if args.train_cars is not None and args.rerun_from:
        parser.error("--train-cars does not apply with --rerun-from (the old run's cars train)")
    if not args.split and not args.subsets_of:
        parser.error("give at least one --split NAME=CAR,CAR (or --subsets-of RUN_DIR)")
    if args.subsets_of:
        root = Path(args.subsets_of)
        truth_csv = root / "data" / "truth" / "test_masks.csv"
        keep = kept_photos(root)
        print(json.dumps(member_subsets(root / "run", truth_csv, keep, only=args.models),
                         indent=1))
        return
    runs = []
    for spec in args.split:
        name, _, cars = spec.partition("=")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):  # it names a folder under --out
            parser.error(f"--split {spec}: NAME takes letters, digits, '_' and '-' only")
        if not (cars or args.rerun_from):
            parser.error(f"--split {spec}: give NAME=CAR,CAR (NAME alone only with --rerun-from)")
        runs.append(rerun_split(name, args) if args.rerun_from
                    else run_split(name, cars.split(","), args))
        print(json.dumps(runs[-1], indent=1), flush=True)
    out = Path(args.out) / "real_splits.json"
    out.write_text(json.dumps({"configfile": args.configfile, "runs": runs,
                               "dice": [r["scores"]["mean"] for r in runs]}, indent=1))
    print(table(runs))
    print(f"wrote {out}; mean Dice {np.mean([r['scores']['mean'] for r in runs]):.6f}")


if __name__ == "__main__":
    main()
