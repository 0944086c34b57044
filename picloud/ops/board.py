"""The board's own files (/sys, /proc): temperature, throttling, cgroups, disk writes, uptime.

Every reader takes `root` so tests can fake a Raspberry Pi's /sys and /proc in a
temporary directory. A file the board does not have gives None, never an error.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "THROTTLE_FLAGS",
    "block_device",
    "decode_throttled",
    "memory_cgroup",
    "read_temperature",
    "read_throttled",
    "bytes_written",
    "cpu_times",
    "system_uptime_s",
]

ROOT = Path("/")
THERMAL_ZONE = "sys/class/thermal/thermal_zone0/temp"
GET_THROTTLED = "sys/devices/platform/soc/soc:firmware/get_throttled"
# Bit n is the condition now; bit n + 16 says it has happened since boot (raspberrypi/linux#2397).
THROTTLE_FLAGS = {
    0: "under_voltage",
    1: "arm_frequency_capped",
    2: "throttled",
    3: "soft_temperature_limit",
}
_STICKY_SHIFT = 16
# /proc/diskstats counts in 512-byte sectors whatever the device's own sector size.
SECTOR_BYTES = 512


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def read_temperature(root: Path = ROOT) -> float | None:
    """The SoC temperature in °C from thermal_zone0, else psutil's first sensor, else None."""
    raw = _read(root / THERMAL_ZONE)
    if raw is not None:
        try:
            return round(int(raw.strip()) / 1000, 1)
        except ValueError:
            return None
    return _psutil_temperature() if root == ROOT else None


def _psutil_temperature() -> float | None:
    import psutil

    read = getattr(psutil, "sensors_temperatures", None)
    if read is None:
        return None
    try:
        sensors = read()
    except (OSError, RuntimeError):
        return None
    # Names vary between boards and kernels (cpu_thermal, cpu-thermal, coretemp, ...).
    for name in ("cpu_thermal", "cpu-thermal", "coretemp", "k10temp", "soc_thermal"):
        if sensors.get(name):
            return round(float(sensors[name][0].current), 1)
    for entries in sensors.values():
        if entries:
            return round(float(entries[0].current), 1)
    return None


def decode_throttled(value: int) -> dict[str, object]:
    """The firmware's throttled word: the raw hex, and each flag now and since boot."""
    now = {name: bool(value >> bit & 1) for bit, name in THROTTLE_FLAGS.items()}
    since_boot = {
        name: bool(value >> (bit + _STICKY_SHIFT) & 1) for bit, name in THROTTLE_FLAGS.items()
    }
    return {"raw": f"0x{value:x}", "now": now, "since_boot": since_boot}


def read_throttled(root: Path = ROOT) -> dict[str, object] | None:
    """Decoded get_throttled, or None off a Raspberry Pi (the file is absent)."""
    raw = _read(root / GET_THROTTLED)
    if raw is None:
        return None
    try:
        return decode_throttled(int(raw.strip(), 16))
    except ValueError:
        return None


def memory_cgroup(root: Path = ROOT) -> bool | None:
    """Is the memory cgroup controller on? v2 first, then the v1 table; None if unknown.

    Pi OS kernels boot with cgroup_disable=memory; 6.12 dropped memory from /proc/cgroups,
    so cgroup.controllers (v2) is the answer that still works there.
    """
    controllers = _read(root / "sys/fs/cgroup/cgroup.controllers")
    if controllers is not None:
        return "memory" in controllers.split()
    table = _read(root / "proc/cgroups")
    if table is None:
        return None
    for line in table.splitlines():
        fields = line.split()
        if fields and fields[0] == "memory" and len(fields) >= 4:
            return fields[3] == "1"
    return False


def block_device(st_dev: int, root: Path = ROOT) -> str | None:
    """The block device name (e.g. mmcblk0p2) holding a filesystem, from its st_dev."""
    major, minor = os.major(st_dev), os.minor(st_dev)
    uevent = _read(root / f"sys/dev/block/{major}:{minor}/uevent")
    if uevent is None:
        return None
    for line in uevent.splitlines():
        key, _, value = line.partition("=")
        if key == "DEVNAME" and value:
            return value.strip()
    return None


def bytes_written(device: str, root: Path = ROOT) -> int | None:
    """Bytes written to `device` since boot, from /proc/diskstats (field 10, sectors)."""
    table = _read(root / "proc/diskstats")
    if table is None:
        return None
    for line in table.splitlines():
        fields = line.split()
        if len(fields) >= 10 and fields[2] == device:
            try:
                return int(fields[9]) * SECTOR_BYTES
            except ValueError:
                return None
    return None


def system_uptime_s(root: Path = ROOT) -> float | None:
    raw = _read(root / "proc/uptime")
    if raw is None:
        return None
    try:
        return float(raw.split()[0])
    except (ValueError, IndexError):
        return None


def cpu_times(root: Path = ROOT) -> list[tuple[int, ...]] | None:
    """Per CPU, the ten /proc/stat counters (user nice system idle iowait irq softirq steal
    guest guest_nice, in clock ticks; missing ones 0); None without /proc/stat."""
    table = _read(root / "proc/stat")
    if table is None:
        return None
    cpus: list[tuple[int, ...]] = []
    for line in table.splitlines():
        fields = line.split()
        if not fields or not fields[0].startswith("cpu") or fields[0] == "cpu":
            continue
        try:
            counters = [int(f) for f in fields[1:11]]
        except ValueError:
            return None
        cpus.append(tuple(counters + [0] * (10 - len(counters))))
    return cpus or None
