// One call's timeline: an element per event of its log (tool calls as cards with their
// arguments and answer or refusal, transcript lines by speaker, status changes, the summary
// with its cost). Every text goes in as text: the log holds what callers and models said.

import { el, money, when } from "./app.js";

const SPEAKERS = { user: "Caller", agent: "Agent" };
const STATES = { connected: "The call connected.", ended: "The call ended." };
const COST_ITEMS = { llm: "Language model", stt: "Speech to text", tts: "Text to speech", avatar: "Avatar" };

function toolTitle(name) {
  return name.replace(/_/g, " ");
}

function valueText(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function argumentList(args) {
  const empty = (value) => value === null || (Array.isArray(value) && value.length === 0);
  const shown = Object.entries(args || {}).filter(([key, value]) => key !== "session_id" && !empty(value));
  if (shown.length === 0) return el("p", { class: "muted" }, "No arguments.");
  return el(
    "dl",
    { class: "tool-args" },
    ...shown.map(([key, value]) => el("div", {}, el("dt", {}, key), el("dd", {}, valueText(value)))),
  );
}

function refusal(error) {
  const alternatives = (error.alternatives || []).map((slot) => slot.label).filter(Boolean);
  return el(
    "div",
    { class: "tool-refusal" },
    el("p", {}, "Refused: ", el("code", {}, error.code || "error")),
    el("p", {}, error.message || ""),
    alternatives.length ? el("p", { class: "muted" }, `Offered instead: ${alternatives.join("; ")}`) : null,
  );
}

function answer(result) {
  return el(
    "details",
    { class: "tool-answer" },
    el("summary", {}, "Answer"),
    el("pre", {}, JSON.stringify(result, null, 2)),
  );
}

function toolCard(event) {
  const call = event.payload;
  const failed = call.status === "failed";
  const status = el("span", { class: failed ? "badge failed" : "badge" }, call.status || "unknown");
  return el(
    "article",
    { class: failed ? "tool-card failed" : "tool-card", "aria-label": `${toolTitle(call.name)}: ${call.status}` },
    el(
      "header",
      {},
      el("h3", {}, toolTitle(call.name || "tool call")),
      status,
      el("span", { class: "muted" }, when(event.timestamp, { timeStyle: "medium" })),
      call.duration_ms !== undefined && call.duration_ms !== null
        ? el("span", { class: "muted" }, `${Math.round(call.duration_ms)} ms`)
        : null,
    ),
    call.detail && !failed ? el("p", {}, call.detail) : null,
    argumentList(call.args),
    failed && call.error ? refusal(call.error) : null,
    !failed && call.result ? answer(call.result) : null,
  );
}

function transcriptLine(event) {
  const line = event.payload;
  const speaker = SPEAKERS[line.role] || line.role;
  return el(
    "div",
    { class: `line line-${line.role === "agent" ? "agent" : "user"}` },
    el("span", { class: "line-speaker" }, speaker),
    el("p", {}, line.text, line.final === false ? el("span", { class: "muted" }, " (partial)") : null),
  );
}

export function costTable(cost) {
  const rows = Object.entries(cost.items || {}).map(([name, usd]) =>
    el("tr", {}, el("th", { scope: "row" }, COST_ITEMS[name] || name), el("td", { class: "num" }, money(usd))),
  );
  return el(
    "table",
    { class: "cost-table" },
    el("caption", {}, "Cost"),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Item"), el("th", { scope: "col", class: "num" }, "USD"))),
    el("tbody", {}, ...rows),
    el("tfoot", {}, el("tr", {}, el("th", { scope: "row" }, "Total"), el("td", { class: "num" }, money(cost.total)))),
  );
}

export function summaryCard(summary) {
  const booked = summary.booked_appointments || [];
  return el(
    "section",
    { class: "card call-summary", "aria-label": "Summary" },
    el("h3", {}, "Summary"),
    el("p", {}, summary.summary),
    booked.length
      ? el(
        "ul",
        {},
        ...booked.map((a) => el("li", {}, `${when(a.start)} — ${a.name || "no name given"} (${a.status})`)),
      )
      : null,
    summary.preferences && summary.preferences.length
      ? el("p", { class: "muted" }, `Preferences: ${summary.preferences.join("; ")}`)
      : null,
    summary.cost ? costTable(summary.cost) : null,
  );
}

function note(event, text) {
  return el("p", { class: "timeline-note muted" }, `${when(event.timestamp, { timeStyle: "medium" })} · ${text}`);
}

/** The element of one event, and what the live region says of it. */
export function eventItem(event) {
  const p = event.payload || {};
  switch (event.type) {
    case "tool_call":
      return [toolCard(event), `${toolTitle(p.name || "tool call")} ${p.status}${p.status === "failed" && p.error ? `: ${p.error.code}` : ""}`];
    case "transcript":
      return [transcriptLine(event), `${SPEAKERS[p.role] || p.role}: ${p.text}`];
    case "status":
      return [note(event, STATES[p.state] || `State: ${p.state}.`), `Call ${p.state}`];
    case "summary":
      return [summaryCard(p), "The summary is ready"];
    case "session_closed":
      return [note(event, "Session closed."), "Session closed"];
    default:
      return [note(event, `${event.type} event`), `${event.type} event`];
  }
}
