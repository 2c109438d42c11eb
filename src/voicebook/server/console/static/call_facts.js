// How a call's facts read, the same in the list and on the call's own page: its state badge,
// its caller (masked by the server; never more here), its outcome, and the header's fact list.

import { duration, el, money, when } from "./app.js";

const LEVELS = { trusted: "trusted (line or sign-in)", verified: "verified by code", claimed: "claimed" };

export function stateBadge(call) {
  return call.live
    ? el("span", { class: "badge live" }, "live")
    : el("span", { class: "badge" }, "ended");
}

export function callerText(call) {
  if (!call.caller) return "Not identified";
  const name = call.caller.name ? ` (${call.caller.name})` : "";
  return `${call.caller.phone_masked}${name}`;
}

export function outcomeText(call) {
  const o = call.outcome;
  const parts = [];
  if (o.booked) parts.push(`booked ${o.booked}`);
  if (o.moved) parts.push(`moved ${o.moved}`);
  if (o.cancelled) parts.push(`cancelled ${o.cancelled}`);
  if (o.kind === "live") return parts.length ? `${parts.join(", ")} so far` : "";
  return parts.length ? parts.join(", ") : "no booking";
}

/** When a call started: the time alone for today's calls, with the date for older ones. */
export function startedText(iso) {
  const day = { dateStyle: "medium" };
  if (when(iso, day) === when(new Date().toISOString(), day)) {
    return `Today, ${when(iso, { timeStyle: "short" })}`;
  }
  return when(iso);
}

export function shortId(id) {
  return id.length > 6 ? `${id.slice(0, 6)}…` : id;
}

/** The header's facts as a description list. */
export function factList(call) {
  const facts = [
    ["State", call.live ? [stateBadge(call), " ", call.state] : stateBadge(call)],
    ["Caller", callerText(call)],
    ["Identity", call.identity_level ? LEVELS[call.identity_level] || call.identity_level : "—"],
    ["Started", when(call.started_at)],
    ["Ended", call.ended_at ? when(call.ended_at) : "—"],
    ["Duration", duration(call.duration_s)],
    ["Outcome", outcomeText(call) || "in progress"],
    ["Tool calls", String(call.tool_calls)],
    ["Failed", call.failures ? el("span", { class: "error" }, String(call.failures)) : "0"],
    ["Cost", money(call.cost ? call.cost.total : null)],
  ];
  return el(
    "dl",
    { class: "call-facts" },
    ...facts.map(([term, value]) => el("div", {}, el("dt", {}, term), el("dd", {}, value))),
  );
}
