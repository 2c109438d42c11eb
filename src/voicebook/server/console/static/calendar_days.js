// Dates and times as the Calendar tab says them: local days as plain YYYY-MM-DD (calendar
// arithmetic, no zone), clock times in the business's zone (`when`).

import { when } from "./app.js";

const DAY_MS = 24 * 3600 * 1000;
export const TIME = { hour: "numeric", minute: "2-digit" };

/** `iso` (YYYY-MM-DD) moved by `days` whole days. */
export function shift(iso, days) {
  const [y, m, d] = iso.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d) + days * DAY_MS).toISOString().slice(0, 10);
}

/** The Monday of the week `iso` falls in. */
export function monday(iso) {
  const [y, m, d] = iso.split("-").map(Number);
  return shift(iso, -((new Date(Date.UTC(y, m - 1, d)).getUTCDay() + 6) % 7));
}

export function dayName(iso, options = { weekday: "long", month: "long", day: "numeric", year: "numeric" }) {
  const [y, m, d] = iso.split("-").map(Number);
  return new Intl.DateTimeFormat(undefined, { ...options, timeZone: "UTC" }).format(new Date(Date.UTC(y, m - 1, d)));
}

export function span(start, end) {
  return `${when(start, TIME)} – ${when(end, TIME)}`;
}

/** "cancelled", "moved", or nothing for a confirmed appointment. */
export function statusText(item) {
  if (item.status === "cancelled") return "cancelled";
  if (item.status === "rescheduled") return "moved";
  return item.status === "confirmed" ? "" : item.status;
}
