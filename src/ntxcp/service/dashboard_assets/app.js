// The dashboard's entry point: routing, sign-in, the live stream of the current view.
//
// Routes (in the URL's fragment, so the service serves one page):
//   #/                    the gateways overview
//   #/gateways/<id>       one gateway (the id percent-encoded)
//
// Each view is an object {node, title, stream, load(), onEvent(kind, data), dispose()}.
// The view's event stream is opened first; the view loads its data when the stream says
// hello (and again after every reconnection, so nothing missed in between is lost).

import { AuthRequired, auth, openStream, request, setAuthHandler } from "./api.js";
import { fill, h, uid } from "./dom.js";
import { gatewayPage } from "./gateway.js";
import { overview } from "./overview.js";

const main = document.getElementById("main");
const liveNode = document.getElementById("live");
const signOut = document.getElementById("sign-out");
const confirmDialog = document.getElementById("confirm");
const toasts = document.getElementById("toasts");
const topbar = document.querySelector(".topbar");

// The sticky top bar's height (it wraps on narrow screens) keeps what is scrolled to, a
// link's target or a focused field, below it (scroll-padding-top in app.css).
new ResizeObserver(() => {
  document.documentElement.style.setProperty("--topbar-height", `${topbar.offsetHeight}px`);
}).observe(topbar);

// Roles in order: each allows what the ones before it allow (GET /api/whoami).
const ROLES = ["read-only", "operator", "admin"];

const ctx = {
  openapi: null,
  gatewayUrl: document.querySelector('meta[name="ntxcp-gateway-url"]')?.content || "",
  who: null, // {name, role, authenticated, gatewayAdmission}, from GET /api/whoami after sign-in
  /** May the signed-in token use what needs this role? (Forms it may not use are left out.) */
  may(role) {
    return ctx.who !== null && ROLES.indexOf(ctx.who.role) >= ROLES.indexOf(role);
  },
  /** Does the service admit any gateway id (--auth none)? Then a removed one comes back. */
  readmitsRemoved() {
    return ctx.who?.gatewayAdmission === "open";
  },
  /** What the Remove confirmation says about the gateway connecting again. */
  removalOutlook(id) {
    return ctx.readmitsRemoved()
      ? `This service admits any gateway id (--auth none): if ${id} is still running, it connects again within seconds and is listed anew, without its history. To keep a gateway out, register the gateways you want and run the service with --auth basic (or --unknown-gateways reject).`
      : `Only registered gateways are admitted: ${id} is kept out until it is registered again.`;
  },
  /** The toast after a removal: says so when the gateway will be back. */
  removedText(id) {
    return ctx.readmitsRemoved()
      ? `Gateway ${id} removed. If it is still running, it connects again and is listed anew (--auth none admits any gateway id).`
      : `Gateway ${id} removed.`;
  },
  toast,
  confirm,
};
const whoNode = document.getElementById("who");

/** Ask the API who the token is; the views show only the forms its role may use. */
async function whoAmI() {
  const result = await request("GET", "/api/whoami");
  if (!result.ok) throw new Error(result.data?.error || `HTTP ${result.status}`);
  ctx.who = result.data;
  whoNode.textContent = ctx.who.authenticated ? `${ctx.who.name} · ${ctx.who.role}` : "";
  whoNode.hidden = !ctx.who.authenticated;
}

let current = null; // {view, stream, fallback}
let signingIn = false;

const LIVE_TEXT = { idle: "Not connected", connecting: "Connecting…", live: "Live", down: "Reconnecting…" };

function setLive(state) {
  liveNode.dataset.state = state;
  liveNode.textContent = LIVE_TEXT[state] || state;
}

function toast(text, toneName = "ok") {
  const node = h("div", { class: `toast tone-${toneName}`, role: toneName === "bad" ? "alert" : "status" }, text);
  toasts.append(node);
  setTimeout(() => node.remove(), Math.max(5000, String(text).length * 60)); // time to read it
}

function confirm(text, okLabel = "OK") {
  return new Promise((resolve) => {
    document.getElementById("confirm-text").textContent = text;
    document.getElementById("confirm-ok").textContent = okLabel;
    confirmDialog.returnValue = "";
    confirmDialog.addEventListener("close", () => resolve(confirmDialog.returnValue === "ok"), { once: true });
    confirmDialog.showModal();
  });
}

function teardown() {
  if (!current) return;
  clearTimeout(current.fallback);
  current.stream.close();
  current.view.dispose();
  current = null;
  setLive("idle");
}

function showError(error) {
  fill(main, 
    h(
      "section",
      { class: "view" },
      h("div", { class: "alert tone-bad", role: "alert" }, h("strong", {}, "The dashboard could not load its data. "), String(error.message || error)),
      h("p", {}, h("button", { class: "button", type: "button", onclick: () => route() }, "Try again")),
    ),
  );
}

function mount(view) {
  fill(main, view.node);
  document.title = `${view.title} · ntxcp control center`;
  let loaded = false;
  const load = () => {
    loaded = true;
    view.load().catch((error) => {
      if (!(error instanceof AuthRequired) && current?.view === view) showError(error);
    });
  };
  const stream = openStream(view.stream, {
    onEvent: (kind, data) => {
      if (current?.view !== view) return;
      if (kind === "hello") load();
      else view.onEvent(kind, data);
    },
    onState: (state) => {
      if (current?.view === view) setLive(state);
    },
  });
  // Should the stream not come up (a proxy that buffers it), show the data anyway.
  const fallback = setTimeout(() => {
    if (!loaded) load();
  }, 2000);
  current = { view, stream, fallback };
}

function route() {
  if (signingIn) return;
  teardown();
  signOut.hidden = !auth.token;
  const match = /^#\/gateways\/([^/]+)\/?$/.exec(location.hash);
  let view;
  if (match) {
    let id;
    try {
      id = decodeURIComponent(match[1]);
    } catch {
      id = match[1];
    }
    view = gatewayPage(ctx, id);
  } else {
    view = overview(ctx);
  }
  document.getElementById("nav-gateways").setAttribute("aria-current", match ? "false" : "page");
  mount(view);
  main.focus({ preventScroll: true });
}

function showSignIn(message) {
  if (signingIn) return;
  signingIn = true;
  teardown();
  const input = h("input", { id: uid("token"), type: "password", autocomplete: "current-password", required: true });
  const error = h("p", { class: "field-error", role: "alert", hidden: !message, id: uid("error") }, message || "");
  input.setAttribute("aria-describedby", error.id);
  const button = h("button", { class: "button", type: "submit" }, "Sign in");
  const form = h(
    "form",
    {
      class: "card sign-in",
      "aria-labelledby": "sign-in-title",
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        const token = input.value.trim();
        if (!token) {
          error.textContent = "Enter the API token.";
          error.hidden = false;
          return;
        }
        button.disabled = true;
        auth.set(token);
        try {
          await whoAmI();
          signingIn = false;
          route();
        } catch (failure) {
          auth.set("");
          error.textContent = failure instanceof AuthRequired ? "This token was not accepted." : `Could not reach the API: ${failure.message}`;
          error.hidden = false;
          input.select();
        } finally {
          button.disabled = false;
        }
      },
    },
    h("h1", { id: "sign-in-title" }, "Sign in"),
    h("p", { class: "muted" }, "This control center's API needs a bearer token (the service's ", h("code", {}, "--api-token"), ", or one made with ", h("code", {}, "ntxcp tokens add"), "). It is kept in this browser tab only."),
    h("div", { class: "field" }, h("label", { for: input.id }, "API token"), input, error),
    h("div", { class: "form-actions" }, button),
  );
  fill(main, h("section", { class: "view narrow" }, form));
  document.title = "Sign in · ntxcp control center";
  signOut.hidden = true;
  input.focus();
}

setAuthHandler(() => {
  const hadToken = Boolean(auth.token);
  auth.set("");
  ctx.who = null;
  whoNode.hidden = true;
  showSignIn(hadToken ? "The token was not accepted (any more). Enter it again." : "");
});

signOut.addEventListener("click", () => {
  auth.set("");
  ctx.who = null;
  whoNode.hidden = true;
  showSignIn("Signed out.");
});

async function start() {
  try {
    const response = await fetch("/openapi.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`GET /openapi.json: HTTP ${response.status}`);
    ctx.openapi = await response.json();
  } catch (error) {
    showError(error);
    return;
  }
  window.addEventListener("hashchange", () => route());
  try {
    await whoAmI();
  } catch (error) {
    if (!(error instanceof AuthRequired)) showError(error);
    return; // a 401 shows the sign-in screen, which routes once signed in
  }
  route();
}

start();
