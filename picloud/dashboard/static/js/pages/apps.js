// Apps: create and delete; per app, API keys (shown once) and secrets (names only).
import { all, api, enc } from "../api.js";
import {
  busy, clear, confirmDialog, copyButton, empty, errorBox, field, h, link, loading, pageHeader, section,
  table, toast, when,
} from "../ui.js";
import { rememberApp } from "./common.js";

export function render(main, [appId]) {
  if (appId) return renderApp(main, appId);
  return renderList(main);
}

function renderList(main) {
  const list = h("div", loading());
  const id = h("input", {
    name: "id", required: true, pattern: "[a-z0-9][a-z0-9_\\-]{0,63}", autocomplete: "off",
    placeholder: "home", "aria-describedby": "app-id-help",
  });
  const error = h("div");
  const form = h("form.inline-form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      clear(error);
      await busy(form.querySelector("button"), async () => {
        try {
          await api.post("admin/apps", { id: id.value.trim() });
          toast(`App ${id.value} created`);
          rememberApp(id.value.trim());
          id.value = "";
          await load();
        } catch (err) {
          clear(error, errorBox(err));
        }
      });
    },
  }, field("New app id", id), h("button.primary", { type: "submit" }, "Create app"));
  main.append(
    pageHeader("Apps"),
    section("Create an app", form,
      h("small#app-id-help.muted", "Lower-case letters, digits, '-' and '_'; starts with a letter or digit."), error),
    section("All apps", list),
  );
  async function load() {
    try {
      const apps = await all("admin/apps");
      if (!apps.length) {
        clear(list, empty("No apps yet", "An app owns scripts, KV collections, triggers, keys and secrets. Create one above."));
        return;
      }
      clear(list, table([
        { label: "App", render: (a) => link(`#/apps/${enc(a.id)}`, a.id) },
        { label: "Scripts", render: (a) => a.scripts ?? "—", class: "num" },
        { label: "Created", render: (a) => when(a.created_at) },
      ], apps, { label: "Apps", onRow: (a) => (location.hash = `#/apps/${enc(a.id)}`) }));
    } catch (err) {
      clear(list, errorBox(err));
    }
  }
  load();
}

function renderApp(main, appId) {
  rememberApp(appId);
  const base = `admin/apps/${enc(appId)}`;
  const keys = h("div", loading());
  const secrets = h("div", loading());
  const shown = h("div", { "aria-live": "polite" });
  const remove = h("button.danger", {
    type: "button",
    onclick: async () => {
      const ok = await confirmDialog(`Delete app "${appId}" and everything it owns: scripts, KV data, triggers, keys, secrets?`);
      if (!ok) return;
      await busy(remove, async () => {
        await api.del(base);
        toast(`App ${appId} deleted`);
        rememberApp("");
        location.hash = "#/apps";
      });
    },
  }, "Delete app");
  const newKey = h("button.primary", {
    type: "button",
    onclick: () => busy(newKey, async () => {
      const made = await api.post(`${base}/keys`, {});
      clear(shown, h("div.alert.once", { role: "alert" },
        h("strong", "New API key — copy it now, it is not shown again:"),
        h("div.key-row", h("code.key", made.key), copyButton(made.key))));
      await loadKeys();
    }),
  }, "New API key");
  main.append(
    pageHeader(`App: ${appId}`, link(`#/scripts?app=${enc(appId)}`, "Scripts"), remove),
    section("API keys", h("p.muted", "Private scripts need a key: Authorization: Bearer <key>, or X-PiCloud-Key."),
      newKey, shown, keys),
    section("Secrets", h("p.muted", "Scripts read them as ctx[\"secrets\"][name]. Values are write-only."),
      secretForm(base, () => loadSecrets()), secrets),
  );

  async function loadKeys() {
    try {
      const items = await all(`${base}/keys`);
      clear(keys, items.length ? table([
        { label: "Key", render: (k) => h("code", `${k.prefix}…`) },
        { label: "Created", render: (k) => when(k.created_at) },
        { label: "Last used", render: (k) => when(k.last_used_at) },
        { label: "", render: (k) => revokeButton(`${base}/keys/${enc(k.id)}`, "Revoke", loadKeys) },
      ], items, { label: "API keys" }) : empty("No API keys", "Public scripts need none; private ones do."));
    } catch (err) {
      clear(keys, errorBox(err));
    }
  }
  async function loadSecrets() {
    try {
      const items = await all(`${base}/secrets`);
      clear(secrets, items.length ? table([
        { label: "Name", render: (s) => h("code", s.name) },
        { label: "Updated", render: (s) => when(s.updated_at) },
        { label: "", render: (s) => revokeButton(`${base}/secrets/${enc(s.name)}`, "Delete", loadSecrets) },
      ], items, { label: "Secrets" }) : empty("No secrets"));
    } catch (err) {
      clear(secrets, errorBox(err));
    }
  }
  loadKeys();
  loadSecrets();
}

function revokeButton(path, label, reload) {
  const button = h("button.small.danger", {
    type: "button",
    onclick: async () => {
      if (!(await confirmDialog(`${label} this?`, { confirm: label }))) return;
      await busy(button, async () => {
        await api.del(path);
        toast(`${label}d`);
        await reload();
      });
    },
  }, label);
  return button;
}

function secretForm(base, reload) {
  const name = h("input", { required: true, pattern: "[A-Za-z_][A-Za-z0-9_]{0,127}", placeholder: "API_TOKEN", autocomplete: "off" });
  const value = h("input", { type: "password", required: true, autocomplete: "new-password" });
  const error = h("div");
  const form = h("form.inline-form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      clear(error);
      await busy(form.querySelector("button"), async () => {
        try {
          const res = await api.put(`${base}/secrets/${enc(name.value)}`, { value: value.value });
          toast(`Secret ${res.name} ${res.created ? "created" : "updated"}`);
          name.value = "";
          value.value = "";
          await reload();
        } catch (err) {
          clear(error, errorBox(err));
        }
      });
    },
  }, field("Name", name), field("Value", value), h("button", { type: "submit" }, "Set secret"));
  return h("div", form, error);
}
