//! Real peers for Vigil's integration tests.
//!
//! This crate owns everything a test needs to talk to real software instead of mocks:
//! - [`Clip`]: H.264/H.265 test clips made by ffmpeg, cached on disk and shared between tests;
//! - [`RtspPeer`]: a GStreamer RTSP server (`tests/peers/rtsp_server.py`) that loops clips as
//!   live camera streams, with Basic/Digest auth and RTSPS, and counts the frames it sends;
//! - [`RotationCameras`]: cameras whose password can be rotated (`tests/peers/rotation_camera.py`:
//!   the RTSP server with Digest auth plus an ONVIF device service over HTTPS per camera
//!   whose SetUser changes the RTSP credentials too);
//! - [`ffprobe_count`] and [`ffprobe_packets`]: what a recorded or exported file really holds;
//!   [`ffmpeg_pull`]: record a stream with an independent RTSP client;
//! - [`Tmpfs`] and [`fill_volume`]: small real volumes for disk-full tests;
//! - [`external_ca`]: a customer's own CA and the certificates it signs, made with the
//!   `openssl` command line ([`external_ca::ExternalCa`], [`external_ca::self_signed`]);
//! - `ledger` (feature `ledger`): an evidence ledger's records read, rewritten with the
//!   chain re-linked, re-signed, or torn, as tamper tests need;
//! - [`rsyslog`]: Debian's rsyslog as a SIEM collector (RFC 5425 over TLS, mutual
//!   authentication), every received message parsed back by rsyslog;
//! - [`seaweedfs`]: SeaweedFS's `weed server` as an S3-compatible archive over TLS, with
//!   buckets made with or without S3 Object Lock;
//! - `onvif` (feature `onvif`): ONVIF cameras (oxvif's mock device) with WS-Discovery,
//!   WS-Security digest and a SetUser that changes the password, optionally behind HTTPS;
//! - [`postgres`]: Debian's PostgreSQL 15 as a throw-away server (one per test process, or
//!   one per test with TLS on 127.0.0.1), stopped and restarted at will;
//! - [`ipycam`]: IPyCam (PyPI), an ONVIF camera written independently of Vigil, with
//!   WS-Discovery, profiles, WS-Security and its own RTSP server;
//! - [`partition`]: a loopback TCP relay that can be cut and healed (a network partition);
//! - [`require_tool`], [`free_port`], [`repo_root`].
//!
//! Missing peers make tests fail with an install hint, never skip: CI installs them
//! (`scripts/test-all.sh`), so a silent skip would only hide a broken setup.
//!
//! Constructors named like `start`/`h264` panic with the full diagnostic (tests want that);
//! each has a `try_` variant returning [`Error`].

mod clip;
mod error;
pub mod external_ca;
pub mod ipycam;
#[cfg(feature = "ledger")]
pub mod ledger;
#[cfg(feature = "onvif")]
pub mod onvif;
pub mod partition;
pub mod postgres;
mod probe;
mod rotation_camera;
pub mod rsyslog;
mod rtsp;
pub mod seaweedfs;
pub mod smtp;
mod tools;
mod volume;

pub use clip::{Clip, ClipSpec, Codec};
pub use error::Error;
pub use probe::{Packet, Probe, ffmpeg_pull, ffprobe_count, ffprobe_duration, ffprobe_packets};
pub use rotation_camera::{RotationCameraSpec, RotationCameras};
pub use rtsp::{Auth, MountStats, PeerOptions, PeerStats, RtspPeer, Transport};
pub use tools::{
    GST_PYTHON, free_port, repo_root, require_gst_rtsp_server, require_tool, try_require_tool,
};
pub use volume::{Tmpfs, fill_volume};
