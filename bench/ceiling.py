"""The ceilings: bare aiohttp + uvloop handlers for hello and for the SQLite counter.

`python -m bench.ceiling --port P --db FILE` serves
  GET /hello   -> {"message": "hello", "ok": true}   (the hello script's JSON)
  GET /counter -> {"count": n}   after a get and a set of one key, committed per
                  request (WAL, synchronous=NORMAL, one connection, in the loop)
No sandbox, no process hop: what an aiohttp design cannot beat.
"""

from __future__ import annotations

import argparse
import json
import sqlite3

import uvloop
from aiohttp import web

__all__ = ["HELLO", "make_app", "open_db"]

HELLO = {"message": "hello", "ok": True}


def open_db(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS kv(k TEXT PRIMARY KEY, v TEXT NOT NULL)")
    return conn


def make_app(db_path: str) -> web.Application:
    conn = open_db(db_path)

    async def hello(request: web.Request) -> web.Response:
        return web.json_response(HELLO)

    async def counter(request: web.Request) -> web.Response:
        # get, then set, then commit: the same two KV calls the counter script makes.
        row = conn.execute("SELECT v FROM kv WHERE k = 'counter'").fetchone()
        n = (json.loads(row[0]) if row else 0) + 1
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO kv(k, v) VALUES('counter', ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
            (json.dumps(n),),
        )
        conn.execute("COMMIT")
        return web.json_response({"count": n})

    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_get("/counter", counter)
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--db", required=True)
    args = ap.parse_args()
    web.run_app(
        make_app(args.db),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
