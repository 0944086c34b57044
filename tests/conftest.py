"""Fixtures: the real daemon (app factory) on a loopback port with a temporary state dir."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop
from aiohttp.test_utils import TestClient, TestServer

from picloud.app import create_app
from picloud.config import Settings
from picloud.state import RUNTIME

ADMIN_TOKEN = "pc_admin_test-token-0123456789"
# The machine codes PRODUCT.md names, pinned here rather than read from picloud.errors.
ERROR_CODES = {
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "conflict",
    "payload_too_large",
    "rate_limited",
    "script_error",
    "timeout",
    "resource_limit",
    "unavailable",
    "internal",
}


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Callable[[], Any]]:
    """Run every async test on uvloop, as the daemon does."""
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # service_user="": the test process itself must never switch to the service user.
    return Settings(
        bind="127.0.0.1:0", state_dir=tmp_path / "state", admin_token=ADMIN_TOKEN, service_user=""
    )


@pytest.fixture
def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclasses.dataclass
class Daemon:
    """A running daemon and a client already holding the admin token."""

    client: TestClient[Any, Any]
    settings: Settings
    headers: dict[str, str]

    async def call(
        self, method: str, path: str, *, expect: int | None = None, **kwargs: Any
    ) -> Any:
        """An admin call; returns the decoded JSON body (or text), checking the status."""
        headers = {**self.headers, **kwargs.pop("headers", {})}
        resp = await self.client.request(method, path, headers=headers, **kwargs)
        body: Any = await resp.read()
        if resp.content_type == "application/json":
            body = await resp.json()
        if expect is not None:
            assert resp.status == expect, (resp.status, body)
        return body

    async def make_app(self, app_id: str = "home") -> None:
        await self.call("POST", "/api/v1/admin/apps", json={"id": app_id}, expect=201)

    async def deploy(
        self, script_id: str, source: str, app: str = "home", **fields: Any
    ) -> dict[str, Any]:
        body = {"id": script_id, "app": app, "source": source, "public": True, **fields}
        result: dict[str, Any] = await self.call(
            "POST", "/api/v1/admin/scripts", json=body, expect=201
        )
        return result


@pytest.fixture
async def daemon(settings: Settings, admin: dict[str, str]) -> AsyncIterator[Daemon]:
    server = TestServer(create_app(settings), host="127.0.0.1", port=0)
    client: TestClient[Any, Any] = TestClient(server)
    await client.start_server()
    server.app[RUNTIME].listening = True  # what `picloud serve` sets once its site is up
    try:
        yield Daemon(client, settings, admin)
    finally:
        await client.close()


@pytest.fixture
async def client(daemon: Daemon) -> TestClient[Any, Any]:
    return daemon.client
