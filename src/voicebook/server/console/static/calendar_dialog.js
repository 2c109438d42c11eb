// The Calendar tab's details of one appointment, in a modal dialog: what it is, and for one
// still to come, Cancel (with an optional reason) and Reschedule (a day, a staff member or anyone,
// and only the free times the server offers). A refusal shows its code's sentence and changes
// nothing; `done(text, id)` is told of a change.

import { api, el } from "./app.js";
import { dayName, span, statusText } from "./calendar_days.js";
import { freeTimes } from "./calendar_slots.js";

function fact(term, value) {
  return value ? [el("dt", {}, term), el("dd", {}, value)] : [];
}

/** Who made an appointment what it is (`changed_by`, and the operator's account when they used
 * one); an unknown value is shown as it is. */
const BY = { caller: "the caller", operator: "the business (console)" };

function byWhom(item) {
  if (item.changed_by === "operator" && item.changed_by_operator) return `${item.changed_by_operator} (console)`;
  return BY[item.changed_by] || item.changed_by;
}

function byTerm(item) {
  if (item.status === "cancelled") return "Cancelled by";
  if (item.status === "rescheduled" || item.rescheduled_from) return "Moved by";
  return "Booked by";
}

export function openDetails(dialog, item, data, done) {
  const status = statusText(item);
  const earlier = data.appointments.find((a) => a.id === item.rescheduled_from);
  const later = data.appointments.find((a) => a.rescheduled_from === item.id);
  const changeable = item.status === "confirmed" && new Date(item.start).getTime() > Date.now();
  const message = el("p", { class: "error", role: "alert" });
  const actions = el("div", { class: "cal-actions" });
  const panel = el("div", { class: "cal-panel" });
  const close = el("button", { type: "button", class: "quiet", onclick: () => dialog.close() }, "Close");
  if (changeable) {
    actions.append(
      el("button", { type: "button", onclick: () => reschedulePanel(item, panel, message, data, done) }, "Reschedule…"),
      el("button", { type: "button", class: "danger", onclick: () => cancelPanel(item, panel, message, done) }, "Cancel appointment…"),
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
      fact(byTerm(item), byWhom(item)),
      fact("Notes", item.notes),
      fact("Moved from", item.rescheduled_from ? (earlier ? earlier.label : "an earlier booking") : ""),
      fact("Moved to", later ? later.label : ""),
    ),
    actions,
    panel,
    message,
  );
  if (!dialog.open) dialog.showModal();
}

function cancelPanel(item, panel, message, done) {
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

function reschedulePanel(item, panel, message, data, done) {
  message.textContent = "";
  const staff = data.resources.filter((r) => r.kind === "staff" && r.services.includes(item.service));
  const day = el("input", { id: "cal-move-date", type: "date", value: item.date, min: data.today });
  const who = el(
    "select",
    { id: "cal-move-staff" },
    staff.map((r) => el("option", { value: r.id, selected: r.id === item.resource }, r.name)),
    staff.length > 1 ? el("option", { value: "" }, "Anyone free") : null,
  );
  const submit = el("button", { type: "submit", disabled: true }, "Move appointment");
  const times = freeTimes({
    name: "cal-slot",
    who,
    submit,
    query: () => ["/console/api/calendar/slots", new URLSearchParams({ appointment: item.id, date: day.value })],
  });
  const form = el(
    "form",
    { class: "cal-form", "aria-label": "Reschedule the appointment" },
    el("div", { class: "cal-fields" },
      el("div", { class: "field" }, el("label", { for: "cal-move-date" }, "Day"), day),
      el("div", { class: "field" }, el("label", { for: "cal-move-staff" }, "With"), who),
    ),
    times.fieldset,
    times.status,
    el("div", { class: "cal-actions" }, submit, el("button", { type: "button", class: "quiet", onclick: () => panel.replaceChildren() }, "Keep it")),
  );
  day.addEventListener("change", () => { if (day.value) times.refresh(); });
  who.addEventListener("change", times.refresh);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const slot = times.chosen();
    if (!slot) return;
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
      await times.refresh();
    }
  });
  panel.replaceChildren(form);
  day.focus();
  times.refresh();
}
