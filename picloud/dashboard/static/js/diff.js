// A line diff by longest common subsequence, trimmed to the changed middle first.
const MAX_CELLS = 4_000_000;

// -> [{op: " " | "-" | "+", text, a?: line in old, b?: line in new}]
export function diffLines(oldText, newText) {
  const a = oldText.split("\n");
  const b = newText.split("\n");
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head += 1;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) {
    tail += 1;
  }
  const midA = a.slice(head, a.length - tail);
  const midB = b.slice(head, b.length - tail);
  const out = [];
  for (let i = 0; i < head; i += 1) out.push({ op: " ", text: a[i], a: i + 1, b: i + 1 });
  out.push(...middle(midA, midB, head));
  for (let i = a.length - tail; i < a.length; i += 1) {
    out.push({ op: " ", text: a[i], a: i + 1, b: i + 1 + b.length - a.length });
  }
  return out;
}

function middle(a, b, offset) {
  if ((a.length + 1) * (b.length + 1) > MAX_CELLS) {
    // Too big to align on a Pi-served page: show it as a replacement.
    return [
      ...a.map((text, i) => ({ op: "-", text, a: offset + i + 1 })),
      ...b.map((text, j) => ({ op: "+", text, b: offset + j + 1 })),
    ];
  }
  const w = b.length + 1;
  const table = new Uint32Array((a.length + 1) * w);
  for (let i = a.length - 1; i >= 0; i -= 1) {
    for (let j = b.length - 1; j >= 0; j -= 1) {
      table[i * w + j] = a[i] === b[j] ? table[(i + 1) * w + j + 1] + 1
        : Math.max(table[(i + 1) * w + j], table[i * w + j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      out.push({ op: " ", text: a[i], a: offset + ++i, b: offset + ++j });
    } else if (i < a.length && (j >= b.length || table[(i + 1) * w + j] >= table[i * w + j + 1])) {
      // Deletions before insertions, as unified diffs show a change.
      out.push({ op: "-", text: a[i], a: offset + ++i });
    } else {
      out.push({ op: "+", text: b[j], b: offset + ++j });
    }
  }
  return out;
}
