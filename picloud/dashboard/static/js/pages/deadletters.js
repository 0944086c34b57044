// Dead letters: events whose handler failed every attempt. Inspect, replay, delete.
import { api, enc, qs } from "../api.js";
import { badge, busy, clear, confirmDialog, empty, errorBox, field, h, link, loading, pageHeader, pretty, section, table, toast, when } from "../ui.js";
import { appPicker, pager } from "./common.js";

export function render(main, [id], params) {
  if (id) return renderOne(main, id);
  return renderList(main, params);
}

function eventOf(d) {
  return d.event ?? d.original ?? null;
}

function renderList(main, params) {
  let app = params.get("app") || "";
  const script = h("input", { value: params.get("script") || "", placeholder: "any script", autocomplete: "off" });
  const rows = h("div", loading());
  const toolbar = h("div.toolbar", field("Script", script));
  const paging = pager(
    (cursor) => api.get(`admin/dead-letters${qs({ app, script: script.value.trim(), limit: 50, cursor })}`),
    (items) => clear(rows, items.length ? table([
      { label: "When", render: (d) => link(`#/dead-letters/${enc(d.id)}`, when(d.created_at)) },
      { label: "Script", render: (d) => d.script ?? d.script_id },
      { label: "Event", render: (d) => summary(eventOf(d)) },
      { label: "Attempts", render: (d) => d.attempts ?? "—", class: "num" },
      { label: "Error", render: (d) => h("code.preview", (d.error || "").split("\n").pop()) },
      { label: "Replays", render: (d) => (d.replays ? badge(`replayed ×${d.replays}`, "ok") : "") },
    ], items, { label: "Dead letters", onRow: (d) => (location.hash = `#/dead-letters/${enc(d.id)}`) })
      : empty("No dead letters", "Events land here when their handler fails every attempt.")),
  );
  main.append(pageHeader("Dead letters"), section("Dead letters", toolbar, rows, paging.foot));
  const load = async () => {
    try {
      await paging.load(true);
    } catch (err) {
      clear(rows, errorBox(err));
    }
  };
  appPicker((v) => {
    app = v;
    load();
  }, { anyLabel: "All apps", value: app }).then((picker) => {
    app = picker.value;
    toolbar.prepend(field("App", picker.el));
    load();
  });
  script.addEventListener("change", load);
}

function summary(event) {
  if (!event) return "—";
  if (event.type === "kv") return `kv ${event.op} ${event.collection}/${event.key}`;
  if (event.type === "cron") return `cron ${event.schedule}`;
  return event.type || "event";
}

function renderOne(main, id) {
  const box = h("div", loading());
  main.append(pageHeader("Dead letter", link("#/dead-letters", "All dead letters")), box);
  (async () => {
    let d;
    try {
      d = await api.get(`admin/dead-letters/${enc(id)}`);
    } catch (err) {
      clear(box, errorBox(err));
      return;
    }
    const replay = h("button.primary", {
      type: "button",
      onclick: () => busy(replay, async () => {
        toast("Replayed: the event is queued for its trigger again");
        const res = await api.post(`admin/dead-letters/${enc(id)}/replay`, {});
        clear(status, badge(`${res.replays}, last just now`, "ok"));
      }),
    }, "Replay");
    const remove = h("button.danger", {
      type: "button",
      onclick: async () => {
        if (!(await confirmDialog("Delete this dead letter?"))) return;
        await busy(remove, async () => {
          await api.del(`admin/dead-letters/${enc(id)}`);
          toast("Dead letter deleted");
          location.hash = "#/dead-letters";
        });
      },
    }, "Delete");
    const status = h("span", d.replays ? badge(`${d.replays}, last ${when(d.replayed_at)}`, "ok") : "never");
    clear(box,
      section("What failed", h("dl.facts",
        h("dt", "Script"), h("dd", link(`#/scripts/${enc(d.script ?? d.script_id)}`, d.script ?? d.script_id)),
        h("dt", "Trigger"), h("dd", h("code", d.trigger ?? d.trigger_id ?? "—")),
        h("dt", "Attempts"), h("dd", String(d.attempts ?? "—")),
        h("dt", "When"), h("dd", when(d.created_at)),
        d.handler_status ? [h("dt", "Dead-letter handler"), h("dd", d.handler_status, d.handler_error ? ` — ${d.handler_error}` : "")] : null,
        d.dead_letter_script ? [h("dt", "Dead-letter script"), h("dd", d.dead_letter_script)] : null,
        h("dt", "Replays"), h("dd", status)),
        h("div.actions", replay, remove)),
      section("Error", h("pre.out.log", { tabindex: "0" }, d.error || "(none)")),
      section("Original event", h("pre.out", { tabindex: "0" }, pretty(eventOf(d)))));
  })();
}
