// The Numbers tab (`#/numbers?days=14`): the last days at a glance, in the business's own days.
//
// Totals first, then three charts (calls, bookings and cancellations per day, cost per call per day, tool
// failures by code) and the costliest calls. Each chart is a <figure> whose SVG is one image
// with a spoken summary, and whose table (under "Show the numbers") holds the same figures for
// keyboard and screen-reader users. The server counts everything; this only draws it.

import { api, duration, el, money, when } from "./app.js";
import { barList, columnChart, lineChart, responsive } from "./charts.js";

const WINDOWS = [7, 14, 30, 90];
const DEFAULT_DAYS = 14;

// Dates from the server are the business's local dates: formatted as dates, never as instants.
const shortDate = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
const longDate = new Intl.DateTimeFormat(undefined, {
  weekday: "short", month: "short", day: "numeric", year: "numeric", timeZone: "UTC",
});
const asDate = (iso) => new Date(`${iso}T00:00:00Z`);
const short = (iso) => shortDate.format(asDate(iso));
const long = (iso) => longDate.format(asDate(iso));
const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

export async function render(root, route) {
  const asked = Number(route.params.get("days"));
  const days = WINDOWS.includes(asked) ? asked : DEFAULT_DAYS;
  root.append(el("h1", {}, "Numbers"), picker(days));
  const data = await api(`/console/api/numbers?days=${days}`);
  const stops = [];
  root.append(
    el("p", { class: "muted numbers-range" },
      `${long(data.first)} – ${long(data.last)}, local days in ${data.timezone}.`),
    totals(data.totals),
    el("div", { class: "numbers-charts" },
      activityFigure(data, stops),
      costFigure(data, stops),
      failuresFigure(data, stops),
    ),
    costliest(data.costliest),
  );
  return () => stops.forEach((stop) => stop());
}

function picker(days) {
  return el("nav", { class: "numbers-window", "aria-label": "Days shown" },
    WINDOWS.map((n) => el("a", {
      href: `#/numbers?days=${n}`,
      "aria-current": n === days ? "true" : undefined,
    }, `${n} days`)));
}

function totals(t) {
  const item = (name, value, note) => el("div", { class: "card numbers-total" },
    el("dt", {}, name), el("dd", {}, el("span", { class: "numbers-value" }, value)),
    note ? el("dd", { class: "muted" }, note) : null);
  return el("dl", { class: "numbers-totals" },
    item("Calls", String(t.calls), t.calls - t.priced_calls ? `${t.calls - t.priced_calls} still open` : null),
    item("Bookings", String(t.bookings), `${t.moves} moved · ${t.cancellations} cancelled`),
    item("Total cost", money(t.cost), `of ${plural(t.priced_calls, "ended call")}`),
    item("Cost per call", money(t.cost_per_call), "average of the ended calls"),
    item("Tool failures", String(t.failures), null),
  );
}

/** A chart's figure: caption, the drawing (redrawn to its width) and its table. */
function figure({ title, legend, draw, table, stops }) {
  const box = el("div", { class: "chart-box" });
  stops.push(responsive(box, draw));
  return el("figure", { class: "card numbers-figure" },
    el("figcaption", {}, el("h2", {}, title), legend || null),
    box,
    el("details", { class: "numbers-data" },
      el("summary", {}, "Show the numbers"),
      el("div", { class: "table-wrap" }, table)),
  );
}

/** A table whose first column names the row; columns for which `numeric(i)` holds align right. */
function dataTable(caption, head, rows, numeric = (i) => i > 0) {
  const align = (i) => (numeric(i) ? "num" : undefined);
  return el("table", {},
    el("caption", {}, caption),
    el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { scope: "col", class: align(i) }, h)))),
    el("tbody", {}, rows.map((cells) => el("tr", {},
      cells.map((c, i) => (i ? el("td", { class: align(i) }, c) : el("th", { scope: "row" }, c)))))),
  );
}

function legend(entries) {
  return el("p", { class: "chart-legend" }, entries.map(([className, name]) =>
    el("span", {}, el("span", { class: `swatch ${className}`, "aria-hidden": "true" }), name)));
}

function activityFigure(data, stops) {
  const days = data.per_day;
  const t = data.totals;
  const busiest = days.reduce((a, b) => (b.calls > a.calls ? b : a), days[0]);
  const summary = `Calls, bookings and cancellations per day, ${short(data.first)} to ${short(data.last)}: `
    + `${plural(t.calls, "call")}, ${plural(t.bookings, "booking")} and ${plural(t.cancellations, "cancellation")} in all`
    + (busiest.calls ? `; the busiest day was ${short(busiest.date)} with ${plural(busiest.calls, "call")}.` : ".");
  const series = [
    { name: "calls", className: "calls", values: days.map((d) => d.calls) },
    { name: "bookings", className: "bookings", values: days.map((d) => d.bookings) },
    { name: "cancellations", className: "cancellations", values: days.map((d) => d.cancellations) },
  ];
  return figure({
    title: "Calls, bookings and cancellations per day",
    legend: legend([["calls", "Calls"], ["bookings", "Bookings"], ["cancellations", "Cancellations"]]),
    stops,
    draw: (width) => columnChart({
      width, label: summary, labels: days.map((d) => short(d.date)), series,
      titles: (i, one, value) => `${short(days[i].date)}: ${plural(value, one.name.slice(0, -1), one.name)}`,
    }),
    table: dataTable("Calls, bookings and cancellations per day", ["Day", "Calls", "Bookings", "Moves", "Cancellations"],
      days.map((d) => [long(d.date), d.calls, d.bookings, d.moves, d.cancellations])),
  });
}

function costFigure(data, stops) {
  const days = data.per_day;
  const priced = days.filter((d) => d.cost_per_call !== null);
  const values = priced.map((d) => d.cost_per_call);
  const summary = priced.length
    ? `Average cost per ended call per day, from ${money(Math.min(...values))} to ${money(Math.max(...values))}; `
      + `${money(data.totals.cost_per_call)} over these days.`
    : "Average cost per call per day: no call in these days has ended yet, so none has a cost.";
  return figure({
    title: "Cost per call per day",
    legend: el("p", { class: "chart-legend muted" }, "Average of the calls that ended (an open call has no cost yet)."),
    stops,
    draw: (width) => lineChart({
      width, label: summary, labels: days.map((d) => short(d.date)),
      values: days.map((d) => d.cost_per_call), format: money,
      titles: (i, value) => `${short(days[i].date)}: ${money(value)} per call`,
    }),
    table: dataTable("Cost per day", ["Day", "Ended calls", "Cost", "Cost per call"],
      days.map((d) => [long(d.date), d.priced_calls, money(d.cost), money(d.cost_per_call)])),
  });
}

function failuresFigure(data, stops) {
  const failures = data.failures;
  const summary = failures.length
    ? `${plural(data.totals.failures, "failed tool call")} in these days: `
      + `${failures.map((f) => `${f.code} ${f.count}`).join(", ")}.`
    : "No tool call failed in these days.";
  const items = failures.map((f) => ({ name: f.code, value: f.count }));
  return figure({
    title: "Tool failures by code",
    legend: failures.length ? null : el("p", { class: "chart-legend muted" }, "No tool call failed in these days."),
    stops,
    draw: (width) => barList({ width, label: summary, items }),
    table: dataTable("Tool failures by code", ["Code", "Failures", "Tools"],
      failures.map((f) => [f.code, f.count, f.tools.map((t) => `${t.name} ${t.count}`).join(", ")]),
      (i) => i === 1),
  });
}

function costliest(calls) {
  const section = el("section", { class: "card numbers-costliest", "aria-labelledby": "numbers-costliest" },
    el("h2", { id: "numbers-costliest" }, "Costliest calls"));
  if (!calls.length) {
    section.append(el("p", { class: "muted" }, "No call in these days has ended yet, so none has a cost."));
    return section;
  }
  section.append(el("div", { class: "table-wrap" }, el("table", {},
    el("thead", {}, el("tr", {},
      el("th", { scope: "col" }, "Started"),
      el("th", { scope: "col" }, "Caller"),
      el("th", { scope: "col", class: "num hide-narrow" }, "Duration"),
      el("th", { scope: "col", class: "num" }, "Cost"))),
    el("tbody", {}, calls.map((c) => el("tr", {},
      el("th", { scope: "row" }, el("a", { href: `#/calls/${encodeURIComponent(c.session_id)}` }, when(c.started_at))),
      el("td", {}, c.caller || "—"),
      el("td", { class: "num hide-narrow" }, duration(c.duration_s)),
      el("td", { class: "num" }, money(c.cost))))))));
  return section;
}
