"""The systemd integration: the unit files, and `picloud serve` talking to a real notify socket.

No mocks: the daemon runs as a subprocess and sends its datagrams to an AF_UNIX
socket bound here, exactly as it would to systemd.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
UNITS = ROOT / "systemd"
EXEC_START = "/opt/picloud/venv/bin/picloud"
TOKEN = "pc_admin_systemd-test-0123456789"

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


# ---- the unit files


def _unit(name: str = "picloud.service") -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_unit_has_what_the_appliance_needs() -> None:
    unit = _unit()
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "Restart": "always",
        "StartLimitIntervalSec": "0",
        "OOMPolicy": "continue",
        "StateDirectory": "picloud",
        "ConfigurationDirectory": "picloud",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "KillMode": "control-group",
    }
    assert {k: unit.get(k, [""])[0] for k in expected} == expected
    assert int(unit["WatchdogSec"][0]) > 0
    assert unit["ExecStart"] == [f"{EXEC_START} serve"]
    allowed = unit["SystemCallFilter"][0].split()
    assert {"@system-service", "seccomp", "landlock_restrict_self"} <= set(allowed)
    assert "@resources" not in unit["SystemCallFilter"][1]  # setpriority/sched_* for scripts
    assert "picloud" in (UNITS / "picloud.sysusers").read_text().split()


@needs_analyze
def test_units_verify_without_a_single_warning(tmp_path: Path) -> None:
    stub = tmp_path / "picloud"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    for name in ("picloud.service", "picloud.socket", "picloud-firstboot.service"):
        text = (UNITS / name).read_text().replace(EXEC_START, str(stub))
        text = text.replace("/opt/picloud/lib/firstboot.sh", str(stub))
        (tmp_path / name).write_text(text)
    names = ["picloud.service", "picloud.socket", "picloud-firstboot.service"]
    proc = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / n) for n in names)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # verify exits 0 on unknown keys and bad values: any output at all is a failure.
    assert (proc.returncode, proc.stderr, proc.stdout) == (0, "", "")


@needs_analyze
def test_exposure_score_is_at_most_2_5(tmp_path: Path) -> None:
    system = tmp_path / "etc/systemd/system"
    system.mkdir(parents=True)
    for name in ("picloud.service", "picloud.socket"):
        shutil.copy(UNITS / name, system / name)
    stub = tmp_path / EXEC_START.lstrip("/")
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", f"--root={tmp_path}", "picloud.service"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for picloud.service: ([\d.]+)", proc.stdout)
    assert found, proc.stdout + proc.stderr
    assert float(found.group(1)) <= 2.5, proc.stdout


def test_sysusers_creates_the_user_offline(tmp_path: Path) -> None:
    if shutil.which("systemd-sysusers") is None:
        pytest.skip("systemd-sysusers is not installed")
    (tmp_path / "etc").mkdir()
    for _ in range(2):  # idempotent
        subprocess.run(
            ["systemd-sysusers", f"--root={tmp_path}", str(UNITS / "picloud.sysusers")],
            check=True,
            capture_output=True,
            timeout=30,
        )
    users = [line.split(":") for line in (tmp_path / "etc/passwd").read_text().splitlines()]
    picloud = [u for u in users if u[0] == "picloud"]
    assert len(picloud) == 1
    assert int(picloud[0][2]) < 1000  # a system user
    assert picloud[0][6] == "/usr/sbin/nologin"


def test_avahi_service_announces_http() -> None:
    tree = ET.parse(UNITS / "picloud.avahi.service")  # noqa: S314 - our own file
    service = tree.getroot().find("service")
    assert service is not None
    assert service.findtext("type") == "_http._tcp"
    assert service.findtext("port") == "8080"
    assert service.findtext("txt-record") == "path=/"


# ---- the daemon against a real notify socket


class Notifications:
    """The datagrams `picloud serve` sends, as systemd would receive them."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        path.chmod(0o777)  # like /run/systemd/notify: a daemon that dropped root still sends
        self.path = path
        self.seen: list[tuple[float, str]] = []

    def wait_for(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                message = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            self.seen.append((time.monotonic(), message))
            if any(line.startswith(prefix) for line in message.splitlines()):
                return message
        raise AssertionError(f"no {prefix!r} within {timeout}s; saw {self.seen}")

    def collect(self, seconds: float) -> list[str]:
        deadline = time.monotonic() + seconds
        got: list[str] = []
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                got.append(self.sock.recv(4096).decode())
            except TimeoutError:
                break
        self.seen += [(time.monotonic(), m) for m in got]
        return got


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:  # noqa: S310
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@contextlib.contextmanager
def _serve(tmp: Path, **env: str) -> Iterator[tuple[subprocess.Popen[bytes], Notifications, int]]:
    notes = Notifications(tmp / "notify")
    port = _free_port()
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("PICLOUD_", "NOTIFY", "WATCH"))
    }
    environ.update(
        NOTIFY_SOCKET=str(notes.path),
        PICLOUD_CONFIG="/dev/null",
        PICLOUD_STATE_DIR=str(tmp / "state"),
        PICLOUD_BIND=f"127.0.0.1:{port}",
        PICLOUD_ADMIN_TOKEN=TOKEN,
        **env,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "picloud", "serve"],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "stderr.log", "wb"),  # noqa: SIM115 - closed with the process
    )
    try:
        yield proc, notes, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        notes.sock.close()


def _descendants(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        direct = [int(p) for p in children.read_text().split()]
    except OSError:
        return []
    return direct + [d for c in direct for d in _descendants(c)]


def test_ready_only_when_healthz_answers_then_status_watchdog_and_stopping(
    tmp_path: Path,
) -> None:
    with _serve(tmp_path, WATCHDOG_USEC="1000000") as (proc, notes, port):
        ready = notes.wait_for("READY=1", timeout=30)
        assert _healthz(port) == 200, "READY=1 before /healthz answers 200"
        assert "STATUS=serving on" in ready
        before_ready = [m for _, m in notes.seen[:-1]]
        assert not any("WATCHDOG=1" in m for m in before_ready)
        later = notes.collect(2.2)  # pings every WATCHDOG_USEC/2 = 0.5 s
        assert sum(m == "WATCHDOG=1" for m in later) >= 3, later
        statuses = [m for m in later if m.startswith("STATUS=serving on")]
        assert statuses, later
        assert "scripts running" in statuses[-1]
        # Neither NOTIFY_SOCKET nor WATCHDOG_* reached anything the daemon started.
        for pid in _descendants(proc.pid):
            with contextlib.suppress(OSError):
                environ = Path(f"/proc/{pid}/environ").read_bytes()
                assert b"NOTIFY_SOCKET" not in environ
                assert b"WATCHDOG_" not in environ
        assert _script_environment(port) == {}
        proc.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in notes.wait_for("STOPPING=1", timeout=10)
        assert proc.wait(timeout=20) == 0


def _script_environment(port: int) -> dict[str, str]:
    """What a deployed script sees of NOTIFY_*, WATCHDOG_*, LISTEN_* in os.environ."""
    source = "import os\ndef handle(ctx):\n    return dict(os.environ)\n"
    _admin(port, "/api/v1/admin/apps", {"id": "home"})
    _admin(port, "/api/v1/admin/scripts", {"id": "env", "app": "home", "public": True,
                                           "source": source})  # fmt: skip
    url = f"http://127.0.0.1:{port}/api/v1/execute/env"
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - loopback
        env: dict[str, str] = json.loads(resp.read())
    assert "PATH" in env  # the script did run and return its environment
    return {k: v for k, v in env.items() if k.startswith(("NOTIFY_", "WATCHDOG_", "LISTEN_"))}


def _admin(port: int, path: str, body: dict[str, object]) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 - loopback
        assert resp.status == 201


def test_watchdog_stops_pinging_while_the_store_writer_is_stuck(tmp_path: Path) -> None:
    with _serve(tmp_path, WATCHDOG_USEC="1000000") as (_proc, notes, _port):
        notes.wait_for("READY=1", timeout=30)
        notes.wait_for("WATCHDOG=1", timeout=5)
        # Hold the write lock from outside: the daemon's writer cannot commit anything.
        blocker = sqlite3.connect(tmp_path / "state" / "picloud.db", timeout=1)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            notes.collect(2.0)  # a ping already under way may still land (slow CI)
            stuck = notes.collect(3.0)
        finally:
            blocker.rollback()
            blocker.close()
        assert "WATCHDOG=1" not in stuck, stuck
        # Once the writer answers again, so does the watchdog.
        notes.wait_for("WATCHDOG=1", timeout=10)


def test_no_watchdog_pings_when_none_is_asked_for(tmp_path: Path) -> None:
    with _serve(tmp_path) as (proc, notes, _port):
        notes.wait_for("READY=1", timeout=30)
        assert not [m for m in notes.collect(1.0) if "WATCHDOG" in m]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_socket_activation_serves_on_the_passed_socket(tmp_path: Path) -> None:
    """What picloud.socket does: the listener arrives as fd 3 with LISTEN_FDS/LISTEN_PID."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    script = (
        f"import os; os.dup2({listener.fileno()}, 3); os.environ['LISTEN_PID'] = str(os.getpid())"
    )
    launcher = (
        f"{script}; os.execv({sys.executable!r}, [{sys.executable!r}, '-m', 'picloud', 'serve'])"
    )
    with _serve_cmd(tmp_path, [sys.executable, "-c", launcher], listener) as (proc, notes):
        notes.wait_for("READY=1", timeout=30)
        assert _healthz(port) == 200
        for pid in _descendants(proc.pid):
            with contextlib.suppress(OSError):
                assert b"LISTEN_FDS" not in Path(f"/proc/{pid}/environ").read_bytes()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    listener.close()


@contextlib.contextmanager
def _serve_cmd(
    tmp: Path, argv: list[str], listener: socket.socket
) -> Iterator[tuple[subprocess.Popen[bytes], Notifications]]:
    notes = Notifications(tmp / "notify")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PICLOUD_")}
    environ.update(
        NOTIFY_SOCKET=str(notes.path),
        LISTEN_FDS="1",
        PICLOUD_CONFIG="/dev/null",
        PICLOUD_STATE_DIR=str(tmp / "state"),
        PICLOUD_BIND="127.0.0.1:1",  # must not be used
        PICLOUD_ADMIN_TOKEN=TOKEN,
    )
    proc = subprocess.Popen(argv, env=environ, pass_fds=[listener.fileno()])
    try:
        yield proc, notes
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        notes.sock.close()


# ---- privileges


_DROP = """
import os, sys
from pathlib import Path
from picloud import privileges as p
state = Path(sys.argv[1])
print(p.drop_root("nobody", state))
print(*os.getresuid(), p.capabilities("CapEff"), p.capabilities("CapPrm"))
(state / "new").write_text("written after the drop")
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_drop_root_switches_for_good_and_hands_over_the_state_dir() -> None:
    """privileges.drop_root as `picloud serve` runs it (the whole daemon, dropping under
    systemd, is in tests/install: here the interpreter may live under /root, 0700)."""
    base = Path(tempfile.mkdtemp(prefix="picloud-drop-", dir="/tmp"))
    try:
        base.chmod(0o755)
        state = base / "state"
        state.mkdir()
        (state / "admin.token").write_text("written by a root shell")
        out = subprocess.run(
            [sys.executable, "-c", _DROP, str(state)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.splitlines()
        nobody = _uid("nobody")
        assert out[0] == f"switched from root to nobody (uid {nobody})"
        assert out[1].split() == [str(nobody)] * 3 + ["0", "0"]
        for path in [state, state / "admin.token", state / "new"]:
            assert path.stat().st_uid == nobody, path
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_a_missing_service_user_keeps_root_with_a_warning(tmp_path: Path) -> None:
    with _serve(tmp_path, PICLOUD_SERVICE_USER="no-such-user-here") as (proc, notes, port):
        notes.wait_for("READY=1", timeout=30)
        assert _healthz(port) == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert "no user 'no-such-user-here'" in (tmp_path / "stderr.log").read_text()


def test_clear_capabilities_empties_every_set() -> None:
    code = (
        "from picloud import privileges as p; p.clear_capabilities();"
        "print(p.capabilities('CapEff'), p.capabilities('CapPrm'), p.capabilities('CapAmb'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.split() == ["0", "0", "0"]


def _uid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid
