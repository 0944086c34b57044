"""CPU co-location: a lone invocation shares the event loop's CPU; concurrent ones stay off it."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from picloud import affinity
from picloud.app import create_app
from picloud.config import Settings
from picloud.state import RUNTIME
from tests.conftest import Daemon

pytestmark = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="co-location needs at least two CPUs"
)

WHERE = """
import os, time

def handle(ctx):
    time.sleep(float(ctx["request"]["query"].get("sleep", "0")))
    return {"cpus": sorted(os.sched_getaffinity(0))}
"""


async def _cpus(client: TestClient[Any, Any], sleep: float = 0) -> list[int]:
    resp = await client.get(f"/api/v1/execute/where?sleep={sleep}")
    assert resp.status == 200, await resp.text()
    cpus: list[int] = (await resp.json())["cpus"]
    return cpus


async def test_a_lone_run_shares_the_loops_cpu_and_concurrent_runs_leave_it(
    daemon: Daemon,
) -> None:
    home = max(os.sched_getaffinity(0))
    # The loop thread (this test's own thread: the daemon runs in-process) is on home now.
    assert os.sched_getaffinity(0) == {home}
    await daemon.make_app()
    await daemon.deploy("where", WHERE)
    assert await _cpus(daemon.client) == [home]
    together = await asyncio.gather(*(_cpus(daemon.client, 0.3) for _ in range(3)))
    away = [cpus for cpus in together if home not in cpus]
    assert away, together  # at most the first of them ran alone
    assert all(cpus for cpus in away)
    # Alone again: back home.
    assert await _cpus(daemon.client) == [home]


async def test_store_threads_run_on_any_cpu(daemon: Daemon) -> None:
    """Threads inherit the loop thread's CPU; the store's must not be confined to it."""
    await daemon.make_app()
    await daemon.call("GET", "/api/v1/admin/apps", expect=200)  # a read on a reader thread
    names = ("store-write", "store-checkpoint", "store-read")
    threads = [t for t in threading.enumerate() if t.name.startswith(names)]
    assert threads
    for thread in threads:
        assert thread.native_id is not None
        assert len(os.sched_getaffinity(thread.native_id)) > 1, thread.name


async def test_colocation_off_leaves_every_cpu_to_everyone(
    settings: Settings, admin: dict[str, str]
) -> None:
    before = os.sched_getaffinity(0)
    server = TestServer(create_app(dataclasses.replace(settings, cpu_colocate=False)), port=0)
    client: TestClient[Any, Any] = TestClient(server)
    await client.start_server()
    server.app[RUNTIME].listening = True
    try:
        assert os.sched_getaffinity(0) == before
        d = Daemon(client, settings, admin)
        await d.make_app()
        await d.deploy("where", WHERE)
        assert set(await _cpus(client)) == before
    finally:
        await client.close()


async def test_the_loop_thread_gets_its_cpus_back_on_shutdown(
    settings: Settings, admin: dict[str, str]
) -> None:
    before = os.sched_getaffinity(0)
    server = TestServer(create_app(settings), port=0)
    client: TestClient[Any, Any] = TestClient(server)
    await client.start_server()
    assert os.sched_getaffinity(0) != before
    await client.close()
    assert os.sched_getaffinity(0) == before


async def test_two_daemons_in_one_process_share_the_pin(
    settings: Settings, admin: dict[str, str], tmp_path: Path
) -> None:
    before = os.sched_getaffinity(0)
    second = dataclasses.replace(settings, state_dir=tmp_path / "second")
    clients = [TestClient(TestServer(create_app(s), port=0)) for s in (settings, second)]
    for client in clients:
        await client.start_server()
    home = os.sched_getaffinity(0)
    assert len(home) == 1
    await clients[0].close()
    assert os.sched_getaffinity(0) == home  # the other daemon still runs on it
    await clients[1].close()
    assert os.sched_getaffinity(0) == before


BUSY = """
import os, time

def handle(ctx):
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    return {"cpus": sorted(os.sched_getaffinity(0))}
"""


async def test_a_cpu_bound_run_leaves_the_loops_cpu(daemon: Daemon) -> None:
    home = max(os.sched_getaffinity(0))
    await daemon.make_app()
    await daemon.deploy("busy", BUSY)
    resp = await daemon.client.get("/api/v1/execute/busy")
    assert resp.status == 200, await resp.text()
    cpus = (await resp.json())["cpus"]
    assert cpus
    assert home not in cpus  # 50 ms of CPU: moved off after 10 ms
    await daemon.deploy("where", WHERE)
    assert await _cpus(daemon.client) == [home]  # a short run alone goes home again


def test_any_cpu_means_the_cpus_the_process_was_given() -> None:
    """taskset / CPUAffinity= are kept: "any" and "away" never widen them."""
    saved = affinity.allowed_cpus()
    try:
        affinity.allow({0, 1})
        assert affinity.cpus_for(affinity.ANY_CPU) == {0, 1}
        assert affinity.cpus_for(affinity.away_from(1)) == {0}
        affinity.allow({1})
        assert affinity.cpus_for(affinity.away_from(1)) == {1}  # nothing else: stay
    finally:
        affinity.allow(saved)


CHATTY = """
import os, time

def handle(ctx):
    c = kv.collection("x")
    c.set("k", 1)
    end = time.process_time() + 0.05
    while time.process_time() < end:
        c.get("k")
    return {"cpus": sorted(os.sched_getaffinity(0))}
"""


async def test_a_run_busy_with_sdk_calls_stays_on_the_loops_cpu(daemon: Daemon) -> None:
    """Each call is a hand-off to the loop: the case co-location is for, however long."""
    home = max(os.sched_getaffinity(0))
    await daemon.make_app()
    await daemon.deploy("chatty", CHATTY)
    resp = await daemon.client.get("/api/v1/execute/chatty")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["cpus"] == [home]
