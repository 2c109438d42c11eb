// One call (`#/calls/<session id>`): its facts, then its timeline, read a page at a time from
// the console API and then followed LIVE over the session's own event WebSocket, resumed with
// `?after=<last event id>` after any drop. Events are keyed by id, so one read twice (a page
// and the socket's replay overlapping) is shown once; each new one is announced politely.

import { api, el, wsUrl } from "./app.js";
import { factList, shortId } from "./call_facts.js";
import { eventItem } from "./timeline.js";

const RECONNECT_MS = [500, 1000, 2000, 4000, 8000];
const HEADER_DELAY_MS = 250;

function notFound(root, message) {
  root.append(
    el("p", {}, el("a", { href: "#/calls" }, "← All calls")),
    el("h1", {}, "Call not found"),
    el("p", { class: "error", role: "alert" }, message),
  );
  return null;
}

export async function renderCall(root, sessionId) {
  const path = `/console/api/calls/${encodeURIComponent(sessionId)}`;
  let detail;
  try {
    detail = await api(path);
  } catch (error) {
    if (error.status === 404) return notFound(root, error.message);
    throw error;
  }
  const facts = el("div", { class: "card call-header" }, factList(detail.call));
  const timeline = el("ol", { class: "timeline", "aria-labelledby": "timeline-title" });
  const announcer = el("p", { class: "sr-only", "aria-live": "polite", "aria-atomic": "true" });
  const following = el("p", { class: "muted call-following", role: "status" });
  root.append(
    el("p", {}, el("a", { href: "#/calls" }, "← All calls")),
    el("h1", {}, `Call ${shortId(sessionId)}`),
    el("p", { class: "muted call-id" }, "Session ", el("code", {}, sessionId)),
    facts,
    el("h2", { id: "timeline-title" }, "Timeline"),
    following,
    timeline,
    announcer,
  );

  const seen = new Set();
  const cards = new Map(); // tool-call id → its list item, so a later status replaces it
  let last = 0;
  let left = false;
  let closed = !detail.call.live;
  let socket = null;
  let retry = null;
  let headerTimer = null;
  let attempts = 0;

  function add(event, announce) {
    if (seen.has(event.id)) return;
    seen.add(event.id);
    last = Math.max(last, event.id);
    const [item, said] = eventItem(event);
    const li = el("li", { dataset: { event: String(event.id), type: event.type } }, item);
    const callId = event.type === "tool_call" && event.payload ? event.payload.id : null;
    if (callId && cards.has(callId)) cards.get(callId).replaceWith(li);
    else timeline.append(li);
    if (callId) cards.set(callId, li);
    if (event.type === "session_closed") closed = true;
    if (announce) announcer.textContent = `New: ${said}.`;
  }

  function showFollowing() {
    following.textContent = closed ? "This call has ended." : "Following this call live.";
  }

  async function refreshHeader() {
    try {
      const fresh = await api(`${path}?after=${last}&limit=1`);
      if (left) return;
      facts.replaceChildren(factList(fresh.call));
    } catch {
      // The header stays as it was; the timeline goes on.
    }
  }

  function headerSoon() {
    clearTimeout(headerTimer);
    headerTimer = setTimeout(refreshHeader, HEADER_DELAY_MS);
  }

  function connect() {
    if (left || closed) return;
    socket = new WebSocket(wsUrl(`/session/${encodeURIComponent(sessionId)}/events?after=${last}`));
    socket.addEventListener("open", () => {
      attempts = 0;
      showFollowing();
    });
    socket.addEventListener("message", (message) => {
      if (!root.isConnected) {
        left = true; // the tab was replaced before its cleanup was known
        socket.close(1000, "left the page");
        return;
      }
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (typeof event.id !== "number") return;
      const before = seen.size;
      add(event, true);
      if (seen.size !== before) headerSoon();
      showFollowing();
    });
    socket.addEventListener("close", (close) => {
      socket = null;
      if (left || closed || close.code === 4404) {
        showFollowing();
        return;
      }
      following.textContent = "Reconnecting…";
      retry = setTimeout(connect, RECONNECT_MS[Math.min(attempts, RECONNECT_MS.length - 1)]);
      attempts += 1;
    });
  }

  for (const event of detail.events) add(event, false);
  let next = detail.next_after;
  while (next !== null && !left) {
    const page = await api(`${path}?after=${next}`);
    for (const event of page.events) add(event, false);
    next = page.next_after;
  }
  showFollowing();
  connect();
  return () => {
    left = true;
    clearTimeout(retry);
    clearTimeout(headerTimer);
    if (socket) socket.close(1000, "left the page");
  };
}
