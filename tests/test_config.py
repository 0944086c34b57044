"""Settings: precedence, one-line errors, and a test that fails when one is undocumented."""

from __future__ import annotations

from pathlib import Path

import pytest

from picloud.config import ConfigError, load_settings, setting_names

DOC = Path(__file__).parent.parent / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    missing = [
        n for n in setting_names() if f"`{n}`" not in text or f"`PICLOUD_{n.upper()}`" not in text
    ]
    assert not missing, f"settings missing from docs/configuration.md: {missing}"


def test_defaults(tmp_path: Path) -> None:
    s = load_settings({"PICLOUD_CONFIG": str(_write(tmp_path, ""))})
    assert s.bind == "127.0.0.1:8080"
    assert s.state_dir == Path(".picloud")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "picloud.toml"
    path.write_text(text)
    return path


def test_env_beats_file_beats_default(tmp_path: Path) -> None:
    cfg = _write(tmp_path, 'bind = "0.0.0.0:9000"\nmax_queue = 5\n')
    s = load_settings({"PICLOUD_CONFIG": str(cfg), "PICLOUD_MAX_QUEUE": "7"})
    assert s.bind == "0.0.0.0:9000"
    assert s.max_queue == 7


def test_state_dir_resolution(tmp_path: Path) -> None:
    cfg = _write(tmp_path, "")
    base = {"PICLOUD_CONFIG": str(cfg)}
    assert load_settings(base).state_dir == Path(".picloud")
    systemd = {**base, "STATE_DIRECTORY": "/var/lib/picloud:/var/lib/other"}
    assert load_settings(systemd).state_dir == Path("/var/lib/picloud")
    explicit = {**systemd, "PICLOUD_STATE_DIR": "/srv/pc"}
    assert load_settings(explicit).state_dir == Path("/srv/pc")


@pytest.mark.parametrize(
    ("env", "file", "needle"),
    [
        ({"PICLOUD_NOPE": "1"}, "", "PICLOUD_NOPE"),
        ({}, "nope = 1\n", "nope"),
        ({"PICLOUD_MAX_QUEUE": "many"}, "", "max_queue"),
        ({"PICLOUD_DURABILITY": "sometimes"}, "", "durability"),
        ({"PICLOUD_BIND": "localhost"}, "", "bind"),
        ({"PICLOUD_METRICS_PUBLIC": "maybe"}, "", "metrics_public"),
        ({}, "max_queue = [1]\n", "max_queue"),
        ({}, "bind = \n", "picloud.toml"),
    ],
)
def test_bad_setting_names_itself(
    tmp_path: Path, env: dict[str, str], file: str, needle: str
) -> None:
    cfg = _write(tmp_path, file)
    with pytest.raises(ConfigError) as info:
        load_settings({"PICLOUD_CONFIG": str(cfg), **env})
    message = str(info.value)
    assert needle in message
    assert "\n" not in message
