"""The execute path end to end: real daemon, real zygote, real sandboxed workers."""

from __future__ import annotations

from typing import Any

from tests.conftest import Daemon

HELLO = "def handle(ctx):\n    return {'hello': 'world'}\n"


async def test_hello_returns_json(daemon: Daemon) -> None:
    await daemon.make_app("home")
    await daemon.deploy("hello", HELLO)
    resp = await daemon.client.get("/api/v1/execute/hello")
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    assert await resp.json() == {"hello": "world"}
    assert resp.headers["X-PiCloud-Invocation"].startswith("inv_")


async def test_sandbox_layers_are_reported(daemon: Daemon) -> None:
    from picloud.executor import EXECUTOR

    layers: dict[str, Any] = daemon.client.app[EXECUTOR].layers
    print(layers)
    assert layers["mode"] == "auto"
    assert layers["seccomp"] is True
    assert layers["fd_close"] is True
