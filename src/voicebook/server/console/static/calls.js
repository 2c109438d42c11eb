// The Calls tab: recent and live calls, newest first (`#/calls`), and one call (`#/calls/<id>`,
// in call_page.js). The list reads itself again every few seconds while it is open, so a call
// that starts or ends shows up without a reload; the timer stops when the operator leaves.

import { api, duration, el, money } from "./app.js";
import { renderCall } from "./call_page.js";
import { callerText, outcomeText, startedText, stateBadge } from "./call_facts.js";

const PAGE = 50;
const REFRESH_MS = 4000;

export async function render(root, route) {
  if (route.segments.length > 0) return renderCall(root, route.segments[0]);
  return renderList(root);
}

/** Fill a row (new or already shown) with a call's facts. A shown row keeps its link element,
 * so a keyboard user's focus stays where it was while the list reads itself again. */
function fillRow(row, call) {
  let link = row.querySelector("a");
  if (!link) {
    link = el("a", { href: `#/calls/${encodeURIComponent(call.session_id)}` });
    row.append(el("th", { scope: "row" }, link), ...Array.from({ length: 5 }, () => el("td")));
    row.dataset.session = call.session_id;
    const [, , , ...numbers] = row.children;
    for (const cell of numbers) cell.className = "num hide-narrow";
  }
  const started = startedText(call.started_at);
  link.textContent = started;
  link.setAttribute("aria-label", `${started}, ${callerText(call)}`);
  row.classList.toggle("call-live", call.live);
  const failed = call.failures ? el("span", { class: "badge failed" }, `${call.failures} failed`) : null;
  const [, caller, outcome, length, tools, cost] = row.children;
  caller.textContent = callerText(call);
  outcome.replaceChildren(
    stateBadge(call), " ", el("span", { class: "call-outcome" }, outcomeText(call)), failed ? " " : "", failed || "",
  );
  length.textContent = duration(call.duration_s);
  tools.textContent = String(call.tool_calls);
  cost.textContent = money(call.cost ? call.cost.total : null);
  return row;
}

async function renderList(root) {
  const status = el("p", { class: "muted calls-status", role: "status", "aria-live": "polite" });
  const body = el("tbody");
  const empty = el("p", { class: "muted", hidden: true }, "No calls yet. A call appears here as soon as it starts.");
  const older = el("button", { type: "button", class: "quiet", hidden: true }, "Show older calls");
  const table = el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { class: "calls-table" },
      el("caption", { class: "sr-only" }, "Calls, newest first"),
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          el("th", { scope: "col" }, "Started"),
          el("th", { scope: "col" }, "Caller"),
          el("th", { scope: "col" }, "Outcome"),
          el("th", { scope: "col", class: "num hide-narrow" }, "Duration"),
          el("th", { scope: "col", class: "num hide-narrow" }, "Tool calls"),
          el("th", { scope: "col", class: "num hide-narrow" }, "Cost"),
        ),
      ),
      body,
    ),
  );
  root.append(
    el("h1", {}, "Calls"),
    el("p", { class: "muted" }, "Recent and live calls, newest first; this list updates itself."),
    status,
    empty,
    table,
    el("div", { class: "calls-more" }, older),
  );

  let calls = [];
  let nextBefore = null;
  let timer = null;
  let left = false;

  const rows = new Map(); // session id → its row, filled again on every read

  function draw() {
    const wanted = calls.map((call) => fillRow(rows.get(call.session_id) || el("tr"), call));
    rows.clear();
    wanted.forEach((row, i) => {
      rows.set(calls[i].session_id, row);
      if (body.children[i] !== row) body.insertBefore(row, body.children[i] || null);
    });
    while (body.children.length > wanted.length) body.lastElementChild.remove();
    empty.hidden = calls.length > 0;
    table.hidden = calls.length === 0;
    older.hidden = !nextBefore;
  }

  async function refresh() {
    const page = await api(`/console/api/calls?limit=${PAGE}`);
    if (left) return;
    const fresh = new Set(page.calls.map((c) => c.session_id));
    const known = new Set(calls.map((c) => c.session_id));
    const added = page.calls.filter((c) => !known.has(c.session_id)).length;
    const oldest = page.calls.length ? Date.parse(page.calls[page.calls.length - 1].started_at) : null;
    // Rows of older pages already shown stay, below the newest page read again.
    const kept = calls.filter(
      (c) => !fresh.has(c.session_id) && oldest !== null && Date.parse(c.started_at) <= oldest,
    );
    const first = calls.length === 0;
    calls = [...page.calls, ...kept];
    if (first || kept.length === 0) nextBefore = page.next_before;
    draw();
    const live = calls.filter((c) => c.live).length;
    const news = !first && added ? `${added} new ${added === 1 ? "call" : "calls"}. ` : "";
    status.textContent = `${news}${live} live now.`;
  }

  async function tick() {
    if (!root.isConnected) return; // the tab was replaced before its cleanup was known
    try {
      await refresh();
    } catch (error) {
      if (error.code === "sign_in_required") return; // the shell shows the sign-in form
      status.textContent = `Could not update the list: ${error.message}`;
    }
    if (!left) timer = setTimeout(tick, REFRESH_MS);
  }

  older.addEventListener("click", async () => {
    older.disabled = true;
    try {
      const page = await api(`/console/api/calls?limit=${PAGE}&before=${encodeURIComponent(nextBefore)}`);
      const known = new Set(calls.map((c) => c.session_id));
      calls = [...calls, ...page.calls.filter((c) => !known.has(c.session_id))];
      nextBefore = page.next_before;
      draw();
    } catch (error) {
      status.textContent = `Could not load older calls: ${error.message}`;
    } finally {
      older.disabled = false;
    }
  });

  await refresh();
  timer = setTimeout(tick, REFRESH_MS);
  return () => {
    left = true;
    clearTimeout(timer);
  };
}
