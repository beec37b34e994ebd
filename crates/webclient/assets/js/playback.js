// The playback page: one or more cameras on one timeline, played in sync from the recorded
// MP4 (HTTP Range requests let the browser fetch only what it shows), the main or the
// recorded secondary stream, scrubbing, speeds, frame steps, jump to a date, the cameras'
// events and bookmarks on the timeline (operators and admins add bookmarks), and the evidence
// panel for the selected range.

import { api, seg } from "./api.js";
import { h, replace } from "./dom.js";
import { Timeline } from "./timeline.js";
import { EvidencePanel } from "./evidence.js";
import { Zoom } from "./zoom.js";
import { iso, local } from "./time.js";

/** Seconds of video requested around the cursor in one playback answer. */
const WINDOW_BEFORE_US = 60e6;
const WINDOW_AFTER_US = 9 * 60e6;
/** Cameras further apart than this (seconds) are re-aligned by seeking, closer by rate. */
const HARD_SYNC_SECS = 0.25;
const MAX_CAMERAS = 4;
/** Events drawn per camera and view (the newest; a busier view shows the latest ones). */
const MAX_MARKS = 200;
/** Bookmarks drawn per camera and view. */
const MAX_BOOKMARKS = 200;
/** A bookmark made without a selected range covers this much before and after the cursor. */
const BOOKMARK_AROUND_US = 5e6;

/** @typedef {"main" | "secondary"} Stream */

/** The query parameter that picks `stream` (nothing for the main one). @param {Stream} stream */
function streamParam(stream) {
  return stream === "secondary" ? "&stream=secondary" : "";
}

class CameraPlayback {
  /** @param {string} camera @param {number} fps @param {Stream} stream */
  constructor(camera, fps, stream) {
    this.camera = camera;
    this.stream = stream;
    this.fps = fps > 0 ? fps : 30;
    this.video = /** @type {HTMLVideoElement} */ (h("video", { muted: true, playsinline: true, preload: "auto", "aria-label": `Recorded video of ${camera}` }));
    this.video.muted = true;
    this.state = h("div", { class: "tile-state", role: "status" });
    this.frame = h("div", { class: "tile-video", tabindex: "0", role: "group", "aria-label": `Recorded video of ${camera}: plus and minus zoom, 0 resets the zoom` }, this.video);
    const badge = stream === "secondary" ? h("span", { class: "stream-badge", text: "secondary stream" }) : null;
    this.el = h("section", { class: "tile", dataset: { camera, stream } }, this.frame, h("div", { class: "tile-bar" }, h("span", { class: "tile-name", text: camera }), badge), this.state);
    this.zoom = new Zoom(this.frame, this.video);
    /** Wall-clock time (µs) of the video's time 0 in the loaded window; null when nothing is loaded. */
    this.mediaStart = /** @type {number | null} */ (null);
    this.windowFrom = 0;
    this.windowTo = 0;
    this.loading = /** @type {Promise<void> | null} */ (null);
    /** The latest time asked for: a seek made while a window loads is done after it. */
    this.target = /** @type {number | null} */ (null);
  }

  /** The wall-clock time shown now, or null. */
  now() {
    return this.mediaStart == null ? null : this.mediaStart + this.video.currentTime * 1e6;
  }

  /** @param {number} us */
  inWindow(us) {
    return this.mediaStart != null && us >= this.windowFrom && us < this.windowTo - 2e6;
  }

  /** @param {string} text */
  say(text) {
    this.state.textContent = text;
    this.state.hidden = !text;
  }

  /** Loads the window around `us` (the video's source and its time mapping). @param {number} us */
  async load(us) {
    const from = us - WINDOW_BEFORE_US;
    const to = us + WINDOW_AFTER_US;
    /** @param {string} until */
    const urlTo = (until) => `/api/v1/cameras/${seg(this.camera)}/playback?from=${encodeURIComponent(iso(from))}&to=${encodeURIComponent(until)}${streamParam(this.stream)}`;
    const url = urlTo(iso(to));
    this.say("Loading…");
    const head = await fetch(url, { method: "HEAD", credentials: "same-origin", cache: "no-store" });
    if (!head.ok) {
      this.mediaStart = null;
      delete this.el.dataset.mediaStartUs;
      this.video.removeAttribute("src");
      this.video.load();
      this.say(head.status !== 404 ? `Cannot play: the server answered ${head.status}.`
        : this.stream === "secondary" ? "No secondary stream recorded around this time (the camera may record only its main stream): choose the main stream."
          : "Nothing recorded around this time.");
      return;
    }
    const start = Date.parse(head.headers.get("Vigil-Media-Start") || "");
    const end = Date.parse(head.headers.get("Vigil-Media-End") || "");
    this.mediaStart = start * 1000;
    // Also on the element: tests (and people inspecting the page) read the mapping there.
    this.el.dataset.mediaStartUs = String(this.mediaStart);
    this.windowFrom = from;
    this.windowTo = Number.isFinite(end) ? end * 1000 : to;
    // The video asks for the window only up to what is recorded now (the HEAD's media end):
    // such an answer can gain no GOP, so it leads with the segment index and its bytes stay
    // the same between Range requests (docs/api.md, playback). Asked up to a later `to`, a
    // recording that still goes on would be served without the index, and Chromium's demuxer
    // would then read every fragment's header, one Range request each, before the first
    // frame and again before a seek ahead (docs/BENCHMARKS-live.md, seek).
    const endText = head.headers.get("Vigil-Media-End");
    const src = Number.isFinite(end) && endText ? urlTo(endText) : url;
    await new Promise((resolve) => {
      this.video.addEventListener("loadedmetadata", resolve, { once: true });
      this.video.addEventListener("error", resolve, { once: true });
      this.video.src = src;
    });
    if (this.video.error) {
      this.say(`The browser cannot play this recording (${this.video.error.message || "decode error"}). Export it and play it in VLC or ffmpeg.`);
      return;
    }
    this.say("");
  }

  /**
   * Shows the frame at `us`, loading another window when needed. The latest call wins: one
   * made while a window loads waits for it and then goes where it was asked to (an earlier
   * one still waiting gives way).
   * @param {number} us
   */
  async seek(us) {
    this.target = us;
    while (this.loading) {
      await this.loading;
      if (this.target !== us) return;
    }
    if (!this.inWindow(us)) {
      this.loading = this.load(us).finally(() => { this.loading = null; });
      await this.loading;
      if (this.target !== us || this.mediaStart == null || this.video.error) return;
    }
    const t = Math.max(0, (us - /** @type {number} */ (this.mediaStart)) / 1e6);
    if (Math.abs(this.video.currentTime - t) < 0.5 / this.fps) return;
    await new Promise((resolve) => {
      this.video.addEventListener("seeked", resolve, { once: true });
      this.video.currentTime = t;
    });
  }

  stop() {
    this.video.pause();
    this.video.removeAttribute("src");
    this.video.load();
  }
}

export class PlaybackView {
  /**
   * @param {{role: string, name: string}} session
   * @param {string[]} rest `#/playback/CAMERA/US` opens that camera at that instant (the
   *   events page links there)
   */
  constructor(session, rest) {
    this.session = session;
    /** @type {CameraPlayback[]} */
    this.players = [];
    this.rate = 1;
    this.playing = false;
    /** @type {Stream} */
    this.stream = "main";
    /** The camera asked for in the address, if any. */
    this.wanted = rest[0] ? decodeURIComponent(rest[0]) : null;
    const at = Number(rest[1]);
    this.cursor = Number.isFinite(at) && at > 0 ? at : Date.now() * 1000 - 60e6;
    this.choices = h("fieldset", { class: "camera-choices" }, h("legend", { text: `Cameras (up to ${MAX_CAMERAS}, played in sync)` }));
    this.grid = h("div", { class: "grid playback-grid" });
    this.timeline = new Timeline({
      onSeek: (us, final) => this.seekAll(us, final),
      onSelect: (from, to) => this.evidence.set({ from, to }, this.players.map((p) => p.camera)),
      onView: () => this.loadTracks(),
      onEdge: (edge) => this.toEdge(edge),
    });
    const canExport = session.role === "admin" || session.role === "operator";
    this.evidence = new EvidencePanel({
      canExport,
      canVerify: canExport,
      onFailure: (at, text) => { this.timeline.failure = at == null ? null : { at, text }; if (at != null) this.timeline.setCursor(at); else this.timeline.draw(); },
    });
    this.playBtn = h("button", { type: "button", class: "primary", onclick: () => this.toggle(), text: "▶ Play", "aria-label": "Play" });
    this.rateSel = /** @type {HTMLSelectElement} */ (h("select", { "aria-label": "Speed", onchange: () => this.setRate(Number(this.rateSel.value)) },
      [1, 2, 4, 8].map((r) => h("option", { value: String(r), text: `${r}×` }))));
    this.streamSel = /** @type {HTMLSelectElement} */ (h("select", { class: "stream-choice", "aria-label": "Stream", onchange: () => { this.stream = this.streamSel.value === "secondary" ? "secondary" : "main"; this.choose(); } },
      h("option", { value: "main", text: "Main stream" }),
      h("option", { value: "secondary", text: "Secondary stream", title: "The camera's lower-resolution stream, where it is recorded" })));
    this.when = /** @type {HTMLInputElement} */ (h("input", { type: "datetime-local", step: "1", "aria-label": "Date and time to jump to" }));
    this.clock = h("output", { class: "clock", "aria-live": "off" });
    let markIn = /** @type {number | null} */ (null);
    this.bookmarkLabel = /** @type {HTMLInputElement} */ (h("input", { type: "text", maxlength: "200", placeholder: "Bookmark label", "aria-label": "Bookmark label" }));
    this.bookmarkSaid = h("span", { class: "bookmark-said", role: "status" });
    const bookmarkForm = canExport
      ? h("form", { class: "bookmark", onsubmit: (/** @type {Event} */ e) => { e.preventDefault(); this.bookmark(); } },
        this.bookmarkLabel, h("button", { type: "submit", text: "Bookmark" }), this.bookmarkSaid)
      : null;
    this.el = h("div", { class: "playback" },
      h("div", { class: "toolbar" }, h("h1", { text: "Playback" }), h("span", { class: "spacer" }), this.clock),
      this.choices, this.grid,
      h("div", { class: "controls" },
        h("button", { type: "button", title: "Previous frame", "aria-label": "Previous frame", onclick: () => this.step(-1), text: "‹ Frame" }),
        this.playBtn,
        h("button", { type: "button", title: "Next frame", "aria-label": "Next frame", onclick: () => this.step(1), text: "Frame ›" }),
        this.rateSel,
        this.streamSel,
        h("button", { type: "button", onclick: () => this.timeline.zoom(0.5), "aria-label": "Zoom in timeline", text: "Zoom +" }),
        h("button", { type: "button", onclick: () => this.timeline.zoom(2), "aria-label": "Zoom out timeline", text: "Zoom −" }),
        h("form", { class: "jump", onsubmit: (/** @type {Event} */ e) => { e.preventDefault(); this.jump(); } }, this.when, h("button", { type: "submit", text: "Go" })),
        h("button", { type: "button", onclick: () => { markIn = this.cursor; this.evidence.set({ from: markIn, to: markIn }, this.cams()); }, text: "Mark in" }),
        h("button", { type: "button", onclick: () => { if (markIn != null && this.cursor > markIn) { this.timeline.selection = { from: markIn, to: this.cursor }; this.timeline.draw(); this.evidence.set(this.timeline.selection, this.cams()); } }, text: "Mark out" })),
      bookmarkForm, this.timeline.el, this.evidence.el);
    this.raf = 0;
    this.syncTimer = setInterval(() => this.sync(), 250);
    this.init();
  }

  cams() { return this.players.map((p) => p.camera); }

  async init() {
    try {
      /** @type {{name: string, status: {fps?: number | null}}[]} */
      const cams = await api("GET", "/api/v1/cameras");
      this.fps = new Map(cams.map((c) => [c.name, c.status.fps || 30]));
      if (cams.length === 0) {
        this.choices.appendChild(h("p", { text: "No cameras you may play back." }));
        return;
      }
      for (const [i, c] of cams.entries()) {
        const first = this.wanted != null && cams.some((w) => w.name === this.wanted) ? c.name === this.wanted : i === 0;
        const box = /** @type {HTMLInputElement} */ (h("input", { type: "checkbox", value: c.name, checked: first, onchange: () => this.choose() }));
        this.choices.appendChild(h("label", { class: "check" }, box, c.name));
      }
      this.choose();
    } catch (e) {
      this.choices.appendChild(h("p", { class: "error", text: `Cannot list cameras: ${e instanceof Error ? e.message : e}` }));
    }
  }

  choose() {
    const names = [...this.choices.querySelectorAll("input:checked")].map((b) => /** @type {HTMLInputElement} */ (b).value).slice(0, MAX_CAMERAS);
    for (const p of this.players) p.stop();
    this.players = names.map((n) => new CameraPlayback(n, this.fps?.get(n) || 30, this.stream));
    this.grid.className = `grid playback-grid n${this.players.length}`;
    replace(this.grid, this.players.map((p) => p.el));
    if (this.players[0]) {
      this.players[0].video.addEventListener("ended", () => this.seekAll(this.cursor + 1e6, true));
    }
    this.evidence.set(this.timeline.selection, names);
    this.loadTracks().then(async () => {
      const at = this.recordedNear(this.cursor) ?? await this.lastRecorded();
      if (at != null) this.cursor = at;
      this.timeline.setCursor(this.cursor);
      this.seekAll(this.cursor, true);
    });
  }

  /**
   * Where to open: `us` itself when a chosen camera recorded it, else the nearest recorded
   * instant in the view: the start of the next recording after it (a link to "just before
   * an event" may point before the camera's first recording), else a few seconds before the
   * end of the last one before it (so there is video to play); null when the view has none.
   * The cursor starts a minute ago, which may be a gap or before the first recording.
   * @param {number} us
   */
  recordedNear(us) {
    let after = /** @type {number | null} */ (null);
    let before = /** @type {number | null} */ (null);
    for (const t of this.timeline.tracks) {
      for (const r of t.ranges) {
        if (r.start_us <= us && us < r.end_us) return us;
        if (r.start_us > us) after = Math.min(after ?? r.start_us, r.start_us);
        else before = Math.max(before ?? r.start_us, Math.max(r.start_us, r.end_us - 5e6));
      }
    }
    return after ?? before;
  }

  /** The last recorded instant of the chosen cameras (outside the view too), or null. */
  async lastRecorded() {
    const ends = await this.edges("last");
    return ends.length ? Math.max(...ends) - 1e6 : null;
  }

  /** Each chosen camera's first or last recorded instant. @param {"first" | "last"} edge */
  async edges(edge) {
    /** @type {number[]} */
    const found = [];
    const query = this.stream === "secondary" ? "?stream=secondary" : "";
    await Promise.all(this.cams().map(async (cam) => {
      try {
        const r = await api("GET", `/api/v1/cameras/${seg(cam)}/recordings${query}`);
        const ranges = /** @type {{start_us: number, end_us: number}[]} */ (r.ranges);
        if (ranges.length) found.push(edge === "first" ? ranges[0].start_us : ranges[ranges.length - 1].end_us);
      } catch (_) { /* a camera without recordings has no edge */ }
    }));
    return found;
  }

  async loadTracks() {
    const from = this.timeline.viewStart;
    const to = this.timeline.viewEnd;
    const range = `from=${encodeURIComponent(iso(from))}&to=${encodeURIComponent(iso(to))}`;
    const tracks = await Promise.all(this.cams().map(async (cam) => {
      const [rec, marks, bookmarks] = await Promise.all([
        api("GET", `/api/v1/cameras/${seg(cam)}/recordings?${range}${streamParam(this.stream)}`).catch(() => null),
        this.marks(cam, range),
        api("GET", `/api/v1/bookmarks?camera=${encodeURIComponent(cam)}&${range}&limit=${MAX_BOOKMARKS}`)
          .then((/** @type {{bookmarks: import("./timeline.js").Bookmark[]}} */ r) => r.bookmarks)
          .catch(() => []),
      ]);
      return { camera: cam, ranges: rec?.ranges || [], gaps: rec?.gaps || [], marks, bookmarks };
    }));
    this.timeline.setTracks(tracks);
  }

  /**
   * The camera's events in the view, for the timeline: what happened to the camera and around
   * it (connection, recording, alarms, external and analytics events). Audit entries (who
   * watched or exported) belong to the audit log, not to the video's timeline.
   * @param {string} cam @param {string} range
   * @returns {Promise<import("./timeline.js").Mark[]>}
   */
  async marks(cam, range) {
    try {
      /** @type {{events: {time_us: number, kind: string, category: string, severity: string, message: string}[]}} */
      const page = await api("GET", `/api/v1/events?camera=${encodeURIComponent(cam)}&${range}&limit=${MAX_MARKS}`);
      return page.events
        .filter((e) => e.category !== "security")
        .map((e) => ({ at_us: e.time_us, kind: e.kind, severity: e.severity, text: e.message }));
    } catch (_) {
      // Events are an addition to the timeline; a user who may not read them still plays video.
      return [];
    }
  }

  /** Bookmarks the selected range (or a few seconds around the cursor) of every camera shown. */
  async bookmark() {
    const label = this.bookmarkLabel.value.trim();
    if (!label) {
      this.bookmarkSaid.textContent = "Give the bookmark a label.";
      return;
    }
    const sel = this.timeline.selection;
    const [from, to] = sel && sel.to > sel.from ? [sel.from, sel.to] : [this.cursor - BOOKMARK_AROUND_US, this.cursor + BOOKMARK_AROUND_US];
    try {
      for (const cam of this.cams()) {
        await api("POST", "/api/v1/bookmarks", { camera: cam, from: iso(from), to: iso(to), label });
      }
      this.bookmarkLabel.value = "";
      this.bookmarkSaid.textContent = `Bookmarked ${local(from)} to ${local(to)}.`;
      await this.loadTracks();
    } catch (e) {
      this.bookmarkSaid.textContent = `Not bookmarked: ${e instanceof Error ? e.message : e}`;
    }
  }

  /** Home/End on the timeline: the first or the last recorded instant of the chosen cameras.
   * @param {"first" | "last"} edge */
  async toEdge(edge) {
    const found = await this.edges(edge);
    if (!found.length) return;
    // The last frame is shortly before the end of the last range.
    const us = edge === "first" ? Math.min(...found) : Math.max(...found) - 1e6;
    this.timeline.setCursor(us);
    this.seekAll(us, true);
  }

  /** @param {number} us @param {boolean} final */
  async seekAll(us, final) {
    this.cursor = us;
    this.clock.textContent = local(us);
    const wasPlaying = this.playing;
    if (!final) this.pauseAll();
    await Promise.all(this.players.map((p) => (final || p.inWindow(us) ? p.seek(us) : Promise.resolve())));
    if (final && wasPlaying) this.playAll();
  }

  toggle() {
    if (this.playing) this.pauseAll();
    else this.playAll();
  }

  playAll() {
    this.playing = true;
    this.playBtn.textContent = "‖ Pause";
    this.playBtn.setAttribute("aria-label", "Pause");
    for (const p of this.players) { p.video.playbackRate = this.rate; p.video.play().catch(() => {}); }
    const loop = () => {
      const lead = this.players[0]?.now();
      if (lead != null) {
        this.cursor = lead;
        this.timeline.setCursor(lead);
        this.clock.textContent = local(lead);
      }
      if (this.playing) this.raf = requestAnimationFrame(loop);
    };
    this.raf = requestAnimationFrame(loop);
  }

  pauseAll() {
    this.playing = false;
    cancelAnimationFrame(this.raf);
    this.playBtn.textContent = "▶ Play";
    this.playBtn.setAttribute("aria-label", "Play");
    for (const p of this.players) p.video.pause();
  }

  /** @param {number} r */
  setRate(r) {
    this.rate = r;
    for (const p of this.players) p.video.playbackRate = r;
  }

  /** @param {number} dir */
  step(dir) {
    this.pauseAll();
    const fps = this.players[0]?.fps || 30;
    this.seekAll(this.cursor + (dir * 1e6) / fps, true);
    this.timeline.setCursor(this.cursor);
  }

  jump() {
    const t = Date.parse(this.when.value);
    if (!Number.isFinite(t)) return;
    this.timeline.setCursor(t * 1000);
    this.seekAll(t * 1000, true);
  }

  /** Keeps every camera on the first one's clock: rate nudges for small drift, a seek for large. */
  sync() {
    if (!this.playing || this.players.length < 2) return;
    const lead = this.players[0].now();
    if (lead == null) return;
    for (const p of this.players.slice(1)) {
      const t = p.now();
      if (t == null || !p.inWindow(lead)) { p.seek(lead).then(() => { if (this.playing) p.video.play().catch(() => {}); }); continue; }
      const diff = (lead - t) / 1e6;
      if (Math.abs(diff) > HARD_SYNC_SECS) p.video.currentTime += diff;
      else p.video.playbackRate = this.rate * (1 + Math.max(-0.1, Math.min(0.1, diff * 2)));
    }
  }

  stop() {
    this.pauseAll();
    clearInterval(this.syncTimer);
    this.timeline.stop();
    for (const p of this.players) p.stop();
  }
}
