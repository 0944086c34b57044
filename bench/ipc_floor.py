"""The floor under every daemon <-> worker hand-off: a msgpack ping-pong over a socketpair.

    .venv/bin/python -m bench.ipc_floor [--n 30000]

A blocking client process (the worker's side) and a uvloop Protocol (the
daemon's side) exchange one small frame per round trip, three ways: left to
the scheduler, both pinned to one CPU, pinned to two different CPUs. The gap
between "same CPU" and the others is what `picloud.affinity` buys.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import time

import msgspec
import uvloop

_FRAME = msgspec.msgpack.encode({"t": "call", "id": 1, "op": "kv.get", "args": {"key": "k"}})
_REPLY = msgspec.msgpack.encode({"t": "reply", "id": 1, "ok": "1"})


def _client(sock: socket.socket, n: int, cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    for _ in range(n):
        sock.sendall(_FRAME)
        sock.recv(65536)
    sock.close()


class _Echo(asyncio.Protocol):
    def __init__(self, done: asyncio.Future[float]) -> None:
        self.done = done
        self.t0 = time.perf_counter()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        msgspec.msgpack.decode(data)
        assert self.transport is not None
        self.transport.write(_REPLY)

    def connection_lost(self, exc: Exception | None) -> None:
        self.done.set_result(time.perf_counter() - self.t0)


async def _serve(sock: socket.socket) -> float:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[float] = loop.create_future()
    await loop.connect_accepted_socket(lambda: _Echo(done), sock)
    return await done


def round_trip_us(n: int, server_cpu: int | None, client_cpu: int | None) -> float:
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        ours.close()
        try:
            _client(theirs, n, client_cpu)
        finally:
            os._exit(0)
    theirs.close()
    saved = os.sched_getaffinity(0)
    if server_cpu is not None:
        os.sched_setaffinity(0, {server_cpu})
    try:
        elapsed = uvloop.run(_serve(ours))
    finally:
        os.sched_setaffinity(0, saved)
        os.waitpid(pid, 0)
    return elapsed / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30000)
    n = parser.parse_args().n
    cpus = sorted(os.sched_getaffinity(0))
    cases = {"scheduler's choice": (None, None)}
    if len(cpus) > 1:
        cases["same CPU"] = (cpus[-1], cpus[-1])
        cases["two CPUs"] = (cpus[-1], cpus[0])
    print("| placement | µs per round trip | round trips/s |\n|---|---:|---:|")
    for name, (server, client) in cases.items():
        us = round_trip_us(n, server, client)
        print(f"| {name} | {us:.1f} | {1e6 / us:,.0f} |")


if __name__ == "__main__":
    main()
