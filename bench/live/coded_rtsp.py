#!/usr/bin/python3
"""A live RTSP camera whose every frame carries its own number, for bench/live.

Run with Debian's /usr/bin/python3 (GStreamer's introspection bindings). One mount, one shared
pipeline (every client of the mount gets the same frames):

    appsrc (I420 frames drawn here) ! x264enc tune=zerolatency (no B-frames) ! h264parse
      ! rtph264pay

Each frame shows a slowly scrolling texture (so the encoder has work like a real scene) and,
across its top, the frame number as a binary code: 16 columns, two rows of blocks, each block
W/16 wide and H/9 tall; the upper row is bit 15..0 of the number (white = 1), the lower row
the same bits inverted, so a reader decides every bit by comparing two blocks, whatever the
encoder did to the brightness. No OCR is needed: the page reads the blocks off a canvas.

Every frame's number and wall-clock times are logged to --log, one line per frame:

    <number> <pts_ns> <pushed_s> <first_packet_s> <last_packet_s> <sent_s>

pts_ns: the frame's timestamp (pipeline running time when it was pushed; the RTP timestamps and
so Vigil's decode times follow it); pushed_s: the raw frame entered appsrc; first/last_packet_s:
the payloader's first and last RTP packet of the frame (pad probes on the payloader: its input
gives each frame's output timestamp, in push order, since the encoder shifts timestamps by a
constant, and its output packets carry that timestamp); sent_s: the frame's last packet
reached the sink gst-rtsp-server writes to the TCP clients from (the moment before the sockets).
Times are time.time() (CLOCK_REALTIME), the clock the browser's performance.timeOrigin is on.
No access unit delimiters (aud=false): with them the payloader held each frame's slices back
by about 20 ms after sending the delimiter.

Protocol with the driver: stdout `READY port=<n>` once listening; --stats-file JSON rewritten
every 0.5 s (frames pushed, frames sent, plays); SIGTERM/SIGINT stop; exits when its parent
goes away.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstApp", "1.0")
from gi.repository import GLib, Gst, GstApp, GstRtsp, GstRtspServer  # noqa: E402, F401

BITS = 16
CODE_ROWS = 2  # bits, then inverted bits
ROWS_PER_HEIGHT = 9  # a block is H/9 tall


def log(msg):
    print(f"coded_rtsp: {msg}", file=sys.stderr, flush=True)


class Frames:
    """Builds I420 frames: a scrolling texture with the frame number coded on top."""

    def __init__(self, width, height):
        if width % 32 or height % 18:
            raise ValueError("width must be a multiple of 32 and height of 18")
        self.w, self.h = width, height
        self.bw, self.bh = width // BITS, height // ROWS_PER_HEIGHT
        # A texture twice as tall as the frame, periodic in height, so a frame is one slice.
        rows = []
        for y in range(2 * height):
            yy = y % height
            row = bytearray(width)
            for x in range(width):
                row[x] = 40 + ((x * 7 + yy * 3) ^ (x // 9 * 13 + yy // 7 * 29)) % 150
            rows.append(bytes(row))
        self.texture = b"".join(rows)
        self.chroma = bytes([128]) * (width * height // 2)
        self.white = bytes([235]) * self.bw
        self.black = bytes([16]) * self.bw

    def make(self, number):
        w, h = self.w, self.h
        off = (number * 2 % h) * w
        luma = bytearray(self.texture[off:off + w * h])
        code = number & ((1 << BITS) - 1)
        for bit in range(BITS):
            one = bool(code >> (BITS - 1 - bit) & 1)
            x0 = bit * self.bw
            for r in range(CODE_ROWS):
                block = self.white if one != (r == 1) else self.black
                for y in range(r * self.bh, (r + 1) * self.bh):
                    luma[y * w + x0:y * w + x0 + self.bw] = block
        return bytes(luma) + self.chroma


class Camera:
    def __init__(self, args):
        self.args = args
        self.frames = Frames(args.width, args.height)
        self.lock = threading.Lock()
        self.appsrc = None
        self.generation = 0
        self.number = 0  # next frame number, over the whole process
        self.pushed = 0
        self.sent = 0
        self.plays = 0
        self.medias = 0
        # Frames pushed and not yet seen by the payloader, in push order, and frames by the
        # payloader's PTS: [number, pts pushed, pushed, first packet, last packet, sent].
        self.queued = []
        self.by_pts = {}
        self.shift = None
        self.unmatched = 0
        self.misordered = 0
        self.stopping = threading.Event()
        self.logf = open(args.log, "w", buffering=1)
        self.thread = threading.Thread(target=self.feed, name="feed", daemon=True)
        self.thread.start()

    def factory(self):
        a = self.args
        caps = f"video/x-raw,format=I420,width={a.width},height={a.height},framerate={a.fps}/1"
        launch = (
            f'( appsrc name=src is-live=true format=time do-timestamp=false min-latency=0 caps="{caps}" '
            f"! x264enc name=enc tune=zerolatency speed-preset=ultrafast bframes=0 threads=1 aud=false "
            f"key-int-max={a.gop} bitrate={a.kbps} "
            f"! video/x-h264,profile=constrained-baseline ! h264parse config-interval=-1 "
            f"! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )
        f = GstRtspServer.RTSPMediaFactory()
        f.set_launch(launch)
        f.set_shared(True)
        f.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
        f.connect("media-configure", self.on_media_configure)
        return f

    def on_media_configure(self, _factory, media):
        element = media.get_element()
        src = element.get_by_name("src")
        pay = element.get_by_name("pay0")
        kinds = Gst.PadProbeType.BUFFER | Gst.PadProbeType.BUFFER_LIST
        pay.get_static_pad("sink").add_probe(kinds, self.pay_sink_probe)
        pay.get_static_pad("src").add_probe(kinds, self.pay_src_probe)
        # gst-rtsp-server adds the sinks that write to the clients when a transport is set up:
        # an appsink per stream for RTP over TCP. Its sink pad is the last point before the
        # sockets.
        pipeline = element.get_parent()
        if pipeline is not None:
            pipeline.connect("deep-element-added", self.on_element_added)
        media.connect("unprepared", self.on_unprepared, src)
        with self.lock:
            self.medias += 1
            self.appsrc = src
            self.generation += 1
            # A new pipeline: its encoder shifts timestamps by a constant of its own.
            self.queued, self.by_pts, self.shift = [], {}, None

    def on_element_added(self, _bin, _sub, el):
        factory = el.get_factory()
        if factory and factory.get_name() == "appsink":
            # RTCP goes to an appsink too; its buffers carry no PTS of a frame.
            el.get_static_pad("sink").add_probe(
                Gst.PadProbeType.BUFFER | Gst.PadProbeType.BUFFER_LIST, self.sink_probe)

    def on_unprepared(self, _media, src):
        with self.lock:
            if self.appsrc is src:
                self.appsrc = None
                self.generation += 1

    @staticmethod
    def buffers(info):
        if info.type & Gst.PadProbeType.BUFFER:
            return [info.get_buffer()]
        lst = info.get_buffer_list()
        return [lst.get(i) for i in range(lst.length())] if lst is not None else []

    def pay_sink_probe(self, _pad, info):
        """One encoded access unit per frame, in push order: gives each frame its output PTS
        (the encoder shifts timestamps by a constant, so they are matched by order here and
        the constant is checked)."""
        with self.lock:
            for buf in self.buffers(info):
                if not self.queued:
                    self.unmatched += 1
                    continue
                entry = self.queued.pop(0)
                shift = buf.pts - entry[1]
                if self.shift is None:
                    self.shift = shift
                elif shift != self.shift:
                    self.misordered += 1
                self.by_pts[buf.pts] = entry
        return Gst.PadProbeReturn.OK

    def pay_src_probe(self, _pad, info):
        now = time.time()
        with self.lock:
            for buf in self.buffers(info):
                e = self.by_pts.get(buf.pts)
                if e is not None:
                    if e[3] is None:
                        e[3] = now
                    e[4] = now
        return Gst.PadProbeReturn.OK

    def sink_probe(self, _pad, info):
        now = time.time()
        done = []
        with self.lock:
            for buf in self.buffers(info):
                e = self.by_pts.get(buf.pts)
                if e is None:
                    continue  # RTCP, or a frame already logged
                e[5] = now
                # The payloader sets no RTP marker here, so a frame's last packet is known
                # when a packet of a later frame passes; its time was kept as it passed.
                for pts in [k for k, v in self.by_pts.items() if v[0] < e[0] and v[5] is not None]:
                    done.append(self.by_pts.pop(pts))
            self.sent += len(done)
        for e in done:
            self.write(e)
        return Gst.PadProbeReturn.OK

    def write(self, e):
        self.logf.write(f"{e[0]} {e[1]} {e[2]:.6f} {e[3] or 0:.6f} {e[4] or 0:.6f} {e[5] or 0:.6f}\n")

    def feed(self):
        period = 1.0 / self.args.fps
        while not self.stopping.is_set():
            with self.lock:
                src, generation = self.appsrc, self.generation
            if src is None:
                time.sleep(0.02)
                continue
            _, state, _ = src.get_state(0)
            clock = src.get_clock()
            if state != Gst.State.PLAYING or clock is None:
                time.sleep(0.005)
                continue
            nxt = time.monotonic()
            while not self.stopping.is_set():
                with self.lock:
                    if self.generation != generation:
                        break
                delay = nxt - time.monotonic()
                if delay > 0:
                    time.sleep(min(delay, 0.05))
                    continue
                # A late frame (the machine was busy) is not made up for with a burst: the
                # schedule restarts from now, as a real camera's sensor would just go on.
                nxt = max(nxt + period, time.monotonic() + period / 2)
                with self.lock:
                    number = self.number
                    self.number += 1
                data = self.frames.make(number)
                buf = Gst.Buffer.new_wrapped(data)
                pts = clock.get_time() - src.get_base_time()
                buf.pts = pts
                buf.dts = pts
                buf.duration = int(Gst.SECOND * period)
                with self.lock:
                    entry = [number, pts, time.time(), None, None, None]
                    self.queued.append(entry)
                    self.pushed += 1
                if src.emit("push-buffer", buf) != Gst.FlowReturn.OK:
                    with self.lock:
                        if entry in self.queued:
                            self.queued.remove(entry)
                    time.sleep(0.05)
                    break

    def stats(self):
        with self.lock:
            return {"frames_pushed": self.pushed, "frames_sent": self.sent, "plays": self.plays,
                    "medias_created": self.medias, "next_number": self.number,
                    "unmatched": self.unmatched, "misordered": self.misordered}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--mount", default="/coded")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--gop", type=int, default=50)
    ap.add_argument("--kbps", type=int, default=800)
    ap.add_argument("--log", required=True, help="per-frame log file")
    ap.add_argument("--stats-file", required=True)
    args = ap.parse_args()
    if not 1 <= args.fps <= 60:
        ap.error("--fps must be 1..60")

    Gst.init(None)
    cam = Camera(args)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    server.get_mount_points().add_factory(args.mount, cam.factory())

    def on_client(_server, client):
        def on_play(_client, _ctx):
            with cam.lock:
                cam.plays += 1
        client.connect("play-request", on_play)

    server.connect("client-connected", on_client)
    if server.attach(None) == 0:
        log("cannot listen")
        return 3
    loop = GLib.MainLoop()
    parent = os.getppid()

    def write_stats():
        tmp = f"{args.stats_file}.tmp"
        with open(tmp, "w") as f:
            json.dump(cam.stats(), f)
        os.replace(tmp, args.stats_file)

    def tick():
        write_stats()
        if os.getppid() != parent:
            loop.quit()
        return GLib.SOURCE_CONTINUE

    def stop(_sig=None):
        loop.quit()
        return GLib.SOURCE_REMOVE

    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, stop, None)
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, stop, None)
    GLib.timeout_add(500, tick)
    write_stats()
    print(f"READY port={server.get_bound_port()}", flush=True)
    loop.run()
    cam.stopping.set()
    cam.thread.join(timeout=2)
    write_stats()
    cam.logf.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
