//! Recordings of one camera (docs/api.md, "Video"): recorded ranges and gaps, playback of a time
//! range as one fragmented MP4 with HTTP Range support (so a browser `<video>` can seek),
//! export downloads (MP4, or the signed evidence bundle as a tar stream), and signature
//! verification.
//!
//! Playback and export never assemble the video in memory: `vigil_app::export` lays the
//! answer out as pieces (playback: the export's init, then each GOP fragment byte for byte as
//! recorded, as in a bundle's `video.mp4`; MP4 export: the progressive file's `moov`, then the
//! recorded samples, exactly what `vigil export -o clip.mp4` writes), and only the requested
//! bytes are read from the segment files and streamed. Files are addressed by the camera's internal id from the index and a
//! segment number, never by anything from the request. This module only parses requests,
//! checks permissions, calls the use case and maps its errors and results onto HTTP.
//!
//! Permissions (on the camera in the path, checked before anything else; an unknown camera is
//! a 404 only after that check): ranges and playback need Playback, export needs Export,
//! verification needs Verify. Playback, export and verification are audited with user and
//! source address; a seeking player's follow-up Range requests (not starting at byte 0) are
//! not audited again.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::json::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_access::{AuditKind, Permission};
use vigil_app::export::{BundleRequest, ExporterIdentity, Mp4Layout, Mp4Part, Piece, TailSigning};
use vigil_app::verify::VerifyError;
use vigil_media::store::{Camera, StoreError, now_us};
use vigil_media::time::{format_us, parse_time};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiPath, ApiQuery};
use crate::routes::cameras::{camera_not_found, check_camera_name, find_camera};
use crate::routes::live::StreamParam;
use crate::routes::{audit, blocking};
use crate::state::SharedState;

pub fn router() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .routes(routes!(recordings))
        .routes(routes!(playback))
        .routes(routes!(export))
        .routes(routes!(verify))
}

/// Longest time range one playback or export request may cover. The layout of a range is
/// held in memory (one entry per GOP); longer periods are exported in pieces or with the CLI.
pub const MAX_RANGE_US: i64 = 24 * 3600 * 1_000_000;

/// Bytes read from a segment file per chunk sent.
const CHUNK: usize = 256 * 1024;

/// Header naming how many parts (one per codec parameter set) the requested range has; only
/// the first is served by playback.
pub const PARTS_HEADER: &str = "vigil-playback-parts";
/// Header with the start (RFC 3339) of the next part, when the range has more than one.
pub const NEXT_PART_HEADER: &str = "vigil-next-part-from";
/// Headers with the recorded start and end (RFC 3339) of what the MP4 holds.
pub const MEDIA_START_HEADER: &str = "vigil-media-start";
pub const MEDIA_END_HEADER: &str = "vigil-media-end";

// ------------------------------------------------------------------ time ranges

/// A time range in the CLI's syntax: RFC 3339 (`2026-11-21T10:00:00Z`), relative (`-10m`,
/// `now`; write `+` as `%2B` in a URL) or Unix seconds.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    /// Start; default: the beginning.
    pub from: Option<String>,
    /// End (exclusive); default: now and later.
    pub to: Option<String>,
    /// `main` (default) or `secondary`: the camera's recorded secondary stream.
    pub stream: Option<StreamParam>,
}

/// Playback range; both ends required.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PlaybackQuery {
    /// Start (RFC 3339, -10m, now, or Unix seconds).
    pub from: Option<String>,
    /// End, exclusive.
    pub to: Option<String>,
    /// `main` (default) or `secondary`: the camera's recorded secondary stream.
    pub stream: Option<StreamParam>,
}

/// Export range and format.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// Start (RFC 3339, -10m, now, or Unix seconds).
    pub from: Option<String>,
    /// End, exclusive.
    pub to: Option<String>,
    /// `mp4` (default): the video (the recorded fragments after an init that starts the clip
    /// at 0); `bundle`: the signed evidence bundle as a tar archive that `vigil verify DIR`
    /// checks offline.
    pub format: Option<String>,
    /// `main` (default) or `secondary`: the camera's recorded secondary stream.
    pub stream: Option<StreamParam>,
}

fn bad_time(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_time", message)
}

/// `value` of the query or body field `name` as Unix microseconds (RFC 3339, -10m, now, Unix
/// seconds), or 400 `bad_time` naming the field.
pub(crate) fn parse_at(name: &str, value: &str, now: i64) -> ApiResult<i64> {
    parse_time(value, now).map_err(|e| bad_time(format!("`{name}`: {e}")))
}

/// [`parse_at`] of a field that may be absent.
pub(crate) fn parse_end(name: &str, value: Option<&str>, now: i64) -> ApiResult<Option<i64>> {
    value.map(|v| parse_at(name, v, now)).transpose()
}

/// Parses `from`/`to`; `required` ranges must name both ends and be at most [`MAX_RANGE_US`].
fn time_range(from: Option<&str>, to: Option<&str>, required: bool) -> ApiResult<(i64, i64)> {
    let now = now_us();
    let f = parse_end("from", from, now)?;
    let t = parse_end("to", to, now)?;
    if required && (f.is_none() || t.is_none()) {
        return Err(bad_time(
            "give both `from` and `to` (RFC 3339, -10m, now, or Unix seconds)".into(),
        ));
    }
    let (f, t) = (f.unwrap_or(0), t.unwrap_or(i64::MAX / 2));
    if t <= f {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_range",
            format!(
                "`to` ({}) must be after `from` ({})",
                format_us(t),
                format_us(f)
            ),
        ));
    }
    // `abs_diff`: both ends may be far in the past and future, beyond what `t - f` can hold.
    if required && t.abs_diff(f) > MAX_RANGE_US.unsigned_abs() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "range_too_long",
            "one request covers at most 24 hours; split the range (or use `vigil export` on the server)",
        ));
    }
    Ok((f, t))
}

// ------------------------------------------------------------------ recorded ranges

/// A recorded or missing span.
#[derive(Debug, Serialize, ToSchema)]
pub struct Span {
    /// RFC 3339.
    pub start: String,
    pub end: String,
    /// Unix microseconds.
    pub start_us: i64,
    pub end_us: i64,
    pub seconds: f64,
    /// Why nothing was recorded (gaps only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Span {
    fn new(start_us: i64, end_us: i64, reason: Option<String>) -> Self {
        Span {
            start: format_us(start_us),
            end: format_us(end_us),
            start_us,
            end_us,
            seconds: (end_us - start_us) as f64 / 1e6,
            reason,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingsAnswer {
    pub camera: String,
    /// Continuous recorded ranges, oldest first.
    pub ranges: Vec<Span>,
    /// Recorded gaps (camera unreachable, server stopped...), oldest first.
    pub gaps: Vec<Span>,
}

/// Recorded ranges and gaps of a camera (Playback), like `vigil recordings CAM --json`.
#[utoipa::path(get, path = "/api/v1/cameras/{camera}/recordings", tag = "recordings",
    params(("camera" = String, Path, description = "camera name"), RangeQuery),
    responses(
        (status = 200, body = RecordingsAnswer),
        (status = 400, description = "bad time or camera name", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn recordings(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> ApiResult<Json<RecordingsAnswer>> {
    caller.require(Permission::Playback, Some(&name))?;
    check_camera_name(&name)?;
    let (from, to) = time_range(q.from.as_deref(), q.to.as_deref(), false)?;
    if let Some(remote) = held_elsewhere(&state, &name, q.stream, from, to).await? {
        let r = vigil_app::remote_video::recordings(
            &remote.cfg,
            &remote.holder,
            &remote.id,
            remote.query,
        )
        .await
        .map_err(remote_error)?;
        return Ok(Json(RecordingsAnswer {
            camera: remote.stream.name,
            ranges: r
                .ranges
                .into_iter()
                .map(|(s, e)| Span::new(s, e, None))
                .collect(),
            gaps: r
                .gaps
                .into_iter()
                .map(|g| Span::new(g.start_us, g.end_us, Some(g.reason)))
                .collect(),
        }));
    }
    let store = state.store.clone();
    let answer = blocking(move || {
        let cam = recorded_stream(&store, &name, q.stream)?;
        let ranges = store
            .ranges(&cam.id, from, to)
            .map_err(ApiError::internal)?;
        let gaps = store.gaps(&cam.id, from, to).map_err(ApiError::internal)?;
        Ok::<_, ApiError>(RecordingsAnswer {
            camera: cam.name,
            ranges: ranges
                .into_iter()
                .map(|(s, e)| Span::new(s, e, None))
                .collect(),
            gaps: gaps
                .into_iter()
                .map(|g| Span::new(g.start_us, g.end_us, Some(g.reason)))
                .collect(),
        })
    })
    .await??;
    Ok(Json(answer))
}

// ------------------------------------------------------------------ export use case

/// One of the camera named `name`'s streams, as its recordings are kept: the main stream, or
/// with `stream=secondary` its recorded secondary (also after it was removed, while its
/// recordings last). The camera is looked up by its exact name (see [`find_camera`]).
fn recorded_stream(
    store: &vigil_media::store::Store,
    name: &str,
    stream: Option<StreamParam>,
) -> ApiResult<Camera> {
    let camera = find_camera(store, name)?;
    store
        .stream_of(&camera, stream.unwrap_or_default().into())
        .map_err(|e| match e {
            StoreError::NoSecondary(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "no_secondary_stream",
                format!(
                    "camera '{name}' has no secondary stream; leave `stream` out for its main stream"
                ),
            ),
            e => ApiError::internal(e),
        })
}

/// An assigned camera's stream whose video its recording server holds (docs/cluster.md,
/// "Assigning cameras").
struct Remote {
    cfg: vigil_config::Config,
    holder: vigil_app::remote_video::Holder,
    /// The camera's id (its main stream's), the same on both servers.
    id: String,
    /// The requested stream as this server defines it.
    stream: Camera,
    query: vigil_cluster::protocol::VideoQuery,
}

/// On a management server, where the camera `name` is assigned to a recording server: that
/// server and the request for it. `None` when the video is in this server's own store.
async fn held_elsewhere(
    state: &SharedState,
    name: &str,
    stream: Option<StreamParam>,
    from: i64,
    to: i64,
) -> ApiResult<Option<Remote>> {
    let cfg = state
        .config
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if cfg.role != vigil_config::Role::Management {
        return Ok(None);
    }
    let (store, name) = (state.store.clone(), name.to_owned());
    blocking(move || {
        let camera = find_camera(&store, &name)?;
        let Some(holder) =
            vigil_app::remote_video::holder(&cfg, &camera.id).map_err(remote_error)?
        else {
            return Ok(None);
        };
        let stream_camera = recorded_stream(&store, &name, stream)?;
        Ok(Some(Remote {
            cfg,
            holder,
            id: camera.id,
            stream: stream_camera,
            query: vigil_cluster::protocol::VideoQuery {
                from_us: from.max(0),
                to_us: to,
                secondary: stream == Some(StreamParam::Secondary),
            },
        }))
    })
    .await?
}

/// What is not relayed yet: export and verification run on the recording server itself
/// (docs/cluster.md, "Assigning cameras").
fn on_recording_server(remote: &Remote, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "on_recording_server",
        format!(
            "camera '{}' is recorded by recording server {}: its video is {what} there (vigil export / vigil verify on that server); this server relays its recordings and playback only",
            remote.stream.name, remote.holder.server
        ),
    )
}

/// A recording server's refusal or absence, in the API's terms.
fn remote_error(e: vigil_app::remote_video::RemoteError) -> ApiError {
    // The recording server's codes for what it refuses, kept for clients that act on them.
    let code = match e.remote_code() {
        Some("no_recordings") => "no_recordings",
        Some("camera_not_found") => "camera_not_found",
        Some("no_secondary_stream") => "no_secondary_stream",
        Some("range_too_large") => "range_too_large",
        Some("codec_change") => "codec_change",
        _ => "recording_server_unavailable",
    };
    ApiError::from_kind(e.kind(), code, e)
}

/// The MP4 layout of a stream's range; the stream is resolved first so that an unknown
/// camera answers like every other route.
fn mp4_layout(
    store: &vigil_media::store::Store,
    name: &str,
    stream: Option<StreamParam>,
    from: i64,
    to: i64,
    archive: &vigil_config::ArchiveConfig,
) -> ApiResult<Mp4Layout> {
    let camera = recorded_stream(store, name, stream)?;
    vigil_app::export::mp4_layout(store, &camera.id, from, to, archive).map_err(ApiError::from)
}

// ------------------------------------------------------------------ HTTP ranges

/// What a request's `Range` asks of a body of known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteRange {
    Full,
    /// Inclusive first and last byte.
    Part(u64, u64),
    Unsatisfiable,
}

/// Reads a single-range `Range: bytes=...` request (RFC 9110 §14). Anything we do not serve
/// as a range is answered in full, which the RFC allows: other units, several ranges,
/// malformed specs, and an `If-Range` that does not match the current ETag (the content
/// changed, so bytes of the old one must not be mixed in).
fn byte_range(headers: &HeaderMap, total: u64, etag: &str) -> ByteRange {
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return ByteRange::Full;
    };
    if let Some(if_range) = headers.get(header::IF_RANGE)
        && if_range.to_str().ok().map(str::trim) != Some(etag)
    {
        return ByteRange::Full;
    }
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return ByteRange::Full;
    };
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return ByteRange::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // Suffix: the last `b` bytes.
        return match b.parse::<u64>() {
            Ok(0) => ByteRange::Unsatisfiable,
            Ok(_) if total == 0 => ByteRange::Unsatisfiable,
            Ok(n) => ByteRange::Part(total.saturating_sub(n), total - 1),
            Err(_) => ByteRange::Full,
        };
    }
    let Ok(first) = a.parse::<u64>() else {
        return ByteRange::Full;
    };
    let last = if b.is_empty() {
        None
    } else {
        match b.parse::<u64>() {
            Ok(l) if l >= first => Some(l),
            _ => return ByteRange::Full,
        }
    };
    if first >= total {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Part(first, last.unwrap_or(u64::MAX).min(total - 1))
}

/// Streams bytes `[first, last]` of the concatenated pieces. A blocking task reads the files
/// chunk by chunk into a small channel, so memory stays bounded and a client that goes away
/// stops the reading.
fn stream_pieces(pieces: Vec<Piece>, first: u64, last: u64) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut pos = 0u64;
        for piece in pieces {
            let (start, end) = (pos, pos + piece.len());
            pos = end;
            if end <= first {
                continue;
            }
            if start > last {
                break;
            }
            let from = first.max(start) - start;
            let to = (last + 1).min(end) - start;
            let sent = match &piece {
                Piece::Bytes(b) => tx
                    .blocking_send(Ok(b.slice(from as usize..to as usize)))
                    .is_ok(),
                Piece::File { path, offset, .. } => {
                    send_file_range(&tx, path, offset + from, to - from)
                }
            };
            if !sent {
                return;
            }
        }
    });
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Sends `len` bytes at `offset` of `path`; false when the stream ended (client gone or error
/// sent).
fn send_file_range(
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    path: &Path,
    offset: u64,
    len: u64,
) -> bool {
    let fail = |e: std::io::Error| {
        // The status line is gone already; the client sees a short body and the log says why.
        tracing::error!(path = %path.display(), error = %e, "cannot read recorded video while streaming it");
        let _ = tx.blocking_send(Err(e));
        false
    };
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    if let Err(e) = f.seek(SeekFrom::Start(offset)) {
        return fail(e);
    }
    let mut left = len;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        // Read into spare capacity: `read_to_end` does not zero it first (a zeroed 256 KiB
        // buffer per chunk cost a tenth of the server's CPU when serving video).
        let mut buf = Vec::with_capacity(n);
        match (&mut f).take(n as u64).read_to_end(&mut buf) {
            Ok(got) if got == n => {}
            Ok(got) => {
                return fail(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("{got} of {n} bytes at {} are there", offset + len - left),
                ));
            }
            Err(e) => return fail(e),
        }
        left -= n as u64;
        if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
            return false;
        }
    }
    true
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// The MP4 answer for `part` (the first of `starts.len()` parts): 200 with the whole body,
/// 206 with the requested range, or 416. Returns the response and whether it starts at byte 0
/// (a new playback, for the audit log).
/// What an MP4 answer is made of: this server's recorded pieces, or the bytes a recording
/// server sent.
struct Mp4Answer {
    pieces: Vec<Piece>,
    total: u64,
    etag: String,
    start_us: i64,
    end_us: i64,
}

impl From<Mp4Part> for Mp4Answer {
    fn from(p: Mp4Part) -> Self {
        Mp4Answer {
            pieces: p.pieces,
            total: p.total,
            etag: p.etag,
            start_us: p.start_us,
            end_us: p.end_us,
        }
    }
}

fn mp4_response(
    part: Mp4Answer,
    starts: &[i64],
    method: &Method,
    headers: &HeaderMap,
    attachment: Option<String>,
) -> (Response, bool) {
    let total = part.total;
    let range = byte_range(headers, total, &part.etag);
    let (status, first, last) = match range {
        ByteRange::Full => (StatusCode::OK, 0, total.saturating_sub(1)),
        ByteRange::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b),
        ByteRange::Unsatisfiable => {
            let mut resp = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the requested bytes are outside the {total} bytes of this video"),
            )
            .into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes */{total}")),
            );
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            h.insert(header::ETAG, header_value(&part.etag));
            return (resp, false);
        }
    };
    let len = last + 1 - first;
    let body = if *method == Method::HEAD || total == 0 {
        Body::empty()
    } else {
        stream_pieces(part.pieces, first, last)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, header_value(&part.etag));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            header::CONTENT_RANGE,
            header_value(&format!("bytes {first}-{last}/{total}")),
        );
    }
    h.insert(MEDIA_START_HEADER, header_value(&format_us(part.start_us)));
    h.insert(MEDIA_END_HEADER, header_value(&format_us(part.end_us)));
    h.insert(PARTS_HEADER, HeaderValue::from(starts.len()));
    if let Some(next) = starts.get(1) {
        h.insert(NEXT_PART_HEADER, header_value(&format_us(*next)));
    }
    if let Some(name) = attachment {
        h.insert(
            header::CONTENT_DISPOSITION,
            header_value(&format!("attachment; filename=\"{name}\"")),
        );
    }
    let new_view = first == 0 && *method != Method::HEAD;
    (resp, new_view)
}

// ------------------------------------------------------------------ playback

/// The recorded video of `[from, to)` as one fragmented MP4 (Playback): the init segment, a
/// segment index (`sidx`) of the GOPs from the database so a player reads only the GOP a seek
/// lands in, and the GOP fragments byte for byte as recorded; without the `sidx` it is an
/// evidence bundle's `video.mp4` (the plain MP4 export is progressive instead, see the export
/// route). Supports single
/// `Range` requests (206, `Content-Range`; 416 when unsatisfiable), `ETag` and `If-Range`, so a
/// browser `<video>` can seek. Playback starts at the keyframe at or before `from`.
///
/// A codec parameter change inside the range cannot share one MP4: the answer then holds only
/// the part up to the change, `Vigil-Playback-Parts` says how many parts the range has and
/// `Vigil-Next-Part-From` where the next one starts (request it as a new playback). Relative
/// times (`-10m`) resolve anew on every request; a seeking player should use absolute times.
#[utoipa::path(get, path = "/api/v1/cameras/{camera}/playback", tag = "recordings",
    params(("camera" = String, Path, description = "camera name"), PlaybackQuery,
        ("Range" = Option<String>, Header, description = "bytes=first-last, bytes=first-, or bytes=-suffix"),
        ("If-Range" = Option<String>, Header, description = "ETag of a previous answer")),
    responses(
        (status = 200, description = "the whole MP4", content_type = "video/mp4"),
        (status = 206, description = "the requested bytes", content_type = "video/mp4"),
        (status = 400, description = "bad time range or camera name", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "no such camera, or nothing recorded in the range", body = ErrorBody),
        (status = 416, description = "range outside the video", body = ErrorBody),
    ))]
async fn playback(
    State(state): State<SharedState>,
    caller: Caller,
    method: Method,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<PlaybackQuery>,
) -> ApiResult<Response> {
    caller.require(Permission::Playback, Some(&name))?;
    check_camera_name(&name)?;
    let (from, to) = time_range(q.from.as_deref(), q.to.as_deref(), true)?;
    let (camera, part, starts) = match held_elsewhere(&state, &name, q.stream, from, to).await? {
        Some(remote) => {
            let (h, body) = vigil_app::remote_video::playback(
                &remote.cfg,
                &remote.holder,
                &remote.id,
                remote.query,
            )
            .await
            .map_err(remote_error)?;
            let part = Mp4Answer {
                total: body.len() as u64,
                pieces: vec![Piece::Bytes(body)],
                etag: h.etag,
                start_us: h.media_start_us,
                end_us: h.media_end_us,
            };
            (remote.stream.name, part, h.part_starts_us)
        }
        None => {
            let store = state.store.clone();
            let archive = state.archive_config();
            let layout =
                blocking(move || mp4_layout(&store, &name, q.stream, from, to, &archive)).await??;
            let starts = layout.part_starts();
            let part = layout
                .parts
                .into_iter()
                .next()
                .expect("a layout has a part");
            (layout.camera.name, Mp4Answer::from(part), starts)
        }
    };
    let detail = json!({
        "camera": camera, "from": format_us(from), "to": format_us(to),
        "media_start": format_us(part.start_us), "media_end": format_us(part.end_us),
        "bytes": part.total, "parts": starts.len(),
    });
    let (resp, new_view) = mp4_response(part, &starts, &method, &headers, None);
    if new_view {
        audit(&state, &caller, AuditKind::Playback, detail).await?;
    }
    Ok(resp)
}

// ------------------------------------------------------------------ export

/// `cam1_20261121T100000.000Z_20261121T101000.000Z` style names: only characters that are
/// safe in a file name and a quoted header parameter.
fn file_stem(camera: &str, start_us: i64, end_us: i64) -> String {
    let t = |us| {
        format_us(us)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
            .collect::<String>()
    };
    let cam: String = camera
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{cam}_{}_{}", t(start_us), t(end_us))
}

/// Download `[from, to)` as a file (Export). `format=mp4` (default) is the same file as
/// `vigil export -o clip.mp4`, as an attachment, with Range support for resuming: a
/// progressive (non-fragmented) MP4, `ftyp`, `moov` with complete sample tables, then one
/// `mdat` holding the recorded frames byte for byte in decode order. Players show exactly the
/// clip: it starts at 0 and lasts as long as the clip. (The fragmented form that playback
/// serves carries the recording's absolute decode times; ffmpeg and Chromium report its
/// duration up to where its last fragment ends on that timeline, days for a clip cut days
/// into a recording.)
///
/// `format=bundle` is the signed evidence bundle (as `vigil export -o DIR/` writes it) in a
/// tar archive; `vigil verify DIR --ca ca.pem` checks it offline after `tar -xf`. Its
/// `video.mp4` is the verifiable form: the fragments byte for byte as the ledger signed them,
/// after the recorded init with an edit list that starts the clip at 0. The camera's ledger is
/// signed before the bundle is made, so video recorded a moment ago is covered by a signature.
///
/// Both carry the clip's wall-clock start as metadata: the movie's creation time (to the
/// second) and a `©day` item (to the microsecond).
///
/// Unlike playback, an export never silently stops at a codec change: such a range is a 409
/// `codec_change` naming where the parts start. In the MP4, the frame before a recording gap
/// lasts until recording resumes, so a position in the file is wall-clock time since the
/// clip's start.
#[utoipa::path(get, path = "/api/v1/cameras/{camera}/export", tag = "recordings",
    params(("camera" = String, Path, description = "camera name"), ExportQuery),
    responses(
        (status = 200, description = "the MP4 or the bundle (tar) as an attachment"),
        (status = 206, description = "part of the MP4", content_type = "video/mp4"),
        (status = 400, description = "bad time range, format or camera name", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "no such camera, or nothing recorded in the range", body = ErrorBody),
        (status = 409, description = "codec change within the range", body = ErrorBody),
        (status = 416, body = ErrorBody),
    ))]
async fn export(
    State(state): State<SharedState>,
    caller: Caller,
    method: Method,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    caller.require(Permission::Export, Some(&name))?;
    check_camera_name(&name)?;
    let bundle = match q.format.as_deref().unwrap_or("mp4") {
        "mp4" => false,
        "bundle" => true,
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_format",
                format!(
                    "unknown export format '{}'; use format=mp4 or format=bundle",
                    other.chars().take(20).collect::<String>()
                ),
            ));
        }
    };
    let (from, to) = time_range(q.from.as_deref(), q.to.as_deref(), true)?;
    if let Some(remote) = held_elsewhere(&state, &name, q.stream, from, to).await? {
        return Err(on_recording_server(&remote, "exported"));
    }
    if bundle {
        return export_bundle(state, caller, method, name, q.stream, from, to).await;
    }
    let store = state.store.clone();
    let archive = state.archive_config();
    let layout = blocking(move || {
        let camera = recorded_stream(&store, &name, q.stream)?;
        vigil_app::export::progressive_layout(&store, &camera.id, from, to, &archive)
            .map_err(ApiError::from)
    })
    .await??;
    let (camera, part, gaps) = layout.single().map_err(ApiError::from)?;
    let stem = file_stem(&camera.name, part.start_us, part.end_us);
    let detail = json!({
        "camera": camera.name, "from": format_us(from), "to": format_us(to),
        "media_start": format_us(part.start_us), "media_end": format_us(part.end_us),
        "frames": part.frames, "gaps": gaps.len(), "format": "mp4", "bytes": part.total,
    });
    let starts = [part.start_us];
    let (resp, new_download) = mp4_response(
        part.into(),
        &starts,
        &method,
        &headers,
        Some(format!("{stem}.mp4")),
    );
    if new_download {
        audit(&state, &caller, AuditKind::Export, detail).await?;
    }
    Ok(resp)
}

/// The signed evidence bundle of `[from, to)` as a tar download. The camera's ledger is
/// signed first (when recording runs in this process), so the newest video is covered.
async fn export_bundle(
    state: SharedState,
    caller: Caller,
    method: Method,
    name: String,
    stream: Option<StreamParam>,
    from: i64,
    to: i64,
) -> ApiResult<Response> {
    let exporter = ExporterIdentity {
        user: format!("api:{}", caller.name()),
        server: vigil_app::export::server_name(&hostnames(&state)),
    };
    let data_dir = state.data_dir();
    let store = state.store.clone();
    let evidence = state.evidence.get().cloned();
    let archive = state.archive_config();
    let tar = blocking(move || {
        let camera: Camera = recorded_stream(&store, &name, stream)?;
        let sign = move |camera_id: &str| -> Result<(), String> {
            let Some(evidence) = &evidence else {
                return Ok(());
            };
            let w = evidence.writer(camera_id).map_err(|e| e.to_string())?;
            let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
            w.sign_now().map_err(|e| e.to_string())
        };
        let req = BundleRequest {
            store: &store,
            data_dir: &data_dir,
            camera: &camera.id,
            from_us: from,
            to_us: to,
            exporter,
            archive: &archive,
            audit: None,
        };
        vigil_app::export::bundle_tar(&req, TailSigning::SignNow(&sign)).map_err(ApiError::from)
    })
    .await??;
    let e = &tar.export;
    let detail = json!({
        "camera": e.camera, "from": format_us(from), "to": format_us(to),
        "media_start": format_us(e.start_us), "media_end": format_us(e.end_us),
        "frames": e.frames, "gaps": e.gaps.len(), "format": "bundle", "bytes": tar.len,
        "fragments": e.summary.fragments, "unsigned_fragments": e.summary.unsigned_fragments,
    });
    let stem = file_stem(&e.camera, e.start_us, e.end_us);
    let (len, unsigned) = (tar.len, e.summary.unsigned_fragments);
    let mut resp = if method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        Response::new(stream_tar(tar))
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        header_value(&format!("attachment; filename=\"{stem}.tar\"")),
    );
    h.insert("vigil-unsigned-fragments", HeaderValue::from(unsigned));
    if method != Method::HEAD {
        audit(&state, &caller, AuditKind::Export, detail).await?;
    }
    Ok(resp)
}

fn hostnames(state: &SharedState) -> Vec<String> {
    state
        .config
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .management
        .hostnames
        .clone()
}

/// Streams the archive from a blocking task through a small channel; the bundle's temporary
/// directory lives until the last byte is sent or the client goes away.
fn stream_tar(tar: vigil_app::export::BundleTar) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut sink = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let written = tar.write_to(&mut sink);
        // The temporary bundle is gone before the client has the last byte.
        drop(tar);
        if let Err(e) = written.and_then(|()| sink.send()) {
            // The status line is gone already; the client sees a short body and the log says why.
            tracing::error!(error = %e, "cannot stream an evidence bundle");
            let _ = tx.blocking_send(Err(e));
        }
    });
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// A `Write` that hands the response body chunks of about [`CHUNK`] bytes; the caller sends
/// the rest with [`ChannelWriter::send`] when it is done.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ------------------------------------------------------------------ verify

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyAnswer {
    pub camera: String,
    /// Everything in range is signed and intact.
    pub verified: bool,
    /// Tampering or an untrusted signer was found (as opposed to merely unsigned data).
    pub tampered: bool,
    /// One line for people, as `vigil verify CAM` prints it.
    pub summary: String,
    /// The full report, as `vigil verify CAM --json` prints it: the first failure (kind,
    /// time, segment, detail), unsigned spans, signed events (gaps, pruning...), what was
    /// checked, and the signers.
    #[schema(value_type = Object)]
    pub report: serde_json::Value,
}

/// Verify the signatures of a camera's recordings over `[from, to)` (Verify): the ledger's
/// hash chain and signatures against this installation's CA, every segment file in range, and
/// the index against the signed ledger — the same check as `vigil verify CAM`. The answer is
/// 200 whatever the outcome; `verified` and `report.failure` tell it.
#[utoipa::path(post, path = "/api/v1/cameras/{camera}/verify", tag = "recordings",
    params(("camera" = String, Path, description = "camera name"), RangeQuery),
    responses(
        (status = 200, body = VerifyAnswer),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "the camera has no evidence ledger yet", body = ErrorBody),
    ))]
async fn verify(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> ApiResult<Json<VerifyAnswer>> {
    caller.require(Permission::Verify, Some(&name))?;
    check_camera_name(&name)?;
    let now = now_us();
    let range = vigil_signing::TimeRange {
        from_us: parse_end("from", q.from.as_deref(), now)?,
        to_us: parse_end("to", q.to.as_deref(), now)?,
    };
    let (from, to) = (
        range.from_us.unwrap_or(0),
        range.to_us.unwrap_or(i64::MAX / 2),
    );
    if let Some(remote) = held_elsewhere(&state, &name, None, from, to).await? {
        return Err(on_recording_server(&remote, "verified"));
    }
    let ca_pem = state
        .pki
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .ca_cert_pem()
        .to_owned();
    let store = state.store.clone();
    let data_dir = state.data_dir();
    let archive = state.archive_config();
    let access = state.access.clone();
    let actor = vigil_access::Actor::from_principal(&caller.principal, caller.source);
    let (camera, report) = blocking(move || {
        let stream = recorded_stream(&store, &name, q.stream)?;
        let trail = vigil_app::audit::Trail::new(&access, actor);
        vigil_app::verify::verify_camera(
            &store,
            &data_dir,
            &stream.id,
            range,
            &ca_pem,
            &archive,
            &mut |_, _| {},
            Some(&trail),
        )
        .map_err(|e| match e {
            VerifyError::NoCamera(name) => camera_not_found(&name),
            e => ApiError::from_app(e),
        })
    })
    .await??;
    let answer = VerifyAnswer {
        camera: camera.name.clone(),
        verified: report.is_verified(),
        tampered: report.is_tampered(),
        summary: report.summary(),
        report: serde_json::to_value(&report).map_err(ApiError::internal)?,
    };
    Ok(Json(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(range: &str, if_range: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(range).unwrap());
        if let Some(v) = if_range {
            h.insert(header::IF_RANGE, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn extreme_range_ends_are_refused_without_overflow() {
        for (from, to) in [
            ("-290000y", "+200000y"),
            ("-290000y", "now"),
            ("0", "+200000y"),
        ] {
            match time_range(Some(from), Some(to), true) {
                Ok(r) => panic!("{from}..{to} accepted: {r:?}"),
                Err(e) => assert!(
                    ["range_too_long", "bad_time", "bad_range"].contains(&e.code),
                    "{from}..{to}: {}",
                    e.code
                ),
            }
        }
    }

    #[test]
    fn byte_ranges() {
        let e = "\"abc\"";
        let r = |s: &str| byte_range(&req(s, None), 1000, e);
        assert_eq!(byte_range(&HeaderMap::new(), 1000, e), ByteRange::Full);
        assert_eq!(r("bytes=0-99"), ByteRange::Part(0, 99));
        assert_eq!(r("bytes=500-"), ByteRange::Part(500, 999));
        assert_eq!(r("bytes=990-5000"), ByteRange::Part(990, 999));
        assert_eq!(r("bytes=-100"), ByteRange::Part(900, 999));
        assert_eq!(r("bytes=-5000"), ByteRange::Part(0, 999));
        assert_eq!(r("bytes=1000-"), ByteRange::Unsatisfiable);
        assert_eq!(r("bytes=-0"), ByteRange::Unsatisfiable);
        // Ignored (answered in full): other units, several ranges, malformed specs.
        for ignored in [
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=abc",
            "bytes=5-1",
            "bytes=--1",
            "bytes=0x10-",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(r(ignored), ByteRange::Full, "{ignored}");
        }
        assert_eq!(
            byte_range(&req("bytes=0-9", Some(e)), 1000, e),
            ByteRange::Part(0, 9)
        );
        assert_eq!(
            byte_range(&req("bytes=0-9", Some("\"other\"")), 1000, e),
            ByteRange::Full
        );
        assert_eq!(
            byte_range(
                &req("bytes=0-9", Some("Wed, 21 Oct 2015 07:28:00 GMT")),
                1000,
                e
            ),
            ByteRange::Full
        );
    }

    #[test]
    fn file_names_are_safe() {
        let s = file_stem("cam.1", 1_700_000_000_000_000, 1_700_000_060_000_000);
        assert_eq!(s, "cam_1_20231114T221320.000Z_20231114T221420.000Z");
    }
}
