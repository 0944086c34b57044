"""Render one run's results as markdown: tables with same-run ratios, then targets vs measured."""

from __future__ import annotations

import re
import statistics
from typing import Any

__all__ = ["embed", "render"]

START, END = "<!-- bench:latest -->", "<!-- /bench:latest -->"

Row = tuple[str, str, str, bool | None]  # figure, measured, target, met


def _n(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and abs(v) >= 100:
        return f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.{nd}f}"


def _ok(met: bool | None) -> str:
    return "n/a" if met is None else ("yes" if met else "**no**")


def _cells_table(cells: list[dict[str, Any]], kept: bool = False) -> list[str]:
    ceilings = {c["conc"]: c["rps"] for c in cells if "ceiling" in c["system"]}
    head = (
        "| system | workload | conc | req/s | x ceiling | p50 ms | p99 ms "
        "| server CPU µs/req | errors |"
    )
    sep = "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    if kept:
        head, sep = head + " updates kept |", sep + "---:|"
    lines = [head, sep]
    for c in cells:
        base = ceilings.get(c["conc"])
        ratio = f"{c['rps'] / base:.3f}" if base else "-"
        row = (
            f"| {c['system']} | {c['workload']} | {c['conc']} | {_n(c['rps'])} | {ratio} | "
            f"{_n(c['p50_ms'], 2)} | {_n(c['p99_ms'], 2)} | {_n(c['cpu_us'], 0)} | "
            f"{c['errors'] + c['non2xx']} |"
        )
        if kept:
            # Above 100%: requests wrk left in flight were counted by the server, not by wrk.
            pct = c.get("extra", {}).get("kept_pct")
            row += f" {'-' if pct is None else f'{min(pct, 100.0):.1f}%'} |"
        lines.append(row)
    return lines


def _figures(rows: list[Row]) -> list[str]:
    lines = ["| figure | measured | target | met |", "|---|---:|---|---|"]
    lines += [f"| {f} | {m} | {t} | {_ok(ok)} |" for f, m, t, ok in rows]
    return lines


def _cell(cells: list[dict[str, Any]], system: str, conc: int) -> dict[str, Any] | None:
    return next((c for c in cells if c["system"] == system and c["conc"] == conc), None)


def _ratio(cells: list[dict[str, Any]], system: str, ceiling: str, conc: int) -> float | None:
    a, b = _cell(cells, system, conc), _cell(cells, ceiling, conc)
    return a["rps"] / b["rps"] if a and b and b["rps"] else None


def _executor_rows(ex: dict[str, Any]) -> list[Row]:
    cells = ex.get("cells", [])
    r32 = _ratio(cells, "PiCloud warm", "aiohttp ceiling", 32)
    warm1 = _cell(cells, "PiCloud warm", 1)
    p50 = warm1["p50_ms"] if warm1 else None
    cold = ex.get("cold", {}).get("cold_ms_median")
    mem = ex.get("memory_after_warm") or ex.get("memory_idle") or {}
    idle = ex.get("memory_idle", {}).get("daemon_plus_helpers_rss_mib")
    uss = [w["uss_mib"] for w in mem.get("workers", [])]
    uss_med = statistics.median(uss) if uss else None
    return [
        ("warm hello c=32, x ceiling", _n(r32, 3), "≥ 0.40", None if r32 is None else r32 >= 0.4),
        ("warm hello c=1, p50", f"{_n(p50, 3)} ms", "< 0.5 ms", None if p50 is None else p50 < 0.5),
        (
            "cold start after deploy",
            f"{_n(cold, 2)} ms",
            "< 5 ms",
            None if cold is None else cold < 5,
        ),
        (
            "idle RSS, daemon + zygote",
            f"{_n(idle)} MiB",
            "< 60 MB",
            None if idle is None else idle < 60,
        ),
        (
            f"USS per idle worker (median of {len(uss)})",
            f"{_n(uss_med, 2)} MiB",
            "< 4 MB",
            None if uss_med is None else uss_med < 4,
        ),
    ]


def _label(cmd: str) -> str:
    """A short name for a helper process: the daemon's only helper is the zygote."""
    if "zygote" in cmd or "picl" in cmd:
        return "zygote"
    return cmd.split()[-1] if cmd.split() else "?"


def _memory_lines(ex: dict[str, Any]) -> list[str]:
    lines = []
    for label, key in (
        ("idle, before load", "memory_idle"),
        ("after warm load", "memory_after_warm"),
    ):
        mem = ex.get(key)
        if not mem:
            continue
        helpers = ", ".join(f"{_label(h['cmd'])} {h['rss_mib']}" for h in mem["helpers"])
        uss = [w["uss_mib"] for w in mem["workers"]]
        lines.append(
            f"- {label}: daemon {mem['daemon_rss_mib']} MiB RSS; helpers (zygote) RSS: "
            f"{helpers or 'none'}; {len(uss)} worker(s), USS MiB: {uss or '-'}"
        )
    cold = ex.get("cold")
    if cold:
        lines.append(
            f"- cold start: median over {cold['rounds']} deploys of (first call after a PUT "
            f"{_n(cold['first_ms_median'], 2)} ms) − (a warm call "
            f"{_n(cold['warm_ms_median'], 2)} ms)"
            f" = {_n(cold['cold_ms_median'], 2)} ms; worst {_n(cold['cold_ms_max'], 2)} ms"
        )
    return lines


def _kv_rows(kv: dict[str, Any]) -> list[Row]:
    cells = kv.get("cells", [])
    r32 = _ratio(cells, "PiCloud", "aiohttp+SQLite ceiling", 32)
    get = kv.get("in_script", {}).get("get", {}).get("per_s")
    dur = kv.get("durability", {})
    missing = dur.get("missing_after_sigkill")
    rows: list[Row] = [
        (
            "get round trips/s from one script",
            _n(get),
            "≥ 20,000",
            None if get is None else get >= 20000,
        ),
        ("counter c=32, x ceiling", _n(r32, 3), "≥ 0.40", None if r32 is None else r32 >= 0.4),
        (
            "acknowledged writes missing after SIGKILL",
            f"{_n(missing)} of {_n(dur.get('acked'))}",
            "0",
            None if missing is None or not dur.get("acked") else missing == 0,
        ),
    ]
    for op in ("set", "incr", "list"):
        v = kv.get("in_script", {}).get(op, {}).get("per_s")
        rows.append((f"{op} round trips/s from one script", _n(v), "-", None))
    for name, b in kv.get("bytes", {}).items():
        sets = b.get("sets", 1000)
        per_k = b["write_bytes"] * 1000 / sets / 1024
        wchar = b["wchar"] * 1000 / sets / 1024
        rows.append(
            (
                f"bytes written per 1,000 sets ({name.replace('_', ' ')})",
                f"{per_k:,.0f} KiB to disk ({wchar:,.0f} KiB write() calls)",
                "measure",
                None,
            )
        )
    return rows


def _trigger_rows(tr: dict[str, Any]) -> list[Row]:
    lat = tr.get("latency", {})
    p50 = lat.get("p50_ms")
    rows: list[Row] = [
        (
            f"write acknowledged → handler start, p50 ({lat.get('handled', 0)} events)",
            f"{_n(p50, 2)} ms",
            "< 5 ms",
            None if p50 is None else p50 < 5,
        ),
        ("write acknowledged → handler start, p99", f"{_n(lat.get('p99_ms'), 2)} ms", "-", None),
        (
            "event `at` → handler start, p50 / p99",
            f"{_n(lat.get('at_p50_ms'), 2)} / {_n(lat.get('at_p99_ms'), 2)} ms",
            "-",
            None,
        ),
    ]
    for key, label in (("one_trigger", "one trigger"), ("many_triggers", "10 triggers")):
        d = tr.get(key)
        if d:
            rows.append(
                (
                    f"sustained events/s, {label} ({d['handled']}/{d['events']} handled)",
                    _n(d["events_per_s"]),
                    "-",
                    None,
                )
            )
    off = tr.get("offered_500")
    if off:
        growth = off["backlog_growth_per_s"]
        met = None if growth is None else growth <= 0.05 * off["offered_per_s"]
        series = " → ".join(str(s["backlog"]) for s in off["samples"])
        peak = max((s["backlog"] for s in off["samples"]), default=None)
        rows.append(
            (
                f"backlog at {off['offered_per_s']:.0f} events/s offered, pending each s: {series}",
                f"{_n(growth)} events/s growth (peak {_n(peak)})",
                "no growth",
                met,
            )
        )
        rows.append(
            ("drain after the offered load stops", f"{_n(off['drain_after_s'], 2)} s", "-", None)
        )
    return rows


def _peer_rows(peers: dict[str, Any]) -> list[Row]:
    table = peers.get("table", "")
    rps: dict[tuple[str, str, str], float] = {}
    for m in re.finditer(r"^\| (\S+) \| (hello|kv) \| (\d+) \| ([\d,.]+) \|", table, re.M):
        rps[(m.group(1), m.group(2), m.group(3))] = float(m.group(4).replace(",", ""))
    rows: list[Row] = []
    for w, label in (("hello", "warm hello"), ("kv", "counter")):
        mine = rps.get(("picloud", w, "32"))
        others = {p: rps.get((p, w, "32")) for p in ("miniflare", "nodered")}
        if mine is None or None in others.values():
            continue
        best = max(v for v in others.values() if v is not None)
        desc = ", ".join(f"{p} {_n(v)}" for p, v in others.items())
        rows.append(
            (f"peers run: {label} c=32 req/s vs {desc}", _n(mine), "ahead of both", mine > best)
        )
    return rows


def render(res: dict[str, Any]) -> str:
    meta = res["meta"]
    ex, kv, tr, peers = (res.get(k) or {} for k in ("executor", "kv", "triggers", "peers"))
    out = [f"# PiCloud benchmark, {meta['started']}", ""]
    out += [f"- {k}: {v}" for k, v in meta["describe"].items()]
    out += ["", "## Executor: hello, against a bare aiohttp + uvloop handler", ""]
    out += _cells_table(ex.get("cells", [])) + [""] + _memory_lines(ex)
    out += [
        "",
        "## KV: the counter (a get and a set per request), against aiohttp + uvloop + SQLite",
        "",
    ]
    out += _cells_table(kv.get("cells", []), kept=True)
    out += ["", "## Targets and figures", "", "### Executor (issue 3)", ""] + _figures(
        _executor_rows(ex)
    )
    out += ["", "### KV (issue 4)", ""] + _figures(_kv_rows(kv))
    out += ["", "### Triggers (issue 5)", ""] + _figures(_trigger_rows(tr))
    if prow := _peer_rows(peers):
        out += ["", "### Against the peers (same harness run)", ""] + _figures(prow)
    out += ["", "## Peers: workerd (Miniflare), Node-RED, bare aiohttp and PiCloud", ""]
    if peers.get("table"):
        out += [
            f"Command: `{peers['command']}`",
            "",
            peers["versions"],
            "",
            peers["table"].rstrip(),
        ]
    else:
        out.append(f"Not run: {peers.get('error', 'skipped (--no-peers)')}")
    errors = [
        f"{sec}: {e}"
        for sec in ("executor", "kv", "triggers")
        for e in (res.get(sec) or {}).get("errors", [])
    ]
    errors += [f"{k}: {v}" for k, v in res.get("section_errors", {}).items()]
    if errors:
        out += ["", "## What could not be measured", ""] + [f"- {e}" for e in errors]
    return "\n".join(out) + "\n"


def embed(doc: str, latest: str) -> str:
    """docs/performance.md with the text between its markers replaced by this run's report,
    headings moved two levels down so they nest under the doc's own."""
    if START not in doc or END not in doc:
        raise ValueError(f"no {START} ... {END} markers in the document")
    body = re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + 2) + " ", latest, flags=re.M)
    head, rest = doc.split(START, 1)
    tail = rest.split(END, 1)[1]
    return f"{head}{START}\n{body.rstrip()}\n{END}{tail}"
