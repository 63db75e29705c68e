"""A person's photos in: any JPEG or PNG, from a file or from bytes, as an upright RGB array.

One decoder serves the ``cutouts`` rule, ``carvana-cutout`` and ``carvana-serve``. It reads the
size from the header first and refuses a photo above ``max_pixels`` before decoding it (a
decompression bomb costs nothing), turns the photo upright by its EXIF orientation and makes
grayscale, palette, CMYK, 16-bit and alpha photos plain 8-bit RGB. Every failure is a
``DataError`` naming the photo and saying what to do.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from carvana.io import DataError

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
FORMATS = ("JPEG", "PNG", "MPO")  # MPO: a JPEG with extra frames, as some phones write
DEFAULT_MAX_PIXELS = 40_000_000
MIN_SIDE = 8


def _to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB from any mode Pillow opens (16-bit grayscale scaled, alpha dropped)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(im, dtype=np.uint32 if im.mode == "I" else np.uint16)
        top = 65535 if im.mode != "I" or wide.max(initial=0) > 255 else 255
        gray = (wide.astype(np.float64) * (255.0 / top)).round().clip(0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, im).convert("RGB")
    return im.convert("RGB")


class NotAPhoto(DataError):
    """Bytes that are not a JPEG or PNG image at all."""


class PhotoTooLarge(DataError):
    """A photo with more pixels than allowed (read from its header), or a decompression bomb."""


def _open(data: bytes, *, name: str, max_pixels: int | None) -> Image.Image:
    """The photo opened lazily, after every check its header allows: not empty, a JPEG or PNG
    (NotAPhoto), at most ``max_pixels`` (PhotoTooLarge), at least 8 x 8 (DataError)."""
    if not data:
        raise NotAPhoto(f"{name}: empty file (0 bytes); give a JPEG or PNG photo")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # max_pixels below
            im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise NotAPhoto(f"{name}: not a readable JPEG or PNG photo; give a JPEG or PNG") from None
    except Image.DecompressionBombError as err:
        raise PhotoTooLarge(f"{name}: {err}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise DataError(f"{name}: not a readable JPEG or PNG photo ({err}); re-save it as JPEG "
                        "or PNG") from None
    width, height = im.size
    if im.format not in FORMATS:
        raise NotAPhoto(f"{name}: a {im.format} image; give a JPEG or PNG photo")
    if max_pixels is not None and width * height > max_pixels:
        raise PhotoTooLarge(f"{name}: {width}x{height} is {width * height / 1e6:.1f} megapixels, "
                            f"more than the {max_pixels / 1e6:g} allowed; shrink it first")
    if min(width, height) < MIN_SIDE:
        raise DataError(f"{name}: {width}x{height} is too small to hold a car (at least "
                        f"{MIN_SIDE}x{MIN_SIDE} pixels)")
    return im


def photo_header(data: bytes, *, name: str, max_pixels: int | None = DEFAULT_MAX_PIXELS
                 ) -> tuple[str, int, int]:
    """(format, width, height) of a photo, from its header alone (no pixel decoded): the
    checks of ``decode_photo`` that need no decoding, for refusing a photo early."""
    with _open(data, name=name, max_pixels=max_pixels) as im:
        return str(im.format), im.size[0], im.size[1]


def decode_photo(data: bytes, *, name: str, max_pixels: int | None = DEFAULT_MAX_PIXELS
                 ) -> np.ndarray:
    """An (H, W, 3) uint8 RGB photo from the bytes of a JPEG or PNG file.

    ``name`` only labels errors. The header is checked first (``photo_header``'s checks), so a
    photo of more than ``max_pixels`` pixels (None: no limit) costs no decoding.
    """
    with _open(data, name=name, max_pixels=max_pixels) as im:
        try:
            im.load()
            rgb = _to_rgb(ImageOps.exif_transpose(im))
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as err:
            raise DataError(f"{name}: not a readable JPEG or PNG photo ({err}); re-save it as "
                            "JPEG or PNG") from None
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def read_photo(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """An (H, W, 3) uint8 RGB photo from a file (see ``decode_photo``); DataError naming it."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: photo is missing") from None
    except IsADirectoryError:
        raise DataError(f"{path}: a folder, not a photo") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read the photo ({err.strerror})") from None
    return decode_photo(data, name=str(path), max_pixels=max_pixels)


def output_stems(paths: Iterable[str | Path]) -> dict[str, str]:
    """Stem -> path of photos whose cut-outs (``<stem>.png``, ``<stem>_mask.png``) share one
    folder, in the given order. Any file name works (spaces, parentheses, unicode, several
    dots); a name with control characters, or two photos that would write one output file
    (``a.jpg`` and ``a.png``, or ``a_mask.jpg`` beside ``a.jpg``), is a DataError naming both."""
    stems: dict[str, str] = {}
    writes: dict[str, str] = {}  # output file name -> the photo that writes it
    for path in map(str, paths):
        stem = Path(path).stem
        if not stem or any(ord(c) < 32 or ord(c) == 127 for c in stem):
            raise DataError(f"{path!r}: the name has no stem or holds control characters; "
                            "rename the photo")
        for out in (f"{stem}.png", f"{stem}_mask.png"):
            if out in writes:
                raise DataError(f"{path} and {writes[out]} would both write {out}; rename one "
                                "of them or cut them out into different folders")
            writes[out] = path
        stems[stem] = path
    return stems
