"""GET /api/v1/admin/system and the board readers, against a faked Raspberry Pi /sys."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from picloud.ops import board, health
from tests.conftest import Daemon


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def pi(tmp_path: Path) -> Path:
    """A fake Pi 4 root: hot, under-voltage now, capped and throttled since boot, no memcg."""
    root = tmp_path / "pi"
    _write(root, board.THERMAL_ZONE, "61234\n")
    _write(root, board.GET_THROTTLED, "50005\n")
    _write(root, "sys/fs/cgroup/cgroup.controllers", "cpuset cpu io pids\n")
    _write(root, "proc/uptime", "86400.00 300000.00\n")
    return root


def test_throttled_bits_decode_now_and_since_boot() -> None:
    decoded = board.decode_throttled(0x50005)
    assert decoded["raw"] == "0x50005"
    assert decoded["now"] == {
        "under_voltage": True,
        "arm_frequency_capped": False,
        "throttled": True,
        "soft_temperature_limit": False,
    }
    assert decoded["since_boot"] == {
        "under_voltage": True,
        "arm_frequency_capped": False,
        "throttled": True,
        "soft_temperature_limit": False,
    }
    capped = board.decode_throttled(0xA0008)
    assert capped["now"]["soft_temperature_limit"] is True
    assert capped["now"]["under_voltage"] is False
    assert capped["since_boot"]["arm_frequency_capped"] is True
    assert capped["since_boot"]["soft_temperature_limit"] is True
    assert capped["since_boot"]["under_voltage"] is False


def test_board_files_are_read(pi: Path) -> None:
    assert board.read_temperature(pi) == 61.2
    throttled = board.read_throttled(pi)
    assert throttled is not None
    assert throttled["now"] == {
        "under_voltage": True,
        "arm_frequency_capped": False,
        "throttled": True,
        "soft_temperature_limit": False,
    }
    assert board.memory_cgroup(pi) is False
    assert board.system_uptime_s(pi) == 86400.0


def test_missing_board_files_are_none(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert board.read_temperature(empty) is None
    assert board.read_throttled(empty) is None
    assert board.memory_cgroup(empty) is None
    assert board.system_uptime_s(empty) is None
    assert board.block_device(os.stat(tmp_path).st_dev, empty) is None
    assert board.bytes_written("mmcblk0", empty) is None


def test_garbage_in_board_files_is_none(tmp_path: Path) -> None:
    _write(tmp_path, board.THERMAL_ZONE, "hot\n")
    _write(tmp_path, board.GET_THROTTLED, "zz\n")
    _write(tmp_path, "proc/uptime", "\n")
    assert board.read_temperature(tmp_path) is None
    assert board.read_throttled(tmp_path) is None
    assert board.system_uptime_s(tmp_path) is None


def test_memory_cgroup_v2_on_and_v1_table(tmp_path: Path) -> None:
    v2 = tmp_path / "v2"
    _write(v2, "sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n")
    assert board.memory_cgroup(v2) is True
    v1 = tmp_path / "v1"
    _write(
        v1,
        "proc/cgroups",
        "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t2\t1\t1\nmemory\t0\t1\t0\n",
    )
    assert board.memory_cgroup(v1) is False
    _write(v1, "proc/cgroups", "#subsys_name\thierarchy\tnum_cgroups\tenabled\nmemory\t3\t9\t1\n")
    assert board.memory_cgroup(v1) is True


def test_disk_writes_come_from_the_state_dirs_device(pi: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    st_dev = os.stat(state).st_dev
    major, minor = os.major(st_dev), os.minor(st_dev)
    _write(pi, f"sys/dev/block/{major}:{minor}/uevent", "MAJOR=179\nDEVNAME=mmcblk0p2\n")
    # 2,000,000 sectors written to mmcblk0p2 since boot (field 10), other devices ignored.
    _write(
        pi,
        "proc/diskstats",
        " 179 0 mmcblk0 1 2 3 4 5 6 9999999 8 0 0 0\n"
        " 179 2 mmcblk0p2 1 2 3 4 5 6 2000000 8 0 0 0\n",
    )
    probe = health.Probe(state, state / "picloud.db", root=pi)
    assert probe.device() == "mmcblk0p2"
    snap = health.snapshot(probe)
    disk = snap["disk"]
    assert disk["written_bytes_since_boot"] == 2_000_000 * 512
    # Uptime is exactly one day, so the per-day rate since boot is the total.
    assert disk["written_bytes_per_day"] == 2_000_000 * 512
    assert disk["written_per_day_basis"] == "boot"
    assert snap["temperature_celsius"] == 61.2
    assert snap["throttling"]["now"]["under_voltage"] is True
    assert snap["memory_cgroup"] is False
    assert snap["uptime"]["system_s"] == 86400.0


def test_executor_figures_duck_typed() -> None:
    class Pool:
        running = 2
        sandbox_report = {"seccomp": True, "landlock": False}

        def queued(self) -> list[int]:
            return [1, 2, 3]

    figures = health.executor_figures(Pool())
    assert figures == {
        "invocations": {"running": 2, "queued": 3},
        "pool": None,
        "sandbox": {"seccomp": True, "landlock": False},
    }

    class WithStats:
        layers = {"seccomp": False}

        def stats(self) -> dict[str, int]:
            return {"workers": 4, "idle_workers": 1, "running": 3, "queued": 5, "refused": 7}

    figures = health.executor_figures(WithStats())
    assert figures["invocations"] == {"running": 3, "queued": 5}
    assert figures["pool"] == {
        "workers": 4,
        "idle_workers": 1,
        "refused": 7,
        "zygote_restarts": None,
    }
    assert figures["sandbox"] == {"seccomp": False}
    assert health.executor_figures(None) == {
        "invocations": {"running": None, "queued": None},
        "pool": None,
        "sandbox": None,
    }


async def test_system_route_reports_every_field(daemon: Daemon) -> None:
    snap = await daemon.call("GET", "/api/v1/admin/system", expect=200)
    for field in (
        "cpu",
        "memory",
        "temperature_celsius",
        "throttling",
        "disk",
        "database",
        "uptime",
        "processes",
        "invocations",
        "memory_cgroup",
        "sandbox",
        "retention",
        "backup",
    ):
        assert field in snap, field
    assert len(snap["cpu"]["percent_per_core"]) == snap["cpu"]["count"]
    assert snap["memory"]["available_bytes"] > 0
    assert snap["disk"]["free_bytes"] > 0
    assert snap["disk"]["path"] == str(daemon.settings.state_dir)
    db = snap["database"]
    assert db["size_bytes"] > 0
    assert db["schema"] >= 1
    assert db["incremental_vacuum"] is True
    assert snap["processes"]["daemon_rss_bytes"] > 10 * 1024 * 1024
    assert 0 <= snap["uptime"]["daemon_s"] < 600
    assert snap["uptime"]["system_s"] > 0


async def test_system_route_needs_the_token(daemon: Daemon) -> None:
    resp = await daemon.client.get("/api/v1/admin/system")
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthorized"


def test_write_rate_since_the_daemon_started(pi: Path, tmp_path: Path) -> None:
    import time

    state = tmp_path / "state"
    state.mkdir()
    st_dev = os.stat(state).st_dev
    _write(pi, f"sys/dev/block/{os.major(st_dev)}:{os.minor(st_dev)}/uevent", "DEVNAME=sda1\n")
    _write(pi, "proc/diskstats", "   8 1 sda1 1 2 3 4 5 6 3000000 8 0 0 0\n")
    probe = health.Probe(state, state / "picloud.db", root=pi)
    # 1,000,000 sectors (512 MB) written in the hour since the daemon started: 12 GB a day.
    probe.baseline = health.DiskBaseline(time.time() - 3600, 2_000_000 * 512)
    disk = health.snapshot(probe)["disk"]
    assert disk["written_per_day_basis"] == "daemon_start"
    assert abs(disk["written_bytes_per_day"] - 1_000_000 * 512 * 24) < 1_000_000 * 512 * 24 * 0.01
    # Too early for a rate of its own: since boot instead.
    probe.baseline = health.DiskBaseline(time.time() - 5, 2_000_000 * 512)
    assert health.snapshot(probe)["disk"]["written_per_day_basis"] == "boot"
