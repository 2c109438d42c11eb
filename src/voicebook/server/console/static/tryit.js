// The Try it tab: a text conversation with the receptionist — the agent of `voicebook call
// --text` — over WS /console/api/try. One socket is one conversation, a normal session: ending
// it, leaving the tab or closing the page hangs up, and the server summarises it like any call.
// Every text goes in as text: what the model says (and what a tool returns) is data, not markup.

import { duration, el, money, when, wsUrl } from "./app.js";

const MAX_CHARS = 1000; // the server's MAX_TEXT_CHARS

export function render(root, _route, me) {
  const state = me && me.try_it;
  if (!state || !state.available) {
    root.append(el("h1", {}, "Try it"), unavailable(state));
    return null;
  }
  let chat = null;
  const begin = () => {
    if (chat) chat.leave();
    root.replaceChildren(el("h1", {}, "Try it"));
    chat = new Chat(root, begin);
    chat.start();
  };
  begin();
  return () => chat.leave();
}

function unavailable(state) {
  return el(
    "section",
    { class: "card try-off", "aria-labelledby": "try-off-title" },
    el("h2", { id: "try-off-title" }, "Try it is not available on this server"),
    el("p", {}, state ? state.message : "The server did not say whether it can hold a conversation; reload the console."),
    el("p", { class: "muted" }, "Once it is set, the same receptionist answers here as on the phone, in text."),
  );
}

function argumentsText(args) {
  return Object.entries(args || {})
    .map(([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`)
    .join(", ");
}

function prettyOutput(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function toolCard(call) {
  const outcome = call.ok ? "ok" : "failed";
  return el(
    "div",
    { class: `try-tool ${outcome}`, role: "group", "aria-label": `Tool call ${call.name}, ${call.ok ? "ok" : "failed"}` },
    el(
      "div",
      { class: "try-tool-head" },
      el("code", { class: "try-tool-name" }, call.name),
      el("span", { class: `badge ${call.ok ? "ok" : "failed"}` }, call.ok ? "ok" : `failed · ${call.code}`),
      el("span", { class: "muted try-ms" }, `${call.ms} ms`),
    ),
    Object.keys(call.arguments || {}).length
      ? el("p", { class: "try-args" }, el("code", {}, argumentsText(call.arguments)))
      : null,
    call.ok ? null : el("p", { class: "try-tool-error" }, call.message),
    call.ok && call.output
      ? el("details", { class: "try-output" }, el("summary", {}, "Result"), el("pre", {}, prettyOutput(call.output)))
      : null,
  );
}

function line(who, text) {
  const speaker = who === "you" ? "You" : "Receptionist";
  return el("div", { class: `try-line ${who}` }, el("span", { class: "try-who" }, speaker), el("p", {}, text));
}

class Chat {
  constructor(root, again) {
    this.again = again; // starts a new conversation in place of this one
    this.ws = null;
    this.answering = false;
    this.ended = false;
    this.sessionId = null;
    this.pending = null;
    this.told = false; // the last thing the server said was an error (it says why it closes)

    this.link = el("p", { class: "muted try-session" }, "Connecting to the receptionist…");
    this.endButton = el("button", { type: "button", class: "quiet", disabled: true, onclick: () => this.end() }, "End conversation");
    this.log = el("div", {
      class: "try-log",
      role: "log",
      "aria-live": "polite",
      "aria-label": "Conversation with the receptionist",
      tabindex: "0",
    });
    this.input = el("input", {
      id: "try-text",
      type: "text",
      maxlength: String(MAX_CHARS),
      autocomplete: "off",
      enterkeyhint: "send",
      placeholder: "Hi, I'd like to book an appointment…",
      "aria-describedby": "try-hint",
      disabled: true,
    });
    this.sendButton = el("button", { type: "submit", disabled: true }, "Send");
    this.form = el(
      "form",
      { class: "try-form", onsubmit: (event) => { event.preventDefault(); this.say(); } },
      el("label", { for: "try-text" }, "Your message"),
      el("div", { class: "try-row" }, this.input, this.sendButton),
      el("p", { id: "try-hint", class: "muted try-hint" }, "Enter sends. You are the caller: what the receptionist books here is a real appointment."),
    );
    this.summary = el("section", { class: "card try-summary", hidden: true, "aria-labelledby": "try-summary-title" });
    root.append(
      el(
        "section",
        { class: "card try-chat", "aria-labelledby": "try-title" },
        el("div", { class: "try-head" }, el("h2", { id: "try-title" }, "Talk to the receptionist"), this.endButton),
        this.link,
        this.log,
        this.form,
      ),
      this.summary,
    );
  }

  start() {
    this.ws = new WebSocket(wsUrl("/console/api/try"));
    this.ws.addEventListener("message", (event) => this.receive(JSON.parse(event.data)));
    this.ws.addEventListener("close", () => this.closed());
  }

  leave() {
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
  }

  add(node) {
    this.log.append(node);
    node.scrollIntoView({ block: "nearest" });
  }

  setAnswering(answering) {
    this.answering = answering;
    this.sendButton.disabled = answering || this.ended;
    if (answering) {
      this.pending = el("p", { class: "try-pending muted" }, "The receptionist is answering…");
      this.add(this.pending);
    } else if (this.pending) {
      this.pending.remove();
      this.pending = null;
    }
  }

  receive(message) {
    if (message.type === "started") {
      this.sessionId = message.session_id;
      this.link.replaceChildren(
        "A real session: ",
        el("a", { href: `#/calls/${encodeURIComponent(message.session_id)}` }, "this call in the Calls tab"),
        ".",
      );
      this.input.disabled = false;
      this.sendButton.disabled = false;
      this.endButton.disabled = false;
      this.input.focus();
    } else if (message.type === "turn") {
      this.told = false;
      this.setAnswering(false);
      for (const call of message.tool_calls) this.add(toolCard(call));
      for (const text of message.agent) this.add(line("agent", text));
      if (message.error) this.add(el("p", { class: "try-note error" }, message.error.message));
    } else if (message.type === "error") {
      this.told = true;
      this.setAnswering(false);
      this.add(el("p", { class: "try-note error", dataset: { code: message.code } }, message.message));
    } else if (message.type === "summary") {
      this.showSummary(message);
    }
  }

  say() {
    const text = this.input.value.trim();
    if (!text || this.answering || this.ended || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.add(line("you", text));
    this.ws.send(JSON.stringify({ text }));
    this.input.value = "";
    this.setAnswering(true);
  }

  end() {
    if (this.ended || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.endButton.disabled = true;
    this.setAnswering(false);
    this.add(el("p", { class: "try-note muted" }, "Hanging up…"));
    this.ws.send(JSON.stringify({ type: "end" }));
  }

  finish() {
    this.ended = true;
    this.setAnswering(false);
    this.input.disabled = true;
    this.sendButton.disabled = true;
    this.endButton.hidden = true;
  }

  closed() {
    const summarised = !this.summary.hidden;
    this.finish();
    if (summarised) return;
    if (!this.told) {
      const reason = this.sessionId
        ? "The conversation was cut off before its summary; the Calls tab has what the server kept."
        : "The receptionist could not be reached; check that the server is running, then start again.";
      this.add(el("p", { class: "try-note error" }, reason));
    }
    this.summary.hidden = false;
    this.summary.replaceChildren(this.againButton());
  }

  againButton() {
    return el("button", { type: "button", onclick: () => this.again() }, "Start a new conversation");
  }

  showSummary(message) {
    const summary = message.summary || {};
    const cost = summary.cost || {};
    const facts = [
      ["Caller", summary.contact_number || "not identified"],
      ["Duration", duration(summary.duration_s)],
      ["Cost", money(cost.total)],
    ];
    const booked = (summary.booked_appointments || []).map((a) =>
      el("li", {}, `${a.date} ${a.time}`, a.name ? ` · ${a.name}` : "", ` · ${a.status}`),
    );
    this.finish();
    this.summary.hidden = false;
    const parts = [
      el("h2", { id: "try-summary-title", tabindex: "-1" }, "Summary"),
      el("p", { class: "try-summary-text" }, summary.summary || ""),
      el("dl", { class: "try-facts" }, ...facts.map(([name, value]) => el("div", {}, el("dt", {}, name), el("dd", {}, value)))),
      booked.length ? el("h3", {}, "Booked") : null,
      booked.length ? el("ul", {}, ...booked) : null,
      summary.created_at ? el("p", { class: "muted" }, `Ended ${when(summary.created_at)}.`) : null,
      el(
        "div",
        { class: "try-summary-actions" },
        el("a", { href: `#/calls/${encodeURIComponent(message.session_id)}` }, "Open this call in the Calls tab"),
        this.againButton(),
      ),
    ];
    this.summary.replaceChildren(...parts.filter(Boolean)); // the DOM writes null as "null"
    parts[0].focus();
  }
}
