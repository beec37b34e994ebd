// Starts the client: who is signed in, the page frame (navigation, connection security, user
// menu) and the view for the current address (#/live, #/playback, #/events, #/admin/..., #/audit).

import { api, setCsrf, whenSessionEnds, whenActive, ApiError } from "./api.js";
import { h, replace, dialog, field, toast } from "./dom.js";
import { showLogin } from "./login.js";
import { SessionWatch } from "./session.js";
import { securityBadge } from "./security.js";
import { LiveView } from "./live.js";
import { PlaybackView } from "./playback.js";
import { EventsView } from "./events.js";
import { AdminView, AuditView } from "./admin.js";

/**
 * @typedef {{kind: string, name: string, role: string, cameras: string[] | null,
 *   csrf_token: string | null, idle_remaining_secs: number | null,
 *   absolute_remaining_secs: number | null, warn: boolean}} Session
 * @typedef {{el: HTMLElement, stop?: () => void}} View
 */

const app = /** @type {HTMLElement} */ (document.getElementById("app"));
/** @type {View | null} */
let current = null;
/** @type {SessionWatch | null} */
let watch = null;

/** What each role may open; the API enforces the same (docs/api.md, "Authorization"). */
const PAGES = {
  live: { label: "Live", roles: ["admin", "operator", "viewer"] },
  playback: { label: "Playback", roles: ["admin", "operator", "viewer"] },
  events: { label: "Events", roles: ["admin", "operator", "viewer", "auditor"] },
  admin: { label: "Administration", roles: ["admin"] },
  audit: { label: "Audit log", roles: ["admin", "auditor"] },
};

/** @param {string} role */
function pagesFor(role) {
  return Object.entries(PAGES).filter(([, p]) => p.roles.includes(role)).map(([id]) => id);
}

async function start() {
  whenSessionEnds((e) => signedOut(e.code === "session_expired" ? "Your session ended. Sign in again." : "Please sign in."));
  try {
    const s = await api("GET", "/api/v1/session");
    signedIn(s);
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 0)) {
      showLogin(app, signedIn, e.status === 0 ? e.message : "");
    } else {
      showLogin(app, signedIn, e instanceof Error ? e.message : String(e));
    }
  }
}

/** @param {string} message */
function signedOut(message) {
  if (current?.stop) current.stop();
  current = null;
  watch?.stop();
  watch = null;
  setCsrf(null);
  showLogin(app, signedIn, message);
}

/** @param {Session} session */
function signedIn(session) {
  setCsrf(session.csrf_token);
  const pages = pagesFor(session.role);
  const nav = h("nav", { class: "nav", "aria-label": "Main" },
    pages.map((id) => h("a", { href: `#/${id}`, dataset: { page: id }, text: PAGES[/** @type {keyof PAGES} */ (id)].label })));
  const main = h("main", { id: "main", tabindex: "-1" });
  const user = h("div", { class: "user" },
    h("span", { class: "who", title: `role: ${session.role}` }, session.name, " ", h("span", { class: "role", text: session.role })),
    session.kind === "user" ? h("button", { type: "button", class: "link", onclick: () => changePassword(), text: "Change password" }) : null,
    h("button", { type: "button", class: "link", onclick: () => signOut(), text: "Sign out" }));
  const header = h("header", { class: "top" },
    h("a", { class: "brand", href: "#/", "aria-label": "Vigil home" }, h("img", { src: "/assets/icon.svg", alt: "", width: "24", height: "24" }), "Vigil"),
    nav, securityBadge(), user);
  replace(app, header, main);
  watch = new SessionWatch(session, () => signedOut("You were signed out after a period of inactivity."));
  whenActive(() => watch?.touch());
  const route = () => {
    const [page, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
    const id = pages.includes(page) ? page : pages[0];
    if (!id) {
      replace(main, h("p", { class: "empty", text: "Your role has no pages in the web client." }));
      return;
    }
    for (const a of nav.querySelectorAll("a")) {
      if (/** @type {HTMLElement} */ (a).dataset.page === id) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    if (current?.stop) current.stop();
    current = makeView(id, rest, session);
    replace(main, current.el);
    document.title = `Vigil · ${PAGES[/** @type {keyof PAGES} */ (id)].label}`;
  };
  window.onhashchange = route;
  route();
}

/**
 * @param {string} id
 * @param {string[]} rest
 * @param {Session} session
 * @returns {View}
 */
function makeView(id, rest, session) {
  switch (id) {
    case "live": return new LiveView(session);
    case "playback": return new PlaybackView(session, rest);
    case "events": return new EventsView(session);
    case "admin": return new AdminView(session, rest[0] || "cameras");
    case "audit": return new AuditView(session);
    default: return { el: h("p", { text: "Unknown page." }) };
  }
}

async function signOut() {
  try {
    await api("DELETE", "/api/v1/session");
  } catch (_) { /* signed out anyway */ }
  location.hash = "";
  signedOut("You signed out.");
}

async function changePassword() {
  const cur = h("input", { type: "password", autocomplete: "current-password", required: true });
  const next = h("input", { type: "password", autocomplete: "new-password", required: true, minlength: "12" });
  const err = h("p", { class: "error", role: "alert" });
  await dialog("Change password", (close) => h("form", {
    onsubmit: async (/** @type {Event} */ ev) => {
      ev.preventDefault();
      try {
        await api("POST", "/api/v1/account/password", {
          current_password: /** @type {HTMLInputElement} */ (cur).value,
          new_password: /** @type {HTMLInputElement} */ (next).value,
        });
        close(true);
        toast("Password changed. Your other sessions were signed out.");
      } catch (e) {
        err.textContent = e instanceof Error ? e.message : String(e);
      }
    },
  }, field("Current password", cur), field("New password", next, "At least 12 characters."), err,
  h("div", { class: "actions" },
    h("button", { type: "button", onclick: () => close(null), text: "Cancel" }),
    h("button", { type: "submit", class: "primary", text: "Change password" }))));
}

start();
