"""The admin token (file, env override, rotation) and bearer-credential parsing."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from aiohttp import web

__all__ = [
    "ADMIN_TOKENS",
    "AdminTokens",
    "bearer",
    "hash_key",
    "new_secret",
    "read_or_create_token",
    "rotate_token",
    "token_path",
]

TOKEN_FILE = "admin.token"


def new_secret(prefix: str) -> str:
    """A `secrets`-grade credential with a recognisable prefix (256 bits of entropy)."""
    return prefix + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """Keys are random 256-bit strings, so a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(key.encode()).hexdigest()


def token_path(state_dir: Path) -> Path:
    return state_dir / TOKEN_FILE


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def read_or_create_token(state_dir: Path) -> tuple[str, bool]:
    """The stored admin token, creating it (0600) on first use; (token, created)."""
    path = token_path(state_dir)
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if token:
        return token, False
    token = new_secret("pc_admin_")
    _write_private(path, token)
    return token, True


def rotate_token(state_dir: Path) -> str:
    token = new_secret("pc_admin_")
    _write_private(token_path(state_dir), token)
    return token


class AdminTokens:
    """Checks a presented admin token; picks up `picloud token --rotate` without a restart."""

    def __init__(self, state_dir: Path, fixed: str | None) -> None:
        self._path = token_path(state_dir)
        self._fixed = fixed
        self._token = fixed or ""
        self._mtime = -1.0

    def current(self) -> str:
        if self._fixed:
            return self._fixed
        try:
            mtime = self._path.stat().st_mtime
        except FileNotFoundError:
            return self._token
        if mtime != self._mtime:
            self._token = self._path.read_text().strip()
            self._mtime = mtime
        return self._token

    def matches(self, presented: str) -> bool:
        expected = self.current()
        return bool(expected) and hmac.compare_digest(presented.encode(), expected.encode())


ADMIN_TOKENS = web.AppKey("admin_tokens", AdminTokens)


def bearer(request: web.Request, *, alt_header: str | None = None) -> str | None:
    """The credential of `alt_header` if sent, else of `Authorization: Bearer X`, if any.

    The dedicated header wins: an Authorization header may be meant for something else
    on the way (a proxy, another service's token) while `alt_header` is only ever ours.
    """
    if alt_header is not None:
        alt = request.headers.get(alt_header, "").strip()
        if alt:
            return alt
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None
