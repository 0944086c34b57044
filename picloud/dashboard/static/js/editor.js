// A code editor: a transparent textarea over highlighted text, with a line-number gutter.
// The box scrolls as one (the textarea grows to its content), so nothing needs syncing.
import { highlightPython } from "./highlight.js";
import { h } from "./ui.js";

const PAD_PX = 8;

// The line height comes from CSS (--ed-line), larger on phones.
function linePx(el) {
  return parseFloat(getComputedStyle(el).getPropertyValue("--ed-line")) || 20;
}

export function createEditor(text = "", { label = "Script source", onChange } = {}) {
  const gutter = h("div.ed-gutter", { "aria-hidden": "true" });
  const pre = h("pre.ed-hl", { "aria-hidden": "true" });
  const band = h("div.ed-band", { hidden: true, "aria-hidden": "true" });
  const area = h("textarea.ed-input", {
    spellcheck: false, autocapitalize: "off", autocomplete: "off", wrap: "off",
    "aria-label": label, "aria-describedby": "ed-help",
  });
  const note = h("div.ed-note", { role: "alert" });
  const help = h("small#ed-help.muted", "Tab indents; press Esc then Tab to leave the editor.");
  const box = h("div.ed-box", gutter, h("div.ed-code", band, pre, area));
  const el = h("div.editor", box, note, help);
  let errorLine = 0;
  let escaped = false;

  function refresh() {
    const value = area.value;
    const lines = value.split("\n");
    pre.innerHTML = highlightPython(value) + "\n";
    if (gutter.childElementCount !== lines.length) {
      gutter.replaceChildren(...lines.map((_, i) => h("div", String(i + 1))));
    }
    const widest = lines.reduce((m, l) => Math.max(m, l.length), 0);
    // Heights are computed by CSS from --lines and --ed-line, so they follow the viewport.
    el.style.setProperty("--lines", String(lines.length));
    area.style.width = `max(100%, calc(${widest + 2}ch + ${PAD_PX * 2}px))`;
    pre.style.width = area.style.width;
    paintError();
  }

  function paintError() {
    for (const n of gutter.querySelectorAll(".err")) n.classList.remove("err");
    band.hidden = !errorLine;
    if (!errorLine) return;
    el.style.setProperty("--err", String(errorLine - 1));
    const num = gutter.children[errorLine - 1];
    if (num) num.classList.add("err");
  }

  area.addEventListener("input", () => {
    refresh();
    if (onChange) onChange(area.value);
  });
  area.addEventListener("keydown", (ev) => onKey(ev, area, refresh, () => escaped, (v) => (escaped = v)));
  area.value = text;
  refresh();

  return {
    el,
    textarea: area,
    get value() {
      return area.value;
    },
    set value(v) {
      area.value = v;
      refresh();
      if (onChange) onChange(v);
    },
    // Mark a line (1-based) as the compile error's, scroll it into view and say why.
    markError(line, message) {
      errorLine = line > 0 ? line : 0;
      paintError();
      note.replaceChildren(message ? h("div.alert.error", errorLine ? `Line ${errorLine}: ${message}` : message) : "");
      if (errorLine) box.scrollTop = Math.max(0, (errorLine - 3) * linePx(el));
    },
    clearError() {
      this.markError(0, "");
    },
    focus() {
      area.focus();
    },
  };
}

function onKey(ev, area, refresh, wasEscaped, setEscaped) {
  if (ev.key === "Escape") {
    setEscaped(true);
    return;
  }
  const escaped = wasEscaped();
  setEscaped(false);
  if (ev.key === "Tab" && !escaped && !ev.ctrlKey && !ev.altKey && !ev.metaKey) {
    ev.preventDefault();
    if (ev.shiftKey) return dedent(area, refresh);
    insert(area, "    ", refresh);
  } else if (ev.key === "Enter" && !ev.ctrlKey && !ev.metaKey) {
    // Keep the indentation, and add a level after a line ending in ':'.
    const start = area.selectionStart;
    const line = area.value.slice(area.value.lastIndexOf("\n", start - 1) + 1, start);
    const indent = line.match(/^\s*/)[0] + (line.trimEnd().endsWith(":") ? "    " : "");
    ev.preventDefault();
    insert(area, "\n" + indent, refresh);
  }
}

function insert(area, text, refresh) {
  // execCommand keeps the browser's undo stack; fall back to setRangeText where it is gone.
  if (!document.execCommand || !document.execCommand("insertText", false, text)) {
    area.setRangeText(text, area.selectionStart, area.selectionEnd, "end");
    refresh();
  }
}

function dedent(area, refresh) {
  const start = area.value.lastIndexOf("\n", area.selectionStart - 1) + 1;
  const spaces = area.value.slice(start, start + 4).match(/^ */)[0].length;
  if (!spaces) return;
  const caret = area.selectionStart;
  area.setRangeText("", start, start + spaces, "preserve");
  area.selectionStart = area.selectionEnd = Math.max(start, caret - spaces);
  refresh();
}

// "line 3: invalid syntax" (the API's 400 message) -> 3, or 0 when no line is named.
export function errorLine(message) {
  const match = /\bline (\d+)\b/i.exec(message || "");
  return match ? Number(match[1]) : 0;
}
