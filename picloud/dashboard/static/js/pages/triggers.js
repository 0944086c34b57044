// Triggers: create kv and cron triggers (checked here first, then by the API), enable or
// disable them, and see their pending and dead counts.
import { all, api, enc, qs } from "../api.js";
import { badge, busy, clear, confirmDialog, empty, errorBox, field, h, link, loading, pageHeader, section, select, table, toast, when } from "../ui.js";
import { appPicker } from "./common.js";

const OPS = ["insert", "update", "delete"];
const CRON_FIELD = /^(\*|\d+(-\d+)?)(\/\d+)?(,(\*|\d+(-\d+)?)(\/\d+)?)*$|^[A-Za-z]{3}(-[A-Za-z]{3})?$/;

export function render(main, _parts, params) {
  const list = h("div", loading());
  const formBox = h("div");
  const toolbar = h("div.toolbar");
  let app = params.get("app") || "";
  main.append(pageHeader("Triggers"), section("New trigger", formBox), section("Triggers", toolbar, list));
  async function load() {
    try {
      const items = await all(`admin/triggers${qs({ app })}`);
      clear(list, items.length ? table([
        { label: "Kind", render: (t) => badge(t.kind) },
        { label: "Watches", render: (t) => (t.kind === "kv" ? `${t.collection} (${(t.ops || OPS).join(", ")})` : h("code", t.schedule)) },
        { label: "Script", render: (t) => link(`#/scripts/${enc(t.script)}`, t.script) },
        { label: "Dead-letter script", render: (t) => t.dead_letter_script || "—" },
        { label: "Pending", render: (t) => count(t.pending), class: "num" },
        { label: "Retrying", render: (t) => count(t.retrying), class: "num" },
        { label: "Dead", render: (t) => (t.dead ?? t.dead_letters) ? link(`#/dead-letters?app=${enc(t.app)}&script=${enc(t.script)}`, String(t.dead ?? t.dead_letters)) : count(t.dead ?? t.dead_letters), class: "num" },
        { label: "Runs", render: (t) => (t.kind === "cron" ? `last ${when(t.last_run_at)} · next ${when(t.next_run_at)}` : "on change") },
        { label: "Enabled", render: (t) => toggle(t, load) },
        { label: "", render: (t) => removeButton(t, load) },
      ], items, { label: "Triggers" }) : empty("No triggers", "A trigger runs a script when KV data changes or on a cron schedule."));
    } catch (err) {
      clear(list, errorBox(err));
    }
  }
  appPicker((v) => {
    app = v;
    load();
  }, { anyLabel: "All apps", value: app }).then((picker) => {
    app = picker.value;
    toolbar.append(field("App", picker.el));
    load();
  });
  appPicker(() => {}, { label: "App of the new trigger" }).then((picker) => formBox.append(createForm(picker, load)));
}

function count(value) {
  return value === undefined || value === null ? "—" : String(value);
}

function toggle(trigger, reload) {
  const box = h("input", { type: "checkbox", checked: trigger.enabled !== false, "aria-label": `Enabled: trigger ${trigger.id}` });
  box.addEventListener("change", () => busy(box, async () => {
    try {
      await api.patch(`admin/triggers/${enc(trigger.id)}`, { enabled: box.checked });
      toast(`Trigger ${box.checked ? "enabled" : "disabled"}`);
    } catch (err) {
      box.checked = !box.checked;
      throw err;
    }
    await reload();
  }));
  return box;
}

function removeButton(trigger, reload) {
  const button = h("button.small.danger", {
    type: "button",
    onclick: async () => {
      if (!(await confirmDialog("Delete this trigger? Its pending events are dropped."))) return;
      await busy(button, async () => {
        await api.del(`admin/triggers/${enc(trigger.id)}`);
        toast("Trigger deleted");
        await reload();
      });
    },
  }, "Delete");
  return button;
}

function createForm(picker, reload) {
  const kind = select([["kv", "KV change"], ["cron", "Cron schedule"]], "kv");
  const collection = h("input", { placeholder: "widgets", autocomplete: "off" });
  const ops = OPS.map((op) => h("input", { type: "checkbox", value: op, checked: true, "aria-label": op }));
  const schedule = h("input", { placeholder: "*/5 * * * *", autocomplete: "off", class: "mono" });
  const script = select([], "");
  const deadLetter = select([["", "none"]], "");
  const attempts = h("input", { type: "number", min: 1, max: 100, value: 3 });
  const error = h("div");
  const kvFields = h("div.grid", field("Collection", collection),
    h("fieldset.ops", h("legend", "Operations"), ops.map((box) => h("label.check", box, ` ${box.value}`))));
  const cronFields = h("div.grid", field("Schedule (minute hour day month weekday, UTC)", schedule));
  cronFields.hidden = true;
  const fillScripts = async () => {
    const scripts = picker.value ? await all(`admin/scripts${qs({ app: picker.el.value })}`) : [];
    const options = scripts.map((s) => s.id);
    script.replaceChildren(...options.map((id) => h("option", { value: id }, id)));
    deadLetter.replaceChildren(h("option", { value: "" }, "none"), ...options.map((id) => h("option", { value: id }, id)));
  };
  picker.el.addEventListener("change", () => fillScripts().catch((err) => toast(err.message, "error")));
  kind.addEventListener("change", () => {
    kvFields.hidden = kind.value !== "kv";
    cronFields.hidden = kind.value !== "cron";
  });
  const create = h("button.primary", { type: "submit" }, "Create trigger");
  const form = h("form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      const body = triggerBody(picker.el.value, kind.value, { collection, ops, schedule, script, deadLetter, attempts });
      if (typeof body === "string") {
        clear(error, errorBox({ message: body }));
        return;
      }
      clear(error);
      await busy(create, async () => {
        try {
          await api.post("admin/triggers", body);
          toast("Trigger created");
          await reload();
        } catch (err) {
          clear(error, errorBox(err));
        }
      });
    },
  },
    h("div.grid", field("App", picker.el), field("Kind", kind), field("Script", script),
      field("Dead-letter script", deadLetter), field("Max attempts", attempts)),
    kvFields, cronFields, error, h("div.actions", create));
  fillScripts().catch((err) => toast(err.message, "error"));
  return form;
}

// The request body, or a message saying what to fix (the API checks again).
function triggerBody(app, kind, f) {
  if (!app) return "Choose an app first.";
  if (!f.script.value) return "Choose the script the trigger runs (deploy one first).";
  const attempts = Number(f.attempts.value);
  if (!Number.isInteger(attempts) || attempts < 1) return "Max attempts must be a whole number, 1 or more.";
  const body = { app, kind, script: f.script.value, max_attempts: attempts };
  if (f.deadLetter.value) body.dead_letter_script = f.deadLetter.value;
  if (kind === "kv") {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(f.collection.value)) return "Collection: 1-64 of letters, digits, '_', '.', '-'.";
    body.collection = f.collection.value;
    body.ops = f.ops.filter((b) => b.checked).map((b) => b.value);
    if (!body.ops.length) return "Pick at least one operation.";
  } else {
    const fields = f.schedule.value.trim().split(/\s+/);
    if (fields.length !== 5 || !fields.every((x) => CRON_FIELD.test(x))) {
      return "Schedule needs five cron fields, e.g. */5 * * * * (every five minutes).";
    }
    body.schedule = fields.join(" ");
  }
  return body;
}
