// Small SVG charts for the console, drawn by hand (no library, no build step).
//
// Each chart is drawn for the pixel width it is given, so its text stays legible at any width;
// `responsive` draws it again whenever its box changes size. Colours come from CSS classes (the
// page's policy allows no inline styles); every mark has a <title> for pointer users, and the
// <svg> is one image with a summary for screen readers (`role="img"`, `aria-label`): the figure
// that holds it also holds the same numbers as a table.

const NS = "http://www.w3.org/2000/svg";
const FONT_PX = 12;

/** An SVG element with attributes and children (text or nodes); never markup from data. */
function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A round axis maximum at or above `value`, and its step (whole steps when `whole`). */
function scale(value, whole) {
  const top = Math.max(value, whole ? 1 : Number.EPSILON);
  const rough = top / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= rough);
  if (whole) step = Math.max(1, Math.ceil(step));
  return { max: step * Math.ceil(top / step), step };
}

function frame(width, height, label, className) {
  return svg("svg", {
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": label,
    class: `chart ${className}`,
  });
}

/** The y axis (grid lines and their values) of a plot from `top` to `bottom`, `left` to `right`. */
function yAxis(chart, { max, step }, box, format) {
  for (let value = 0; value <= max + step / 1000; value += step) {
    const y = box.bottom - (value / max) * (box.bottom - box.top);
    chart.append(
      svg("line", { x1: box.left, x2: box.right, y1: y, y2: y, class: value ? "grid" : "axis" }),
      svg("text", { x: box.left - 6, y: y + FONT_PX / 3, "text-anchor": "end", class: "tick" }, format(value)),
    );
  }
}

/**
 * Labels under the columns, placed from the last one backwards wherever the next fits with a
 * gap (widths estimated from the font size), so they never overlap and today is always named.
 */
function xLabels(chart, labels, box, slot) {
  let free = Infinity; // where the labels placed so far begin
  for (let i = labels.length - 1; i >= 0; i -= 1) {
    const half = (labels[i].length * FONT_PX * 0.6) / 2;
    const x = Math.min(box.left + slot * (i + 0.5), box.right - half); // inside at the right edge
    if (x + half > free - 12 || x - half < 0) continue;
    chart.append(svg("text", { x, y: box.bottom + FONT_PX + 6, "text-anchor": "middle", class: "tick day" }, labels[i]));
    free = x - half;
  }
}

function plotBox(width, height, format, max) {
  const widest = Math.max(format(0).length, format(max).length);
  return { left: widest * 7 + 10, right: width - 8, top: 8, bottom: height - FONT_PX - 12 };
}

/**
 * Columns per label, one per series side by side: `series` = [{name, className, values}].
 * Every value gets its column (a zero is a column of no height), so a chart of n days of two
 * series holds 2n columns.
 */
export function columnChart({ width, height = 220, label, labels, series, titles }) {
  const top = Math.max(0, ...series.flatMap((s) => s.values));
  const axis = scale(top, true);
  const format = (v) => String(Math.round(v));
  const box = plotBox(width, height, format, axis.max);
  const chart = frame(width, height, label, "columns");
  yAxis(chart, axis, box, format);
  const slot = (box.right - box.left) / labels.length;
  const bar = Math.max(1, (slot * 0.8) / series.length);
  const gap = slot > 6 ? (slot - bar * series.length) / 2 : 0;
  series.forEach((one, s) => {
    one.values.forEach((value, i) => {
      const h = (value / axis.max) * (box.bottom - box.top);
      const x = box.left + slot * i + gap + bar * s;
      chart.append(
        svg(
          "rect",
          { x, y: box.bottom - h, width: bar, height: h, class: `bar ${one.className}` },
          svg("title", {}, titles(i, one, value)),
        ),
      );
    });
  });
  xLabels(chart, labels, box, slot);
  return chart;
}

/** A line through the values that exist (null is a gap), with a dot on each. */
export function lineChart({ width, height = 200, label, labels, values, format, titles }) {
  const top = Math.max(0, ...values.filter((v) => v !== null));
  const axis = scale(top, false);
  const box = plotBox(width, height, format, axis.max);
  const chart = frame(width, height, label, "line");
  yAxis(chart, axis, box, format);
  const slot = (box.right - box.left) / labels.length;
  const point = (value, i) => [box.left + slot * (i + 0.5), box.bottom - (value / axis.max) * (box.bottom - box.top)];
  let run = [];
  const flush = () => {
    if (run.length > 1) chart.append(svg("polyline", { points: run.map((p) => p.join(",")).join(" "), class: "trace" }));
    run = [];
  };
  values.forEach((value, i) => {
    if (value === null) return flush();
    run.push(point(value, i));
  });
  flush();
  values.forEach((value, i) => {
    if (value === null) return;
    const [cx, cy] = point(value, i);
    chart.append(svg("circle", { cx, cy, r: slot > 8 ? 3.5 : 2, class: "dot" }, svg("title", {}, titles(i, value))));
  });
  xLabels(chart, labels, box, slot);
  return chart;
}

/** Horizontal bars, one row per item: its name above the bar, its value at the bar's end. */
export function barList({ width, label, items }) {
  const row = 40;
  const chart = frame(width, Math.max(row, items.length * row), label, "bar-list");
  const top = Math.max(1, ...items.map((item) => item.value));
  const room = width - 48; // the count after the longest bar
  items.forEach((item, i) => {
    const y = i * row;
    const length = Math.max(2, (item.value / top) * room);
    chart.append(
      svg("text", { x: 0, y: y + FONT_PX + 2, class: "name" }, item.name),
      svg(
        "rect",
        { x: 0, y: y + FONT_PX + 7, width: length, height: 14, rx: 2, class: "bar failure" },
        svg("title", {}, `${item.name}: ${item.value}`),
      ),
      svg("text", { x: length + 6, y: y + FONT_PX + 18, class: "count" }, String(item.value)),
    );
  });
  return chart;
}

/**
 * Draw `draw(width)` into `box` now and again whenever the box's width changes; returns the
 * function that stops watching.
 */
export function responsive(box, draw) {
  let drawn = -1;
  const observer = new ResizeObserver(([entry]) => {
    const width = Math.floor(entry.contentRect.width);
    if (width === drawn || width <= 0) return;
    drawn = width;
    box.replaceChildren(draw(width));
  });
  observer.observe(box);
  return () => observer.disconnect();
}
