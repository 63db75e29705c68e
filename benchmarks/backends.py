"""Every backend x precision of carvana.backends on one model and one input (issue 16).

Run by hand:  python benchmarks/backends.py [--weights results/models/effl0_tiles/weights.pt]
                  [--shape 1,3,960,960] [--rounds 7] [--threads 2]

The model is a trained checkpoint (``--weights``, loaded as the prediction rules load it) or a
fresh EfficientNet-Lite0 U-Net (ImageNet encoder, random decoder, as configs/carvana-cpu.yaml
builds it). The input is a crop of a real photo from ../shared/carvana-sample at ``--shape``
(read in place; smooth random images without it), a 4th channel 0.5 for a 4-channel model.

For each backend x precision (as ``carvana.backends.resolve`` resolves it: onnxruntime bf16
runs fp32 and is not timed twice): the setup (export to ONNX, shared by the two graph
runtimes, and compile), then the median of ``--rounds`` interleaved rounds of one forward each
(torch fp32, torch bf16, onnxruntime, openvino fp32, openvino bf16, torch fp32, ...), the
speed-up over PyTorch float32, and the max |logit difference| and sign changes against it.

A fresh model's head is rescaled so that its logits on the input have mean 0 and std 3 (else
they all sit near one value and sign changes mean nothing); its random decoder makes each
logit a small difference of large activations, so bf16 sign changes are far more than a
trained model's. The output states the load average before and after, since other jobs may
share the CPU: ratios measured on a busy machine understate an idle one's (issue 16).
Writes benchmarks/results/backends.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from carvana.backends import (
    BACKENDS,
    PRECISIONS,
    BackendSpec,
    Runner,
    export_onnx,
    graph_runner,
    resolve,
    torch_runner,
)
from carvana.io import read_image
from carvana.models import create_model
from carvana.predict import load_model

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "carvana-sample"
CPU = torch.device("cpu")


def make_input(shape: tuple[int, int, int, int], sample: Path) -> tuple[np.ndarray, str]:
    """float32 (N, C, H, W) in [0, 1]: centred crops of the first N sample photos (channels
    past 3 at 0.5), or smooth random images; and what it is."""
    n, channels, height, width = shape
    photos = sorted((sample / "train").glob("*.jpg"))[:n]
    if len(photos) == n:
        crops = []
        for path in photos:
            image = read_image(path)
            top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
            if top < 0 or left < 0:
                raise SystemExit(f"--shape {height}x{width} is larger than {path.name}")
            crops.append(image[top:top + height, left:left + width].transpose(2, 0, 1))
        x = np.stack(crops).astype(np.float32) / 255
        what = f"centre crops of {', '.join(p.stem for p in photos)}"
    else:
        gen = torch.Generator().manual_seed(0)
        coarse = torch.rand(n, 3, max(1, height // 32), max(1, width // 32), generator=gen)
        x = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic")
        x = x.clamp(0, 1).numpy()
        what = f"smooth random images ({sample} absent)"
    extra = np.full((n, channels - 3, height, width), 0.5, np.float32)
    return np.ascontiguousarray(np.concatenate([x, extra], axis=1), np.float32), what


def make_model(weights: str | None, x: np.ndarray) -> tuple[torch.nn.Module, str]:
    """The checkpoint, or a fresh Lite0 U-Net whose logits of ``x`` are spread (std 3)."""
    if weights:
        model, meta = load_model(weights, CPU)
        return model, f"{weights} ({meta['name']}: {meta['arch']})"
    torch.manual_seed(0)
    model = create_model("efficientnet_unet", in_channels=x.shape[1], encoder="lite0",
                         pretrained=True).eval()
    with torch.inference_mode():
        logits = model(torch.from_numpy(x))
    with torch.no_grad():
        head = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        scale = 3.0 / logits.std()
        head.weight.mul_(scale)
        head.bias.copy_(scale * (head.bias - logits.mean()))
    return model, "fresh EfficientNet-Lite0 U-Net (ImageNet encoder, random decoder, head spread)"


def build_runners(model: torch.nn.Module, x: np.ndarray, threads: int, folder: Path
                  ) -> tuple[dict[str, Runner], dict[str, float]]:
    """One runner per distinct resolved backend x precision, and each one's setup seconds
    (the ONNX export is counted once, in the export row)."""
    runners: dict[str, Runner] = {}
    setup: dict[str, float] = {}
    graph = folder / "model.onnx"
    for backend in BACKENDS:
        for precision in PRECISIONS:
            try:
                spec = resolve(BackendSpec(backend, precision, threads=threads))
            except RuntimeError as err:
                print(f"skipped {backend} {precision}: {err}")
                continue
            key = f"{spec.backend} {spec.precision}"
            if key in runners:
                continue
            if backend != "torch" and not graph.exists():
                start = time.perf_counter()
                export_onnx(model, shape=(1, *x.shape[1:]), path=graph)
                setup["export to ONNX"] = time.perf_counter() - start
            start = time.perf_counter()
            runners[key] = (torch_runner(model, spec, CPU) if backend == "torch"
                            else graph_runner(graph, spec))
            runners[key].logits(x)  # warm-up: first-call kernel choices belong to setup
            setup[key] = time.perf_counter() - start
    return runners, setup


def measure(runners: dict[str, Runner], x: np.ndarray, rounds: int
            ) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    """Interleaved rounds: every runner once per round, in turn; the last logits of each."""
    times: dict[str, list[float]] = {k: [] for k in runners}
    outs: dict[str, np.ndarray] = {}
    for _ in range(rounds):
        for key, runner in runners.items():
            start = time.perf_counter()
            outs[key] = runner.logits(x)
            times[key].append(time.perf_counter() - start)
    return times, outs


def report(times: dict[str, list[float]], outs: dict[str, np.ndarray], setup: dict[str, float]
           ) -> list[dict[str, float | int | str]]:
    """The table's rows, printed."""
    ref_key = "torch fp32"
    ref, base = outs[ref_key], statistics.median(times[ref_key])
    rows = []
    print(f"{'backend precision':22} {'setup s':>8} {'median s':>9} {'speed-up':>9} "
          f"{'max |dlogit|':>13} {'sign changes':>16}")
    if "export to ONNX" in setup:
        print(f"{'export to ONNX':22} {setup['export to ONNX']:8.2f}")
    for key, values in times.items():
        median = statistics.median(values)
        diff = float(np.abs(outs[key] - ref).max())
        flips = int(((outs[key] > 0) != (ref > 0)).sum())
        rows.append({"runner": key, "setup_s": round(setup[key], 3),
                     "median_s": round(median, 4), "min_s": round(min(values), 4),
                     "speedup": round(base / median, 2), "max_abs_logit_diff": diff,
                     "sign_changes": flips, "logits": int(ref.size)})
        print(f"{key:22} {setup[key]:8.2f} {median:9.3f} {base / median:8.2f}x "
              f"{diff:13.2e} {flips:8d} of {ref.size}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="a trained weights.pt (default: a fresh Lite0 U-Net)")
    parser.add_argument("--shape", default="1,3,960,960", help="N,C,H,W (default 1,3,960,960)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sample", type=Path, default=SAMPLE)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/backends.json")
    args = parser.parse_args()
    shape = tuple(int(s) for s in args.shape.split(","))
    if len(shape) != 4:
        raise SystemExit(f"--shape must be N,C,H,W, not {args.shape!r}")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    x, what = make_input(shape, args.sample)
    model, described = make_model(args.weights, x)
    print(f"model: {described}\ninput: {shape}, {what}\nthreads: {args.threads} on "
          f"{os.cpu_count()} cores; {args.rounds} interleaved rounds (median)")
    with tempfile.TemporaryDirectory(prefix="carvana-bench-") as folder:
        runners, setup = build_runners(model, x, args.threads, Path(folder))
        times, outs = measure(runners, x, args.rounds)
    rows = report(times, outs, setup)
    load_after = os.getloadavg()
    print(f"load average (1, 5, 15 min) before {load_before[0]:.2f} {load_before[1]:.2f} "
          f"{load_before[2]:.2f}, after {load_after[0]:.2f} {load_after[1]:.2f} "
          f"{load_after[2]:.2f}, on {os.cpu_count()} cores: above ~0 other work shared the "
          "CPU, and ratios understate an idle machine's")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "model": described, "input": what, "shape": list(shape), "threads": args.threads,
        "rounds": args.rounds, "setup_s": setup, "rows": rows,
        "loadavg_before": load_before, "loadavg_after": load_after}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
