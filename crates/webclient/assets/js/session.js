// The idle timeout as the user sees it: polling the session (which does not count as activity)
// and, before the server ends it, a warning with a countdown and "Stay signed in".

import { api } from "./api.js";
import { h } from "./dom.js";

/** The warning appears this long before the idle end: two minutes, or a quarter of a short
 * timeout (so that a 1-minute timeout does not warn from the start). */
const WARN_SECS = 120;

export class SessionWatch {
  /**
   * @param {{idle_remaining_secs: number | null}} session
   * @param {() => void} onEnd
   */
  constructor(session, onEnd) {
    this.onEnd = onEnd;
    /** Local time (ms) at which the server will end the session for inactivity. */
    this.idleEnd = session.idle_remaining_secs == null ? null : Date.now() + session.idle_remaining_secs * 1000;
    /** The idle timeout, as the longest time left seen (right after activity it is all of it). */
    this.timeout = session.idle_remaining_secs ?? 0;
    /** @type {HTMLElement | null} */
    this.banner = null;
    this.stopped = false;
    this.poll = setInterval(() => this.refresh(), 15000);
    this.tick = setInterval(() => this.render(), 1000);
  }

  stop() {
    this.stopped = true;
    clearInterval(this.poll);
    clearInterval(this.tick);
    this.banner?.remove();
  }

  async refresh() {
    try {
      const s = await api("GET", "/api/v1/session");
      this.learn(s.idle_remaining_secs);
    } catch (_) {
      // A 401 ends the session through api.js; a network error is retried on the next poll.
    }
  }

  /** A request that counts as activity was answered: the idle timer restarted. */
  touch() {
    if (this.idleEnd != null && this.timeout > 0) this.idleEnd = Date.now() + this.timeout * 1000;
  }

  /** @param {number | null} idle seconds of inactivity left, from the server */
  learn(idle) {
    if (idle == null) return;
    this.idleEnd = Date.now() + idle * 1000;
    this.timeout = Math.max(this.timeout, idle);
  }

  render() {
    if (this.stopped || this.idleEnd == null) return;
    const left = Math.ceil((this.idleEnd - Date.now()) / 1000);
    if (left <= 0) {
      this.stop();
      this.onEnd();
      return;
    }
    if (left > Math.min(WARN_SECS, Math.max(10, Math.floor(this.timeout / 4)))) {
      this.banner?.remove();
      this.banner = null;
      return;
    }
    const text = left >= 60
      ? `You will be signed out in ${Math.ceil(left / 60)} minute${left > 60 ? "s" : ""} for inactivity.`
      : `You will be signed out in ${left} second${left === 1 ? "" : "s"} for inactivity.`;
    if (!this.banner) {
      this.message = h("span", { class: "countdown" });
      this.banner = h("div", { class: "idle-warning", role: "alertdialog", "aria-live": "assertive", "aria-label": "Inactivity warning" },
        this.message,
        h("button", { type: "button", class: "primary", onclick: () => this.stay(), text: "Stay signed in" }));
      document.body.appendChild(this.banner);
      /** @type {HTMLElement} */ (this.banner.querySelector("button")).focus();
    }
    if (this.message) this.message.textContent = text;
  }

  async stay() {
    try {
      const s = await api("POST", "/api/v1/session/activity");
      this.learn(s.idle_remaining_secs);
      this.render();
    } catch (_) { /* the api module handles a session that already ended */ }
  }
}
