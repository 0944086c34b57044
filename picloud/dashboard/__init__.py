"""The dashboard's shipped files: loaded once, gzipped once, named by one content hash."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import mimetypes
from functools import cache
from pathlib import Path

__all__ = ["STATIC_DIR", "Asset", "Bundle", "bundle"]

STATIC_DIR = Path(__file__).parent / "static"
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".png": "image/png",
}


@dataclasses.dataclass(frozen=True)
class Asset:
    """One file: its bytes, their gzip encoding (when smaller) and a strong ETag."""

    body: bytes
    gzipped: bytes | None
    etag: str
    content_type: str


@dataclasses.dataclass(frozen=True)
class Bundle:
    """Every file under static/, keyed by its relative posix path, plus the bundle's version."""

    assets: dict[str, Asset]
    version: str


@cache
def bundle(root: Path = STATIC_DIR) -> Bundle:
    """Read the static tree once; `version` changes whenever any file does."""
    assets: dict[str, Asset] = {}
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        body = path.read_bytes()
        assets[rel] = _asset(rel, body)
        digest.update(rel.encode() + b"\0" + body + b"\0")
    version = digest.hexdigest()[:12]
    index = assets.get("index.html")
    if index is not None:
        # Every asset URL carries the bundle version, so assets can be cached forever and
        # relative ES-module imports inherit the versioned prefix without a build step.
        prefix = f"/assets/{version}".encode()
        assets["index.html"] = _asset("index.html", index.body.replace(b"{{ASSETS}}", prefix))
    return Bundle(assets, version)


def _asset(rel: str, body: bytes) -> Asset:
    kind = _TYPES.get(Path(rel).suffix) or mimetypes.guess_type(rel)[0]
    kind = kind or "application/octet-stream"
    # mtime=0 keeps the gzip bytes (and so any cache keyed on them) reproducible.
    packed = gzip.compress(body, compresslevel=9, mtime=0)
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    return Asset(body, packed if len(packed) < len(body) else None, etag, kind)
