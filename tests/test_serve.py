"""carvana-serve's API in process (httpx's ASGI transport) on a fake segmenter of the real one's
shape: every hostile upload of issue 17 gets its 4xx and a message, odd but real formats get a
correct cut-out, a full queue gets 503 with Retry-After, and /healthz answers after each. A
few tests run the real uvicorn on a loopback port for what only a socket shows (streamed
limits, the command line)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image

from carvana.io import DataError
from carvana.serve import Inference, Limits, create_app
from carvana.serve.app import download_name, label
from carvana.serve.cli import build_parser, main

W, H = 320, 240


class FakeSegmenter:
    """The Segmenter's shape: the car is the dark ellipse of ``car_photo``. Records calls and
    fails if two ever overlap (a Segmenter is not safe for concurrent calls)."""

    def __init__(self, gate: threading.Event | None = None, fail: bool = False) -> None:
        self.gate = gate
        self.fail = fail
        self.calls = 0
        self.active = 0
        self.overlaps = 0

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        self.active += 1
        self.overlaps += self.active > 1
        try:
            if self.gate is not None:
                assert self.gate.wait(10), "the test never opened the gate"
            if self.fail:
                raise RuntimeError("weights went missing")
            self.calls += 1
            gray = image.astype(np.float32).mean(axis=2)
            return np.where(gray < 100, 255, 0).astype(np.uint8)
        finally:
            self.active -= 1

    def mask(self, image: np.ndarray) -> np.ndarray:
        return np.where(self.probabilities(image) >= 128, 255, 0).astype(np.uint8)

    def cutout(self, image: np.ndarray) -> np.ndarray:
        return np.dstack([image, self.mask(image)])

    def describe(self) -> dict[str, Any]:
        return {"source": "fake", "models": ["fake"], "backend": "numpy", "precision": "fp32",
                "threshold": 0.5, "size": [W, H], "tta_hflip": False,
                "origin": "/srv/private/results"}


def car_photo(width: int = W, height: int = H) -> np.ndarray:
    """An RGB photo: a light studio with a dark elliptical 'car' in the middle."""
    image = np.full((height, width, 3), (200, 210, 220), np.uint8)
    cv2.ellipse(image, (width // 2, height // 2), (width // 3, height // 4), 0, 0, 360,
                (30, 40, 50), -1)
    return image


def true_mask(width: int = W, height: int = H) -> np.ndarray:
    return car_photo(width, height).mean(axis=2) < 100


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A 1-bit grey PNG of zeros: tiny on disk, ``width * height`` pixels when decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    row = b"\x00" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


JPEG = encode(Image.fromarray(car_photo()), "JPEG", quality=92)


@contextlib.contextmanager
def client(segmenters: list[FakeSegmenter] | None = None, queue: int = 4,
           limits: Limits | None = None) -> Iterator[tuple[httpx.AsyncClient, Inference]]:
    """An in-process client of an app on fake segmenters (one worker unless given more)."""
    inference = Inference(segmenters or [FakeSegmenter()], queue)
    app = create_app(inference, limits or Limits(), FakeSegmenter().describe())
    transport = httpx.ASGITransport(app=app)
    try:
        yield httpx.AsyncClient(transport=transport, base_url="http://test"), inference
    finally:
        inference.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def healthy(http: httpx.AsyncClient) -> None:
    """The server still answers /healthz, with nothing left running or waiting."""
    response = await http.get("/healthz")
    assert response.status_code == 200, response.text
    health = response.json()
    assert health["status"] == "ok" and health["backend"] == "numpy"
    assert health["queue"]["running"] == 0 and health["queue"]["waiting"] == 0


async def post_photo(http: httpx.AsyncClient, data: bytes, name: str = "car.jpg",
                     field: str = "image", query: str = "") -> httpx.Response:
    return await http.post(f"/api/cutout{query}", files={field: (name, data, "image/jpeg")})


def refused(response: httpx.Response, status: int, *words: str) -> str:
    """The JSON error of a refused request: its status and the words its message must hold."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json"
    message = response.json()["error"]
    for word in words:
        assert word.lower() in message.lower(), message
    return message


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


# -- what works ---------------------------------------------------------------------------------

def test_cutout_is_an_rgba_png_of_the_photos_size() -> None:
    async def go() -> None:
        with client() as (http, _):
            response = await post_photo(http, JPEG, name="IMG 2031 (1).jpg")
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "image/png"
            rgba = decode_png(response.content)
            assert rgba.shape == (H, W, 4)
            assert (rgba[..., 3] > 0).mean() == pytest.approx(true_mask().mean(), abs=0.02)
            assert float(response.headers["x-car-share"]) == pytest.approx(
                (rgba[..., 3] > 0).mean(), abs=1e-3)
            assert float(response.headers["x-cutout-seconds"]) >= 0
            assert response.headers["x-photo-size"] == f"{W}x{H}"
            assert 'filename="IMG_2031_(1).png"' in response.headers["content-disposition"]
            assert response.headers["cache-control"] == "no-store"

            mask = await post_photo(http, JPEG, query="?output=mask")
            assert mask.status_code == 200
            gray = decode_png(mask.content)
            assert gray.shape == (H, W) and set(np.unique(gray)) <= {0, 255}
            assert np.array_equal(gray, rgba[..., 3])
            assert mask.headers["content-disposition"].endswith('car_mask.png"')
            await healthy(http)
    run(go())


def test_healthz_gives_the_chain_backend_queue_and_limits() -> None:
    async def go() -> None:
        with client(queue=3) as (http, _):
            health = (await http.get("/healthz")).json()
            assert health["chain"]["source"] == "fake" and health["precision"] == "fp32"
            assert "origin" not in health["chain"]  # no server folder given away
            assert health["queue"] == {"workers": 1, "capacity": 4, "running": 0,
                                       "waiting": 0, "served": 0}
            assert health["limits"]["max_upload_mb"] == 25
            assert health["limits"]["max_megapixels"] == 40
    run(go())


def test_the_page_and_its_files_are_served_with_a_strict_policy() -> None:
    async def go() -> None:
        with client() as (http, _):
            page = await http.get("/")
            assert page.status_code == 200 and "text/html" in page.headers["content-type"]
            assert '<input id="files" type="file"' in page.text
            assert "http://" not in page.text and "https://" not in page.text  # no CDN
            policy = page.headers["content-security-policy"]
            assert "default-src 'self'" in policy
            assert page.headers["x-content-type-options"] == "nosniff"
            for path, kind in (("/static/app.js", "javascript"), ("/static/style.css", "css")):
                response = await http.get(path)
                assert response.status_code == 200 and kind in response.headers["content-type"]
                assert "https://" not in response.text
            # '..' percent-encoded: httpx would drop a plain '..' before sending it
            escape = await http.get("/static/%2e%2e/app.py")
            assert escape.status_code == 404 and "from __future__" not in escape.text
    run(go())


@pytest.mark.parametrize("kind", ["cmyk_jpeg", "gray_jpeg", "gray_png", "png16", "rgba_png",
                                  "palette_png"])
def test_real_photos_in_odd_formats_are_cut_out(kind: str) -> None:
    """CMYK, grayscale, 16-bit, alpha and palette photos: the right cut-out, not a refusal."""
    photo = Image.fromarray(car_photo())
    data = {
        "cmyk_jpeg": lambda: encode(photo.convert("CMYK"), "JPEG"),
        "gray_jpeg": lambda: encode(photo.convert("L"), "JPEG"),
        "gray_png": lambda: encode(photo.convert("L"), "PNG"),
        "png16": lambda: encode(Image.fromarray(
            np.asarray(photo.convert("L"), np.uint16) * 257), "PNG"),
        "rgba_png": lambda: encode(photo.convert("RGBA"), "PNG"),
        "palette_png": lambda: encode(photo.convert("P"), "PNG"),
    }[kind]()

    async def go() -> None:
        with client() as (http, _):
            response = await post_photo(http, data, name=f"car.{kind}")
            assert response.status_code == 200, response.text
            alpha = decode_png(response.content)[..., 3] > 0
            assert alpha.shape == (H, W)
            truth = true_mask()
            dice = 2 * (alpha & truth).sum() / (alpha.sum() + truth.sum())
            assert dice > 0.97, (kind, dice)
            await healthy(http)
    run(go())


# -- every hostile case of issue 17: a 4xx naming the problem, then /healthz -------------------

HOSTILE = {
    "empty_body": (400, ["empty"]),
    "no_content_type": (415, ["multipart/form-data"]),
    "wrong_field": (400, ["'image'", "'file'"]),
    "empty_field": (400, ["empty"]),
    "two_images": (400, ["more than one"]),
    "not_an_image": (415, ["JPEG or PNG"]),
    "gif": (415, ["GIF"]),
    "truncated_jpeg": (422, ["not a readable"]),
    "png_bomb_48mp": (413, ["48.0 megapixels", "40 allowed"]),
    "png_bomb_400mp": (413, ["decompression bomb"]),
    "one_pixel": (422, ["too small"]),
    "malformed_multipart": (400, ["closing boundary"]),
    "bad_output": (400, ["cutout, mask"]),
}


async def send_hostile(http: httpx.AsyncClient, case: str) -> httpx.Response:
    """One hostile request."""
    multipart = {"content-type": "multipart/form-data; boundary=XyZ"}
    if case == "empty_body":
        return await http.post("/api/cutout", content=b"", headers=multipart)
    if case == "no_content_type":
        return await http.post("/api/cutout", content=JPEG)
    if case == "wrong_field":
        return await post_photo(http, JPEG, field="file")
    if case == "empty_field":
        return await post_photo(http, b"")
    if case == "two_images":
        return await http.post("/api/cutout", files=[("image", ("a.jpg", JPEG)),
                                                     ("image", ("b.jpg", JPEG))])
    if case == "malformed_multipart":
        body = (b'--XyZ\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
                b"\r\n" + JPEG[:500])
        return await http.post("/api/cutout", content=body, headers=multipart)
    if case == "bad_output":
        return await post_photo(http, JPEG, query="?output=../../etc/passwd")
    data = {
        "not_an_image": lambda: b"%PDF-1.7 this is a document, not a photo\n" * 20,
        "gif": lambda: encode(Image.fromarray(car_photo()).convert("P"), "GIF"),
        "truncated_jpeg": lambda: JPEG[: len(JPEG) * 6 // 10],
        "png_bomb_48mp": lambda: png_bomb(8000, 6000),
        "png_bomb_400mp": lambda: png_bomb(20000, 20000),
        "one_pixel": lambda: encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"),
    }[case]()
    return await post_photo(http, data, name=f"{case}.jpg")


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_upload_gets_its_4xx_and_the_server_stays_up(case: str) -> None:
    status, words = HOSTILE[case]
    segmenter = FakeSegmenter()

    async def go() -> None:
        with client([segmenter]) as (http, _):
            started = time.perf_counter()
            refused(await send_hostile(http, case), status, *words)
            assert time.perf_counter() - started < 5
            await healthy(http)
            assert (await post_photo(http, JPEG)).status_code == 200  # and still cuts out
    run(go())
    assert segmenter.calls == 1  # no hostile upload reached the models


def test_oversize_upload_is_refused_from_its_length_or_while_streaming() -> None:
    limit = 256 * 1024
    sent = {"bytes": 0}

    async def endless() -> Any:
        boundary = b"--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\n"
        yield boundary
        while sent["bytes"] < 50 * limit:
            sent["bytes"] += 16384
            yield b"\xff" * 16384

    async def go() -> None:
        with client(limits=Limits(max_upload_bytes=limit)) as (http, _):
            big = b"\xff\xd8\xff" + bytes(limit)
            refused(await post_photo(http, big), 413, "larger than the 0.25 MB allowed")
            headers = {"content-type": "multipart/form-data; boundary=XyZ"}
            refused(await http.post("/api/cutout", content=endless(), headers=headers),
                    413, "photos may be at most 0.25 MB")
            assert sent["bytes"] < 2 * limit  # stopped reading near the limit
            headers["content-length"] = str(10 * limit)
            refused(await http.post("/api/cutout", content=b"x" * 16, headers=headers),
                    413, "the request is 2.5 MB", "at most 0.25 MB")
            await healthy(http)
    run(go())


def test_too_many_concurrent_requests_get_503_with_retry_after() -> None:
    gate = threading.Event()
    segmenter = FakeSegmenter(gate)

    async def go() -> None:
        with client([segmenter], queue=2) as (http, inference):
            admitted = [asyncio.create_task(post_photo(http, JPEG)) for _ in range(3)]
            for _ in range(200):
                if inference.admitted == 3 and inference.running == 1:
                    break
                await asyncio.sleep(0.01)
            assert (inference.admitted, inference.running) == (3, 1)
            busy = await post_photo(http, JPEG)
            refused(busy, 503, "busy", "try again")
            assert int(busy.headers["retry-after"]) >= 1
            health = (await http.get("/healthz")).json()  # answers while the queue is full
            assert health["queue"]["running"] == 1 and health["queue"]["waiting"] == 2
            gate.set()
            assert [r.status_code for r in await asyncio.gather(*admitted)] == [200] * 3
            await healthy(http)
    run(go())
    assert segmenter.overlaps == 0 and segmenter.calls == 3


def test_each_worker_has_its_own_segmenter_and_none_is_shared() -> None:
    segmenters = [FakeSegmenter(), FakeSegmenter()]

    async def go() -> None:
        with client(segmenters, queue=8) as (http, _):
            responses = await asyncio.gather(*[post_photo(http, JPEG) for _ in range(8)])
            assert [r.status_code for r in responses] == [200] * 8
    run(go())
    assert sum(s.calls for s in segmenters) == 8
    assert all(s.overlaps == 0 for s in segmenters)


def test_a_stalled_upload_gets_408() -> None:
    async def slow() -> Any:
        yield b"--XyZ\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n"
        await asyncio.sleep(2)
        yield b"late"

    async def go() -> None:
        with client(limits=Limits(stall_seconds=0.2)) as (http, _):
            headers = {"content-type": "multipart/form-data; boundary=XyZ"}
            refused(await http.post("/api/cutout", content=slow(), headers=headers),
                    408, "stalled")
            await healthy(http)
    run(go())


def test_a_segmenter_fault_is_a_500_that_names_it_and_the_server_stays_up() -> None:
    async def go() -> None:
        with client([FakeSegmenter(fail=True)]) as (http, _):
            refused(await post_photo(http, JPEG), 500, "weights went missing")
            await healthy(http)
    run(go())


def test_unknown_routes_and_methods_are_json_errors() -> None:
    async def go() -> None:
        with client() as (http, _):
            refused(await http.get("/api/nothing"), 404, "no such page")
            refused(await http.get("/api/cutout"), 405, "GET is not allowed")
    run(go())


def test_nothing_the_client_sends_becomes_a_path_or_a_header() -> None:
    assert label("../../etc/passwd") == "passwd"
    assert label("C:\\Users\\me\\car.jpg") == "car.jpg"
    assert label("") == "the photo"
    assert download_name('a"b\r\nX-Evil: 1.jpg', "cutout") == "a_b__X-Evil__1.png"
    assert download_name("../../..", "mask") == "cutout_mask.png"
    assert download_name("voiture été.jpg", "cutout") == "voiture__t.png"

    async def go() -> None:
        with client() as (http, _):
            response = await post_photo(http, JPEG, name="../../tmp/evil.jpg")
            assert response.status_code == 200
            assert response.headers["content-disposition"] == 'inline; filename="evil.png"'
    run(go())


# -- the real server on a loopback socket, and the command line -----------------------------------

@contextlib.contextmanager
def live_server(limit: int) -> Iterator[int]:
    """uvicorn on a free loopback port in a thread, on a fake segmenter; yields the port."""
    import uvicorn

    inference = Inference([FakeSegmenter()], 2)
    app = create_app(inference, Limits(max_upload_bytes=limit), FakeSegmenter().describe())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    sock = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            time.sleep(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_a_real_socket_refuses_an_endless_chunked_upload_near_the_limit() -> None:
    """uvicorn would read and drop the rest of a refused body for as long as it came: the
    server answers 413 and closes instead, long before the client has sent it all."""
    limit, endless = 512 * 1024, 256 * 2**20
    with live_server(limit) as port:
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        conn.sendall(b"POST /api/cutout HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Type: multipart/form-data; boundary=XyZ\r\n\r\n")
        part = b'--XyZ\r\nContent-Disposition: form-data; name="image"\r\n\r\n'
        conn.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        sent, block = 0, b"\x00" * 65536
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while sent < endless:
                conn.sendall(b"%x\r\n%s\r\n" % (len(block), block))
                sent += len(block)
        assert sent < endless / 4, sent  # the server closed early
        with contextlib.suppress(ConnectionResetError):
            answer = conn.recv(65536)
            assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
            assert b"connection: close" in answer.lower()
        conn.close()
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert health.status_code == 200
        done = httpx.post(f"http://127.0.0.1:{port}/api/cutout", timeout=10,
                          files={"image": ("car.jpg", JPEG, "image/jpeg")})
        assert done.status_code == 200 and done.content.startswith(b"\x89PNG")


def test_a_real_socket_answers_a_slightly_oversize_upload_cleanly() -> None:
    """A photo a little over the limit, with its length declared: the client gets the 413 (the
    server drops the rest of the body) and the connection serves the next request."""
    limit = 256 * 1024
    with live_server(limit) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        big = b"\xff\xd8\xff" + bytes(limit + 100_000)
        refused(http.post("/api/cutout", files={"image": ("big.jpg", big)}), 413, "at most 0.25 MB")
        assert http.get("/healthz").status_code == 200


def test_command_line_defaults_match_the_issue() -> None:
    args = build_parser().parse_args(["--models", "results"])
    assert (args.host, args.port, args.max_upload_mb, args.max_megapixels, args.queue,
            args.workers) == ("127.0.0.1", 8000, 25.0, 40.0, 8, 1)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--models", "results", "--workers", "0"])


def test_command_line_names_a_model_error_and_a_taken_port(capsys: pytest.CaptureFixture) -> None:
    def bad_loader(models: Any, source: Any, **_: Any) -> FakeSegmenter:
        raise DataError(f"{models}: no results/chain.json here")

    with pytest.raises(SystemExit) as stop:
        main(["--models", "/nowhere", "--port", "0"], loader=bad_loader)
    assert stop.value.code == 2
    assert "cannot load the models from /nowhere" in capsys.readouterr().err
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as stop:
            main(["--models", "x", "--port", str(port)], loader=lambda *a, **k: FakeSegmenter())
    assert stop.value.code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_a_client_that_leaves_while_queued_frees_its_place_and_costs_no_inference() -> None:
    """Raw ASGI: a second photo waits behind a running one, then its client disconnects. Its
    job is dropped before it runs, and its place in the queue is given back."""
    gate = threading.Event()
    segmenter = FakeSegmenter(gate)
    inference = Inference([segmenter], 2)
    app = create_app(inference, Limits(), segmenter.describe())
    body = (b'--XyZ\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
            + JPEG + b"\r\n--XyZ--\r\n")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/api/cutout", "raw_path": b"",
             "query_string": b"", "root_path": "", "server": ("test", 80),
             "client": ("127.0.0.1", 1),
             "headers": [(b"content-type", b"multipart/form-data; boundary=XyZ"),
                         (b"content-length", str(len(body)).encode())]}

    async def call(leave: asyncio.Event) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await leave.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(dict(scope), receive, send)
        return sent

    async def go() -> None:
        stays, leaves = asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(call(stays))
        while inference.running == 0:
            await asyncio.sleep(0.01)
        second = asyncio.create_task(call(leaves))
        while inference.admitted < 2:
            await asyncio.sleep(0.01)
        leaves.set()
        left = await second
        assert left[0]["status"] == 400 and b"left" in left[1]["body"]
        assert inference.admitted == 1  # its place is free while the first still runs
        gate.set()
        assert (await first)[0]["status"] == 200
        assert inference.admitted == 0

    try:
        run(go())
    finally:
        inference.close()
    assert segmenter.calls == 1


def test_uploads_are_never_written_to_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """A photo over python-multipart's 1 MB spooling threshold, cut out while every way to a
    temporary or written file fails."""
    import builtins
    import tempfile

    real_open = builtins.open

    def no_writes(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        assert not set(mode) & set("wax+"), f"the server opened {file!r} for writing"
        return real_open(file, mode, *args, **kwargs)

    def no_temp(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the server made a temporary file")

    noise = np.random.default_rng(0).integers(0, 255, (1200, 1000, 3), dtype=np.uint8)
    noise[300:900, 200:800] = 20  # a dark 'car'
    data = encode(Image.fromarray(noise), "PNG", compress_level=0)
    assert len(data) > 3 * 2**20

    async def go() -> None:
        with client() as (http, _):
            monkeypatch.setattr(builtins, "open", no_writes)
            # the moment a spooled part goes to disk, however the class was imported
            monkeypatch.setattr(tempfile.SpooledTemporaryFile, "rollover", no_temp)
            for name in ("SpooledTemporaryFile", "NamedTemporaryFile", "TemporaryFile",
                         "mkstemp", "mkdtemp"):
                monkeypatch.setattr(tempfile, name, no_temp)
            response = await post_photo(http, data, name="big.png")
            assert response.status_code == 200, response.text
            assert decode_png(response.content).shape == (1200, 1000, 4)
    run(go())
