// The console shell: sign-in, the tabs, and the helpers every tab module uses.
//
// A tab module exports `render(root, route, me)`; it draws into `root` and may return a
// function that stops whatever it started (a WebSocket, a timer) when the operator leaves.
// Nothing here or in a tab ever assigns HTML from data: every text goes in as textContent.

const TABS = {
  calls: "./calls.js",
  calendar: "./calendar.js",
  numbers: "./numbers.js",
  try: "./tryit.js",
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let csrfToken = "";
let me = null;
let leave = null;

/** JSON from the console API; a failure is an ApiError with the server's code and sentence. */
export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached; check that voicebook serve is running.");
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = data && data.error ? data.error : {
      code: `http_${response.status}`,
      message: `The server answered ${response.status}.`,
    };
    if (error.code === "sign_in_required") showSignIn();
    throw new ApiError(response.status, error.code, error.message);
  }
  return data;
}

/** An element with attributes (`on*` functions become listeners) and children (text or nodes). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "class") {
      node.className = value;
    } else if (name === "dataset") {
      Object.assign(node.dataset, value);
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** The URL of a WebSocket on this server. */
export function wsUrl(path) {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
}

/** A short message at the bottom of the screen (screen readers hear it: role=status). */
export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const item = el("div", { class: `toast ${kind}` }, message);
  box.append(item);
  setTimeout(() => item.remove(), 6000);
}

export function money(usd) {
  if (usd === null || usd === undefined) return "—";
  return usd < 0.01 && usd > 0 ? `$${usd.toFixed(4)}` : `$${usd.toFixed(2)}`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${s % 60} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** A date and time in the business's zone (the console shows the business's clock). A time its
 * clock shows twice (the hour repeated when DST ends) adds the zone's name, "1:30 AM EST", as the
 * receptionist says it, so the two are told apart. */
export function when(iso, options = { dateStyle: "medium", timeStyle: "short" }) {
  if (!iso) return "—";
  const zone = me && me.business ? me.business.timezone : undefined;
  const instant = new Date(iso);
  const text = new Intl.DateTimeFormat(undefined, { ...options, timeZone: zone }).format(instant);
  const showsTime = "timeStyle" in options || "hour" in options;
  return showsTime && repeated(instant, zone) ? `${text} ${zoneName(instant, zone)}` : text;
}

const WALL_CLOCK = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" };
const MINUTE_MS = 60 * 1000;

/** Whether another instant within an hour shows the same wall-clock time in `zone` (DST shifts
 * are an hour, or half an hour in a few zones). */
function repeated(instant, zone) {
  const clock = new Intl.DateTimeFormat("en-US", { ...WALL_CLOCK, timeZone: zone });
  const shown = clock.format(instant);
  return [-60, -30, 30, 60].some((minutes) => clock.format(new Date(instant.getTime() + minutes * MINUTE_MS)) === shown);
}

function zoneName(instant, zone) {
  const parts = new Intl.DateTimeFormat(undefined, { timeZone: zone, timeZoneName: "short" }).formatToParts(instant);
  return (parts.find((part) => part.type === "timeZoneName") || { value: "" }).value;
}

export function businessZone() {
  return me && me.business ? me.business.timezone : Intl.DateTimeFormat().resolvedOptions().timeZone;
}

function parseRoute() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = hash.split("?");
  const segments = path.split("/").filter(Boolean).map(decodeURIComponent);
  const tab = segments[0] in TABS ? segments[0] : "calls";
  return { tab, segments: segments.slice(1), params: new URLSearchParams(query) };
}

let shown = 0; // which navigation is current: a tab still loading when another opens is dropped

async function show() {
  const turn = ++shown;
  if (leave) {
    try { leave(); } catch (error) { console.error(error); }
    leave = null;
  }
  const route = parseRoute();
  for (const link of document.querySelectorAll("#tabs a")) {
    if (link.dataset.tab === route.tab) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const view = document.getElementById("view");
  view.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  try {
    const module = await import(TABS[route.tab]);
    if (turn !== shown) return;
    const root = el("div", { class: `tab tab-${route.tab}` });
    view.replaceChildren(root);
    const stop = (await module.render(root, route, me)) || null;
    if (turn === shown) leave = stop;
    else if (stop) stop(); // the operator moved on while it loaded: stop what it started
  } catch (error) {
    if (turn !== shown) return;
    if (error instanceof ApiError && error.code === "sign_in_required") return;
    view.replaceChildren(el("p", { class: "error", role: "alert" }, error.message || String(error)));
  }
}

function showSignIn() {
  document.getElementById("view").hidden = true;
  document.getElementById("tabs").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("account-name").textContent = "";
  document.getElementById("sign-in").hidden = false;
  document.getElementById(document.getElementById("account").value ? "password" : "account").focus();
}

async function start() {
  me = await api("/console/api/me");
  csrfToken = me.csrf_token;
  if (!me.signed_in) {
    showSignIn();
    return;
  }
  document.getElementById("sign-in").hidden = true;
  document.getElementById("view").hidden = false;
  document.getElementById("tabs").hidden = false;
  document.getElementById("sign-out").hidden = !me.login_required;
  document.getElementById("account-name").textContent = me.account ? `Signed in as ${me.account}` : "";
  const name = me.business && me.business.name;
  document.getElementById("business-name").textContent = name ? `· ${name}` : "";
  await show();
}

document.getElementById("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const field = document.getElementById("password");
  const account = document.getElementById("account");
  const message = document.getElementById("sign-in-error");
  message.textContent = "";
  try {
    await api("/console/api/login", { method: "POST", body: { name: account.value.trim() || null, password: field.value } });
    field.value = "";
    await start();
  } catch (error) {
    message.textContent = error.message;
    field.setAttribute("aria-invalid", "true");
    field.focus();
  }
});

document.getElementById("sign-out").addEventListener("click", async () => {
  await api("/console/api/logout", { method: "POST" });
  location.hash = "";
  await start();
});

window.addEventListener("hashchange", () => { if (me && me.signed_in) show(); });
start().catch((error) => {
  document.getElementById("view").replaceChildren(
    el("p", { class: "error", role: "alert" }, error.message || String(error)),
  );
});
