//! What the long-lived WebSocket routes (live video, live events) share: who is watching
//! (a session, whose handshake must come from this server's own origin, or an API token),
//! whether they still may (checked again every second without counting as activity), the
//! close codes, the client's "ping", and closing.

use std::net::IpAddr;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use futures_util::{SinkExt as _, StreamExt as _};
use vigil_access::{Access, Principal, SessionError, TokenError};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// Close code: the session ended (logout, idle or absolute expiry), or the token or address
/// is no longer accepted.
pub const CLOSE_SESSION_ENDED: u16 = 4001;
/// Close code: the caller no longer has the permission (ViewLive on the camera, or any to
/// read events).
pub const CLOSE_FORBIDDEN: u16 = 4003;
/// Close code: the camera was removed (or the secondary stream watched).
pub const CLOSE_CAMERA_REMOVED: u16 = 4004;
/// Close code (RFC 6455): the server is stopping, or the listener was retired.
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// How often a viewer's session, permission and camera are checked again.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(1);
/// A viewer that cannot take one message in this long is gone (its socket is dropped).
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(20);
/// Clients send at most "ping"; anything larger is refused by the WebSocket layer.
pub(crate) const MAX_CLIENT_MESSAGE: usize = 4096;

/// What the watcher authenticated with, to check again while it watches.
pub(crate) enum Credential {
    Session(String),
    Token(String),
}

/// The session or token of `caller`; a session's handshake must come from this server's own
/// origin.
pub(crate) fn credential(caller: &Caller, headers: &HeaderMap) -> ApiResult<Credential> {
    if let Some(id) = &caller.session_id {
        same_origin(headers)?;
        return Ok(Credential::Session(id.clone()));
    }
    // Authenticated without a session: by the bearer token (the extractor accepted it).
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .map(|(_, t)| t.trim().to_owned())
        .ok_or_else(ApiError::unauthenticated)?;
    Ok(Credential::Token(token))
}

fn bad_origin(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "bad_origin",
        format!(
            "{message}: a WebSocket with a session cookie is only opened for pages of this server (Origin must be https://<Host>)"
        ),
    )
}

/// The `Origin` header must name this server as the client reached it: `https://` and the
/// `Host` header (default port 443 either way, host names in any case).
pub(crate) fn same_origin(headers: &HeaderMap) -> ApiResult<()> {
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| bad_origin("the handshake has no Origin header"))?;
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| bad_origin("the handshake has no Host header"))?;
    let normalize = |authority: &str| {
        let a = authority.trim().to_ascii_lowercase();
        match a.strip_suffix(":443") {
            Some(bare) => bare.to_owned(),
            None => a,
        }
    };
    let Some(origin_authority) = origin.strip_prefix("https://") else {
        return Err(bad_origin("the Origin is not an https:// origin"));
    };
    if origin_authority.contains(['/', '@', '?', '#'])
        || normalize(origin_authority) != normalize(host)
    {
        return Err(bad_origin("the Origin is not this server"));
    }
    Ok(())
}

/// Why a watcher's socket ends.
#[derive(Debug)]
pub(crate) enum End {
    /// Close with this code and reason.
    Close(u16, &'static str),
    /// The client closed: answer its close frame.
    ClientClosed,
    /// The connection is gone or hopeless: nothing more can be sent.
    Gone,
}

/// The watcher's principal as it is now: `Err(Some(end))` when it must stop (session ended,
/// token revoked, address blocked), `Err(None)` when it cannot be told now (a busy
/// database): keep watching until the next check.
pub(crate) fn principal_now(
    access: &Access,
    credential: &Credential,
    source: IpAddr,
) -> Result<Principal, Option<End>> {
    let principal = match credential {
        Credential::Session(id) => {
            // Not `validate_session`: watching is no activity.
            match access.session_status(id) {
                Ok(info) => info.principal,
                Err(SessionError::Internal(e)) => {
                    tracing::warn!(error = %e, "watch: cannot read the session");
                    return Err(None);
                }
                Err(_) => return Err(Some(End::Close(CLOSE_SESSION_ENDED, "session ended"))),
            }
        }
        Credential::Token(token) => match access.authenticate_token(token, source) {
            Ok(p) => p,
            Err(TokenError::Internal(e)) => {
                tracing::warn!(error = %e, "watch: cannot read the token");
                return Err(None);
            }
            Err(_) => {
                return Err(Some(End::Close(
                    CLOSE_SESSION_ENDED,
                    "token no longer valid",
                )));
            }
        },
    };
    if access.check(source).is_err() {
        return Err(Some(End::Close(CLOSE_SESSION_ENDED, "address blocked")));
    }
    Ok(principal)
}

/// Runs `check` on `guard` (blocking work: database reads) every [`CHECK_EVERY`] until it
/// says the watcher must stop; a check that cannot run is logged and tried again.
pub(crate) async fn recheck<G: Send + Sync + 'static>(
    guard: std::sync::Arc<G>,
    check: fn(&G) -> Option<End>,
    what: &'static str,
) -> End {
    let mut every = tokio::time::interval(CHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        let guard = guard.clone();
        match crate::routes::blocking(move || check(&guard)).await {
            Ok(Some(end)) => return end,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e.message, "{what}: cannot check the watcher"),
        }
    }
}

/// Ends a socket: a close frame (ours, or the answer to the client's) and then the end, in a
/// second at most (a send cut short may have left its frame to be flushed first).
pub(crate) async fn close<S>(sink: &mut S, end: End)
where
    S: futures_util::Sink<Message> + Unpin,
{
    let last = match end {
        End::Close(code, reason) => Some(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        }))),
        End::ClientClosed => None,
        End::Gone => return,
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        if let Some(m) = last {
            sink.send(m).await?;
        }
        sink.close().await
    })
    .await;
}

/// Reads what the client sends: "ping" is answered, the rest ignored; ends when the client
/// closes or the connection fails.
pub(crate) async fn read<S>(stream: &mut S, pongs: tokio::sync::mpsc::Sender<()>) -> End
where
    S: futures_util::Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    while let Some(msg) = stream.next().await {
        match msg {
            Ok(Message::Text(t)) if t.as_str() == "ping" => {
                // A client pinging faster than pongs go out loses the extra pongs.
                let _ = pongs.try_send(());
            }
            Ok(Message::Close(_)) => return End::ClientClosed,
            Ok(_) => {}
            Err(_) => return End::Gone,
        }
    }
    End::Gone
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn only_this_servers_https_origin_passes() {
        for (origin, host) in [
            ("https://127.0.0.1:8443", "127.0.0.1:8443"),
            ("https://VMS.example.net", "vms.example.net"),
            ("https://vms.example.net", "vms.example.net:443"),
            ("https://vms.example.net:443", "vms.example.net"),
            ("https://[::1]:8443", "[::1]:8443"),
        ] {
            assert!(
                same_origin(&headers(Some(origin), host)).is_ok(),
                "{origin} {host}"
            );
        }
        for (origin, host) in [
            (None, "127.0.0.1:8443"),
            (Some("http://127.0.0.1:8443"), "127.0.0.1:8443"),
            (Some("https://127.0.0.1:8444"), "127.0.0.1:8443"),
            (Some("https://127.0.0.1"), "127.0.0.1:8443"),
            (Some("https://evil.example"), "vms.example.net"),
            (
                Some("https://vms.example.net.evil.example"),
                "vms.example.net",
            ),
            (Some("https://x@vms.example.net"), "vms.example.net"),
            (Some("null"), "vms.example.net"),
        ] {
            let e = same_origin(&headers(origin, host)).unwrap_err();
            assert_eq!((e.status, e.code), (StatusCode::FORBIDDEN, "bad_origin"));
        }
    }
}
