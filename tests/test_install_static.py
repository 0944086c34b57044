"""install.sh and the image scripts: shellcheck-clean POSIX sh, and the refusals that come
before anything is touched (wrong user, 32-bit ARM, bad arguments)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
SCRIPTS = [
    ROOT / "install.sh",
    ROOT / "systemd" / "picloud-firstboot.sh",
    *sorted((ROOT / "image-build").rglob("*.sh")),
    ROOT / "image-build" / "stage-picloud" / "01-first-boot" / "files" / "60-picloud",
]


def _run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), capture_output=True, text=True, timeout=30, check=False, env=env
    )


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="apt-get install shellcheck")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shellcheck_clean(script: Path) -> None:
    proc = _run("shellcheck", "--shell=sh", "--severity=style", str(script))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_posix_sh_with_main_on_the_last_line(script: Path) -> None:
    text = script.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert "\nset -eu\n" in text
    assert text.rstrip().splitlines()[-1] == 'main "$@"'  # a truncated download runs nothing
    shell = shutil.which("dash") or "sh"
    assert _run(shell, "-n", str(script)).returncode == 0


def test_help_and_unknown_arguments() -> None:
    assert "--uninstall" in _run("sh", str(ROOT / "install.sh"), "--help").stdout
    proc = _run("sh", str(ROOT / "install.sh"), "--frobnicate")
    assert proc.returncode == 1
    assert "unknown argument --frobnicate" in proc.stderr


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runuser") is None, reason="needs root")
def test_refuses_to_run_without_root() -> None:
    proc = _run("runuser", "-u", "nobody", "--", "sh", str(ROOT / "install.sh"))
    assert proc.returncode == 1
    assert "run me as root" in proc.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the platform check comes after the root check")
def test_refuses_32_bit_arm_unless_forced(tmp_path: Path) -> None:
    fake = tmp_path / "uname"
    fake.write_text("#!/bin/sh\necho armv7l\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    env.pop("PICLOUD_FORCE", None)
    proc = _run("sh", str(ROOT / "install.sh"), env=env)
    assert proc.returncode == 1
    assert "PICLOUD_FORCE=1" in proc.stderr
    if Path("/etc/os-release").read_text().find("bookworm") >= 0:
        assert "32-bit ARM (armv7l)" in proc.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the port check comes after the root check")
def test_refuses_a_bad_port() -> None:
    env = {**os.environ, "PICLOUD_PORT": "80a"}
    proc = _run("sh", str(ROOT / "install.sh"), env=env)
    assert proc.returncode == 1
    assert "PICLOUD_PORT=80a is not a port number" in proc.stderr


def test_the_wheel_carries_the_appliance_files() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert '"share/picloud" = ["install.sh"]' in text
    assert '"share/picloud/systemd" = ["systemd/*"]' in text
    for name in ("picloud.service", "picloud.socket", "picloud.sysusers", "picloud-firstboot.sh"):
        assert name in (ROOT / "install.sh").read_text()
