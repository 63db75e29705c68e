"""The server's inference: a photo's header checked, then decoded, segmented and encoded as PNG
on a bounded pool of worker threads, each with its own segmenter.

A segmenter serves one call at a time, so ``workers`` threads hold one each. Requests are
admitted up to ``workers + queue`` at once (running or waiting); one more is refused at once
with the seconds to wait, so a burst never builds an unbounded backlog of photos in memory.
"""

from __future__ import annotations

import asyncio
import math
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Protocol

import cv2
import numpy as np

from carvana.photos import decode_photo

OUTPUTS = ("cutout", "mask")


class SegmenterLike(Protocol):
    """What the server needs of ``carvana.segmenter.Segmenter``."""

    def mask(self, image: np.ndarray) -> np.ndarray: ...

    def cutout(self, image: np.ndarray) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


class Busy(Exception):
    """Every worker busy and the queue full: try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: int, capacity: int) -> None:
        super().__init__(f"the server is busy ({capacity} photos already running or waiting); "
                         f"try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Result:
    """A finished cut-out: the PNG, the photo's size, the car's share and the seconds spent."""

    png: bytes
    width: int
    height: int
    car_share: float
    seconds: float
    waited: float


def encode_png(array: np.ndarray) -> bytes:
    """A PNG of an (H, W) grey or (H, W, 4) RGBA uint8 array (fast compression)."""
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA)
    ok, buffer = cv2.imencode(".png", array, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError(f"could not encode a {array.shape} array as PNG")
    return buffer.tobytes()


def cut_out(segmenter: SegmenterLike, data: bytes, *, name: str, output: str,
            max_pixels: int) -> Result:
    """Decode, segment and encode one photo (in a worker thread). DataError: unreadable photo."""
    start = time.perf_counter()
    image = decode_photo(data, name=name, max_pixels=max_pixels)
    if output == "mask":
        mask = segmenter.mask(image)
        png = encode_png(mask)
    else:
        rgba = segmenter.cutout(image)
        mask = rgba[..., 3]
        png = encode_png(rgba)
    height, width = image.shape[:2]
    if mask.shape != (height, width):
        raise RuntimeError(f"the segmenter returned a {mask.shape} mask for a {width}x{height} "
                           "photo")
    share = float(np.count_nonzero(mask)) / mask.size
    return Result(png, width, height, share, time.perf_counter() - start, 0.0)


class Inference:
    """Bounded inference over one segmenter per worker thread."""

    def __init__(self, segmenters: list[SegmenterLike], queue_size: int) -> None:
        if not segmenters:
            raise ValueError("the server needs at least one segmenter (workers >= 1)")
        if queue_size < 0:
            raise ValueError(f"queue size {queue_size} is negative")
        self.workers = len(segmenters)
        self.capacity = self.workers + queue_size
        self.admitted = 0
        self.running = 0
        self.served = 0
        self._free: queue.SimpleQueue[SegmenterLike] = queue.SimpleQueue()
        for segmenter in segmenters:
            self._free.put(segmenter)
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="segmenter")
        self._mean_seconds = 2.0
        self._lock = threading.Lock()

    def describe(self) -> dict[str, int]:
        """The pool's size and load, for /healthz."""
        return {"workers": self.workers, "capacity": self.capacity, "running": self.running,
                "waiting": self.admitted - self.running, "served": self.served}

    def admit(self) -> None:
        """Take a place (call ``release`` when done); Busy when none is left."""
        if self.admitted >= self.capacity:
            ahead = self.admitted - self.workers + 1
            wait = math.ceil(ahead * self._mean_seconds / self.workers)
            raise Busy(min(max(wait, 1), 120), self.capacity)
        self.admitted += 1

    def release(self) -> None:
        """Give back a place taken by ``admit``."""
        self.admitted -= 1

    def _job(self, data: bytes, name: str, output: str, max_pixels: int,
             queued_at: float) -> Result:
        started = time.perf_counter()
        segmenter = self._free.get()
        with self._lock:
            self.running += 1
        try:
            result = cut_out(segmenter, data, name=name, output=output, max_pixels=max_pixels)
        finally:
            self._free.put(segmenter)
            with self._lock:
                self.running -= 1
        with self._lock:
            self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * result.seconds
            self.served += 1
        return replace(result, waited=started - queued_at)

    async def run(self, data: bytes, *, name: str, output: str, max_pixels: int,
                  disconnected: Callable[[], Awaitable[Any]]) -> Result | None:
        """Cut out one admitted photo off the event loop; None if the client left first (a
        photo still waiting is dropped from the queue, one already running is finished)."""
        job = self._executor.submit(self._job, data, name, output, max_pixels,
                                    time.perf_counter())
        future = asyncio.wrap_future(job)
        watcher = asyncio.ensure_future(disconnected())
        try:
            await asyncio.wait({future, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
        if future.done():
            return future.result()
        if not job.cancel():
            await asyncio.wait({future})  # running: its place is held until it ends
            future.exception()  # retrieved: nobody is left to see it
        return None

    def close(self) -> None:
        """Stop the worker threads once their jobs end."""
        self._executor.shutdown(wait=False, cancel_futures=True)


__all__ = ["OUTPUTS", "Busy", "Inference", "Result", "cut_out"]
