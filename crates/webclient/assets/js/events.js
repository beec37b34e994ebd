// The events page: the alarms to handle (acknowledge, close, play the video around them) and
// the event log with filters, older pages and new events arriving live over the events
// WebSocket (docs/events.md, "API"; docs/rules-and-alarms.md, "Alarms").

import { api, seg } from "./api.js";
import { h, replace, dialog, field, toast, table, msg } from "./dom.js";
import { local } from "./time.js";

/** Rows kept on the page; older ones are a click on "Older events" away. */
const MAX_ROWS = 500;
/** Seconds of video before an alarm's first event that "Play" starts at. */
const PLAY_BEFORE_US = 10e6;
const SEVERITIES = ["emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"];
const CATEGORIES = ["camera", "recording", "system", "external", "alarm", "security"];

/**
 * @typedef {{id: number, time_us: number, kind: string, category: string, severity: string,
 *   message: string, camera: string | null, source_kind: string, source: string}} VigilEvent
 * @typedef {{by: string, time: string, comment: string | null} | null} Step
 * @typedef {{id: number, rule: string, priority: number, state: string, camera: string | null,
 *   source_kind: string, source: string, kind: string, message: string, count: number,
 *   first_seen_us: number, last_seen_us: number, acknowledged: Step, closed: Step}} Alarm
 */

/** The playback page at `us` for `camera`. @param {string} camera @param {number} us */
export function playbackHref(camera, us) {
  return `#/playback/${seg(camera)}/${Math.round(us)}`;
}

/** A severity as a coloured word (the colour only repeats what the word says). @param {string} s */
function severityCell(s) {
  const rank = SEVERITIES.indexOf(s);
  return h("span", { class: `sev sev-${rank <= 2 ? "high" : rank <= 4 ? "mid" : "low"}`, text: s });
}

class AlarmList {
  /** @param {boolean} canHandle */
  constructor(canHandle) {
    this.canHandle = canHandle;
    this.state = /** @type {HTMLSelectElement} */ (h("select", { "aria-label": "Alarms to show", onchange: () => this.load() },
      h("option", { value: "new,acknowledged", text: "Open alarms" }),
      h("option", { value: "new", text: "New alarms" }),
      h("option", { value: "closed", text: "Closed alarms" }),
      h("option", { value: "", text: "All alarms" })));
    this.body = h("div", { class: "alarm-list", "aria-live": "polite" });
    this.el = h("section", { class: "alarms", "aria-label": "Alarms" },
      h("div", { class: "toolbar" }, h("h2", { text: "Alarms" }), this.state), this.body);
    this.loading = false;
    this.again = false;
    this.load();
  }

  /** Reloads the list; calls made while it loads coalesce into one more load. */
  async load() {
    if (this.loading) { this.again = true; return; }
    this.loading = true;
    try {
      do {
        this.again = false;
        const q = this.state.value ? `state=${encodeURIComponent(this.state.value)}&` : "";
        /** @type {{alarms: Alarm[]}} */
        const page = await api("GET", `/api/v1/alarms?${q}limit=200`);
        this.show(page.alarms);
      } while (this.again);
    } catch (e) {
      replace(this.body, h("p", { class: "error", text: `Cannot list alarms: ${msg(e)}` }));
    } finally {
      this.loading = false;
    }
  }

  /** @param {Alarm[]} alarms */
  show(alarms) {
    this.el.dataset.count = String(alarms.length);
    replace(this.body, table("Alarms", ["Priority", "Alarm", "Camera", "What", "Count", "Last seen", "State", ""], alarms.map((a) => ({
      attrs: { dataset: { alarm: String(a.id), state: a.state }, class: `alarm p${a.priority}` },
      cells: [
        h("span", { class: `prio p${a.priority}`, title: "1 is the most urgent", text: `P${a.priority}` }),
        a.rule,
        a.camera || "",
        h("span", { class: "alarm-message", title: `${a.kind} from ${a.source_kind} ${a.source}`, text: a.message }),
        String(a.count),
        local(a.last_seen_us),
        this.stateCell(a),
        this.actions(a),
      ],
    }))));
  }

  /** The state with who handled it, when and why. @param {Alarm} a */
  stateCell(a) {
    const step = a.closed || a.acknowledged;
    const who = step ? ` by ${step.by}${step.comment ? `: ${step.comment}` : ""}` : "";
    return h("span", { class: `alarm-state ${a.state}`, title: step ? `${a.state} ${local(Date.parse(step.time) * 1000)}` : "", text: `${a.state}${who}` });
  }

  /** @param {Alarm} a */
  actions(a) {
    const buttons = [];
    if (a.camera) {
      buttons.push(h("a", { class: "button", href: playbackHref(a.camera, a.first_seen_us - PLAY_BEFORE_US), "aria-label": `Play the video of ${a.camera} from before alarm ${a.id}`, text: "Play" }));
    }
    if (this.canHandle && a.state === "new") {
      buttons.push(h("button", { type: "button", "aria-label": `Acknowledge alarm ${a.id}`, onclick: () => this.step(a, "acknowledge"), text: "Acknowledge" }));
    }
    if (this.canHandle && a.state !== "closed") {
      buttons.push(h("button", { type: "button", "aria-label": `Close alarm ${a.id}`, onclick: () => this.step(a, "close"), text: "Close" }));
    }
    return h("span", { class: "row-actions" }, buttons);
  }

  /** Acknowledges or closes an alarm, with an optional comment. @param {Alarm} a @param {"acknowledge" | "close"} what */
  async step(a, what) {
    const verb = what === "acknowledge" ? "Acknowledge" : "Close";
    const comment = /** @type {HTMLInputElement} */ (h("input", { name: "comment", maxlength: "1024", autocomplete: "off" }));
    const err = h("p", { class: "error", role: "alert" });
    const done = await dialog(`${verb} alarm ${a.id}`, (close) => h("form", {
      onsubmit: async (/** @type {Event} */ ev) => {
        ev.preventDefault();
        try {
          const body = comment.value.trim() ? { comment: comment.value.trim() } : undefined;
          close(await api("POST", `/api/v1/alarms/${a.id}/${what}`, body));
        } catch (e) {
          err.textContent = msg(e);
        }
      },
    }, h("p", { text: `${a.rule}${a.camera ? ` · ${a.camera}` : ""}: ${a.message}` }),
    field("Comment (optional)", comment, "One line: what was done, who was sent."), err,
    h("div", { class: "actions" },
      h("button", { type: "button", onclick: () => close(null), text: "Cancel" }),
      h("button", { type: "submit", class: "primary", text: verb }))));
    if (done) {
      toast(`Alarm ${a.id} ${what === "acknowledge" ? "acknowledged" : "closed"}.`);
      this.load();
    }
  }
}

class EventLog {
  /** @param {string[]} categories the categories the user may read */
  constructor(categories) {
    this.category = /** @type {HTMLSelectElement} */ (h("select", { name: "category", "aria-label": "Category" },
      h("option", { value: "", text: "Any category" }),
      categories.map((c) => h("option", { value: c, text: c }))));
    this.severity = /** @type {HTMLSelectElement} */ (h("select", { name: "severity", "aria-label": "At least this severe" },
      h("option", { value: "", text: "Any severity" }),
      SEVERITIES.slice(0, 7).map((s) => h("option", { value: s, text: `${s} or worse` }))));
    this.camera = /** @type {HTMLInputElement} */ (h("input", { name: "camera", placeholder: "any camera", "aria-label": "Camera" }));
    this.text = /** @type {HTMLInputElement} */ (h("input", { name: "text", type: "search", placeholder: "message contains", "aria-label": "Message contains" }));
    this.liveState = h("span", { class: "live-state", role: "status" });
    this.rows = h("tbody", {});
    this.more = /** @type {HTMLButtonElement} */ (h("button", { type: "button", hidden: true, onclick: () => this.older(), text: "Older events" }));
    this.error = h("p", { class: "error", role: "alert", hidden: true });
    this.el = h("section", { class: "events", "aria-label": "Events" },
      h("div", { class: "toolbar" }, h("h2", { text: "Events" }), h("span", { class: "spacer" }), this.liveState),
      h("form", { class: "filters", onsubmit: (/** @type {Event} */ e) => { e.preventDefault(); this.restart(); } },
        this.category, this.severity, this.camera, this.text, h("button", { type: "submit", text: "Filter" })),
      this.error,
      h("table", { class: "data event-table", "aria-label": "Events, newest first" },
        h("thead", {}, h("tr", {}, ["Time", "Severity", "Kind", "Camera", "Source", "Message"].map((t) => h("th", { scope: "col", text: t })))),
        this.rows),
      this.more);
    /** Called with each live event (the alarm list reloads on alarm events). @type {(e: VigilEvent) => void} */
    this.onLive = () => {};
    this.lastId = 0;
    this.before = /** @type {number | null} */ (null);
    this.ws = /** @type {WebSocket | null} */ (null);
    this.running = true;
    this.attempt = 0;
    this.retry = 0;
    this.restart();
  }

  /** The filters as query parameters; `live` leaves out the ones the WebSocket does not take. @param {boolean} live */
  params(live) {
    const p = new URLSearchParams();
    if (this.category.value) p.set("category", this.category.value);
    if (this.severity.value) p.set("severity", this.severity.value);
    if (this.camera.value.trim()) p.set("camera", this.camera.value.trim());
    if (!live && this.text.value.trim()) p.set("text", this.text.value.trim());
    return p;
  }

  /** Whether a live event passes the text filter (the server filters the rest). @param {VigilEvent} e */
  matches(e) {
    const t = this.text.value.trim().toLowerCase();
    return !t || e.message.toLowerCase().includes(t);
  }

  /** Loads the newest page for the filters and subscribes for what comes after it. */
  async restart() {
    this.close();
    replace(this.rows);
    this.lastId = 0;
    this.before = null;
    await this.page();
    this.connect();
  }

  /** One page of older events (the newest page first). */
  async page() {
    const p = this.params(false);
    p.set("limit", "100");
    if (this.before != null) p.set("before", String(this.before));
    try {
      /** @type {{events: VigilEvent[], next_before: number | null}} */
      const page = await api("GET", `/api/v1/events?${p}`);
      this.error.hidden = true;
      for (const e of page.events) {
        this.lastId = Math.max(this.lastId, e.id);
        this.rows.appendChild(this.row(e));
      }
      this.before = page.next_before ?? null;
      this.more.hidden = this.before == null;
      this.el.dataset.rows = String(this.rows.childElementCount);
      if (!this.rows.childElementCount) this.rows.appendChild(h("tr", { class: "none" }, h("td", { colspan: "6", class: "empty", text: "No events match." })));
    } catch (e) {
      this.error.textContent = `Cannot list events: ${msg(e)}`;
      this.error.hidden = false;
    }
  }

  older() { this.page(); }

  /** @param {VigilEvent} e */
  row(e) {
    const camera = e.camera && e.category !== "security"
      ? h("a", { href: playbackHref(e.camera, e.time_us - PLAY_BEFORE_US), title: `Play ${e.camera} from before this event`, text: e.camera })
      : (e.camera || "");
    return h("tr", { dataset: { event: String(e.id), kind: e.kind }, class: `event ${e.category}` },
      h("td", { text: local(e.time_us) }), h("td", {}, severityCell(e.severity)), h("td", { text: e.kind }),
      h("td", {}, camera), h("td", { text: `${e.source_kind} ${e.source}` }), h("td", { class: "event-message", text: e.message }));
  }

  /** Puts new events on top, keeping at most MAX_ROWS. @param {VigilEvent[]} events */
  prepend(events) {
    this.rows.querySelector("tr.none")?.remove();
    for (const e of events) {
      if (e.id <= this.lastId) continue;
      this.lastId = e.id;
      if (this.matches(e)) this.rows.insertBefore(this.row(e), this.rows.firstChild);
      this.onLive(e);
    }
    while (this.rows.childElementCount > MAX_ROWS) {
      this.rows.lastElementChild?.remove();
      this.more.hidden = false;
      this.before = Number(/** @type {HTMLElement} */ (this.rows.lastElementChild).dataset.event);
    }
    this.el.dataset.rows = String(this.rows.childElementCount);
  }

  /** Fetches what the subscription missed (oldest first, so ids stay in order). */
  async catchUp() {
    const p = this.params(false);
    p.set("after", String(this.lastId));
    p.set("limit", "1000");
    try {
      /** @type {{events: VigilEvent[]}} */
      const page = await api("GET", `/api/v1/events?${p}`);
      this.prepend([...page.events].sort((a, b) => a.id - b.id));
    } catch (_) { /* the next reconnect tries again */ }
  }

  /** @param {string} text @param {string} state */
  say(text, state) {
    this.liveState.textContent = text;
    this.liveState.dataset.state = state;
  }

  connect() {
    if (!this.running) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/api/v1/events/live?${this.params(true)}`);
    this.ws = ws;
    this.say(this.attempt ? "Reconnecting…" : "Connecting…", "connecting");
    ws.onopen = () => {
      this.attempt = 0;
      this.say("● Live", "live");
      // Anything stored between the page query and the subscription.
      this.catchUp();
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") return;
      /** @type {any} */
      let m;
      try { m = JSON.parse(ev.data); } catch (_) { return; }
      if (m.type === "event") this.prepend([m]);
      else if (m.type === "missed") this.catchUp();
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws || !this.running) return;
      this.ws = null;
      if (ev.code === 4001 || ev.code === 4003) {
        this.say(ev.code === 4001 ? "Not live: the session ended." : "Not live: no permission to read events.", "stopped");
        return;
      }
      this.attempt += 1;
      const wait = Math.min(10000, 500 * 2 ** Math.min(this.attempt, 5));
      this.say(`Connection lost; reconnecting in ${Math.round(wait / 1000)} s`, "reconnecting");
      this.retry = window.setTimeout(() => { this.catchUp().then(() => this.connect()); }, wait);
    };
  }

  close() {
    clearTimeout(this.retry);
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000);
  }

  stop() {
    this.running = false;
    this.close();
  }
}

export class EventsView {
  /** @param {{role: string}} session */
  constructor(session) {
    const video = session.role !== "auditor";
    const canHandle = session.role === "admin" || session.role === "operator";
    this.alarms = video ? new AlarmList(canHandle) : null;
    // Security events need ViewAudit (admins, auditors), the others Playback (docs/events.md).
    this.log = new EventLog(CATEGORIES.filter((c) => (c === "security" ? session.role === "admin" || !video : video)));
    this.log.onLive = (e) => { if (e.category === "alarm") this.alarms?.load(); };
    this.el = h("div", { class: "events-page" }, h("h1", { text: video ? "Alarms and events" : "Events" }),
      this.alarms?.el, this.log.el);
  }

  stop() { this.log.stop(); }
}
