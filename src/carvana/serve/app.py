"""The ASGI app: the page at ``/``, ``GET /healthz`` and ``POST /api/cutout``.

Every error is JSON ``{"error": "..."}`` with a status that says whose fault it is:
400 a malformed request (empty body, no ``image`` field, an unknown ``output``), 404/405 no such
route or method, 408 a stalled upload, 413 over the upload size or the pixel limit, 415 not
multipart/form-data or not a JPEG/PNG, 422 a JPEG/PNG that cannot be decoded or holds no car's
worth of pixels (truncated, 1x1), 503 the queue is full (with ``Retry-After``), 500 a fault of
the server's own.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from carvana.io import DataError
from carvana.photos import DEFAULT_MAX_PIXELS, NotAPhoto, PhotoTooLarge, photo_header

from .upload import UploadError, must_close, read_upload
from .work import OUTPUTS, Busy, Inference

LOG = logging.getLogger("carvana.serve")
STATIC = Path(str(resources.files("carvana.serve") / "static"))
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' blob: data:; "
                                 b"connect-src 'self' blob:; "
                                 b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


@dataclass(frozen=True)
class Limits:
    """What one request may send: the photo's bytes and pixels, and the longest pause."""

    max_upload_bytes: int = 25 * 2**20
    max_pixels: int = DEFAULT_MAX_PIXELS
    stall_seconds: float = 30.0


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON error every failure answers with."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def label(filename: str) -> str:
    """A short, printable label for the photo's file name (never used as a path)."""
    base = re.split(r"[\\/]", filename)[-1]
    base = re.sub(r"[^\w .,()+\-]", "_", base).strip()[:80]
    return base or "the photo"


def download_name(filename: str, output: str) -> str:
    """``<stem>.png`` or ``<stem>_mask.png`` from the sent file name, in safe ASCII."""
    stem = label(filename).rsplit(".", 1)[0] if filename else "cutout"
    stem = re.sub(r"[^A-Za-z0-9._()+\-]", "_", stem).strip("._") or "cutout"
    return f"{stem}_mask.png" if output == "mask" else f"{stem}.png"


class SecurityHeaders:
    """Adds a strict content policy and nosniff to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _cut(request: Request, inference: Inference, limits: Limits, output: str) -> Response:
    """Read, check and cut out one admitted upload."""
    upload = await read_upload(dict(request.headers), request.stream(),
                               max_bytes=limits.max_upload_bytes,
                               stall_seconds=limits.stall_seconds)
    name = label(upload.filename)
    photo_header(upload.data, name=name, max_pixels=limits.max_pixels)  # refused before queueing
    result = await inference.run(upload.data, name=name, output=output,
                                 max_pixels=limits.max_pixels, disconnected=request.receive)
    if result is None:
        return error(400, "the client left before its cut-out was ready")
    LOG.info("%s: %dx%d %s in %.2f s (waited %.2f s), car %.1f%%", name, result.width,
             result.height, output, result.seconds, result.waited, 100 * result.car_share)
    headers = {
        "Content-Disposition": f'inline; filename="{download_name(upload.filename, output)}"',
        "Cache-Control": "no-store",
        "X-Photo-Size": f"{result.width}x{result.height}",
        "X-Car-Share": f"{result.car_share:.4f}",
        "X-Cutout-Seconds": f"{result.seconds:.3f}",
        "X-Queue-Seconds": f"{result.waited:.3f}",
        "Server-Timing": f"queue;dur={result.waited * 1000:.0f}, "
                         f"cutout;dur={result.seconds * 1000:.0f}",
    }
    return Response(result.png, media_type="image/png", headers=headers)


def cutout_endpoint(inference: Inference, limits: Limits):
    """``POST /api/cutout``: the multipart ``image`` -> RGBA PNG, or the mask (?output=mask)."""

    async def cutout(request: Request) -> Response:
        output = request.query_params.get("output", "cutout")
        if output not in OUTPUTS:
            return error(400, f"output={output[:40]!r} is not one of {', '.join(OUTPUTS)}")
        unread = must_close(dict(request.headers), limits.max_upload_bytes)
        try:
            inference.admit()
        except Busy as busy:
            return error(503, str(busy), {"Retry-After": str(busy.retry_after),
                                          **({"Connection": "close"} if unread else {})})
        try:
            return await _cut(request, inference, limits, output)
        except UploadError as err:
            close = err.status == 408 or (not err.body_read and unread)
            return error(err.status, err.message, {"Connection": "close"} if close else None)
        except NotAPhoto as err:
            return error(415, str(err))
        except PhotoTooLarge as err:
            return error(413, str(err))
        except DataError as err:  # truncated, too small: a JPEG or PNG that cannot be used
            return error(422, str(err))
        except ClientDisconnect:
            return error(400, "the client left during the upload")
        except Exception as err:  # the server's own fault: say so, log it, stay up
            LOG.exception("cut-out failed")
            return error(500, f"the cut-out failed inside the server ({type(err).__name__}: "
                              f"{err}); see the server's log")
        finally:
            inference.release()

    return cutout


def create_app(inference: Inference, limits: Limits, info: dict[str, Any]) -> Starlette:
    """The app around a started ``Inference``; ``info`` is the chain's ``describe()`` (shown
    without its ``origin``, a folder of the server's that clients have no use for)."""
    info = {key: value for key, value in info.items() if key != "origin"}

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({
            "status": "ok", "backend": info.get("backend"), "precision": info.get("precision"),
            "chain": info, "queue": inference.describe(),
            "limits": {**asdict(limits), "max_upload_mb": limits.max_upload_bytes / 2**20,
                       "max_megapixels": limits.max_pixels / 1e6},
        })

    async def index(request: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = {404: f"no such page: {request.url.path[:100]}",
                   405: f"{request.method} is not allowed on {request.url.path[:100]}"}
        return error(exc.status_code, message.get(exc.status_code, str(exc.detail)),
                     dict(exc.headers or {}))

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/api/cutout", cutout_endpoint(inference, limits), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        inference.close()

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error},
                    lifespan=lifespan)
    app.add_middleware(SecurityHeaders)
    return app
