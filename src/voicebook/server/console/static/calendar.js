// The Calendar tab (`#/calendar?date=YYYY-MM-DD&view=day|week&resource=<id>`): the business's
// days as a grid of staff members and rooms by the hour (calendar_grid.js), and the operator's
// cancel and move from an appointment's details (calendar_dialog.js). This module holds the
// route's state, the toolbar (with "Book…", calendar_book.js) and the loading; below 640 px the
// grid's columns stack as plain lists (no sideways page scroll).

import { api, el, toast } from "./app.js";
import { dayName, monday, shift } from "./calendar_days.js";
import { openBooking } from "./calendar_book.js";
import { openDetails } from "./calendar_dialog.js";
import { drawGrid } from "./calendar_grid.js";

const REFRESH_MS = 30000;

function routeTo(state) {
  const query = new URLSearchParams({ date: state.date, view: state.view });
  if (state.resource) query.set("resource", state.resource);
  location.hash = `#/calendar?${query}`;
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
    const parts = [toolbar(), drawGrid(data, state.view, (item) => openDetails(dialog, item, data, done))];
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
      el("button", { type: "button", class: "cal-book-open", onclick: () => openBooking(dialog, data, state.date, done) }, "Book…"),
    );
  }

  /** After a change: the grid again, and the keyboard back on the appointment it left. */
  async function done(text, focusId) {
    dialog.close();
    toast(text);
    await load();
    const block = board.querySelector(`button[data-id="${CSS.escape(focusId)}"]`);
    if (block) block.focus();
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
