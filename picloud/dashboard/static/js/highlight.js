// A tiny Python highlighter: one regex pass, HTML-escaped spans; good enough to read code by.
const KEYWORDS = new Set(("False None True and as assert async await break class continue def del elif else " +
  "except finally for from global if import in is lambda match case nonlocal not or pass raise return try " +
  "while with yield").split(" "));
const BUILTINS = new Set(("abs all any bool bytes dict enumerate filter float getattr hasattr int isinstance " +
  "len list map max min print range repr reversed round set sorted str sum tuple type zip self ctx kv log " +
  "Response Exception ValueError TypeError KeyError").split(" "));

const TOKEN = new RegExp([
  String.raw`(?<comment>#[^\n]*)`,
  String.raw`(?<string>[rRbBuUfF]{0,2}(?:"""[\s\S]*?(?:"""|$(?![\s\S]))|'''[\s\S]*?(?:'''|$(?![\s\S]))|"(?:\\.|[^"\\\n])*"?|'(?:\\.|[^'\\\n])*'?))`,
  String.raw`(?<decorator>@[A-Za-z_][\w.]*)`,
  String.raw`(?<number>\b(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|\d[\d_]*\.?[\d_]*(?:[eE][+-]?\d+)?j?)\b)`,
  String.raw`(?<word>[A-Za-z_]\w*)`,
].join("|"), "g");

export function escapeHtml(text) {
  return text.replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" })[c]);
}

export function highlightPython(source) {
  let out = "";
  let last = 0;
  let afterDef = false;
  for (const match of source.matchAll(TOKEN)) {
    out += escapeHtml(source.slice(last, match.index));
    last = match.index + match[0].length;
    const text = escapeHtml(match[0]);
    const g = match.groups;
    let kind = null;
    if (g.comment) kind = "c";
    else if (g.string) kind = "s";
    else if (g.decorator) kind = "d";
    else if (g.number) kind = "n";
    else if (afterDef) kind = "f";
    else if (KEYWORDS.has(g.word)) kind = "k";
    else if (BUILTINS.has(g.word)) kind = "b";
    afterDef = g.word === "def" || g.word === "class";
    out += kind ? `<span class="t-${kind}">${text}</span>` : text;
  }
  return out + escapeHtml(source.slice(last));
}
