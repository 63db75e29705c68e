"""``carvana-serve``: the cut-out page and API on a trained chain, under uvicorn.

The port is bound before the models load (a taken port fails at once), the models load once,
one segmenter per worker, each is warmed up on a grey photo, and only then does the server
answer.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .app import Limits, create_app
from .work import Inference, SegmenterLike

Loader = Callable[..., SegmenterLike]


def _positive(kind: type, low: float) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{text} is below the least allowed, {low}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    """The command line of carvana-serve."""
    parser = argparse.ArgumentParser(
        prog="carvana-serve", description="Serve the car cut-out page and HTTP API "
        "(POST /api/cutout, GET /healthz) on a trained chain or an exported bundle.")
    parser.add_argument("--models", required=True, type=Path,
                        help="a workflow's results folder or an exported bundle folder")
    parser.add_argument("--source", help="the chain to serve (default: the submission's)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=_positive(int, 0), default=8000,
                        help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--backend", help="torch, onnxruntime or openvino (default: measured)")
    parser.add_argument("--precision", help="fp32 or bf16 (default: measured)")
    parser.add_argument("--threads", type=_positive(int, 1),
                        help="compute threads per worker (default: the cores / workers)")
    parser.add_argument("--max-upload-mb", type=_positive(float, 0.01),
                        default=Limits.max_upload_bytes / 2**20,
                        help="largest photo file accepted, in MB (default 25)")
    parser.add_argument("--max-megapixels", type=_positive(float, 0.0001),
                        default=Limits.max_pixels / 1e6,
                        help="largest photo accepted, in megapixels (default 40)")
    parser.add_argument("--queue", type=_positive(int, 0), default=8,
                        help="photos that may wait for a worker; more get 503 (default 8)")
    parser.add_argument("--workers", type=_positive(int, 1), default=1,
                        help="photos cut out at once, each with its own copy of the models "
                             "(default 1)")
    parser.add_argument("--log-level", default="info",
                        choices=["critical", "error", "warning", "info", "debug"])
    return parser


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; OSError naming the address when it is taken."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} ({err.strerror}); choose another "
                      "--port") from None
    sock.listen(128)
    return sock


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_segmenters(args: argparse.Namespace, loader: Loader | None = None
                    ) -> list[SegmenterLike]:
    """One segmenter per worker, loaded once; ValueError (DataError) naming the problem."""
    if loader is None:
        from carvana.segmenter import Segmenter

        loader = Segmenter.load
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    return [loader(args.models, args.source, backend=args.backend, precision=args.precision,
                   threads=threads) for _ in range(args.workers)]


def warm_up(segmenters: list[SegmenterLike]) -> float:
    """One grey photo through each segmenter, so the first person's photo does not pay for a
    runtime's compilation (OpenVINO: ~15 s) or first allocations; the seconds it took. Its
    warnings (no car in a grey photo) are not the person's concern and are held back."""
    start = time.perf_counter()
    grey = np.full((320, 480, 3), 128, np.uint8)
    logging.disable(logging.WARNING)
    try:
        for segmenter in segmenters:
            segmenter.mask(grey)
    finally:
        logging.disable(logging.NOTSET)
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None, loader: Loader | None = None) -> int:
    """Bind, load the models, serve until stopped; 2 on a bad argument, port or model."""
    import uvicorn

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s: %(message)s")
    try:
        sock = bind(args.host, args.port)
    except OSError as err:
        parser.exit(2, f"carvana-serve: error: {err}\n")
    if not is_loopback(args.host):
        print(f"carvana-serve: warning: listening on {args.host}: anyone who can reach this "
              "machine can use the server", file=sys.stderr)
    print(f"carvana-serve: loading the models from {args.models} and warming them up…",
          file=sys.stderr, flush=True)
    try:
        segmenters = load_segmenters(args, loader)
        seconds = warm_up(segmenters)
    except Exception as err:  # a corrupt weights file may raise anything: name it, exit 2
        sock.close()
        kind = "" if isinstance(err, ValueError | OSError) else f"{type(err).__name__}: "
        parser.exit(2, f"carvana-serve: error: cannot load the models from {args.models}: "
                       f"{kind}{err}\n")
    info = segmenters[0].describe()
    limits = Limits(max_upload_bytes=int(args.max_upload_mb * 2**20),
                    max_pixels=int(args.max_megapixels * 1e6))
    inference = Inference(segmenters, args.queue)
    app = create_app(inference, limits, info)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"carvana-serve: {info.get('source')} on {info.get('backend')} "
          f"({info.get('precision')}, warmed up in {seconds:.1f} s), {args.workers} "
          f"worker(s), queue {args.queue}: "
          f"http://{shown}:{port}/", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, log_level=args.log_level, server_header=False,
                            limit_concurrency=inference.capacity + 32, timeout_keep_alive=5)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
