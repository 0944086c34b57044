"""`picloud deploy|scripts|apps|logs`: a client for the admin API over the LAN."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ApiError", "Client", "register"]

DEFAULT_URL = "http://127.0.0.1:8080"
# Where `picloud serve` under systemd keeps its state (StateDirectory=picloud).
SYSTEM_STATE_DIR = Path("/var/lib/picloud")
_TIMEOUT_S = 30.0


class ApiError(Exception):
    """A failed call, already phrased as the one line the user sees."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the client commands to the `picloud` command."""
    deploy = sub.add_parser("deploy", help="upload a script (a new version if it exists)")
    deploy.add_argument("file", type=Path, help="the script's Python source")
    deploy.add_argument("--id", required=True, help="the script id")
    deploy.add_argument("--app", required=True, help="the app that owns it")
    deploy.add_argument(
        "--public",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="callable without an API key (default: private on create, unchanged on update)",
    )
    deploy.add_argument("--timeout-ms", type=int, help="wall-clock limit per run")
    deploy.add_argument("--memory-mb", type=int, help="memory limit per run")
    deploy.add_argument("--isolation", choices=("warm", "fresh"), help="worker reuse")
    deploy.set_defaults(func=_run(_deploy))
    scripts = sub.add_parser("scripts", help="list scripts")
    scripts.add_argument("--app", help="only this app's scripts")
    scripts.set_defaults(func=_run(_scripts))
    apps = sub.add_parser("apps", help="list apps (or --create one)")
    apps.add_argument("--create", metavar="APP", help="create this app first")
    apps.set_defaults(func=_run(_apps))
    logs = sub.add_parser("logs", help="show one invocation's captured log")
    logs.add_argument("invocation_id")
    logs.set_defaults(func=_run(_logs))


class Client:
    """The admin API at PICLOUD_URL with PICLOUD_TOKEN (or the local admin.token)."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        self.token = token

    @classmethod
    def from_env(cls) -> Client:
        return cls(os.environ.get("PICLOUD_URL") or DEFAULT_URL, _token())

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=_TIMEOUT_S) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise _http_error(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(f"cannot reach the daemon at {self.url}: {reason}") from None
        return json.loads(raw) if raw else None

    def pages(self, path: str, query: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list, following its cursor."""
        cursor: str | None = None
        while True:
            params = {**query, **({"cursor": cursor} if cursor else {})}
            sep = "?" if params else ""
            got = self.call("GET", f"{path}{sep}{urllib.parse.urlencode(params)}")
            yield from got["items"]
            cursor = got.get("cursor")
            if not cursor:
                return


def _token() -> str | None:
    token = os.environ.get("PICLOUD_TOKEN")
    if token:
        return token.strip()
    for state_dir in _state_dirs():
        try:
            return (state_dir / "admin.token").read_text().strip() or None
        except OSError:
            continue
    return None


def _state_dirs() -> list[Path]:
    configured = os.environ.get("PICLOUD_STATE_DIR") or os.environ.get("STATE_DIRECTORY")
    dirs = [Path(configured.split(":")[0])] if configured else []
    return [*dirs, Path(".picloud"), SYSTEM_STATE_DIR]


def _http_error(exc: urllib.error.HTTPError) -> ApiError:
    try:
        error = json.loads(exc.read())["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError, OSError):
        code, message = "", f"HTTP {exc.code} {exc.reason}"
    if exc.code == 401:
        message = "the admin token was refused (set PICLOUD_TOKEN; `picloud token` shows it)"
    return ApiError(f"{exc.code} {code or 'error'}: {message}", exc.code, code)


def _run(command: Any) -> Any:
    """Wrap a command: one line on stderr and exit status 1 for every failure."""

    def run(args: argparse.Namespace) -> int:
        try:
            command(Client.from_env(), args)
        except ApiError as exc:
            sys.stderr.write(f"picloud: {exc}\n")
            return 1
        return 0

    return run


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def _deploy(client: Client, args: argparse.Namespace) -> None:
    try:
        source = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ApiError(f"cannot read {args.file}: {exc}") from None
    limits = {
        k: v
        for k, v in {
            "public": args.public,
            "timeout_ms": args.timeout_ms,
            "memory_mb": args.memory_mb,
            "isolation": args.isolation,
        }.items()
        if v is not None
    }
    body = {"id": args.id, "app": args.app, "source": source, **limits}
    try:
        script = client.call("POST", "/api/v1/admin/scripts", body)
    except ApiError as exc:
        if exc.status != 409:
            raise _located(exc, args.file) from None
        script = _update(client, args, source, limits)
    visibility = "public" if script["public"] else "private"
    _out(f"deployed {script['id']} version {script['version']} ({script['app']}, {visibility})")


def _update(client: Client, args: argparse.Namespace, source: str, limits: dict[str, Any]) -> Any:
    path = f"/api/v1/admin/scripts/{urllib.parse.quote(args.id, safe='')}"
    current = client.call("GET", path)
    if current["app"] != args.app:
        raise ApiError(f"conflict: script '{args.id}' belongs to app '{current['app']}'")
    try:
        return client.call("PUT", path, {"source": source, **limits})
    except ApiError as exc:
        raise _located(exc, args.file) from None


def _located(exc: ApiError, file: Path) -> ApiError:
    """A compile error names the file, as a compiler would: `hello.py: line 3: ...`."""
    text = str(exc).removeprefix("400 bad_request: ")
    if exc.code == "bad_request" and text.startswith("line "):
        return ApiError(f"{file}: {text}", exc.status, exc.code)
    return exc


def _scripts(client: Client, args: argparse.Namespace) -> None:
    query = {"app": args.app} if args.app else {}
    rows = [
        (s["id"], s["app"], str(s["version"]), "public" if s["public"] else "private")
        for s in client.pages("/api/v1/admin/scripts", query)
    ]
    _table(("ID", "APP", "VERSION", "ACCESS"), rows)


def _apps(client: Client, args: argparse.Namespace) -> None:
    if args.create:
        client.call("POST", "/api/v1/admin/apps", {"id": args.create})
    rows = [(a["id"], str(a.get("scripts", ""))) for a in client.pages("/api/v1/admin/apps", {})]
    _table(("ID", "SCRIPTS"), rows)


def _logs(client: Client, args: argparse.Namespace) -> None:
    inv_id = urllib.parse.quote(args.invocation_id, safe="")
    inv = client.call("GET", f"/api/v1/admin/invocations/{inv_id}")
    log = inv.get("log") or ""
    sys.stdout.write(log if log.endswith("\n") or not log else log + "\n")
    if inv.get("error"):
        sys.stderr.write(f"picloud: {inv.get('status', 'error')}: {inv['error']}\n")


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        _out("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
