"""The dashboard's files as the daemon serves them: caching, size, and API-only fetches."""

from __future__ import annotations

import gzip
import re
import tomllib
from pathlib import Path

from picloud.dashboard import STATIC_DIR, bundle
from tests.conftest import Daemon

ROOT = Path(__file__).resolve().parents[1]
JS = sorted(STATIC_DIR.rglob("*.js"))
_IMPORT = re.compile(r"""(?:from\s+|import\s*\(\s*)["'](\.{1,2}/[^"']+)["']""")


def _asset_url(html: str, name: str) -> str:
    match = re.search(rf'"(/assets/[0-9a-f]+/{re.escape(name)})"', html)
    assert match, f"{name} is not referenced by index.html"
    return match.group(1)


async def test_root_serves_the_page_and_revalidates(daemon: Daemon) -> None:
    resp = await daemon.client.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    html = await resp.text()
    assert f"/assets/{bundle().version}/js/main.js" in html
    assert "{{ASSETS}}" not in html
    assert resp.headers["Cache-Control"] == "no-cache"
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    again = await daemon.client.get("/", headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status == 304


async def test_assets_are_immutable_gzipped_and_etagged(daemon: Daemon) -> None:
    html = await (await daemon.client.get("/")).text()
    url = _asset_url(html, "js/main.js")
    resp = await daemon.client.get(url, headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/javascript")
    assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert resp.headers["Content-Encoding"] == "gzip"
    body = gzip.decompress(await resp.read())
    assert body == (STATIC_DIR / "js/main.js").read_bytes()
    cached = await daemon.client.get(url, headers={"If-None-Match": resp.headers["ETag"]})
    assert cached.status == 304
    plain = await daemon.client.get(url, headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert await plain.read() == body


async def test_a_stale_version_is_served_but_not_cached(daemon: Daemon) -> None:
    resp = await daemon.client.get("/assets/000000000000/css/app.css")
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-cache"


async def test_unknown_files_and_api_paths_never_get_the_page(daemon: Daemon) -> None:
    version = bundle().version
    for path in (
        f"/assets/{version}/nope.js",
        f"/assets/{version}/../pyproject.toml",
        f"/assets/{version}/%2e%2e/__init__.py",
        f"/assets/{version}/index.html",
        "/api/v1/dashboard",
        "/api/",
    ):
        resp = await daemon.client.get(path)
        assert resp.status == 404, path
        assert (await resp.json())["error"]["code"] == "not_found", path


async def test_every_module_import_resolves_to_a_served_file(daemon: Daemon) -> None:
    files = bundle().assets
    seen = 0
    for path in JS:
        for target in _IMPORT.findall(path.read_text()):
            rel = (path.parent / target).resolve().relative_to(STATIC_DIR.resolve()).as_posix()
            assert rel in files, f"{path.name} imports missing {target}"
            resp = await daemon.client.get(f"/assets/{bundle().version}/{rel}")
            assert resp.status == 200, rel
            seen += 1
    assert seen > 10


def test_whole_dashboard_is_under_300_kb_gzipped() -> None:
    total = sum(len(gzip.compress(p.read_bytes(), 9)) for p in STATIC_DIR.rglob("*") if p.is_file())
    assert 5_000 < total < 300 * 1024, total


def test_every_fetch_goes_to_a_documented_api_v1_path() -> None:
    calls = 0
    for path in JS:
        text = path.read_text()
        for match in re.finditer(r"\bfetch\(\s*(\S)", text):
            rest = text[match.start(1) :]
            assert re.match(r"""[`"']/api/v1/""", rest), f"{path.name}: {rest[:60]!r}"
            calls += 1
        # No other API version or private path is named anywhere in the code.
        for literal in re.findall(r"""/api/[^\s"'`]*""", text):
            assert re.match(r"/api/v1(/|$)", literal), f"{path.name}: {literal}"
        assert "localStorage" not in text, f"{path.name}: the token must stay in sessionStorage"
    assert calls >= 2


def test_package_data_ships_every_static_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["picloud"]
    package = ROOT / "picloud"
    shipped = {p for pat in patterns for p in package.glob(pat) if p.is_file()}
    every = {p for p in STATIC_DIR.rglob("*") if p.is_file()}
    assert every
    assert every <= shipped, sorted(str(p) for p in every - shipped)
    assert any(p.parent.name == "pages" for p in every)
