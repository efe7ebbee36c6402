// The commands card of a gateway page: one form per C→G action, built from the action's
// request schema in /openapi.json, sent with POST /api/gateways/{id}/calls/{Action}.

import { gatewayPath, get, query, request } from "./api.js";
import { badge, definitions, fill, h, prettyJson, table, timeNode, uid, verdict } from "./dom.js";
import { SchemaForm } from "./forms.js";

const CALL_PATH = /^\/api\/gateways\/\{id\}\/calls\/([A-Za-z]+)$/;

/** The C→G actions the API offers, with their request and confirmation schemas. */
export function callableActions(doc) {
  const actions = [];
  for (const [path, item] of Object.entries(doc.paths || {})) {
    const match = CALL_PATH.exec(path);
    const post = item.post;
    if (!match || !post) continue;
    actions.push({
      action: match[1],
      summary: post.summary || "",
      request: post.requestBody?.content?.["application/json"]?.schema || { type: "object" },
      confirmation: post.responses?.["200"]?.content?.["application/json"]?.schema,
    });
  }
  return actions.sort((a, b) => a.action.localeCompare(b.action));
}

const OUTCOME_TONES = { ok: "ok", pending: "busy", callerror: "bad", timeout: "warn", disconnected: "warn", "not-connected": "off", "queue-full": "warn" };

// A command the gateway confirmed with a refusal status is "ok" on the wire but not done:
// the badge says so (refused, reboot required) in the refusal colours.
function outcomeBadge(row) {
  const meaning = row.outcome === "ok" ? verdict(row.response?.status) : null;
  if (meaning && meaning.tone !== "ok") return badge(meaning.outcome, meaning.tone, { title: `status ${row.response.status}` });
  return badge(row.outcome, OUTCOME_TONES[row.outcome] || "off");
}

function jsonDetails(summary, value) {
  return h("details", { class: "raw" }, h("summary", {}, summary), h("pre", { class: "json" }, JSON.stringify(value, null, 2)));
}

function tableBox(...args) {
  return h("div", { class: "table-scroll" }, table(...args));
}

// Readable views of some confirmations; every one also shows its raw JSON.
function confirmationBody(action, data) {
  const parts = [];
  if (action === "GetConfiguration") {
    const keys = data.configurationKey || [];
    parts.push(
      tableBox(
        "Configuration keys",
        [
          ["Key", (row) => h("code", {}, row.key)],
          ["Value", (row) => (row.value === undefined || row.value === null ? h("span", { class: "muted" }, "(no value)") : row.value)],
          ["Read-only", (row) => (row.readonly ? "yes" : "no")],
        ],
        keys,
        { empty: "The gateway returned no keys." },
      ),
    );
    if (data.unknownKey?.length) parts.push(h("p", { class: "muted" }, "Unknown keys: ", data.unknownKey.join(", ")));
  } else if (action === "CaptureProcess" && data.datapoints) {
    parts.push(
      tableBox(
        "Captured datapoints",
        [
          ["Datapoint", (row) => h("code", {}, row.datapointId)],
          ["Value", (row) => row.value],
          ["Unit", (row) => row.unit || ""],
          ["Time", (row) => timeNode(row.timestamp)],
        ],
        data.datapoints,
      ),
    );
    if (data.unknownDatapointIds?.length) {
      parts.push(h("p", { class: "muted" }, "Unknown datapoints: ", data.unknownDatapointIds.join(", ")));
    }
  } else if (action === "GetDiagnostics") {
    parts.push(h("p", {}, data.fileName ? ["File: ", h("code", {}, data.fileName)] : "The gateway has no diagnostics to upload."));
  } else if (action === "DataTransfer" && data.data !== undefined) {
    parts.push(h("pre", { class: "json" }, prettyJson(data.data)));
  } else {
    const other = Object.entries(data).filter(([key]) => key !== "status");
    if (other.length) parts.push(definitions(other.map(([key, value]) => [key, typeof value === "object" ? JSON.stringify(value) : String(value)])));
  }
  return parts;
}

export function commandsCard(ctx, gatewayId) {
  const actions = callableActions(ctx.openapi);
  const forms = new Map();
  const select = h(
    "select",
    { id: uid("action"), onchange: () => show(select.value) },
    actions.map(({ action }) => h("option", { value: action }, action)),
  );
  const description = h("p", { class: "muted description" });
  const formSlot = h("div", { class: "form-slot" });
  const preview = h("pre", { class: "json preview" });
  const submit = h("button", { class: "button", type: "submit" }, "Send");
  const result = h("div", { class: "result", role: "status", "aria-live": "polite" });
  const neverNote = h(
    "p",
    { class: "alert tone-off never-connected", hidden: true },
    "This gateway has never connected: commands can be sent once it has.",
  );
  const fields = h(
    "fieldset",
    { class: "plain" },
    formSlot,
    h("details", { class: "raw" }, h("summary", {}, "Request payload"), preview),
    h("div", { class: "form-actions" }, submit),
  );
  const form = h("form", { class: "command-form", novalidate: true, onsubmit: (event) => send(event) }, neverNote, fields);
  const historyBody = h("div", { class: "history table-scroll" });
  // Sending needs the operator role: a read-only token sees the recent commands only.
  const maySend = ctx.may("operator");
  const node = h(
    "section",
    { class: "card span-7", "aria-labelledby": "commands-title" },
    h("h2", { id: "commands-title" }, "Commands"),
    maySend
      ? [h("div", { class: "field" }, h("label", { for: select.id }, "Action"), select), description, form, result]
      : h("p", { class: "muted read-only-note" }, `The token ${ctx.who?.name ?? ""} is read-only: it cannot send commands.`),
    h("h3", {}, "Recent commands"),
    historyBody,
  );
  let currentAction = null;

  function formFor(action) {
    if (!forms.has(action)) {
      const spec = actions.find((one) => one.action === action);
      const built = new SchemaForm(ctx.openapi, spec.request, { onChange: () => updatePreview() });
      forms.set(action, built);
    }
    return forms.get(action);
  }

  function updatePreview() {
    if (currentAction) preview.textContent = JSON.stringify(formFor(currentAction).value(), null, 2);
  }

  function show(action) {
    currentAction = action;
    const built = formFor(action);
    fill(formSlot, built.node);
    description.textContent = built.description;
    form.setAttribute("aria-label", `${action} request`);
    submit.textContent = `Send ${action}`;
    fill(result);
    updatePreview();
  }

  // A gateway that never connected cannot be reached (and may never be): no sending.
  function setGateway(gateway) {
    const never = Boolean(gateway) && !gateway.connected && !gateway.firstSeen;
    fields.disabled = never;
    neverNote.hidden = !never;
  }

  async function send(event) {
    event.preventDefault();
    if (fields.disabled) return;
    const action = currentAction;
    const built = formFor(action);
    built.clearErrors();
    const payload = built.value();
    submit.disabled = true;
    fill(result, h("p", { class: "muted" }, `Sending ${action}…`));
    try {
      const answer = await request("POST", gatewayPath(gatewayId, "calls", action), payload);
      renderResult(action, built, answer);
    } catch (error) {
      if (error.name !== "AuthRequired") {
        fill(result, h("div", { class: "alert tone-bad" }, `Could not send ${action}: ${error.message}`));
      }
    } finally {
      submit.disabled = false;
      loadHistory().catch(() => {});
    }
  }

  function renderResult(action, built, answer) {
    const data = answer.data || {};
    if (answer.status === 200) {
      const meaning = verdict(data.status);
      const refused = meaning !== null && meaning.tone !== "ok";
      fill(result,
        h(
          "div",
          { class: `alert tone-${meaning ? meaning.tone : "ok"}`, "data-outcome": refused ? meaning.outcome : "ok" },
          h("strong", {}, refused ? `${action} ${meaning.words}` : `${action} confirmed`),
          data.status ? [" — status ", badge(data.status, meaning.tone)] : null,
        ),
        ...confirmationBody(action, data),
        jsonDetails("Confirmation JSON", data),
      );
      return;
    }
    if (answer.status === 422) {
      // Every invalid field is reported at once; each message goes next to its field.
      const problems = Array.isArray(data.errors) && data.errors.length ? data.errors : [{ path: data.path || "", code: data.code, message: data.error || "invalid" }];
      let focused = false;
      const unplaced = problems.filter((problem) => {
        const placed = built.showError(problem.path || "", problem.message, { focus: !focused });
        focused ||= placed;
        return !placed;
      });
      const count = problems.length;
      fill(result,
        h(
          "div",
          { class: "alert tone-bad", "data-outcome": "invalid" },
          h("strong", {}, count === 1 ? `Not sent: ${problems[0].code || "invalid request"}` : `Not sent: ${count} fields are invalid`),
          unplaced.length === 0
            ? count === 1
              ? ` — see the field ${problems[0].path}.`
              : " — see the fields marked below."
            : h(
                "ul",
                { class: "problems" },
                unplaced.map((problem) => h("li", {}, problem.path ? [h("code", {}, problem.path), ": "] : null, problem.message)),
              ),
        ),
      );
      return;
    }
    if (answer.status === 502 && data.code) {
      fill(result, 
        h(
          "div",
          { class: "alert tone-bad", "data-outcome": "callerror" },
          h("strong", {}, `The gateway answered CALLERROR ${data.code}`),
          data.description ? ` — ${data.description}` : "",
        ),
        data.details && Object.keys(data.details).length ? jsonDetails("Error details", data.details) : null,
      );
      return;
    }
    fill(result, 
      h(
        "div",
        { class: "alert tone-bad", "data-outcome": "error" },
        h("strong", {}, `${action} failed (HTTP ${answer.status})`),
        data.error ? ` — ${data.error}` : "",
      ),
    );
  }

  async function loadHistory() {
    const data = await get(`/api/commands${query({ gateway: gatewayId, limit: 8 })}`);
    fill(historyBody, 
      table(
        "Recent commands",
        [
          ["Sent", (row) => timeNode(row.sentAt)],
          ["Action", (row) => row.action],
          ["Outcome", (row) => outcomeBadge(row)],
          ["Took", (row) => (row.durationMs === null ? "—" : `${Math.round(row.durationMs)} ms`)],
          ["Sent by", (row) => row.tokenName ?? "—"],
          [
            "Details",
            (row) =>
              jsonDetails("JSON", {
                request: row.request,
                ...(row.response ? { response: row.response } : {}),
                ...(row.error ? { error: row.error } : {}),
              }),
          ],
        ],
        data.items,
        { empty: "No commands sent to this gateway yet." },
      ),
    );
  }

  if (actions.length) show(actions.some((one) => one.action === "ChangeConfiguration") ? "ChangeConfiguration" : actions[0].action);
  select.value = currentAction || "";

  return {
    node,
    load: loadHistory,
    setGateway,
    onEvent() {},
    dispose() {},
  };
}
