"""A bounded localhost load on ``carvana-serve``: latency, throughput, errors and the server's
memory over time (issue 17.6).

Run by hand (needs httpx: ``pip install -e '.[test]'``):

    python benchmarks/serve_load.py --models /path/to/results --requests 60 --concurrency 4

It starts ``carvana-serve --models M --port 0`` (extra server flags after ``--server``), waits
for /healthz, sends ``--warmup`` photos one at a time (not counted), then ``--requests``
``POST /api/cutout`` of real photos from the shared sample (full size, read in place, in
turn) from ``--concurrency`` client threads, all on 127.0.0.1, and stops the server. The run is
bounded: a fixed count of requests, each with a timeout, and ``--max-seconds`` in all.

Reported: errors by status (goal 0), client latency p50/p95/max, throughput, the server's own
time per photo (X-Cutout-Seconds) and queue wait, and the server process's RSS sampled every
0.2 s from /proc: once loaded, after warm-up, and its peak in the load's first and second halves
(goal: flat after warm-up, the second half's peak no higher than the first's). Writes
benchmarks/results/serve_load.json.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from carvana.io import write_json

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "carvana-sample" / "train"


def rss_mb(pid: int) -> float:
    """The resident memory of a process, in MB, from /proc (0 once it has gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


class RssSampler(threading.Thread):
    """Samples a process's RSS every ``period`` seconds into ``samples`` (time, MB)."""

    def __init__(self, pid: int, period: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self.start_time = time.monotonic()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.monotonic() - self.start_time, rss_mb(self.pid)))
            self.stop.wait(self.period)

    def between(self, start: float, end: float) -> list[float]:
        return [mb for t, mb in self.samples if start <= t <= end]


def start_server(models: Path, extra: list[str]) -> tuple[subprocess.Popen, str, list[str]]:
    """carvana-serve on a free loopback port; its process, URL and output lines so far."""
    script = Path(sys.executable).with_name("carvana-serve")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "carvana.serve.cli"]
    proc = subprocess.Popen([*command, "--models", str(models), "--port", "0",
                             "--log-level", "warning", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                     daemon=True).start()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        urls = [m.group(0) for line in list(lines)
                for m in [re.search(r"http://127\.0\.0\.1:\d+/", line)] if m]
        if urls:
            try:
                if httpx.get(urls[0] + "healthz", timeout=5).status_code == 200:
                    return proc, urls[0], lines
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    proc.kill()
    sys.exit("carvana-serve did not start:\n" + "".join(lines[-30:]))


def post(client: httpx.Client, url: str, photo: Path) -> dict[str, Any]:
    """One cut-out request: status, client seconds and the server's timing headers."""
    started = time.perf_counter()
    try:
        response = client.post(url + "api/cutout", timeout=300,
                               files={"image": (photo.name, photo.read_bytes(), "image/jpeg")})
    except httpx.HTTPError as err:
        return {"status": type(err).__name__, "seconds": time.perf_counter() - started}
    record: dict[str, Any] = {"status": response.status_code,
                              "seconds": time.perf_counter() - started,
                              "bytes": len(response.content)}
    if response.status_code == 200:
        record["server"] = float(response.headers["x-cutout-seconds"])
        record["queue"] = float(response.headers["x-queue-seconds"])
    return record


def load(url: str, photos: list[Path], requests: int, concurrency: int,
         max_seconds: float) -> tuple[list[dict[str, Any]], float]:
    """``requests`` posts from ``concurrency`` threads, stopping early at ``max_seconds``."""
    deadline = time.monotonic() + max_seconds
    limits = httpx.Limits(max_connections=concurrency)

    def one(index: int, client: httpx.Client) -> dict[str, Any]:
        if time.monotonic() > deadline:
            return {"status": "not sent (time limit)", "seconds": 0.0}
        return post(client, url, photos[index % len(photos)])

    started = time.perf_counter()
    with httpx.Client(limits=limits) as client, ThreadPoolExecutor(concurrency) as pool:
        records = list(pool.map(lambda i: one(i, client), range(requests)))
    return records, time.perf_counter() - started


def summarise(records: list[dict[str, Any]], wall: float, rss: dict[str, float],
              info: dict[str, Any]) -> dict[str, Any]:
    """The figures of one run."""
    ok = [r for r in records if r["status"] == 200]
    latency = [r["seconds"] for r in ok] or [float("nan")]
    return {
        **info, "ok": len(ok), "errors": dict(Counter(str(r["status"]) for r in records
                                                      if r["status"] != 200)),
        "wall_seconds": wall, "throughput_per_second": len(ok) / wall,
        "latency_p50": float(np.percentile(latency, 50)),
        "latency_p95": float(np.percentile(latency, 95)),
        "latency_max": max(latency),
        "server_seconds_mean": statistics.fmean(r["server"] for r in ok) if ok else None,
        "queue_seconds_mean": statistics.fmean(r["queue"] for r in ok) if ok else None,
        "rss_mb": rss,
    }


def table(result: dict[str, Any]) -> str:
    """The run as a Markdown table."""
    rss = result["rss_mb"]
    errors = sum(result["errors"].values())
    rows = [
        ("requests (concurrency)", f"{result['requests']} ({result['concurrency']})"),
        ("errors", f"{errors}" + (f" {result['errors']}" if errors else "")),
        ("latency p50 / p95 / max", f"{result['latency_p50']:.2f} / "
                                    f"{result['latency_p95']:.2f} / {result['latency_max']:.2f} s"),
        ("throughput", f"{result['throughput_per_second']:.2f} photos/s "
                       f"({60 * result['throughput_per_second']:.0f}/min)"),
        ("server time per photo (mean)", f"{result['server_seconds_mean']:.2f} s"),
        ("server RSS: loaded / after warm-up", f"{rss['loaded']:.0f} / "
                                               f"{rss['after_warmup']:.0f} MB"),
        ("server RSS peak: 1st / 2nd half of the load",
         f"{rss['peak_first_half']:.0f} / {rss['peak_second_half']:.0f} MB "
         f"({rss['second_half_growth']:+.0f} MB)"),
    ]
    return "\n".join(["| measure | value |", "|---|---|",
                      *[f"| {name} | {value} |" for name, value in rows]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, required=True,
                        help="a results folder or an exported bundle")
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--photos", type=Path, default=SAMPLE, help="a folder of .jpg photos")
    parser.add_argument("--max-seconds", type=float, default=1800)
    parser.add_argument("--server", nargs=argparse.REMAINDER, default=[],
                        help="flags passed on to carvana-serve (e.g. --server --workers 2)")
    args = parser.parse_args()
    photos = sorted(args.photos.glob("*.jpg"))
    if not photos:
        sys.exit(f"no .jpg photos in {args.photos}")
    proc, url, lines = start_server(args.models, args.server)
    sampler = RssSampler(proc.pid)
    sampler.start()
    try:
        health = httpx.get(url + "healthz", timeout=10).json()
        loaded = rss_mb(proc.pid)
        with httpx.Client() as client:
            warm = [post(client, url, photos[i % len(photos)]) for i in range(args.warmup)]
        assert all(r["status"] == 200 for r in warm), warm
        t_warm, after_warmup = time.monotonic() - sampler.start_time, rss_mb(proc.pid)
        load_before = os.getloadavg()[0]
        records, wall = load(url, photos, args.requests, args.concurrency, args.max_seconds)
        t_end = time.monotonic() - sampler.start_time
    finally:
        sampler.stop.set()
        sampler.join()
        proc.terminate()
        proc.wait(30)
    middle = (t_warm + t_end) / 2
    first, second = sampler.between(t_warm, middle), sampler.between(middle, t_end)
    rss = {"loaded": loaded, "after_warmup": after_warmup,
           "peak": max(mb for _, mb in sampler.samples),
           "peak_first_half": max(first), "peak_second_half": max(second),
           "second_half_growth": max(second) - max(first),
           "timeline": [(round(t, 1), round(mb)) for t, mb in sampler.samples[::25]]}
    info = {"models": str(args.models), "chain": health["chain"], "server_flags": args.server,
            "requests": args.requests, "concurrency": args.concurrency, "warmup": args.warmup,
            "photos": len(photos), "cores": os.cpu_count(), "load_before": load_before,
            "load_after": os.getloadavg()[0]}
    result = summarise(records, wall, rss, info)
    chain = health["chain"]
    print(f"{chain.get('source')} on {chain.get('backend')} {chain.get('precision')}, "
          f"{len(photos)} photos of {args.photos}, load {load_before:.2f} -> "
          f"{result['load_after']:.2f}")
    print(table(result))
    out = REPO / "benchmarks" / "results" / "serve_load.json"
    write_json(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
