"""Image ids: the Kaggle form ``<12 hex chars of the car>_<angle 01..16>``, validated before use as paths."""

from __future__ import annotations

import re
from collections.abc import Iterable

ID_RE = re.compile(r"^[0-9a-f]{12}_(0[1-9]|1[0-6])$")
N_ANGLES = 16


class BadIdError(ValueError):
    """An image id that does not have the Kaggle form."""


def validate_id(image_id: str, source: str = "") -> str:
    """Return ``image_id`` if it has the Kaggle form, else raise naming ``source``."""
    if not isinstance(image_id, str) or not ID_RE.fullmatch(image_id):
        where = f" in {source}" if source else ""
        raise BadIdError(
            f"malformed image id {image_id!r}{where}: expected 12 lowercase hex characters, "
            "'_' and an angle 01..16 (e.g. 00087a6bd4dc_01)"
        )
    return image_id


def validate_ids(ids: Iterable[str], source: str = "") -> list[str]:
    """Validate every id and reject duplicates."""
    out = [validate_id(i, source) for i in ids]
    seen: set[str] = set()
    for i in out:
        if i in seen:
            raise BadIdError(f"duplicate image id {i!r} in {source or 'id list'}")
        seen.add(i)
    return out


def car_of(image_id: str) -> str:
    """The car part of an id (the 12 hex characters)."""
    return image_id.split("_", 1)[0]


def angle_of(image_id: str) -> int:
    """The turntable angle 1..16 of an id."""
    return int(image_id.rsplit("_", 1)[1])


def id_from_filename(name: str, suffix: str) -> str:
    """Strip ``suffix`` (``.jpg`` or ``_mask.gif``) from a file name and validate the id."""
    if not name.endswith(suffix):
        raise BadIdError(f"file {name!r} does not end with {suffix!r}")
    return validate_id(name[: -len(suffix)], name)
