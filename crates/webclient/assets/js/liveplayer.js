// One live video: a WebSocket carrying fragmented MP4 (docs/live-protocol.md) of one of a
// camera's streams (the main one or its secondary) fed into Media Source Extensions, kept at the
// live edge, reconnecting by itself.

/**
 * @typedef {"connecting" | "live" | "reconnecting" | "offline" | "stopped" | "unsupported" | "error"} PlayerState
 * @typedef {"main" | "secondary"} StreamName
 */

/** How far behind the newest frame playback may fall before it jumps to the live edge. */
const MAX_LAG_SECS = 0.8;
/** Where a jump lands, behind the newest frame (decoders need a little to work with). */
const TARGET_LAG_SECS = 0.12;
/** Seconds of already-played video kept in the buffer. */
const KEEP_SECS = 4;
/** Behind the newest frame by more than this (but less than a jump), playback speeds up a
 * little until it is back near TARGET_LAG_SECS, so a stall or a busy tab does not leave the
 * picture behind for good. */
const CATCH_UP_LAG_SECS = 0.25;
/** Playback rate while catching up (video only: no pitch to hear). */
const CATCH_UP_RATE = 1.2;
/** The first picture counts as shown after this long even if the browser never says so
 * (a hidden tab presents no frames), so staying at the live edge is never put off for good. */
const FIRST_FRAME_WAIT_MS = 1000;

export class LivePlayer {
  /**
   * @param {HTMLVideoElement} video
   * @param {string} camera
   * @param {(state: PlayerState, message: string) => void} onState
   * @param {StreamName} [stream] which of the camera's streams (default the main one)
   */
  constructor(video, camera, onState, stream = "main") {
    this.video = video;
    this.camera = camera;
    this.stream = stream;
    this.onState = onState;
    /** @type {WebSocket | null} */
    this.ws = null;
    /** @type {MediaSource | null} */
    this.ms = null;
    /** @type {SourceBuffer | null} */
    this.sb = null;
    /** @type {ArrayBuffer[]} */
    this.queue = [];
    this.expectInit = false;
    this.codec = "";
    this.running = false;
    this.attempt = 0;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.retry = null;
    this.fragments = 0;
    this.skipped = 0;
    this.jumps = 0;
    this.catchingUp = false;
    /** The stream's first keyframe is asked for / has been presented (see afterAppend). */
    this.firstAsked = false;
    this.firstShown = false;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.connect();
  }

  stop() {
    this.running = false;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    this.closeSocket();
    this.resetMedia();
  }

  closeSocket() {
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      ws.onerror = null;
      try { ws.close(1000, "viewer closed"); } catch (_) { /* already closed */ }
    }
  }

  resetMedia() {
    this.queue = [];
    this.sb = null;
    if (this.ms && this.ms.readyState === "open") {
      try { this.ms.endOfStream(); } catch (_) { /* closing anyway */ }
    }
    this.ms = null;
    if (this.video.src) {
      URL.revokeObjectURL(this.video.src);
      this.video.removeAttribute("src");
      this.video.load();
    }
  }

  connect() {
    if (!this.running) return;
    this.onState(this.attempt === 0 ? "connecting" : "reconnecting", this.attempt === 0 ? "" : "connection lost; reconnecting");
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/api/v1/cameras/${encodeURIComponent(this.camera)}/live?stream=${this.stream}`);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onmessage = (ev) => this.message(ev);
    ws.onclose = (ev) => {
      this.ws = null;
      if (!this.running) return;
      if (ev.code === 4001) {
        this.onState("stopped", "signed out");
        this.running = false;
        return;
      }
      if (ev.code === 4003 || ev.code === 1008) {
        this.onState("error", ev.reason || "not allowed to view this camera");
        this.running = false;
        return;
      }
      if (ev.code === 4004) {
        // The camera, or the secondary stream watched, was removed: reconnecting cannot help.
        this.onState("stopped", ev.reason || "camera removed");
        this.running = false;
        return;
      }
      this.attempt += 1;
      const delay = Math.min(10000, 500 * 2 ** Math.min(this.attempt, 5));
      this.onState("reconnecting", ev.reason || "connection to the server lost; reconnecting");
      this.retry = setTimeout(() => this.connect(), delay);
    };
  }

  /** @param {MessageEvent} ev */
  message(ev) {
    if (typeof ev.data === "string") {
      if (ev.data === "pong") return;
      let m;
      try { m = JSON.parse(ev.data); } catch (_) { return; }
      if (m.type === "init") {
        this.codec = String(m.codec || "");
        this.expectInit = true;
      } else if (m.type === "state") {
        const state = String(m.state);
        if (state === "live") this.attempt = 0;
        if (state !== "live" || this.fragments > 0) this.onState(/** @type {PlayerState} */ (state), String(m.message || ""));
      } else if (m.type === "skipped") {
        this.skipped += Number(m.frames) || 0;
      }
      return;
    }
    const data = /** @type {ArrayBuffer} */ (ev.data);
    if (this.expectInit) {
      this.expectInit = false;
      this.setupMedia(data);
      return;
    }
    if (!this.ms) return;
    this.fragments += 1;
    if (this.fragments === 1) this.onState("live", "");
    this.queue.push(data);
    this.pump();
  }

  /** @param {ArrayBuffer} init */
  setupMedia(init) {
    this.resetMedia();
    const type = `video/mp4; codecs="${this.codec}"`;
    if (!("MediaSource" in window) || !MediaSource.isTypeSupported(type)) {
      const h265 = /^(hvc1|hev1)/.test(this.codec);
      this.onState("unsupported", h265
        ? `This browser cannot decode H.265 (${this.codec}). Recording is not affected: export the video and play it in VLC or ffmpeg, or set the camera to H.264 for live view in this browser.`
        : `This browser cannot play ${this.codec || "this codec"}. Recording is not affected: export the video and play it in VLC or ffmpeg.`);
      this.closeSocket();
      this.running = false;
      return;
    }
    const ms = new MediaSource();
    this.ms = ms;
    this.queue = [init];
    this.fragments = 0;
    this.firstAsked = false;
    this.firstShown = false;
    this.video.src = URL.createObjectURL(ms);
    ms.addEventListener("sourceopen", () => {
      if (this.ms !== ms) return;
      try {
        const sb = ms.addSourceBuffer(type);
        sb.mode = "segments";
        sb.addEventListener("updateend", () => this.afterAppend());
        this.sb = sb;
        this.pump();
      } catch (e) {
        this.onState("error", `the browser refused the video: ${e instanceof Error ? e.message : e}`);
      }
    }, { once: true });
  }

  pump() {
    const sb = this.sb;
    if (!sb || sb.updating || this.queue.length === 0) return;
    // Append what has queued up in one go: fewer, larger appends when the tab was busy.
    let buf;
    if (this.queue.length === 1) buf = this.queue[0];
    else {
      const total = this.queue.reduce((n, b) => n + b.byteLength, 0);
      const joined = new Uint8Array(total);
      let at = 0;
      for (const b of this.queue) { joined.set(new Uint8Array(b), at); at += b.byteLength; }
      buf = joined.buffer;
    }
    this.queue = [];
    try {
      sb.appendBuffer(buf);
    } catch (e) {
      if (e instanceof DOMException && e.name === "QuotaExceededError") {
        this.trim(true);
      } else {
        this.onState("error", `the browser could not decode the stream: ${e instanceof Error ? e.message : e}`);
      }
    }
  }

  afterAppend() {
    const v = this.video;
    const sb = this.sb;
    if (!sb) return;
    const b = sb.buffered;
    if (b.length > 0) {
      const end = b.end(b.length - 1);
      const start = b.start(b.length - 1);
      if (!this.firstShown) {
        // The stream starts at the newest keyframe the server holds. Show that picture at
        // once: a jump to the live edge first would decode every frame up to it before anything
        // appears (up to a GOP per tile, seconds when many tiles open together). Once it is on
        // screen, the rules below bring playback to the live edge.
        if (!this.firstAsked) {
          this.firstAsked = true;
          v.currentTime = start;
          const ms = this.ms;
          const shown = () => { if (this.ms === ms) this.firstShown = true; };
          v.requestVideoFrameCallback(shown);
          setTimeout(shown, FIRST_FRAME_WAIT_MS);
        }
      } else {
        // Stay at the live edge: jump when behind (a busy tab, a burst after a stall), never drift.
        if (v.currentTime < start || end - v.currentTime > MAX_LAG_SECS) {
          v.currentTime = Math.max(start, end - TARGET_LAG_SECS);
          this.jumps += 1;
        }
        // Between the target and a jump: a little faster until near the target again.
        const lag = end - v.currentTime;
        if (lag > CATCH_UP_LAG_SECS) this.catchingUp = true;
        else if (lag <= TARGET_LAG_SECS + 0.03) this.catchingUp = false;
        const rate = this.catchingUp ? CATCH_UP_RATE : 1;
        if (v.playbackRate !== rate) v.playbackRate = rate;
      }
      if (v.paused) v.play().catch(() => { /* autoplay of muted video is allowed */ });
    }
    if (!this.trim(false)) this.pump();
  }

  /** Drops played video from the buffer; true when a removal started. @param {boolean} urgent */
  trim(urgent) {
    const sb = this.sb;
    if (!sb || sb.updating || sb.buffered.length === 0) return false;
    const start = sb.buffered.start(0);
    const keep = urgent ? 0.5 : KEEP_SECS;
    if (this.video.currentTime - start > keep * 2) {
      sb.remove(start, this.video.currentTime - keep);
      return true;
    }
    return false;
  }
}
