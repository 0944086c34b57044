"""The admin token and the daemon process: creation, display, rotation, override, signals."""

from __future__ import annotations

import json
import signal
import stat
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.daemon_process import ServeProcess, clean_env, cli, serve

SHUTDOWN_BOUND_S = 15.0


def _status(proc: ServeProcess, token: str | None) -> int:
    req = urllib.request.Request(f"{proc.url}/api/v1/admin/apps")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read())
        assert body["error"]["code"] == "unauthorized"
        return exc.code


def test_first_start_creates_a_private_token_printed_once(tmp_path: Path) -> None:
    token_file = tmp_path / "state" / "admin.token"
    with serve(tmp_path, PICLOUD_LOG_LEVEL="debug") as first:
        token = token_file.read_text().strip()
        assert token.startswith("pc_admin_")
        assert len(token) >= 40
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert _status(first, token) == 200
        assert _status(first, "pc_admin_wrong") == 401
        assert _status(first, None) == 401
        first.stop()
    assert first.stdout.count(token) == 1
    assert token not in first.stderr
    with serve(tmp_path, PICLOUD_LOG_LEVEL="debug") as second:
        assert _status(second, token) == 200
        second.stop()
    assert token_file.read_text().strip() == token
    assert token not in second.stdout + second.stderr


def test_token_command_shows_and_rotates(tmp_path: Path) -> None:
    env = clean_env(tmp_path, PICLOUD_STATE_DIR=str(tmp_path / "state"))
    with serve(tmp_path) as proc:
        token = (tmp_path / "state" / "admin.token").read_text().strip()
        shown = cli(["token"], env, tmp_path)
        assert shown.returncode == 0
        assert shown.stdout.strip() == token
        rotated = cli(["token", "--rotate"], env, tmp_path)
        assert rotated.returncode == 0
        new = rotated.stdout.strip()
        assert new.startswith("pc_admin_")
        assert new != token
        token_file = tmp_path / "state" / "admin.token"
        assert token_file.read_text().strip() == new
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        # The running daemon picks the new token up without a restart.
        assert _status(proc, new) == 200
        assert _status(proc, token) == 401
        assert cli(["token"], env, tmp_path).stdout.strip() == new
        proc.stop()
    assert new not in proc.stdout + proc.stderr


def test_environment_token_replaces_the_file(tmp_path: Path) -> None:
    fixed = "pc_admin_provisioned-0123456789abcdef"
    with serve(tmp_path, PICLOUD_ADMIN_TOKEN=fixed, PICLOUD_LOG_LEVEL="debug") as proc:
        assert _status(proc, fixed) == 200
        assert not (tmp_path / "state" / "admin.token").exists()
        env = clean_env(
            tmp_path, PICLOUD_STATE_DIR=str(tmp_path / "state"), PICLOUD_ADMIN_TOKEN=fixed
        )
        assert cli(["token"], env, tmp_path).stdout.strip() == fixed
        refused = cli(["token", "--rotate"], env, tmp_path)
        assert refused.returncode != 0
        assert "PICLOUD_ADMIN_TOKEN" in refused.stderr
        assert _status(proc, fixed) == 200
        proc.stop()
    assert fixed not in proc.stdout + proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_daemon_promptly(tmp_path: Path, sig: signal.Signals) -> None:
    with serve(tmp_path) as proc:
        took = proc.stop(sig, timeout=SHUTDOWN_BOUND_S)
    assert proc.proc.returncode == 0, proc.stderr
    assert took < SHUTDOWN_BOUND_S


@pytest.mark.parametrize(
    ("name", "value"),
    [("PICLOUD_NO_SUCH_SETTING", "1"), ("PICLOUD_BIND", "nowhere"), ("PICLOUD_MAX_QUEUE", "x")],
)
def test_bad_setting_stops_start_up_with_one_line(tmp_path: Path, name: str, value: str) -> None:
    env = clean_env(tmp_path, PICLOUD_STATE_DIR=str(tmp_path / "state"), **{name: value})
    result = cli(["serve"], env, tmp_path, timeout=30)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert name in lines[0] or name.removeprefix("PICLOUD_").lower() in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state" / "admin.token").exists()
