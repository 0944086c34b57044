// The invoke console: call a script through the data plane as a device would, then show
// the response and the run's own record (status, timings, log) from the invocations API.
import { all, api, enc, execute } from "../api.js";
import { busy, clear, empty, errorBox, field, h, link, ms, pageHeader, pretty, section, select, statusBadge } from "../ui.js";
import { rememberedApp } from "./common.js";

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"];
const LAST = "picloud.invoke";

export function render(main, [scriptId]) {
  const saved = JSON.parse(sessionStorage.getItem(LAST) || "{}");
  const script = select([], "", { required: true });
  const method = select(METHODS, saved.method || "POST");
  const tail = h("input", { value: saved.tail || "", placeholder: "/optional/path", autocomplete: "off", pattern: "(/.*)?" });
  const key = h("input", { type: "password", autocomplete: "off", placeholder: "only for private scripts" });
  const headers = h("textarea.mono", { rows: 3, placeholder: "Content-Type: application/json" }, saved.headers ?? "Content-Type: application/json");
  const body = h("textarea.mono", { rows: 6, placeholder: '{"hello": "world"}' }, saved.body ?? "{}");
  const out = h("div", { "aria-live": "polite" });
  const send = h("button.primary", { type: "submit" }, "Send");
  const form = h("form", {
    onsubmit: (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(LAST, JSON.stringify({ method: method.value, tail: tail.value, headers: headers.value, body: body.value }));
      busy(send, () => invoke(out, {
        script: script.value, method: method.value, tail: tail.value, key: key.value,
        headers: headers.value, body: body.value,
      }));
    },
  },
    h("div.grid", field("Script", script), field("Method", method), field("Path tail", tail, "Appended to /api/v1/execute/{id}")),
    field("API key", key, "Sent as X-PiCloud-Key. Public scripts need none."),
    field("Headers (one per line, Name: value)", headers),
    field("Body", body),
    h("div.actions", send));
  main.append(pageHeader("Invoke"), section("Request", form), out);
  fillScripts(script, scriptId, out);
}

async function fillScripts(el, wanted, out) {
  try {
    const scripts = await all("admin/scripts");
    if (!scripts.length) {
      clear(out, empty("No scripts to invoke", "Deploy one first."), link("#/scripts/new", "New script"));
      return;
    }
    const app = rememberedApp();
    const pick = wanted || (scripts.find((s) => s.app === app) || scripts[0]).id;
    for (const s of scripts) el.append(h("option", { value: s.id, selected: s.id === pick }, `${s.id} (${s.app})`));
  } catch (err) {
    clear(out, errorBox(err));
  }
}

function parseHeaders(text) {
  const headers = {};
  for (const line of text.split("\n")) {
    const at = line.indexOf(":");
    if (at > 0) headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    else if (line.trim()) throw new Error(`header line needs "Name: value": ${line.trim()}`);
  }
  return headers;
}

async function invoke(out, req) {
  let headers;
  try {
    headers = parseHeaders(req.headers);
  } catch (err) {
    clear(out, errorBox(err));
    return;
  }
  if (req.key) headers["X-PiCloud-Key"] = req.key;
  const tail = req.tail && !req.tail.startsWith("/") ? `/${req.tail}` : req.tail;
  let result;
  try {
    result = await execute(req.script, tail, { method: req.method, headers, body: req.body });
  } catch (err) {
    clear(out, errorBox({ message: `request failed: ${err.message}` }));
    return;
  }
  const { resp, text, ms: took } = result;
  const invocation = invocationId(resp.headers);
  const logBox = h("div", invocation ? h("p.muted", "Fetching the run's log…") : h("p.muted", "The response named no invocation id."));
  clear(out, section("Response",
    h("div.kv-line", h("span.status-code" + (resp.ok ? ".ok" : ".bad"), `${resp.status} ${resp.statusText}`),
      h("span", `round trip ${ms(took)}`),
      invocation ? link(`#/invocations/${enc(invocation)}`, `invocation ${invocation}`) : null),
    h("h3", "Headers"),
    h("pre.out", [...resp.headers].map(([k, v]) => `${k}: ${v}`).join("\n")),
    h("h3", "Body"),
    h("pre.out", { tabindex: "0" }, prettyBody(resp.headers.get("Content-Type"), text) || "(empty)")),
  section("Run", logBox));
  if (invocation) showRun(logBox, invocation);
}

export function invocationId(headers) {
  for (const [name, value] of headers) {
    if (/^x-(picloud-)?invocation(-id)?$/i.test(name)) return value;
  }
  return null;
}

function prettyBody(type, text) {
  if ((type || "").includes("json")) {
    try {
      return pretty(JSON.parse(text));
    } catch {
      return text;
    }
  }
  return text;
}

// Invocation records are written in batches: poll briefly until this one is there.
async function showRun(box, id) {
  for (let attempt = 0; attempt < 20; attempt += 1) {
    try {
      const run = await api.get(`admin/invocations/${enc(id)}`);
      clear(box, runSummary(run), h("h3", "Log"), h("pre.out.log", { tabindex: "0" }, run.log || "(no output)"));
      return;
    } catch (err) {
      if (err.status !== 404) {
        clear(box, errorBox(err));
        return;
      }
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  clear(box, h("p.muted", "The run's record has not been written yet; see ", link(`#/invocations/${enc(id)}`, "the invocation"), "."));
}

export function runSummary(run) {
  return h("dl.facts",
    h("dt", "Status"), h("dd", statusBadge(run.status), run.http_status ? ` HTTP ${run.http_status}` : ""),
    h("dt", "Script"), h("dd", link(`#/scripts/${enc(run.script ?? run.script_id)}`, run.script ?? run.script_id), run.version ? ` v${run.version}` : ""),
    h("dt", "Trigger"), h("dd", run.trigger || "http",
      run.trigger_id ? [" · ", link(`#/triggers?app=${enc(run.app_id ?? run.app ?? "")}`, h("code", run.trigger_id))] : "",
      run.event_id ? ` · event ${run.event_id}` : ""),
    h("dt", "Duration"), h("dd", ms(run.duration_ms)),
    h("dt", "CPU"), h("dd", ms(run.cpu_ms)),
    run.cold_start_ms ? [h("dt", "Cold start"), h("dd", ms(run.cold_start_ms))] : null,
    h("dt", "Peak memory"), h("dd", run.peak_memory_kb ? `${run.peak_memory_kb} KiB` : "—"),
    run.error ? [h("dt", "Error"), h("dd", h("code", run.error))] : null);
}
