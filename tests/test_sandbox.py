"""The process model: a clean zygote, no strays after shutdown, /healthz while it restarts."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path
from typing import Any

import psutil
import pytest
from aiohttp.test_utils import TestClient, TestServer

from picloud.app import create_app
from picloud.config import Settings
from picloud.executor import EXECUTOR
from picloud.state import RUNTIME
from tests.conftest import Daemon

PID = "import os\ndef handle(ctx):\n    return os.getpid()\n"


async def _started(settings: Settings) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings), host="127.0.0.1"))
    await client.start_server()
    client.app[RUNTIME].listening = True
    return client


async def _deploy(client: TestClient[Any, Any], admin: dict[str, str], **script: Any) -> None:
    resp = await client.post("/api/v1/admin/apps", json={"id": "home"}, headers=admin)
    assert resp.status in (201, 409)
    body = {"app": "home", "public": True, **script}
    resp = await client.post("/api/v1/admin/scripts", json=body, headers=admin)
    assert resp.status == 201, await resp.text()


def _gone(pid: int) -> bool:
    """Exited and reaped (a zombie still counts as left behind)."""
    return not psutil.pid_exists(pid)


async def test_shutdown_leaves_no_process_behind(settings: Settings, admin: dict[str, str]) -> None:
    client = await _started(settings)
    zygote = client.app[EXECUTOR].zygote.proc
    assert zygote is not None
    await _deploy(client, admin, id="pid", source=PID)
    await _deploy(client, admin, id="fpid", source=PID, isolation="fresh")
    pids = {zygote.pid}
    for path in ("/api/v1/execute/pid", "/api/v1/execute/fpid") * 3:
        pids.add(await (await client.get(path)).json())
    await client.close()
    for _ in range(50):
        if all(_gone(pid) for pid in pids):
            break
        await asyncio.sleep(0.05)
    assert [pid for pid in pids if not _gone(pid)] == []
    assert psutil.Process().children(recursive=True) == []


async def test_zygote_is_clean(
    settings: Settings, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PICLOUD_ADMIN_TOKEN", "pc_admin_must-not-leak")
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    client = await _started(settings)
    try:
        proc = client.app[EXECUTOR].zygote.proc
        assert proc is not None
        zygote = psutil.Process(proc.pid)
        env = zygote.environ()
        assert not [k for k in env if k.startswith("PICLOUD") or k == "NOTIFY_SOCKET"]
        maps = Path(f"/proc/{proc.pid}/maps").read_text()  # noqa: ASYNC240 - procfs, instant
        assert "aiohttp" not in maps  # the zygote never imported the daemon's side
        assert zygote.num_threads() == 1
        assert "must-not-leak" not in " ".join(zygote.cmdline())
    finally:
        await client.close()


async def test_healthz_is_503_while_the_zygote_restarts(daemon: Daemon) -> None:
    executor = daemon.client.app[EXECUTOR]
    assert executor.zygote.proc is not None
    os.kill(executor.zygote.proc.pid, 9)
    seen: set[int] = set()
    for _ in range(300):
        seen.add((await daemon.client.get("/healthz")).status)
        if 503 in seen and 200 in seen and executor.zygote.alive:
            break
        await asyncio.sleep(0.01)
    assert 503 in seen
    for _ in range(200):
        if (await daemon.client.get("/healthz")).status == 200:
            break
        await asyncio.sleep(0.02)
    assert (await daemon.client.get("/healthz")).status == 200


async def test_sandbox_off_still_runs_and_says_so(
    settings: Settings, admin: dict[str, str]
) -> None:
    client = await _started(dataclasses.replace(settings, sandbox="off"))
    try:
        layers = client.app[EXECUTOR].layers
        assert layers["mode"] == "off"
        assert layers["seccomp"] is False
        assert layers["uid"] is False
        await _deploy(client, admin, id="pid", source=PID)
        resp = await client.get("/api/v1/execute/pid")
        assert resp.status == 200
    finally:
        await client.close()


async def test_worker_runs_as_its_apps_own_uid(daemon: Daemon) -> None:
    if not daemon.client.app[EXECUTOR].layers.get("uid"):
        pytest.skip("needs root: workers keep the daemon's uid here")
    await daemon.make_app("home")
    await daemon.make_app("other")
    source = "import os\ndef handle(ctx):\n    return [os.getuid(), os.getgid(), os.getgroups()]\n"
    await daemon.deploy("a", source)
    await daemon.deploy("b", source, app="other")
    a = await (await daemon.client.get("/api/v1/execute/a")).json()
    b = await (await daemon.client.get("/api/v1/execute/b")).json()
    assert a[0] != 0
    assert b[0] != 0
    assert a[0] != b[0]
    assert a[2] == []
    assert b[2] == []
