"""Backup and restore: the archive, the round trip through a fresh daemon, the refusals."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from picloud.app import create_app
from picloud.cli import main
from picloud.config import Settings
from picloud.ops import archive, backup
from picloud.ops.lock import StateLock
from picloud.state import DB, RUNTIME
from picloud.store import migrate
from tests.conftest import ADMIN_TOKEN, Daemon

ON_GADGET = """
def handle(ctx):
    kv.collection("seen").set(ctx["event"]["key"], ctx["event"]["op"])
"""
HELLO = """
def handle(ctx):
    return {"v": VERSION, "secret": ctx["secrets"].get("GREETING")}
"""


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Daemon]:
    """A real daemon on `settings` (as the conftest fixture, for a second state dir)."""
    server = TestServer(create_app(settings), host="127.0.0.1", port=0)
    client: TestClient[Any, Any] = TestClient(server)
    await client.start_server()
    server.app[RUNTIME].listening = True
    try:
        yield Daemon(client, settings, {"Authorization": f"Bearer {ADMIN_TOKEN}"})
    finally:
        await client.close()


def cli(*args: str, state: Path, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`picloud ARGS` as a real process (for the round trip and the live backup)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICLOUD_")}
    env["PICLOUD_STATE_DIR"] = str(state)
    if config is not None:
        env["PICLOUD_CONFIG"] = str(config)
    return subprocess.run(
        [sys.executable, "-m", "picloud", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`picloud ARGS` in this process (the same main(); no interpreter start-up per call)."""
    for name in [k for k in os.environ if k.startswith("PICLOUD_")]:
        monkeypatch.delenv(name)
    empty = tmp_path / "no-config.toml"
    empty.write_text("")
    monkeypatch.setenv("PICLOUD_CONFIG", str(empty))

    def call(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
        monkeypatch.setenv("PICLOUD_STATE_DIR", str(state))
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out.out, out.err)

    return call


async def populate(d: Daemon) -> dict[str, Any]:
    """Apps, a key, a secret, a script with three versions, KV data, a trigger, a dead letter."""
    await d.make_app("home")
    await d.make_app("garage")
    key = (await d.call("POST", "/api/v1/admin/apps/home/keys", json={}, expect=201))["key"]
    await d.call(
        "PUT", "/api/v1/admin/apps/home/secrets/GREETING", json={"value": "hi"}, expect=200
    )
    await d.deploy("hello", HELLO.replace("VERSION", "1"), public=False)
    for v in (2, 3):
        await d.call(
            "PUT",
            "/api/v1/admin/scripts/hello",
            json={"source": HELLO.replace("VERSION", str(v))},
            expect=200,
        )
    await d.deploy("on-widget", ON_GADGET)
    for k in range(20):
        await d.call(
            "PUT",
            f"/api/v1/admin/apps/home/kv/widgets/w{k:02d}",
            json={"value": {"n": k, "tags": ["a", "b"]}},
        )
    trigger = await d.call(
        "POST",
        "/api/v1/admin/triggers",
        json={
            "app": "home",
            "kind": "kv",
            "collection": "gadgets",
            "ops": ["insert"],
            "script": "on-widget",
        },
        expect=201,
    )
    await d.client.server.app[DB].write(lambda c: _dead_letter(c, trigger["id"]))
    return {"key": key, "trigger": trigger["id"]}


def _dead_letter(conn: sqlite3.Connection, trigger_id: str) -> None:
    conn.execute(
        "INSERT INTO dead_letters (id, app_id, trigger_id, script_id, order_key, event, attempts,"
        " error, created_at, handler_status) VALUES ('dl_backup1', 'home', ?, 'on-widget',"
        " ?, ?, 3, 'boom', 1, 'none')",
        (trigger_id, "gadgets\x00g1", json.dumps({"type": "kv", "op": "insert", "key": "g1"})),
    )


async def download(d: Daemon) -> bytes:
    resp = await d.client.get("/api/v1/admin/backup", headers=d.headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == "application/gzip"
    assert "attachment" in resp.headers["Content-Disposition"]
    return await resp.read()


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]


async def test_round_trip_through_a_fresh_daemon(daemon: Daemon, tmp_path: Path) -> None:
    made = await populate(daemon)
    file = tmp_path / "backup.tar.gz"
    file.write_bytes(await download(daemon))

    fresh = tmp_path / "fresh"
    done = cli("restore", str(file), state=fresh)
    assert done.returncode == 0, done.stderr
    assert "restored" in done.stdout

    async with serve(Settings(bind="127.0.0.1:0", state_dir=fresh, admin_token=ADMIN_TOKEN)) as d:
        apps = await d.call("GET", "/api/v1/admin/apps", expect=200)
        assert {a["id"] for a in apps["items"]} == {"home", "garage"}
        script = await d.call("GET", "/api/v1/admin/scripts/hello", expect=200)
        assert script["version"] == 3
        versions = await d.call("GET", "/api/v1/admin/scripts/hello/versions", expect=200)
        assert sorted(v["version"] for v in versions["items"]) == [1, 2, 3]
        first = await d.call("GET", "/api/v1/admin/scripts/hello/versions/1", expect=200)
        assert '"v": 1' in first["source"]
        kv = await d.call("GET", "/api/v1/admin/apps/home/kv/widgets?limit=100", expect=200)
        assert [i["key"] for i in kv["items"]] == [f"w{k:02d}" for k in range(20)]
        assert kv["items"][7]["value"] == {"n": 7, "tags": ["a", "b"]}
        trigger = await d.call("GET", f"/api/v1/admin/triggers/{made['trigger']}", expect=200)
        assert trigger["collection"] == "gadgets"
        letters = await d.call("GET", "/api/v1/admin/dead-letters?app=home", expect=200)
        assert [x["id"] for x in letters["items"]] == ["dl_backup1"]
        keys = await d.call("GET", "/api/v1/admin/apps/home/keys", expect=200)
        assert len(keys["items"]) == 1
        # The app key (stored as a hash) still authenticates; the secret came along.
        resp = await d.client.post(
            "/api/v1/execute/hello", headers={"Authorization": f"Bearer {made['key']}"}
        )
        assert resp.status == 200, await resp.text()
        assert await resp.json() == {"v": 3, "secret": "hi"}
        denied = await d.client.post("/api/v1/execute/hello")
        assert denied.status == 401
        # The restored trigger fires, and the restored dead letter replays through it.
        await d.call("PUT", "/api/v1/admin/apps/home/kv/gadgets/g2", json={"value": 1})
        await d.call("POST", "/api/v1/admin/dead-letters/dl_backup1/replay", expect=202)
        for key in ("g2", "g1"):
            assert await _eventually_seen(d, key) == "insert", key


async def _eventually_seen(d: Daemon, key: str) -> Any:
    for _ in range(100):
        resp = await d.client.get(f"/api/v1/admin/apps/home/kv/seen/{key}", headers=d.headers)
        if resp.status == 200:
            return (await resp.json())["value"]
        await asyncio.sleep(0.1)
    raise AssertionError(f"the trigger never ran for {key}")


async def test_archive_holds_a_standalone_db_and_a_manifest(
    daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "picloud.toml"
    config.write_text(f'log_level = "info"\nadmin_token = "{ADMIN_TOKEN}"\nbackup_keep = 3\n')
    monkeypatch.setenv("PICLOUD_CONFIG", str(config))
    await daemon.make_app("home")
    data = await download(daemon)
    files = members(data)
    assert list(files) == ["manifest.json", "picloud.db", "picloud.toml"]
    manifest = json.loads(files["manifest.json"])
    assert manifest["format"] == archive.FORMAT
    assert manifest["schema"] == migrate.latest_version()
    assert manifest["created_at"].endswith("Z")
    assert set(manifest["files"]) == {"picloud.db", "picloud.toml"}
    import hashlib

    for name, meta in manifest["files"].items():
        assert hashlib.sha256(files[name]).hexdigest() == meta["sha256"]
        assert len(files[name]) == meta["size"]
    # A rollback-journal file: it needs no -wal next to it.
    db = files["picloud.db"]
    assert db[:16] == b"SQLite format 3\x00"
    assert db[18:20] == b"\x01\x01"
    # The admin token is in no member, not even in the config file's copy.
    assert ADMIN_TOKEN.encode() not in b"".join(files.values())
    assert b"backup_keep = 3" in files["picloud.toml"]


async def test_backup_is_consistent_while_writes_go_on(daemon: Daemon, tmp_path: Path) -> None:
    await daemon.make_app("home")
    stop = asyncio.Event()

    async def writer() -> int:
        """Acknowledged KV writes in key order, through the real admin route."""
        n = 0
        while not stop.is_set():
            await daemon.call(
                "PUT", f"/api/v1/admin/apps/home/kv/load/k{n:06d}", json={"value": "x" * 200}
            )
            n += 1
        return n

    task = asyncio.create_task(writer())
    await asyncio.sleep(0.2)
    data = await download(daemon)
    stop.set()
    written = await task
    path = tmp_path / "snap.db"
    path.write_bytes(members(data)["picloud.db"])
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    count = conn.execute("SELECT count(*) FROM kv WHERE collection = 'load'").fetchone()[0]
    # A point in time: a prefix of the writes, with no gaps.
    assert 0 < count <= written
    assert conn.execute("SELECT max(key) FROM kv WHERE collection='load'").fetchone()[0] == (
        f"k{count - 1:06d}"
    )
    conn.close()


async def test_cli_backup_of_a_live_and_a_stopped_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "state"
    settings = Settings(bind="127.0.0.1:0", state_dir=state)  # token made in admin.token
    async with serve(settings) as d:
        token = (state / "admin.token").read_text().strip()
        d.headers = {"Authorization": f"Bearer {token}"}
        await d.make_app("live")
        live = cli("backup", str(tmp_path / "live.tar.gz"), state=state)
        assert live.returncode == 0, live.stderr
    stopped = cli("backup", str(tmp_path / "stopped.tar.gz"), state=state)
    assert stopped.returncode == 0, stopped.stderr
    for name in ("live.tar.gz", "stopped.tar.gz"):
        data = (tmp_path / name).read_bytes()
        assert token.encode() not in b"".join(members(data).values())
        assert (tmp_path / name).stat().st_mode & 0o077 == 0  # 0600: it holds app secrets
    missing = cli("backup", str(tmp_path / "x.tar.gz"), state=tmp_path / "nothing")
    assert missing.returncode == 1
    assert "no database" in missing.stderr
    assert not (tmp_path / "nothing" / "picloud.db").exists()


def _archive_at_schema(tmp_path: Path, schema: int) -> Path:
    """An archive whose database stops at migration `schema` (or claims a newer one)."""
    db = tmp_path / f"schema{schema}.db"
    conn = sqlite3.connect(db, isolation_level=None)
    migrate.upgrade(conn, target=min(schema, migrate.latest_version()))
    if schema > migrate.latest_version():
        conn.execute(f"PRAGMA user_version={schema}")
    conn.close()
    out = tmp_path / f"schema{schema}.tar.gz"
    archive.create(db, out)
    return out


def test_restore_migrates_an_older_archive_forward(tmp_path: Path, run: Callable[..., Any]) -> None:
    old = migrate.latest_version() - 1
    file = _archive_at_schema(tmp_path, old)
    state = tmp_path / "state"
    done = run("restore", str(file), state=state)
    assert done.returncode == 0, done.stderr
    assert f"migrated from schema {old} to {migrate.latest_version()}" in done.stdout
    conn = sqlite3.connect(state / "picloud.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == migrate.latest_version()
    conn.close()


def test_restore_refuses_a_newer_archive(tmp_path: Path, run: Callable[..., Any]) -> None:
    newer = migrate.latest_version() + 1
    file = _archive_at_schema(tmp_path, newer)
    state = tmp_path / "state"
    done = run("restore", str(file), state=state)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"schema {newer}, newer than this PiCloud knows" in lines[0]
    assert not (state / "picloud.db").exists()


def test_restore_refuses_a_corrupt_archive(tmp_path: Path, run: Callable[..., Any]) -> None:
    file = _archive_at_schema(tmp_path, migrate.latest_version())
    files = members(file.read_bytes())
    db = bytearray(files["picloud.db"])
    db[200] ^= 0xFF
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        for name, body in (("manifest.json", files["manifest.json"]), ("picloud.db", bytes(db))):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    done = run("restore", str(bad), state=tmp_path / "state")
    assert done.returncode == 1
    assert "sha256 does not match" in done.stderr
    # Members out of order, or bigger than the manifest says, are refused before extraction.
    for order, body in (
        (("picloud.db", "manifest.json"), files["picloud.db"]),
        (("manifest.json", "picloud.db"), files["picloud.db"] + b"\x00" * 4096),
    ):
        odd = tmp_path / "odd.tar.gz"
        with tarfile.open(odd, "w:gz") as tar:
            for name in order:
                data = files[name] if name == "manifest.json" else body
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        done = run("restore", str(odd), state=tmp_path / "state")
        assert done.returncode == 1
        assert "manifest" in done.stderr, done.stderr
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"not a tarball")
    done = run("restore", str(garbage), state=tmp_path / "state")
    assert done.returncode == 1
    assert "not a readable PiCloud backup" in done.stderr
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())


def test_restore_over_an_existing_state_dir_needs_force(
    tmp_path: Path, run: Callable[..., Any]
) -> None:
    file = _archive_at_schema(tmp_path, migrate.latest_version())
    state = tmp_path / "state"
    state.mkdir()
    (state / "picloud.db").write_bytes(b"old")
    (state / "admin.token").write_text("pc_admin_this-machine\n")
    refused = run("restore", str(file), state=state)
    assert refused.returncode == 1
    assert "--force" in refused.stderr
    assert (state / "picloud.db").read_bytes() == b"old"
    forced = run("restore", "--force", str(file), state=state)
    assert forced.returncode == 0, forced.stderr
    [aside] = [p for p in tmp_path.iterdir() if p.name.startswith("state.old-")]
    assert (aside / "picloud.db").read_bytes() == b"old"
    assert (state / "picloud.db").read_bytes()[:15] == b"SQLite format 3"
    # The machine's own admin token stays (the archive never has one).
    assert (state / "admin.token").read_text() == "pc_admin_this-machine\n"


def test_restore_refuses_while_a_daemon_holds_the_state_dir(
    tmp_path: Path, run: Callable[..., Any]
) -> None:
    file = _archive_at_schema(tmp_path, migrate.latest_version())
    state = tmp_path / "state"
    lock = StateLock(state)
    assert lock.acquire()
    try:
        done = run("restore", "--force", str(file), state=state)
        assert done.returncode == 1
        assert "daemon is running" in done.stderr
    finally:
        lock.release()


async def test_the_daemon_holds_the_state_lock(
    daemon: Daemon, tmp_path: Path, run: Callable[..., Any]
) -> None:
    file = _archive_at_schema(tmp_path, migrate.latest_version())
    done = run("restore", "--force", str(file), state=daemon.settings.state_dir)
    assert done.returncode == 1
    assert "daemon is running" in done.stderr


async def test_scheduled_backups_rotate(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    settings = Settings(
        bind="127.0.0.1:0",
        state_dir=tmp_path / "state",
        admin_token=ADMIN_TOKEN,
        backup_dir=backups,
        backup_interval_h=1 / 3600,  # one second
        backup_keep=2,
    )
    async with serve(settings) as d:
        await d.make_app("home")
        for _ in range(100):
            await asyncio.sleep(0.1)
            snap = await d.call("GET", "/api/v1/admin/system", expect=200)
            if snap["backup"]["successes"] >= 3:
                break
        assert snap["backup"]["successes"] >= 3, snap["backup"]
    kept = backup.scheduled_backups(backups)
    assert len(kept) == 2
    assert [p.name for p in kept] == sorted(p.name for p in kept)
    assert not [p for p in backups.iterdir() if p.name.startswith(".")]  # no leftovers
    assert "manifest.json" in members(kept[-1].read_bytes())


def test_rotate_keeps_the_newest(tmp_path: Path) -> None:
    names = [f"picloud-2026010{i}T000000000Z.tar.gz" for i in range(1, 6)]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "unrelated.tar.gz").write_bytes(b"x")
    removed = backup.rotate(tmp_path, 2)
    assert [p.name for p in removed] == names[:3]
    assert sorted(p.name for p in tmp_path.iterdir()) == [*names[3:], "unrelated.tar.gz"]


def test_backup_of_a_crashed_state_dir_keeps_its_wal(tmp_path: Path) -> None:
    """After a power cut the last commits live only in the -wal (and -shm is gone)."""
    import shutil

    from picloud.store.db import connect

    live = tmp_path / "live"
    live.mkdir()
    conn = connect(live / "picloud.db")
    migrate.upgrade(conn)
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("INSERT INTO apps (id, created_at) VALUES ('crashed', 1)")
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for name in ("picloud.db", "picloud.db-wal"):
        shutil.copy(live / name, crashed / name)
    conn.close()
    out = tmp_path / "a.tar.gz"
    archive.create(crashed / "picloud.db", out)
    snap = tmp_path / "snap.db"
    snap.write_bytes(members(out.read_bytes())["picloud.db"])
    check = sqlite3.connect(snap)
    assert check.execute("SELECT id FROM apps").fetchall() == [("crashed",)]
    check.close()


async def test_two_downloads_at_once_both_succeed(daemon: Daemon) -> None:
    await daemon.make_app("home")
    first, second = await asyncio.gather(download(daemon), download(daemon))
    for data in (first, second):
        assert json.loads(members(data)["manifest.json"])["schema"] == migrate.latest_version()
    # Their work directories inside the state dir are gone.
    assert not list(daemon.settings.state_dir.glob(".backup-*"))


def test_schedule_counts_from_the_newest_archive(tmp_path: Path) -> None:
    """A restart neither repeats a backup that is not due nor skips one that is."""
    due = backup._seconds_until_due
    assert due(tmp_path / "none", 3600) == 0
    newest = tmp_path / backup.archive_name()
    newest.write_bytes(b"x")
    os.utime(newest, (newest.stat().st_atime, newest.stat().st_mtime - 600))
    assert 2990 <= due(tmp_path, 3600) <= 3000
    os.utime(newest, (newest.stat().st_atime, newest.stat().st_mtime - 7200))
    assert due(tmp_path, 3600) == 0


def test_the_cli_does_not_import_the_daemon() -> None:
    """`picloud backup|restore` (and every other command) start without aiohttp & co."""
    from picloud.auth import TOKEN_FILE
    from picloud.ops import restore

    assert restore.TOKEN_FILE == TOKEN_FILE
    code = (
        "import sys, picloud.cli, picloud.ops.cli;"
        "print(sorted(m for m in ('aiohttp', 'psutil', 'prometheus_client') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_restore_into_a_mount_point_moves_entries_not_the_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A USB SSD mounted at the state dir: it cannot be renamed, so its entries move."""
    from picloud.ops import restore as restore_mod

    file = _archive_at_schema(tmp_path, migrate.latest_version())
    state = tmp_path / "mnt"
    state.mkdir()
    (state / "lost+found").mkdir()
    real = os.path.ismount
    monkeypatch.setattr(restore_mod.os.path, "ismount", lambda p: Path(p) == state or real(p))
    done = restore_mod.restore(file, state)  # only lost+found: counts as empty
    assert done.moved_aside is None
    (state / "admin.token").write_text("pc_admin_here\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    again = restore_mod.restore(file, state, force=True)
    assert again.moved_aside is not None
    assert again.moved_aside.parent == state
    assert (again.moved_aside / "picloud.db").is_file()
    assert (state / "admin.token").read_text() == "pc_admin_here\n"
    assert (state / "lost+found").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing made beside it
    assert not list(state.glob(".restore-*"))
    conn = sqlite3.connect(state / "picloud.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == migrate.latest_version()
    conn.close()


def test_restore_check_verifies_without_restoring(tmp_path: Path, run: Callable[..., Any]) -> None:
    state = tmp_path / "state"
    latest = migrate.latest_version()
    good = run("restore", "--check", str(_archive_at_schema(tmp_path, latest)), state=state)
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("ok: ")
    older = run("restore", "--check", str(_archive_at_schema(tmp_path, latest - 1)), state=state)
    assert older.returncode == 0, older.stderr
    assert f"migrates it to schema {latest}" in older.stdout
    newer = run("restore", "--check", str(_archive_at_schema(tmp_path, latest + 1)), state=state)
    assert newer.returncode == 1
    assert "newer than this PiCloud knows" in newer.stderr
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b not really")
    assert run("restore", "--check", str(bad), state=state).returncode == 1
    assert not state.exists()  # nothing was restored anywhere
