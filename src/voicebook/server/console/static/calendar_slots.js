// The free times a Calendar dialog offers (to move an appointment to, or to book): radio buttons
// in a fieldset, asked of the server for the dialog's current choices. Only the latest question's
// answer shows (an earlier one still on its way is dropped), and `submit` is enabled only once a
// time is chosen. `query()` says what to ask: [the endpoint, its parameters]; `who` is the
// dialog's person select ("" for anyone: each time then names who is free).

import { api, el, when } from "./app.js";
import { TIME } from "./calendar_days.js";

export function freeTimes({ name, who, submit, query }) {
  const fieldset = el("fieldset", { class: "cal-slots" }, el("legend", {}, "Free times"));
  const status = el("p", { class: "muted", role: "status" });
  let offered = [];
  let asked = 0;

  async function refresh() {
    const mine = ++asked;
    submit.disabled = true;
    fieldset.replaceChildren(el("legend", {}, "Free times"));
    status.textContent = "Looking for free times…";
    const [path, params] = query();
    if (who.value) params.set("resource", who.value);
    let answer;
    try {
      answer = (await api(`${path}?${params}`)).slots;
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
      const id = `${name}-${index}`;
      const text = who.value ? when(slot.start, TIME) : `${when(slot.start, TIME)} with ${slot.resource_name}`;
      fieldset.append(el("div", { class: "cal-slot" },
        el("input", { type: "radio", name, id, value: String(index), onchange: () => { submit.disabled = false; } }),
        el("label", { for: id }, text),
      ));
    });
  }

  /** The slot the operator chose, or null. */
  function chosen() {
    const checked = fieldset.querySelector(`input[name="${name}"]:checked`);
    return checked ? offered[Number(checked.value)] : null;
  }

  return { fieldset, status, refresh, chosen };
}
