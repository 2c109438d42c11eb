// The Calendar tab (`#/calendar?date=YYYY-MM-DD&view=day|week&resource=<id>`): the business's
// days as a grid of staff members and rooms by the hour, and the operator's cancel and move.
//
// Every column is a section with a heading and a list of appointment buttons whose text says
// the time, so a screen reader reads a list per resource and day; the grid places them with
// CSS custom properties set through the CSSOM (the CSP allows no style attributes). The server
// gives each time as the wall-clock minute of its local day, so DST days draw right. Below
// 640 px the columns stack as plain lists (no sideways page scroll).

import { api, el, toast, when } from "./app.js";

const DAY_MS = 24 * 3600 * 1000;
const TIME = { hour: "numeric", minute: "2-digit" };
const REFRESH_MS = 30000;

/** `iso` (YYYY-MM-DD) moved by `days` whole days: pure calendar arithmetic, no zone. */
function shift(iso, days) {
  const [y, m, d] = iso.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d) + days * DAY_MS).toISOString().slice(0, 10);
}

/** The Monday of the week `iso` falls in. */
function monday(iso) {
  const [y, m, d] = iso.split("-").map(Number);
  return shift(iso, -((new Date(Date.UTC(y, m - 1, d)).getUTCDay() + 6) % 7));
}

function dayName(iso, options = { weekday: "long", month: "long", day: "numeric", year: "numeric" }) {
  const [y, m, d] = iso.split("-").map(Number);
  return new Intl.DateTimeFormat(undefined, { ...options, timeZone: "UTC" }).format(new Date(Date.UTC(y, m - 1, d)));
}

function span(start, end) {
  return `${when(start, TIME)} – ${when(end, TIME)}`;
}

function statusText(item) {
  if (item.status === "cancelled") return "cancelled";
  if (item.status === "rescheduled") return "moved";
  return item.status === "confirmed" ? "" : item.status;
}

function routeTo(state) {
  const query = new URLSearchParams({ date: state.date, view: state.view });
  if (state.resource) query.set("resource", state.resource);
  location.hash = `#/calendar?${query}`;
}

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

function setVars(node, vars) {
  for (const [name, value] of Object.entries(vars)) node.style.setProperty(`--${name}`, String(value));
  return node;
}

export async function render(root, route) {
  const params = route.params;
  const state = {
    date: /^\d{4}-\d{2}-\d{2}$/.test(params.get("date") || "") ? params.get("date") : null,
    view: params.get("view") === "week" ? "week" : "day",
    resource: params.get("resource") || "",
  };
  const heading = el("h1", {}, "Calendar");
  const range = el("p", { class: "cal-range", "aria-live": "polite" });
  const board = el("div", { class: "cal-board" });
  const dialog = el("dialog", { class: "cal-dialog", "aria-labelledby": "cal-dialog-title" });
  root.append(heading, range, board, dialog);

  let data = null;

  async function load() {
    const first = state.date && state.view === "week" ? monday(state.date) : state.date;
    const query = new URLSearchParams({ days: state.view === "week" ? "7" : "1" });
    if (first) query.set("date", first);
    if (state.resource) query.set("resource", state.resource);
    data = await api(`/console/api/calendar?${query}`);
    if (!state.date) state.date = data.today;
    draw();
  }

  function draw() {
    const last = data.days[data.days.length - 1].date;
    range.textContent = data.days.length === 1
      ? dayName(data.date)
      : `${dayName(data.date, { month: "short", day: "numeric" })} – ${dayName(last, { month: "short", day: "numeric", year: "numeric" })}`;
    const parts = [toolbar(), grid()];
    if (data.truncated) {
      parts.splice(1, 0, el("p", { class: "warn", role: "status" }, "There are more appointments than the calendar shows at once; pick one staff member or room."));
    }
    board.replaceChildren(...parts);
    // A week wider than the screen scrolls inside its box: bring the chosen day into view.
    const chosen = board.querySelector(`section[aria-labelledby^="cal-${state.date}-"]`);
    const scroller = board.querySelector(".cal-scroll");
    if (chosen && scroller && scroller.scrollWidth > scroller.clientWidth) {
      const gutter = board.querySelector(".cal-hours");
      scroller.scrollLeft = chosen.offsetLeft - (gutter ? gutter.offsetWidth : 0);
    }
  }

  function toolbar() {
    const unit = state.view === "week" ? "week" : "day";
    const step = unit === "week" ? 7 : 1;
    const view = el(
      "select",
      { id: "cal-view", onchange: (event) => routeTo({ ...state, view: event.target.value }) },
      el("option", { value: "day", selected: state.view === "day" }, "Day"),
      el("option", { value: "week", selected: state.view === "week" }, "Week"),
    );
    const who = el(
      "select",
      { id: "cal-resource", onchange: (event) => routeTo({ ...state, resource: event.target.value }) },
      el("option", { value: "" }, "Everyone"),
      data.resources.map((r) => el("option", { value: r.id, selected: r.id === data.resource }, r.kind === "room" ? `${r.name} (room)` : r.name)),
    );
    const date = el("input", {
      id: "cal-date",
      type: "date",
      value: state.date,
      onchange: (event) => { if (event.target.value) routeTo({ ...state, date: event.target.value }); },
    });
    return el(
      "div",
      { class: "toolbar cal-toolbar", role: "group", "aria-label": "Calendar controls" },
      el("div", { class: "cal-nav" },
        el("button", { type: "button", class: "quiet", "aria-label": `Previous ${unit}`, onclick: () => routeTo({ ...state, date: shift(state.date, -step) }) }, "‹"),
        el("button", { type: "button", class: "quiet", onclick: () => routeTo({ ...state, date: data.today }) }, "Today"),
        el("button", { type: "button", class: "quiet", "aria-label": `Next ${unit}`, onclick: () => routeTo({ ...state, date: shift(state.date, step) }) }, "›"),
      ),
      el("div", { class: "field" }, el("label", { for: "cal-date" }, "Date"), date),
      el("div", { class: "field" }, el("label", { for: "cal-view" }, "View"), view),
      el("div", { class: "field" }, el("label", { for: "cal-resource" }, "Show"), who),
    );
  }

  function grid() {
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
    // heading names its day for a screen reader).
    const dayHeads = state.view === "week"
      ? [el("div", { class: "cal-corner", "aria-hidden": "true" }), ...data.days.map((day) => setVars(
        el("div", { class: `cal-dayhead${day.date === data.today ? " today" : ""}`, "aria-hidden": "true" }, dayName(day.date, { weekday: "short", month: "short", day: "numeric" })),
        { r: shown.length },
      ))]
      : [];
    const body = setVars(
      el("div", { class: `cal-grid cal-${state.view}` }, dayHeads, hours, columns.map((column, index) => section(column, first, index % shown.length === 0))),
      { cols: columns.length, span: last - first },
    );
    return el("div", { class: "cal-scroll" }, body);
  }

  function section({ day, resource }, first, dayStart) {
    const open = day.hours[resource.id] || [];
    const items = data.appointments.filter(
      (a) => a.date === day.date && (a.resource === resource.id || a.room === resource.id),
    );
    const id = `cal-${day.date}-${resource.id}`;
    const title = state.view === "week"
      ? [el("span", { class: "cal-day" }, `${dayName(day.date, { weekday: "short", month: "short", day: "numeric" })} `), resource.name]
      : [resource.name];
    const hoursText = open.length ? open.map((o) => span(o.start, o.end)).join(", ") : "Closed";
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
        { type: "button", class: `cal-appt ${item.status}`, dataset: { id: item.id }, onclick: () => details(item) },
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

  function fact(term, value) {
    return value ? [el("dt", {}, term), el("dd", {}, value)] : [];
  }

  function details(item) {
    const status = statusText(item);
    const changeable = item.status === "confirmed" && new Date(item.start).getTime() > Date.now();
    const message = el("p", { class: "error", role: "alert" });
    const actions = el("div", { class: "cal-actions" });
    const panel = el("div", { class: "cal-panel" });
    const close = el("button", { type: "button", class: "quiet", onclick: () => dialog.close() }, "Close");
    if (changeable) {
      actions.append(
        el("button", { type: "button", onclick: () => reschedulePanel(item, panel, message) }, "Reschedule…"),
        el("button", { type: "button", class: "danger", onclick: () => cancelPanel(item, panel, message) }, "Cancel appointment…"),
      );
    }
    actions.append(close);
    dialog.replaceChildren(
      el("h2", { id: "cal-dialog-title" }, `${item.service_name || item.service} · ${item.name || "No name"}`),
      el(
        "dl",
        { class: "cal-facts" },
        fact("When", `${dayName(item.date)}, ${span(item.start, item.end)}`),
        fact("With", item.resource_name || item.resource),
        fact("Room", item.room_name || item.room),
        fact("Caller", `${item.name ? `${item.name}, ` : ""}${item.phone_masked}`),
        fact("Status", status ? `${status[0].toUpperCase()}${status.slice(1)}${item.cancel_reason ? ` (${item.cancel_reason})` : ""}` : "Confirmed"),
        fact("Notes", item.notes),
        fact("Moved", item.rescheduled_from ? "From an earlier booking" : ""),
      ),
      actions,
      panel,
      message,
    );
    if (!dialog.open) dialog.showModal();
  }

  /** After a change: the grid again, and the keyboard back on the appointment it left. */
  async function done(text, focusId) {
    dialog.close();
    toast(text);
    await load();
    const block = board.querySelector(`button[data-id="${CSS.escape(focusId)}"]`);
    if (block) block.focus();
  }

  function cancelPanel(item, panel, message) {
    message.textContent = "";
    const reason = el("input", { id: "cal-reason", type: "text", maxlength: "500", autocomplete: "off" });
    const confirm = el("button", { type: "submit", class: "danger" }, "Cancel this appointment");
    const form = el(
      "form",
      { class: "cal-form", "aria-label": "Cancel the appointment" },
      el("p", {}, "Cancel this appointment? Its time becomes free for others."),
      el("div", { class: "field" }, el("label", { for: "cal-reason" }, "Reason (optional)"), reason),
      el("div", { class: "cal-actions" }, confirm, el("button", { type: "button", class: "quiet", onclick: () => panel.replaceChildren() }, "Keep it")),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      confirm.disabled = true;
      message.textContent = "";
      try {
        const body = reason.value.trim() ? { reason: reason.value.trim() } : {};
        await api(`/console/api/appointments/${encodeURIComponent(item.id)}/cancel`, { method: "POST", body });
        await done(`Cancelled ${item.label}.`, item.id);
      } catch (error) {
        message.textContent = error.message;
        confirm.disabled = false;
      }
    });
    panel.replaceChildren(form);
    reason.focus();
  }

  function reschedulePanel(item, panel, message) {
    message.textContent = "";
    const staff = data.resources.filter((r) => r.kind === "staff" && r.services.includes(item.service));
    const day = el("input", { id: "cal-move-date", type: "date", value: item.date, min: data.today });
    const who = el(
      "select",
      { id: "cal-move-staff" },
      staff.map((r) => el("option", { value: r.id, selected: r.id === item.resource }, r.name)),
      staff.length > 1 ? el("option", { value: "" }, "Anyone free") : null,
    );
    const times = el("fieldset", { class: "cal-slots" }, el("legend", {}, "Free times"));
    const status = el("p", { class: "muted", role: "status" });
    const submit = el("button", { type: "submit", disabled: true }, "Move appointment");
    const form = el(
      "form",
      { class: "cal-form", "aria-label": "Reschedule the appointment" },
      el("div", { class: "cal-fields" },
        el("div", { class: "field" }, el("label", { for: "cal-move-date" }, "Day"), day),
        el("div", { class: "field" }, el("label", { for: "cal-move-staff" }, "With"), who),
      ),
      times,
      status,
      el("div", { class: "cal-actions" }, submit, el("button", { type: "button", class: "quiet", onclick: () => panel.replaceChildren() }, "Keep it")),
    );
    let offered = [];
    let asked = 0;

    /** The free times of the chosen day and person; only the latest question's answer shows. */
    async function slots() {
      const mine = ++asked;
      submit.disabled = true;
      times.replaceChildren(el("legend", {}, "Free times"));
      status.textContent = "Looking for free times…";
      const query = new URLSearchParams({ appointment: item.id, date: day.value });
      if (who.value) query.set("resource", who.value);
      let answer;
      try {
        answer = (await api(`/console/api/calendar/slots?${query}`)).slots;
      } catch (error) {
        if (mine !== asked) return;
        offered = [];
        status.textContent = error.message;
        return;
      }
      if (mine !== asked) return;
      offered = answer;
      status.textContent = offered.length ? "" : "No free times that day; try another day or someone else.";
      offered.forEach((slot, index) => {
        const id = `cal-slot-${index}`;
        const text = who.value ? when(slot.start, TIME) : `${when(slot.start, TIME)} with ${slot.resource_name}`;
        times.append(el("div", { class: "cal-slot" },
          el("input", { type: "radio", name: "cal-slot", id, value: String(index), onchange: () => { submit.disabled = false; } }),
          el("label", { for: id }, text),
        ));
      });
    }

    day.addEventListener("change", () => { if (day.value) slots(); });
    who.addEventListener("change", slots);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const chosen = form.querySelector("input[name=cal-slot]:checked");
      if (!chosen) return;
      const slot = offered[Number(chosen.value)];
      submit.disabled = true;
      message.textContent = "";
      try {
        const moved = await api(`/console/api/appointments/${encodeURIComponent(item.id)}/reschedule`, {
          method: "POST",
          body: { start: slot.start, resource: slot.resource },
        });
        await done(`Moved to ${moved.appointment.label}.`, moved.appointment.id);
      } catch (error) {
        message.textContent = error.message;
        await slots();
      }
    });
    panel.replaceChildren(form);
    day.focus();
    slots();
  }

  await load();
  // Bookings callers make meanwhile show up; never while the operator is in the grid or a dialog.
  const timer = setInterval(() => {
    if (dialog.open || document.hidden || board.contains(document.activeElement)) return;
    load().catch(() => {});
  }, REFRESH_MS);
  return () => {
    clearInterval(timer);
    if (dialog.open) dialog.close();
  };
}
