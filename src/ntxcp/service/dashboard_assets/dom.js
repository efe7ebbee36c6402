// Small helpers to build DOM nodes and to format values for people.

const SVG_NS = "http://www.w3.org/2000/svg";

function appendChildren(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

function applyProps(node, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.setAttribute("class", value);
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "value" && "value" in node) node.value = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
}

/** Create an HTML element: h("a", {href: "#/"}, "text", child, ...). */
export function h(tag, props, ...children) {
  const node = document.createElement(tag);
  applyProps(node, props);
  appendChildren(node, children);
  return node;
}

/** Replace a node's children (flattening arrays, skipping null/false like h()). */
export function fill(node, ...children) {
  node.replaceChildren();
  appendChildren(node, children);
  return node;
}

/** Create an SVG element with attributes. */
export function s(tag, props, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  applyProps(node, props);
  appendChildren(node, children);
  return node;
}

/** A short unique id for label/aria wiring. */
let counter = 0;
export function uid(prefix = "id") {
  counter += 1;
  return `${prefix}-${counter}`;
}

function pad(n, width = 2) {
  return String(n).padStart(width, "0");
}

/** Local date and time of an RFC 3339 text: "2026-11-23 18:36:34" (today: "18:36:34"). */
export function formatTime(text, { seconds = true, alwaysDate = false } = {}) {
  if (!text) return "—";
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return text;
  const now = new Date();
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}${seconds ? ":" + pad(date.getSeconds()) : ""}`;
  const sameDay = date.toDateString() === now.toDateString();
  if (sameDay && !alwaysDate) return time;
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${time}`;
}

/** How long ago, in words: "just now", "12 s ago", "3 min ago", "2 h ago", "4 d ago". */
export function formatAgo(text) {
  if (!text) return "never";
  const then = Date.parse(text);
  if (Number.isNaN(then)) return text;
  const seconds = Math.round((Date.now() - then) / 1000);
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

/** A <time> element showing local time, with the UTC text as tooltip. */
export function timeNode(text, options) {
  if (!text) return h("span", { class: "muted" }, "—");
  return h("time", { datetime: text, title: text }, formatTime(text, options));
}

/** A <time> element showing "… ago"; refreshAgo() updates every one in a subtree. */
export function agoNode(text) {
  if (!text) return h("span", { class: "muted" }, "never");
  return h("time", { datetime: text, title: text, "data-ago": "" }, formatAgo(text));
}

export function refreshAgo(root) {
  for (const node of root.querySelectorAll("time[data-ago]")) {
    node.textContent = formatAgo(node.getAttribute("datetime"));
  }
}

const TONES = {
  // DingxGatewayStatus (spec §4.1)
  Available: "ok",
  Preparing: "busy",
  Charging: "busy",
  SuspendedEVSE: "warn",
  SuspendedEV: "warn",
  Finishing: "busy",
  Reserved: "info",
  Unavailable: "off",
  Faulted: "bad",
  // RegistrationStatus
  Accepted: "ok",
  Pending: "warn",
  Rejected: "bad",
  // FirmwareStatus and DiagnosticsStatus (spec §4.2)
  Downloaded: "ok",
  DownloadFailed: "bad",
  Downloading: "busy",
  Idle: "off",
  InstallationFailed: "bad",
  Installing: "busy",
  Installed: "ok",
  Uploaded: "ok",
  UploadFailed: "bad",
  Uploading: "busy",
  // Confirmation statuses
  RebootRequired: "warn",
  NotSupported: "warn",
  NotImplemented: "warn",
  UnknownService: "warn",
  UnknownMessageId: "warn",
  UnknownVendorId: "warn",
};

/** The colour family of a status word: ok, busy, warn, bad, off or info. */
export function tone(status) {
  return TONES[status] || "off";
}

// Confirmation statuses (spec §4.1–§4.3) and what each means for the operator: only
// Accepted means "done as asked"; RebootRequired is accepted but not yet in effect; the
// others are refusals, shown in the refusal colour with words, never as success.
const VERDICTS = {
  Accepted: { tone: "ok", outcome: "accepted", words: "accepted" },
  RebootRequired: { tone: "warn", outcome: "reboot required", words: "accepted, takes effect after a reboot" },
  Rejected: { tone: "bad", outcome: "refused", words: "refused by the gateway" },
  NotSupported: { tone: "bad", outcome: "refused", words: "refused: not supported by the gateway" },
  NotImplemented: { tone: "bad", outcome: "refused", words: "refused: not implemented by the gateway" },
  UnknownService: { tone: "bad", outcome: "refused", words: "refused: the gateway has no such service" },
  UnknownMessageId: { tone: "bad", outcome: "refused", words: "refused: the gateway does not know this message id" },
  UnknownVendorId: { tone: "bad", outcome: "refused", words: "refused: the gateway does not know this vendor id" },
};

/** What a confirmation's status means: {tone, outcome, words}; null when it has none. */
export function verdict(status) {
  if (status === undefined || status === null) return null;
  return VERDICTS[status] || { tone: "warn", outcome: String(status), words: `answered ${status}` };
}

/** A coloured badge for a status word. */
export function badge(text, toneName = tone(text), extra = {}) {
  return h("span", { class: `badge tone-${toneName}`, ...extra }, text);
}

/** Pretty-print JSON text (or return it unchanged when it is not JSON). */
export function prettyJson(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

/** A definition list from [label, value] pairs (values may be nodes). */
export function definitions(pairs) {
  return h(
    "dl",
    { class: "defs" },
    pairs.map(([label, value]) => [
      h("dt", {}, label),
      h("dd", {}, value === null || value === undefined || value === "" ? h("span", { class: "muted" }, "—") : value),
    ]),
  );
}

/** A table: columns are [header, cell(row) → node|string]; caption is for screen readers. */
export function table(caption, columns, rows, { empty = "Nothing yet.", rowProps } = {}) {
  const body = h("tbody");
  const result = h(
    "table",
    { class: "table" },
    h("caption", { class: "sr-only" }, caption),
    h("thead", {}, h("tr", {}, columns.map(([title]) => h("th", { scope: "col" }, title)))),
    body,
  );
  fillTable(body, columns, rows, { empty, rowProps });
  return result;
}

export function fillTable(body, columns, rows, { empty = "Nothing yet.", rowProps } = {}) {
  fill(body);
  if (!rows.length) {
    body.append(h("tr", { class: "empty" }, h("td", { colspan: columns.length }, empty)));
    return;
  }
  for (const row of rows) {
    body.append(tableRow(columns, row, rowProps));
  }
}

export function tableRow(columns, row, rowProps) {
  return h(
    "tr",
    rowProps ? rowProps(row) : {},
    columns.map(([, cell]) => h("td", {}, cell(row))),
  );
}

/** Briefly highlight a node that changed live. */
export function flash(node) {
  node.classList.remove("flash");
  // Restart the animation: reading offsetWidth forces a style recalculation.
  void node.offsetWidth;
  node.classList.add("flash");
}

/** The gateway page's hash route. */
export function gatewayHref(id) {
  return `#/gateways/${encodeURIComponent(id)}`;
}
