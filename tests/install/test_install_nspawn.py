"""install.sh for real: a Debian bookworm root booted with systemd as PID 1 (systemd-nspawn).

`make test-install` (marker `install`); needs root, debootstrap and systemd-nspawn.
The base root is cached in ~/.cache/picloud-debootstrap (about 3 minutes the first
time); each run copies it, boots it, and drives it with nsenter. The container shares
the host's network (PyPI for pip; the daemon's port is a free one, never 8080).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.install,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0
        or not shutil.which("debootstrap")
        or not shutil.which("systemd-nspawn")
        or not shutil.which("nsenter"),
        reason="needs root, debootstrap, systemd-nspawn and nsenter",
    ),
]

ROOT = Path(__file__).parent.parent.parent
CACHE = Path.home() / ".cache" / "picloud-debootstrap"
SUITE = os.environ.get("PICLOUD_TEST_SUITE", "bookworm")  # or trixie
PACKAGES = (
    "systemd,systemd-sysv,dbus,python3,python3-venv,python3-systemd,"
    "ca-certificates,avahi-daemon,sqlite3"
)
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
BUILD_INPUTS = ("pyproject.toml", "README.md", "install.sh", "picloud", "systemd")
LANDLOCK_CALLS = "landlock_create_ruleset landlock_add_rule landlock_restrict_self"


def _base_root(arch: str = "amd64") -> Path:
    """The cached debootstrap root (built once; reruns reuse it). arm64 needs qemu-user."""
    base = CACHE / f"{SUITE}-{arch}"
    if (base / "usr/bin/python3").exists():
        return base
    tmp = CACHE / f"{SUITE}-{arch}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["debootstrap", f"--arch={arch}", "--variant=minbase", f"--include={PACKAGES}", SUITE,
         str(tmp), "http://deb.debian.org/debian"],
        check=True, capture_output=True, timeout=1800,
    )  # fmt: skip
    tmp.rename(base)
    return base


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Machine:
    """A booted container and a way to run commands in it."""

    def __init__(self, root: Path, src: Path, port: int, extra: list[str] | None = None) -> None:
        self.root, self.port = root, port
        self.log = open(root.parent / "console.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-D", str(root), "--boot", "--keep-unit", "--register=no",
             "--console=pipe", f"--machine=picloud-test-{os.getpid()}",
             f"--bind-ro={src}:/src", f"--bind-ro={HOST_CA}:/etc/ssl/certs/host-ca.crt",
             # nspawn's own seccomp allow-list lacks Landlock; a Pi has no nspawn around it.
             f"--system-call-filter={LANDLOCK_CALLS}", *(extra or [])],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            self._boot()
        except BaseException:
            self.stop()  # never leave a container running behind a failed test
            raise

    def _boot(self) -> None:
        self.leader = self._wait_for_leader()
        # Until boot is over: systemd-tmpfiles would otherwise empty /tmp under pip's feet.
        _wait(lambda: self.sh("systemctl is-system-running", check=False).stdout.strip()
              in ("running", "degraded"), 120, "the container to finish booting")  # fmt: skip

    def _wait_for_leader(self) -> int:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.root.parent / "console.log").read_text()
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
            for pid in children.read_text().split():
                # PID 1 of the container: nspawn's child running systemd.
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    return int(pid)
            time.sleep(0.2)
        raise AssertionError("the container did not start")

    def sh(
        self,
        script: str,
        timeout: float = 60,
        env: dict[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        environ = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "LANG": "C.UTF-8", **(env or {})}  # fmt: skip
        argv = ["nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-n", "-p", "-C",
                "-r", "-w", "env", "-i", *(f"{k}={v}" for k, v in environ.items()),
                "sh", "-c", script]  # fmt: skip
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check:
            assert proc.returncode == 0, f"{script}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def install(self, *args: str, wheel: str, timeout: float = 600) -> str:
        env = {"PICLOUD_SRC": f"/src/{wheel}", "PICLOUD_PORT": str(self.port),
               "PIP_CERT": "/etc/ssl/certs/host-ca.crt"}  # fmt: skip
        proc = self.sh(f"sh /src/install.sh {' '.join(args)}", timeout=timeout, env=env)
        return proc.stdout + proc.stderr

    def show(self, prop: str) -> str:
        return self.sh(f"systemctl show -p {prop} --value picloud.service").stdout.strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # nspawn asks the container's systemd to power off
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


def _build_wheel(src: Path, out: Path, version: str | None = None, mark: str = "") -> str:
    """A wheel of the checkout, built from a private copy (never writes into the checkout).

    `mark` is appended as a comment to picloud/__init__.py (same version, new content);
    that wheel goes to out/rebuilt/, as its file name is the same. Returns the path
    relative to `out`.
    """
    copy = out.parent / f"build-{version or 'current'}{mark}"
    # Only what the build reads: caches in the shared checkout change under our feet.
    skip = shutil.ignore_patterns("__pycache__")
    for name in BUILD_INPUTS:
        if (src / name).is_dir():
            shutil.copytree(src / name, copy / name, ignore=skip)
        else:
            copy.mkdir(parents=True, exist_ok=True)
            shutil.copy(src / name, copy / name)
    if mark:
        with (copy / "picloud" / "__init__.py").open("a") as init:
            init.write(f"# {mark}\n")
    if version:
        pyproject = copy / "pyproject.toml"
        text = re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', pyproject.read_text())
        pyproject.write_text(text)
    dest = out / "rebuilt" if mark else out
    dest.mkdir(exist_ok=True)
    before = set(dest.glob("*.whl"))
    subprocess.run(
        [str(ROOT / ".venv/bin/pip"), "wheel", "--no-deps", "-q", "-w", str(dest), str(copy)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    shutil.rmtree(copy, ignore_errors=True)
    (new,) = set(dest.glob("*.whl")) - before
    return str(new.relative_to(out))


@pytest.fixture(scope="module")
def machine() -> Iterator[Machine]:
    # Not under pytest's basetemp: other pytest runs on this machine prune that.
    work = Path(tempfile.mkdtemp(prefix="picloud-nspawn-", dir="/var/tmp"))
    machine: Machine | None = None
    try:
        started = time.monotonic()
        root = work / "root"
        subprocess.run(["cp", "-a", "--reflink=auto", str(_base_root()), str(root)],
                       check=True, timeout=300)  # fmt: skip
        src = work / "src"
        src.mkdir()
        shutil.copy(ROOT / "install.sh", src / "install.sh")
        wheel = _build_wheel(ROOT, src)
        machine = Machine(root, src, _free_port())
        machine.wheel = wheel  # type: ignore[attr-defined]
        machine.timings = {"boot": time.monotonic() - started}  # type: ignore[attr-defined]
        yield machine
    finally:
        if machine is not None:
            machine.stop()
        shutil.rmtree(work, ignore_errors=True)


def _get(port: int, path: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 - loopback
            body = resp.read()
            return resp.status, json.loads(body) if body.startswith(b"{") else body.decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _post(port: int, path: str, body: dict[str, Any], token: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 - loopback
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_install_starts_a_healthy_service_as_picloud(machine: Machine) -> None:
    started = time.monotonic()
    out = machine.install(wheel=machine.wheel)  # type: ignore[attr-defined]
    machine.timings["install"] = time.monotonic() - started  # type: ignore[attr-defined]
    assert f".local:{machine.port}/" in out, out
    token = re.search(r"admin token: (pc_admin_\S+)", out)
    assert token, out
    machine.token = token.group(1)  # type: ignore[attr-defined]
    assert machine.sh("systemctl is-active picloud.service picloud.socket").stdout.split() == [
        "active",
        "active",
    ]
    assert _get(machine.port, "/healthz") == (200, "ok")
    assert "serving on" in machine.show("StatusText")
    pid = machine.show("MainPID")
    status = machine.sh(f"cat /proc/{pid}/status").stdout
    uid = machine.sh("id -u picloud").stdout.strip()
    assert re.search(rf"^Uid:\s+{uid}\s+{uid}\s+{uid}\s+{uid}$", status, re.M), status
    assert re.search(r"^CapEff:\s+0+$", status, re.M), status
    # /proc/PID/environ of the daemon still shows what exec gave it; what matters is what
    # its children (the zygote, so every script) inherited.
    zygote = machine.sh(f"cat /proc/{pid}/task/*/children").stdout.split()[0]
    env = machine.sh(f"tr '\\0' '\\n' < /proc/{zygote}/environ").stdout
    assert "NOTIFY_SOCKET" not in env
    assert "WATCHDOG_USEC" not in env
    assert machine.sh("stat -c %U:%G:%a /var/lib/picloud").stdout.strip() == "root:picloud:770"
    assert machine.sh("stat -c %U /var/lib/picloud/picloud.db").stdout.strip() == "picloud"
    # Logged through systemd-python's JournalHandler: structured, with the logger's name.
    journal = machine.sh("journalctl -u picloud.service -o json --no-pager").stdout
    assert '"LOGGER":"picloud.privileges"' in journal, journal[-2000:]


def test_the_unit_costs_the_sandbox_no_layer(machine: Machine) -> None:
    status, system = _get(machine.port, "/api/v1/admin/system", machine.token)  # type: ignore[attr-defined]
    assert status == 200
    layers = system["sandbox"]
    for layer in ("uid", "namespaces", "mounts", "seccomp", "no_new_privs", "rlimits", "fd_close"):
        assert layers.get(layer) is True, (layer, layers)
    if _host_landlock_abi() > 0:
        assert layers["landlock"] is True, layers
    # The dropped daemon still sees its zygote (no ProtectProc=invisible): the dashboard's
    # worker memory is real.
    assert system["processes"]["worker_processes"] >= 1, system["processes"]


def test_sudo_picloud_token_rotate_keeps_the_daemon_able_to_read_it(machine: Machine) -> None:
    new = machine.sh("picloud token --rotate").stdout.strip()
    assert new.startswith("pc_admin_")
    assert new != machine.token  # type: ignore[attr-defined]
    owner = machine.sh("stat -c %U /var/lib/picloud/admin.token").stdout.strip()
    assert owner == "picloud"
    assert _get(machine.port, "/api/v1/admin/apps", new)[0] == 200
    machine.token = new  # type: ignore[attr-defined]


def test_a_script_sees_no_systemd_variables(machine: Machine) -> None:
    token = machine.token  # type: ignore[attr-defined]
    assert _post(machine.port, "/api/v1/admin/apps", {"id": "home"}, token) == 201
    source = "import os\ndef handle(ctx):\n    return dict(os.environ)\n"
    body = {"id": "env", "app": "home", "public": True, "source": source}
    assert _post(machine.port, "/api/v1/admin/scripts", body, token) == 201
    status, env = _get(machine.port, "/api/v1/execute/env")
    assert status == 200, env
    leaked = [k for k in env if k.startswith(("NOTIFY_", "WATCHDOG_", "LISTEN_", "INVOCATION_"))]
    assert not leaked, env


def _host_landlock_abi() -> int:
    import ctypes

    return max(int(ctypes.CDLL(None).syscall(444, None, 0, 1)), 0)


def test_a_second_run_changes_nothing_and_restarts_nothing(machine: Machine) -> None:
    pid, restarts = machine.show("MainPID"), machine.show("NRestarts")
    started = time.monotonic()
    out = machine.install(wheel=machine.wheel)  # type: ignore[attr-defined]
    machine.timings["rerun"] = time.monotonic() - started  # type: ignore[attr-defined]
    assert "already up to date: nothing changed" in out, out
    assert "installed " not in out
    assert "restarting" not in out
    assert (machine.show("MainPID"), machine.show("NRestarts")) == (pid, restarts)


def test_the_watchdog_restarts_a_daemon_that_stops_pinging(machine: Machine) -> None:
    machine.sh(
        "mkdir -p /etc/systemd/system/picloud.service.d && printf '[Service]\\nWatchdogSec=3\\n'"
        " > /etc/systemd/system/picloud.service.d/test-watchdog.conf && systemctl daemon-reload"
        " && systemctl restart picloud.service"
    )
    _wait(lambda: _get(machine.port, "/healthz")[0] == 200, 60, "the restarted daemon")
    pid, restarts = machine.show("MainPID"), int(machine.show("NRestarts"))
    started = time.monotonic()
    machine.sh(f"kill -STOP {pid}")
    _wait(lambda: int(machine.show("NRestarts")) > restarts, 30, "a watchdog restart")
    machine.timings["watchdog_restart"] = time.monotonic() - started  # type: ignore[attr-defined]
    assert machine.show("MainPID") != pid
    journal = machine.sh("journalctl -u picloud.service --no-pager -o cat", check=False).stdout
    assert "Failed with result 'watchdog'" in journal, journal[-3000:]
    _wait(lambda: _get(machine.port, "/healthz")[0] == 200, 60, "healthy after the restart")


def test_a_zygote_restarted_without_root_makes_systemd_restart_the_service(
    machine: Machine,
) -> None:
    """The daemon has dropped root: a zygote it restarts itself would lack per-app uids and
    namespaces. The watchdog notices the lost layers and stops pinging; the service
    restart brings back a root zygote with every layer."""
    token = machine.token  # type: ignore[attr-defined]
    before = _get(machine.port, "/api/v1/admin/system", token)[1]["sandbox"]
    restarts = int(machine.show("NRestarts"))
    zygote = machine.sh(f"cat /proc/{machine.show('MainPID')}/task/*/children").stdout.split()[0]
    machine.sh(f"kill -KILL {zygote}")
    _wait(lambda: int(machine.show("NRestarts")) > restarts, 40, "a restart for lost layers")
    journal = machine.sh("journalctl -u picloud.service --no-pager -o cat", check=False).stdout
    assert "the sandbox lost layers since start" in journal, journal[-3000:]
    _wait(lambda: _get(machine.port, "/healthz")[0] == 200, 60, "healthy after the restart")
    assert _get(machine.port, "/api/v1/admin/system", token)[1]["sandbox"] == before
    machine.sh("rm -rf /etc/systemd/system/picloud.service.d && systemctl daemon-reload")


def test_a_rebuilt_wheel_of_the_same_version_is_installed_and_restarts(machine: Machine) -> None:
    src = machine.root.parent / "src"
    rebuilt = _build_wheel(ROOT, src, mark="rebuilt-for-the-test")
    pid = machine.show("MainPID")
    out = machine.install(wheel=rebuilt)
    assert "restarting picloud.service" in out, out
    init = "/opt/picloud/venv/lib/python3*/site-packages/picloud/__init__.py"
    assert "rebuilt-for-the-test" in machine.sh(f"cat {init}").stdout
    _wait(lambda: machine.show("MainPID") not in ("0", pid), 60, "the new daemon")


def test_installs_from_a_read_only_checkout(machine: Machine) -> None:
    checkout = machine.root.parent / "src" / "checkout"
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, checkout / name, ignore=shutil.ignore_patterns("__py*"))
        else:
            checkout.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, checkout / name)
    out = machine.install(wheel="checkout")  # /src is bind-mounted read-only
    assert "installing PiCloud from /src/checkout" in out, out
    _wait(lambda: _get(machine.port, "/healthz")[0] == 200, 60, "healthy after the reinstall")
    assert "already up to date" in machine.install(wheel="checkout")


def test_an_upgrade_restarts_and_keeps_the_data(machine: Machine) -> None:
    token = machine.token  # type: ignore[attr-defined]
    status = _post(machine.port, "/api/v1/admin/apps", {"id": "keepme"}, token)
    journal = machine.sh("journalctl -u picloud.service -n 40 --no-pager -o cat", check=False)
    assert status == 201, journal.stdout
    src = machine.root.parent / "src"
    newer = _build_wheel(ROOT, src, version="99.0.0")
    out = machine.install(wheel=newer)
    assert "restarting picloud.service" in out, out
    assert "PiCloud is installed: 99.0.0" in out
    _wait(lambda: _get(machine.port, "/healthz")[0] == 200, 60, "healthy after the upgrade")
    status, body = _get(machine.port, "/api/v1/admin/apps", token)
    assert status == 200
    assert "keepme" in json.dumps(body)


def test_uninstall_keeps_data_and_purge_removes_it(machine: Machine) -> None:
    out = machine.install("--uninstall", wheel="-")
    assert "kept /etc/picloud and /var/lib/picloud" in out
    assert machine.sh("systemctl is-active picloud.service", check=False).stdout.strip() != "active"
    assert (
        machine.sh("test -f /var/lib/picloud/picloud.db && test ! -e /opt/picloud").returncode == 0
    )
    machine.install("--uninstall", "--purge", wheel="-")
    assert machine.sh("test ! -e /var/lib/picloud && ! id picloud", check=False).returncode == 0
    print(f"\ntimings (s): {machine.timings}")  # type: ignore[attr-defined]  # noqa: T201
