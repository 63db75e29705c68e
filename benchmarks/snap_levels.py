"""Snapping near-0/near-1 probability levels on real predictions: decisions and bytes (issue 11.4).

Run by hand, on a workflow's stored predictions (e.g. the carvana-cpu run on real photos):

    python benchmarks/snap_levels.py /tmp/realrun/results --photos 16 \\
        --ensemble effl0_tiles effl0_depth

For every model folder under ``RESULTS/predict`` (``val/*.png`` and ``test/<shard>/*.png``),
the stored 8-bit maps are taken as they are (written without snapping), then snapped as
``carvana.io.prob_levels`` does (levels 1..12 -> 0, 243..254 -> 255) and compared:

- bytes per photo: the stored file, and both maps re-encoded as ``write_prob`` encodes;
- changed decisions at every threshold of ``carvana.evaluation.THRESHOLDS`` (0.05..0.95) of the
  maps thresholded as stored (the submission's and the evaluation's path for full-size maps);
- for a low-res map, the pixels of the depth channel (its full-size 8-bit resize, as
  ``carvana.fullres.TileDataset`` builds it) that snapping changes;
- the paths that combine maps before thresholding: a low-res map resized to full size
  (bilinear, as the evaluation, a low-res ensemble member and the depth channel use it), and
  the ``--ensemble`` average of full-size members (as ``ensemble_to_dir``) from snapped members
  against unsnapped ones.

Writes benchmarks/results/snap_levels.json and prints one line per model and path.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from carvana.evaluation import THRESHOLDS
from carvana.io import prob_levels, resize_prob

REPO = Path(__file__).resolve().parents[1]


def stored(path: Path) -> np.ndarray:
    """The raw uint8 levels of a stored probability PNG."""
    with Image.open(path) as im:
        return np.asarray(im, dtype=np.uint8)


def png_bytes(levels: np.ndarray) -> int:
    """Size of ``levels`` encoded as ``carvana.io.write_prob`` encodes (8-bit grey, level 1)."""
    buf = io.BytesIO()
    Image.fromarray(levels, "L").save(buf, format="PNG", compress_level=1)
    return buf.tell()


def changed(raw: np.ndarray, snapped: np.ndarray) -> np.ndarray:
    """Pixels whose decision differs at each threshold of the grid (float maps in [0, 1])."""
    diff = raw != snapped
    a, b = raw[diff], snapped[diff]
    return np.array([np.count_nonzero((a >= t) != (b >= t)) for t in THRESHOLDS], np.int64)


def as_prob(levels: np.ndarray) -> np.ndarray:
    """Levels as ``read_prob`` returns them (float32 level / 255)."""
    return levels.astype(np.float32) / np.float32(255.0)


def folders(results: Path, model: str) -> list[Path]:
    """The model's val folder and test shards."""
    base = results / "predict" / model
    return [p for p in [base / "val", *sorted((base / "test").glob("*"))] if p.is_dir()]


def model_report(results: Path, model: str, photos: int, size: tuple[int, int]
                 ) -> dict[str, object]:
    """Bytes and changed decisions of one model's stored maps (up to ``photos`` per folder)."""
    files = [f for d in folders(results, model) for f in sorted(d.glob("*.png"))[:photos]]
    if not files:
        raise SystemExit(f"{results}/predict/{model}: no val/ or test/<shard>/ PNGs yet")
    before = after = on_disk = pixels = moved = depth_moved = 0
    direct = np.zeros(len(THRESHOLDS), np.int64)
    resized = np.zeros(len(THRESHOLDS), np.int64)
    low = None
    for path in files:
        raw = stored(path)
        snapped = prob_levels(as_prob(raw), snap=True)
        on_disk += path.stat().st_size
        before, after = before + png_bytes(raw), after + png_bytes(snapped)
        pixels += raw.size
        moved += int(np.count_nonzero(raw != snapped))
        direct += changed(as_prob(raw), as_prob(snapped))
        low = raw.shape[::-1] != size
        if low:
            full_raw, full_snapped = (resize_prob(as_prob(m), size) for m in (raw, snapped))
            resized += changed(full_raw, full_snapped)
            depth_moved += int(np.count_nonzero(  # the depth channel as TileDataset builds it
                np.rint(full_raw * 255) != np.rint(full_snapped * 255)))
    n = len(files)
    row: dict[str, object] = {
        "photos": n, "shape": list(raw.shape), "bytes_on_disk_per_photo": on_disk // n,
        "bytes_per_photo_unsnapped": before // n, "bytes_per_photo_snapped": after // n,
        "saved": round(1 - after / before, 4), "levels_changed_share": round(moved / pixels, 6),
        "changed_decisions_direct": int(direct.sum()), "pixels": pixels}
    if low:
        row["changed_decisions_resized_full_size"] = resized.tolist()
        row["changed_resized_total"] = int(resized.sum())
        row["full_size_pixels"] = n * size[0] * size[1]
        row["depth_channel_pixels_changed"] = depth_moved
    return row


def ensemble_report(results: Path, members: list[str], photos: int, size: tuple[int, int]
                    ) -> dict[str, object]:
    """Changed decisions of the equal-weight average, at full size ``size`` (members resized
    bilinearly as ``ensemble_to_dir`` does), of snapped vs unsnapped members."""
    base = [folders(results, m) for m in members]
    total = np.zeros(len(THRESHOLDS), np.int64)
    n = pixels = 0
    for dirs in zip(*base, strict=False):
        for path in sorted(dirs[0].glob("*.png"))[:photos]:
            maps = [stored(d / path.name) for d in dirs]
            raw = sum(resize_prob(as_prob(m), size) for m in maps) / np.float32(len(maps))
            snapped = sum(resize_prob(as_prob(prob_levels(as_prob(m), snap=True)), size)
                          for m in maps) / np.float32(len(maps))
            total += changed(raw, snapped)
            n, pixels = n + 1, pixels + raw.size
    return {"members": members, "photos": n, "pixels": pixels,
            "changed_decisions": total.tolist(), "changed_total": int(total.sum()),
            "changed_at_0.5": int(total[np.flatnonzero(np.isclose(THRESHOLDS, 0.5))[0]])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, help="a workflow's results/ folder")
    parser.add_argument("--models", nargs="*", help="default: every folder in RESULTS/predict")
    parser.add_argument("--ensemble", nargs="*", default=[], help="full-size members to average")
    parser.add_argument("--photos", type=int, default=16, help="photos per folder")
    args = parser.parse_args()
    info = json.loads((args.results / "data" / "ingest.json").read_text())
    size = (int(info["width"]), int(info["height"]))
    names = args.models or sorted(p.name for p in (args.results / "predict").iterdir())
    report: dict[str, object] = {"results": str(args.results), "size": list(size),
                                 "thresholds": [float(t) for t in THRESHOLDS], "models": {}}
    for name in names:
        row = model_report(args.results, name, args.photos, size)
        report["models"][name] = row
        print(f"{name}: {row['photos']} maps {row['shape']}, {row['bytes_per_photo_unsnapped']} "
              f"-> {row['bytes_per_photo_snapped']} bytes/photo ({100 * row['saved']:.1f} % "
              f"saved); changed decisions as stored: {row['changed_decisions_direct']}; "
              f"resized to full size: {row.get('changed_resized_total', 'n/a')} of "
              f"{row.get('full_size_pixels', '-')} pixels x {len(THRESHOLDS)} thresholds",
              flush=True)
    if args.ensemble:
        ens = ensemble_report(args.results, args.ensemble, args.photos, size)
        report["ensemble"] = ens
        print(f"ensemble {'+'.join(args.ensemble)}: {ens['photos']} photos, changed decisions "
              f"{ens['changed_total']} of {ens['pixels']} pixels x {len(THRESHOLDS)} thresholds "
              f"({ens['changed_at_0.5']} at 0.5)")
    out = REPO / "benchmarks" / "results" / "snap_levels.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
