// The gateways overview (route "#/"): one page of the fleet at a time, live, and
// gateway registration. The service filters, sorts and counts (GET /api/fleet); the
// page holds only the rows of its current page (PAGE_SIZE), whatever the fleet's size.

import { gatewayPath, get, query, request } from "./api.js";
import { agoNode, badge, fill, flash, formatTime, gatewayHref, h, refreshAgo, tone, uid } from "./dom.js";

const KINDS = "gateway,connection,boot,status,seen";
const COLUMNS = ["Gateway", "Connection", "Registration", "Model", "Firmware", "Last seen", "Services", "Actions"];

/** Rows on one page of the overview. */
export const PAGE_SIZE = 100;
/** Shortest time between two live refreshes of the page (events are coalesced). */
const REFRESH_GAP_MS = 300;

// The sort choices: [value of the select, label, sort, order] (GET /api/fleet).
const SORTS = [
  ["id", "Gateway id (A–Z)", "id", "asc"],
  ["id-desc", "Gateway id (Z–A)", "id", "desc"],
  ["seen", "Last seen (newest first)", "lastSeen", "desc"],
  ["state", "Connection state", "state", "asc"],
];
const STATES = [
  ["", "Any connection state"],
  ["connected", "Connected"],
  ["unresponsive", "Unresponsive"],
  ["disconnected", "Disconnected"],
  ["never", "Never connected"],
];

/** Natural order of ids: "LOAD-2" before "LOAD-10" (as people count). */
export const naturalCompare = new Intl.Collator("en", { numeric: true }).compare;

/**
 * A chip for the current status of one service, coloured by status and error code.
 * With ``stale`` (the gateway is not connected) the status is only the last one known:
 * the chip is greyed and its title says when it was reported.
 */
export function serviceChip(entry, stale = false) {
  const label = entry.serviceId === "0" ? "Gateway" : `Service ${entry.serviceId}`;
  const error = entry.errorCode && entry.errorCode !== "NoError";
  const when = entry.timestamp || entry.receivedAt;
  const title = [
    `${label}: ${entry.status}`,
    stale ? "last known (the gateway is not connected)" : null,
    error ? `error ${entry.errorCode}` : null,
    entry.info ? `info: ${entry.info}` : null,
    entry.vendorErrorCode ? `vendor error ${entry.vendorErrorCode}` : null,
    when ? `since ${when}` : null,
  ]
    .filter(Boolean)
    .join(" · ");
  return h(
    "span",
    {
      class: stale ? "chip tone-off stale" : `chip tone-${tone(entry.status)}${error ? " has-error" : ""}`,
      title,
      "data-service": entry.serviceId,
      "data-status": entry.status,
      "data-stale": stale ? "" : null,
    },
    h("span", { class: "chip-id" }, entry.serviceId === "0" ? "GW" : entry.serviceId),
    h("span", { class: "chip-status" }, entry.status),
    error ? h("span", { class: "chip-error" }, entry.errorCode) : null,
  );
}

/** The newest report time of some statuses (RFC 3339 text), or null. */
export function lastReported(entries) {
  let best = null;
  for (const entry of entries) {
    const when = entry.timestamp || entry.receivedAt;
    if (when && (best === null || Date.parse(when) > Date.parse(best))) best = when;
  }
  return best;
}

/** Keep the newest status of a service (a late, re-sent one never replaces it). */
export function newer(current, candidate) {
  if (!current) return true;
  if (!candidate.timestamp || !current.timestamp) return true;
  return Date.parse(candidate.timestamp) >= Date.parse(current.timestamp);
}

export function connectionBadge(gateway) {
  if (gateway.state === "unresponsive") {
    return badge("Unresponsive", "warn", {
      "data-connection": "unresponsive",
      title: "connected, but it did not answer the last ping in time",
    });
  }
  if (gateway.connected) return badge("Connected", "ok", { "data-connection": "connected" });
  if (!gateway.firstSeen) return badge("Never connected", "off", { "data-connection": "never" });
  return badge("Disconnected", "off", { "data-connection": "disconnected" });
}

export function registrationBadge(gateway) {
  if (gateway.registrationStatus) return badge(gateway.registrationStatus);
  return badge(gateway.registered ? "Not booted" : "Unknown", "off");
}

export function overview(ctx) {
  const rows = new Map(); // id → [<tr>, the item it shows as JSON text]
  const view = { offset: 0 };
  let requested = 0; // number of the latest request sent
  let shown = 0; // number of the request whose answer is shown

  const filter = h("input", {
    type: "search",
    id: uid("filter"),
    placeholder: "id, model, vendor, firmware…",
    oninput: () => changed(),
  });
  const stateSelect = h(
    "select",
    { id: uid("state"), onchange: () => changed() },
    STATES.map(([value, label]) => h("option", { value }, label)),
  );
  const attentionBox = h("input", { type: "checkbox", id: uid("attention"), onchange: () => changed() });
  const sortSelect = h(
    "select",
    { id: uid("sort"), onchange: () => changed() },
    SORTS.map(([value, label]) => h("option", { value }, label)),
  );
  const summary = h("p", { class: "summary", "aria-live": "polite" });
  const tbody = h("tbody");
  const gatewayTable = h(
    "table",
    { class: "table gateways" },
    h("caption", { class: "sr-only" }, "Gateways"),
    h("thead", {}, h("tr", {}, COLUMNS.map((title) => h("th", { scope: "col" }, title)))),
    tbody,
  );
  const emptyRow = h(
    "tr",
    { class: "empty" },
    h(
      "td",
      { colspan: COLUMNS.length },
      "No gateways yet. Register one below, or let a gateway connect to ",
      h("code", {}, `${ctx.gatewayUrl}/<gatewayId>`),
      ".",
    ),
  );
  const noMatchText = h("span");
  const noMatchRow = h("tr", { class: "empty no-match", hidden: true }, h("td", { colspan: COLUMNS.length }, noMatchText));

  const pageInfo = h("span", { class: "page-info", "aria-live": "polite" });
  const previous = h("button", { type: "button", class: "button ghost small", onclick: () => turn(-1) }, "Previous");
  const next = h("button", { type: "button", class: "button ghost small", onclick: () => turn(1) }, "Next");
  const pager = h("nav", { class: "pager", "aria-label": "Pages of gateways" }, pageInfo, h("span", { class: "pager-buttons" }, previous, next));

  // --- registration ---------------------------------------------------------------
  const idInput = h("input", { id: uid("gw-id"), name: "id", autocomplete: "off", spellcheck: "false", required: true });
  const passwordInput = h("input", { id: uid("gw-password"), name: "password", type: "password", autocomplete: "new-password" });
  const idError = h("p", { class: "field-error", role: "alert", hidden: true, id: uid("error") });
  const passwordError = h("p", { class: "field-error", role: "alert", hidden: true, id: uid("error") });
  const formError = h("p", { class: "form-error", role: "alert", hidden: true });
  idInput.setAttribute("aria-describedby", idError.id);
  passwordInput.setAttribute("aria-describedby", passwordError.id);
  const registerButton = h("button", { class: "button", type: "submit" }, "Register gateway");
  const registerForm = h(
    "form",
    { class: "register", novalidate: true, "aria-labelledby": "register-title", onsubmit: (event) => register(event) },
    h("div", { class: "field" }, h("label", { for: idInput.id }, "Gateway id"), idInput, h("small", { class: "hint" }, "1–48 printable ASCII characters, no “/”"), idError),
    h(
      "div",
      { class: "field" },
      h("label", { for: passwordInput.id }, "Password"),
      passwordInput,
      h("small", { class: "hint" }, "optional: the gateway's HTTP Basic secret (security profiles 1 and 2)"),
      passwordError,
    ),
    h("div", { class: "field actions" }, registerButton),
    formError,
  );

  const node = h(
    "section",
    { class: "view overview", "aria-labelledby": "overview-title" },
    h(
      "div",
      { class: "page-head" },
      h("div", {}, h("h1", { id: "overview-title" }, "Gateways"), summary),
      h(
        "div",
        { class: "controls overview-controls" },
        h("div", { class: "field filter" }, h("label", { for: filter.id }, "Filter gateways"), filter),
        h("div", { class: "field" }, h("label", { for: stateSelect.id }, "Connection"), stateSelect),
        h("div", { class: "field" }, h("label", { for: sortSelect.id }, "Sort by"), sortSelect),
        h("div", { class: "field inline-field check" }, attentionBox, h("label", { for: attentionBox.id }, "Needs attention only")),
      ),
    ),
    h("div", { class: "card flush" }, h("div", { class: "table-scroll" }, gatewayTable), pager),
    // Registration needs the admin role: other tokens do not see the form.
    !ctx.may("admin") ? null : h(
      "div",
      { class: "card" },
      h("h2", { id: "register-title" }, "Register a gateway"),
      h(
        "p",
        { class: "muted" },
        "A registered gateway is accepted when it boots; with a password it must present it (HTTP Basic) when it connects.",
      ),
      registerForm,
    ),
  );

  function setFieldError(input, error, message) {
    error.textContent = message || "";
    error.hidden = !message;
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  async function register(event) {
    event.preventDefault();
    setFieldError(idInput, idError, "");
    setFieldError(passwordInput, passwordError, "");
    formError.hidden = true;
    const body = { id: idInput.value };
    if (passwordInput.value) body.password = passwordInput.value;
    registerButton.disabled = true;
    try {
      const result = await request("POST", "/api/gateways", body);
      if (result.status === 201) {
        refresh();
        ctx.toast(`Gateway ${result.data.id} registered.`, "ok");
        registerForm.reset();
        return;
      }
      const message = result.data?.error || `HTTP ${result.status}`;
      if (result.data?.path === "password") setFieldError(passwordInput, passwordError, message);
      else if (result.data?.path === "id" || result.status === 409) setFieldError(idInput, idError, message);
      else {
        formError.textContent = message;
        formError.hidden = false;
      }
    } catch (error) {
      if (error.name !== "AuthRequired") {
        formError.textContent = `Could not register: ${error.message}`;
        formError.hidden = false;
      }
    } finally {
      registerButton.disabled = false;
    }
  }

  async function remove(id) {
    const ok = await ctx.confirm(
      `Remove gateway ${id}? Everything stored about it (statuses, meter values, message log, commands) is deleted and its connection is closed. ${ctx.removalOutlook(id)}`,
      "Remove gateway",
    );
    if (!ok) return;
    try {
      const result = await request("DELETE", gatewayPath(id));
      if (result.status === 204 || result.status === 404) {
        refresh();
        ctx.toast(ctx.removedText(id), "ok");
      } else {
        ctx.toast(result.data?.error || `Could not remove ${id} (HTTP ${result.status}).`, "bad");
      }
    } catch (error) {
      if (error.name !== "AuthRequired") ctx.toast(`Could not remove ${id}: ${error.message}`, "bad");
    }
  }

  // --- rows -----------------------------------------------------------------------
  function renderRow(gateway) {
    const services = gateway.services;
    const stale = !gateway.connected;
    const asOf = stale ? lastReported(services) : null;
    return h(
      "tr",
      { "data-gateway": gateway.id, "data-state": gateway.state, class: gateway.needsAttention ? "attention" : null },
      h(
        "th",
        { scope: "row" },
        h("a", { href: gatewayHref(gateway.id), class: "gateway-link" }, gateway.id),
        h(
          "div",
          { class: "sub" },
          gateway.registered ? "registered" : "seen, not registered",
          gateway.hasPassword ? " · password" : "",
          gateway.tls ? " · TLS" : "",
        ),
      ),
      h("td", { "data-col": "connection", "data-label": "Connection" }, connectionBadge(gateway)),
      h("td", { "data-col": "registration", "data-label": "Registration" }, registrationBadge(gateway)),
      h(
        "td",
        { "data-col": "model", "data-label": "Model" },
        gateway.model || h("span", { class: "muted" }, "—"),
        gateway.vendor ? h("div", { class: "sub" }, gateway.vendor) : null,
      ),
      h("td", { "data-col": "firmware", "data-label": "Firmware" }, gateway.firmware || h("span", { class: "muted" }, "—")),
      h("td", { "data-col": "last-seen", "data-label": "Last seen" }, agoNode(gateway.lastSeen)),
      h(
        "td",
        { "data-col": "services", "data-label": "Services" },
        services.length
          ? [
              h("div", { class: "chips" }, services.map((entry) => serviceChip(entry, stale))),
              stale
                ? h("div", { class: "sub stale-note" }, "last known", asOf ? [" · ", h("time", { datetime: asOf, title: asOf }, formatTime(asOf))] : null)
                : null,
            ]
          : h("span", { class: "muted" }, "no status yet"),
      ),
      h(
        "td",
        { "data-col": "actions", "data-label": "Actions" },
        !ctx.may("admin") ? null : h(
          "button",
          { class: "button ghost small danger-text", type: "button", "aria-label": `Remove ${gateway.id}`, onclick: () => remove(gateway.id) },
          "Remove",
        ),
      ),
    );
  }

  // Show one answer: rows whose gateway did not change are kept as they are (a live
  // refresh neither flickers nor loses a focused button); changed ones flash.
  function show(page, live) {
    const kept = new Map();
    const ordered = [];
    for (const item of page.items) {
      const text = JSON.stringify(item);
      const old = rows.get(item.id);
      let row = old && old[1] === text ? old[0] : null;
      if (!row) {
        row = renderRow(item);
        if (live) flash(row);
      }
      kept.set(item.id, [row, text]);
      ordered.push(row);
    }
    rows.clear();
    for (const [id, entry] of kept) rows.set(id, entry);
    const empty = page.total === 0 ? emptyRow : null;
    tbody.replaceChildren(...ordered, ...(empty ? [empty] : []), noMatchRow);
    showNoMatch(page);
    showPager(page);
    showSummary(page);
  }

  function filtered() {
    return Boolean(filter.value.trim() || stateSelect.value || attentionBox.checked);
  }

  // Filters that keep no gateway say so (instead of an empty table).
  function showNoMatch(page) {
    noMatchRow.hidden = !(page.total > 0 && page.matched === 0);
    if (noMatchRow.hidden) return;
    const text = filter.value.trim();
    noMatchText.textContent = text
      ? `No gateway matches “${text}” (id, model, vendor or firmware)${stateSelect.value || attentionBox.checked ? " with these filters" : ""}. `
      : "No gateway matches these filters. ";
    noMatchText.append(h("button", { type: "button", class: "button ghost small", onclick: () => clearFilter() }, "Clear the filter"));
  }

  function showPager(page) {
    const first = page.matched ? page.offset + 1 : 0;
    const end = page.offset + page.items.length;
    const of = filtered() ? `${page.matched.toLocaleString("en")} matching` : page.matched.toLocaleString("en");
    pageInfo.textContent = page.matched ? `${first.toLocaleString("en")}–${end.toLocaleString("en")} of ${of}` : "";
    previous.disabled = page.offset === 0;
    next.disabled = end >= page.matched;
    pager.hidden = page.matched <= PAGE_SIZE && page.offset === 0;
  }

  function showSummary(page) {
    const stat = (count, one, many, bad = false) =>
      h("span", { class: `stat${bad && count ? " stat-bad" : ""}` }, h("strong", {}, count.toLocaleString("en")), count === 1 ? one : many);
    const services = page.attention.services;
    fill(
      summary,
      stat(page.total, " gateway", " gateways"),
      stat(page.states.connected + page.states.unresponsive, " connected", " connected"),
      page.states.unresponsive ? stat(page.states.unresponsive, " unresponsive", " unresponsive", true) : null,
      stat(services, " service needs attention", " services need attention", true),
    );
  }

  function clearFilter() {
    filter.value = "";
    stateSelect.value = "";
    attentionBox.checked = false;
    changed();
    filter.focus();
  }

  function turn(direction) {
    view.offset = Math.max(0, view.offset + direction * PAGE_SIZE);
    refresh();
  }

  function changed() {
    view.offset = 0;
    refreshForControls();
  }

  // Changes of the controls (each keystroke in the filter) send one request at a
  // time: while one is on its way, later changes wait for it and are then asked for
  // together, as the controls are by then. Typing "b-199" fast at 50,000 gateways thus
  // costs the service two or three queries instead of five queued one behind another.
  const typing = { running: false, again: false };
  async function refreshForControls() {
    if (typing.running) {
      typing.again = true;
      return;
    }
    typing.running = true;
    try {
      do {
        typing.again = false;
        await refresh();
      } while (typing.again);
    } catch (error) {
      if (error.name !== "AuthRequired") console.warn("overview refresh", error);
    } finally {
      typing.running = false;
    }
  }

  function params() {
    const [, , sort, order] = SORTS.find(([value]) => value === sortSelect.value) || SORTS[0];
    return {
      q: filter.value.trim(),
      state: stateSelect.value,
      attention: attentionBox.checked ? "true" : "",
      sort: sort === "id" ? "" : sort,
      order: order === "asc" ? "" : order,
      offset: view.offset || "",
      limit: PAGE_SIZE,
    };
  }

  // One request per change. An answer is shown only if it is for what the controls
  // ask now (an answer to an older filter is dropped), and only if no newer answer was
  // shown already; a newer request for the same page never starves an older one (on a
  // busy service every live refresh could otherwise supersede the one before). A page
  // past the end (gateways removed meanwhile) falls back to the last page.
  async function refresh(live = false) {
    const url = `/api/fleet${query(params())}`;
    const number = ++requested;
    const page = await get(url);
    if (url !== `/api/fleet${query(params())}` || number < shown) return;
    shown = number;
    if (page.offset > 0 && page.items.length === 0 && page.matched > 0) {
      view.offset = Math.floor((page.matched - 1) / PAGE_SIZE) * PAGE_SIZE;
      await refresh(live);
      return;
    }
    show(page, live);
  }

  // Live events are coalesced: at most one refresh per REFRESH_GAP_MS, however many
  // events arrive, and never two at once.
  const live = { timer: null, running: false, dirty: false, at: 0 };
  function refreshSoon() {
    live.dirty = true;
    if (live.timer !== null || live.running) return;
    const wait = Math.max(0, live.at + REFRESH_GAP_MS - performance.now());
    live.timer = setTimeout(async () => {
      live.timer = null;
      live.dirty = false;
      live.running = true;
      live.at = performance.now();
      try {
        await refresh(true);
      } catch (error) {
        if (error.name !== "AuthRequired") console.warn("overview refresh", error);
      } finally {
        live.running = false;
        if (live.dirty) refreshSoon();
      }
    }, wait);
  }

  function onEvent(kind, data) {
    if (kind === "resync") {
      refresh().catch(() => {});
      return;
    }
    if (kind === "gateway" && data.change === "imported") {
      refreshSoon(); // one event for a whole import (thousands of gateways)
      return;
    }
    if (data.gatewayId === undefined) return;
    if (kind === "seen") {
      // Only the last-seen cell of a row on screen changes (unless sorted by it).
      const cell = rows.get(data.gatewayId)?.[0].querySelector('[data-col="last-seen"]');
      if (cell) fill(cell, agoNode(data.time));
      if (sortSelect.value === "seen") refreshSoon();
      return;
    }
    refreshSoon();
  }

  const timer = setInterval(() => refreshAgo(node), 5000);
  tbody.append(emptyRow);

  return {
    node,
    title: "Gateways",
    stream: { kinds: KINDS },
    load: () => refresh(),
    onEvent,
    dispose() {
      clearInterval(timer);
      clearTimeout(live.timer);
    },
  };
}
