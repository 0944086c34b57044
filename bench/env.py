"""What every benchmark section gets: the servers under test, the admin client, options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.measure import Opts
from bench.picloud_server import Admin, start_picloud, wait_ready
from bench.procs import Server

__all__ = ["APP", "Env"]

APP = "bench"


@dataclass
class Env:
    picloud: Server
    ceiling: Server
    admin: Admin
    opts: Opts
    tmp: Path

    @property
    def state_dir(self) -> Path:
        return self.tmp / "picloud-state"

    def execute_url(self, sid: str, query: str = "") -> str:
        return f"{self.picloud.base}/api/v1/execute/{sid}" + (f"?{query}" if query else "")

    async def crash_and_restart(self) -> float:
        """SIGKILL the daemon's whole process group, start it again on the same state and port.

        Returns the seconds until /healthz answered 200 again.
        """
        port = int(self.picloud.base.rsplit(":", 1)[1])
        self.picloud.kill()
        self.picloud = start_picloud(self.state_dir, self.picloud.log_path, port)
        return await wait_ready(self.picloud)
