// System: the board's health from /api/v1/admin/system with small live charts, and the
// sandbox layers in force.
import { api } from "../api.js";
import { sparkline } from "../chart.js";
import { badge, bytes, clear, errorBox, h, loading, pageHeader, pretty, section } from "../ui.js";

const EVERY_MS = 3000;
const KEEP = 60;
// Kept across visits to the page, so the charts do not start empty each time.
const history = { cpu: [], temp: [], mem: [], load: [] };

export function render(main) {
  const box = h("div", loading());
  const note = h("small.muted");
  main.append(pageHeader("System", note), box);
  let stopped = false;
  async function tick() {
    try {
      const sys = await api.get("admin/system");
      record(sys);
      clear(box, view(sys));
      note.textContent = `updated ${new Date().toLocaleTimeString()} · every ${EVERY_MS / 1000} s`;
    } catch (err) {
      clear(box, errorBox(err));
    }
  }
  tick();
  const timer = setInterval(() => {
    if (!stopped && !document.hidden) tick();
  }, EVERY_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

function avg(list) {
  return list && list.length ? list.reduce((a, b) => a + b, 0) / list.length : null;
}

function push(list, value) {
  list.push(typeof value === "number" ? value : null);
  if (list.length > KEEP) list.shift();
}

function record(sys) {
  const cpu = sys.cpu || {};
  push(history.cpu, cpu.percent ?? avg(cpu.percent_per_core));
  push(history.temp, sys.temperature_celsius);
  push(history.mem, sys.memory && sys.memory.percent);
  push(history.load, cpu.load && cpu.load["1m"]);
}

function last(list) {
  const v = list[list.length - 1];
  return typeof v === "number" ? v : null;
}

function gauge(title, list, text, opts) {
  return h("div.gauge",
    h("div.gauge-head", h("span", title), h("strong", text)),
    sparkline(list, { label: `${title} over the last ${list.length} samples`, ...opts }));
}

function view(sys) {
  const cpu = sys.cpu || {};
  const mem = sys.memory || {};
  const disk = sys.disk || {};
  const temp = last(history.temp);
  return [
    h("div.gauges",
      gauge("CPU", history.cpu, last(history.cpu) === null ? "—" : `${last(history.cpu).toFixed(0)} %`, { max: 100 }),
      gauge("Load (1 min)", history.load, last(history.load) === null ? "—" : `${last(history.load).toFixed(2)} / ${cpu.count ?? "?"} cores`, {}),
      gauge("Temperature", history.temp, temp === null ? "not reported" : `${temp.toFixed(1)} °C`, { min: 20, max: 90 }),
      gauge("Memory", history.mem, mem.percent === undefined ? "—" : `${mem.percent.toFixed(0)} %`, { max: 100 })),
    section("Throttling", throttling(sys.throttling)),
    section("Memory and disk", h("dl.facts",
      h("dt", "Memory"), h("dd", `${bytes(mem.available_bytes)} free of ${bytes(mem.total_bytes)}`),
      h("dt", "Swap"), h("dd", `${bytes(mem.swap_used_bytes)} used of ${bytes(mem.swap_total_bytes)}`),
      h("dt", "Disk"), h("dd", meter(disk.percent), ` ${bytes(disk.free_bytes)} free of ${bytes(disk.total_bytes)}`, disk.read_only ? badge("read-only", "bad") : ""),
      h("dt", "Writes per day"), h("dd", disk.written_bytes_per_day === undefined ? "—" : bytes(disk.written_bytes_per_day)),
      sys.database ? [h("dt", "Database"), h("dd", `${bytes(sys.database.size_bytes)} + WAL ${bytes(sys.database.wal_bytes)}`)] : null,
      sys.processes ? [h("dt", "Daemon memory"), h("dd", `${bytes(sys.processes.daemon_rss_bytes)}; workers ${bytes(sys.processes.workers_rss_bytes)} in ${sys.processes.worker_processes}`)] : null,
      sys.uptime ? [h("dt", "Uptime"), h("dd", `daemon ${duration(sys.uptime.daemon_s)}, system ${duration(sys.uptime.system_s)}`)] : null,
      sys.invocations ? [h("dt", "Invocations"), h("dd", `${sys.invocations.running ?? "—"} running, ${sys.invocations.queued ?? "—"} queued`)] : null)),
    section("Sandbox layers in force", sandbox(sys.sandbox, sys.memory_cgroup)),
  ];
}

function duration(seconds) {
  if (typeof seconds !== "number") return "—";
  const d = Math.floor(seconds / 86400);
  const hrs = Math.floor((seconds % 86400) / 3600);
  const min = Math.floor((seconds % 3600) / 60);
  return d ? `${d} d ${hrs} h` : hrs ? `${hrs} h ${min} min` : `${min} min`;
}

function meter(percent) {
  if (typeof percent !== "number") return "—";
  return h("meter", { min: 0, max: 100, low: 70, high: 90, optimum: 0, value: percent, title: `${percent} %` }, `${percent} %`);
}

function throttling(t) {
  if (!t) return h("p.muted", "This board does not report throttling (not a Raspberry Pi, or no firmware interface).");
  const flags = Object.keys(t.now || {});
  const active = flags.filter((f) => t.now[f]);
  const past = flags.filter((f) => t.since_boot && t.since_boot[f]);
  return h("div",
    h("p", active.length ? badge(`now: ${active.join(", ")}`, "bad") : badge("not throttled now", "ok"), " ",
      past.length ? badge(`since boot: ${past.join(", ")}`, "warn") : badge("nothing since boot", "ok")),
    h("small.muted", `get_throttled = ${t.raw}`));
}

function sandbox(layers, cgroup) {
  const rows = [];
  if (layers && typeof layers === "object" && !Array.isArray(layers)) {
    for (const [name, value] of Object.entries(layers)) rows.push([name, value]);
  } else if (Array.isArray(layers)) {
    layers.forEach((v, i) => rows.push([typeof v === "object" && v && v.name ? v.name : String(i + 1), v]));
  } else if (layers !== null && layers !== undefined) {
    rows.push(["sandbox", layers]);
  }
  if (cgroup !== undefined) rows.push(["memory cgroup", cgroup]);
  if (!rows.length) return h("p.muted", "The executor has not reported its sandbox layers.");
  return h("dl.facts", rows.map(([name, value]) => [h("dt", name.replaceAll("_", " ")), h("dd", layerValue(value))]));
}

function layerValue(value) {
  if (value === true) return badge("on", "ok");
  if (value === false) return badge("off", "bad");
  if (value === null || value === undefined) return badge("unknown");
  if (typeof value === "object") {
    if ("enabled" in value || "active" in value) {
      const on = value.enabled ?? value.active;
      return h("span", layerValue(on), value.detail || value.reason ? ` ${value.detail || value.reason}` : "");
    }
    return h("code.preview", pretty(value));
  }
  return String(value);
}
