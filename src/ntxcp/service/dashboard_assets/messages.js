// The message log card of a gateway page: frames in and out (the service's frame log),
// filterable by action and direction, new frames added live, raw JSON one click away.

import { gatewayPath, get, query } from "./api.js";
import { fill, h, prettyJson, timeNode, uid } from "./dom.js";

const LIMIT = 100;

/** The actions the frame log can be filtered by (from /openapi.json). */
export function loggedActions(doc) {
  const parameters = doc.paths?.["/api/gateways/{id}/messages"]?.get?.parameters || [];
  return parameters.find((parameter) => parameter.name === "action")?.schema?.enum || [];
}

export function messageLog(ctx, gatewayId) {
  const actionSelect = h(
    "select",
    { id: uid("log-action"), onchange: () => load().catch(() => {}) },
    h("option", { value: "" }, "All actions"),
    loggedActions(ctx.openapi).map((action) => h("option", { value: action }, action)),
  );
  const directionSelect = h(
    "select",
    { id: uid("log-direction"), onchange: () => load().catch(() => {}) },
    h("option", { value: "" }, "In and out"),
    h("option", { value: "in" }, "In (from the gateway)"),
    h("option", { value: "out" }, "Out (to the gateway)"),
  );
  // While the operator reads an opened raw frame, live frames are held back (so the rows
  // do not move under the reader) and counted; closing it, or the button, shows them.
  let held = [];
  const heldNote = h("p", { class: "note held", hidden: true, role: "status" });
  const showHeld = h("button", { type: "button", class: "button ghost small", onclick: () => releaseHeld() }, "Show them");
  const follow = h("input", { type: "checkbox", id: uid("follow"), checked: true });
  const tbody = h("tbody");
  const columns = ["Time", "Direction", "Type", "Action", "Unique id", "Raw"];
  const node = h(
    "section",
    { class: "card span-12", "aria-labelledby": "log-title" },
    h(
      "div",
      { class: "card-head" },
      h("h2", { id: "log-title" }, "Message log"),
      h(
        "div",
        { class: "controls" },
        h("div", { class: "field inline-field" }, h("label", { for: actionSelect.id }, "Action filter"), actionSelect),
        h("div", { class: "field inline-field" }, h("label", { for: directionSelect.id }, "Direction"), directionSelect),
        h("div", { class: "field inline-field check" }, follow, h("label", { for: follow.id }, "Follow live")),
      ),
    ),
    h(
      "div",
      { class: "table-scroll log-scroll" },
      h(
        "table",
        { class: "table log" },
        h("caption", { class: "sr-only" }, "Message log"),
        h("thead", {}, h("tr", {}, columns.map((title) => h("th", { scope: "col" }, title)))),
        tbody,
      ),
    ),
    heldNote, // below the log: showing it moves no row of the log
  );

  function frameRow(frame) {
    const rawRow = h(
      "tr",
      { class: "raw-row", hidden: true },
      h(
        "td",
        { colspan: columns.length },
        frame.raw === null || frame.raw === undefined
          ? h("p", { class: "muted" }, "This frame is too large for the live view; reload the log to see it.")
          : h("pre", { class: "json" }, prettyJson(frame.raw)),
      ),
    );
    const toggle = h(
      "button",
      {
        type: "button",
        class: "button ghost small",
        "aria-expanded": "false",
        "aria-label": `Raw JSON of ${frame.messageType || "frame"} ${frame.action || ""} ${frame.uniqueId || ""}`.trim(),
        onclick: () => {
          rawRow.hidden = !rawRow.hidden;
          toggle.setAttribute("aria-expanded", String(!rawRow.hidden));
          toggle.textContent = rawRow.hidden ? "Raw JSON" : "Hide";
          if (rawRow.hidden) releaseHeld();
          else updateHeld();
        },
      },
      "Raw JSON",
    );
    const direction = frame.direction === "in" ? "in ←" : "out →";
    const row = h(
      "tr",
      { class: `frame dir-${frame.direction} type-${(frame.messageType || "invalid").toLowerCase()}`, "data-action": frame.action || "" },
      h("td", {}, timeNode(frame.time)),
      h("td", { class: "direction", title: frame.direction === "in" ? "from the gateway" : "to the gateway" }, direction),
      h("td", {}, frame.messageType || "invalid"),
      h("td", {}, frame.action || h("span", { class: "muted" }, "—")),
      h("td", { class: "mono" }, frame.uniqueId || ""),
      h("td", {}, toggle),
    );
    return [row, rawRow];
  }

  function emptyText() {
    return actionSelect.value || directionSelect.value ? "No frames match the filter." : "No frames logged yet.";
  }

  function render(frames) {
    held = [];
    updateHeld();
    fill(tbody);
    if (!frames.length) {
      tbody.append(h("tr", { class: "empty" }, h("td", { colspan: columns.length }, emptyText())));
      return;
    }
    for (const frame of frames) tbody.append(...frameRow(frame));
  }


  function reading() {
    return tbody.querySelector("tr.raw-row:not([hidden])") !== null;
  }

  function updateHeld() {
    if (!held.length) {
      heldNote.hidden = true;
      return;
    }
    fill(heldNote, `${held.length} new frame${held.length === 1 ? "" : "s"} held while a raw frame is open. `, showHeld);
    heldNote.hidden = false;
  }

  function releaseHeld() {
    const frames = held;
    held = [];
    for (const frame of frames) prepend(frame);
    updateHeld();
  }

  function prepend(frame) {
    tbody.querySelector("tr.empty")?.remove();
    const [row, rawRow] = frameRow(frame);
    tbody.prepend(row, rawRow);
    row.classList.add("flash");
    while (tbody.querySelectorAll("tr.frame").length > LIMIT) {
      tbody.lastElementChild?.remove(); // the raw row
      tbody.lastElementChild?.remove(); // its frame row
    }
  }

  async function load() {
    const data = await get(
      `${gatewayPath(gatewayId, "messages")}${query({ action: actionSelect.value, direction: directionSelect.value, limit: LIMIT })}`,
    );
    render(data.items);
  }

  function onEvent(kind, frame) {
    if (kind !== "frame" || !follow.checked) return;
    if (actionSelect.value && frame.action !== actionSelect.value) return;
    if (directionSelect.value && frame.direction !== directionSelect.value) return;
    if (reading()) {
      held.push(frame);
      if (held.length > LIMIT) held.shift();
      updateHeld();
      return;
    }
    prepend(frame);
  }

  return { node, load, onEvent, dispose() {} };
}
