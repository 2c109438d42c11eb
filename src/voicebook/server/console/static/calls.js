// The Calls tab: recent and live calls, newest first (`#/calls`), and one call (`#/calls/<id>`,
// in call_page.js). The list reads itself again every few seconds while it is open, so a call
// that starts or ends shows up without a reload; the timer stops when the operator leaves. A
// search narrows it to the calls whose caller's number ends with the digits typed, and/or to
// the live or the ended ones (the server filters; older pages follow the same search).

import { api, duration, el, money } from "./app.js";
import { renderCall } from "./call_page.js";
import { callerText, outcomeText, startedText, stateBadge } from "./call_facts.js";

const PAGE = 50;
const REFRESH_MS = 4000;
const TYPING_MS = 300;

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
  const empty = el("p", { class: "muted", hidden: true });
  const caller = el("input", {
    id: "calls-caller",
    type: "search",
    inputmode: "numeric",
    autocomplete: "off",
    placeholder: "e.g. 0123",
    "aria-describedby": "calls-caller-hint",
  });
  const which = el(
    "select",
    { id: "calls-state" },
    el("option", { value: "" }, "All calls"),
    el("option", { value: "live" }, "Live"),
    el("option", { value: "ended" }, "Ended"),
  );
  const search = el(
    "form",
    { class: "toolbar calls-search", role: "search", "aria-label": "Search calls", onsubmit: (event) => event.preventDefault() },
    el("div", { class: "field" }, el("label", { for: "calls-caller" }, "Caller's number ends with"), caller),
    el("div", { class: "field" }, el("label", { for: "calls-state" }, "Show"), which),
    el("p", { id: "calls-caller-hint", class: "muted field-hint" }, "Two or more digits, such as the last four."),
  );
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
    search,
    status,
    empty,
    table,
    el("div", { class: "calls-more" }, older),
  );

  let calls = [];
  let nextBefore = null;
  let timer = null;
  let typing = null;
  let left = false;
  let generation = 0; // bumped by every new search: an answer to an older one is dropped

  function filters() {
    const digits = caller.value.replace(/[^0-9]/g, "");
    return { digits, state: which.value, searching: digits.length > 0 || which.value !== "" };
  }

  function listUrl(before) {
    const { digits, state } = filters();
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (digits) query.set("caller", digits);
    if (state) query.set("state", state);
    if (before) query.set("before", before);
    return `/console/api/calls?${query}`;
  }

  const rows = new Map(); // session id → its row, filled again on every read

  function draw() {
    const wanted = calls.map((call) => fillRow(rows.get(call.session_id) || el("tr"), call));
    rows.clear();
    wanted.forEach((row, i) => {
      rows.set(calls[i].session_id, row);
      if (body.children[i] !== row) body.insertBefore(row, body.children[i] || null);
    });
    while (body.children.length > wanted.length) body.lastElementChild.remove();
    empty.textContent = filters().searching
      ? "No calls match this search."
      : "No calls yet. A call appears here as soon as it starts.";
    empty.hidden = calls.length > 0;
    table.hidden = calls.length === 0;
    older.hidden = !nextBefore;
  }

  async function refresh() {
    const asked = generation;
    const page = await api(listUrl());
    if (left || asked !== generation) return;
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
    const matching = filters().searching ? `${calls.length} shown${nextBefore ? " (more below)" : ""}; ` : "";
    status.textContent = `${news}${matching}${live} live now.`;
  }

  /** A new search: the list from its newest call again (a digit typed alone waits for more). */
  async function searchAgain() {
    const { digits } = filters();
    if (digits.length === 1) {
      status.textContent = "Type at least two digits of the caller's number.";
      return;
    }
    generation += 1;
    calls = []; // the rows shown stay until the answer replaces them
    nextBefore = null;
    try {
      await refresh();
    } catch (error) {
      if (error.code !== "sign_in_required") status.textContent = error.message;
    }
  }

  caller.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(searchAgain, TYPING_MS);
  });
  which.addEventListener("change", searchAgain);

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
      const asked = generation;
      const page = await api(listUrl(nextBefore));
      if (asked !== generation) return; // the search changed meanwhile
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
    clearTimeout(typing);
  };
}
