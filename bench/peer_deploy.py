"""Deploy the peers harness's two workloads to a starting PiCloud (used by peer_picloud.sh)."""

from __future__ import annotations

import asyncio
import sys

import aiohttp

from bench import scripts
from bench.picloud_server import Admin

__all__ = ["main"]


async def _deploy(base: str) -> None:
    deadline = asyncio.get_running_loop().time() + 60
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(base + "/healthz") as resp:
                    if resp.status == 200:
                        break
            except (aiohttp.ClientError, OSError):
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{base}/healthz not ready after 60 s")
            await asyncio.sleep(0.05)
    admin = Admin(base)
    try:
        await admin.make_app("peers")
        await admin.deploy("hello", scripts.HELLO, "peers")
        await admin.deploy("counter", scripts.COUNTER, "peers")
    finally:
        await admin.close()


def main() -> int:
    asyncio.run(_deploy(sys.argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
