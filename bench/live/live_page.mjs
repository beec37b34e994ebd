#!/usr/bin/env node
// The browser side of bench/live: Debian's Chromium (playwright-core from tests/browser) on
// Vigil's real web client, driven one command at a time by live_bench.py.
//
//   node live_page.mjs CONFIG.json      (CONFIG holds the password: a file, never arguments)
//
// stdin: one JSON command per line; stdout: one JSON answer per line ({"ok": true, ...} or
// {"ok": false, "error": "..."}); stderr: diagnostics. Commands: login, layout, reopen, clear,
// collect, tiles, playback, seek, quit.
//
// What it measures in the page (no OCR): every frame the page presents. Each tile's <video>
// gets a requestVideoFrameCallback loop that draws the top of the frame onto a small canvas,
// reads the frame number the test camera drew there as blocks (bench/live/coded_rtsp.py) and
// keeps (tile, number, expectedDisplayTime, presentationTime, mediaTime, presentedFrames).
// A WebSocket subclass installed before the client's scripts run stamps every binary message
// with its arrival time and the fragment's decode time (tfdt), so a frame's way can be split
// into server-to-page and page-to-screen. Both hooks are injected through the DevTools
// protocol, which the server's Content-Security-Policy does not apply to; the client's own
// code is not changed.

import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { createInterface } from "node:readline";

const cfg = JSON.parse(await readFile(process.argv[2], "utf8"));
const require = createRequire(join(cfg.root, "tests", "browser", "package.json"));
const { chromium } = require("playwright-core");
const { CHROMIUM_FLAGS } = await import(join(cfg.root, "tests", "browser", "chromium.mjs"));

let browser = null;
let page = null;
const problems = [];
/** The page's playback requests as DevTools sees them (id -> request), to split a seek's time. */
const media = new Map();
/** Wall-clock ms of a DevTools monotonic timestamp (s): learned from requestWillBeSent. */
let wallOffsetMs = null;

function log(msg) {
  process.stderr.write(`[live-page ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/** Runs in the page before any of its scripts: WebSocket arrival stamps. */
function wsHook() {
  const Orig = window.WebSocket;
  const rec = { sockets: [], arrivals: [] };
  Object.defineProperty(window, "__lbws", { value: rec });
  /** Decode time (tfdt) of a moof+mdat fragment, or -1. @param {ArrayBuffer} buf */
  function tfdt(buf) {
    const v = new DataView(buf);
    const n = Math.min(buf.byteLength - 16, 256);
    for (let i = 0; i < n; i++) {
      if (v.getUint32(i) === 0x74666474) { // "tfdt"
        const version = v.getUint8(i + 4);
        return version === 1 ? Number(v.getBigUint64(i + 8)) : v.getUint32(i + 8);
      }
    }
    return -1;
  }
  window.WebSocket = class extends Orig {
    constructor(url, protocols) {
      super(url, protocols);
      const id = rec.sockets.length;
      rec.sockets.push({ url: String(url), opened: performance.now() });
      this.addEventListener("message", (ev) => {
        const t = performance.now();
        if (typeof ev.data === "string") {
          if (ev.data.startsWith("{")) rec.arrivals.push([id, t, -2, 0, ev.data]);
          return;
        }
        rec.arrivals.push([id, t, tfdt(ev.data), ev.data.byteLength]);
      });
    }
  };
}

/** Runs in the page: a requestVideoFrameCallback loop on every tile video (once each). */
function frameHook(spec) {
  const rec = window.__lbf || (window.__lbf = { frames: [], n: 0 });
  const canvas = document.createElement("canvas");
  canvas.width = 64;
  canvas.height = 8;
  const g = canvas.getContext("2d", { willReadFrequently: true });
  /** The frame number coded in the top two ninths of the frame, or -1 if unreadable. */
  function read(video) {
    const vw = video.videoWidth;
    const vh = video.videoHeight;
    if (!vw || !vh) return [-1, 0];
    g.drawImage(video, 0, 0, vw, (2 * vh) / 9, 0, 0, 64, 8);
    const d = g.getImageData(0, 0, 64, 8).data;
    let n = 0;
    let margin = 255;
    for (let b = 0; b < 16; b++) {
      const lum = (y) => {
        const i = (y * 64 + b * 4 + 2) * 4;
        return 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
      };
      const top = lum(2);
      const bottom = lum(6);
      margin = Math.min(margin, Math.abs(top - bottom));
      n = n * 2 + (top > bottom ? 1 : 0);
    }
    return [margin >= 60 ? n : -1, Math.round(margin)];
  }
  for (const el of document.querySelectorAll(spec.selector)) {
    const video = /** @type {HTMLVideoElement} */ (el);
    if (video.dataset.lbHooked) continue;
    video.dataset.lbHooked = "1";
    const key = spec.key(video);
    // Seeks the player makes (jumps to the live edge), per tile.
    video.addEventListener("seeking", () => { const k = key(); rec.seeks = rec.seeks || {}; rec.seeks[k] = (rec.seeks[k] || 0) + 1; });
    const cb = (now, md) => {
      const [number, margin] = spec.code ? read(video) : [-1, 0];
      rec.frames.push([key(), number, md.expectedDisplayTime, md.presentationTime, md.mediaTime,
        md.presentedFrames, now, margin, video.currentTime]);
      video.requestVideoFrameCallback(cb);
    };
    video.requestVideoFrameCallback(cb);
  }
}

async function hookTiles() {
  await page.evaluate(`(${frameHook})({selector: ".grid .tile video", code: true,
    key: (v) => () => { const t = v.closest(".tile"); return (t.dataset.tile || "") + ":" + (t.dataset.camera || ""); }})`);
}

/** DevTools network events of the playback answers: when each Range request left, when its
 * headers came back, when its body ended, and how many bytes it brought. */
async function watchMedia() {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  const wall = (ts) => (wallOffsetMs == null ? null : ts * 1000 + wallOffsetMs);
  cdp.on("Network.requestWillBeSent", (e) => {
    if (!e.request.url.includes("/playback?")) return;
    wallOffsetMs = e.wallTime * 1000 - e.timestamp * 1000;
    media.set(e.requestId, { method: e.request.method, range: e.request.headers.Range || e.request.headers.range || null,
      sent: wall(e.timestamp), headers: null, status: null, done: null, bytes: 0, failed: null });
  });
  cdp.on("Network.responseReceived", (e) => {
    const r = media.get(e.requestId);
    if (r) { r.headers = wall(e.timestamp); r.status = e.response.status; }
  });
  cdp.on("Network.dataReceived", (e) => {
    const r = media.get(e.requestId);
    if (r) r.bytes += e.dataLength;
  });
  cdp.on("Network.loadingFinished", (e) => {
    const r = media.get(e.requestId);
    if (r) r.done = wall(e.timestamp);
  });
  cdp.on("Network.loadingFailed", (e) => {
    const r = media.get(e.requestId);
    if (r) { r.done = wall(e.timestamp); r.failed = e.canceled ? "canceled" : e.errorText; }
  });
}

/** The playback requests that were under way in [fromWall, toWall] (ms), relative to fromWall. */
function mediaBetween(fromWall, toWall) {
  const rel = (t) => (t == null ? null : Math.round(t - fromWall));
  return [...media.values()]
    .filter((r) => r.sent != null && r.sent <= toWall && (r.done == null || r.done >= fromWall))
    .map((r) => ({ method: r.method, range: r.range, status: r.status, sent: rel(r.sent), headers: rel(r.headers),
      done: rel(r.done), bytes: r.bytes, failed: r.failed }));
}

async function hookPlayback() {
  await page.evaluate(`(${frameHook})({selector: ".playback-grid video", code: false,
    key: (v) => () => "playback"})`);
}

async function clockOffset() {
  // Date.now() vs timeOrigin + now(): the page's wall clock against its monotonic clock.
  const samples = [];
  for (let i = 0; i < 5; i++) {
    samples.push(await page.evaluate(() => Date.now() - (performance.timeOrigin + performance.now())));
  }
  samples.sort((a, b) => a - b);
  return samples[2];
}

async function signIn() {
  await page.goto(cfg.url);
  await page.waitForSelector("form.login");
  await page.fill("input[name=username]", cfg.user);
  await page.fill("input[name=password]", cfg.password);
  await page.click("form.login button[type=submit]");
  await page.waitForSelector("header.top", { timeout: 15000 });
}

/** Shows the live page with `layout` and every tile empty (chosen in the page, like a user). */
async function emptyLayout(layout, tiles) {
  await page.goto(`${cfg.url}#/live`);
  await page.waitForSelector("select[aria-label=Layout]");
  await page.selectOption("select[aria-label=Layout]", layout);
  await page.waitForFunction((n) => document.querySelectorAll(".grid .tile").length === n, tiles, { timeout: 15000 });
  await page.waitForSelector(".grid .tile select option", { state: "attached" });
  const empty = {};
  for (let i = 0; i < tiles; i++) empty[i] = "";
  await assign(empty);
  await page.waitForFunction(() => [...document.querySelectorAll(".grid .tile")].every((t) => t.dataset.state === "empty"), null, { timeout: 15000 });
  // Let the IntersectionObserver mark the tiles visible before any camera is assigned.
  await page.waitForTimeout(500);
  await hookTiles();
}

/** Assigns cameras to tiles (index → name, "" empties) at once; returns the page time of each. */
async function assign(map) {
  return page.evaluate((m) => {
    const out = {};
    for (const [i, cam] of Object.entries(m)) {
      const sel = /** @type {HTMLSelectElement} */ (document.querySelector(`.grid .tile[data-tile="${i}"] select`));
      out[i] = performance.now();
      sel.value = cam;
      sel.dispatchEvent(new Event("change"));
    }
    return out;
  }, map);
}

/** First presented frame of each tile after its assignment time. */
async function firstFrames(opened, limitMs) {
  const deadline = Date.now() + limitMs;
  let firsts = {};
  for (;;) {
    firsts = await page.evaluate((o) => {
      const out = {};
      for (const f of window.__lbf.frames) {
        const tile = f[0].split(":")[0];
        if (!(tile in o) || f[6] < o[tile] || out[tile]) continue;
        out[tile] = { expected_ms: f[2] - o[tile], presented_ms: f[3] - o[tile], callback_ms: f[6] - o[tile], number: f[1],
          seeks_before: (window.__lbf.seeks || {})[f[0]] || 0 };
      }
      return out;
    }, opened);
    if (Object.keys(firsts).length === Object.keys(opened).length || Date.now() > deadline) break;
    await page.waitForTimeout(50);
  }
  return firsts;
}

/** The playback page's "jump to date and time" (whole seconds, the browser's time zone). */
async function jump(us) {
  const local = await page.evaluate((t) => {
    const d = new Date(t / 1000);
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }, us);
  await page.fill("input[type=datetime-local]", local);
  await page.click("form.jump button[type=submit]");
  await page.waitForTimeout(500);
}

async function tileStates() {
  return page.evaluate(() => [...document.querySelectorAll(".grid .tile")].map((t) => {
    const v = /** @type {HTMLVideoElement} */ (t.querySelector("video"));
    const q = v.getVideoPlaybackQuality();
    const b = v.buffered;
    return {
      tile: t.dataset.tile, camera: t.dataset.camera, state: t.dataset.state, stream: t.dataset.stream,
      width: v.videoWidth, height: v.videoHeight, decoded: q.totalVideoFrames, dropped: q.droppedVideoFrames,
      lag_s: b.length ? b.end(b.length - 1) - v.currentTime : null, paused: v.paused,
    };
  }));
}

const commands = {
  async login() {
    browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: CHROMIUM_FLAGS });
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: cfg.viewport || { width: 1280, height: 800 } });
    await ctx.addInitScript(wsHook);
    await ctx.addInitScript(() => {
      document.addEventListener("securitypolicyviolation", (e) => {
        console.error(`CSP-VIOLATION ${e.violatedDirective} ${e.blockedURI}`);
      });
    });
    if (cfg.player_js) {
      // A candidate live player instead of the served one (bench A/B of client changes).
      const body = await readFile(cfg.player_js, "utf8");
      await ctx.route("**/assets/js/liveplayer.js", (route) => route.fulfill({
        status: 200, body, headers: { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-store" },
      }));
    }
    page = await ctx.newPage();
    await watchMedia();
    page.on("console", (m) => { if (m.text().startsWith("CSP-VIOLATION")) problems.push(m.text()); });
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    await signIn();
    return { version: browser.version() };
  },

  // {layout: "1"|"4x4", tiles: n, cameras: [names]}: empty tiles, then every camera at once.
  async layout(c) {
    await emptyLayout(c.layout, c.tiles);
    const map = {};
    c.cameras.forEach((cam, i) => { map[i] = cam; });
    await page.evaluate(() => { window.__lbf.seeks = {}; });
    const opened = await assign(map);
    const firsts = await firstFrames(opened, c.limit_ms || 10000);
    return { first: firsts, tiles: await tileStates() };
  },

  // {camera, reps, gap_ms}: in the single-tile layout, empty the tile and open the camera again.
  async reopen(c) {
    const out = [];
    for (let i = 0; i < c.reps; i++) {
      await assign({ 0: "" });
      await page.waitForTimeout(300);
      await page.evaluate(() => { window.__lbf.seeks = {}; });
      const opened = await assign({ 0: c.camera });
      const f = await firstFrames(opened, 5000);
      out.push(f["0"] || null);
      await page.waitForTimeout(c.gap_ms);
    }
    return { first: out };
  },

  async clear() {
    await page.evaluate(() => {
      window.__lbf.frames.length = 0;
      window.__lbf.seeks = {};
      window.__lbws.arrivals.length = 0;
    });
    return {};
  },

  async collect() {
    const got = await page.evaluate(() => {
      const r = {
        timeOrigin: performance.timeOrigin,
        frames: window.__lbf.frames.splice(0),
        seeks: window.__lbf.seeks || {},
        arrivals: window.__lbws.arrivals.splice(0),
        sockets: window.__lbws.sockets,
      };
      return r;
    });
    got.offset_ms = await clockOffset();
    got.tiles = await tileStates().catch(() => []);
    got.problems = problems.splice(0);
    return got;
  },

  async tiles() {
    return { tiles: await tileStates() };
  },

  // {camera, zoom_presses}: the playback page with one camera, the timeline zoomed in; answers
  // where on the timeline the camera's recorded range is (CSS pixels of the canvas).
  async playback(c) {
    // A candidate playback page script instead of the served one (A/B of a client change in
    // one run: each variant gets a fresh page).
    await page.unroute("**/assets/js/playback.js");
    if (c.playback_js) {
      const body = await readFile(c.playback_js, "utf8");
      await page.route("**/assets/js/playback.js", (route) => route.fulfill({
        status: 200, body, headers: { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-store" },
      }));
    }
    // A fresh page each time (a hash change alone would keep the previous view and video).
    await page.goto(`${cfg.url}#/playback`);
    await page.reload();
    await page.waitForSelector(".camera-choices input");
    for (const box of await page.locator(".camera-choices input").all()) {
      const want = (await box.getAttribute("value")) === c.camera;
      if ((await box.isChecked()) !== want) await box.click();
    }
    await page.waitForFunction(() => document.querySelectorAll(".playback-grid .tile").length === 1);
    await page.waitForFunction(() => {
      const v = document.querySelector(".playback-grid video");
      return v && v.readyState >= 2 && !v.seeking;
    }, null, { timeout: 20000 });
    const canvas = page.locator("canvas.timeline-canvas");
    for (let i = 0; i < c.zoom_presses; i++) {
      await page.click("button[aria-label='Zoom in timeline']");
      await page.waitForTimeout(150);
    }
    // Centre the view on the recording: a jump outside the view re-centres it on the jump, so
    // jump past the recording first, then to its middle.
    const spanUs = 3600e6 / 2 ** c.zoom_presses;
    await jump(c.last_us + 2 * spanUs);
    await jump((c.first_us + c.last_us) / 2);
    await page.waitForFunction(() => {
      const v = document.querySelector(".playback-grid video");
      return v && v.readyState >= 2 && !v.seeking;
    }, null, { timeout: 20000 });
    await page.waitForTimeout(800);
    await hookPlayback();
    await page.evaluate(() => {
      window.__lbseek = { ups: [] };
      document.addEventListener("pointerup", (e) => window.__lbseek.ups.push(e.timeStamp), { capture: true });
    });
    await canvas.scrollIntoViewIfNeeded();
    await page.waitForTimeout(300);
    if (c.screenshot) await page.screenshot({ path: c.screenshot });
    const box = await canvas.boundingBox();
    // The recorded range: the track row's green bar (#2f9e6b) in the canvas, once drawn.
    let range = null;
    for (let i = 0; i < 50; i++) {
      range = await page.evaluate(() => {
        const cv = /** @type {HTMLCanvasElement} */ (document.querySelector("canvas.timeline-canvas"));
        const dpr = window.devicePixelRatio || 1;
        const y = Math.round((22 + 11) * dpr);
        const d = cv.getContext("2d").getImageData(0, y, cv.width, 1).data;
        let x0 = -1;
        let x1 = -1;
        for (let x = 0; x < cv.width; x++) {
          const [r, gg, b] = [d[x * 4], d[x * 4 + 1], d[x * 4 + 2]];
          if (Math.abs(r - 47) < 12 && Math.abs(gg - 158) < 12 && Math.abs(b - 107) < 12) {
            if (x0 < 0) x0 = x;
            x1 = x;
          }
        }
        return { x0: x0 / dpr, x1: x1 / dpr, width: cv.clientWidth };
      });
      if (range.x1 - range.x0 > 20) break;
      await page.waitForTimeout(100);
    }
    const v = await page.evaluate(() => {
      const el = /** @type {HTMLVideoElement} */ (document.querySelector(".playback-grid video"));
      return { src: el.currentSrc, duration: el.duration };
    });
    return { box, range, video: v };
  },

  // {x, y}: one scrub (a click on the timeline at canvas CSS pixel x): from the pointer-up to
  // the first presented frame of the new position.
  async seek(c) {
    const box = await page.locator("canvas.timeline-canvas").boundingBox();
    const before = await page.evaluate(() => {
      const v = /** @type {HTMLVideoElement} */ (document.querySelector(".playback-grid video"));
      window.__lbseek.ups.length = 0;
      window.__lbseek.seeked = [];
      window.__lbseek.src = v.currentSrc;
      v.addEventListener("seeked", () => window.__lbseek.seeked.push(performance.now()), { once: true });
      window.__lbf.frames.length = 0;
      return { time: v.currentTime };
    });
    await page.mouse.click(box.x + c.x, box.y + c.y);
    const limit = Date.now() + (c.limit_ms || 10000);
    for (;;) {
      const r = await page.evaluate(() => {
        const v = /** @type {HTMLVideoElement} */ (document.querySelector(".playback-grid video"));
        const up = window.__lbseek.ups[0];
        if (up === undefined || v.seeking || v.readyState < 2) return null;
        const t = v.currentTime;
        const f = window.__lbf.frames.find((x) => x[6] >= up && x[4] <= t + 0.002 && t - x[4] < 0.2);
        if (!f) return null;
        return {
          up_wall: performance.timeOrigin + up, frame_wall: performance.timeOrigin + f[2],
          up, expected_ms: f[2] - up, presented_ms: f[3] - up, callback_ms: f[6] - up,
          seeked_ms: window.__lbseek.seeked.length ? window.__lbseek.seeked[0] - up : null,
          media_time: f[4], current_time: t, reloaded: v.currentSrc !== window.__lbseek.src,
          media_start_us: Number(/** @type {HTMLElement} */ (v.closest(".tile")).dataset.mediaStartUs),
        };
      });
      if (r) {
        const net = mediaBetween(r.up_wall, r.frame_wall);
        return { ...r, from_time: before.time, net };
      }
      if (Date.now() > limit) {
        const diag = await page.evaluate(() => {
          const v = /** @type {HTMLVideoElement} */ (document.querySelector(".playback-grid video"));
          return { current_time: v.currentTime, seeking: v.seeking, ready: v.readyState, ups: window.__lbseek.ups.length,
            seeked: window.__lbseek.seeked.length, frames: window.__lbf.frames.slice(-3).map((f) => [f[4], f[6]]) };
        });
        const upWall = await page.evaluate(() => performance.timeOrigin + (window.__lbseek.ups[0] ?? 0));
        return { timeout: true, from_time: before.time, ...diag, net: mediaBetween(upWall, Date.now()) };
      }
      await page.waitForTimeout(20);
    }
  },

  async quit() {
    if (browser) await browser.close();
    browser = null;
    return {};
  },
};

const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  let cmd;
  try {
    cmd = JSON.parse(line);
    const answer = await commands[cmd.cmd](cmd);
    process.stdout.write(`${JSON.stringify({ ok: true, ...answer })}\n`);
  } catch (e) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: e instanceof Error ? e.stack || e.message : String(e) })}\n`);
  }
  if (cmd && cmd.cmd === "quit") break;
}
if (browser) await browser.close().catch(() => {});
process.exit(0);
