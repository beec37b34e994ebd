//! Recorded video of an assigned camera, held by its recording server, seen through the
//! management server (docs/cluster.md "Assigning cameras", docs/design/cluster.md
//! "Assignments"): the recording server's answers on its mutual-TLS API (to the management
//! server's certificate only) and the management server's client, which reaches the server at
//! the address its heartbeats come from and accepts only the certificate it issued to it.

use std::sync::Arc;

use bytes::Bytes;
use vigil_cluster::client::{ClientError, Connection, Method, Target};
use vigil_cluster::listener::Reply;
use vigil_cluster::protocol::{
    self, PlaybackHeaders, RemoteGap, RemoteRecordings, VideoQuery, parse_playback_headers,
    parse_recordings,
};
use vigil_cluster::{Registry, ServerState};
use vigil_config::{ArchiveConfig, Config};
use vigil_media::live::Stream;
use vigil_media::store::{Store, StoreError};

use crate::error::ErrorKind;
use crate::export::ExportError;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(
        "camera {camera} is recorded by recording server {server}, which is {state}: its video is out of reach until it reports again (vigil server list)"
    )]
    Offline {
        camera: String,
        server: String,
        state: &'static str,
    },
    #[error(
        "recording server {server} has not reported the port of its API yet; try again after its next heartbeat (5 s)"
    )]
    NoAddress { server: String },
    #[error("recording server {server}: {source}")]
    Client { server: String, source: ClientError },
    #[error("recording server {server} answered something that is refused: {reason}")]
    BadAnswer { server: String, reason: String },
    #[error(transparent)]
    Cluster(#[from] vigil_cluster::Error),
    #[error(transparent)]
    Pki(#[from] vigil_pki::PkiError),
}

impl RemoteError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            RemoteError::Client {
                source: ClientError::Refused { status: 404, .. },
                ..
            } => ErrorKind::NotFound,
            RemoteError::Client {
                source: ClientError::Refused { status: 413, .. },
                ..
            } => ErrorKind::InvalidInput,
            RemoteError::Offline { .. }
            | RemoteError::NoAddress { .. }
            | RemoteError::Client { .. }
            | RemoteError::BadAnswer { .. } => ErrorKind::Unavailable,
            RemoteError::Cluster(_) | RemoteError::Pki(_) => ErrorKind::Internal,
        }
    }

    /// The recording server's own error code when it refused the request.
    pub fn remote_code(&self) -> Option<&str> {
        match self {
            RemoteError::Client {
                source: ClientError::Refused { code, .. },
                ..
            } => Some(code),
            _ => None,
        }
    }
}

/// Where an assigned camera's video is: its recording server, as the registry knows it.
#[derive(Debug, Clone)]
pub struct Holder {
    pub server: String,
    target: Target,
    cert_sha256: String,
}

/// The recording server holding camera `camera_id`'s video, when this is a management server
/// and the camera is assigned; `None` otherwise (the video is in this server's own store).
pub fn holder(cfg: &Config, camera_id: &str) -> Result<Option<Holder>, RemoteError> {
    if cfg.role != vigil_config::Role::Management
        || !cfg.data_dir.join(vigil_cluster::registry::FILE).exists()
    {
        return Ok(None);
    }
    let registry = Registry::open(&cfg.data_dir)?;
    let Some(a) = registry
        .assignments()?
        .into_iter()
        .find(|a| a.camera_id == camera_id)
    else {
        return Ok(None);
    };
    let Some(row) = registry
        .servers()?
        .into_iter()
        .find(|s| s.name == a.server && s.removed.is_none())
    else {
        return Ok(None);
    };
    if row.state != ServerState::Online {
        return Err(RemoteError::Offline {
            camera: camera_id.to_owned(),
            server: row.name,
            state: row.state.as_str(),
        });
    }
    let port = row
        .status
        .as_ref()
        .and_then(|s| s.get("api_port"))
        .and_then(|p| p.as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0);
    let (Some(port), Some(addr)) = (port, row.last_address.as_deref()) else {
        return Err(RemoteError::NoAddress { server: row.name });
    };
    // The registry keeps the heartbeat's source as `IP:PORT` (`[IP]:PORT` for IPv6).
    let host = match addr.parse::<std::net::SocketAddr>() {
        Ok(sa) => sa.ip().to_string(),
        Err(_) => addr.to_owned(),
    };
    Ok(Some(Holder {
        server: row.name,
        target: Target { host, port },
        cert_sha256: row.cert_sha256,
    }))
}

async fn connect(cfg: &Config, holder: &Holder) -> Result<Connection, RemoteError> {
    let pki = vigil_pki::Pki::open(&cfg.data_dir.join("pki"))?;
    let config = vigil_cluster::tls::pinned_client_config(
        &holder.cert_sha256,
        pki.inter_server_certified_key()?,
    )?;
    Connection::open(&holder.target, Arc::new(config))
        .await
        .map_err(|source| RemoteError::Client {
            server: holder.server.clone(),
            source,
        })
}

fn video_path(camera_id: &str, what: &str, q: &VideoQuery) -> String {
    format!(
        "{}{camera_id}/{what}?{}",
        protocol::PATH_CAMERAS,
        q.to_query()
    )
}

/// A camera stream's recorded ranges and gaps, from its recording server.
pub async fn recordings(
    cfg: &Config,
    holder: &Holder,
    camera_id: &str,
    q: VideoQuery,
) -> Result<RemoteRecordings, RemoteError> {
    let mut c = connect(cfg, holder).await?;
    let body = c
        .call_limited(
            Method::GET,
            &video_path(camera_id, "recordings", &q),
            None,
            protocol::MAX_RECORDINGS_BODY,
        )
        .await
        .map_err(|source| RemoteError::Client {
            server: holder.server.clone(),
            source,
        })?;
    parse_recordings(&body).map_err(|e| RemoteError::BadAnswer {
        server: holder.server.clone(),
        reason: e.to_string(),
    })
}

/// The playback MP4 of a camera stream's range (its first codec part), from its recording
/// server, in memory (at most [`protocol::MAX_PLAYBACK_BODY`] bytes).
pub async fn playback(
    cfg: &Config,
    holder: &Holder,
    camera_id: &str,
    q: VideoQuery,
) -> Result<(PlaybackHeaders, Bytes), RemoteError> {
    let mut c = connect(cfg, holder).await?;
    let answer = c
        .fetch(
            Method::GET,
            &video_path(camera_id, "playback", &q),
            None,
            protocol::MAX_PLAYBACK_BODY,
        )
        .await
        .map_err(|source| RemoteError::Client {
            server: holder.server.clone(),
            source,
        })?;
    let bad = |reason: String| RemoteError::BadAnswer {
        server: holder.server.clone(),
        reason,
    };
    let headers =
        parse_playback_headers(|name| answer.headers.get(name).and_then(|v| v.to_str().ok()))
            .map_err(|e| bad(e.to_string()))?;
    Ok((headers, answer.body))
}

// ------------------------------------------------------------------ recording server side

fn refused(e: &ExportError) -> Reply {
    let status = match e.kind() {
        ErrorKind::NotFound => 404,
        ErrorKind::InvalidInput => 400,
        ErrorKind::Conflict => 409,
        _ => 500,
    };
    if status == 500 {
        tracing::error!(error = %e, "cannot serve recorded video to the management server");
        return Reply::error(500, "internal", "the recorded video cannot be read");
    }
    Reply::error(status, e.code(), e.to_string())
}

/// A recording server's answer to the management server's `GET /v1/cameras/{id}/...`.
/// The caller has checked that the request comes from the management server.
pub fn serve(store: &Store, archive: &ArchiveConfig, path: &str, query: Option<&str>) -> Reply {
    let (id, what, q) = match protocol::parse_video_request(path, query) {
        Ok(r) => r,
        Err(e) => return Reply::error(400, "bad_request", e.to_string()),
    };
    let camera = match store.camera(id) {
        Ok(c) => c,
        Err(StoreError::NoSuchCamera(_)) => {
            return Reply::error(
                404,
                "camera_not_found",
                format!("camera {id} is not on this recording server"),
            );
        }
        Err(e) => return refused(&ExportError::Store(e)),
    };
    let stream = if q.secondary {
        Stream::Secondary
    } else {
        Stream::Main
    };
    let camera = match store.stream_of(&camera, stream) {
        Ok(c) => c,
        Err(StoreError::NoSecondary(_)) => {
            return Reply::error(
                404,
                "no_secondary_stream",
                format!("camera '{}' has no secondary stream", camera.name),
            );
        }
        Err(e) => return refused(&ExportError::Store(e)),
    };
    if what == "recordings" {
        let answer = store
            .ranges(&camera.id, q.from_us, q.to_us)
            .and_then(|ranges| {
                Ok(RemoteRecordings {
                    ranges,
                    gaps: store
                        .gaps(&camera.id, q.from_us, q.to_us)?
                        .into_iter()
                        .map(|g| RemoteGap {
                            start_us: g.start_us,
                            end_us: g.end_us,
                            reason: g.reason,
                        })
                        .collect(),
                })
            });
        return match answer {
            Ok(a) => Reply::json(200, &a),
            Err(e) => refused(&ExportError::Store(e)),
        };
    }
    let layout = match crate::export::mp4_layout(store, &camera.id, q.from_us, q.to_us, archive) {
        Ok(l) => l,
        Err(e) => return refused(&e),
    };
    let starts = layout.part_starts();
    let Some(part) = layout.parts.into_iter().next() else {
        return refused(&ExportError::BadRange);
    };
    if part.total > protocol::MAX_PLAYBACK_BODY as u64 {
        return Reply::error(
            413,
            "range_too_large",
            format!(
                "the video of this range is {} MB; through the management server at most {} MB are played at once: choose a shorter range",
                part.total / 1_000_000,
                protocol::MAX_PLAYBACK_BODY / 1_000_000
            ),
        );
    }
    let mut body = Vec::with_capacity(part.total as usize);
    if let Err(e) = crate::export::write_pieces(&part.pieces, &mut body, &mut |_| {}) {
        return refused(&ExportError::Recorded {
            camera: camera.name,
            detail: e.to_string(),
        });
    }
    let starts = starts
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    Reply::bytes(
        "video/mp4",
        vec![
            (protocol::HEADER_MEDIA_START_US, part.start_us.to_string()),
            (protocol::HEADER_MEDIA_END_US, part.end_us.to_string()),
            (protocol::HEADER_PART_STARTS_US, starts),
            ("etag", part.etag),
        ],
        body,
    )
}
