"""One photo out of a multipart/form-data request, read within limits and kept in memory.

The body is streamed: its size is counted chunk by chunk and the request is refused the moment
it passes the limit, so an oversize or endless upload never sits whole in memory. The parts are
parsed by python-multipart's push parser (the same parser Starlette uses), but only the
``image`` part's bytes are kept, in memory: nothing is spooled to disk, and the file name the
client sends is only a label.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

FIELD = "image"
#: Room for the multipart boundaries, part headers and small fields around the photo.
ENVELOPE_BYTES = 64 * 1024
MAX_PARTS = 16


def megabytes(size: int) -> str:
    """A byte count for people: ``26214400`` -> ``25 MB`` (MB of 2**20 bytes)."""
    value = size / 2**20
    return f"{value:.3g} MB" if value < 100 else f"{value:.0f} MB"


class UploadError(Exception):
    """A request the server refuses: an HTTP status and a message for the person."""

    def __init__(self, status: int, message: str, *, body_read: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body_read = body_read  # False: refused before the body's end


@dataclass
class Upload:
    """The photo's bytes and the file name it was sent under (a label, never a path)."""

    data: bytes
    filename: str


@dataclass
class _Part:
    name: str | None = None
    filename: str = ""
    data: bytearray = field(default_factory=bytearray)


class _ImageCollector:
    """python-multipart callbacks that keep the ``image`` part (at most ``max_bytes``)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.parts: list[_Part] = []
        self.ended = False
        self._field = bytearray()
        self._value = bytearray()
        self._headers: dict[str, str] = {}

    def callbacks(self) -> dict:
        """The callback table for ``MultipartParser``."""
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda data, start, end: self._field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_end": self._end,
        }

    def _begin(self) -> None:
        if len(self.parts) >= MAX_PARTS:
            raise UploadError(400, f"more than {MAX_PARTS} form fields; send one photo "
                                   f"in the field {FIELD!r}")
        self.parts.append(_Part())
        self._headers = {}

    def _header_end(self) -> None:
        name = self._field.decode("latin-1").strip().lower()
        self._headers[name] = self._value.decode("utf-8", "replace")
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", ""))
        part = self.parts[-1]
        name = options.get(b"name")
        part.name = name.decode("utf-8", "replace") if name is not None else None
        part.filename = options.get(b"filename", b"").decode("utf-8", "replace")
        if part.name == FIELD and sum(p.name == FIELD for p in self.parts) > 1:
            raise UploadError(400, f"more than one {FIELD!r} field; send one photo per request")

    def _data(self, data: bytes, start: int, end: int) -> None:
        part = self.parts[-1]
        if part.name != FIELD:
            return  # other fields are counted in the body's size, and dropped
        if len(part.data) + (end - start) > self.max_bytes:
            raise UploadError(413, f"the photo is larger than the {megabytes(self.max_bytes)} "
                                   "allowed; shrink it or save it as JPEG")
        part.data.extend(data[start:end])

    def _end(self) -> None:
        self.ended = True

    def upload(self) -> Upload:
        """The ``image`` part, or an error that says what the form held instead."""
        if not self.ended:
            raise UploadError(400, "the multipart body ended before its closing boundary "
                                   "(a cut-off upload?)")
        image = [p for p in self.parts if p.name == FIELD]
        if not image:
            got = ", ".join(repr(p.name) for p in self.parts if p.name is not None) or "none"
            raise UploadError(400, f"no {FIELD!r} field in the form (fields sent: {got}); "
                                   f"send the photo as the multipart field {FIELD!r}")
        if not image[0].data:
            raise UploadError(400, f"the {FIELD!r} field is empty (0 bytes); choose a photo")
        return Upload(bytes(image[0].data), image[0].filename)


def _boundary(content_type: str) -> bytes:
    """The multipart boundary of a Content-Type header; 415 or 400 when there is none."""
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        shown = kind.decode("latin-1") or "none"
        raise UploadError(415, f"send the photo as multipart/form-data in the field {FIELD!r} "
                               f"(the request's content type is {shown})")
    boundary = options.get(b"boundary", b"")
    if not 1 <= len(boundary) <= 70:
        raise UploadError(400, "the multipart/form-data content type has no valid boundary")
    return boundary


def check_length(content_length: str | None, max_body: int) -> None:
    """Refuse from the Content-Length header alone: empty or over the limit."""
    if content_length is None:
        return  # chunked: counted while streaming
    try:
        length = int(content_length)
    except ValueError:
        raise UploadError(400, f"Content-Length {content_length[:40]!r} is not a number") from None
    if length == 0:
        raise UploadError(400, f"empty request body; send a photo in the multipart field "
                               f"{FIELD!r}")
    if length > max_body:
        raise UploadError(413, f"the request is {megabytes(length)}, and photos may be at most "
                               f"{megabytes(max_body - ENVELOPE_BYTES)}; shrink the photo")


async def _chunks(stream: AsyncIterator[bytes], stall_seconds: float) -> AsyncIterator[bytes]:
    """The body's chunks; 408 when the client sends nothing for ``stall_seconds``."""
    iterator = aiter(stream)
    while True:
        try:
            chunk = await asyncio.wait_for(anext(iterator), stall_seconds)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise UploadError(408, f"the upload stalled (nothing received for {stall_seconds:g} "
                                   "s); try again") from None
        yield chunk


async def read_upload(headers: dict[str, str], stream: AsyncIterator[bytes], *, max_bytes: int,
                      stall_seconds: float = 30.0) -> Upload:
    """The photo in the ``image`` field of a multipart body, at most ``max_bytes`` long.

    ``headers`` are the request's (lower-case names). Raises ``UploadError`` with 400 (empty or
    malformed body, no or several ``image`` fields), 408 (stalled), 413 (too large) or 415 (not
    multipart/form-data).
    """
    max_body = max_bytes + ENVELOPE_BYTES
    check_length(headers.get("content-length"), max_body)
    boundary = _boundary(headers.get("content-type", ""))
    collector = _ImageCollector(max_bytes)
    parser = MultipartParser(boundary, collector.callbacks())
    received = 0
    async for chunk in _chunks(stream, stall_seconds):
        received += len(chunk)
        if received > max_body:
            raise UploadError(413, f"the request is over {megabytes(max_body)}, and photos may be "
                                   f"at most {megabytes(max_bytes)}; shrink the photo")
        try:
            parser.write(chunk)
        except MultipartParseError as err:
            raise UploadError(400, f"malformed multipart body ({err})") from None
    if received == 0:
        raise UploadError(400, f"empty request body; send a photo in the multipart field {FIELD!r}",
                          body_read=True)
    try:
        return collector.upload()
    except UploadError as err:
        err.body_read = True
        raise


def must_close(headers: dict[str, str], max_bytes: int) -> bool:
    """Whether a request refused before its body's end must lose its connection: when the rest
    is of unknown or far too great a length, the server would otherwise go on reading it (and
    dropping it) for as long as the client sends."""
    length = headers.get("content-length", "")
    return not length.isdigit() or int(length) > 2 * (max_bytes + ENVELOPE_BYTES)
