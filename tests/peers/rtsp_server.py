#!/usr/bin/python3
"""A real RTSP server (GStreamer's gst-rtsp-server) used as a camera in Vigil's tests.

Run it with Debian's /usr/bin/python3 (the GStreamer introspection bindings live there, not in
a pyenv python). Every mount loops one clip forever with continuously increasing timestamps.

Why appsrc and not `filesrc ! qtdemux`: a shared media built on a seekable file source restarts
from the beginning for every client that joins. Here each clip is demuxed and parsed once into
memory; a feeder thread per mount pushes the access units into a live `appsrc`, paced by the
pipeline clock, so one pipeline per mount serves any number of clients and nobody's join
disturbs the others. PTS and DTS come from the container, so B-frame clips keep their
reordering.

Protocol with the harness (crates/testkit):
  * stdout: exactly one line `READY port=<n>` once the server listens.
  * --stats-file: JSON rewritten atomically every --stats-interval seconds and on exit, with the
    number of frames handed to each mount's RTP payloader.
  * SIGTERM/SIGINT: write the final stats and exit 0.
  * SIGUSR1: stall every mount (connections stay open, no more frames: a camera that hangs).
    SIGUSR2: resume; timestamps jump forward by the stall time, as from a real camera.
  * The server exits on its own when its parent process goes away, so a crashed test run
    leaves no servers behind.
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
from gi.repository import Gio, GLib, Gst, GstApp, GstRtsp, GstRtspServer  # noqa: E402, F401

# Frames are pushed when the pipeline's running time reaches their DTS. If the payloader side
# falls behind by this many queued frames (while a new media prerolls with its pads blocked),
# the feeder waits instead of piling up stale frames.
MAX_QUEUED_FRAMES = 3
# Upper bound for any single sleep of a feeder, so stall/stop requests are seen promptly.
MAX_SLEEP_S = 0.05

CODECS = {
    "video/x-h264": ("h264", "h264parse", "rtph264pay"),
    "video/x-h265": ("h265", "h265parse", "rtph265pay"),
}


def log(msg):
    print(f"rtsp_server: {msg}", file=sys.stderr, flush=True)


class ClipError(Exception):
    pass


class Clip:
    """All access units of one clip, in decode order, with times relative to the clip start."""

    def __init__(self, path, raw_fps):
        self.path = path
        self.frames = []  # (buffer, rel_pts, rel_dts, duration, is_key)
        self.codec = None
        self.caps = None
        self._load(path, raw_fps)

    def _load(self, path, raw_fps):
        if not os.path.isfile(path):
            raise ClipError(f"clip file {path!r} does not exist")
        lower = path.lower()
        raw_codec = None
        if lower.endswith((".h264", ".264")):
            raw_codec = "video/x-h264"
        elif lower.endswith((".h265", ".265", ".hevc")):
            raw_codec = "video/x-h265"

        pipeline = Gst.Pipeline.new("loader")
        src = Gst.ElementFactory.make("filesrc")
        src.set_property("location", path)
        sink = Gst.ElementFactory.make("appsink")
        sink.set_property("sync", False)
        sink.set_property("emit-signals", False)
        # Keep every sample: the whole clip is read into memory before serving starts.
        sink.set_property("max-buffers", 0)
        capsfilter = Gst.ElementFactory.make("capsfilter")
        pipeline.add(src)
        pipeline.add(capsfilter)
        pipeline.add(sink)
        capsfilter.link(sink)

        def add_parser(caps_name):
            codec, parser_name, _ = CODECS[caps_name]
            parser = Gst.ElementFactory.make(parser_name)
            # SPS/PPS (and VPS) in front of every keyframe, so any frame a late joiner starts
            # at after a keyframe is decodable without the SDP.
            parser.set_property("config-interval", -1)
            pipeline.add(parser)
            parser.sync_state_with_parent()
            capsfilter.set_property(
                "caps",
                Gst.Caps.from_string(f"{caps_name},stream-format=byte-stream,alignment=au"),
            )
            parser.link(capsfilter)
            self.codec = codec
            return parser

        if raw_codec:
            parser = add_parser(raw_codec)
            src.link(parser)
        else:
            demux = Gst.ElementFactory.make("qtdemux")
            pipeline.add(demux)
            src.link(demux)
            linked = []

            def on_pad(_demux, pad):
                caps = pad.get_current_caps() or pad.query_caps(None)
                name = caps.get_structure(0).get_name()
                if linked or name not in CODECS:
                    return
                parser = add_parser(name)
                pad.link(parser.get_static_pad("sink"))
                linked.append(name)

            demux.connect("pad-added", on_pad)

        pipeline.set_state(Gst.State.PLAYING)
        bus = pipeline.get_bus()
        raw = []
        deadline = time.monotonic() + 60
        try:
            while True:
                # Short waits: a demuxer error never reaches the appsink as EOS.
                sample = sink.try_pull_sample(Gst.SECOND // 10)
                if sample is None:
                    msg = bus.pop_filtered(Gst.MessageType.ERROR)
                    if msg is not None:
                        err, dbg = msg.parse_error()
                        raise ClipError(f"cannot read clip {path!r}: {err.message} ({dbg})")
                    if sink.is_eos():
                        break
                    if time.monotonic() > deadline:
                        raise ClipError(f"timed out reading clip {path!r}")
                    continue
                if self.caps is None:
                    self.caps = sample.get_caps()
                raw.append(sample.get_buffer())
        finally:
            pipeline.set_state(Gst.State.NULL)
        if not raw:
            raise ClipError(
                f"clip {path!r} has no H.264/H.265 video (MP4, or raw .h264/.h265 files)"
            )

        has_times = all(b.pts != Gst.CLOCK_TIME_NONE for b in raw)
        if raw_codec or not has_times:
            # Elementary streams carry no timestamps; they are assumed to have no B-frames.
            fps = raw_fps
            caps_struct = self.caps.get_structure(0)
            ok, num, den = caps_struct.get_fraction("framerate")
            if ok and num > 0:
                fps = num / den
            dur = int(Gst.SECOND / fps)
            times = [(i * dur, i * dur, dur) for i in range(len(raw))]
        else:
            times = []
            for i, b in enumerate(raw):
                dts = b.dts if b.dts != Gst.CLOCK_TIME_NONE else None
                times.append([b.pts, dts, b.duration])
            # qtdemux may leave the DTS of leading B-frame-clip frames unset; rebuild them from
            # the sorted PTS, which is what a decoder's DTS sequence is.
            if any(t[1] is None for t in times):
                sorted_pts = sorted(t[0] for t in times)
                shift = sorted_pts[1] - sorted_pts[0] if len(sorted_pts) > 1 else 0
                for t, p in zip(times, sorted_pts):
                    t[1] = p - shift
            base = min(min(t[0] for t in times), min(t[1] for t in times))
            for t in times:
                t[0] -= base
                t[1] -= base
            valid_durs = [t[2] for t in times if t[2] != Gst.CLOCK_TIME_NONE and t[2] > 0]
            default_dur = (
                sorted(valid_durs)[len(valid_durs) // 2] if valid_durs else Gst.SECOND // 25
            )
            for t in times:
                if t[2] == Gst.CLOCK_TIME_NONE or t[2] <= 0:
                    t[2] = default_dur
        for b, (pts, dts, dur) in zip(raw, times):
            is_key = not b.has_flags(Gst.BufferFlags.DELTA_UNIT)
            self.frames.append((b, pts, dts, dur, is_key))
        # The loop period: the clip's presentation span, so the next loop's first frame follows
        # this loop's last one by exactly one frame duration (in both PTS and DTS).
        pts_span = max(f[1] + f[3] for f in self.frames) - min(f[1] for f in self.frames)
        dts_span = max(f[2] + f[3] for f in self.frames) - min(f[2] for f in self.frames)
        self.period = max(pts_span, dts_span)
        self.keyframes = sum(1 for f in self.frames if f[4])


class Mount:
    """One mount point: a clip, the live media currently serving it, and its feeder thread."""

    def __init__(self, path, clip, server_state):
        self.path = path
        self.clip = clip
        self.state = server_state
        self.lock = threading.Lock()
        self.appsrc = None
        self.generation = 0
        self.frames_sent = 0
        self.keyframes_sent = 0
        self.bytes_sent = 0
        self.loops = 0
        self.medias_created = 0
        self.plays = 0
        self.wakeup = threading.Condition(self.lock)
        self.thread = threading.Thread(target=self._feed_loop, name=f"feed{path}", daemon=True)
        self.thread.start()

    def factory(self, protocols):
        _, parser, pay = CODECS[self.clip.caps.get_structure(0).get_name()]
        caps = self.clip.caps.to_string().replace('"', '\\"')
        launch = (
            f'( appsrc name=src is-live=true format=time min-latency=0 caps="{caps}" '
            f"! {parser} ! {pay} name=pay0 pt=96 config-interval=-1 )"
        )
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch)
        factory.set_shared(True)
        factory.set_protocols(protocols)
        factory.connect("media-configure", self._on_media_configure)
        return factory

    def _on_media_configure(self, _factory, media):
        element = media.get_element()
        src = element.get_by_name("src")
        pay = element.get_by_name("pay0")
        pay.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, self._count_probe)
        media.connect("unprepared", self._on_unprepared, src)
        with self.lock:
            self.medias_created += 1
            self.appsrc = src
            self.generation += 1
            self.wakeup.notify_all()

    def _on_unprepared(self, _media, src):
        with self.lock:
            if self.appsrc is src:
                self.appsrc = None
                self.generation += 1

    def _count_probe(self, _pad, info):
        buf = info.get_buffer()
        if buf is not None:
            with self.lock:
                self.frames_sent += 1
                self.bytes_sent += buf.get_size()
                if not buf.has_flags(Gst.BufferFlags.DELTA_UNIT):
                    self.keyframes_sent += 1
        return Gst.PadProbeReturn.OK

    def _feed_loop(self):
        frames = self.clip.frames
        n = len(frames)
        period = self.clip.period
        while not self.state.stopping.is_set():
            with self.lock:
                while self.appsrc is None and not self.state.stopping.is_set():
                    self.wakeup.wait(MAX_SLEEP_S * 4)
                src, generation = self.appsrc, self.generation
            if src is None:
                continue
            self._feed_media(src, generation, frames, n, period)

    def _running_time(self, src):
        clock = src.get_clock()
        if clock is None:
            return None
        return clock.get_time() - src.get_base_time()

    def _feed_media(self, src, generation, frames, n, period):
        """Feeds one media from the clip's first frame until that media goes away."""
        index = 0
        anchor = None  # running time of loop 0's DTS 0
        stall_started = None
        first = True
        while not self.state.stopping.is_set():
            with self.lock:
                if self.generation != generation:
                    return
            if self.state.stalled.is_set():
                if stall_started is None:
                    stall_started = time.monotonic()
                time.sleep(MAX_SLEEP_S)
                continue
            if stall_started is not None:
                if anchor is not None:
                    anchor += int((time.monotonic() - stall_started) * Gst.SECOND)
                stall_started = None
            _, state, _ = src.get_state(0)
            if state != Gst.State.PLAYING:
                time.sleep(MAX_SLEEP_S / 5)
                continue
            now = self._running_time(src)
            if now is None:
                time.sleep(MAX_SLEEP_S / 5)
                continue
            loop, i = divmod(index, n)
            buf, pts, dts, dur, _key = frames[i]
            if anchor is None:
                anchor = now
            due = anchor + loop * period + dts
            if src.get_property("current-level-buffers") >= MAX_QUEUED_FRAMES:
                # Downstream is blocked (media still prerolling): hold the timeline instead of
                # queueing frames that would arrive late in a burst.
                anchor += int(MAX_SLEEP_S / 5 * Gst.SECOND)
                time.sleep(MAX_SLEEP_S / 5)
                continue
            if due > now:
                time.sleep(min((due - now) / Gst.SECOND, MAX_SLEEP_S))
                continue
            out = buf.copy()
            out.pts = anchor + loop * period + pts
            out.dts = due
            out.duration = dur
            if first:
                out.set_flags(Gst.BufferFlags.DISCONT)
                first = False
            ret = src.emit("push-buffer", out)
            if ret != Gst.FlowReturn.OK:
                # Flushing or shutting down: this media is going away.
                time.sleep(MAX_SLEEP_S)
                with self.lock:
                    if self.generation != generation:
                        return
                continue
            index += 1
            if index % n == 0:
                with self.lock:
                    self.loops += 1

    def stats(self):
        with self.lock:
            return {
                "codec": self.clip.codec,
                "clip": self.clip.path,
                "clip_frames": len(self.clip.frames),
                "clip_keyframes": self.clip.keyframes,
                "frames_sent": self.frames_sent,
                "keyframes_sent": self.keyframes_sent,
                "bytes_sent": self.bytes_sent,
                "loops": self.loops,
                "medias_created": self.medias_created,
                "plays": self.plays,
            }


class ServerState:
    def __init__(self):
        self.stopping = threading.Event()
        self.stalled = threading.Event()
        self.clients_connected_total = 0
        self.clients_now = 0
        self.lock = threading.Lock()


def parse_mount(value):
    if "=" not in value:
        raise argparse.ArgumentTypeError(
            f"--mount {value!r}: expected PATH=CLIPFILE, e.g. --mount cam1=/tmp/clip.mp4"
        )
    path, clip = value.split("=", 1)
    path = "/" + path.strip("/")
    if path == "/" or not clip:
        raise argparse.ArgumentTypeError(
            f"--mount {value!r}: both PATH and CLIPFILE must be non-empty"
        )
    return path, clip


def write_stats(path, port, state, mounts):
    with state.lock:
        doc = {
            "port": port,
            "pid": os.getpid(),
            "stalled": state.stalled.is_set(),
            "clients_connected_total": state.clients_connected_total,
            "clients_now": state.clients_now,
            "mounts": {m.path: m.stats() for m in mounts.values()},
        }
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=8554, help="0 picks a free port")
    ap.add_argument("--address", default="127.0.0.1")
    ap.add_argument("--mount", type=parse_mount, action="append", required=True)
    ap.add_argument("--auth", choices=["none", "basic", "digest"], default="none")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--tls-cert", help="PEM certificate chain: serve RTSPS")
    ap.add_argument("--tls-key", help="PEM private key for --tls-cert")
    ap.add_argument("--protocols", choices=["tcp", "udp", "both"], default=None,
                    help="RTP transports offered (default: both, tcp only with TLS)")
    ap.add_argument("--raw-fps", type=float, default=25.0,
                    help="frame rate for raw elementary streams without timing info")
    ap.add_argument("--stats-file")
    ap.add_argument("--stats-interval", type=float, default=1.0)
    args = ap.parse_args()

    if args.auth != "none" and (not args.user or args.password is None):
        ap.error(f"--auth {args.auth} needs --user and --password")
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    if not 0 <= args.port <= 65535:
        ap.error(f"--port {args.port} is not a TCP port (0..65535)")
    if args.stats_interval <= 0:
        ap.error("--stats-interval must be positive")
    paths = [p for p, _ in args.mount]
    if len(set(paths)) != len(paths):
        ap.error(f"duplicate mount paths in {paths}")

    Gst.init(None)
    parent = os.getppid()
    state = ServerState()
    try:
        clips = {p: Clip(c, args.raw_fps) for p, c in args.mount}
    except ClipError as e:
        log(f"error: {e}")
        return 2

    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    protocols_arg = args.protocols or ("tcp" if args.tls_cert else "both")
    protocols = {
        "tcp": GstRtsp.RTSPLowerTrans.TCP,
        "udp": GstRtsp.RTSPLowerTrans.UDP,
        "both": GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP,
    }[protocols_arg]

    use_auth = args.auth != "none" or bool(args.tls_cert)
    mounts = {}
    points = server.get_mount_points()
    for path, clip in clips.items():
        m = Mount(path, clip, state)
        mounts[path] = m
        factory = m.factory(protocols)
        if use_auth:
            # Once an RTSPAuth is installed, a factory without permissions refuses everyone.
            role = Gst.Structure.new_from_string(
                "viewer, media.factory.access=(boolean)true, "
                "media.factory.construct=(boolean)true"
            )
            factory.add_role_from_structure(role)
        points.add_factory(path, factory)

    if use_auth:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "viewer")
        if args.tls_cert:
            try:
                cert = Gio.TlsCertificate.new_from_files(args.tls_cert, args.tls_key)
            except GLib.Error as e:
                log(f"error: cannot load TLS certificate/key: {e.message}")
                return 2
            auth.set_tls_certificate(cert)
        if args.auth == "basic":
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        elif args.auth == "digest":
            auth.add_digest(args.user, args.password, token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        else:
            # TLS without passwords: everyone may watch.
            auth.set_default_token(token)
        server.set_auth(auth)

    def on_client(_server, client):
        with state.lock:
            state.clients_connected_total += 1
            state.clients_now += 1

        def on_closed(_client):
            with state.lock:
                state.clients_now -= 1

        def on_play(_client, ctx):
            path = ctx.uri.abspath if ctx.uri is not None else ""
            for mpath, m in mounts.items():
                if path == mpath or path.startswith(mpath + "/"):
                    with m.lock:
                        m.plays += 1

        client.connect("closed", on_closed)
        client.connect("play-request", on_play)

    server.connect("client-connected", on_client)

    loop = GLib.MainLoop()
    try:
        source_id = server.attach(None)
    except GLib.Error as e:
        log(f"error: cannot listen on {args.address}:{args.port}: {e.message}")
        return 3
    if source_id == 0:
        log(f"error: cannot listen on {args.address}:{args.port}")
        return 3
    port = server.get_bound_port()

    def shutdown(reason):
        if not state.stopping.is_set():
            log(f"stopping ({reason})")
            state.stopping.set()
            loop.quit()
        return GLib.SOURCE_REMOVE

    def stall(on):
        if on:
            state.stalled.set()
        else:
            state.stalled.clear()
        log("stalled" if on else "resumed")
        return GLib.SOURCE_CONTINUE

    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, shutdown, "SIGTERM")
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, shutdown, "SIGINT")
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGUSR1, stall, True)
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGUSR2, stall, False)

    def tick():
        if os.getppid() != parent:
            return shutdown("parent process exited")
        if args.stats_file:
            write_stats(args.stats_file, port, state, mounts)
        return GLib.SOURCE_CONTINUE

    GLib.timeout_add(int(args.stats_interval * 1000), tick)
    if args.stats_file:
        write_stats(args.stats_file, port, state, mounts)
    for path, m in mounts.items():
        log(
            f"mount {path}: {m.clip.codec} {len(m.clip.frames)} frames "
            f"({m.clip.keyframes} keyframes), loop {m.clip.period / Gst.SECOND:.3f}s"
        )
    print(f"READY port={port}", flush=True)
    loop.run()

    # Stop the feeders before tearing down, so the final counts are final.
    for m in mounts.values():
        m.thread.join(timeout=2)
    if args.stats_file:
        write_stats(args.stats_file, port, state, mounts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
