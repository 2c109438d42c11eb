// The Calendar tab's "Book…" dialog: an appointment for a caller who phoned or walked in — their
// number and name, a service, a day, a staff member or anyone, and only the free times the server
// offers for them. The server books it by the tools' rules; a refusal (a number it cannot read, a
// time just taken) shows its sentence, books nothing, and the free times are asked again.
// `done(text, id)` is told of the booking.

import { api, el } from "./app.js";
import { freeTimes } from "./calendar_slots.js";

export function openBooking(dialog, data, day, done) {
  const services = data.services;
  const message = el("p", { class: "error", role: "alert" });
  const phone = el("input", { id: "cal-book-phone", type: "tel", autocomplete: "off", required: true, maxlength: "64" });
  const name = el("input", { id: "cal-book-name", type: "text", autocomplete: "off", maxlength: "200" });
  const service = el(
    "select",
    { id: "cal-book-service" },
    services.map((s) => el("option", { value: s.id }, `${s.name} (${s.minutes} min)`)),
  );
  const date = el("input", { id: "cal-book-date", type: "date", value: day < data.today ? data.today : day, min: data.today });
  const who = el("select", { id: "cal-book-staff" });
  const notes = el("input", { id: "cal-book-notes", type: "text", autocomplete: "off", maxlength: "2000" });
  const submit = el("button", { type: "submit", disabled: true }, "Book appointment");
  const times = freeTimes({
    name: "cal-book-slot",
    who,
    submit,
    query: () => ["/console/api/calendar/free", new URLSearchParams({ service: service.value, date: date.value })],
  });
  const field = (id, label, input) => el("div", { class: "field" }, el("label", { for: id }, label), input);
  const form = el(
    "form",
    { class: "cal-form cal-book", "aria-label": "Book an appointment" },
    el("div", { class: "cal-fields" }, field("cal-book-phone", "Caller's phone", phone), field("cal-book-name", "Name (optional)", name)),
    el("div", { class: "cal-fields" }, field("cal-book-service", "Service", service), field("cal-book-staff", "With", who), field("cal-book-date", "Day", date)),
    times.fieldset,
    times.status,
    field("cal-book-notes", "Notes (optional)", notes),
    el("div", { class: "cal-actions" }, submit, el("button", { type: "button", class: "quiet", onclick: () => dialog.close() }, "Close")),
  );
  /** The staff who give the chosen service, and "Anyone free" when there are several. */
  function people() {
    const staff = data.resources.filter((r) => r.kind === "staff" && r.services.includes(service.value));
    who.replaceChildren(
      ...(staff.length > 1 ? [el("option", { value: "" }, "Anyone free")] : []),
      ...staff.map((r) => el("option", { value: r.id }, r.name)),
    );
  }

  service.addEventListener("change", () => { people(); times.refresh(); });
  who.addEventListener("change", times.refresh);
  date.addEventListener("change", () => { if (date.value) times.refresh(); });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const slot = times.chosen();
    if (!slot) return;
    submit.disabled = true;
    message.textContent = "";
    try {
      const booked = await api("/console/api/appointments", {
        method: "POST",
        body: {
          phone: phone.value,
          name: name.value.trim() || null,
          notes: notes.value.trim() || null,
          service: slot.service || service.value,
          start: slot.start,
          resource: slot.resource,
        },
      });
      await done(`Booked ${booked.appointment.label}.`, booked.appointment.id);
    } catch (error) {
      message.textContent = error.message;
      if (error.code === "invalid_phone") {
        phone.setAttribute("aria-invalid", "true");
        phone.focus();
        submit.disabled = false;
      } else {
        await times.refresh();
      }
    }
  });
  phone.addEventListener("input", () => phone.removeAttribute("aria-invalid"));
  dialog.replaceChildren(el("h2", { id: "cal-dialog-title" }, "Book an appointment"), form, message);
  people();
  if (!dialog.open) dialog.showModal();
  phone.focus();
  times.refresh();
}
