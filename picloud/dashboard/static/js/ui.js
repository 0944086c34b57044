// Small DOM helpers shared by every page: element builder, messages, tables, formats.

// h("button#save.primary", {onclick}, "Save") -> <button id="save" class="primary">Save</button>
export function h(spec, attrs, ...children) {
  const [head, ...classes] = spec.split(".");
  const [tag, id] = head.split("#");
  const el = document.createElement(tag || "div");
  if (id) el.id = id;
  if (classes.length) el.className = classes.join(" ");
  if (attrs && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className += (el.className ? " " : "") + value;
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function toast(message, kind = "ok") {
  const box = document.getElementById("toasts");
  const item = h("div.toast." + kind, message);
  box.append(item);
  while (box.childElementCount > 3) box.firstElementChild.remove();
  setTimeout(() => item.remove(), kind === "error" ? 7000 : 3500);
}

// An inline error for a failed call; the API's message is the user's best clue.
export function errorBox(err) {
  const code = err && err.code ? `${err.code}: ` : "";
  return h("div.alert.error", { role: "alert" }, code + (err ? err.message : "unknown error"));
}

export function empty(title, hint) {
  return h("div.empty", h("p.empty-title", title), hint ? h("p.muted", hint) : null);
}

export function loading() {
  return h("p.muted.loading", { "aria-busy": "true" }, "Loading…");
}

export function section(title, ...children) {
  return h("section.card", h("h2", title), ...children);
}

export function pageHeader(title, ...actions) {
  return h("header.page-head", h("h1", { tabindex: "-1" }, title), h("div.actions", ...actions));
}

// columns: [{label, render(row) -> node|string, class?}]
export function table(columns, rows, { onRow, label } = {}) {
  const head = h("tr", columns.map((c) => h("th", { scope: "col", class: c.class }, c.label)));
  const body = rows.map((row) => {
    const tr = h("tr", columns.map((c) => h("td", { class: c.class, "data-label": c.label }, c.render(row))));
    if (onRow) {
      tr.classList.add("clickable");
      tr.addEventListener("click", (ev) => {
        if (!ev.target.closest("a,button,input,select,label")) onRow(row);
      });
    }
    return tr;
  });
  return h("div.table-wrap", h("table", { "aria-label": label }, h("thead", head), h("tbody", body)));
}

export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h("div.field", h("label", { for: id }, label), control, hint ? h("small.muted", hint) : null);
}

export function select(options, value, attrs = {}) {
  const el = h("select", attrs);
  for (const opt of options) {
    const [val, text] = Array.isArray(opt) ? opt : [opt, opt];
    el.append(h("option", { value: val, selected: val === value }, text));
  }
  return el;
}

export function badge(text, kind = "") {
  return h("span.badge" + (kind ? "." + kind : ""), text);
}

export function statusBadge(status) {
  const kind = { ok: "ok", script_error: "bad", timeout: "warn", resource_limit: "warn", internal: "bad" }[status];
  return badge(status || "?", kind || "");
}

// A modal confirm built on <dialog>; resolves true or false.
export function confirmDialog(message, { confirm = "Delete", danger = true } = {}) {
  return new Promise((resolve) => {
    const dlg = h("dialog.dialog", { "aria-label": "Confirm" });
    const done = (value) => {
      dlg.close();
      dlg.remove();
      resolve(value);
    };
    dlg.append(
      h("p", message),
      h("div.actions",
        h("button", { type: "button", onclick: () => done(false) }, "Cancel"),
        h("button" + (danger ? ".danger" : ".primary"), { type: "button", onclick: () => done(true) }, confirm)),
    );
    dlg.addEventListener("cancel", () => done(false));
    document.body.append(dlg);
    dlg.showModal();
  });
}

// Run an async action from a button: disable it meanwhile, toast failures.
export async function busy(button, fn) {
  button.disabled = true;
  try {
    return await fn();
  } catch (err) {
    toast(err.message, "error");
    return undefined;
  } finally {
    button.disabled = false;
  }
}

export function copyButton(text) {
  return h("button.small", {
    type: "button",
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(text);
        toast("Copied");
      } catch {
        toast("Copy failed: select the text and copy it by hand", "error");
      }
    },
  }, "Copy");
}

export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

// The API's timestamps are unix ms or ISO strings; show local time.
export function when(value) {
  if (value === undefined || value === null || value === "") return "—";
  const date = typeof value === "number" ? new Date(value) : new Date(String(value));
  return isNaN(date) ? String(value) : date.toLocaleString();
}

export function ms(value) {
  if (value === undefined || value === null) return "—";
  return value < 10 ? `${Number(value).toFixed(1)} ms` : `${Math.round(value)} ms`;
}

export function bytes(value) {
  if (value === undefined || value === null) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let n = Number(value);
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function link(href, text) {
  return h("a", { href }, text);
}
