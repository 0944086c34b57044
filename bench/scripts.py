"""Sources of the PiCloud scripts the benchmarks deploy (documented SDK calls only)."""

from __future__ import annotations

__all__ = [
    "ACK_WRITE",
    "BURST",
    "COUNTER",
    "COUNTER_INCR",
    "HELLO",
    "KV_LOOP",
    "LEDGER",
    "ON_COUNT",
    "ON_LAT",
]

# The same JSON as the ceiling's /hello and the peers' hello.
HELLO = """
def handle(ctx):
    return {"message": "hello", "ok": True}
"""

# The peers' counter: a get and a set of one key per request (no transaction).
COUNTER = """
def handle(ctx):
    c = kv.collection("bench")
    n = (c.get("counter") or 0) + 1
    c.set("counter", n)
    return {"count": n}
"""

# The same two round trips, the write an atomic increment: no update can be lost.
COUNTER_INCR = """
def handle(ctx):
    c = kv.collection("bench")
    c.get("counter2")
    return {"count": c.incr("counter2")}
"""

# Every request writes its own key; the client keeps the acknowledged keys and
# checks after a SIGKILL of the daemon that each one is still there.
LEDGER = """
def handle(ctx):
    c = kv.collection("ledger")
    c.get("x")
    c.set(ctx["invocation_id"], 1)
    return {"key": ctx["invocation_id"]}
"""

# KV round trips from inside one invocation, timed in the script itself.
KV_LOOP = """
import time

def handle(ctx):
    q = ctx["request"]["query"]
    op, n, budget = q.get("op", "get"), int(q.get("n", "1000")), float(q.get("budget", "1"))
    c = kv.collection("loop")
    if op in ("get", "list"):
        for i in range(100):
            c.set("k%03d" % i, {"i": i})
    done = 0
    t0 = time.perf_counter()
    deadline = t0 + budget
    while done < n and time.perf_counter() < deadline:
        for _ in range(50):
            if op == "get":
                c.get("k007")
            elif op == "set":
                c.set("s%d" % (done % 1000), done)
            elif op == "incr":
                c.incr("n")
            else:
                c.list(prefix="k", limit=100)
            done += 1
    elapsed = time.perf_counter() - t0
    return {"op": op, "n": done, "elapsed_s": elapsed}
"""

# Writes that fire triggers: n sets into one collection, keys prefix + i.
BURST = """
def handle(ctx):
    q = ctx["request"]["query"]
    c = kv.collection(q["coll"])
    prefix, n = q.get("prefix", "k"), int(q.get("n", "1"))
    for i in range(n):
        c.set("%s%d" % (prefix, i), i)
    return {"n": n}
"""

# One write, and the time it was acknowledged (same clock as the handler's).
ACK_WRITE = """
import time

def handle(ctx):
    kv.collection("latsrc").set(ctx["request"]["query"]["key"], 1)
    return {"acked": time.time()}
"""

# Trigger handler for latency: the time it started, first thing.
ON_LAT = """
import time

def handle(ctx):
    started = time.time()
    ev = ctx["event"]
    kv.collection("lat").set(ev["key"], {"started": started, "at": ev["at"]})
"""

# Trigger handler for throughput: one atomic increment per event.
ON_COUNT = """
def handle(ctx):
    kv.collection("done").incr(ctx["event"]["collection"])
"""
