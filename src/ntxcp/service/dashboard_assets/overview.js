// The gateways overview (route "#/"): every gateway, live, and gateway registration.

import { ApiError, gatewayPath, get, getAll, request } from "./api.js";
import { agoNode, badge, fill, flash, formatTime, gatewayHref, h, refreshAgo, tone, uid } from "./dom.js";

const KINDS = "gateway,connection,boot,status,seen";
const COLUMNS = ["Gateway", "Connection", "Registration", "Model", "Firmware", "Last seen", "Services", "Actions"];

/** Natural order of ids: "LOAD-2" before "LOAD-10" (as people count). */
export const naturalCompare = new Intl.Collator("en", { numeric: true }).compare;

/** Does a current status need the operator (a fault or an error code)? */
export function needsAttention(entry) {
  return entry.status === "Faulted" || Boolean(entry.errorCode && entry.errorCode !== "NoError");
}

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
  if (gateway.connected) return badge("Connected", "ok", { "data-connection": "connected" });
  if (!gateway.firstSeen) return badge("Never connected", "off", { "data-connection": "never" });
  return badge("Disconnected", "off", { "data-connection": "disconnected" });
}

export function registrationBadge(gateway) {
  if (gateway.registrationStatus) return badge(gateway.registrationStatus);
  return badge(gateway.registered ? "Not booted" : "Unknown", "off");
}

export function overview(ctx) {
  const gateways = new Map(); // id → gateway (as /api/gateways returns it)
  const statuses = new Map(); // id → Map(serviceId → status entry)
  const rows = new Map(); // id → <tr>
  const fetching = new Map();

  const filter = h("input", {
    type: "search",
    id: uid("filter"),
    placeholder: "id, model, vendor, firmware…",
    oninput: () => applyFilter(),
  });
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
      h("div", { class: "field filter" }, h("label", { for: filter.id }, "Filter gateways"), filter),
    ),
    h("div", { class: "card flush" }, h("div", { class: "table-scroll" }, gatewayTable)),
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
        upsert(result.data, true);
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
      `Remove gateway ${id}? Everything stored about it (statuses, meter values, message log, commands) is deleted. A gateway that connects again later is seen anew.`,
      "Remove gateway",
    );
    if (!ok) return;
    try {
      const result = await request("DELETE", gatewayPath(id));
      if (result.status === 204 || result.status === 404) {
        drop(id);
        ctx.toast(`Gateway ${id} removed.`, "ok");
      } else {
        ctx.toast(result.data?.error || `Could not remove ${id} (HTTP ${result.status}).`, "bad");
      }
    } catch (error) {
      if (error.name !== "AuthRequired") ctx.toast(`Could not remove ${id}: ${error.message}`, "bad");
    }
  }

  // --- rows -----------------------------------------------------------------------
  function renderRow(gateway) {
    const boot = gateway.bootInfo || {};
    const services = [...(statuses.get(gateway.id)?.values() || [])].sort((a, b) => naturalCompare(a.serviceId, b.serviceId));
    const stale = !gateway.connected;
    const attention = !stale && services.some(needsAttention);
    const asOf = stale ? lastReported(services) : null;
    return h(
      "tr",
      { "data-gateway": gateway.id, class: attention ? "attention" : null },
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
        boot.dingxGatewayModel || h("span", { class: "muted" }, "—"),
        boot.dingxGatewayVendor ? h("div", { class: "sub" }, boot.dingxGatewayVendor) : null,
      ),
      h("td", { "data-col": "firmware", "data-label": "Firmware" }, boot.firmwareVersion || h("span", { class: "muted" }, "—")),
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

  function place(id, row) {
    const old = rows.get(id);
    rows.set(id, row);
    if (old) {
      old.replaceWith(row);
      return;
    }
    emptyRow.remove();
    let after = null;
    for (const other of rows.keys()) {
      if (other !== id && naturalCompare(other, id) > 0 && (after === null || naturalCompare(other, after) < 0)) after = other;
    }
    const next = after === null ? null : rows.get(after);
    if (next && next.parentNode === tbody) tbody.insertBefore(row, next);
    else tbody.append(row);
  }

  function update(id, live) {
    const gateway = gateways.get(id);
    if (!gateway) return;
    const row = renderRow(gateway);
    place(id, row);
    matches(row, gateway);
    showNoMatch();
    if (live) flash(row);
    updateSummary();
  }

  function upsert(gateway, live) {
    gateways.set(gateway.id, { ...(gateways.get(gateway.id) || {}), ...gateway });
    update(gateway.id, live);
  }

  function drop(id) {
    gateways.delete(id);
    statuses.delete(id);
    rows.get(id)?.remove();
    rows.delete(id);
    if (!rows.size) tbody.append(emptyRow);
    showNoMatch();
    updateSummary();
  }

  function matches(row, gateway) {
    const text = filter.value.trim().toLowerCase();
    const boot = gateway.bootInfo || {};
    const haystack = [gateway.id, boot.dingxGatewayModel, boot.dingxGatewayVendor, boot.firmwareVersion]
      .filter(Boolean)
      .join(" ")
      .toLowerCase();
    row.hidden = Boolean(text) && !haystack.includes(text);
  }

  function applyFilter() {
    for (const [id, row] of rows) matches(row, gateways.get(id));
    showNoMatch();
  }

  // A filter that hides every row says so (instead of an empty table).
  function showNoMatch() {
    const text = filter.value.trim();
    let visible = false;
    if (text) {
      for (const row of rows.values()) {
        if (!row.hidden) {
          visible = true;
          break;
        }
      }
    }
    noMatchRow.hidden = !text || visible || rows.size === 0;
    if (!noMatchRow.hidden) {
      noMatchText.textContent = `No gateway matches “${text}” (id, model, vendor or firmware). `;
      noMatchText.append(h("button", { type: "button", class: "button ghost small", onclick: () => clearFilter() }, "Clear the filter"));
    }
    if (noMatchRow.parentNode !== tbody || noMatchRow !== tbody.lastElementChild) tbody.append(noMatchRow);
  }

  function clearFilter() {
    filter.value = "";
    applyFilter();
    filter.focus();
  }

  function updateSummary() {
    const all = [...gateways.values()];
    const connected = all.filter((gateway) => gateway.connected).length;
    // Only connected gateways' statuses are current; a disconnected one's are last-known.
    let attention = 0;
    for (const [id, services] of statuses) {
      if (!gateways.get(id)?.connected) continue;
      for (const entry of services.values()) if (needsAttention(entry)) attention += 1;
    }
    fill(summary, 
      h("span", { class: "stat" }, h("strong", {}, String(all.length)), all.length === 1 ? " gateway" : " gateways"),
      h("span", { class: "stat" }, h("strong", {}, String(connected)), " connected"),
      h(
        "span",
        { class: `stat${attention ? " stat-bad" : ""}` },
        h("strong", {}, String(attention)),
        attention === 1 ? " service needs attention" : " services need attention",
      ),
    );
  }

  // A gateway the page does not know yet (it just connected for the first time).
  // Events that arrive while its fetch is under way may be newer than the answer, so
  // such a fetch is repeated once it ends (fetching maps id -> "events came meanwhile").
  async function fetchGateway(id) {
    if (fetching.has(id)) {
      fetching.set(id, true);
      return;
    }
    fetching.set(id, false);
    try {
      const [gateway, status] = await Promise.all([get(gatewayPath(id)), get(`${gatewayPath(id, "status")}?history=0`)]);
      statuses.set(id, new Map(status.current.map((entry) => [entry.serviceId, entry])));
      upsert(gateway, true);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) console.warn("gateway", id, error);
    } finally {
      const again = fetching.get(id);
      fetching.delete(id);
      if (again) fetchGateway(id);
    }
  }

  async function load() {
    // Both lists are paged: read every page (a page holds at most 500 gateways).
    const [list, current] = await Promise.all([getAll("/api/gateways"), getAll("/api/status")]);
    gateways.clear();
    statuses.clear();
    for (const entry of current) {
      if (!statuses.has(entry.gatewayId)) statuses.set(entry.gatewayId, new Map());
      statuses.get(entry.gatewayId).set(entry.serviceId, entry);
    }
    for (const row of rows.values()) row.remove();
    rows.clear();
    for (const gateway of list) gateways.set(gateway.id, gateway);
    if (list.length) emptyRow.remove();
    else fill(tbody, emptyRow);
    // In natural order, each row goes at the end (no search for its place).
    for (const gateway of [...list].sort((a, b) => naturalCompare(a.id, b.id))) {
      const row = renderRow(gateway);
      rows.set(gateway.id, row);
      tbody.append(row);
      matches(row, gateway);
    }
    showNoMatch();
    updateSummary();
  }

  function onEvent(kind, data) {
    const id = data.gatewayId;
    if (kind === "resync") {
      load().catch(() => {});
      return;
    }
    if (kind === "gateway" && data.change === "imported") {
      // One event for a whole import (thousands of gateways): read the lists again.
      load().catch(() => {});
      return;
    }
    if (id === undefined) return;
    if (kind === "gateway") {
      if (data.change === "removed") drop(id);
      else if (data.gateway) upsert(data.gateway, true);
      return;
    }
    const gateway = gateways.get(id);
    if (!gateway) {
      fetchGateway(id);
      return;
    }
    if (kind === "connection") {
      gateway.connected = data.connected;
      gateway.lastSeen = data.at;
      if (data.connected) {
        gateway.connectedSince = data.at;
        gateway.firstSeen = gateway.firstSeen || data.at;
        gateway.remoteAddress = data.remoteAddress;
        gateway.tls = data.tls;
      } else {
        gateway.connectedSince = null;
      }
      update(id, true);
    } else if (kind === "boot") {
      gateway.bootInfo = data.bootInfo;
      gateway.registrationStatus = data.registrationStatus;
      gateway.lastBootAt = data.lastBootAt;
      gateway.lastSeen = data.lastBootAt;
      update(id, true);
    } else if (kind === "status") {
      if (!statuses.has(id)) statuses.set(id, new Map());
      const services = statuses.get(id);
      if (newer(services.get(data.serviceId), data)) {
        services.set(data.serviceId, data);
        update(id, true);
      }
    } else if (kind === "seen") {
      gateway.lastSeen = data.time;
      const cell = rows.get(id)?.querySelector('[data-col="last-seen"]');
      if (cell) fill(cell, agoNode(data.time));
    }
  }

  const timer = setInterval(() => refreshAgo(node), 5000);
  tbody.append(emptyRow);
  updateSummary();

  return {
    node,
    title: "Gateways",
    stream: { kinds: KINDS },
    load,
    onEvent,
    dispose() {
      clearInterval(timer);
    },
  };
}
