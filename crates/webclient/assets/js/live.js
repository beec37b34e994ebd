// The live page: a grid of camera tiles (1, 2×2, 3×3, 4×4, 1+5), saved per user on the server
// (GET/PUT /api/v1/account/layout, so it follows the user to any browser), any tile to full
// screen, digital zoom, keyboard navigation between tiles, and streaming only for tiles that can
// be seen. A camera with a secondary (lower resolution) stream plays it in the grid and its main
// stream in full screen.

import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { LivePlayer } from "./liveplayer.js";
import { Zoom } from "./zoom.js";

/** @typedef {{encrypted: boolean, verified: boolean, pinned?: string | null, scheme: string, summary: string}} Link */
/** @typedef {{state: string, codec?: string | null, resolution?: string | null, last_error?: string | null}} Status */
/** @typedef {{mode: string, link?: Link, status?: Status}} Secondary */
/** @typedef {{name: string, enabled: boolean, link?: Link, status: Status, secondary?: Secondary | null}} Camera */
/** @typedef {{kind: string, tiles: (string | null)[], updated: string | null}} SavedLayout */
/** @typedef {import("./liveplayer.js").StreamName} StreamName */

/** Layout id → number of tiles. */
export const LAYOUTS = { "1": 1, "2x2": 4, "3x3": 9, "4x4": 16, "1+5": 6 };
const LAYOUT_NAMES = { "1": "Single camera", "2x2": "2 × 2", "3x3": "3 × 3", "4x4": "4 × 4", "1+5": "One large and five small" };
const LAYOUT_PATH = "/api/v1/account/layout";

/** Where versions before server-side layouts kept a user's layout in this browser. @param {string} user */
function legacyKey(user) {
  return `vigil.live.${user}`;
}

/** A layout an earlier version kept in this browser, if any (it is moved to the server once).
 * @param {string} user @returns {{layout: string, cameras: string[]} | null} */
function legacyLayout(user) {
  try {
    const v = JSON.parse(localStorage.getItem(legacyKey(user)) || "null");
    if (v && typeof v.layout === "string" && v.layout in LAYOUTS && Array.isArray(v.cameras)) {
      return { layout: v.layout, cameras: v.cameras.map(String) };
    }
  } catch (_) { /* ignore a damaged entry */ }
  return null;
}

/** The tile in `dir` from `from` on screen (arrow-key navigation, whatever the layout).
 * @param {HTMLElement[]} els @param {number} from @param {string} dir ArrowLeft/Right/Up/Down
 * @returns {number} the index, or -1 */
export function neighbour(els, from, dir) {
  const r = els[from].getBoundingClientRect();
  const cx = r.left + r.width / 2;
  const cy = r.top + r.height / 2;
  let best = -1;
  let bestScore = Infinity;
  els.forEach((el, i) => {
    if (i === from) return;
    const q = el.getBoundingClientRect();
    const dx = q.left + q.width / 2 - cx;
    const dy = q.top + q.height / 2 - cy;
    // Along the arrow's axis, ahead of the tile; the other axis' offset weighs more so that the
    // tile in the same row (column) wins over a nearer one diagonally.
    const [along, across] = dir === "ArrowRight" ? [dx, dy] : dir === "ArrowLeft" ? [-dx, dy] : dir === "ArrowDown" ? [dy, dx] : [-dy, dx];
    if (along <= 1) return;
    const score = along + 2 * Math.abs(across);
    if (score < bestScore) { bestScore = score; best = i; }
  });
  return best;
}

class Tile {
  /**
   * @param {LiveView} view
   * @param {number} index
   */
  constructor(view, index) {
    this.view = view;
    this.index = index;
    /** @type {Camera | null} */
    this.camera = null;
    this.video = /** @type {HTMLVideoElement} */ (h("video", { muted: true, playsinline: true, autoplay: true, "aria-hidden": "true" }));
    this.video.muted = true;
    this.state = h("div", { class: "tile-state", role: "status" });
    this.label = h("span", { class: "tile-name" });
    this.link = h("span", { class: "link-badge" });
    this.streamBadge = h("span", { class: "stream-badge" });
    this.select = /** @type {HTMLSelectElement} */ (h("select", { "aria-label": `Camera in tile ${index + 1}`, onchange: () => this.view.assign(index, this.select.value) }));
    this.frame = h("div", { class: "tile-video", tabindex: "0", role: "button", "aria-label": `Tile ${index + 1}: empty`, "aria-describedby": view.keysHelp.id }, this.video);
    this.el = h("section", { class: "tile", "aria-label": `Tile ${index + 1}`, dataset: { tile: String(index) } },
      this.frame,
      h("div", { class: "tile-bar" }, this.label, this.streamBadge, this.link, h("span", { class: "spacer" }), this.select,
        h("button", { type: "button", class: "icon", title: "Full screen", "aria-label": "Full screen", onclick: () => this.fullscreen() }, h("img", { src: "/assets/icons/fullscreen.svg", alt: "", width: "14", height: "14" }))),
      this.state);
    this.zoom = new Zoom(this.frame, this.video);
    this.frame.addEventListener("dblclick", () => { if (this.zoom.scale === 1) this.fullscreen(); });
    this.frame.addEventListener("keydown", (e) => this.key(e));
    /** @type {LivePlayer | null} */
    this.player = null;
    /** @type {StreamName} */
    this.stream = "main";
    this.visible = false;
    this.shown = false;
    /** The tile is the full-screen element. */
    this.full = false;
  }

  /** @param {Camera | null} cam @param {Camera[]} all */
  show(cam, all) {
    replace(this.select, h("option", { value: "", text: "— empty —" }),
      all.map((c) => h("option", { value: c.name, selected: cam?.name === c.name, text: c.name })));
    if (this.shown && this.camera?.name === cam?.name) return;
    this.shown = true;
    this.player?.stop();
    this.player = null;
    this.camera = cam;
    this.el.dataset.camera = cam ? cam.name : "";
    this.label.textContent = cam ? cam.name : "";
    this.describe();
    if (!cam) {
      this.showStream(null, undefined);
      this.setState("empty", "No camera in this tile: choose one.");
      return;
    }
    this.play();
  }

  /** The tile's name for screen readers: its number, its camera and its state. */
  describe() {
    const n = this.view.tiles.length || LAYOUTS[/** @type {keyof LAYOUTS} */ (this.view.layout)];
    const state = this.state.hidden ? "" : `, ${this.state.textContent}`;
    this.frame.setAttribute("aria-label", `Tile ${this.index + 1} of ${n}: ${this.camera ? `camera ${this.camera.name}${state}` : "empty"}`);
  }

  /** Keys on a focused tile: Enter or f full screen, Escape leaves it, arrows move to the
   * neighbouring tile (zoom keys are the Zoom's). @param {KeyboardEvent} e */
  key(e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.key === "Enter" || e.key === "f") this.fullscreen();
    else if (e.key === "Escape" && document.fullscreenElement) document.exitFullscreen().catch(() => {});
    else if (e.key.startsWith("Arrow") && !document.fullscreenElement) this.view.focusFrom(this.index, e.key);
    else return;
    e.preventDefault();
  }

  /** The stream to play: the secondary (lower resolution) one in the grid when the camera has
   * one, the main one in full screen or without one. @returns {StreamName} */
  wantedStream() {
    return this.camera?.secondary && !this.full ? "secondary" : "main";
  }

  /** (Re)starts the player on the wanted stream. */
  play() {
    const cam = this.camera;
    this.player?.stop();
    this.player = null;
    if (!cam) return;
    this.stream = this.wantedStream();
    this.showStream(cam, this.stream);
    this.player = new LivePlayer(this.video, cam.name, (s, m) => this.playerState(s, m), this.stream);
    if (this.visible) this.player.start();
  }

  /** Which stream plays (a "sub"/"main" label when the camera has both) and its link's security.
   * @param {Camera | null} cam @param {StreamName | undefined} stream */
  showStream(cam, stream) {
    this.el.dataset.stream = stream ?? "";
    const both = !!cam?.secondary;
    this.streamBadge.hidden = !both;
    this.streamBadge.textContent = both ? (stream === "secondary" ? "sub" : "main") : "";
    this.streamBadge.title = stream === "secondary" ? "Secondary (lower resolution) stream; full screen shows the main stream" : "Main stream";
    const link = stream === "secondary" ? cam?.secondary?.link : cam?.link;
    this.link.textContent = "";
    this.link.className = "link-badge";
    this.link.title = "";
    if (link) {
      this.link.textContent = link.encrypted ? (link.pinned ? "TLS, pinned" : link.verified ? "TLS, verified" : "TLS, not verified") : "⚠ RTSP in clear";
      this.link.className = `link-badge ${link.encrypted ? "ok" : "warn"}`;
      this.link.title = link.summary;
    }
  }

  /** Full screen shows the main stream; back in the grid, the secondary again.
   * @param {boolean} full */
  setFullscreen(full) {
    if (this.full === full) return;
    this.full = full;
    if (this.camera && this.wantedStream() !== this.stream) this.play();
    // Back in the grid, the keyboard is where it was: on this tile.
    if (!full) this.frame.focus();
  }

  /** @param {import("./liveplayer.js").PlayerState} state @param {string} message */
  playerState(state, message) {
    // The secondary stream was removed from the camera: play its main stream instead.
    if (state === "stopped" && this.stream === "secondary" && message === "secondary stream removed" && this.camera) {
      this.camera = { ...this.camera, secondary: null };
      this.play();
      return;
    }
    this.setState(state, message);
  }

  /** @param {boolean} visible */
  setVisible(visible) {
    this.visible = visible;
    if (!this.player) return;
    if (visible) this.player.start();
    else {
      this.player.stop();
      this.setState("paused", "Not visible: streaming paused.");
    }
  }

  /** @param {string} state @param {string} message */
  setState(state, message) {
    this.el.dataset.state = state;
    const text = {
      connecting: "Connecting…",
      live: "",
      reconnecting: `Reconnecting… ${message}`,
      offline: `Offline. ${message || "The camera is not being recorded by this server."}`,
      stopped: `Stopped. ${message}`,
      unsupported: message,
      error: `Error: ${message}`,
      empty: message,
      paused: message,
    }[state] ?? message;
    this.state.textContent = text.trim();
    this.state.hidden = state === "live";
    this.describe();
  }

  fullscreen() {
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    else this.el.requestFullscreen().then(() => this.frame.focus()).catch(() => { /* refused: stay in the grid */ });
  }

  stop() {
    this.player?.stop();
    this.player = null;
  }
}

export class LiveView {
  /** @param {{name: string}} session */
  constructor(session) {
    this.user = session.name;
    this.layout = "2x2";
    /** The camera of each tile as saved ("" for an empty tile); tiles beyond it are filled. @type {string[]} */
    this.assigned = [];
    /** @type {Camera[]} */
    this.cameras = [];
    /** @type {Tile[]} */
    this.tiles = [];
    /** Saves run one after another, in the order of the changes. */
    this.saving = /** @type {Promise<unknown>} */ (Promise.resolve());
    this.keysHelp = h("p", { id: "live-keys-help", hidden: true, text: "Enter or F: full screen, Escape leaves it. Arrow keys: the next tile. Plus and minus: zoom, 0: reset the zoom." });
    this.grid = h("div", { class: `grid layout-${this.layout.replace("+", "p")}`, role: "region", "aria-label": "Live cameras" });
    this.layoutSelect = /** @type {HTMLSelectElement} */ (h("select", { "aria-label": "Layout", disabled: true, onchange: () => this.setLayout(this.layoutSelect.value) },
      Object.entries(LAYOUT_NAMES).map(([id, name]) => h("option", { value: id, selected: id === this.layout, text: name }))));
    this.message = h("p", { class: "notice", role: "status" });
    this.el = h("div", { class: "live" },
      h("div", { class: "toolbar" }, h("h1", { text: "Live" }), h("span", { class: "spacer" }), h("label", { text: "Layout " }, this.layoutSelect)),
      this.message, this.keysHelp, this.grid);
    this.observer = new IntersectionObserver((entries) => {
      for (const e of entries) {
        const t = this.tiles[Number(/** @type {HTMLElement} */ (e.target).dataset.tile)];
        if (t) t.setVisible(e.isIntersecting && !document.hidden);
      }
    }, { threshold: 0.05 });
    this.onVisibility = () => {
      for (const t of this.tiles) t.setVisible(!document.hidden && isOnScreen(t.el));
    };
    document.addEventListener("visibilitychange", this.onVisibility);
    this.onFullscreen = () => {
      for (const t of this.tiles) t.setFullscreen(document.fullscreenElement === t.el);
    };
    document.addEventListener("fullscreenchange", this.onFullscreen);
    this.load();
  }

  async load() {
    try {
      /** @type {[Camera[], SavedLayout | null]} */
      const [cams, saved] = await Promise.all([
        api("GET", "/api/v1/cameras"),
        api("GET", LAYOUT_PATH).catch((e) => {
          this.message.textContent = `Your saved layout cannot be loaded (${e instanceof Error ? e.message : e}); showing the default.`;
          return null;
        }),
      ]);
      this.cameras = cams;
      if (cams.length === 0) this.message.textContent = "No cameras you may view. An administrator adds cameras under Administration → Cameras.";
      let migrate = false;
      if (saved) {
        this.layout = saved.kind in LAYOUTS ? saved.kind : "2x2";
        this.assigned = saved.tiles.map((t) => t ?? "");
        // Never saved on the server: take over what an earlier version kept in this browser.
        const legacy = saved.updated == null ? legacyLayout(this.user) : null;
        if (legacy) {
          this.layout = legacy.layout;
          this.assigned = legacy.cameras;
          migrate = true;
        }
      }
      this.layoutSelect.value = this.layout;
      this.layoutSelect.disabled = false;
      this.build();
      if (migrate) this.save().then((ok) => { if (ok) localStorage.removeItem(legacyKey(this.user)); });
    } catch (e) {
      this.message.textContent = `Cannot list cameras: ${e instanceof Error ? e.message : e}`;
    }
  }

  build() {
    for (const t of this.tiles) { this.observer.unobserve(t.el); t.stop(); }
    const n = LAYOUTS[/** @type {keyof LAYOUTS} */ (this.layout)];
    this.grid.className = `grid layout-${this.layout.replace("+", "p")}`;
    this.grid.dataset.layout = this.layout;
    this.tiles = [];
    const names = this.cameras.map((c) => c.name);
    // Saved tiles keep their place (a camera that is gone leaves its tile empty); the tiles
    // after them get the other cameras in order.
    const chosen = this.assigned.slice(0, n).map((c) => (names.includes(c) ? c : ""));
    const rest = names.filter((c) => !chosen.includes(c));
    while (chosen.length < n) chosen.push(rest.shift() ?? "");
    replace(this.grid);
    for (let i = 0; i < n; i++) {
      const t = new Tile(this, i);
      this.tiles.push(t);
      this.grid.appendChild(t.el);
    }
    for (const [i, t] of this.tiles.entries()) {
      t.show(this.cameras.find((c) => c.name === chosen[i]) || null, this.cameras);
      this.observer.observe(t.el);
    }
  }

  /** @param {string} layout */
  setLayout(layout) {
    this.assigned = this.tiles.map((t) => t.camera?.name || "");
    this.layout = layout;
    this.build();
    this.save();
  }

  /** @param {number} index @param {string} camera */
  assign(index, camera) {
    this.tiles[index].show(this.cameras.find((c) => c.name === camera) || null, this.cameras);
    this.assigned = this.tiles.map((t) => t.camera?.name || "");
    this.save();
  }

  /** Moves the keyboard focus from tile `from` to its neighbour in the arrow's direction.
   * @param {number} from @param {string} dir */
  focusFrom(from, dir) {
    const to = neighbour(this.tiles.map((t) => t.el), from, dir);
    if (to >= 0) this.tiles[to].frame.focus();
  }

  /** Saves the layout on the server (what every tile shows). Resolves whether it was saved. */
  save() {
    const body = { kind: this.layout, tiles: this.tiles.map((t) => t.camera?.name ?? null) };
    const run = this.saving.then(() => api("PUT", LAYOUT_PATH, body)).then(() => {
      this.grid.dataset.saved = JSON.stringify(body);
      if (this.message.dataset.kind === "save") { this.message.textContent = ""; delete this.message.dataset.kind; }
      return true;
    }, (e) => {
      this.message.textContent = `Your layout could not be saved: ${e instanceof Error ? e.message : e}`;
      this.message.dataset.kind = "save";
      return false;
    });
    this.saving = run;
    return run;
  }

  stop() {
    document.removeEventListener("visibilitychange", this.onVisibility);
    document.removeEventListener("fullscreenchange", this.onFullscreen);
    this.observer.disconnect();
    for (const t of this.tiles) t.stop();
  }
}

/** @param {HTMLElement} el */
function isOnScreen(el) {
  const r = el.getBoundingClientRect();
  return r.bottom > 0 && r.right > 0 && r.top < innerHeight && r.left < innerWidth;
}
