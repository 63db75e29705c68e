"""Cut out one shard of a person's photos with the trained chain (masks and RGBA PNGs)."""

import torch  # noqa: F401  (loaded before run_logged, so that it sets torch's threads)

from carvana.cutouts import cutouts_shard
from carvana.snake import run_logged

sm = snakemake  # noqa: F821  (injected by Snakemake)
kwargs = {
    "photos": dict(sm.params.photos),
    "weights": dict(sm.params.weights),
    "ingest_json": sm.input.ingest,
    "source": sm.params.source,
    "members": dict(sm.params.members),
    "bbox": dict(sm.params.bbox),
    "tiles": dict(sm.params.tiles),
    "threshold": sm.params.threshold,
    "threshold_json": sm.input.get("threshold"),
    "tta_hflip": bool(sm.params.tta_hflip),
    "device": sm.params.device,
    "cpu_fallback": bool(sm.params.cpu_fallback),
    "max_empty_fraction": float(sm.params.max_empty_fraction),
    "out_dir": sm.output.cutouts,
}
run_logged(lambda: cutouts_shard(**kwargs), sm.log[0], sm.threads)
