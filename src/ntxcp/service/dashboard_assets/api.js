// The HTTP API of the service as the dashboard uses it: bearer token, JSON, live events.
//
// The token (when the service needs one) is kept in sessionStorage: it lasts as long as
// the browser tab and is sent as "Authorization: Bearer <token>" on every /api/* request,
// including the event stream, which is read with fetch() rather than EventSource
// (EventSource cannot send headers, and a token in a URL ends up in logs).

const TOKEN_KEY = "ntxcp.apiToken";

export const auth = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  },
  set(token) {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** Thrown when the API answers 401: the dashboard then asks for a token. */
export class AuthRequired extends Error {
  constructor() {
    super("The API needs a bearer token.");
    this.name = "AuthRequired";
  }
}

/** Thrown by get() for any other non-2xx answer. */
export class ApiError extends Error {
  constructor(status, data) {
    super((data && data.error) || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.data = data;
  }
}

let onAuthRequired = () => {};

/** Register what happens when any request meets a 401. */
export function setAuthHandler(handler) {
  onAuthRequired = handler;
}

function headers(extra) {
  const result = { Accept: "application/json", ...extra };
  if (auth.token) result.Authorization = `Bearer ${auth.token}`;
  return result;
}

/**
 * Send a request; resolves to {status, ok, data, headers} for every HTTP status but 401.
 * A 401 calls the auth handler and rejects with AuthRequired.
 */
export async function request(method, path, body, { signal } = {}) {
  const init = { method, headers: headers(), signal, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    onAuthRequired();
    throw new AuthRequired();
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { error: text };
    }
  }
  return { status: response.status, ok: response.ok, data, headers: response.headers };
}

/** GET a JSON resource; rejects with ApiError unless 2xx. */
export async function get(path, options) {
  const result = await request("GET", path, undefined, options);
  if (!result.ok) throw new ApiError(result.status, result.data);
  return result.data;
}

/** Items of a paged list (`/api/gateways`, `/api/status`), every page: follows `next` as `after`. */
export async function getAll(path, { limit = 500, ...params } = {}, options) {
  const items = [];
  let after;
  do {
    const page = await get(`${path}${query({ ...params, limit, after })}`, options);
    items.push(...page.items);
    after = page.next;
  } while (after);
  return items;
}

/** Path of a gateway resource: gatewayPath("GW 1", "status") → /api/gateways/GW%201/status. */
export function gatewayPath(id, ...rest) {
  return ["/api/gateways", encodeURIComponent(id), ...rest].join("/");
}

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

// Parse a text/event-stream body (the HTML standard's format) and call dispatch(kind, data).
async function readEvents(body, dispatch, setRetry) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let kind = "";
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    for (;;) {
      const end = buffer.search(/\r\n|\r|\n/);
      if (end < 0 || (buffer[end] === "\r" && end === buffer.length - 1)) break;
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
      if (line === "") {
        if (data.length) dispatch(kind || "message", data.join("\n"));
        kind = "";
        data = [];
        continue;
      }
      if (line.startsWith(":")) continue; // a comment (keep-alive)
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let text = colon < 0 ? "" : line.slice(colon + 1);
      if (text.startsWith(" ")) text = text.slice(1);
      if (field === "event") kind = text;
      else if (field === "data") data.push(text);
      else if (field === "retry" && /^\d+$/.test(text)) setRetry(Number(text));
    }
  }
}

/**
 * Open the live event stream GET /api/events?<params> and keep it open (reconnecting
 * with backoff). onEvent(kind, data) gets every event; onState(state) is told
 * "connecting", "live" (after the stream's hello) or "down". Returns {close()}.
 */
export function openStream(params, { onEvent, onState }) {
  const controller = new AbortController();
  const { signal } = controller;
  let retry = 2000;
  (async () => {
    let delay = retry;
    while (!signal.aborted) {
      onState("connecting");
      try {
        const response = await fetch(`/api/events${query(params)}`, {
          headers: headers({ Accept: "text/event-stream" }),
          signal,
          cache: "no-store",
        });
        if (response.status === 401) {
          onState("down");
          onAuthRequired();
          return;
        }
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        await readEvents(
          response.body,
          (kind, text) => {
            let data = {};
            try {
              data = JSON.parse(text);
            } catch {
              return;
            }
            if (kind === "hello") {
              delay = retry;
              onState("live");
            }
            onEvent(kind, data);
          },
          (ms) => {
            retry = ms;
          },
        );
      } catch {
        // Network error or aborted: reconnect below unless closed.
      }
      if (signal.aborted) return;
      onState("down");
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 30000);
    }
  })();
  return {
    close() {
      controller.abort();
    },
  };
}
