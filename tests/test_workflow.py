"""The whole DAG on the tiny preset: outputs, nothing-to-do, and reruns of only what is stale."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from wfutil import SMALL, copy_workflow, snakemake

from carvana import projection as pj
from carvana import rle
from carvana.io import read_prob

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def done(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workflow copy after a complete `snakemake all` on the tiny preset."""
    work = copy_workflow(tmp_path_factory.mktemp("wf") / "run")
    proc = snakemake(work, "--cores", "2", "all")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    (work / "run_output.txt").write_text(proc.stdout + proc.stderr)
    return work


def test_the_projection_comes_before_the_first_job(done: Path) -> None:
    """The plan's projected wall time is printed once, before any job starts."""
    output = (done / "run_output.txt").read_text()
    found = re.findall(r"projected: (\d+) jobs, about [\d.]+ (s|min|h|days) on 2 cores", output)
    assert len(found) == 1 and int(found[0][0]) > 20, found
    assert output.index("projected:") < output.index("rule ")


def test_a_rerun_projection_learns_from_the_finished_jobs(done: Path, tmp_path: Path) -> None:
    """Rerunning one prediction shard: the DAG's finished training job (its benchmark file)
    shows the 30-minute requests are far above what jobs take here, so the projection scales
    the planned job down and says so; the first run had nothing finished to learn from."""
    assert "alone, times what" not in (done / "run_output.txt").read_text()
    work = fork(done, tmp_path)
    (work / "numbers.yaml").write_text("resources: {train: {runtime: 30}, "
                                       "predict: {runtime: 30}}\n")
    proc = snakemake(work, "--cores", "2", "results/predict/unet32/test_timing/0000.json",
                     "--forcerun", "predict_lowres_test",
                     "--configfile", "configs/tiny.yaml", "numbers.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    note = re.search(r"projected: 1 jobs, about (\d+) s on 2 cores \(the resource formula's "
                     r"runtimes, 15 min alone, times what (\d+) finished jobs of this DAG took "
                     r"here: x[\d.e-]+ to x[\d.e-]+ by rule", output)
    assert note, output[-3000:]
    wall = pj.benchmark_seconds(work / "results/benchmarks/train/unet32.tsv")
    assert int(note[2]) == 1 and wall and abs(int(note[1]) - wall) <= 1, (note[0], wall)


def planned_jobs(proc) -> dict[str, int]:
    """Rule -> job count from a dry run's 'Job stats' table ({} when nothing is to be done)."""
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1]
    counts = {}
    for line in table.splitlines()[3:]:
        m = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not m:
            break
        counts[m[1]] = int(m[2])
    counts.pop("total", None)
    return counts


def fork(done: Path, tmp_path: Path) -> Path:
    """A copy of the finished run (mtimes and Snakemake's metadata kept) to change."""
    return Path(shutil.copytree(done, tmp_path / "fork", symlinks=True))


def test_outputs(done: Path) -> None:
    results = done / "results"
    sample = pd.read_csv(results / "data/synthetic/kaggle/sample_submission.csv")
    with gzip.open(results / "submission.csv.gz", "rt") as fh:
        sub = pd.read_csv(fh, dtype=str, keep_default_na=False)
    assert list(sub.columns) == ["img", "rle_mask"]
    assert sub["img"].tolist() == sample["img"].tolist()
    for code in sub["rle_mask"]:
        rle.decode(code, (64, 96))  # every row decodes at full size
    check = json.loads((results / "submission_check.json").read_text())
    assert check["rows"] == len(sample)
    # the tiny preset learns: an untrained net scores ~0.35 (all car) or 0 (no car) here
    assert check["empty_masks"] == 0
    assert check["mean_dice_vs_truth"] >= 0.8, check
    for model in ("unet32", "unet64", "tiles", "depth"):
        assert (results / f"models/{model}/learning_curve.png").stat().st_size > 1000
        assert len(pd.read_csv(results / f"models/{model}/history.csv")) >= 1
        log = (done / f"logs/train/{model}.log").read_text()
        assert "epoch 1" in log and ("it/s" in log or "s/it" in log)  # tqdm in the log
        assert "val dice" in log
    assert json.loads((results / "models/depth/train.json").read_text())["in_channels"] == 4
    # every scored model, the ensemble included, at full resolution
    summary = pd.read_csv(results / "metrics/summary.csv")
    assert set(summary["model"]) == {"unet32", "unet64", "tiles", "depth", "ensemble"}
    assert summary["val_dice_full_res"].between(0.8, 1).all(), summary
    # folders named by what they hold: every train image, the validation fold, a test shard
    assert len(list((results / "predict/unet32/train_all").glob("*.png"))) == 48
    assert len(list((results / "predict/tiles/val").glob("*.png"))) == 16
    assert len(list((results / "predict/ensemble/val").glob("*.png"))) == 16
    assert not (results / "resume").exists() or not any((results / "resume").iterdir())
    assert summary.loc[summary["model"] != "ensemble", "parameters"].gt(0).all()
    for model in summary["model"]:
        metrics = json.loads((results / f"metrics/{model}.json").read_text())
        assert 0.0 <= metrics["val_dice_full_res"] <= 1.0
    assert json.loads((results / "metrics/threshold.json").read_text())["threshold"] == 0.5
    # boxes for every train and test image; bands one tile (48 rows) tall
    boxes = pd.concat([pd.read_csv(results / "bbox/train.csv"),
                       *(pd.read_csv(p) for p in sorted((results / "bbox/test").glob("*.csv")))])
    assert len(boxes) == 32 * 3 // 2 + len(sample)  # 48 train images (3 cars) + test
    assert (boxes["band_r1"] - boxes["band_r0"] == 48).all()
    assert len(pd.read_csv(results / "bbox/val_cuts.csv")) == 16  # one validation car
    # stitched full-size maps for the tile models and the ensemble, model-size for low-res
    for model, shape in (("tiles", (64, 96)), ("ensemble", (64, 96)), ("unet64", (64, 64))):
        first = sorted((results / f"predict/{model}/test/0000").glob("*.png"))[0]
        assert read_prob(first).shape == shape
    for name in ("model_comparison", "ladder", "threshold_curves", "learning_curves", "bbox"):
        assert (results / f"analysis/{name}.png").stat().st_size > 1000
        assert (results / f"analysis/{name}.csv").exists()


def test_test_photos_scored_per_photo_and_per_car(done: Path) -> None:
    """With kept truth (the synthetic set's): every member, the ensemble, per photo and per
    car; the ensemble's mean is the submission check's; the worst test photos drawn."""
    results = done / "results"
    photos = pd.read_csv(results / "metrics/test_per_image.csv", dtype={"id": str, "car": str})
    assert list(photos.columns) == ["id", "car", "dice_tiles", "dice_unet64", "dice_ensemble"]
    sample = pd.read_csv(results / "data/synthetic/kaggle/sample_submission.csv")
    assert photos["id"].tolist() == sample["img"].str.removesuffix(".jpg").tolist()
    check = json.loads((results / "submission_check.json").read_text())
    assert abs(photos["dice_ensemble"].mean() - check["mean_dice_vs_truth"]) <= 1e-4
    cars = pd.read_csv(results / "metrics/test_per_car.csv", dtype={"car": str})
    assert cars["car"].tolist() == [*sorted(photos["car"].unique()), "all"]
    assert cars["n"].iloc[-1] == len(photos) == cars["n"].iloc[:-1].sum()
    assert cars["min_tiles"].iloc[-1] == pytest.approx(photos["dice_tiles"].min(), abs=1e-6)
    assert (results / "analysis/worst/test.png").stat().st_size > 1000
    worst = pd.read_csv(results / "analysis/worst/test.csv", dtype={"id": str})
    lowest = photos.sort_values(["dice_ensemble", "id"], kind="mergesort")["id"].head(6)
    assert worst["id"].tolist() == lowest.tolist()


def test_nothing_to_do_after_complete_run(done: Path) -> None:
    proc = snakemake(done, "-n", "all")
    assert proc.returncode == 0
    assert planned_jobs(proc) == {}, proc.stdout[-2000:]


def dry_run_with(done: Path, tmp_path: Path, override: str) -> dict[str, int]:
    """Jobs a dry run of `all` plans on a fork of the finished run with ``override`` config."""
    work = fork(done, tmp_path)
    (work / "override.yaml").write_text(override)
    proc = snakemake(work, "-n", "all", "--configfile", "configs/tiny.yaml", "override.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return planned_jobs(proc)


def test_threshold_change_reruns_only_submission(done: Path, tmp_path: Path) -> None:
    jobs = dry_run_with(done, tmp_path, "submission: {source: ensemble, threshold: 0.3}\n")
    assert set(jobs) == {"encode_shard", "gather_submission", "check_submission", "thresholds",
                         "score_test", "analysis_worst_test", "all"}
    assert jobs["encode_shard"] == 3


def test_ensemble_weights_rerun_only_ensemble_and_submission(done: Path, tmp_path: Path) -> None:
    jobs = dry_run_with(done, tmp_path, "ensemble: {members: [tiles, unet64], weights: [0.7, 0.3]}\n")
    # the ensemble, its score, and what reads it: the submission, thresholds, the analysis
    assert set(jobs) == {
        "ensemble_val", "ensemble_test", "evaluate", "encode_shard", "gather_submission",
        "check_submission", "thresholds", "summary", "analysis_model_comparison",
        "analysis_threshold_curves", "analysis_worst_predictions", "score_test",
        "analysis_worst_test", "all",
    }
    assert jobs["evaluate"] == 1 and jobs["ensemble_test"] == 3


#: What retraining `depth` reruns: it is in no ensemble and makes no submission, so only it,
#: its validation predictions and the analysis.
DEPTH_RETRAINED = {
    "train_tiles", "predict_tiles_val", "evaluate", "thresholds", "summary",
    "analysis_model_comparison", "analysis_threshold_curves", "analysis_learning_curves", "all",
}


@pytest.mark.parametrize("change", ["{train: {lr: 0.0042}}", "{seed: 5}"],
                         ids=["training parameter", "its own seed"])
def test_a_models_training_change_reruns_only_that_model(
    done: Path, tmp_path: Path, change: str
) -> None:
    # a model's own seed makes a seed ensemble's second member: another model, as a new lr does
    jobs = dry_run_with(done, tmp_path, f"models: {{depth: {change}}}\n")
    assert set(jobs) == DEPTH_RETRAINED
    assert jobs["train_tiles"] == 1 and jobs["evaluate"] == 1


def test_a_ladder_model_warm_started_from_a_smaller_one(done: Path, tmp_path: Path) -> None:
    """`init_from` on a ladder model: its training job declares the earlier model's weights as
    an input (so it reruns when they change) and starts from them."""
    work = fork(done, tmp_path)
    (work / "override.yaml").write_text(
        "models: {unet64: {init_from: unet32, params: {initial_filters: 4, depth: 2, "
        "up_convs: 2}}}\n")
    args = ["--configfile", "configs/tiny.yaml", "override.yaml"]
    dry = snakemake(work, "-n", "all", *args)
    jobs = planned_jobs(dry)
    assert jobs["train_lowres"] == 1 and "train_lowres_fold" not in jobs
    job = re.search(r"rule train_lowres:\n(.*?)\n\n", dry.stdout + dry.stderr, re.S)
    assert job and re.search(r"input: .*results/models/unet32/weights\.pt", job[1]), dry.stdout
    proc = snakemake(work, "--cores", "2", "results/models/unet64/weights.pt", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (work / "logs/train/unet64.log").read_text()
    assert "initialised from results/models/unet32/weights.pt (0 tensors not loaded)" in log


def test_out_of_fold_maps_train_fold_copies_and_rerun_only_the_depth_model(
        done: Path, tmp_path: Path) -> None:
    """`depth_folds: 2` adds two fold copies of the depth source (unet32), each trained on the
    cars the other holds out; their maps of the held-out photos, gathered, train `depth`."""
    work = fork(done, tmp_path)
    (work / "override.yaml").write_text("models: {depth: {depth_folds: 2}}\n")
    args = ["--configfile", "configs/tiny.yaml", "override.yaml"]
    jobs = planned_jobs(snakemake(work, "-n", "all", *args))
    assert jobs == {
        "oof_split": 2, "train_lowres_fold": 2, "predict_lowres_fold": 2, "gather_oof": 1,
        "train_tiles": 1, "predict_tiles_val": 1, "evaluate": 1, "thresholds": 1, "summary": 1,
        "analysis_model_comparison": 1, "analysis_threshold_curves": 1,
        "analysis_learning_curves": 1, "all": 1}
    oof = work / "results/predict/unet32/train_oof_k2"
    proc = snakemake(work, "--cores", "2", str(oof.relative_to(work)), *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    split = pd.read_csv(work / "results/data/split.csv", dtype=str)
    assert sorted(p.stem for p in oof.glob("*.png")) == sorted(split["id"])
    for fold in (0, 1):
        held = pd.read_csv(work / f"results/data/oof/k2/{fold}.csv", dtype=str).query("fold == 'val'")
        maps = work / f"results/predict/unet32/oof_k2/{fold}"
        assert sorted(p.stem for p in maps.glob("*.png")) == sorted(held["id"])
        for image_id in held["id"]:
            assert (oof / f"{image_id}.png").read_bytes() == (maps / f"{image_id}.png").read_bytes()
        summary = json.loads((work / f"results/models/unet32/oof_k2/{fold}/train.json").read_text())
        assert summary["name"] == f"unet32_oof{fold}of2" and summary["validation_seen"] is False
    # the held-out maps are not the low-res model's own maps of those photos
    seen = work / "results/predict/unet32/train_all"
    assert any((oof / p.name).read_bytes() != p.read_bytes() for p in seen.glob("*.png"))


def test_script_edit_reruns_its_rule(done: Path, tmp_path: Path) -> None:
    work = fork(done, tmp_path)
    script = work / "scripts" / "summary.py"
    script.write_text(script.read_text() + "# edited\n")
    proc = snakemake(work, "-n", "all")
    assert planned_jobs(proc) == {"summary": 1, "all": 1}


def test_report_holds_every_figure(done: Path, tmp_path: Path) -> None:
    work = fork(done, tmp_path)
    proc = snakemake(work, "--report", "results/report.html")
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = (work / "results" / "report.html").read_text(errors="replace")
    for name in ("model_comparison.png", "ladder.png", "threshold_curves.png",
                 "learning_curves.png", "bbox.png", "ensemble.png", "summary.csv", "test.png",
                 "test_per_car.csv"):
        assert name in html, name


# --- the same workflow on a Kaggle-layout folder (data_dir), as on the real download ---------



@pytest.fixture(scope="session")
def kaggle_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder made by the `carvana-synthetic` CLI used as data_dir; `submission` run on it."""
    root = tmp_path_factory.mktemp("kaggle")
    data = root / "kaggle"
    proc = subprocess.run(["carvana-synthetic", "--out", str(data), "--truth", str(root / "truth"),
                           "--seed", "11", "--train-cars", "2", "--test-cars", "1", "--width",
                           "96", "--height", "64", "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    work = copy_workflow(root / "run")
    (work / "override.yaml").write_text(SMALL + f"data_dir: {data}\n")
    proc = snakemake(work, "--cores", "2", "submission", "--configfile", "configs/tiny.yaml",
                     "override.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return work


def test_real_layout_run(kaggle_run: Path) -> None:
    check = json.loads((kaggle_run / "results/submission_check.json").read_text())
    assert check["rows"] == 16 and check["mean_dice_vs_truth"] is None
    assert not (kaggle_run / "results/data/synthetic").exists()


def test_changed_test_image_reruns_only_its_shard(kaggle_run: Path, tmp_path: Path) -> None:
    work = fork(kaggle_run, tmp_path)
    data = Path((work / "override.yaml").read_text().split("data_dir: ")[1].strip())
    image = sorted((data / "test").glob("*.jpg"))[-1]  # in the last shard (0002)
    original, stat = image.read_bytes(), image.stat()
    try:
        pixels = np.asarray(Image.open(image)).copy()
        pixels[:8] = 255
        Image.fromarray(pixels).save(image, quality=90)
        proc = snakemake(work, "-n", "submission", "--configfile", "configs/tiny.yaml",
                         "override.yaml")
    finally:  # the session's data folder goes back as it was
        image.write_bytes(original)
        os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert planned_jobs(proc) == {"predict_lowres_test": 1, "encode_shard": 1,
                                  "gather_submission": 1, "check_submission": 1, "submission": 1}
    assert "results/predict/unet32/test/0002" in proc.stdout + proc.stderr


def test_bad_data_dir_stops_before_training(kaggle_run: Path, tmp_path: Path) -> None:
    work = copy_workflow(tmp_path / "bad")
    override = (kaggle_run / "override.yaml").read_text()
    data = Path(override.split("data_dir: ")[1].strip())
    bad = Path(shutil.copytree(data, tmp_path / "kaggle"))
    image = sorted((bad / "train").glob("*.jpg"))[0]
    image.write_bytes(image.read_bytes()[:300])  # truncated
    (work / "override.yaml").write_text(override.replace(str(data), str(bad)))
    proc = snakemake(work, "--cores", "2", "submission", "--configfile", "configs/tiny.yaml",
                     "override.yaml")
    assert proc.returncode != 0
    assert f"{image}: cannot decode image" in proc.stdout + proc.stderr
    assert not (work / "results/data/train.csv").exists()
    assert not (work / "results/models").exists()


# --- the same config twice gives the same bytes ---------------------------------------------

# Files that hold measured time (seconds per epoch or image) or draw it, Snakemake's own
# records, and ingest.json (it records the data folder's absolute path, and the second run
# is in another folder): everything else under results/ must be byte-identical between two
# fresh runs.
TIMED = ("benchmarks/", "resume/")
TIMED_NAMES = ("train.json", "history.csv", "summary.csv", "learning_curves.csv",
               "model_comparison.csv", "ingest.json")


def _digests(results: Path) -> dict[str, str]:
    out = {}
    for path in sorted(p for p in results.rglob("*") if p.is_file()):
        rel = path.relative_to(results).as_posix()
        if rel.startswith(TIMED) or path.name in TIMED_NAMES or "timing" in rel:
            continue
        if rel.startswith("metrics/") and path.suffix == ".json" and path.stem != "threshold":
            continue  # a model's metrics carry its train_seconds
        if path.suffix == ".png" and not rel.startswith("predict/"):
            continue  # figures (learning curves draw the timed history)
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_rerun_from_scratch_is_byte_identical(done: Path, tmp_path: Path) -> None:
    """A second fresh run of the same config: the same sha256 for every weights file,
    probability PNG, box and metrics CSV, shard and the submission (gzip without name or
    mtime, torch archives with a fixed root folder)."""
    work = copy_workflow(tmp_path / "again")
    proc = snakemake(work, "--cores", "2", "all")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    first, second = _digests(done / "results"), _digests(work / "results")
    assert set(first) == set(second)
    for kind in ("weights.pt", ".png", "submission.csv.gz", "_thresholds.csv", "bbox/train.csv"):
        assert any(kind in rel for rel in first), kind  # each kind is compared
    differ = [rel for rel in first if first[rel] != second[rel]]
    assert not differ, differ[:10]


def test_a_model_that_learns_nothing_stops_the_run(tmp_path: Path) -> None:
    """The gate: a model below min_val_dice fails its rule, names itself and what to try, and
    leaves no weights for the DAG; nothing downstream runs."""
    work = copy_workflow(tmp_path / "gate")
    (work / "override.yaml").write_text(SMALL + "models: {unet32: {train: {steps: 1, lr: 1.0e-6}}}\n")
    proc = snakemake(work, "--cores", "2", "submission", "--configfile", "configs/tiny.yaml",
                     "override.yaml")
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "model 'unet32' reached a best validation Dice of" in text
    assert "below min_val_dice=0.5" in text and "Try more steps" in text
    assert not (work / "results/models/unet32/weights.pt").exists()
    assert not (work / "results/submission.csv.gz").exists()


def test_every_job_stays_within_its_declared_memory_and_time(done: Path) -> None:
    """Issue 11.2: every benchmarked job of the complete run (results/benchmarks/**/*.tsv)
    peaked at or under the memory it declared (max_rss, MiB, <= mem_mib) and ended within its
    runtime. What each job declared is read from the run's own log, where Snakemake lists
    each job's benchmark file and resolved resources."""
    declared: dict[str, dict[str, int]] = {}
    for log in sorted((done / ".snakemake/log").glob("*.snakemake.log")):
        benchmark = None
        for line in log.read_text().splitlines():
            line = line.strip()
            if re.fullmatch(r"(local)?rule \w+:", line):
                benchmark = None
            elif line.startswith("benchmark: "):
                benchmark = line.removeprefix("benchmark: ")
            elif line.startswith("resources: ") and benchmark:
                pairs = (kv.split("=", 1) for kv in line.removeprefix("resources: ").split(", "))
                values = dict(pairs)
                declared[benchmark] = {k: int(values[k]) for k in ("mem_mib", "runtime")}
    tables = {p.relative_to(done).as_posix() for p in (done / "results/benchmarks").rglob("*.tsv")}
    assert tables == set(declared) and len(tables) >= 10, (tables ^ set(declared), len(tables))
    over = []
    for rel in sorted(tables):
        row = pd.read_csv(done / rel, sep="\t").iloc[-1]
        if row["max_rss"] > declared[rel]["mem_mib"] or row["s"] > 60 * declared[rel]["runtime"]:
            over.append((rel, row["max_rss"], row["s"], declared[rel]))
    assert not over, over
