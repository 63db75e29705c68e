"""Exported bundles: a folder that runs a trained chain with no config and no ``results/``.

``manifest.json`` holds the chain (``carvana.chain.Chain``: models, sizes, tile geometry,
ensemble weights, threshold, flips), each model's ``params_hash``, the sha256 and size of every
file, the package version and the backend the workflow chose. ``read_bundle`` checks all of it:
a wrong, missing or corrupt file is a DataError naming it. Light: no torch.
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path
from typing import Any

from carvana.chain import Chain
from carvana.io import DataError, read_json, write_json

MANIFEST = "manifest.json"
BUNDLE_FORMAT = "carvana-bundle/1"


def file_sha256(path: str | Path) -> str:
    """sha256 (hex) of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_version() -> str:
    """The installed carvana-pipeline version ("unknown" when run from a bare source tree)."""
    try:
        return metadata.version("carvana-pipeline")
    except metadata.PackageNotFoundError:
        return "unknown"


def write_manifest(folder: str | Path, chain: Chain) -> dict[str, Any]:
    """Write ``manifest.json`` for ``chain`` into ``folder``, hashing every file its models
    name (each must already be there); returns what it wrote."""
    folder = Path(folder)
    files: dict[str, dict[str, Any]] = {}
    for entry in chain.models.values():
        for rel in (entry.weights, entry.graph):
            if rel:
                path = folder / rel
                files[rel] = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
    manifest = {"format": BUNDLE_FORMAT, "package_version": package_version(),
                "chain": chain.to_json(), "files": dict(sorted(files.items()))}
    write_json(folder / MANIFEST, manifest)
    return manifest


def _safe_relative(folder: Path, rel: str, manifest: Path) -> Path:
    """``folder / rel`` for a plain relative file name; DataError for anything that escapes."""
    parts = Path(rel).parts
    if not rel or Path(rel).is_absolute() or ".." in parts or len(parts) != 1:
        raise DataError(f"{manifest}: file name {rel!r} is not a plain file of the bundle")
    return folder / rel


def read_bundle(folder: str | Path) -> Chain:
    """The chain of an exported bundle, after checking the manifest and every file's hash."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise DataError(f"{folder}: not an exported bundle (no {MANIFEST}); write one with "
                        "`snakemake --cores all export`")
    manifest = read_json(path)  # DataError naming the file when it is not JSON
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise DataError(f"{path}: not a {BUNDLE_FORMAT} manifest; export the bundle again")
    chain = Chain.from_json(manifest.get("chain"), str(path))
    listed = manifest.get("files") or {}
    for entry in chain.models.values():
        for rel in (entry.weights, entry.graph):
            if rel and rel not in listed:
                raise DataError(f"{path}: model {entry.name!r} names {rel}, which the manifest "
                                "does not hash")
    for rel, info in listed.items():
        file = _safe_relative(folder, rel, path)
        if not file.is_file():
            raise DataError(f"{file}: missing from the bundle (listed in {path}); copy the "
                            "whole bundle folder, or export it again")
        if file.stat().st_size != info.get("bytes") or file_sha256(file) != info.get("sha256"):
            raise DataError(f"{file}: does not match its sha256 in {path} (corrupt or "
                            "replaced); export the bundle again")
    return chain
