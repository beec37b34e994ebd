#!/usr/bin/env node
// Plays an MP4 file in a real Chromium (Debian's package, driven by playwright-core) and
// reports what the browser did with it as one JSON line on stdout.
//
//   node play.mjs FILE.mp4 [--mode src|mse] [--screenshot out.png] [--codec 'video/mp4; codecs="avc1.64001f"']
//                          [--min-play SECS] [--timeout SECS] [--no-offset] [--chromium PATH]
//
// Modes:
//   src  <video src> over HTTP with Range support (Chromium's own demuxer, like a download link)
//   mse  Media Source Extensions: init segment, then each moof+mdat appended separately (like a
//        live/timeline player). Vigil's fragments carry absolute decode times; an export's init
//        carries an edit list that starts its presentation at the first fragment, which the
//        browser applies itself. By default `timestampOffset` is set to minus what remains of
//        the first fragment's start after that edit (0 for an export), which makes the timeline
//        begin at 0; --no-offset keeps the file's times and seeks to the buffered start.
//
// Exit status: 0 when the video played at least --min-play seconds with frames decoded and no
// media error, 1 when playback failed (the JSON says why in "reason"), 2 for bad usage or a
// missing browser. The browser, its profile directory and the HTTP server are always cleaned up.

import { createServer } from "node:http";
import { open, readFile, stat, mkdtemp, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { CHROMIUM_FLAGS } from "./chromium.mjs";

const USAGE =
  "usage: node play.mjs FILE.mp4 [--mode src|mse] [--screenshot out.png] [--codec MIME] " +
  "[--min-play SECS] [--timeout SECS] [--no-offset] [--chromium PATH]";

class UsageError extends Error {}

function parseArgs(argv) {
  const opts = {
    file: null,
    mode: "src",
    screenshot: null,
    codec: null,
    minPlay: 2,
    timeout: 30,
    offset: true,
    chromium: process.env.CHROMIUM || "/usr/bin/chromium",
  };
  const value = (i, name) => {
    if (i + 1 >= argv.length) throw new UsageError(`${name} needs a value`);
    return argv[i + 1];
  };
  const number = (s, name) => {
    const n = Number(s);
    if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${name} must be a positive number, got '${s}'`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case "--mode":
        opts.mode = value(i, a);
        i++;
        if (!["src", "mse"].includes(opts.mode)) throw new UsageError(`--mode must be src or mse, got '${opts.mode}'`);
        break;
      case "--screenshot":
        opts.screenshot = resolve(value(i, a));
        i++;
        break;
      case "--codec":
        opts.codec = value(i, a);
        i++;
        break;
      case "--min-play":
        opts.minPlay = number(value(i, a), a);
        i++;
        break;
      case "--timeout":
        opts.timeout = number(value(i, a), a);
        i++;
        break;
      case "--no-offset":
        opts.offset = false;
        break;
      case "--chromium":
        opts.chromium = value(i, a);
        i++;
        break;
      case "-h":
      case "--help":
        throw new UsageError("help");
      default:
        if (a.startsWith("--")) throw new UsageError(`unknown option ${a}`);
        if (opts.file) throw new UsageError(`only one file may be given (got '${opts.file}' and '${a}')`);
        opts.file = resolve(a);
    }
  }
  if (!opts.file) throw new UsageError("no FILE given");
  return opts;
}

// ---------------------------------------------------------------------------------------------
// Minimal ISO BMFF reading: enough to split the file into init + fragments, find the codec
// configuration and the first fragment's decode time. Errors name the byte offset.

function boxes(buf, start, end) {
  const out = [];
  let pos = start;
  while (pos < end) {
    if (end - pos < 8) throw new Error(`truncated box header at byte ${pos}`);
    let size = buf.readUInt32BE(pos);
    const type = buf.toString("latin1", pos + 4, pos + 8);
    let header = 8;
    if (size === 1) {
      if (end - pos < 16) throw new Error(`truncated 64-bit box size at byte ${pos}`);
      size = Number(buf.readBigUInt64BE(pos + 8));
      header = 16;
    } else if (size === 0) {
      size = end - pos;
    }
    if (size < header || pos + size > end) {
      throw new Error(`box '${type}' at byte ${pos} has size ${size}, beyond the end (${end})`);
    }
    out.push({ type, start: pos, end: pos + size, body: pos + header });
    pos += size;
  }
  return out;
}

function child(buf, parent, type) {
  return boxes(buf, parent.body, parent.end).find((b) => b.type === type) || null;
}

function path(buf, parent, types) {
  let cur = parent;
  for (const t of types) {
    cur = child(buf, cur, t);
    if (!cur) return null;
  }
  return cur;
}

const hex2 = (n) => n.toString(16).padStart(2, "0");

// RFC 6381 string for an avcC (ISO 14496-15 §5.3.3.1): avc1.PPCCLL.
function avcCodec(entryType, avcC, buf) {
  const b = avcC.body;
  if (avcC.end - b < 4) throw new Error(`avcC at byte ${avcC.start} is too short`);
  return `${entryType}.${hex2(buf[b + 1])}${hex2(buf[b + 2])}${hex2(buf[b + 3])}`;
}

// RFC 6381 / ISO 14496-15 Annex E string for an hvcC, e.g. hvc1.1.6.L93.B0.
function hevcCodec(entryType, hvcC, buf) {
  const b = hvcC.body;
  if (hvcC.end - b < 13) throw new Error(`hvcC at byte ${hvcC.start} is too short`);
  const ptl = buf[b + 1];
  const space = ["", "A", "B", "C"][ptl >> 6];
  const tier = (ptl >> 5) & 1 ? "H" : "L";
  const profile = ptl & 0x1f;
  let compat = buf.readUInt32BE(b + 2);
  let reversed = 0;
  for (let i = 0; i < 32; i++) {
    reversed = (reversed << 1) | (compat & 1);
    compat >>>= 1;
  }
  const level = buf[b + 12];
  const constraints = [];
  for (let i = 0; i < 6; i++) constraints.push(buf[b + 6 + i]);
  while (constraints.length > 1 && constraints[constraints.length - 1] === 0) constraints.pop();
  const cs = constraints.map((c) => c.toString(16).toUpperCase()).join(".");
  return `${entryType}.${space}${profile}.${(reversed >>> 0).toString(16).toUpperCase()}.${tier}${level}.${cs}`;
}

function inspect(buf) {
  const top = boxes(buf, 0, buf.length);
  const moovIdx = top.findIndex((b) => b.type === "moov");
  if (moovIdx < 0) throw new Error("no 'moov' box: not an MP4 init segment");
  const moov = top[moovIdx];
  const trak = child(buf, moov, "trak");
  if (!trak) throw new Error("'moov' has no 'trak'");
  const mdhd = path(buf, trak, ["mdia", "mdhd"]);
  if (!mdhd) throw new Error("'trak' has no 'mdia/mdhd'");
  const mdhdVersion = buf[mdhd.body];
  const timescale = buf.readUInt32BE(mdhd.body + (mdhdVersion === 1 ? 20 : 12));
  const stsd = path(buf, trak, ["mdia", "minf", "stbl", "stsd"]);
  if (!stsd) throw new Error("'trak' has no 'mdia/minf/stbl/stsd'");
  // stsd: full box header (4) + entry count (4); a visual sample entry has 78 bytes of fields
  // after its own box header before its child boxes (ISO 14496-12 §12.1.3).
  const entries = boxes(buf, stsd.body + 8, stsd.end);
  if (entries.length === 0) throw new Error("'stsd' has no sample entry");
  const entry = entries[0];
  const config = boxes(buf, entry.body + 78, entry.end);
  const avcC = config.find((b) => b.type === "avcC");
  const hvcC = config.find((b) => b.type === "hvcC");
  let codec = null;
  if (avcC) codec = avcCodec(entry.type, avcC, buf);
  else if (hvcC) codec = hevcCodec(entry.type, hvcC, buf);
  // An edit list (edts/elst) shifts the presentation by its first entry's media time.
  let editMediaTime = 0;
  const elst = path(buf, trak, ["edts", "elst"]);
  if (elst) {
    const v = buf[elst.body];
    if (buf.readUInt32BE(elst.body + 4) > 0) {
      editMediaTime = v === 1 ? Number(buf.readBigInt64BE(elst.body + 16)) : buf.readInt32BE(elst.body + 12);
    }
  }
  const width = buf.readUInt16BE(entry.body + 24);
  const height = buf.readUInt16BE(entry.body + 26);

  // Media segments: each 'moof' with everything up to the next 'moof' (its 'mdat').
  const initEnd = moov.end;
  const segments = [];
  let firstTfdt = null;
  for (const b of top.slice(moovIdx + 1)) {
    if (b.type === "moof") {
      segments.push({ start: b.start, end: b.end });
      if (firstTfdt === null) {
        const tfdt = path(buf, b, ["traf", "tfdt"]);
        if (tfdt) {
          const v = buf[tfdt.body];
          firstTfdt = v === 1 ? Number(buf.readBigUInt64BE(tfdt.body + 4)) : buf.readUInt32BE(tfdt.body + 4);
        }
      }
    } else if (segments.length > 0) {
      segments[segments.length - 1].end = b.end;
    }
  }
  return {
    top_level: top.map((b) => b.type),
    entry: entry.type,
    codec,
    width,
    height,
    timescale,
    init_bytes: initEnd,
    fragments: segments.length,
    first_tfdt: firstTfdt,
    first_tfdt_secs: firstTfdt === null ? null : firstTfdt / timescale,
    edit_media_time: editMediaTime,
    edit_media_time_secs: editMediaTime / timescale,
    // Where the first fragment lands on the timeline the browser builds from the file.
    first_start_secs: firstTfdt === null ? null : (firstTfdt - editMediaTime) / timescale,
    segments,
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP server: the page and the file, with single byte-range support (what <video src> uses).

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>vigil playback check</title>
<style>html,body{margin:0;background:#000}video{display:block}</style></head>
<body><video id="v" muted playsinline></video></body></html>`;

function startServer(file, size) {
  const server = createServer(async (req, res) => {
    try {
      if (req.url === "/" || req.url === "/index.html") {
        res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
        res.end(PAGE);
        return;
      }
      if (req.url === "/favicon.ico") {
        res.writeHead(204);
        res.end();
        return;
      }
      if (req.url !== "/video.mp4") {
        res.writeHead(404);
        res.end();
        return;
      }
      let start = 0;
      let end = size - 1;
      let status = 200;
      const range = req.headers.range;
      if (range) {
        const m = /^bytes=(\d*)-(\d*)$/.exec(range);
        if (!m || (m[1] === "" && m[2] === "")) {
          res.writeHead(416, { "content-range": `bytes */${size}` });
          res.end();
          return;
        }
        if (m[1] === "") {
          start = Math.max(0, size - Number(m[2]));
        } else {
          start = Number(m[1]);
          if (m[2] !== "") end = Math.min(end, Number(m[2]));
        }
        if (start > end || start >= size) {
          res.writeHead(416, { "content-range": `bytes */${size}` });
          res.end();
          return;
        }
        status = 206;
      }
      const headers = {
        "content-type": "video/mp4",
        "accept-ranges": "bytes",
        "content-length": String(end - start + 1),
        "cache-control": "no-store",
      };
      if (status === 206) headers["content-range"] = `bytes ${start}-${end}/${size}`;
      res.writeHead(status, headers);
      if (req.method === "HEAD") {
        res.end();
        return;
      }
      const fh = await open(file, "r");
      const stream = fh.createReadStream({ start, end });
      stream.on("close", () => fh.close().catch(() => {}));
      stream.pipe(res);
    } catch (e) {
      res.destroy(e);
    }
  });
  return new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => ok(server));
  });
}

// ---------------------------------------------------------------------------------------------
// In-page code. Runs inside Chromium; results stay on window.__vigil for the driver to poll.

function pageSetup(o) {
  const v = document.getElementById("v");
  const st = {
    events: [],
    error: null,
    mseError: null,
    started: false,
    startTime: null,
    presentedFrames: 0,
    seekedToStart: null,
    mse: null,
  };
  window.__vigil = st;
  const ranges = (r) => {
    const out = [];
    for (let i = 0; i < r.length; i++) out.push([+r.start(i).toFixed(6), +r.end(i).toFixed(6)]);
    return out;
  };
  const snapshot = () => ({
    currentTime: v.currentTime,
    duration: Number.isFinite(v.duration) ? v.duration : String(v.duration),
    videoWidth: v.videoWidth,
    videoHeight: v.videoHeight,
    buffered: ranges(v.buffered),
    seekable: ranges(v.seekable),
  });
  v.addEventListener("playing", () => {
    if (st.playingAt === undefined) st.playingAt = v.currentTime;
  });
  const note = (e) => {
    if (st.events.length < 200) st.events.push(`${e}@${v.currentTime.toFixed(3)}`);
  };
  for (const e of ["loadedmetadata", "loadeddata", "canplay", "playing", "waiting", "stalled", "seeking", "seeked", "ended"]) {
    v.addEventListener(e, () => note(e));
  }
  v.addEventListener("error", () => {
    const err = v.error;
    st.error = err ? `MediaError code ${err.code}: ${err.message || "(no message)"}` : "error event without MediaError";
    note("error");
  });
  if ("requestVideoFrameCallback" in v) {
    const onFrame = (_now, meta) => {
      st.presentedFrames = meta.presentedFrames;
      v.requestVideoFrameCallback(onFrame);
    };
    v.requestVideoFrameCallback(onFrame);
  }
  v.muted = true;
  v.autoplay = true;

  const startPlaying = () => {
    // A non-zero first timestamp leaves currentTime before the first buffered range; jump to
    // where the media really begins, otherwise playback waits forever for data at 0.
    if (v.buffered.length > 0 && v.currentTime + 0.1 < v.buffered.start(0)) {
      st.seekedToStart = { from: v.currentTime, to: v.buffered.start(0) };
      v.currentTime = v.buffered.start(0);
    }
    st.started = true;
    v.play().catch((e) => {
      st.error = st.error || `play() rejected: ${e.name}: ${e.message}`;
    });
  };

  if (o.mode === "src") {
    v.addEventListener("loadedmetadata", () => {
      st.metadata = snapshot();
    }, { once: true });
    v.addEventListener("canplay", startPlaying, { once: true });
    v.src = "/video.mp4";
    return;
  }

  // MSE: fetch once, then append the init segment and every fragment separately so an error
  // names the fragment that caused it.
  const mse = { codec: o.codec, supported: MediaSource.isTypeSupported(o.codec), appended: 0, events: [] };
  st.mse = mse;
  if (!mse.supported) {
    st.mseError = `MediaSource.isTypeSupported('${o.codec}') is false: this Chromium cannot decode the codec`;
    return;
  }
  const ms = new MediaSource();
  for (const e of ["sourceopen", "sourceended", "sourceclose"]) {
    ms.addEventListener(e, () => mse.events.push(`${e}(readyState=${ms.readyState})`));
  }
  v.src = URL.createObjectURL(ms);
  ms.addEventListener("sourceopen", async () => {
    try {
      const data = new Uint8Array(await (await fetch("/video.mp4")).arrayBuffer());
      const sb = ms.addSourceBuffer(o.codec);
      const append = (bytes) =>
        new Promise((ok, fail) => {
          const done = () => {
            sb.removeEventListener("updateend", done);
            sb.removeEventListener("error", bad);
            ok();
          };
          const bad = () => {
            sb.removeEventListener("updateend", done);
            sb.removeEventListener("error", bad);
            fail(new Error("the SourceBuffer rejected the append"));
          };
          sb.addEventListener("updateend", done);
          sb.addEventListener("error", bad);
          sb.appendBuffer(bytes);
        });
      await append(data.subarray(0, o.initBytes));
      mse.appended++;
      if (o.offset && o.firstStartSecs) {
        sb.timestampOffset = -o.firstStartSecs;
      }
      mse.timestampOffset = sb.timestampOffset;
      for (const [i, seg] of o.segments.entries()) {
        try {
          await append(data.subarray(seg.start, seg.end));
        } catch (e) {
          throw new Error(`fragment ${i} (bytes ${seg.start}..${seg.end}): ${e.message}`);
        }
        mse.appended++;
      }
      mse.bufferedBeforePlay = ranges(sb.buffered);
      ms.endOfStream();
      st.metadata = snapshot();
      startPlaying();
    } catch (e) {
      st.mseError = st.mseError || `${e.name}: ${e.message}`;
    }
  });
}

function pageSnapshot() {
  const v = document.getElementById("v");
  const st = window.__vigil;
  const ranges = (r) => {
    const out = [];
    for (let i = 0; i < r.length; i++) out.push([+r.start(i).toFixed(6), +r.end(i).toFixed(6)]);
    return out;
  };
  const q = v.getVideoPlaybackQuality();
  return {
    currentTime: v.currentTime,
    paused: v.paused,
    ended: v.ended,
    readyState: v.readyState,
    networkState: v.networkState,
    videoWidth: v.videoWidth,
    videoHeight: v.videoHeight,
    duration: Number.isFinite(v.duration) ? v.duration : String(v.duration),
    buffered: ranges(v.buffered),
    seekable: ranges(v.seekable),
    quality: {
      total: q.totalVideoFrames,
      dropped: q.droppedVideoFrames,
      corrupted: q.corruptedVideoFrames ?? null,
    },
    presentedFrames: st.presentedFrames,
    started: st.started,
    error: st.error,
    mseError: st.mseError,
    seekedToStart: st.seekedToStart,
    playingAt: st.playingAt ?? null,
    metadata: st.metadata || null,
    events: st.events,
    mse: st.mse,
  };
}

// What the current frame looks like, read back through a canvas: a decoder that outputs
// black or a single colour would still advance currentTime, so tests check the picture too.
function pageFrameStats() {
  const v = document.getElementById("v");
  const w = 160;
  const h = 90;
  const c = document.createElement("canvas");
  c.width = w;
  c.height = h;
  const ctx = c.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(v, 0, 0, w, h);
  const px = ctx.getImageData(0, 0, w, h).data;
  let sum = 0;
  let sq = 0;
  const colours = new Set();
  for (let i = 0; i < px.length; i += 4) {
    const y = 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
    sum += y;
    sq += y * y;
    colours.add(((px[i] >> 5) << 6) | ((px[i + 1] >> 5) << 3) | (px[i + 2] >> 5));
  }
  const n = px.length / 4;
  const mean = sum / n;
  return {
    luma_mean: +mean.toFixed(2),
    luma_stddev: +Math.sqrt(Math.max(0, sq / n - mean * mean)).toFixed(2),
    colours: colours.size,
  };
}

// ---------------------------------------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(e.message === "help" ? USAGE : `error: ${e.message}\n${USAGE}`);
    return 2;
  }
  const result = { ok: false, mode: opts.mode, file: opts.file, reason: null };
  const emit = (code) => {
    process.stdout.write(JSON.stringify(result) + "\n");
    return code;
  };
  const fail = (reason) => {
    result.reason = reason;
    return emit(1);
  };

  if (!existsSync(opts.chromium)) {
    result.reason = `no Chromium at ${opts.chromium}: install it with 'apt-get install -y chromium' (or pass --chromium PATH)`;
    return emit(2);
  }
  let chromium;
  try {
    ({ chromium } = await import("playwright-core"));
  } catch (e) {
    result.reason = `cannot load playwright-core (${e.message}): run: cd tests/browser && npm ci`;
    return emit(2);
  }

  let info;
  let size;
  try {
    size = (await stat(opts.file)).size;
    info = inspect(await readFile(opts.file));
  } catch (e) {
    return fail(`cannot read ${opts.file} as MP4: ${e.message}`);
  }
  const { segments, ...fileInfo } = info;
  result.bytes = size;
  result.mp4 = fileInfo;
  const mime = opts.codec || (info.codec ? `video/mp4; codecs="${info.codec}"` : null);
  result.mime = mime;
  if (opts.mode === "mse" && !mime) {
    return fail("no avcC/hvcC in the sample entry, so no codec string: pass --codec");
  }
  if (opts.mode === "mse" && info.fragments === 0) {
    return fail("the file has no 'moof' fragments; MSE mode needs a fragmented MP4");
  }

  const deadline = Date.now() + opts.timeout * 1000;
  let server;
  let context;
  let profile;
  const console_ = [];
  try {
    server = await startServer(opts.file, size);
    const base = `http://127.0.0.1:${server.address().port}`;
    profile = await mkdtemp(join(tmpdir(), "vigil-chromium-"));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: opts.chromium,
      headless: true,
      args: ["--headless", ...CHROMIUM_FLAGS],
      timeout: opts.timeout * 1000,
    });
    result.browser = context.browser() ? context.browser().version() : null;
    const page = context.pages()[0] || (await context.newPage());
    page.on("console", (m) => console_.length < 50 && console_.push(`${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => console_.length < 50 && console_.push(`pageerror: ${e.message}`));
    await page.goto(`${base}/`, { timeout: opts.timeout * 1000 });
    if (!result.browser) result.browser = await page.evaluate(() => navigator.userAgent);

    await page.evaluate(pageSetup, {
      mode: opts.mode,
      codec: mime,
      initBytes: info.init_bytes,
      segments,
      firstStartSecs: info.first_start_secs,
      offset: opts.offset,
    });

    let snap = null;
    let startTime = null;
    let shot = false;
    const onPlaying = async (s) => {
      if (startTime === null && s.started && !s.paused && s.readyState >= 2) startTime = s.currentTime;
      if (opts.screenshot && !shot && startTime !== null && s.currentTime - startTime >= Math.min(1, opts.minPlay / 2)) {
        shot = true;
        await page.screenshot({ path: opts.screenshot, timeout: 10_000 });
        result.screenshot = { path: opts.screenshot, at: s.currentTime };
      }
    };
    for (;;) {
      snap = await page.evaluate(pageSnapshot);
      if (snap.error || snap.mseError) break;
      await onPlaying(snap);
      if (startTime !== null && snap.currentTime - startTime >= opts.minPlay && (shot || !opts.screenshot)) break;
      if (snap.ended) break;
      if (Date.now() > deadline) break;
      await sleep(100);
    }
    result.video = snap;
    if (startTime !== null && !snap.error && !snap.mseError) {
      result.frame = await page.evaluate(pageFrameStats);
    }
    result.start_time = startTime;
    result.played_secs = startTime === null ? 0 : snap.currentTime - startTime;
    result.console = console_;

    if (snap.mseError) return fail(`MSE: ${snap.mseError}${snap.error ? `; ${snap.error}` : ""}`);
    if (snap.error) return fail(`media error: ${snap.error}`);
    if (startTime === null) {
      return fail(
        `playback never started within ${opts.timeout}s (readyState ${snap.readyState}, currentTime ` +
          `${snap.currentTime}, buffered ${JSON.stringify(snap.buffered)}, events ${snap.events.join(" ")})`,
      );
    }
    if (result.played_secs < opts.minPlay) {
      return fail(
        `played only ${result.played_secs.toFixed(3)}s of ${opts.minPlay}s within ${opts.timeout}s ` +
          `(currentTime ${snap.currentTime}, buffered ${JSON.stringify(snap.buffered)}, events ${snap.events.join(" ")})`,
      );
    }
    if (snap.videoWidth === 0 || snap.videoHeight === 0) return fail("playing, but the video has no picture size");
    if (snap.quality.total === 0) return fail("currentTime advanced but Chromium decoded no video frame");
    if (result.frame.colours < 8 || result.frame.luma_stddev < 5) {
      return fail(`the picture is (nearly) uniform: ${JSON.stringify(result.frame)}; the decoder shows no real frame`);
    }
    result.ok = true;
    return emit(0);
  } catch (e) {
    result.console = console_;
    return fail(`${e.name}: ${e.message.split("\n")[0]}`);
  } finally {
    if (context) await context.close().catch(() => {});
    if (server) {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
    if (profile) await rm(profile, { recursive: true, force: true }).catch(() => {});
  }
}

// A hard stop in case the browser hangs somewhere the per-call timeouts do not cover.
const args = process.argv.slice(2);
const ti = args.indexOf("--timeout");
const hard = (ti >= 0 && Number(args[ti + 1]) > 0 ? Number(args[ti + 1]) : 30) * 1000 + 20_000;
const guard = setTimeout(() => {
  process.stdout.write(JSON.stringify({ ok: false, reason: `play.mjs did not finish within ${hard / 1000}s` }) + "\n");
  process.exit(1);
}, hard);
guard.unref();

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stdout.write(JSON.stringify({ ok: false, reason: `internal error: ${e.stack || e}` }) + "\n");
    process.exitCode = 1;
  },
);
