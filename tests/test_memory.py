"""The daemon's and the zygote's idle footprint: what they load, and what they leave out.

The figures themselves are `make bench`'s (bench/measure.py memory_breakdown); these
tests pin the choices behind them (docs/performance.md, "Memory"), each of which
would quietly undo a saving if reverted, and check a lean daemon still serves.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import mimetypes
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from picloud import footprint
from tests.daemon_process import ServeProcess, serve

TOKEN = "pc_admin_memory-test-0123456789abcdef"
# Loaded by a daemon that is only serving, they cost resident memory for nothing.
NOT_AT_IDLE = (
    "aiohttp.client",
    "aiohttp.connector",
    "importlib.metadata",
    "prometheus_client",
    "tarfile",
)


def _python(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


def test_the_daemons_imports_leave_out_the_client_and_the_scrape_only_modules() -> None:
    code = f"""
        import json, sys
        from picloud import footprint
        footprint.prepare()
        import picloud.app, picloud.cli, picloud.daemon
        idle = [m for m in {NOT_AT_IDLE!r} if m in sys.modules]
        import mimetypes
        from aiohttp.web_fileresponse import CONTENT_TYPES
        types = (mimetypes.knownfiles, len(CONTENT_TYPES.types_map[True]))
        import aiohttp
        from aiohttp import web
        session = aiohttp.ClientSession  # the first other name runs the package body
        print(json.dumps({{
            "idle": idle,
            "types": types,
            "web": web is sys.modules["aiohttp.web"],
            "client": "aiohttp.client" in sys.modules,
            "session": session.__module__,
            "version": aiohttp.__version__,
        }}))
    """
    got = json.loads(_python(code))
    assert got["idle"] == []
    # Python's own table of content types (aiohttp adds a few), not the host's /etc/mime.types
    mimetypes.init()
    files, known = got["types"]
    assert files == []
    assert len(mimetypes.MimeTypes().types_map[True]) <= known < 200
    assert got["web"] is True
    assert got["client"] is True
    assert got["session"] == "aiohttp.client"
    import aiohttp

    assert got["version"] == aiohttp.__version__


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package whose body counts its runs in `runs.txt` and imports a submodule."""
    pkg = tmp_path / "fakepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        '__version__ = "1.2.3"\n'
        "import pathlib\n"
        "_runs = pathlib.Path(__file__).with_name('runs.txt')\n"
        "_runs.write_text(str(int(_runs.read_text() or 0) + 1))\n"
        "from .sub import helper\n"
        "NAME = 'from the body'\n"
    )
    (pkg / "runs.txt").write_text("")
    (pkg / "sub.py").write_text("from . import __version__\nhelper = 'v' + __version__\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield pkg
    for name in [m for m in sys.modules if m == "fakepkg" or m.startswith("fakepkg.")]:
        del sys.modules[name]


def test_a_deferred_package_runs_its_body_once_and_only_for_other_names(fake_package: Path) -> None:
    runs = fake_package / "runs.txt"
    assert footprint.defer_aiohttp_body("fakepkg") is True
    assert footprint.defer_aiohttp_body("fakepkg") is False  # already there
    from fakepkg import sub  # type: ignore[import-not-found]

    assert sub.helper == "v1.2.3"  # submodules see the version without the body
    assert runs.read_text() == ""
    import fakepkg

    assert fakepkg.NAME == "from the body"
    assert fakepkg.helper == "v1.2.3"
    assert runs.read_text() == "1"
    with pytest.raises(AttributeError):
        _ = fakepkg.nothing_like_this
    assert runs.read_text() == "1"


def test_a_package_without_a_readable_version_is_imported_as_usual(fake_package: Path) -> None:
    init = fake_package / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "1.2.3"', "__version__ = VERSION"))
    assert footprint.defer_aiohttp_body("fakepkg") is False
    assert "fakepkg" not in sys.modules


def _get(proc: ServeProcess, path: str, token: str | None = TOKEN, **kw: Any) -> tuple[int, bytes]:
    req = urllib.request.Request(f"{proc.url}{path}", **kw)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _post(proc: ServeProcess, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    status, raw = _get(proc, path, data=json.dumps(body).encode(), method="POST")
    return status, json.loads(raw)


HASHING = """
import hashlib, hmac
def handle(ctx):
    return {"sha": hashlib.sha256(b"pi").hexdigest()[:8],
            "mac": hmac.new(b"k", b"m", "sha256").hexdigest()[:8]}
"""


def _counted(proc: ServeProcess, line: bytes) -> bool:
    """Does a scrape show `line` within a few seconds? (records are written in batches)"""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, body = _get(proc, "/metrics")
        assert status == 200, body
        if line in body:
            return True
        time.sleep(0.1)
    return False


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_a_lean_daemon_serves_everything_and_its_zygote_never_maps_libseccomp(
    tmp_path: Path,
) -> None:
    with serve(tmp_path, PICLOUD_ADMIN_TOKEN=TOKEN) as proc:
        assert _post(proc, "/api/v1/admin/apps", {"id": "lean"})[0] == 201
        script = {"id": "hash", "app": "lean", "source": HASHING, "public": True}
        assert _post(proc, "/api/v1/admin/scripts", script)[0] == 201
        status, body = _get(proc, "/api/v1/execute/hash", token=None)
        assert status == 200, body
        want = {
            "sha": hashlib.sha256(b"pi").hexdigest()[:8],
            "mac": hmac.new(b"k", b"m", "sha256").hexdigest()[:8],
        }
        assert json.loads(body) == want
        assert _counted(proc, b'picloud_invocations_total{script="hash",status="ok"')
        assert _get(proc, "/", token=None)[0] == 200  # the dashboard
        status, body = _get(proc, "/api/v1/nothing-here")
        assert status == 404
        assert json.loads(body)["error"]["code"] == "not_found"
        status, body = _get(proc, "/api/v1/admin/system")
        sandbox = json.loads(body)["sandbox"]
        assert "libstdc++" not in _maps(proc.proc.pid)  # frozenlist's C++ build stays out
        zygotes = psutil.Process(proc.proc.pid).children()
        assert len(zygotes) == 1
        assert "libseccomp" not in _maps(zygotes[0].pid)
        if sandbox.get("seccomp") is not True:
            pytest.skip(f"no seccomp here ({sandbox.get('seccomp_error')}): only half checked")
        proc.stop()


def _zygote(proc: ServeProcess) -> psutil.Process:
    zygotes = psutil.Process(proc.proc.pid).children()
    assert len(zygotes) == 1
    return zygotes[0]


def _eventually(check: Any, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def _restarted(proc: ServeProcess, old: int, lib: str) -> bool:
    """Is there a new zygote, and does it map `lib`?"""
    try:
        children = psutil.Process(proc.proc.pid).children()
        return any(z.pid != old and lib in _maps(z.pid) for z in children)
    except (FileNotFoundError, ProcessLookupError, psutil.Error):
        return False


def _all_children_map(parent: psutil.Process, lib: str) -> bool:
    try:
        return all(lib in _maps(child.pid) for child in parent.children())
    except (FileNotFoundError, ProcessLookupError):  # a spare replaced meanwhile
        return False


PLAIN = """
def handle(ctx):
    return {"ok": True}
"""

TOKENS = """
import secrets
def handle(ctx):
    return {"token": len(secrets.token_hex(8))}
"""


def test_the_zygote_loads_openssl_only_once_a_script_uses_it(tmp_path: Path) -> None:
    with serve(tmp_path, PICLOUD_ADMIN_TOKEN=TOKEN, PICLOUD_LOG_LEVEL="info") as proc:
        zygote = _zygote(proc)
        assert _post(proc, "/api/v1/admin/apps", {"id": "one"})[0] == 201
        assert _post(proc, "/api/v1/admin/apps", {"id": "two"})[0] == 201
        for sid, app, source in (
            ("plain", "one", PLAIN),
            ("hash", "one", HASHING),
            ("tokens", "two", TOKENS),
        ):
            body = {"id": sid, "app": app, "source": source, "public": True}
            assert _post(proc, "/api/v1/admin/scripts", body)[0] == 201
        assert _get(proc, "/api/v1/execute/plain", token=None)[0] == 200
        assert "libcrypto" not in _maps(zygote.pid)  # ~3.4 MiB no script has asked for
        status, body = _get(proc, "/api/v1/execute/hash", token=None)
        assert status == 200, body
        assert json.loads(body)["sha"] == hashlib.sha256(b"pi").hexdigest()[:8]
        # The worker reported the import; the zygote loads it for every later fork.
        assert _eventually(lambda: "libcrypto" in _maps(zygote.pid))
        assert "a script imported hashlib, hmac; the zygote loads it too" in proc.stderr
        # Another app's first worker is forked from the zygote as it is now.
        status, body = _get(proc, "/api/v1/execute/tokens", token=None)
        assert status == 200, body
        assert json.loads(body) == {"token": 16}
        # Spares forked before the preload were replaced: every child has it now.
        assert _eventually(lambda: _all_children_map(zygote, "libcrypto"))
        # A zygote restarted after a crash is told what the old one had learned.
        zygote.kill()
        assert _eventually(lambda: _get(proc, "/healthz", token=None)[0] == 200)
        assert _eventually(lambda: _restarted(proc, zygote.pid, "libcrypto"))
        proc.stop()
    # Each module learned once, by the first worker that imported it.
    assert proc.stderr.count("the zygote loads it too") == 2
    assert "a script imported secrets; the zygote loads it too" in proc.stderr


def test_only_listed_modules_are_ever_preloaded() -> None:
    from picloud.executor.preload import LEARNABLE, learnable

    assert learnable(["hashlib", "os", "subprocess", "antigravity", 7, None]) == ["hashlib"]
    assert learnable(["secrets", "hmac"], known={"hmac"}) == ["secrets"]
    assert learnable("hashlib") == []  # a frame may say anything
    assert learnable({"x": "hashlib"}) == []
    assert learnable(sorted(LEARNABLE)) == sorted(LEARNABLE)


def test_the_health_probe_primes_the_cpu_meter_without_psutil() -> None:
    code = """
        import sys
        from picloud.ops import component, health
        health.prime_cpu()
        cpu = health._cpu()
        print("psutil" in sys.modules, len(cpu["percent_per_core"]) == cpu["count"])
    """
    assert _python(code) == "False True"


def test_cpu_busy_share_is_counted_as_psutil_counts_it(tmp_path: Path) -> None:
    from picloud.ops import board
    from picloud.ops.health import _busy_percent

    stat = tmp_path / "proc" / "stat"
    stat.parent.mkdir()
    stat.write_text(
        "cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 100 5 20 800 50 1 2 3 30 0\ncpu1 7 0 3 90\nintr 1 2 3\n"
    )
    before = board.cpu_times(tmp_path)
    assert before == [(100, 5, 20, 800, 50, 1, 2, 3, 30, 0), (7, 0, 3, 90, 0, 0, 0, 0, 0, 0)]
    after = (160, 5, 30, 850, 70, 1, 2, 3, 60, 0)
    # 170 ticks, less guest 30 (inside user already): 140; less idle 50, iowait 20: 70 busy
    assert _busy_percent(before[0], after) == 50.0
    assert _busy_percent(after, after) == 0.0
    assert _busy_percent(after, before[0]) == 0.0  # counters that went back count as 0
    stat.write_text("intr 1 2 3\n")
    assert board.cpu_times(tmp_path) is None
