//! One SOAP exchange over HTTP/1.1: connect, TLS with the camera certificate rules when the
//! address is https, POST, and read at most the answer limit within the time limit. One
//! connection per request: a device is asked a handful of questions, and a connection that
//! is never reused cannot carry one device's state into another call.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper::header::{
    AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, WWW_AUTHENTICATE,
};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use url::Url;
use vigil_media::ingest_tls::{CameraVerifier, Decision, TrustStore};

use crate::OnvifError;
use crate::digest::MAX_CHALLENGE_BYTES;

/// What the device answered: its status, body and, on 401, how it wants to be asked (every
/// `WWW-Authenticate` field, joined with `, `; cut after [`MAX_CHALLENGE_BYTES`] + 1 bytes, so
/// a longer one is refused by the Digest parser, not read further).
pub(crate) struct Answer {
    pub status: u16,
    pub body: String,
    pub www_authenticate: Option<String>,
}

/// The certificate rules for an https exchange.
pub(crate) struct TlsRules<'a> {
    pub trust: &'a TrustStore,
    pub pin: Option<String>,
    /// The certificate this client accepted earlier: another one is a change.
    pub seen: Option<String>,
}

/// POSTs `body` with the SOAP `action` to `url`, with an `Authorization` field when given
/// (HTTP Digest), and returns the answer and, for https, the fingerprint of the certificate
/// accepted.
pub(crate) async fn post(
    url: &Url,
    action: &str,
    body: String,
    authorization: Option<String>,
    tls: Option<TlsRules<'_>>,
    timeout: Duration,
    limit: usize,
) -> Result<(Answer, Option<String>), OnvifError> {
    let host = url
        .host_str()
        .ok_or_else(|| OnvifError::BadAddress(url.to_string()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| OnvifError::BadAddress(url.to_string()))?;
    let addr = format!("{host}:{port}");
    let work = async {
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| OnvifError::Connect {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        let _ = tcp.set_nodelay(true);
        match tls {
            None => Ok((
                exchange(tcp, url, action, body, authorization, limit).await?,
                None,
            )),
            Some(rules) => {
                let (stream, fingerprint) = handshake(tcp, &host, &addr, rules).await?;
                Ok((
                    exchange(stream, url, action, body, authorization, limit).await?,
                    Some(fingerprint),
                ))
            }
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| OnvifError::Timeout {
            what: "the ONVIF request (connect, TLS, answer)",
            secs: timeout.as_secs().max(1),
        })?
}

async fn handshake(
    tcp: TcpStream,
    host: &str,
    addr: &str,
    rules: TlsRules<'_>,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, String), OnvifError> {
    let server_name = ServerName::try_from(host.to_owned())
        .map_err(|e| OnvifError::BadAddress(format!("{host}: {e}")))?;
    let verifier = Arc::new(CameraVerifier::new(rules.trust, rules.pin, rules.seen));
    let tls_error = |reason: String| OnvifError::Tls {
        addr: addr.to_owned(),
        reason,
    };
    let mut config = rustls::ClientConfig::builder_with_provider(vigil_pki::tls::crypto_provider())
        .with_protocol_versions(vigil_pki::tls::PROTOCOL_VERSIONS)
        .map_err(|e| tls_error(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let result = connector.connect(server_name, tcp).await;
    match (result, verifier.decision()) {
        (Ok(stream), Some(Decision::Accepted { fingerprint, .. })) => Ok((stream, fingerprint)),
        (_, Some(Decision::Changed { old, new })) => {
            Err(OnvifError::CertificateChanged { old, new })
        }
        (
            _,
            Some(Decision::Untrusted {
                fingerprint,
                reason,
            }),
        ) => Err(OnvifError::CertificateUntrusted {
            fingerprint,
            reason,
        }),
        (Err(e), _) => Err(tls_error(e.to_string())),
        (Ok(_), None) => Err(tls_error(
            "the handshake ended without a certificate decision".into(),
        )),
    }
}

async fn exchange<S>(
    io: S,
    url: &Url,
    action: &str,
    body: String,
    authorization: Option<String>,
    limit: usize,
) -> Result<Answer, OnvifError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let broken = |e: hyper::Error| OnvifError::Malformed(format!("HTTP: {e}"));
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        // Bounds the status line and headers a device may send.
        .max_buf_size(64 * 1024)
        .handshake(TokioIo::new(io))
        .await
        .map_err(broken)?;
    let driver = tokio::spawn(conn);
    let _abort = AbortOnDrop(driver);
    let host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let mut request = Request::post(request_target(url));
    if let Some(a) = authorization {
        request = request.header(AUTHORIZATION, a);
    }
    let request = request
        .header(HOST, host)
        .header(
            CONTENT_TYPE,
            format!("application/soap+xml; charset=utf-8; action=\"{action}\""),
        )
        .header(CONNECTION, "close")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| OnvifError::BadAddress(format!("{url}: {e}")))?;
    let response = sender.send_request(request).await.map_err(broken)?;
    let status = response.status().as_u16();
    let mut www_authenticate: Option<String> = None;
    for v in response.headers().get_all(WWW_AUTHENTICATE) {
        let all = www_authenticate.get_or_insert_with(String::new);
        if all.len() > MAX_CHALLENGE_BYTES {
            break;
        }
        if !all.is_empty() {
            all.push_str(", ");
        }
        // Not text: kept as a character the parser refuses.
        all.push_str(v.to_str().unwrap_or("\u{0}"));
    }
    if let Some(all) = &mut www_authenticate
        && all.len() > MAX_CHALLENGE_BYTES + 1
    {
        let mut end = MAX_CHALLENGE_BYTES + 1;
        while !all.is_char_boundary(end) {
            end -= 1;
        }
        all.truncate(end);
    }
    if let Some(len) = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(OnvifError::TooLarge { limit });
    }
    let bytes = Limited::new(response.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                OnvifError::TooLarge { limit }
            } else {
                OnvifError::Malformed(format!("HTTP body: {e}"))
            }
        })?
        .to_bytes();
    let body = String::from_utf8(bytes.to_vec())
        .map_err(|_| OnvifError::Malformed("the answer is not UTF-8 text".into()))?;
    Ok(Answer {
        status,
        body,
        www_authenticate,
    })
}

/// The request target of `url` as the request line names it (path and query): what an HTTP
/// Digest response covers.
pub(crate) fn request_target(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
