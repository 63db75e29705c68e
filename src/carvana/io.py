"""Reading and writing the Kaggle formats and our compact probability maps, strictly."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from PIL import Image, ImageFile

from carvana.ids import validate_id

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated JPEG must raise, never come back half grey
_UMASK = os.umask(0)
os.umask(_UMASK)


def image_path(data_dir: str | Path, split: str, image_id: str) -> Path:
    """Path of a Kaggle image; the id is validated before it becomes a path."""
    return Path(data_dir) / split / f"{validate_id(image_id)}.jpg"


def mask_path(data_dir: str | Path, image_id: str) -> Path:
    """Path of a Kaggle train mask."""
    return Path(data_dir) / "train_masks" / f"{validate_id(image_id)}_mask.gif"


class DataError(ValueError):
    """A data file that is missing, unreadable or not what the Kaggle layout says it is."""


JPEG_MAGIC = b"\xff\xd8\xff"  # SOI marker and the first byte of the next marker
# cv2's reduced-scale bits (the *_GRAYSCALE_n constants hold only them), or'ed with COLOR_RGB
_REDUCED = {1: 0, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
            8: cv2.IMREAD_REDUCED_GRAYSCALE_8}
_MODES = {"L": "grayscale", "CMYK": "CMYK", "YCbCr": "YCbCr", "RGBA": "RGBA", "P": "palette"}


def _jpeg_header(path: str | Path, head: bytes, im: Image.Image | None) -> tuple[int, int]:
    """(width, height) of an opened image; DataError unless it is a 3-channel RGB JPEG.

    ``head`` is the file's first bytes; ``im`` None (PIL could not open it) fails the same way.
    """
    if im is None or not head.startswith(JPEG_MAGIC) or im.format != "JPEG":
        raise DataError(
            f"{path}: not a JPEG (starts with {head[:4]!r}, a JPEG starts with {JPEG_MAGIC!r}); "
            "replace it with the original Kaggle file or convert it to an RGB JPEG"
        )
    if im.mode != "RGB":
        kind = _MODES.get(im.mode, im.mode)
        raise DataError(
            f"{path}: a {kind} JPEG (mode {im.mode}), but images must be 3-channel RGB; "
            "replace it with the original Kaggle file or convert it to RGB"
        )
    return im.size


def _reduction(size: tuple[int, int], min_size: tuple[int, int] | None) -> int:
    """libjpeg's scale 1, 2, 4 or 8: the largest that keeps the image at least ``min_size``.

    The same choice as PIL's ``Image.draft``.
    """
    if min_size is None:
        return 1
    room = min(size[0] // max(1, min_size[0]), size[1] // max(1, min_size[1]))
    return next(s for s in (8, 4, 2, 1) if room >= s)


def read_image(path: str | Path, min_size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode an RGB JPEG into an (H, W, 3) uint8 array; raise DataError naming the file if it fails.

    The file must start with the JPEG magic bytes and hold 3 channels: a PNG renamed ``.jpg``, a
    grayscale or a CMYK JPEG is an error. ``min_size`` (width, height) lets libjpeg decode at a
    reduced scale (1/2, 1/4, 1/8) while staying at least that large: much faster when a
    low-resolution model only needs a thumbnail. The pixels are libjpeg-turbo's through cv2,
    identical to PIL's (``draft`` included) and about twice as fast (benchmarks/cpu_fastpaths.py).
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: image file is missing") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read image ({err})") from None
    try:
        with Image.open(BytesIO(data)) as im:
            width, height = _jpeg_header(path, data[:4], im)
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError) as err:
        if not data.startswith(JPEG_MAGIC):
            _jpeg_header(path, data[:4], None)
        raise DataError(f"{path}: cannot decode image ({err}); replace it with the original file"
                        ) from None
    scale = _reduction((width, height), min_size)
    # RGB straight from libjpeg; EXIF orientation ignored, as PIL does
    flags = _REDUCED[scale] | cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    expected = (-(-height // scale), -(-width // scale), 3)
    if image is None or image.shape != expected:
        raise DataError(f"{path}: cannot decode image (truncated or corrupt JPEG); "
                        "replace it with the original file")
    return image


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an RGB JPEG from its header, without decoding it.

    DataError naming the file when it is missing, not a JPEG, or not 3-channel RGB.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            f.seek(0)
            try:
                im = Image.open(f)
            except (OSError, SyntaxError, ValueError) as err:
                if not head.startswith(JPEG_MAGIC):
                    _jpeg_header(path, head, None)
                raise DataError(f"{path}: cannot read image header ({err}); "
                                "replace it with the original file") from None
            with im:
                return _jpeg_header(path, head, im)
    except FileNotFoundError:
        raise DataError(f"{path}: image file is missing") from None
    except DataError:
        raise
    except OSError as err:
        raise DataError(f"{path}: cannot read image ({err})") from None


def read_mask(path: str | Path) -> np.ndarray:
    """Read a Kaggle GIF (or PNG) mask into an (H, W) uint8 {0,1} array.

    Values {0,1} and {0,255} are accepted; anything else raises DataError naming the file.
    The values are checked with a maximum (and, for {0,255} only, two counting passes), not
    ``np.unique``: its sort cost as much as the GIF decode (benchmarks/cpu_fastpaths.py).
    """
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L") if im.mode not in ("P", "L", "1") else im)
    except FileNotFoundError:
        raise DataError(f"{path}: mask file is missing") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: cannot decode mask ({err})") from None
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    top = int(arr.max()) if arr.size else 0
    if top <= 1:
        return arr.astype(np.uint8)
    if top == 255 and np.count_nonzero(arr) == np.count_nonzero(arr == 255):
        return (arr > 0).astype(np.uint8)
    shown = ", ".join(map(str, np.unique(arr)[:8].tolist()))
    raise DataError(f"{path}: mask values must be {{0,1}} or {{0,255}}, found {shown}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jpeg(path: str | Path, image: np.ndarray, quality: int = 92) -> None:
    """Write an (H, W, 3) uint8 RGB array as a baseline JPEG."""
    with atomic_path(path) as tmp:
        Image.fromarray(image, "RGB").save(tmp, format="JPEG", quality=quality)


def write_mask_gif(path: str | Path, mask: np.ndarray) -> None:
    """Write a {0,1} mask as Kaggle does: a palette GIF whose pixel values are 0 and 1."""
    im = Image.fromarray((mask != 0).astype(np.uint8), "P")
    im.putpalette([0, 0, 0, 255, 255, 255])
    with atomic_path(path) as tmp:
        im.save(tmp, format="GIF")


# Snapping (opt-in, ``snap=True``): 8-bit levels 1..SNAP_LOW-1 become 0 and SNAP_HIGH+1..254
# become 255. A decision ``level / 255 >= t`` on the map as stored cannot change for any t whose
# level (carvana.rle.threshold_level) is in [SNAP_LOW, SNAP_HIGH + 1], i.e. every t in
# [0.05, 0.95], the grid of carvana.evaluation (tests/test_predict.py checks all 256 levels).
# It is off by default (docs/throughput.md): on real photos the carvana-cpu models' maps
# barely reach those levels (0.0 % smaller, 450 KB a full-size map either way), and a map that
# is averaged (ensemble) or resized (low-res) before thresholding, or feeds the depth channel,
# can change decisions (4,897 pixel-thresholds over 48 real photos for an ensemble).
SNAP_LOW = 13
SNAP_HIGH = 242


def prob_levels(prob: np.ndarray, snap: bool = False) -> np.ndarray:
    """A probability map in [0,1] as uint8 levels round(255 p); ``snap``: see SNAP_LOW."""
    q = np.clip(np.rint(np.asarray(prob, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
    if snap:
        q[q < SNAP_LOW] = 0
        q[q > SNAP_HIGH] = 255
    return q


def write_prob(path: str | Path, prob: np.ndarray, snap: bool = False) -> None:
    """Store a probability map in [0,1] compactly as an 8-bit grey PNG (value = round(255 p);
    ``snap`` moves near-0/near-1 levels to 0/255, see SNAP_LOW)."""
    with atomic_path(path) as tmp:
        Image.fromarray(prob_levels(prob, snap), "L").save(tmp, format="PNG", compress_level=1)


def read_prob(path: str | Path) -> np.ndarray:
    """Read a probability PNG back into float32 in [0,1]."""
    try:
        with Image.open(path) as im:
            return np.asarray(im, dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise DataError(f"{path}: probability map is missing") from None
    except (OSError, SyntaxError) as err:
        raise DataError(f"{path}: cannot decode probability map ({err})") from None


def resize_prob(prob: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A probability map resized (bilinear) to (width, height); unchanged if it has that size."""
    if prob.shape[::-1] != size:
        prob = cv2.resize(prob, size, interpolation=cv2.INTER_LINEAR)
    return prob


def full_size_prob(pred_dir: str | Path, image_id: str, size: tuple[int, int]) -> np.ndarray:
    """A stored probability map resized (bilinear) to the full image size (width, height)."""
    return resize_prob(read_prob(Path(pred_dir) / f"{image_id}.png"), size)


#: Training labels (pseudo-labels): 0 background, 1 car, IGNORE left out of the loss.
IGNORE = 2
_STORED = np.array([0, 255, 128], np.uint8)  # label -> PNG grey level


def write_labels(path: str | Path, labels: np.ndarray) -> None:
    """Store labels (0, 1, IGNORE) as a grey PNG of 0, 255 and 128."""
    with atomic_path(path) as tmp:
        Image.fromarray(_STORED[labels], "L").save(tmp, format="PNG", compress_level=1)


def read_labels(path: str | Path) -> np.ndarray:
    """Labels (0, 1, IGNORE) from a label PNG; any other grey level is an error."""
    try:
        with Image.open(path) as im:
            grey = np.asarray(im.convert("L"))
    except FileNotFoundError:
        raise DataError(f"{path}: pseudo-label file is missing") from None
    except (OSError, SyntaxError) as err:
        raise DataError(f"{path}: cannot decode pseudo-labels ({err})") from None
    labels = np.full(grey.shape, 255, np.uint8)
    for value, level in enumerate(_STORED):
        labels[grey == level] = value
    if (labels == 255).any():
        raise DataError(f"{path}: grey levels other than 0, 128 and 255: not a label file")
    return labels


def write_frame(frame: pd.DataFrame, path: str | Path, float_format: str | None = None) -> None:
    """Write a DataFrame as CSV, atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format=float_format)


def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON object; DataError naming the file if it is missing or not a JSON object."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file is missing") from None
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: cannot read JSON ({err})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """A small JSON file, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")



def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a {0,1} mask to (width, height) by area averaging, then threshold at one half."""
    if mask.shape[::-1] == size:
        return mask
    area = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    return (area >= 0.5).astype(np.uint8)
