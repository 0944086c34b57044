"""The five versions and how a bump cascades to the product version (docs/versioning.md)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from picloud import versions
from picloud.api.common import API
from picloud.api.openapi import build_document
from picloud.app import create_app
from picloud.config import Settings

# One row per released product version: (product, sdk, api, wire). Add a row with every
# release; the current product version must have one.
LEDGER: list[tuple[str, str, int, int]] = [
    ("0.1.0", "1.0", 1, 1),
]
ROOT = Path(__file__).resolve().parents[1]


def _triple(version: str) -> tuple[int, int, int]:
    core = version.split("+")[0].split("-")[0]
    major, minor, patch = (int(p) for p in core.split("."))
    return major, minor, patch


def _step(old: str, new: str) -> str:
    """The size of a product bump: major, minor, patch or none."""
    a, b = _triple(old), _triple(new)
    if b <= a:
        return "none"
    return "major" if b[0] > a[0] else "minor" if b[1] > a[1] else "patch"


def _required(old: tuple[str, str, int, int], new: tuple[str, str, int, int]) -> str:
    """The least product step the changes between two releases ask for."""
    _, sdk_a, api_a, wire_a = old
    _, sdk_b, api_b, wire_b = new
    sdk_major = sdk_a.split(".")[0] != sdk_b.split(".")[0]
    breaking = sdk_major or api_a != api_b
    if _triple(new[0])[0] >= 1:  # strict, from 1.0
        if breaking:
            return "major"
        return "minor" if (sdk_a != sdk_b or wire_a != wire_b) else "patch"
    return "minor" if (breaking or wire_a != wire_b) else "patch"


_ORDER = {"none": 0, "patch": 1, "minor": 2, "major": 3}


def test_product_version_is_the_packages() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert versions.PRODUCT_VERSION == project["version"]


def test_current_versions_are_in_the_ledger() -> None:
    rows = {row[0]: row for row in LEDGER}
    assert versions.PRODUCT_VERSION in rows, "add a LEDGER row for this product version"
    _, sdk, api, wire = rows[versions.PRODUCT_VERSION]
    assert (versions.SDK_VERSION, versions.API_VERSION, versions.WIRE_VERSION) == (sdk, api, wire)


def test_every_release_bumped_the_product_enough() -> None:
    for old, new in zip(LEDGER, LEDGER[1:], strict=False):
        need, got = _required(old, new), _step(old[0], new[0])
        assert _ORDER[got] >= max(_ORDER[need], 1), (old, new, need, got)


@pytest.mark.parametrize(
    ("old", "new", "need"),
    [
        (("0.1.0", "1.0", 1, 1), ("0.1.1", "1.1", 1, 1), "patch"),
        (("0.1.0", "1.0", 1, 1), ("0.2.0", "2.0", 1, 1), "minor"),
        (("0.1.0", "1.0", 1, 1), ("0.2.0", "1.0", 1, 2), "minor"),
        (("1.0.0", "1.0", 1, 1), ("1.1.0", "1.1", 1, 1), "minor"),
        (("1.0.0", "1.0", 1, 1), ("2.0.0", "1.0", 2, 1), "major"),
        (("1.0.0", "1.0", 1, 1), ("1.0.1", "1.0", 1, 1), "patch"),
    ],
)
def test_the_cascade_rule(
    old: tuple[str, str, int, int], new: tuple[str, str, int, int], need: str
) -> None:
    assert _required(old, new) == need


def test_sdk_version_is_one_constant() -> None:
    from picloud import sdk

    assert getattr(sdk, "SDK_VERSION", versions.SDK_VERSION) == versions.SDK_VERSION


def test_every_api_route_is_under_the_version_prefix(tmp_path: Path) -> None:
    assert f"/api/v{versions.API_VERSION}" == API
    doc = build_document(create_app(Settings(state_dir=tmp_path)))
    api_paths = [p for p in doc["paths"] if p.startswith("/api/")]
    assert api_paths
    for path in api_paths:
        assert path.startswith(API + "/") or path == "/api/{tail}", path
