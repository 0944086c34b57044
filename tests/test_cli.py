"""The CLI client (`picloud deploy|scripts|apps|logs`) against a real `picloud serve`."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from picloud.cli import main
from tests.daemon_process import ServeProcess, clean_env, cli, free_port, serve

TOKEN = "pc_admin_cli-test-0123456789abcdef"
GOOD = "def handle(ctx):\n    print('hi from cli')\n    return {'n': 1}\n"
BROKEN = "def handle(ctx):\n    x = 1\n    return (\n\n"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("cli")
    with serve(tmp, PICLOUD_ADMIN_TOKEN=TOKEN) as proc:
        yield proc
        proc.stop()


@pytest.fixture
def env(daemon: ServeProcess, tmp_path: Path) -> dict[str, str]:
    return clean_env(tmp_path, PICLOUD_URL=daemon.url, PICLOUD_TOKEN=TOKEN)


Run = Callable[[list[str], dict[str, str], Path], subprocess.CompletedProcess[str]]


@pytest.fixture
def run(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """The client in this process (importing it anew costs a second per run on a busy Pi)."""

    def call(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
        with monkeypatch.context() as patch:
            for name in [n for n in os.environ if n.startswith("PICLOUD_")]:
                patch.delenv(name)
            for name, value in env.items():
                if name.startswith("PICLOUD_"):
                    patch.setenv(name, value)
            patch.chdir(cwd)
            capfd.readouterr()
            code = main(args)
            out, err = capfd.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return call


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("picloud: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def _admin(daemon: ServeProcess, path: str) -> Any:
    req = urllib.request.Request(f"{daemon.url}{path}")
    req.add_header("Authorization", f"Bearer {TOKEN}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_apps_create_and_list(run: Run, env: dict[str, str], tmp_path: Path) -> None:
    created = run(["apps", "--create", "cli-apps"], env, tmp_path)
    assert created.returncode == 0, created.stderr
    assert "cli-apps" in created.stdout
    listed = run(["apps"], env, tmp_path)
    assert listed.returncode == 0
    assert listed.stdout.splitlines()[0].split() == ["ID", "SCRIPTS"]
    assert any(line.split()[0] == "cli-apps" for line in listed.stdout.splitlines()[1:])
    again = run(["apps", "--create", "cli-apps"], env, tmp_path)
    assert "conflict" in _one_line_error(again)


def test_deploy_creates_then_updates(
    run: Run, daemon: ServeProcess, env: dict[str, str], tmp_path: Path
) -> None:
    assert run(["apps", "--create", "cli-deploy"], env, tmp_path).returncode == 0
    script = tmp_path / "hello.py"
    script.write_text(GOOD)
    args = ["deploy", str(script), "--id", "cli-hello", "--app", "cli-deploy"]
    first = run([*args, "--public", "--timeout-ms", "2000"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "cli-hello version 1" in first.stdout
    assert "public" in first.stdout
    script.write_text(GOOD + "# v2\n")
    second = run(args, env, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "cli-hello version 2" in second.stdout
    got = _admin(daemon, "/api/v1/admin/scripts/cli-hello")
    assert (got["version"], got["public"], got["timeout_ms"]) == (2, True, 2000)
    assert got["source"] == GOOD + "# v2\n"
    listed = run(["scripts", "--app", "cli-deploy"], env, tmp_path)
    assert listed.returncode == 0
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert rows[0] == ["ID", "APP", "VERSION", "ACCESS"]
    assert rows[1:] == [["cli-hello", "cli-deploy", "2", "public"]]
    everything = run(["scripts"], env, tmp_path)
    assert "cli-hello" in everything.stdout


def test_deploy_compile_error_names_the_line(run: Run, env: dict[str, str], tmp_path: Path) -> None:
    assert run(["apps", "--create", "cli-broken"], env, tmp_path).returncode == 0
    script = tmp_path / "broken.py"
    script.write_text(BROKEN)
    result = run(["deploy", str(script), "--id", "cli-b", "--app", "cli-broken"], env, tmp_path)
    line = _one_line_error(result)
    assert "line 3" in line
    assert "broken.py" in line
    # On update too: the script exists, the new source is refused, the old one stays.
    script.write_text(GOOD)
    assert run(["deploy", str(script), "--id", "cli-b", "--app", "cli-broken"], env, tmp_path)
    script.write_text(BROKEN)
    again = run(["deploy", str(script), "--id", "cli-b", "--app", "cli-broken"], env, tmp_path)
    assert "line 3" in _one_line_error(again)


def test_deploy_over_a_cap_is_one_line(run: Run, env: dict[str, str], tmp_path: Path) -> None:
    assert run(["apps", "--create", "cli-caps"], env, tmp_path).returncode == 0
    script = tmp_path / "s.py"
    script.write_text(GOOD)
    args = ["deploy", str(script), "--id", "cli-caps", "--app", "cli-caps"]
    line = _one_line_error(run([*args, "--timeout-ms", "600000"], env, tmp_path))
    assert "400 bad_request" in line
    assert "timeout_ms" in line


def test_deploy_refuses_a_script_of_another_app(
    run: Run, env: dict[str, str], tmp_path: Path
) -> None:
    for app in ("cli-one", "cli-two"):
        assert run(["apps", "--create", app], env, tmp_path).returncode == 0
    script = tmp_path / "s.py"
    script.write_text(GOOD)
    assert run(["deploy", str(script), "--id", "cli-s", "--app", "cli-one"], env, tmp_path)
    other = run(["deploy", str(script), "--id", "cli-s", "--app", "cli-two"], env, tmp_path)
    assert "cli-one" in _one_line_error(other)


def test_deploy_missing_file_and_unknown_app(run: Run, env: dict[str, str], tmp_path: Path) -> None:
    missing = run(["deploy", "nope.py", "--id", "x", "--app", "x"], env, tmp_path)
    assert "nope.py" in _one_line_error(missing)
    script = tmp_path / "s.py"
    script.write_text(GOOD)
    unknown = run(["deploy", str(script), "--id", "x", "--app", "no-such-app"], env, tmp_path)
    assert "not_found" in _one_line_error(unknown)


def test_unreachable_daemon_is_one_line(run: Run, tmp_path: Path) -> None:
    env = clean_env(tmp_path, PICLOUD_URL=f"http://127.0.0.1:{free_port()}", PICLOUD_TOKEN="x")
    line = _one_line_error(run(["apps"], env, tmp_path))
    assert "cannot reach the daemon" in line


def test_the_command_itself(daemon: ServeProcess, env: dict[str, str], tmp_path: Path) -> None:
    """`python -m picloud` as a process: its exit status and its streams."""
    created = cli(["apps", "--create", "cli-proc"], env, tmp_path)
    assert created.returncode == 0, created.stderr
    script = tmp_path / "broken.py"
    script.write_text(BROKEN)
    result = cli(["deploy", str(script), "--id", "p", "--app", "cli-proc"], env, tmp_path)
    assert _one_line_error(result).endswith("broken.py: line 3: '(' was never closed")
    dead = {**env, "PICLOUD_URL": f"http://127.0.0.1:{free_port()}"}
    assert "cannot reach" in _one_line_error(cli(["scripts"], dead, tmp_path))


def test_wrong_token_is_one_line_401(run: Run, env: dict[str, str], tmp_path: Path) -> None:
    line = _one_line_error(run(["apps"], {**env, "PICLOUD_TOKEN": "pc_admin_wrong"}, tmp_path))
    assert "401" in line
    assert "PICLOUD_TOKEN" in line
    assert "pc_admin_wrong" not in line


def test_token_read_from_the_state_dir(run: Run, daemon: ServeProcess, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "admin.token").write_text(TOKEN + "\n")
    env = clean_env(tmp_path, PICLOUD_URL=daemon.url, PICLOUD_STATE_DIR=str(state))
    assert run(["apps"], env, tmp_path).returncode == 0
    (state / "admin.token").write_text("pc_admin_other\n")
    assert "401" in _one_line_error(run(["apps"], env, tmp_path))


def test_logs_of_an_invocation(
    run: Run, daemon: ServeProcess, env: dict[str, str], tmp_path: Path
) -> None:
    missing = run(["logs", "no-such-invocation"], env, tmp_path)
    assert "not_found" in _one_line_error(missing)
    assert run(["apps", "--create", "cli-logs"], env, tmp_path).returncode == 0
    script = tmp_path / "l.py"
    script.write_text(GOOD)
    deploy = ["deploy", str(script), "--id", "cli-logs", "--app", "cli-logs", "--public"]
    assert run(deploy, env, tmp_path).returncode == 0
    try:
        with urllib.request.urlopen(f"{daemon.url}/api/v1/execute/cli-logs", timeout=30) as r:
            r.read()
        found = _admin(daemon, "/api/v1/admin/invocations?script=cli-logs")
    except urllib.error.HTTPError as exc:
        pytest.skip(f"running scripts or listing invocations is not available yet ({exc.code})")
    if not found.get("items"):
        pytest.skip("the invocation was not recorded yet")
    result = run(["logs", found["items"][0]["id"]], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "hi from cli" in result.stdout
