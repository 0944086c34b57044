"""The pi-gen stage, run the way pi-gen runs it, against a Debian bookworm root; then its
first boot under systemd-nspawn (`make test-install`; root, debootstrap, systemd-nspawn).

pi-gen itself cannot run here (Raspberry Pi's archive is unreachable), so the root is
plain Debian amd64: this checks the stage's scripts and what the image holds, not the
Raspberry Pi OS packages or arm64.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.install.test_install_nspawn import (
    HOST_CA,
    ROOT,
    Machine,
    _base_root,
    _build_wheel,
    _wait,
    pytestmark,  # noqa: F401 - the same markers and skip conditions
)

STAGE = ROOT / "image-build" / "stage-picloud"


def _chroot(root: Path, script: Path, **env: str) -> str:
    """pi-gen's on_chroot: the script on stdin of a shell inside the root."""
    argv = ["systemd-nspawn", "-q", "-D", str(root), "--register=no", "--keep-unit", "--pipe",
            f"--bind-ro={HOST_CA}:/etc/ssl/certs/host-ca.crt",
            "env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "PIP_CERT=/etc/ssl/certs/host-ca.crt", *(f"{k}={v}" for k, v in env.items()),
            "sh", "-e", "-s"]  # fmt: skip
    proc = subprocess.run(
        argv, stdin=script.open("rb"), capture_output=True, timeout=900, check=False
    )
    out = (proc.stdout + proc.stderr).decode(errors="replace")
    assert proc.returncode == 0, f"{script}:\n{out}"
    return out


def _host(script: Path, root: Path) -> None:
    """pi-gen's NN-run.sh: on the build host, with ROOTFS_DIR set."""
    subprocess.run(
        ["sh", str(script)], env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "ROOTFS_DIR": str(root)},
        check=True, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def image() -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="picloud-image-", dir="/var/tmp"))
    try:
        root = work / "root"
        subprocess.run(["cp", "-a", str(_base_root()), str(root)], check=True, timeout=300)
        (root / "etc/hostname").write_text("raspberrypi\n")  # what Raspberry Pi OS ships
        stage = work / "stage-picloud"
        shutil.copytree(STAGE, stage)
        files = stage / "00-install-picloud" / "files"
        files.mkdir(exist_ok=True)
        shutil.copy(ROOT / "install.sh", files / "install.sh")
        _build_wheel(ROOT, files)
        started = time.monotonic()
        _host(stage / "00-install-picloud" / "00-run.sh", root)
        _chroot(root, stage / "00-install-picloud" / "01-run-chroot.sh")
        _host(stage / "01-first-boot" / "00-run.sh", root)
        _chroot(root, stage / "01-first-boot" / "00-run-chroot.sh")
        print(f"\nstage ran in {time.monotonic() - started:.0f}s")  # noqa: T201
        yield root
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_the_image_holds_picloud_enabled_but_no_token(image: Path) -> None:
    wants = image / "etc/systemd/system"
    assert (wants / "multi-user.target.wants/picloud.service").is_symlink()
    assert (wants / "sockets.target.wants/picloud.socket").is_symlink()
    assert (wants / "multi-user.target.wants/picloud-firstboot.service").is_symlink()
    assert (image / "opt/picloud/venv/bin/picloud").exists()
    assert (image / "etc/update-motd.d/60-picloud").exists()
    assert (image / "etc/picloud/picloud.toml").exists()
    # Nothing per-device, nothing left over from the build.
    assert not (image / "var/lib/picloud/admin.token").exists()
    assert not (image / "var/lib/picloud/picloud.db").exists()
    assert not (image / "var/cache/picloud-install").exists()
    assert not (image / "var/cache/picloud-motd").exists()


def test_first_boot_names_the_host_makes_the_token_and_shows_it(image: Path) -> None:
    src = image.parent / "src"
    src.mkdir()
    machine = Machine(image, src, port=8080, extra=["--private-network"])
    try:
        _wait(
            lambda: machine.sh("systemctl is-active picloud-firstboot.service picloud.service",
                               check=False).stdout.split() == ["active", "active"],
            60, "the first boot and PiCloud",
        )  # fmt: skip
        assert machine.sh("cat /etc/hostname").stdout.strip() == "picloud"
        token = machine.sh("cat /var/lib/picloud/admin.token").stdout.strip()
        assert token.startswith("pc_admin_")
        assert machine.sh("stat -c %U /var/lib/picloud/admin.token").stdout.strip() == "picloud"
        issue = machine.sh("cat /etc/issue.d/picloud.issue").stdout
        assert "http://picloud.local:8080/" in issue
        assert token in issue
        assert token in machine.sh("sh /etc/update-motd.d/60-picloud").stdout
        check = (
            '/opt/picloud/venv/bin/python -c "import urllib.request as u;'
            "print(u.urlopen('http://127.0.0.1:8080/healthz', timeout=5).read().decode())\""
        )
        _wait(lambda: machine.sh(check, check=False).stdout.strip() == "ok", 60, "/healthz")
        # A second boot does not run it again (ConditionPathExists on the marker).
        assert machine.sh("test -e /var/lib/picloud/.firstboot-done").returncode == 0
    finally:
        machine.stop()
