"""How much the default ``config.yaml``'s synthetic test Dice moves with its seed, and with
which mix of its full-size models.

Each seed runs the default's ``submission`` in its own copy of this repository, with
``depth`` added to the ensemble's members so that every full-size model (``fullres``,
``depth``, ``unet128``) is predicted on the test photos; every mix is then scored on the same
stored probabilities against the synthetic truth at threshold 0.5 (with the ensemble's
8-bit rounding, as ``choose_weights`` scores it), and so are the weights
that the ``weights: validation`` grid would choose on the validation photos. The submission
itself is not the default's (three members): only the mixes' scores are the point.

Run by hand on an otherwise idle machine; two seeds at a time at ``--cores 1`` fill 2 cores:

    python benchmarks/default_seeds.py --out /tmp/seeds --seeds 2017 2018 2019 2020

Training bytes depend on the thread count: compare runs made with the same ``--cores``.
Writes ``--out/default_seeds.json`` and prints a Markdown table (mean Dice per mix and seed,
then mean ± sd and the worst photo over the seeds). About 10 min a seed at 1 thread.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml
from real_splits import copy_workflow, test_shard_dirs  # this folder's (run as a script)

from carvana.ensemble import choose_weights, full_size_loader, grid_dice
from carvana.io import full_size_prob, mask_path, read_json, read_mask
from carvana.scoring import truth_by_id
from carvana.split import fold_ids
from carvana.workflow import SYNTHETIC_TRUTH

MEMBERS = ["fullres", "depth", "unet128"]
#: The mixes scored (equal weights); ``fullres+unet128`` is the default's.
MIXES = ["fullres", "depth", "unet128", "fullres+unet128", "depth+unet128", "fullres+depth",
         "fullres+depth+unet128"]


def run_seed(seed: int, out: Path, cores: int) -> Path:
    """The default's ``submission`` with seed ``seed`` in a fresh copy; its folder."""
    work = out / f"seed{seed}"
    if work.exists():
        shutil.rmtree(work)
    copy_workflow(work)
    override = {"ensemble": {"members": MEMBERS, "weights": [1, 1, 1]}}
    (work / "all_members.yaml").write_text(yaml.safe_dump(override))
    # the weights' table too: its rule predicts the validation photos the grid is scored on
    # (fixed weights alone would not ask for them)
    cmd = [sys.executable, "-m", "snakemake", "--cores", str(cores), "submission",
           "results/metrics/ensemble_weights.json", "--configfile", "config.yaml",
           "all_members.yaml", "--config", f"seed={seed}"]
    with open(work / "snakemake.log", "w") as log:
        proc = subprocess.run(cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"seed {seed}: snakemake failed, see {work / 'snakemake.log'}")
    return work


def score_mixes(work: Path) -> dict:
    """Each mix's test Dice (mean, worst photo) and the validation grid's weights."""
    results = work / "results"
    info = read_json(results / "data" / "ingest.json")
    size = (int(info["width"]), int(info["height"]))
    val_ids = fold_ids(results / "data" / "split.csv", "val")
    val_dirs = [results / "predict" / "fullres" / "val", results / "predict" / "depth" / "val",
                results / "predict" / "unet128" / "train_all"]
    choice = choose_weights(MEMBERS, val_ids, full_size_loader(
        val_dirs, size, lambda i: read_mask(mask_path(info["data_dir"], i)) > 0),
        threshold=0.5, step=0.1)
    truth = truth_by_id(work / SYNTHETIC_TRUTH, results / "data" / "ingest.json")
    mixes = {m: dict.fromkeys(m.split("+"), 1.0) for m in MIXES}
    mixes["validation"] = choice.weights
    grid = np.array([[mix.get(m, 0.0) for m in MEMBERS] for mix in mixes.values()])
    grid /= grid.sum(axis=1, keepdims=True)
    shard_of = test_shard_dirs(results, MEMBERS)
    ids = sorted(shard_of["fullres"])
    scores = np.zeros((len(ids), len(grid)))
    for row, image_id in enumerate(ids):  # each member's map read once; every mix from it
        probs = np.stack([full_size_prob(shard_of[m][image_id], image_id, size)
                          for m in MEMBERS])
        scores[row] = grid_dice(probs, truth(image_id).astype(bool), grid, 0.5)
    return {"validation_weights": choice.weights,
            "mean": {m: round(float(v), 6) for m, v in zip(mixes, scores.mean(axis=0),
                                                           strict=True)},
            "min_photo": {m: round(float(v), 6) for m, v in zip(mixes, scores.min(axis=0),
                                                                strict=True)}}


def table(runs: dict[int, dict]) -> str:
    """Mean Dice per mix (rows) and seed (columns), then mean ± sd and the worst photo."""
    mixes = list(next(iter(runs.values()))["mean"])
    head = " | ".join(str(s) for s in runs)
    lines = [f"| mix | {head} | mean ± sd | worst photo |",
             "|---|" + "---|" * (len(runs) + 2)]
    for mix in mixes:
        means = [r["mean"][mix] for r in runs.values()]
        sd = statistics.stdev(means) if len(means) > 1 else 0.0
        worst = min(r["min_photo"][mix] for r in runs.values())
        cells = " | ".join(f"{v:.4f}" for v in means)
        lines.append(f"| {mix} | {cells} | {statistics.mean(means):.4f} ± {sd:.4f} | "
                     f"{worst:.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="a scratch folder (one run per seed)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2017, 2018, 2019, 2020])
    parser.add_argument("--cores", type=int, default=1, help="Snakemake's --cores per seed")
    parser.add_argument("--parallel", type=int, default=2, help="seeds run at once")
    parser.add_argument("--score-only", action="store_true",
                        help="only score the seeds' finished runs under --out")
    args = parser.parse_args()
    out = Path(args.out)
    if args.score_only:
        works = [out / f"seed{s}" for s in args.seeds]
    else:
        with ThreadPoolExecutor(args.parallel) as pool:
            works = list(pool.map(lambda s: run_seed(s, out, args.cores), args.seeds))
    runs = {seed: score_mixes(work) for seed, work in zip(args.seeds, works, strict=True)}
    (out / "default_seeds.json").write_text(json.dumps(
        {"cores": args.cores, "runs": {str(s): r for s, r in runs.items()}}, indent=1))
    print(table(runs))
    print(f"wrote {out / 'default_seeds.json'}")


if __name__ == "__main__":
    main()
