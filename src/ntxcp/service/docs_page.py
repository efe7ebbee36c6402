"""``GET /docs``: a self-contained interactive page for the HTTP API.

The page loads ``/openapi.json`` from the same service, lists every operation with
its parameters, and sends requests from the browser with an optional bearer token
(kept in the browser's local storage). Plain HTML, CSS and JavaScript in one string:
nothing is loaded from another host, so it works offline.
"""

from __future__ import annotations

__all__ = ["DOCS_HTML"]

DOCS_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ntxcp control center API</title>
<style>
  :root { --fg: #1d2330; --muted: #5f6b7a; --line: #d8dde4; --bg: #f6f7f9; --accent: #1f6feb; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: var(--fg);
         background: var(--bg); }
  header { position: sticky; top: 0; z-index: 1; background: #fff;
           border-bottom: 1px solid var(--line); padding: 10px 20px; display: flex;
           gap: 16px; align-items: center; flex-wrap: wrap; }
  header h1 { font-size: 17px; margin: 0 12px 0 0; }
  header label { color: var(--muted); }
  input, select, textarea { font: 13px ui-monospace, monospace; border: 1px solid var(--line);
           border-radius: 4px; padding: 4px 6px; background: #fff; }
  #token { width: 260px; }
  #filter { width: 200px; }
  main { max-width: 1100px; margin: 0 auto; padding: 16px 20px 60px; }
  h2 { font-size: 15px; margin: 24px 0 8px; text-transform: capitalize; color: var(--muted); }
  details { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin: 6px 0; }
  summary { cursor: pointer; padding: 8px 12px; display: flex; gap: 10px; align-items: center; }
  .method { font: bold 12px ui-monospace, monospace; width: 58px; text-align: center;
            border-radius: 4px; padding: 2px 0; color: #fff; }
  .get { background: #2d7d46; } .post { background: #1f6feb; } .delete { background: #c93c37; }
  .path { font-family: ui-monospace, monospace; }
  .summary { color: var(--muted); margin-left: auto; text-align: right; }
  .body { padding: 6px 14px 14px; border-top: 1px solid var(--line); }
  .row { display: flex; gap: 8px; align-items: center; margin: 5px 0; }
  .row label { width: 130px; font-family: ui-monospace, monospace; }
  .row small { color: var(--muted); }
  textarea { width: 100%; min-height: 110px; }
  button { background: var(--accent); color: #fff; border: 0; border-radius: 4px;
           padding: 6px 14px; cursor: pointer; font-weight: 600; }
  pre { background: #0f1720; color: #e6edf3; padding: 10px; border-radius: 6px; overflow: auto;
        max-height: 420px; white-space: pre-wrap; word-break: break-word; }
  .status { font-weight: bold; }
  .muted { color: var(--muted); }
</style>
</head>
<body>
<header>
  <h1>ntxcp control center API</h1>
  <label>Bearer token <input id="token" type="password" placeholder="(none)"></label>
  <label>Filter <input id="filter" placeholder="path or summary"></label>
  <span class="muted" id="version"></span>
  <a href="/openapi.json">openapi.json</a>
</header>
<main id="ops"><p class="muted">Loading /openapi.json ...</p></main>
<script>
"use strict";
const tokenInput = document.getElementById("token");
tokenInput.value = localStorage.getItem("ntxcp-api-token") || "";
tokenInput.addEventListener("change",
  () => localStorage.setItem("ntxcp-api-token", tokenInput.value));

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function resolve(doc, schema) {
  while (schema && schema.$ref) {
    const name = schema.$ref.split("/").pop();
    schema = doc.components.schemas[name];
  }
  return schema || {};
}

function example(doc, schema, depth) {
  schema = resolve(doc, schema);
  if (depth > 4) return null;
  if (schema.anyOf) return example(doc, schema.anyOf[0], depth + 1);
  if (schema.enum) return schema.enum[0];
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  if (type === "object") {
    const out = {};
    for (const name of schema.required || []) {
      out[name] = example(doc, schema.properties[name], depth + 1);
    }
    return out;
  }
  if (type === "array") {
    return schema.minItems ? [example(doc, schema.items, depth + 1)] : [];
  }
  if (type === "integer" || type === "number") return schema.minimum || 0;
  if (type === "boolean") return false;
  if (schema.format === "uri") return "ftp://example.com/upload";
  if (schema.pattern && schema.pattern.includes("\\\\d{4}")) return new Date().toISOString();
  return "";
}

async function send(method, path, params, bodyText, out) {
  let url = path;
  const query = new URLSearchParams();
  for (const [param, input] of params) {
    const value = input.value.trim();
    if (param.in === "path") {
      if (!value) { out.textContent = "missing path parameter " + param.name; return; }
      url = url.replace("{" + param.name + "}", encodeURIComponent(value));
    } else if (value) {
      query.set(param.name, value);
    }
  }
  if ([...query].length) url += "?" + query.toString();
  const headers = {};
  if (tokenInput.value) headers["Authorization"] = "Bearer " + tokenInput.value;
  const init = { method, headers };
  if (bodyText !== null) { headers["Content-Type"] = "application/json"; init.body = bodyText; }
  out.textContent = method + " " + url + " ...";
  const started = performance.now();
  try {
    const response = await fetch(url, init);
    const text = await response.text();
    let shown = text;
    try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON */ }
    const ms = (performance.now() - started).toFixed(1);
    out.textContent = "";
    out.append(el("span", { class: "status" }, response.status + " " + response.statusText),
               "  (" + ms + " ms)\\n\\n" + shown);
  } catch (error) {
    out.textContent = "request failed: " + error;
  }
}

function operationView(doc, path, method, op) {
  const params = [];
  const form = el("div", { class: "body" });
  for (const param of op.parameters || []) {
    const input = el("input", { placeholder: param.in + (param.required ? ", required" : "") });
    const schema = resolve(doc, param.schema);
    if (schema.enum) input.setAttribute("list", "enum-" + op.operationId + "-" + param.name);
    form.append(el("div", { class: "row" }, el("label", {}, param.name), input,
                   el("small", {}, param.description || "")));
    if (schema.enum) {
      const list = el("datalist", { id: "enum-" + op.operationId + "-" + param.name });
      for (const value of schema.enum) if (value !== null) list.append(el("option", { value }));
      form.append(list);
    }
    params.push([param, input]);
  }
  let body = null;
  if (op.requestBody) {
    const schema = op.requestBody.content["application/json"].schema;
    body = el("textarea", { spellcheck: "false" });
    body.value = JSON.stringify(example(doc, schema, 0), null, 2);
    form.append(el("div", { class: "muted" }, op.requestBody.description || "JSON body"), body);
  }
  const out = el("pre", {}, "");
  const button = el("button", {}, "Send");
  button.addEventListener("click", () =>
    send(method.toUpperCase(), path, params, body ? body.value : null, out));
  form.append(el("div", { class: "row" }, button), out);
  const summary = el("summary", {},
    el("span", { class: "method " + method }, method.toUpperCase()),
    el("span", { class: "path" }, path),
    el("span", { class: "summary" }, op.summary || ""));
  const view = el("details", {}, summary, form);
  view.dataset.search = (path + " " + (op.summary || "")).toLowerCase();
  return view;
}

async function load() {
  const main = document.getElementById("ops");
  let doc;
  try {
    doc = await (await fetch("/openapi.json")).json();
  } catch (error) {
    main.textContent = "cannot load /openapi.json: " + error;
    return;
  }
  document.getElementById("version").textContent = "version " + doc.info.version;
  main.textContent = "";
  const groups = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags || ["other"])[0];
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push(operationView(doc, path, method, op));
    }
  }
  for (const [tag, views] of groups) main.append(el("h2", {}, tag), ...views);
  document.getElementById("filter").addEventListener("input", (event) => {
    const needle = event.target.value.toLowerCase();
    for (const view of main.querySelectorAll("details")) {
      view.style.display = view.dataset.search.includes(needle) ? "" : "none";
    }
  });
}
load();
</script>
</body>
</html>
"""
