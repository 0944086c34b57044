// KV browser: an app's collections, keys page by page with a prefix search, and one value
// viewed and edited as JSON.
import { api, ApiError, enc, qs } from "../api.js";
import { busy, bytes, clear, confirmDialog, empty, errorBox, field, h, link, loading, pageHeader, pretty, section, table, toast } from "../ui.js";
import { appPicker, rememberApp } from "./common.js";

const PAGE = 50;
const COLLECTION = "[A-Za-z0-9_.\\-]{1,64}";

export function render(main, [app, collection, key]) {
  if (app && collection && key !== undefined) return renderKey(main, app, collection, key);
  if (app && collection) return renderCollection(main, app, collection);
  return renderCollections(main, app);
}

function kvPath(app, collection, key) {
  let path = `admin/apps/${enc(app)}/kv`;
  if (collection !== undefined) path += `/${enc(collection)}`;
  if (key !== undefined) path += `/${enc(key)}`;
  return path;
}

function collectionHref(app, collection) {
  return `#/kv/${enc(app)}/${enc(collection)}`;
}

function renderCollections(main, app) {
  const list = h("div", loading());
  const name = h("input", { required: true, pattern: COLLECTION, placeholder: "widgets", autocomplete: "off" });
  const open = h("form.inline-form", {
    onsubmit: (ev) => {
      ev.preventDefault();
      location.hash = collectionHref(current, name.value);
    },
  }, field("Open a collection", name), h("button", { type: "submit" }, "Open"));
  const toolbar = h("div.toolbar");
  const usage = h("p.muted");
  let current = app || "";
  main.append(pageHeader("KV store"), section("Collections", toolbar, open, usage, list));
  appPicker((v) => {
    current = v;
    load();
  }, { value: current || undefined }).then((picker) => {
    current = picker.value;
    toolbar.append(field("App", picker.el));
    if (!picker.apps.length) clear(list, empty("No apps yet", "KV data belongs to an app."), link("#/apps", "Create an app"));
    else load();
  });
  async function load() {
    rememberApp(current);
    try {
      const page = await api.get(`${kvPath(current)}?limit=500`);
      const items = (page.items || []).map((c) => (typeof c === "string" ? { name: c } : c));
      usage.textContent = typeof page.usage_bytes === "number"
        ? `${bytes(page.usage_bytes)} used of the app's ${bytes(page.quota_bytes)} KV quota` : "";
      clear(list, items.length ? table([
        { label: "Collection", render: (c) => link(collectionHref(current, c.name ?? c.collection), c.name ?? c.collection) },
        { label: "Keys", render: (c) => c.keys ?? c.count ?? "—", class: "num" },
      ], items, { label: "Collections", onRow: (c) => (location.hash = collectionHref(current, c.name ?? c.collection)) })
        : empty("No collections yet", "Collections appear when a script or this page writes a key."),
        page.cursor ? h("p.muted", "More collections exist than are listed: open one by name above.") : null);
    } catch (err) {
      clear(list, errorBox(err));
    }
  }
}

function renderCollection(main, app, collection) {
  const prefix = h("input", { type: "search", placeholder: "key prefix", autocomplete: "off", "aria-label": "Key prefix" });
  const rows = h("div", loading());
  const pos = h("span.muted");
  const prev = h("button", { type: "button", disabled: true }, "← Previous");
  const next = h("button", { type: "button", disabled: true }, "Next →");
  const cursors = [null];
  let at = 0;
  let nextCursor = null;
  main.append(
    pageHeader(`KV: ${app} / ${collection}`, link(`#/kv/${enc(app)}`, "All collections")),
    section("Keys", h("div.toolbar", prefix), rows, h("div.pager", prev, pos, next)),
    section("New key", newKeyForm(app, collection)),
  );
  async function load() {
    try {
      const page = await api.get(`${kvPath(app, collection)}${qs({ prefix: prefix.value, limit: PAGE, cursor: cursors[at] })}`);
      nextCursor = page.cursor || null;
      const items = page.items || [];
      clear(rows, items.length ? table([
        { label: "Key", render: (i) => link(`${collectionHref(app, collection)}/${enc(i.key)}`, i.key) },
        { label: "Value", render: (i) => h("code.preview", preview(i.value)) },
      ], items, { label: "Keys", onRow: (i) => (location.hash = `${collectionHref(app, collection)}/${enc(i.key)}`) })
        : empty(prefix.value ? `No keys start with "${prefix.value}"` : "This collection is empty"));
      pos.textContent = `page ${at + 1}`;
      prev.disabled = at === 0;
      next.disabled = !nextCursor;
    } catch (err) {
      clear(rows, errorBox(err));
    }
  }
  prev.addEventListener("click", () => {
    at -= 1;
    load();
  });
  next.addEventListener("click", () => {
    cursors[at + 1] = nextCursor;
    at += 1;
    load();
  });
  let debounce = 0;
  prefix.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      cursors.length = 1;
      at = 0;
      load();
    }, 250);
  });
  load();
}

// Optional expiry, as the API's `ttl` (seconds). Saving without it makes the key permanent.
function ttlInput() {
  return h("input", { type: "number", min: 1, step: 1, placeholder: "never", inputmode: "numeric" });
}

function putBody(value, ttl) {
  return ttl.value ? { value, ttl: Number(ttl.value) } : { value };
}

function preview(value) {
  const text = JSON.stringify(value);
  return text.length > 120 ? `${text.slice(0, 117)}…` : text;
}

function newKeyForm(app, collection) {
  const key = h("input", { required: true, maxlength: 512, autocomplete: "off", placeholder: "key" });
  const value = h("textarea.mono", { rows: 3 }, "{}");
  const ttl = ttlInput();
  const error = h("div");
  const save = h("button.primary", { type: "submit" }, "Save");
  const form = h("form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      clear(error);
      const parsed = parseJson(value.value, error);
      if (parsed === undefined) return;
      await busy(save, async () => {
        try {
          await api.put(kvPath(app, collection, key.value), putBody(parsed, ttl));
          toast(`Saved ${key.value}`);
          location.hash = `${collectionHref(app, collection)}/${enc(key.value)}`;
        } catch (err) {
          clear(error, errorBox(err));
        }
      });
    },
  }, h("div.grid", field("Key", key), field("Value (JSON)", value), field("Expires after (seconds)", ttl)),
  error, h("div.actions", save));
  return form;
}

// The parsed JSON, or undefined after showing where it is malformed.
function parseJson(text, errorEl) {
  try {
    return JSON.parse(text);
  } catch (err) {
    clear(errorEl, h("div.alert.error", { role: "alert" }, `Not valid JSON: ${err.message}`));
    return undefined;
  }
}

function renderKey(main, app, collection, key) {
  const box = h("div", loading());
  main.append(pageHeader(`KV: ${key}`, link(collectionHref(app, collection), `${app} / ${collection}`)), box);
  (async () => {
    let item = null;
    try {
      item = await api.get(kvPath(app, collection, key));
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) {
        clear(box, errorBox(err));
        return;
      }
    }
    const value = h("textarea.mono.json-edit", { rows: 14, "aria-label": "Value as JSON" }, item ? pretty(item.value) : "null");
    const error = h("div");
    const ttl = ttlInput();
    const save = h("button.primary", { type: "button" }, "Save");
    const remove = h("button.danger", { type: "button" }, "Delete key");
    save.addEventListener("click", async () => {
      clear(error);
      const parsed = parseJson(value.value, error);
      if (parsed === undefined) return;
      await busy(save, async () => {
        await api.put(kvPath(app, collection, key), putBody(parsed, ttl));
        value.value = pretty(parsed);
        toast(`Saved ${key}`);
      });
    });
    remove.addEventListener("click", async () => {
      if (!(await confirmDialog(`Delete key "${key}"?`))) return;
      await busy(remove, async () => {
        await api.del(kvPath(app, collection, key));
        toast(`Deleted ${key}`);
        location.hash = collectionHref(app, collection);
      });
    });
    clear(box, section("Value",
      item ? null : h("p.alert", "This key does not exist; saving creates it."),
      h("p.muted", h("code", key), " in ", h("code", collection)),
      value, field("Expires after (seconds)", ttl, "Empty: never. Saving sets the expiry anew."),
      error, h("div.actions", save, item ? remove : null)));
  })();
}
