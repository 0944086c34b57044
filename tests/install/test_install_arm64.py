"""install.sh in an arm64 Debian bookworm root under qemu-user, in image mode
(`PICLOUD_SKIP_START=1`, nothing boots): proves every dependency resolves to an aarch64
wheel, as on a Raspberry Pi. seccomp is not enforced under qemu, so nothing runs here
that would test the sandbox.

Needs qemu-user-static with binfmt_misc (`apt-get install qemu-user-static`; mount
binfmt_misc and `update-binfmts --enable qemu-aarch64` if the host lacks them). The
arm64 root is cached next to the amd64 one (about 4 minutes the first time).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.install.test_install_nspawn import HOST_CA, ROOT, _base_root, _build_wheel

pytestmark = [
    pytest.mark.install,
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists()
        or not shutil.which("debootstrap")
        or not shutil.which("systemd-nspawn"),
        reason="needs qemu-user binfmt for aarch64, debootstrap and systemd-nspawn",
    ),
]


@pytest.fixture(scope="module")
def arm64_root() -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="picloud-arm64-", dir="/var/tmp"))
    try:
        root = work / "root"
        subprocess.run(["cp", "-a", str(_base_root("arm64")), str(root)], check=True, timeout=300)
        src = root / "var/cache/picloud-src"
        src.mkdir(parents=True)
        shutil.copy(ROOT / "install.sh", src / "install.sh")
        _build_wheel(ROOT, src)
        yield root
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(root: Path, script: str, timeout: float = 60, **env: str) -> str:
    argv = ["systemd-nspawn", "-q", "-D", str(root), "--register=no", "--keep-unit", "--pipe",
            f"--bind-ro={HOST_CA}:/etc/ssl/certs/host-ca.crt",
            "env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "PIP_CERT=/etc/ssl/certs/host-ca.crt", *(f"{k}={v}" for k, v in env.items()),
            "sh", "-c", script]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{script}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout  # nspawn's own notes go to stderr


def test_install_sh_resolves_aarch64_wheels_and_enables_the_units(arm64_root: Path) -> None:
    assert _run(arm64_root, "uname -m").strip() == "aarch64"
    wheel = next((arm64_root / "var/cache/picloud-src").glob("picloud-*.whl")).name
    started = time.monotonic()
    out = _run(
        arm64_root, "sh /var/cache/picloud-src/install.sh", timeout=1200,
        PICLOUD_SRC=f"/var/cache/picloud-src/{wheel}", PICLOUD_SKIP_START="1",
    )  # fmt: skip
    print(f"\narm64 install.sh under qemu: {time.monotonic() - started:.0f}s")  # noqa: T201
    assert "PiCloud is installed" in out, out
    # Compiled dependencies came as aarch64 wheels (the root has no compiler to build any).
    site = next((arm64_root / "opt/picloud/venv/lib").glob("python3.*/site-packages"))
    for package in ("uvloop", "psutil", "msgspec", "aiohttp", "multidict", "yarl"):
        (wheel_file,) = site.glob(f"{package}-*.dist-info/WHEEL")
        tags = [t for t in wheel_file.read_text().splitlines() if t.startswith("Tag:")]
        assert any("aarch64" in t for t in tags), f"{package}: {tags}"
    imports = "import uvloop, psutil, msgspec, aiohttp, systemd.journal, picloud.app; print('ok')"
    assert (
        _run(arm64_root, f'/opt/picloud/venv/bin/python -c "{imports}"', timeout=300).strip()
        == "ok"
    )
    wants = arm64_root / "etc/systemd/system"
    assert (wants / "multi-user.target.wants/picloud.service").is_symlink()
    assert (wants / "sockets.target.wants/picloud.socket").is_symlink()
    assert not (arm64_root / "var/lib/picloud/admin.token").exists()
