// Small live charts as inline SVG: a line over the last N samples, no library.
const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

// values: numbers (null = gap); min/max fix the scale (e.g. 0..100 for percentages).
export function sparkline(values, { min = 0, max, label = "", width = 240, height = 48 } = {}) {
  const nums = values.filter((v) => typeof v === "number");
  const top = max ?? Math.max(1, ...nums) * 1.1;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "spark", role: "img", "aria-label": label });
  root.append(svg("line", { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, class: "spark-axis" }));
  const step = values.length > 1 ? width / (values.length - 1) : width;
  const y = (v) => height - 2 - ((Math.min(Math.max(v, min), top) - min) / (top - min || 1)) * (height - 4);
  let path = "";
  values.forEach((v, i) => {
    if (typeof v !== "number") return;
    path += `${path && typeof values[i - 1] === "number" ? "L" : "M"}${(i * step).toFixed(1)},${y(v).toFixed(1)}`;
  });
  if (path) {
    root.append(svg("path", { d: `${path}L${width},${height}L0,${height}Z`, class: "spark-fill" }));
    root.append(svg("path", { d: path, class: "spark-line" }));
  }
  return root;
}
