//! The built-in sample camera of `vigil demo`: an RTSP/1.0 server (RTP over interleaved TCP
//! only) that plays a short H.264 clip in an endless loop, in real time, to any number of
//! clients, each paced independently.
//!
//! ```no_run
//! # async fn demo() -> Result<(), vigil_samplecam::SampleCameraError> {
//! use vigil_samplecam::{SampleCamera, SampleCameraOptions};
//! let camera = SampleCamera::start("127.0.0.1:0".parse().unwrap(), SampleCameraOptions::default()).await?;
//! println!("recording {}", camera.url()); // rtsp://127.0.0.1:PORT/sample
//! camera.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Modules: [`clip`] parses and checks the clip, [`request`] parses what clients send,
//! `rtp` packetizes, `auth` checks credentials and `server` runs the sessions.

mod auth;
pub mod clip;
pub mod request;
mod rtp;
mod server;

pub use auth::{AuthConfig, AuthScheme, parse_auth_params};
pub use clip::{Clip, ClipError, ClipInfo, Frame, FrameRate, SAMPLE_H264};
pub use server::{SampleCamera, SampleCameraError, SampleCameraHandle, SampleCameraOptions};
