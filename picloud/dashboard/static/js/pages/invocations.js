// Invocations: a live-updating, filterable list; one invocation with its log.
import { api, enc, qs } from "../api.js";
import { clear, empty, errorBox, field, h, link, loading, ms, pageHeader, section, select, statusBadge, table, when } from "../ui.js";
import { appPicker, pager } from "./common.js";
import { runSummary } from "./invoke.js";

const STATUSES = [["", "any status"], "ok", "script_error", "timeout", "resource_limit", "internal"];
const TRIGGERS = [["", "any trigger"], "http", "kv", "cron", "dead_letter"];
const LIVE_MS = 2000;

export function render(main, [id], params) {
  if (id) return renderOne(main, id);
  return renderList(main, params);
}

function renderList(main, params) {
  const filters = { app: params.get("app") || "", script: params.get("script") || "", status: "", trigger: "" };
  const script = h("input", { value: filters.script, placeholder: "any script", autocomplete: "off" });
  const status = select(STATUSES, "");
  const trigger = select(TRIGGERS, "");
  const live = h("input", { type: "checkbox", checked: true });
  const rows = h("div", loading());
  const note = h("small.muted", { "aria-live": "off" });
  const paging = pager(
    (cursor) => api.get(`admin/invocations${qs({ ...filters, limit: 50, cursor })}`),
    (items) => clear(rows, items.length ? table([
      { label: "Started", render: (r) => link(`#/invocations/${enc(r.id)}`, when(r.started_at)) },
      { label: "Script", render: (r) => r.script ?? r.script_id },
      { label: "Status", render: (r) => statusBadge(r.status) },
      { label: "Trigger", render: (r) => r.trigger || "http" },
      { label: "HTTP", render: (r) => r.http_status ?? "—", class: "num" },
      { label: "Error", render: (r) => (r.error ? h("code.preview", r.error.split("\n")[0].slice(0, 80)) : "") },
      { label: "Duration", render: (r) => ms(r.duration_ms), class: "num" },
    ], items, { label: "Invocations", onRow: (r) => (location.hash = `#/invocations/${enc(r.id)}`) })
      : empty("No invocations match", "Runs appear here as scripts are called or triggered.")),
  );
  const toolbar = h("div.toolbar",
    field("Script", script), field("Status", status), field("Trigger", trigger),
    h("label.check", live, " Live"), note);
  main.append(pageHeader("Invocations"), section("Runs", toolbar, rows, paging.foot));
  async function reload() {
    try {
      await paging.load(true);
      note.textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      clear(rows, errorBox(err));
    }
  }
  const apply = () => {
    filters.script = script.value.trim();
    filters.status = status.value;
    filters.trigger = trigger.value;
    reload();
  };
  script.addEventListener("change", apply);
  status.addEventListener("change", apply);
  trigger.addEventListener("change", apply);
  appPicker((value) => {
    filters.app = value;
    reload();
  }, { anyLabel: "All apps", value: filters.app }).then((picker) => {
    filters.app = picker.value;
    toolbar.prepend(field("App", picker.el));
    reload();
  });
  // Live: refresh the first page while the user has not paged further.
  const timer = setInterval(() => {
    if (live.checked && !document.hidden && paging.items.length <= 50) reload();
  }, LIVE_MS);
  return () => clearInterval(timer);
}

function renderOne(main, id) {
  const box = h("div", loading());
  main.append(pageHeader(`Invocation`, link("#/invocations", "All invocations")), box);
  (async () => {
    try {
      const run = await api.get(`admin/invocations/${enc(id)}`);
      clear(box,
        section("Run", h("p.muted", h("code", run.id), ` · started ${when(run.started_at)}`), runSummary(run)),
        section("Log", h("pre.out.log", { tabindex: "0" }, run.log || "(no output)")));
    } catch (err) {
      clear(box, errorBox(err));
    }
  })();
}
