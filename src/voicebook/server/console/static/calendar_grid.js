// The Calendar tab's grid: a column per resource and day, each a section with its heading and a
// list of appointment buttons whose text says the time (what a screen reader reads), placed by
// CSS custom properties set through the CSSOM (the CSP allows no style attributes). Times are the
// wall-clock minutes of their local day (from the server), so DST days draw right.

import { el, when } from "./app.js";
import { TIME, dayName, span, statusText } from "./calendar_days.js";

const MINUTES_A_DAY = 24 * 60;

/** Lanes for the appointments of one column that overlap each other (a cancelled one beside the
 * booking that took its time): each item gets its lane and the number of lanes of its cluster. */
function lanes(items) {
  const placed = new Map();
  let cluster = [];
  let clusterEnd = -1;
  const close = () => {
    const count = Math.max(1, ...cluster.map((item) => placed.get(item).lane + 1));
    for (const item of cluster) placed.get(item).lanes = count;
    cluster = [];
  };
  for (const item of [...items].sort((a, b) => a.start_minute - b.start_minute)) {
    if (item.start_minute >= clusterEnd) close();
    const taken = new Set(cluster.filter((o) => o.end_minute > item.start_minute).map((o) => placed.get(o).lane));
    let lane = 0;
    while (taken.has(lane)) lane += 1;
    placed.set(item, { lane, lanes: 1 });
    cluster.push(item);
    clusterEnd = Math.max(clusterEnd, item.end_minute);
  }
  close();
  return placed;
}

function openText(open) {
  return open.start_minute === 0 && open.end_minute === MINUTES_A_DAY ? "Open all day" : span(open.start, open.end);
}

function setVars(node, vars) {
  for (const [name, value] of Object.entries(vars)) node.style.setProperty(`--${name}`, String(value));
  return node;
}

export function drawGrid(data, view, onOpen) {
  const shown = data.resources.filter((r) => !data.resource || r.id === data.resource);
  const columns = [];
  for (const day of data.days) for (const resource of shown) columns.push({ day, resource });
  const minutes = [];
  for (const { day, resource } of columns) {
    for (const open of day.hours[resource.id] || []) minutes.push(open.start_minute, open.end_minute);
  }
  for (const item of data.appointments) minutes.push(item.start_minute, item.end_minute);
  const first = minutes.length ? Math.floor(Math.min(...minutes) / 60) * 60 : 8 * 60;
  const last = minutes.length ? Math.max(first + 60, Math.ceil(Math.max(...minutes) / 60) * 60) : 18 * 60;
  const hours = el("div", { class: "cal-hours", "aria-hidden": "true" });
  for (let minute = first; minute < last; minute += 60) {
    const label = `${String(minute / 60).padStart(2, "0")}:00`;
    hours.append(setVars(el("span", { class: "cal-hour" }, label), { top: minute - first }));
  }
  // The week groups each day's columns under one day heading (for the eye: every column's own
  // heading names its day for a screen reader); its text stays in sight while its day is.
  const dayHeads = view === "week"
    ? [el("div", { class: "cal-corner", "aria-hidden": "true" }), ...data.days.map((day) => setVars(
      el("div", { class: `cal-dayhead${day.date === data.today ? " today" : ""}`, "aria-hidden": "true" }, el("span", {}, dayName(day.date, { weekday: "short", month: "short", day: "numeric" }))),
      { r: shown.length },
    ))]
    : [];
  const body = setVars(
    el("div", { class: `cal-grid cal-${view}` }, dayHeads, hours, columns.map((column, index) => section(data, view, column, first, index % shown.length === 0, onOpen))),
    { cols: columns.length, span: last - first },
  );
  return el("div", { class: "cal-scroll" }, body);
}

function section(data, view, { day, resource }, first, dayStart, onOpen) {
  const open = day.hours[resource.id] || [];
  const items = data.appointments.filter(
    (a) => a.date === day.date && (a.resource === resource.id || a.room === resource.id),
  );
  const id = `cal-${day.date}-${resource.id}`;
  const title = view === "week"
    ? [el("span", { class: "cal-day" }, `${dayName(day.date, { weekday: "short", month: "short", day: "numeric" })} `), resource.name]
    : [resource.name];
  const hoursText = open.length ? open.map(openText).join(", ") : "Closed";
  const lane = el("div", { class: "cal-lane" });
  for (const o of open) {
    lane.append(setVars(el("div", { class: "cal-open", "aria-hidden": "true" }), { top: o.start_minute - first, len: o.end_minute - o.start_minute }));
  }
  const placed = lanes(items);
  const list = el("ol", { class: "cal-items", "aria-labelledby": id });
  for (const item of items) {
    const { lane: sub, lanes: subs } = placed.get(item);
    const status = statusText(item);
    const button = el(
      "button",
      { type: "button", class: `cal-appt ${item.status}`, dataset: { id: item.id }, onclick: () => onOpen(item) },
      el("span", { class: "cal-time" }, when(item.start, TIME), el("span", { class: "cal-end" }, ` – ${when(item.end, TIME)}`)),
      el("span", { class: "cal-what" }, `${item.service_name || item.service} · ${item.name || item.phone_masked}`),
      status ? el("span", { class: "cal-status" }, status) : null,
    );
    list.append(setVars(el("li", { class: "cal-item" }, button), {
      top: item.start_minute - first,
      len: Math.max(item.end_minute - item.start_minute, 15),
      sub,
      subs,
    }));
  }
  if (!items.length) lane.append(el("p", { class: "cal-empty muted" }, "No appointments"));
  lane.append(list);
  return el(
    "section",
    { class: `cal-col${day.date === data.today ? " today" : ""}${dayStart ? " day-start" : ""}`, "aria-labelledby": id },
    el("h2", { class: "cal-col-head", id, title: hoursText }, ...title, el("span", { class: "cal-open-text" }, hoursText)),
    lane,
  );
}
