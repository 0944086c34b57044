"""Routes: GET /api/v1/admin/backup, one consistent archive of the state as a download."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from aiohttp import web

from picloud.api.common import API, doc
from picloud.errors import Internal
from picloud.ops import OPS, archive
from picloud.ops.backup import archive_name, make_backup
from picloud.state import SETTINGS

__all__ = ["routes"]

routes = web.RouteTableDef()

_CHUNK = 256 * 1024


@routes.get(f"{API}/admin/backup")
@doc(
    "Download a backup: a tar.gz holding an SQLite online-backup snapshot of the database, "
    "the config file and a manifest with sha256s (never the admin token). "
    "Restore it with `picloud restore FILE`."
)
async def backup(request: web.Request) -> web.StreamResponse:
    settings, ops = request.app[SETTINGS], request.app[OPS]
    # Built on the state dir's file system: the snapshot can be as large as the database.
    work = Path(tempfile.mkdtemp(prefix=".backup-", dir=settings.state_dir))
    try:
        name = archive_name()
        out = work / name
        async with ops.backup_lock:
            try:
                manifest = await asyncio.to_thread(make_backup, settings, out, ops.backups)
            except (archive.ArchiveError, OSError) as exc:
                raise Internal(f"backup failed: {exc}") from exc
        resp = web.StreamResponse(
            headers={
                "Content-Type": "application/gzip",
                "Content-Disposition": f'attachment; filename="{name}"',
                "Content-Length": str(out.stat().st_size),
                "X-PiCloud-Schema": str(manifest["schema"]),
            }
        )
        # Stream from an open descriptor of a file already deleted: a slow or vanished
        # client never leaves a copy of the database behind in the state directory.
        with out.open("rb") as fh:
            await asyncio.to_thread(shutil.rmtree, work, True)
            await resp.prepare(request)
            while chunk := await asyncio.to_thread(fh.read, _CHUNK):
                await resp.write(chunk)
        await resp.write_eof()
        return resp
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)
