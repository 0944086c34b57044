"""Settings: defaults < config file (TOML) < PICLOUD_* environment variables.

Every field of `Settings` is one setting; its TOML key is the field name and
its environment variable `PICLOUD_<NAME>`. Anything unknown or malformed stops
start-up with one line naming it. docs/configuration.md lists every setting
(tests/test_config.py fails when one is missing).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

__all__ = ["ConfigError", "Settings", "load_settings", "setting_names"]

DEFAULT_CONFIG_FILE = Path("/etc/picloud/picloud.toml")
ENV_PREFIX = "PICLOUD_"
# Environment variables that are not settings (read elsewhere, never rejected).
_NOT_SETTINGS = {
    "PICLOUD_CONFIG",
    "PICLOUD_URL",
    "PICLOUD_TOKEN",
    "PICLOUD_SRC",
    "PICLOUD_SKIP_START",
    "PICLOUD_PORT",
    "PICLOUD_FORCE",
    "PICLOUD_VERSION",
}

MiB = 1024 * 1024


class ConfigError(Exception):
    """A setting is unknown or malformed; the message names it."""


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    # --- daemon
    bind: str = "127.0.0.1:8080"
    state_dir: Path = Path(".picloud")
    admin_token: str | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_timeout_s: float = 10.0
    service_user: str = "picloud"
    # --- store
    durability: Literal["normal", "full"] = "normal"
    # --- HTTP bodies
    max_execute_body_bytes: int = 1 * MiB
    max_admin_body_bytes: int = 2 * MiB
    max_script_source_bytes: int = 256 * 1024
    # --- script limits: per-script values, capped instance-wide
    default_timeout_ms: int = 5000
    max_timeout_ms: int = 60000
    default_memory_mb: int = 64
    max_memory_mb: int = 512
    log_cap_bytes: int = 64 * 1024
    # --- executor
    sandbox: Literal["auto", "required", "off"] = "auto"
    sandbox_uid_base: int = 0
    max_workers: int = 0
    max_workers_per_app: int = 0
    max_queue: int = 64
    queue_timeout_ms: int = 5000
    worker_max_invocations: int = 1000
    worker_idle_s: float = 300.0
    cpu_colocate: bool = True
    # --- KV
    kv_max_value_bytes: int = 1 * MiB
    kv_app_quota_bytes: int = 256 * MiB
    kv_read_cache_bytes: int = 4 * MiB
    # --- triggers
    trigger_concurrency: int = 16
    # --- retention
    invocations_keep: int = 10000
    invocations_keep_days: float = 7.0
    script_versions_keep: int = 50
    delivered_events_keep_h: float = 24.0
    # --- operations
    metrics_public: bool = False
    backup_dir: Path | None = None
    backup_interval_h: float = 24.0
    backup_keep: int = 7

    @property
    def host(self) -> str:
        return self.bind.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.bind.rsplit(":", 1)[1])

    @property
    def db_path(self) -> Path:
        return self.state_dir / "picloud.db"


def setting_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Settings)]


def load_settings(
    environ: Mapping[str, str] | None = None, config_file: Path | None = None
) -> Settings:
    """Build Settings from the environment and the config file; ConfigError on bad input."""
    env = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    path = config_file or Path(env.get("PICLOUD_CONFIG", DEFAULT_CONFIG_FILE))
    if path.exists():
        raw.update(_read_toml(path))
    elif "PICLOUD_CONFIG" in env or config_file is not None:
        raise ConfigError(f"config file {path} does not exist")
    if "PICLOUD_STATE_DIR" not in env and "state_dir" not in raw and env.get("STATE_DIRECTORY"):
        # systemd's StateDirectory= may list several paths separated by ':'.
        raw["state_dir"] = env["STATE_DIRECTORY"].split(":")[0]
    for name, value in env.items():
        if name.startswith(ENV_PREFIX) and name not in _NOT_SETTINGS:
            key = name[len(ENV_PREFIX) :].lower()
            if key not in _FIELDS:
                raise ConfigError(f"unknown setting {name}")
            raw[key] = value
    values = {key: _convert(key, value) for key, value in raw.items()}
    settings = Settings(**values)  # type: ignore[arg-type]
    _check(settings)
    return settings


def _read_toml(path: Path) -> dict[str, object]:
    import tomllib  # here, not at the top: a daemon without a config file never loads it

    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    for key in data:
        if key not in _FIELDS:
            raise ConfigError(f"unknown setting {key!r} in {path}")
    return data


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _convert(key: str, value: object) -> object:
    hint = typing.get_type_hints(Settings)[key]
    try:
        return _coerce(hint, value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {key} (PICLOUD_{key.upper()}): {exc}") from None


def _coerce(hint: object, value: object) -> object:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value in ("", None):
            return None
        return _coerce(args[0], value)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(map(str, choices))}, got {value!r}")
        return value
    if hint is bool:
        return _to_bool(value)
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise TypeError(f"must be a number, got {value!r}")
        return hint(value)
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise TypeError(f"must be a path, got {value!r}")
        return Path(value)
    if hint is str:
        if not isinstance(value, str):
            raise TypeError(f"must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported setting type {hint!r}")


def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false, got {value!r}")


def _check(s: Settings) -> None:
    host, sep, port = s.bind.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"setting bind (PICLOUD_BIND): expected HOST:PORT, got {s.bind!r}")
    positive = [
        f.name
        for f in dataclasses.fields(s)
        if f.name.startswith(("max_", "default_", "kv_", "log_cap"))
        and f.name not in ("max_workers", "max_workers_per_app", "kv_read_cache_bytes")
    ]
    for name in positive:
        if getattr(s, name) <= 0:
            raise ConfigError(f"setting {name} (PICLOUD_{name.upper()}): must be positive")
    if s.default_timeout_ms > s.max_timeout_ms:
        raise ConfigError("setting default_timeout_ms: must not exceed max_timeout_ms")
    if s.default_memory_mb > s.max_memory_mb:
        raise ConfigError("setting default_memory_mb: must not exceed max_memory_mb")
    if s.kv_read_cache_bytes < 0:
        raise ConfigError("setting kv_read_cache_bytes: must be 0 (off) or more")
    # Operations: a zero interval would back up every second, a negative keep prune everything.
    for name in ("backup_interval_h", "backup_keep", "script_versions_keep"):
        if getattr(s, name) <= 0:
            raise ConfigError(f"setting {name} (PICLOUD_{name.upper()}): must be positive")
    for name in ("invocations_keep", "invocations_keep_days", "delivered_events_keep_h"):
        if getattr(s, name) < 0:
            raise ConfigError(f"setting {name} (PICLOUD_{name.upper()}): must not be negative")
