// Pieces several pages share: the app picker and list paging.
import { all } from "../api.js";
import { h, select, toast } from "../ui.js";

const APP_KEY = "picloud.app";

export function rememberedApp() {
  return sessionStorage.getItem(APP_KEY) || "";
}

export function rememberApp(id) {
  if (id) sessionStorage.setItem(APP_KEY, id);
  else sessionStorage.removeItem(APP_KEY);
}

// A <select> of apps; `anyLabel` adds an "all apps" choice. Resolves the element once filled.
export async function appPicker(onChange, { anyLabel = null, value = rememberedApp(), label = "App" } = {}) {
  let apps = [];
  try {
    apps = await all("admin/apps");
  } catch (err) {
    toast(err.message, "error");
  }
  const ids = apps.map((a) => a.id);
  const chosen = ids.includes(value) ? value : anyLabel !== null ? "" : ids[0] || "";
  const options = (anyLabel !== null ? [["", anyLabel]] : []).concat(ids);
  const el = select(options, chosen, { "aria-label": label, class: "app-picker" });
  el.addEventListener("change", () => {
    rememberApp(el.value);
    onChange(el.value);
  });
  el.disabled = !ids.length;
  return { el, value: chosen, apps: ids };
}

// "Load more" paging over {items, cursor}: calls fetchPage(cursor) and renders rows.
export function pager(fetchPage, renderRows) {
  const more = h("button", { type: "button" }, "Load more");
  const foot = h("div.pager");
  let cursor = null;
  let items = [];
  async function load(reset) {
    if (reset) {
      cursor = null;
      items = [];
    }
    const page = await fetchPage(cursor);
    items = items.concat(page.items || []);
    cursor = page.cursor || null;
    renderRows(items);
    foot.replaceChildren(cursor ? more : "");
  }
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      await load(false);
    } catch (err) {
      toast(err.message, "error");
    } finally {
      more.disabled = false;
    }
  });
  return { foot, load, get items() { return items; } };
}
