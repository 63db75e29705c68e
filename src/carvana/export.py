"""Export a trained chain as a bundle: ``snakemake --cores all export``.

For every model of the chain: its weights (``<name>.pt``, copied byte for byte) and an ONNX
graph (``<name>.onnx``) at the one input size that model runs at (the EfficientNet's TF-"SAME"
padding is frozen at the traced shape), checked against PyTorch on that shape before it is
kept; then ``manifest.json`` (``carvana.bundle``). The bundle is built in a temporary folder
beside the target and renamed into place, so a failed export leaves nothing half-written.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from carvana.backends import BackendSpec, export_onnx, graph_runner, torch_runner
from carvana.bundle import write_manifest
from carvana.chain import Chain, ChainModel
from carvana.io import read_json
from carvana.predict import load_model

log = logging.getLogger(__name__)

MAX_LOGIT_DIFF = 1e-2  # fp32 graph vs PyTorch on random input (seen: ~2e-4)


def check_graph(model: torch.nn.Module, graph: Path, shape: tuple[int, int, int, int]) -> float:
    """Max abs logit difference of ``graph`` (ONNX Runtime, else OpenVINO, fp32) against
    PyTorch fp32 on a seeded random input; RuntimeError above ``MAX_LOGIT_DIFF``."""
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    reference = torch_runner(model, BackendSpec(), torch.device("cpu")).logits(x)
    for backend in ("onnxruntime", "openvino"):
        try:
            got = graph_runner(graph, BackendSpec(backend=backend)).logits(x)
        except ImportError:
            continue
        diff = float(np.abs(got - reference).max())
        if diff > MAX_LOGIT_DIFF:
            raise RuntimeError(f"{graph}: the exported graph differs from PyTorch by {diff:.3g} "
                               f"in the logits ({backend}, shape {shape}); not kept")
        return diff
    log.warning("%s: neither onnxruntime nor openvino is installed: graph not checked", graph)
    return float("nan")


def _export_model(entry: ChainModel, results: Path, out: Path) -> ChainModel:
    """Copy one model's weights into ``out``, export and check its graph; the bundle's entry."""
    model, meta = load_model(results / entry.weights, torch.device("cpu"),
                             {"name": entry.name, "input": entry.input})
    model.to(memory_format=torch.contiguous_format)
    weights, graph = f"{entry.name}.pt", f"{entry.name}.onnx"
    shutil.copyfile(results / entry.weights, out / weights)
    shape = (1, *entry.input_shape())
    export_onnx(model, shape=shape, path=out / graph)
    diff = check_graph(model, out / graph, shape)
    log.info("%s: graph at %s, max logit difference %.2g", entry.name, shape, diff)
    return replace(entry, weights=weights, graph=graph, params_hash=meta.get("params_hash"))


def export_bundle(*, results: str | Path, out_dir: str | Path, source: str | None = None) -> Chain:
    """Write the bundle of ``results/chain.json`` (narrowed to ``source``) into ``out_dir``."""
    results, out_dir = Path(results), Path(out_dir)
    chain = Chain.from_json(read_json(results / "chain.json"), str(results / "chain.json"))
    chain = chain.for_source(source)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        models = {name: _export_model(chain.models[name], results, tmp)
                  for name in chain.needed()}
        chain = replace(chain, models=models, thresholds={
            k: v for k, v in chain.thresholds.items() if k in chain.sources()})
        write_manifest(tmp, chain)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("bundle of %s in %s: %s", chain.source, out_dir, ", ".join(chain.needed()))
    return chain
