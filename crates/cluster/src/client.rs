//! The client side of the inter-server protocol: one HTTP/1.1 connection over rustls, kept
//! open between heartbeats and opened again when the other side closed it, with deadlines on
//! connecting and on every answer, and errors that say which side refused what.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use crate::protocol::{ErrorReply, MAX_BODY};

pub use hyper::Method;

/// Time to connect and finish the TLS handshake, and to get an answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call to another server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    BadUrl(String),
    #[error("cannot connect to {target}: {message}")]
    Connect { target: String, message: String },
    #[error("no answer from {target} within {secs} s")]
    Timeout { target: String, secs: u64 },
    #[error("TLS with {target} failed: {message}")]
    Tls { target: String, message: String },
    #[error("{target} refused the request ({status} {code}): {message}")]
    Refused {
        target: String,
        status: u16,
        code: String,
        message: String,
    },
}

/// A parsed `https://HOST[:PORT]` of another server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "https://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "https://{}:{}", self.host, self.port)
        }
    }
}

impl Target {
    /// Parses `https://HOST[:PORT]` (`default_port` when none). Refuses other schemes, user
    /// names or passwords in the URL (no secret belongs in a URL), paths, queries.
    pub fn parse(text: &str, default_port: u16) -> Result<Target, ClientError> {
        let bad = |why: &str| {
            ClientError::BadUrl(format!(
                // The text itself is not repeated: it might hold a password.
                "the server URL {why}: give it as https://HOST:PORT, e.g. https://mgmt.example:8444"
            ))
        };
        let url = url::Url::parse(text.trim()).map_err(|e| bad(&format!("is not a URL ({e})")))?;
        if url.scheme() != "https" {
            return Err(bad("does not start with https://"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "contains a user name or password; the token file is how the server proves itself",
            ));
        }
        if !(url.path().is_empty() || url.path() == "/")
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(bad("has a path or query"));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err(bad("has no host")),
        };
        Ok(Target {
            host,
            port: url.port().unwrap_or(default_port),
        })
    }
}

/// One open connection.
pub struct Connection {
    target: Target,
    sender: SendRequest<Full<Bytes>>,
    peer_cert_sha256: Option<String>,
}

/// A 2xx answer with its headers.
#[derive(Debug)]
pub struct Answer {
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

/// The error and its causes in one line (rustls alerts sit deep in hyper's error chain).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
}

/// Advice for the TLS alerts a refused client certificate produces.
fn explain(message: &str) -> String {
    let advice = if message.contains("CertificateRevoked") {
        " (this server's certificate was revoked: it was removed with `vigil server remove`; join again with a new token)"
    } else if message.contains("UnknownCA") || message.contains("BadCertificate") {
        " (the other side does not accept this certificate: it is not from the installation CA)"
    } else if message.contains("CertificateRequired") {
        " (the other side requires a client certificate: join first with `vigil server join`)"
    } else {
        ""
    };
    format!("{message}{advice}")
}

impl Connection {
    /// Connects and completes the TLS handshake.
    pub async fn open(
        target: &Target,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<Connection, ClientError> {
        let name = target.to_string();
        let server_name = ServerName::try_from(target.host.clone())
            .map_err(|e| ClientError::BadUrl(format!("host {:?}: {e}", target.host)))?;
        let work = async {
            let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
                .await
                .map_err(|e| ClientError::Connect {
                    target: name.clone(),
                    message: e.to_string(),
                })?;
            let _ = tcp.set_nodelay(true);
            let tls = TlsConnector::from(config)
                .connect(server_name, tcp)
                .await
                .map_err(|e| ClientError::Tls {
                    target: name.clone(),
                    message: explain(&chain(&e)),
                })?;
            let peer = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| crate::cert_sha256(c));
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| ClientError::Tls {
                    target: name.clone(),
                    message: explain(&chain(&e)),
                })?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok((sender, peer))
        };
        let (sender, peer_cert_sha256) = tokio::time::timeout(CONNECT_TIMEOUT, work)
            .await
            .map_err(|_| ClientError::Timeout {
                target: name.clone(),
                secs: CONNECT_TIMEOUT.as_secs(),
            })??;
        Ok(Connection {
            target: target.clone(),
            sender,
            peer_cert_sha256,
        })
    }

    /// SHA-256 (hex) of the certificate the other side presented.
    pub fn peer_cert_sha256(&self) -> Option<&str> {
        self.peer_cert_sha256.as_deref()
    }

    /// Whether the other side closed the connection.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Sends one request and returns the answer body of a 2xx answer; an error answer
    /// becomes [`ClientError::Refused`] with the other side's explanation.
    pub async fn call(
        &mut self,
        method: hyper::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, ClientError> {
        self.call_limited(method, path, body, MAX_BODY).await
    }

    /// [`Connection::call`] for an answer of at most `limit` bytes (the assignments answer
    /// is larger than the other messages).
    pub async fn call_limited(
        &mut self,
        method: hyper::Method,
        path: &str,
        body: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<Bytes, ClientError> {
        Ok(self.fetch(method, path, body, limit).await?.body)
    }

    /// [`Connection::call_limited`] keeping the answer's headers (recorded video carries its
    /// times in them).
    pub async fn fetch(
        &mut self,
        method: hyper::Method,
        path: &str,
        body: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<Answer, ClientError> {
        let name = self.target.to_string();
        let host = match self.target.host.contains(':') {
            true => format!("[{}]:{}", self.target.host, self.target.port),
            false => format!("{}:{}", self.target.host, self.target.port),
        };
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", host)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::BadUrl(e.to_string()))?;
        let tls_err = |e: &dyn std::error::Error| ClientError::Tls {
            target: name.clone(),
            message: explain(&chain(e)),
        };
        let work = async {
            self.sender.ready().await.map_err(|e| tls_err(&e))?;
            let response = self
                .sender
                .send_request(request)
                .await
                .map_err(|e| tls_err(&e))?;
            let status = response.status().as_u16();
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, limit)
                .collect()
                .await
                .map_err(|e| tls_err(&*e))?
                .to_bytes();
            Ok::<_, ClientError>((status, parts.headers, body))
        };
        let (status, headers, body) =
            tokio::time::timeout(ANSWER_TIMEOUT, work)
                .await
                .map_err(|_| ClientError::Timeout {
                    target: name.clone(),
                    secs: ANSWER_TIMEOUT.as_secs(),
                })??;
        if (200..300).contains(&status) {
            return Ok(Answer { headers, body });
        }
        let (code, message) = match serde_json::from_slice::<ErrorReply>(&body) {
            Ok(e) => (e.error, e.message.chars().take(500).collect()),
            Err(_) => ("unknown".into(), "no explanation was given".into()),
        };
        Err(ClientError::Refused {
            target: name,
            status,
            code,
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            Target::parse("https://mgmt.example:9000", 8444).unwrap(),
            Target {
                host: "mgmt.example".into(),
                port: 9000
            }
        );
        assert_eq!(Target::parse("https://10.0.0.1", 8444).unwrap().port, 8444);
        assert_eq!(
            Target::parse("https://[::1]:8444/", 1).unwrap().to_string(),
            "https://[::1]:8444"
        );
        for bad in [
            "http://mgmt:8444",
            "https://user:pw@mgmt:8444",
            "https://mgmt:8444/v1/enrol",
            "https://mgmt:8444?x=1",
            "mgmt:8444",
            "",
        ] {
            let e = Target::parse(bad, 8444).unwrap_err().to_string();
            assert!(e.contains("https://HOST:PORT"), "{bad}: {e}");
            assert!(!e.contains("pw"), "{e}");
        }
    }
}
