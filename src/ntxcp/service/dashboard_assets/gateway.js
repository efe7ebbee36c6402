// A gateway's page (route "#/gateways/<id>"): boot info, services with history, meter
// values, commands, firmware and diagnostics, data transfers and the message log, live.

import { ApiError, gatewayPath, get, query, request } from "./api.js";
import { commandsCard } from "./commands.js";
import { agoNode, badge, definitions, fill, flash, formatTime, h, refreshAgo, table, timeNode, tone } from "./dom.js";
import { meterCard } from "./meters.js";
import { messageLog } from "./messages.js";
import { connectionBadge, naturalCompare, newer, registrationBadge, serviceChip } from "./overview.js";

const BOOT_FIELDS = [
  ["Model", "dingxGatewayModel"],
  ["Vendor", "dingxGatewayVendor"],
  ["Serial number", "dingxGatewaySerialNumber"],
  ["Firmware", "firmwareVersion"],
  ["ICCID", "iccid"],
  ["IMSI", "imsi"],
  ["Meter type", "meterType"],
  ["Meter serial number", "meterSerialNumber"],
];
const HISTORY = 50;

function serviceName(serviceId) {
  return serviceId === "0" ? "Gateway (0)" : `Service ${serviceId}`;
}

export function gatewayPage(ctx, gatewayId) {
  let gateway = null;
  let current = new Map(); // serviceId → status entry
  let history = [];
  let firmware = [];
  let diagnostics = [];
  let transfers = [];

  // --- header -----------------------------------------------------------------------
  const title = h("h1", { class: "mono" }, gatewayId);
  const headBadges = h("div", { class: "badges" });
  const meta = h("div", { class: "meta" });
  // Removal needs the admin role: other tokens do not see the button.
  const removeButton = h("button", { class: "button ghost danger-text", type: "button", hidden: !ctx.may("admin"), onclick: () => remove() }, "Remove gateway");
  const header = h(
    "div",
    { class: "page-head" },
    h("div", {}, h("a", { href: "#/", class: "back" }, "← All gateways"), h("div", { class: "title-line" }, title, headBadges), meta),
    h("div", { class: "head-actions" }, removeButton),
  );
  const banner = h("div", { class: "banner", hidden: true, role: "alert" });

  // --- cards ----------------------------------------------------------------------------
  const bootBody = h("div");
  const bootCard = h("section", { class: "card span-4", "aria-labelledby": "boot-title" }, h("h2", { id: "boot-title" }, "Boot information"), bootBody);
  const servicesNow = h("ul", { class: "services" });
  const historyBody = h("div", { class: "table-scroll short" });
  const servicesCard = h(
    "section",
    { class: "card span-8", "aria-labelledby": "services-title" },
    h("h2", { id: "services-title" }, "Services"),
    servicesNow,
    h("h3", {}, "Status history"),
    historyBody,
  );
  const firmwareNow = h("div", { class: "progress-now" });
  const firmwareBody = h("div", { class: "table-scroll short" });
  const diagnosticsNow = h("div", { class: "progress-now" });
  const diagnosticsBody = h("div", { class: "table-scroll short" });
  const transfersBody = h("div", { class: "table-scroll short" });
  const progressCard = h(
    "section",
    { class: "card span-5", "aria-labelledby": "progress-title" },
    h("h2", { id: "progress-title" }, "Firmware and diagnostics"),
    h(
      "div",
      { class: "two" },
      h("div", { "aria-labelledby": "firmware-title" }, h("h3", { id: "firmware-title" }, "Firmware"), firmwareNow, firmwareBody),
      h("div", { "aria-labelledby": "diagnostics-title" }, h("h3", { id: "diagnostics-title" }, "Diagnostics"), diagnosticsNow, diagnosticsBody),
    ),
    h("h3", {}, "Data transfers from the gateway"),
    transfersBody,
  );
  const meters = meterCard(ctx, gatewayId);
  const commands = commandsCard(ctx, gatewayId);
  const log = messageLog(ctx, gatewayId);
  const parts = [meters, commands, log];

  const grid = h("div", { class: "grid" }, bootCard, servicesCard, meters.node, commands.node, progressCard, log.node);
  const node = h(
    "section",
    { class: "view gateway", "aria-label": `Gateway ${gatewayId}` },
    header,
    banner,
    grid,
  );

  // --- rendering -----------------------------------------------------------------------
  function renderHeader() {
    if (!gateway) return;
    commands.setGateway(gateway);
    fill(headBadges, connectionBadge(gateway), registrationBadge(gateway));
    fill(meta, 
      h("span", {}, "Last seen ", agoNode(gateway.lastSeen)),
      h(
        "span",
        {},
        "Last boot ",
        h("time", { datetime: gateway.lastBootAt || "", title: gateway.lastBootAt || "", "data-field": "last-boot" }, gateway.lastBootAt ? formatTime(gateway.lastBootAt) : "never"),
      ),
      gateway.connected ? h("span", {}, "Connected since ", timeNode(gateway.connectedSince)) : null,
      gateway.remoteAddress ? h("span", {}, "From ", h("code", {}, gateway.remoteAddress), gateway.tls ? " (TLS)" : "") : null,
      h("span", {}, gateway.registered ? "Registered" : "Seen, not registered", gateway.hasPassword ? " · password set" : ""),
    );
  }

  function renderBoot() {
    const info = gateway?.bootInfo;
    if (!info) {
      fill(bootBody, h("p", { class: "muted" }, "No BootNotification received yet."));
      return;
    }
    fill(bootBody, 
      definitions([...BOOT_FIELDS.map(([label, key]) => [label, info[key] || null]), ["Booted", timeNode(gateway.lastBootAt, { alwaysDate: true })], ["First seen", timeNode(gateway.firstSeen, { alwaysDate: true })]]),
    );
  }

  function renderServices() {
    const entries = [...current.values()].sort((a, b) => naturalCompare(a.serviceId, b.serviceId));
    // A disconnected gateway's statuses are only the last ones it reported.
    const stale = Boolean(gateway) && !gateway.connected;
    fill(servicesNow, 
      ...(entries.length
        ? entries.map((entry) =>
            h(
              "li",
              { class: stale ? "service stale" : "service", "data-service": entry.serviceId },
              h("span", { class: "service-name" }, serviceName(entry.serviceId)),
              serviceChip(entry, stale),
              h(
                "span",
                { class: "service-meta" },
                entry.info ? h("span", {}, entry.info) : null,
                entry.vendorErrorCode ? h("span", {}, `vendor error ${entry.vendorErrorCode}`) : null,
                h("span", { class: "muted" }, stale ? "last known, reported " : "since ", timeNode(entry.timestamp || entry.receivedAt, { alwaysDate: stale })),
              ),
            ),
          )
        : [h("li", { class: "muted" }, "No StatusNotification received yet.")]),
    );
    fill(historyBody, 
      table(
        "Status history",
        [
          ["Time", (row) => timeNode(row.timestamp || row.receivedAt)],
          ["Service", (row) => serviceName(row.serviceId)],
          ["Status", (row) => badge(row.status)],
          ["Error code", (row) => (row.errorCode && row.errorCode !== "NoError" ? badge(row.errorCode, "bad") : h("span", { class: "muted" }, "NoError"))],
          ["Info", (row) => row.info || ""],
        ],
        history,
        { empty: "No status history." },
      ),
    );
  }

  function progressTable(caption, rows) {
    return table(caption, [["Time", (row) => timeNode(row.receivedAt)], ["Status", (row) => badge(row.status)]], rows, { empty: "No notifications yet." });
  }

  function renderProgress() {
    fill(firmwareNow, firmware.length ? badge(firmware[0].status, tone(firmware[0].status), { "data-current": "firmware" }) : badge("No status yet", "off"));
    fill(diagnosticsNow, diagnostics.length ? badge(diagnostics[0].status, tone(diagnostics[0].status), { "data-current": "diagnostics" }) : badge("No status yet", "off"));
    fill(firmwareBody, progressTable("Firmware status history", firmware));
    fill(diagnosticsBody, progressTable("Diagnostics status history", diagnostics));
    fill(transfersBody, 
      table(
        "Data transfers",
        [
          ["Time", (row) => timeNode(row.receivedAt)],
          ["Vendor", (row) => row.vendorId],
          ["Message", (row) => row.messageId || ""],
          ["Data", (row) => (row.data ? h("code", { class: "clip", title: row.data }, row.data) : "")],
        ],
        transfers,
        { empty: "No data transfers received." },
      ),
    );
  }

  function renderAll() {
    renderHeader();
    renderBoot();
    renderServices();
    renderProgress();
  }

  // No such gateway (yet, or any more): say so, offer no action on it, and wait for it
  // to appear (the view's stream carries this id's events, so one arriving reloads).
  let missing = false;
  function showGone(message) {
    gateway = null;
    missing = true;
    fill(banner, message, " This page updates when it appears. ", h("a", { href: "#/" }, "Back to all gateways"));
    banner.hidden = false;
    grid.hidden = true;
    removeButton.hidden = true;
    fill(headBadges);
    fill(meta);
  }

  // An event that arrives while a reload is on its way may describe what that reload's
  // answers already missed (a boot stored after the gateway was read): reload once more.
  let reloading = null;
  let reloadAgain = false;
  function reloadWhenItAppears() {
    if (reloading) {
      reloadAgain = true;
      return;
    }
    reloading = load()
      .catch(() => {})
      .finally(() => {
        reloading = null;
        if (reloadAgain) {
          reloadAgain = false;
          reloadWhenItAppears();
        }
      });
  }

  async function remove() {
    const ok = await ctx.confirm(
      `Remove gateway ${gatewayId} and everything stored about it? Its connection is closed. ${ctx.removalOutlook(gatewayId)}`,
      "Remove gateway",
    );
    if (!ok) return;
    const result = await request("DELETE", gatewayPath(gatewayId));
    if (result.status === 204) {
      ctx.toast(ctx.removedText(gatewayId), "ok");
      location.hash = "#/";
    } else {
      ctx.toast(result.data?.error || `HTTP ${result.status}`, "bad");
    }
  }

  async function load() {
    let data;
    try {
      data = await Promise.all([
        get(gatewayPath(gatewayId)),
        get(`${gatewayPath(gatewayId, "status")}${query({ history: HISTORY })}`),
        get(`${gatewayPath(gatewayId, "firmware-status")}${query({ limit: 20 })}`),
        get(`${gatewayPath(gatewayId, "diagnostics-status")}${query({ limit: 20 })}`),
        get(`${gatewayPath(gatewayId, "data-transfers")}${query({ limit: 20 })}`),
      ]);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        showGone(`There is no gateway ${gatewayId}.`);
        return;
      }
      throw error;
    }
    banner.hidden = true;
    grid.hidden = false;
    removeButton.hidden = !ctx.may("admin");
    missing = false;
    const [info, status, firmwareStatus, diagnosticsStatus, dataTransfers] = data;
    gateway = info;
    current = new Map(status.current.map((entry) => [entry.serviceId, entry]));
    history = status.history;
    firmware = firmwareStatus.history;
    diagnostics = diagnosticsStatus.history;
    transfers = dataTransfers.items;
    renderAll();
    await Promise.all(parts.map((part) => part.load()));
  }

  function onEvent(kind, data) {
    if (kind === "resync") {
      load().catch(() => {});
      return;
    }
    if (kind === "gateway" && data.change === "imported") {
      // One event for a whole import (no gatewayId): reload when this gateway is in it.
      if (data.gatewayIds.includes(gatewayId)) reloadWhenItAppears();
      return;
    }
    if (data.gatewayId !== gatewayId) return;
    if (missing) {
      if (kind !== "gateway" || data.change !== "removed") reloadWhenItAppears();
      return;
    }
    for (const part of parts) part.onEvent(kind, data);
    if (!gateway) return;
    if (kind === "connection") {
      gateway.state = data.state;
      // Unresponsive or answering again: the same connection, only its state changed.
      const sameConnection = data.connected && gateway.connected && !("remoteAddress" in data);
      gateway.connected = data.connected;
      if (!sameConnection) {
        gateway.lastSeen = data.at;
        gateway.connectedSince = data.connected ? data.at : null;
        if (data.connected) {
          gateway.firstSeen = gateway.firstSeen || data.at;
          gateway.remoteAddress = data.remoteAddress;
          gateway.tls = data.tls;
        }
      }
      renderHeader();
      renderServices();
      flash(headBadges);
    } else if (kind === "boot") {
      gateway.bootInfo = data.bootInfo;
      gateway.registrationStatus = data.registrationStatus;
      gateway.lastBootAt = data.lastBootAt;
      gateway.lastSeen = data.lastBootAt;
      renderHeader();
      renderBoot();
      flash(bootCard);
    } else if (kind === "status") {
      history = [data, ...history].slice(0, HISTORY);
      if (newer(current.get(data.serviceId), data)) current.set(data.serviceId, data);
      renderServices();
    } else if (kind === "firmware") {
      firmware = [data, ...firmware].slice(0, 20);
      renderProgress();
    } else if (kind === "diagnostics") {
      diagnostics = [data, ...diagnostics].slice(0, 20);
      renderProgress();
    } else if (kind === "data-transfer") {
      transfers = [data, ...transfers].slice(0, 20);
      renderProgress();
    } else if (kind === "seen") {
      gateway.lastSeen = data.time;
      renderHeader();
    } else if (kind === "gateway") {
      if (data.change === "removed") showGone(`Gateway ${gatewayId} was removed.`);
      else if (data.gateway) {
        gateway = { ...gateway, ...data.gateway };
        renderHeader();
      }
    }
  }

  const timer = setInterval(() => refreshAgo(node), 5000);

  return {
    node,
    title: `Gateway ${gatewayId}`,
    stream: { gateway: gatewayId },
    load,
    onEvent,
    dispose() {
      clearInterval(timer);
      for (const part of parts) part.dispose();
    },
  };
}
