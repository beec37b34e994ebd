// The playback timeline: recorded ranges, gaps with their reasons, the cameras' events and
// bookmarks, a verification failure mark, the selected export range and the cursor; drag to scrub, click to jump, wheel or +/-
// to zoom from days to seconds, shift-drag to select a range. From the keyboard (it is a
// focusable slider): arrows step a second (with Shift a minute), Page Up/Down a tenth of the
// view, Home/End go to the first/last recording, +/- zoom; the position and what is recorded
// there are announced (aria-valuetext), and so is the zoom (a status line).

import { h } from "./dom.js";
import { clock, local, span } from "./time.js";

/** Keys of the focused timeline, for its description. */
const KEYS_HELP = "Left and right arrows: one second, with Shift one minute. Page Up and Page Down: a tenth of the view. Home and End: the first and the last recording. Plus and minus: zoom in and out.";

/** @typedef {{start_us: number, end_us: number, reason?: string | null}} Span */
/** @typedef {{at_us: number, kind: string, severity: string, text: string}} Mark */
/** @typedef {{from_us: number, to_us: number, label: string, creator: string}} Bookmark */
/** @typedef {{camera: string, ranges: Span[], gaps: Span[], marks?: Mark[], bookmarks?: Bookmark[]}} Track */

/** Pixels around a mark that the pointer finds it in. */
const MARK_HIT_PX = 5;
/** Mark colours by severity (RFC 5424 names): errors and worse, warnings, the rest. */
const MARK_COLOURS = { error: "#ff7a59", warning: "#ffd166", other: "#7fc8ff" };
/** @param {string} severity */
function markColour(severity) {
  if (["emergency", "alert", "critical", "error"].includes(severity)) return MARK_COLOURS.error;
  return severity === "warning" ? MARK_COLOURS.warning : MARK_COLOURS.other;
}

const MIN_SPAN_US = 30e6;
const MAX_SPAN_US = 7 * 86400e6;
const ROW_H = 22;
const AXIS_H = 22;

export class Timeline {
  /**
   * @param {{onSeek: (us: number, final: boolean) => void, onSelect: (from: number, to: number) => void, onView: (from: number, to: number) => void, onEdge?: (edge: "first" | "last") => void}} cb
   */
  constructor(cb) {
    this.cb = cb;
    /** @type {Track[]} */
    this.tracks = [];
    this.cursor = Date.now() * 1000;
    this.viewEnd = this.cursor + 60e6;
    this.viewSpan = 3600e6;
    /** @type {{from: number, to: number} | null} */
    this.selection = null;
    /** @type {{at: number, text: string} | null} */
    this.failure = null;
    const help = h("p", { id: "timeline-keys-help", hidden: true, text: KEYS_HELP });
    this.canvas = /** @type {HTMLCanvasElement} */ (h("canvas", { class: "timeline-canvas", tabindex: "0", role: "slider", "aria-label": "Timeline", "aria-describedby": help.id, "aria-orientation": "horizontal" }));
    this.tip = h("div", { class: "timeline-tip", hidden: true });
    /** Says the zoom when it changes (the position is the slider's own value text). */
    this.announcer = h("p", { class: "sr-only", role: "status", "aria-live": "polite" });
    this.el = h("div", { class: "timeline" }, this.canvas, this.tip, help, this.announcer);
    this.ctx = /** @type {CanvasRenderingContext2D} */ (this.canvas.getContext("2d"));
    /** @type {{x0: number, us0: number, moved: boolean, select: boolean} | null} */
    this.drag = null;
    this.canvas.addEventListener("pointerdown", (e) => this.down(e));
    this.canvas.addEventListener("pointermove", (e) => this.move(e));
    this.canvas.addEventListener("pointerup", (e) => this.up(e));
    this.canvas.addEventListener("pointerleave", () => { this.tip.hidden = true; });
    this.canvas.addEventListener("wheel", (e) => { e.preventDefault(); this.zoom(e.deltaY < 0 ? 0.5 : 2, this.usAt(e.offsetX)); }, { passive: false });
    this.canvas.addEventListener("keydown", (e) => this.key(e));
    this.resize = new ResizeObserver(() => this.draw());
    this.resize.observe(this.canvas);
  }

  get viewStart() { return this.viewEnd - this.viewSpan; }

  /** @param {number} x */
  usAt(x) { return this.viewStart + (x / Math.max(1, this.canvas.clientWidth)) * this.viewSpan; }

  /** @param {number} us */
  xAt(us) { return ((us - this.viewStart) / this.viewSpan) * this.canvas.clientWidth; }

  /** @param {Track[]} tracks */
  setTracks(tracks) { this.tracks = tracks; this.describe(); this.draw(); }

  /** What is at `us` on each track, for people. @param {number} us */
  at(us) {
    return this.tracks.map((t) => {
      const gap = t.gaps.find((g) => g.start_us <= us && us < g.end_us);
      const rec = t.ranges.find((r) => r.start_us <= us && us < r.end_us);
      const mark = (t.marks || []).find((m) => Math.abs(m.at_us - us) < 1e6);
      const marked = (t.bookmarks || []).filter((b) => b.from_us <= us && us <= b.to_us).map((b) => `, bookmark: ${b.label}`).join("");
      return `${t.camera}: ${gap ? `gap (${gap.reason || "not recorded"})` : rec ? "recorded" : "nothing recorded"}${mark ? `, event: ${mark.text}` : ""}${marked}`;
    }).join("; ");
  }

  /** The mark of `track` drawn nearest to `x`, within reach of the pointer.
   * @param {Track} track @param {number} x */
  markNear(track, x) {
    let best = /** @type {Mark | null} */ (null);
    let dist = MARK_HIT_PX;
    for (const m of track.marks || []) {
      const d = Math.abs(this.xAt(m.at_us) - x);
      if (d <= dist) { best = m; dist = d; }
    }
    return best;
  }

  /** The slider's value for assistive technology: the cursor's time and what is recorded there. */
  describe() {
    const c = this.canvas;
    const what = this.at(this.cursor);
    c.setAttribute("aria-valuetext", `${local(this.cursor)}${what ? `, ${what}` : ""}`);
    c.setAttribute("aria-valuenow", String(Math.round(this.cursor / 1e6)));
    c.setAttribute("aria-valuemin", String(Math.floor(this.viewStart / 1e6)));
    c.setAttribute("aria-valuemax", String(Math.ceil(this.viewEnd / 1e6)));
    c.dataset.cursorUs = String(Math.round(this.cursor));
    c.dataset.spanUs = String(Math.round(this.viewSpan));
    c.dataset.viewStartUs = String(Math.round(this.viewStart));
    c.dataset.marks = String(this.tracks.reduce((n, t) => n + (t.marks?.length || 0), 0));
    c.dataset.bookmarks = String(this.tracks.reduce((n, t) => n + (t.bookmarks?.length || 0), 0));
  }

  /** @param {number} us @param {boolean} [follow] keep the cursor in view */
  setCursor(us, follow = true) {
    this.cursor = us;
    if (follow && (us < this.viewStart || us > this.viewEnd)) {
      this.viewEnd = us + this.viewSpan / 2;
      this.cb.onView(this.viewStart, this.viewEnd);
    }
    this.describe();
    this.draw();
  }

  /** @param {number} factor @param {number} [around] */
  zoom(factor, around = this.cursor) {
    const next = Math.min(MAX_SPAN_US, Math.max(MIN_SPAN_US, this.viewSpan * factor));
    const frac = (around - this.viewStart) / this.viewSpan;
    this.viewEnd = around + (1 - frac) * next;
    this.viewSpan = next;
    this.cb.onView(this.viewStart, this.viewEnd);
    this.describe();
    this.announcer.textContent = `Timeline shows ${span(next / 1e6)}, ${local(this.viewStart)} to ${local(this.viewEnd)}.`;
    this.draw();
  }

  /** @param {PointerEvent} e */
  down(e) {
    this.canvas.setPointerCapture(e.pointerId);
    this.drag = { x0: e.offsetX, us0: this.usAt(e.offsetX), moved: false, select: e.shiftKey };
  }

  /** @param {PointerEvent} e */
  move(e) {
    const us = this.usAt(e.offsetX);
    this.hover(e.offsetX, e.offsetY, us);
    const d = this.drag;
    if (!d) return;
    if (Math.abs(e.offsetX - d.x0) > 3) d.moved = true;
    if (!d.moved) return;
    if (d.select) {
      this.selection = { from: Math.min(d.us0, us), to: Math.max(d.us0, us) };
      this.draw();
    } else {
      this.setCursor(us, false);
      this.cb.onSeek(us, false);
    }
  }

  /** @param {PointerEvent} e */
  up(e) {
    const d = this.drag;
    this.drag = null;
    if (!d) return;
    const us = this.usAt(e.offsetX);
    if (d.select && this.selection) {
      this.cb.onSelect(this.selection.from, this.selection.to);
      return;
    }
    this.setCursor(us, false);
    this.cb.onSeek(us, true);
  }

  /** @param {KeyboardEvent} e */
  key(e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const step = e.shiftKey ? 60e6 : 1e6;
    /** @param {number} us */
    const go = (us) => { this.setCursor(us); this.cb.onSeek(this.cursor, true); };
    if (e.key === "ArrowLeft" || e.key === "ArrowDown") go(this.cursor - step);
    else if (e.key === "ArrowRight" || e.key === "ArrowUp") go(this.cursor + step);
    else if (e.key === "PageUp") go(this.cursor - this.viewSpan / 10);
    else if (e.key === "PageDown") go(this.cursor + this.viewSpan / 10);
    else if (e.key === "Home") this.cb.onEdge?.("first");
    else if (e.key === "End") this.cb.onEdge?.("last");
    else if (e.key === "+" || e.key === "=") this.zoom(0.5);
    else if (e.key === "-" || e.key === "_") this.zoom(2);
    else return;
    e.preventDefault();
  }

  /** @param {number} x @param {number} y @param {number} us */
  hover(x, y, us) {
    const row = Math.floor((y - AXIS_H) / ROW_H);
    const track = this.tracks[row];
    let text = local(us);
    if (track) {
      const mark = this.markNear(track, x);
      const gap = track.gaps.find((g) => g.start_us <= us && us < g.end_us);
      const rec = track.ranges.find((r) => r.start_us <= us && us < r.end_us);
      const book = (track.bookmarks || []).find((b) => b.from_us <= us && us <= b.to_us);
      text = mark
        ? `${local(mark.at_us)} · ${mark.text} (${track.camera}, ${mark.kind}, ${mark.severity})`
        : book
          ? `${local(us)} · ${track.camera}: bookmark "${book.label}" by ${book.creator}, ${span((book.to_us - book.from_us) / 1e6)}`
          : `${text} · ${track.camera}: ${gap ? `gap (${gap.reason || "not recorded"}), ${span((gap.end_us - gap.start_us) / 1e6)}` : rec ? "recorded" : "nothing recorded"}`;
    }
    this.tip.textContent = text;
    this.tip.hidden = false;
    // Beside the pointer, but never past the timeline's right edge.
    this.tip.style.left = `${Math.max(0, Math.min(x, this.canvas.clientWidth - this.tip.offsetWidth))}px`;
  }

  draw() {
    const c = this.canvas;
    const w = c.clientWidth;
    const hgt = AXIS_H + Math.max(1, this.tracks.length) * ROW_H + 4;
    const dpr = window.devicePixelRatio || 1;
    if (c.height !== Math.round(hgt * dpr) || c.width !== Math.round(w * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(hgt * dpr);
      c.style.height = `${hgt}px`;
    }
    const g = this.ctx;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, hgt);
    g.fillStyle = "#0f1722";
    g.fillRect(0, 0, w, hgt);
    // Axis: ticks at a round interval for the zoom level.
    const steps = [1e6, 5e6, 10e6, 30e6, 60e6, 300e6, 600e6, 1800e6, 3600e6, 3 * 3600e6, 6 * 3600e6, 86400e6];
    const step = steps.find((s) => (s / this.viewSpan) * w >= 80) || 86400e6;
    const tz = new Date().getTimezoneOffset() * 60e6;
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = "#8aa0b8";
    g.strokeStyle = "#223247";
    for (let t = Math.ceil((this.viewStart - tz) / step) * step + tz; t <= this.viewEnd; t += step) {
      const x = Math.round(this.xAt(t)) + 0.5;
      g.beginPath(); g.moveTo(x, AXIS_H - 6); g.lineTo(x, hgt); g.stroke();
      const label = step >= 86400e6 ? new Date(t / 1000).toLocaleDateString() : step >= 60e6 ? clock(t).slice(0, 5) : clock(t).slice(0, 8);
      g.fillText(label, x + 3, 12);
    }
    this.tracks.forEach((tr, i) => {
      const y = AXIS_H + i * ROW_H;
      g.fillStyle = "#18222f";
      g.fillRect(0, y + 2, w, ROW_H - 4);
      g.fillStyle = "#2f9e6b";
      for (const r of tr.ranges) this.bar(r.start_us, r.end_us, y + 4, ROW_H - 8);
      g.fillStyle = "#b54848";
      for (const gp of tr.gaps) this.bar(gp.start_us, gp.end_us, y + 8, ROW_H - 16);
      // Bookmarks: an amber band along the row's bottom edge with a flag where each starts.
      for (const b of tr.bookmarks || []) {
        g.fillStyle = "rgba(255, 183, 77, 0.85)";
        this.bar(b.from_us, b.to_us, y + ROW_H - 7, 4);
        const x = this.xAt(b.from_us);
        if (x >= -MARK_HIT_PX && x <= w) g.fillRect(x, y + 6, 2, ROW_H - 9);
      }
      // Events: a small downward triangle on the row's top edge and a thin line through it.
      for (const m of tr.marks || []) {
        const x = this.xAt(m.at_us);
        if (x < -MARK_HIT_PX || x > w + MARK_HIT_PX) continue;
        g.fillStyle = markColour(m.severity);
        g.fillRect(x - 0.5, y + 2, 1, ROW_H - 4);
        g.beginPath(); g.moveTo(x - 4, y + 2); g.lineTo(x + 4, y + 2); g.lineTo(x, y + 8); g.fill();
      }
      g.fillStyle = "#cfe0f2";
      g.fillText(tr.camera, 4, y + ROW_H - 7);
    });
    if (this.selection) {
      g.fillStyle = "rgba(127, 200, 255, 0.22)";
      this.bar(this.selection.from, this.selection.to, AXIS_H, hgt - AXIS_H);
    }
    if (this.failure) {
      const x = this.xAt(this.failure.at);
      g.fillStyle = "#ff5d5d";
      g.beginPath(); g.moveTo(x - 6, AXIS_H - 8); g.lineTo(x + 6, AXIS_H - 8); g.lineTo(x, AXIS_H); g.fill();
      g.fillRect(x - 1, AXIS_H, 2, hgt - AXIS_H);
    }
    const cx = this.xAt(this.cursor);
    g.fillStyle = "#ffd166";
    g.fillRect(cx - 1, 0, 2, hgt);
  }

  /** @param {number} a @param {number} b @param {number} y @param {number} hh */
  bar(a, b, y, hh) {
    const x0 = Math.max(0, this.xAt(a));
    const x1 = Math.min(this.canvas.clientWidth, this.xAt(b));
    if (x1 > x0) this.ctx.fillRect(x0, y, Math.max(1, x1 - x0), hh);
  }

  stop() { this.resize.disconnect(); }
}
