// Scripts: list, create, edit and deploy (compile errors marked at their line), settings,
// version history with a diff against the current source, and rollback.
import { api, ApiError, enc, qs } from "../api.js";
import { diffLines } from "../diff.js";
import { createEditor, errorLine } from "../editor.js";
import {
  badge, busy, clear, confirmDialog, empty, errorBox, field, h, link, loading, pageHeader, section,
  select, table, toast, when,
} from "../ui.js";
import { appPicker, pager, rememberedApp } from "./common.js";

const TEMPLATE = `from picloud.sdk import kv, log


def handle(ctx):
    log.info("hello from PiCloud")
    return {"ok": True}
`;

export function render(main, [id], params) {
  if (id === "new") return renderNew(main, params);
  if (id) return renderScript(main, id);
  return renderList(main, params);
}

function renderList(main, params) {
  const list = h("div", loading());
  const rows = h("div");
  const paging = pager(
    (cursor) => api.get(`admin/scripts${qs({ app: current, limit: 50, cursor })}`),
    (items) => clear(rows, items.length ? table([
      { label: "Script", render: (s) => link(`#/scripts/${enc(s.id)}`, s.id) },
      { label: "App", render: (s) => s.app },
      { label: "Version", render: (s) => `v${s.version}`, class: "num" },
      { label: "Access", render: (s) => (s.public ? badge("public", "warn") : badge("private")) },
      { label: "Limits", render: (s) => `${s.timeout_ms} ms · ${s.memory_mb} MB` },
      { label: "Updated", render: (s) => when(s.updated_at) },
    ], items, { label: "Scripts", onRow: (s) => (location.hash = `#/scripts/${enc(s.id)}`) })
      : empty("No scripts yet", "A script is Python with a handle(ctx) function. Create one to get started.")),
  );
  let current = params.get("app") || "";
  const head = pageHeader("Scripts", link("#/scripts/new", "New script"));
  head.querySelector(".actions a").className = "button primary";
  main.append(head, section("Scripts", h("div.toolbar"), list));
  appPicker((value) => {
    current = value;
    reload();
  }, { anyLabel: "All apps", value: current || rememberedApp() }).then((picker) => {
    current = picker.value;
    main.querySelector(".toolbar").append(field("App", picker.el));
    reload();
  });
  async function reload() {
    try {
      clear(list, rows, paging.foot);
      await paging.load(true);
    } catch (err) {
      clear(list, errorBox(err));
    }
  }
}

function limitInputs(script = {}) {
  return {
    public: h("input", { type: "checkbox", checked: script.public ?? false }),
    timeout: h("input", { type: "number", min: 1, max: 600000, step: 1, value: script.timeout_ms ?? 5000 }),
    memory: h("input", { type: "number", min: 1, max: 65536, step: 1, value: script.memory_mb ?? 64 }),
    isolation: select([["warm", "warm (reused worker)"], ["fresh", "fresh (new process per run)"]], script.isolation || "warm"),
  };
}

function limitFields(inputs) {
  return h("div.grid",
    h("label.check", inputs.public, " Public (callable without an API key)"),
    field("Timeout (ms)", inputs.timeout),
    field("Memory (MB)", inputs.memory),
    field("Isolation", inputs.isolation));
}

function limitValues(inputs) {
  return {
    public: inputs.public.checked,
    timeout_ms: Number(inputs.timeout.value),
    memory_mb: Number(inputs.memory.value),
    isolation: inputs.isolation.value,
  };
}

// A deploy failure: a compile error goes to its line in the editor, the rest to `box`.
function showDeployError(err, editor, box) {
  const line = err instanceof ApiError && err.status === 400 ? errorLine(err.message) : 0;
  if (line) {
    editor.markError(line, err.message.replace(/^line \d+:\s*/i, ""));
    clear(box);
  } else {
    editor.clearError();
    clear(box, errorBox(err));
  }
}

function renderNew(main, params) {
  const id = h("input", { required: true, pattern: "[a-z0-9][a-z0-9_\\-]{0,63}", autocomplete: "off", placeholder: "hello" });
  const inputs = limitInputs({ public: true });
  const editor = createEditor(TEMPLATE);
  const error = h("div");
  const pickerSlot = h("div");
  let app = params.get("app") || rememberedApp();
  const create = h("button.primary", { type: "submit" }, "Create and deploy");
  const form = h("form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      editor.clearError();
      clear(error);
      await busy(create, async () => {
        try {
          const made = await api.post("admin/scripts", { id: id.value.trim(), app, source: editor.value, ...limitValues(inputs) });
          toast(`Deployed ${made.id} v${made.version}`);
          location.hash = `#/scripts/${enc(made.id)}`;
        } catch (err) {
          showDeployError(err, editor, error);
        }
      });
    },
  },
    h("div.grid", field("Script id", id), pickerSlot),
    limitFields(inputs),
    editor.el, error,
    h("div.actions", create));
  main.append(pageHeader("New script"), section("Script", form));
  appPicker((v) => (app = v), { value: app }).then((picker) => {
    app = picker.value;
    pickerSlot.append(field("App", picker.el));
    if (!picker.apps.length) clear(error, h("div.alert.error", "Create an app first: ", link("#/apps", "Apps")));
  });
}

function renderScript(main, id) {
  const base = `admin/scripts/${enc(id)}`;
  const body = h("div", loading());
  main.append(pageHeader(`Script: ${id}`,
    link(`#/invoke/${enc(id)}`, "Invoke"), link(`#/invocations?script=${enc(id)}`, "Invocations")), body);
  (async () => {
    let script;
    try {
      script = await api.get(base);
    } catch (err) {
      clear(body, errorBox(err));
      return;
    }
    const state = { script };
    const dirty = h("span.badge.warn", { hidden: true }, "unsaved changes");
    const editor = createEditor(script.source || "", {
      onChange: (text) => (dirty.hidden = text === (state.script.source || "")),
    });
    const error = h("div");
    const title = h("span.muted", `v${script.version}`);
    const history = h("div", loading());
    const diffBox = h("div", { "aria-live": "polite" });
    const reloadVersions = () => loadVersions(base, state, editor, history, diffBox);
    const deploy = h("button.primary", {
      type: "button",
      onclick: () => busy(deploy, async () => {
        editor.clearError();
        clear(error);
        try {
          state.script = await api.put(base, { source: editor.value });
          state.script.source = editor.value;
          dirty.hidden = true;
          title.textContent = `v${state.script.version}`;
          toast(`Deployed v${state.script.version}`);
          await reloadVersions();
        } catch (err) {
          showDeployError(err, editor, error);
        }
      }),
    }, "Deploy");
    deploy.title = "Deploy (Ctrl+S)";
    // Ctrl+S (Cmd+S) deploys, as editors save.
    editor.textarea.addEventListener("keydown", (ev) => {
      if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === "s") {
        ev.preventDefault();
        deploy.click();
      }
    });
    clear(body,
      section("Source", h("div.section-meta", "Current version ", title, " · app ", link(`#/apps/${enc(script.app)}`, script.app), " ", dirty),
        editor.el, error, h("div.actions", deploy)),
      settingsSection(base, state),
      section("Versions", history, diffBox),
      dangerSection(base, id));
    await reloadVersions();
  })();
}

function settingsSection(base, state) {
  const inputs = limitInputs(state.script);
  const error = h("div");
  const save = h("button", { type: "submit" }, "Save settings");
  const form = h("form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      clear(error);
      await busy(save, async () => {
        try {
          const updated = await api.put(base, limitValues(inputs));
          state.script = { ...updated, source: state.script.source };
          toast("Settings saved");
        } catch (err) {
          clear(error, errorBox(err));
        }
      });
    },
  }, limitFields(inputs), error, h("div.actions", save));
  return section("Access and limits", form);
}

async function loadVersions(base, state, editor, history, diffBox) {
  let items;
  try {
    const page = await api.get(`${base}/versions?limit=500`);
    items = (page.items || []).slice().reverse();
  } catch (err) {
    clear(history, errorBox(err));
    return;
  }
  clear(history, table([
    { label: "Version", render: (v) => (v.version === state.script.version ? h("strong", `v${v.version} (current)`) : `v${v.version}`) },
    { label: "Created", render: (v) => when(v.created_at) },
    { label: "Note", render: (v) => (v.rollback_of ? `rollback to v${v.rollback_of}` : "") },
    {
      label: "",
      render: (v) => h("div.row-actions",
        h("button.small", { type: "button", onclick: () => showDiff(base, v.version, state, diffBox) }, "Diff"),
        v.version === state.script.version ? null : rollbackButton(base, v.version, state, editor, history, diffBox)),
    },
  ], items, { label: "Versions" }));
}

function rollbackButton(base, version, state, editor, history, diffBox) {
  const button = h("button.small", {
    type: "button",
    onclick: async () => {
      if (!(await confirmDialog(`Roll back to v${version}? This deploys its source as a new version.`, { confirm: "Roll back", danger: false }))) return;
      await busy(button, async () => {
        const script = await api.post(`${base}/rollback`, { version });
        const full = await api.get(base);
        state.script = full;
        editor.value = full.source || "";
        editor.clearError();
        const meta = document.querySelector(".section-meta .muted");
        if (meta) meta.textContent = `v${script.version}`;
        toast(`Rolled back: now v${script.version}`);
        clear(diffBox);
        await loadVersions(base, state, editor, history, diffBox);
      });
    },
  }, "Roll back");
  return button;
}

async function showDiff(base, version, state, box) {
  try {
    const old = await api.get(`${base}/versions/${version}`);
    const rows = diffLines(old.source || "", state.script.source || "");
    const changed = rows.filter((r) => r.op !== " ").length;
    clear(box, h("h3", `v${version} → current (v${state.script.version})`),
      changed ? diffView(rows) : h("p.muted", "No differences."));
  } catch (err) {
    clear(box, errorBox(err));
  }
}

function diffView(rows) {
  const kind = { " ": "same", "-": "del", "+": "add" };
  return h("pre.diff", { tabindex: "0", "aria-label": "Line diff" }, rows.map((r) => h(`div.d-${kind[r.op]}`,
    h("span.d-num", r.a ?? ""), h("span.d-num", r.b ?? ""), h("span.d-op", r.op), r.text)));
}

function dangerSection(base, id) {
  const remove = h("button.danger", {
    type: "button",
    onclick: async () => {
      if (!(await confirmDialog(`Delete script "${id}" with its versions, triggers and invocation records?`))) return;
      await busy(remove, async () => {
        await api.del(base);
        toast(`Script ${id} deleted`);
        location.hash = "#/scripts";
      });
    },
  }, "Delete script");
  return section("Delete", h("p.muted", "Removes the script, its history and its triggers."), remove);
}
