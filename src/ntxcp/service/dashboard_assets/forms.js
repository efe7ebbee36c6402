// Forms built at run time from JSON Schemas (the message schemas of /openapi.json).
//
// enum → select, string → text input (textarea without maxLength), integer/number →
// number input, boolean → select, date-time → 24-hour local text input sent as RFC 3339 UTC,
// array → repeatable inputs, object → a group of fields. Constraints are shown as hints
// but never block a submission: the service validates (spec §4) and its 422 answer names
// the field by its JSON path, which showError() puts next to that field.

import { h, uid } from "./dom.js";

/** Follow $ref pointers ("#/components/schemas/X") inside doc; sibling keywords win. */
export function resolve(doc, schema) {
  let node = schema || {};
  const seen = new Set();
  while (node && typeof node.$ref === "string") {
    const ref = node.$ref;
    if (seen.has(ref)) throw new Error(`circular reference ${ref}`);
    seen.add(ref);
    let target = doc;
    for (const part of ref.replace(/^#\//, "").split("/")) {
      target = target?.[part.replace(/~1/g, "/").replace(/~0/g, "~")];
    }
    if (!target) throw new Error(`unresolvable reference ${ref}`);
    const { $ref: _ignored, ...siblings } = node;
    node = { ...target, ...siblings };
  }
  return node;
}

// An optional field is often "anyOf: [X, {type: null}]": return X and whether null is allowed.
function unwrap(doc, schema) {
  let node = resolve(doc, schema);
  let nullable = false;
  const alternatives = node.anyOf || node.oneOf;
  if (Array.isArray(alternatives)) {
    const rest = alternatives.filter((alt) => resolve(doc, alt).type !== "null");
    nullable = rest.length < alternatives.length;
    if (rest.length === 1) {
      const { anyOf: _a, oneOf: _o, ...outer } = node;
      node = { ...resolve(doc, rest[0]), ...outer };
    }
  }
  if (Array.isArray(node.type) && node.type.includes("null")) {
    nullable = true;
    const types = node.type.filter((type) => type !== "null");
    node = { ...node, type: types.length === 1 ? types[0] : types };
  }
  return { node, nullable };
}

const LOCAL_DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?$/;

/** A 24-hour local date and time ("2026-11-23 18:36:34", "T" also allowed), or null. */
export function parseLocalDateTime(text) {
  const match = LOCAL_DATE_TIME.exec(text);
  if (!match) return null;
  const [year, month, day, hour, minute, second] = match.slice(1).map((part) => Number(part || 0));
  const date = new Date(year, month - 1, day, hour, minute, second);
  const same =
    date.getFullYear() === year && date.getMonth() === month - 1 && date.getDate() === day && date.getHours() === hour && date.getMinutes() === minute;
  return same ? date : null; // rejects 2026-02-30 and 24:00 instead of rolling them over
}

/** A date as 24-hour local text, to the second: "2026-11-23 18:36:34". */
export function formatLocalDateTime(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

function kindOf(node) {
  if (Array.isArray(node.enum)) return "enum";
  if ("const" in node) return "enum";
  if (node.type === "string") return node.format === "date-time" ? "datetime" : "string";
  if (["integer", "number", "boolean", "array", "object"].includes(node.type)) return node.type;
  return "json";
}

function constraintHint(node, kind) {
  const parts = [];
  if (kind === "string") {
    if (node.format === "uri") parts.push("an absolute URI, e.g. https://host/path");
    if (node.minLength) parts.push(`at least ${node.minLength} characters`);
  }
  if (kind === "datetime") parts.push("local time, 24-hour (YYYY-MM-DD HH:MM:SS), sent as UTC (RFC 3339)");
  if (kind === "integer" || kind === "number") {
    if (kind === "integer") parts.push("whole number");
    if (node.minimum !== undefined) parts.push(`≥ ${node.minimum}`);
    if (node.maximum !== undefined) parts.push(`≤ ${node.maximum}`);
  }
  if (kind === "array") {
    const min = node.minItems || 0;
    const max = node.maxItems;
    if (min && max) parts.push(`${min}–${max} items`);
    else if (min) parts.push(`at least ${min} item${min > 1 ? "s" : ""}`);
    else if (max) parts.push(`at most ${max} items`);
    if (node.uniqueItems) parts.push("no duplicates");
  }
  return parts.join(", ");
}

// Does an error path (e.g. "key[1]", "meterValue[0].sampledValue") start with name?
function splitPath(path, name) {
  if (path === name) return "";
  if (path.startsWith(`${name}[`) || path.startsWith(`${name}.`)) {
    const rest = path.slice(name.length);
    return rest.startsWith(".") ? rest.slice(1) : rest;
  }
  return null;
}

/** One input of a form: read() → {present, value}; find(path) → the field to blame. */
class Field {
  constructor({ name, label, required, node, kind, wrapper, control, error }) {
    Object.assign(this, { name, label, required, node, kind, wrapper, control, error });
  }

  setError(message) {
    this.error.textContent = message;
    this.error.hidden = false;
    this.wrapper.classList.add("invalid");
    if (this.control) this.control.setAttribute("aria-invalid", "true");
  }

  clearError() {
    this.error.textContent = "";
    this.error.hidden = true;
    this.wrapper.classList.remove("invalid");
    if (this.control) this.control.removeAttribute("aria-invalid");
    for (const child of this.children || []) child.clearError();
  }

  find(path) {
    return path === "" ? this : null;
  }

  focus() {
    (this.control || this.wrapper.querySelector("input, select, textarea, button"))?.focus();
  }
}

function errorNode() {
  return h("p", { class: "field-error", id: uid("error"), role: "alert", hidden: true });
}

// The label is the wire name alone; "required" is told by aria-required on the input.
function labelNode(forId, label, required) {
  return h(
    "div",
    { class: "label-line" },
    h("label", { for: forId, class: "field-name" }, label),
    required ? h("span", { class: "required", "aria-hidden": "true", title: "required" }, "*") : null,
  );
}

function scalarField(doc, node, kind, { name, label, required, onChange }) {
  const id = uid("field");
  const error = errorNode();
  const hintId = uid("hint");
  const hintText = [node.description, constraintHint(node, kind)].filter(Boolean).join(" — ");
  const hint = h("small", { class: "hint", id: hintId }, hintText);
  const describedBy = `${hintId} ${error.id}`;
  const common = {
    id,
    name,
    "aria-describedby": describedBy,
    "aria-required": required ? "true" : null,
    oninput: onChange,
    onchange: onChange,
  };
  let control;
  let read;
  let extra = null;
  if (kind === "enum") {
    const values = Array.isArray(node.enum) ? node.enum : [node.const];
    control = h(
      "select",
      common,
      h("option", { value: "" }, required ? "— choose —" : "— not set —"),
      values.map((value) => h("option", { value: String(value) }, String(value))),
    );
    read = () => {
      if (control.value === "") return { present: false };
      const value = values.find((candidate) => String(candidate) === control.value);
      return { present: true, value };
    };
  } else if (kind === "boolean") {
    control = h(
      "select",
      common,
      h("option", { value: "" }, required ? "— choose —" : "— not set —"),
      h("option", { value: "true" }, "true"),
      h("option", { value: "false" }, "false"),
    );
    read = () => (control.value === "" ? { present: false } : { present: true, value: control.value === "true" });
  } else if (kind === "integer" || kind === "number") {
    control = h("input", {
      ...common,
      type: "number",
      step: kind === "integer" ? "1" : "any",
      min: node.minimum,
      max: node.maximum,
      inputmode: kind === "integer" ? "numeric" : "decimal",
    });
    read = () => {
      const text = control.value.trim();
      if (text === "") return { present: false };
      const value = Number(text);
      return { present: true, value: Number.isNaN(value) ? text : value };
    };
  } else if (kind === "datetime") {
    // A text input in 24-hour local time ("2026-11-23 18:36:34"): a datetime-local input
    // shows a 12-hour clock in some browser locales, while the page is 24-hour throughout.
    control = h("input", {
      ...common,
      type: "text",
      inputmode: "numeric",
      placeholder: "YYYY-MM-DD HH:MM:SS",
      autocomplete: "off",
      spellcheck: "false",
      "data-kind": "datetime",
    });
    const utc = h("output", { class: "utc", for: id, "aria-live": "polite" });
    const toUtc = () => {
      const text = control.value.trim();
      if (!text) return null;
      const date = parseLocalDateTime(text);
      return date === null ? text : date.toISOString(); // not a date: the service says why
    };
    const show = () => {
      const text = control.value.trim();
      const value = toUtc();
      if (!text) utc.textContent = "";
      else if (value === text) utc.textContent = "not a date and time: write it as 2026-11-23 18:36:34";
      else utc.textContent = `sent as ${value}`;
    };
    control.addEventListener("input", show);
    control.addEventListener("change", show);
    const now = h(
      "button",
      {
        type: "button",
        class: "button ghost small",
        "aria-label": `Set ${label} to now`,
        onclick: () => {
          control.value = formatLocalDateTime(new Date());
          show();
          onChange();
        },
      },
      "Now",
    );
    extra = h("span", { class: "inline" }, now, utc);
    read = () => {
      const value = toUtc();
      return value === null ? { present: false } : { present: true, value };
    };
  } else if (kind === "string") {
    const long = node.maxLength === undefined;
    control = long
      ? h("textarea", { ...common, rows: "3" })
      : h("input", { ...common, type: "text", autocomplete: "off", spellcheck: "false" });
    if (node.format === "uri") control.setAttribute("inputmode", "url");
    if (node.maxLength !== undefined) {
      const counter = h("span", { class: "counter", "aria-hidden": "true" }, `0/${node.maxLength}`);
      const update = () => {
        const length = [...control.value].length;
        counter.textContent = `${length}/${node.maxLength}`;
        counter.classList.toggle("over", length > node.maxLength);
      };
      control.addEventListener("input", update);
      extra = counter;
    }
    read = () => (control.value === "" ? { present: false } : { present: true, value: control.value });
  } else {
    control = h("textarea", { ...common, rows: "3", placeholder: "JSON" });
    read = () => {
      const text = control.value.trim();
      if (text === "") return { present: false };
      try {
        return { present: true, value: JSON.parse(text) };
      } catch {
        return { present: true, value: text };
      }
    };
  }
  const wrapper = h(
    "div",
    { class: `field kind-${kind}` },
    labelNode(id, label, required),
    h("div", { class: "control" }, control, extra),
    hintText ? hint : null,
    error,
  );
  const field = new Field({ name, label, required, node, kind, wrapper, control, error });
  field.read = read;
  return field;
}

function arrayField(doc, node, { name, label, required, onChange }) {
  const error = errorNode();
  const list = h("ol", { class: "items" });
  const items = [];
  const itemSchema = node.items || {};
  const wrapper = h("fieldset", { class: "field kind-array", "aria-describedby": error.id });
  const field = new Field({ name, label, required, node, kind: "array", wrapper, control: null, error });
  let sent = [];

  const relabel = () => {
    items.forEach((item, index) => {
      const text = `${label} ${index + 1}`;
      item.label = text;
      const labelText = item.wrapper.querySelector(".field-name");
      if (labelText) labelText.textContent = text;
      item.remove.setAttribute("aria-label", `Remove ${text}`);
    });
    add.disabled = node.maxItems !== undefined && items.length >= node.maxItems;
  };

  const addItem = () => {
    const item = buildField(doc, itemSchema, { name, label: `${label} ${items.length + 1}`, required: false, onChange });
    const remove = h(
      "button",
      {
        type: "button",
        class: "button ghost small",
        onclick: () => {
          items.splice(items.indexOf(item), 1);
          row.remove();
          relabel();
          onChange();
        },
      },
      "Remove",
    );
    item.remove = remove;
    const row = h("li", { class: "item" }, item.wrapper, remove);
    items.push(item);
    list.append(row);
    relabel();
    return item;
  };

  const add = h(
    "button",
    {
      type: "button",
      class: "button ghost small add",
      onclick: () => {
        addItem().focus();
        onChange();
      },
    },
    `Add ${label}`,
  );
  const hint = constraintHint(node, "array") || (required ? "" : "optional: leave empty to send none");
  wrapper.append(
    h(
      "legend",
      {},
      h("span", { class: "field-name" }, label),
      required ? h("span", { class: "required", "aria-hidden": "true", title: "required" }, " *") : null,
    ),
    node.description || hint ? h("small", { class: "hint" }, [node.description, hint].filter(Boolean).join(" — ")) : null,
    list,
    add,
    error,
  );
  for (let i = 0; i < (node.minItems || 0) && i < 3; i += 1) addItem();

  Object.defineProperty(field, "children", { get: () => items });
  field.read = () => {
    sent = [];
    const values = [];
    for (const item of items) {
      const result = item.read();
      if (result.present) {
        sent.push(item);
        values.push(result.value);
      }
    }
    if (!values.length && !required) return { present: false };
    return { present: true, value: values };
  };
  field.find = (path) => {
    if (path === "") return field;
    const match = /^\[(\d+)\]\.?(.*)$/.exec(path);
    if (!match) return field;
    const item = sent[Number(match[1])];
    return item ? item.find(match[2]) || item : field;
  };
  field.focus = () => (items[0] || add).focus();
  return field;
}

function objectField(doc, node, { name, label, required, onChange, root = false }) {
  const error = errorNode();
  const requiredNames = new Set(node.required || []);
  const children = Object.entries(node.properties || {}).map(([key, schema]) =>
    buildField(doc, schema, { name: key, label: root ? key : `${label}.${key}`, required: requiredNames.has(key), onChange }),
  );
  const wrapper = root
    ? h("div", { class: "fields" })
    : h("fieldset", { class: "field kind-object" }, h("legend", {}, h("span", { class: "field-name" }, label)));
  if (!children.length) wrapper.append(h("p", { class: "muted no-fields" }, "This request has no fields."));
  for (const child of children) wrapper.append(child.wrapper);
  wrapper.append(error);
  const field = new Field({ name, label, required, node, kind: "object", wrapper, control: null, error });
  field.children = children;
  field.read = () => {
    const value = {};
    let any = false;
    for (const child of children) {
      const result = child.read();
      if (result.present) {
        value[child.name] = result.value;
        any = true;
      }
    }
    return any || required || root ? { present: true, value } : { present: false };
  };
  field.find = (path) => {
    if (path === "") return field;
    for (const child of children) {
      const rest = splitPath(path, child.name);
      if (rest !== null) return child.find(rest) || child;
    }
    return null;
  };
  field.focus = () => (children[0] ? children[0].focus() : undefined);
  return field;
}

function buildField(doc, schema, options) {
  const { node, nullable } = unwrap(doc, schema);
  const kind = kindOf(node);
  const settings = { ...options, required: options.required && !nullable };
  if (kind === "array") return arrayField(doc, node, settings);
  if (kind === "object" && node.properties) return objectField(doc, node, settings);
  return scalarField(doc, node, kind, settings);
}

/**
 * A form for one JSON Schema (an object schema, e.g. a request payload).
 *
 * form.node is the fields' container; form.value() the payload to send;
 * form.showError(path, message, {focus}) marks the field a JSON path names (false when
 * none does) and focuses it unless focus is false.
 */
export class SchemaForm {
  constructor(doc, schema, { onChange = () => {} } = {}) {
    const root = resolve(doc, schema);
    this.description = root.description || "";
    this.root = objectField(doc, root, { name: "", label: root.title || "payload", required: true, onChange, root: true });
    this.node = this.root.wrapper;
  }

  value() {
    return this.root.read().value;
  }

  clearErrors() {
    this.root.clearError();
  }

  showError(path, message, { focus = true } = {}) {
    const field = path ? this.root.find(path) : null;
    if (!field || field === this.root) return false;
    field.setError(message);
    if (focus) field.focus();
    return true;
  }
}
