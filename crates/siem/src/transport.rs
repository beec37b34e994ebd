//! TLS to a collector (RFC 5425): rustls with the aws-lc-rs provider, TLS 1.2 and 1.3 only.
//! The collector's certificate must chain to the configured CA file, or to the system's CA
//! store when none is given, and carry the collector's name (the host of `target`, or
//! `server_name`). A client certificate (PEM chain and key; the key file must not be
//! readable by group or others, as Vigil writes its own keys with mode 0600) lets the
//! collector authenticate Vigil.
//!
//! The TCP stream is wrapped to count the bytes written to the socket; with what the kernel
//! still holds unacknowledged ([`unacked_bytes`], `TIOCOUTQ`) that tells how far the
//! collector's TCP has acknowledged: the basis of delivery ([`crate::sender`]).

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Connecting and the TLS handshake together take at most this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a collector's TLS settings cannot be used; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "{what} {path} holds no PEM certificate: give a file with -----BEGIN CERTIFICATE----- blocks"
    )]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("{what} {path}: {reason}")]
    BadCertificate {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "client key file {path} can be read by other users (mode {mode:04o}): run `chmod 600 {path}`"
    )]
    KeyReadable { path: PathBuf, mode: u32 },
    #[error(
        "client key file {path} holds no PEM private key ({reason}): give the key in PKCS#8, PKCS#1 or SEC1 PEM"
    )]
    BadKey { path: PathBuf, reason: String },
    #[error("the client certificate {cert} and key {key} do not go together: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error(
        "the system's CA store is empty or unreadable ({0}): set ca_file to the CA certificate of the collector"
    )]
    NoSystemRoots(String),
    #[error(
        "{0:?} is not a valid host name or address for the collector's certificate: set server_name"
    )]
    BadServerName(String),
}

/// Where and how to reach a collector over TLS.
#[derive(Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub server_name: ServerName<'static>,
    pub tls: Arc<ClientConfig>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// The endpoint for `host:port`, verified as `server_name` (default: `host`) against
    /// `ca_file` (default: the system store), with an optional client certificate.
    pub fn new(
        host: &str,
        port: u16,
        server_name: Option<&str>,
        ca_file: Option<&Path>,
        client: Option<(&Path, &Path)>,
    ) -> Result<Self, TlsSetupError> {
        let name = server_name.unwrap_or(host);
        let server_name = ServerName::try_from(name.to_owned())
            .map_err(|_| TlsSetupError::BadServerName(name.to_owned()))?;
        Ok(Endpoint {
            host: host.to_owned(),
            port,
            server_name,
            tls: Arc::new(client_config(ca_file, client)?),
        })
    }
}

/// The rustls client configuration: roots from `ca_file` or the system store, TLS 1.2+, the
/// client certificate if given.
pub fn client_config(
    ca_file: Option<&Path>,
    client: Option<(&Path, &Path)>,
) -> Result<ClientConfig, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = read_certs("CA file", path)?;
            for c in certs {
                roots.add(c).map_err(|e| TlsSetupError::BadCertificate {
                    what: "CA file",
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                let why = native
                    .errors
                    .first()
                    .map_or_else(|| "no certificates".to_owned(), |e| e.to_string());
                return Err(TlsSetupError::NoSystemRoots(why));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the aws-lc-rs provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = read_certs("client certificate file", cert)?;
            let key_der = read_key(key)?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| TlsSetupError::Mismatch {
                    cert: cert.to_path_buf(),
                    key: key.to_path_buf(),
                    reason: e.to_string(),
                })?
        }
    };
    Ok(config)
}

fn read_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let bytes = std::fs::read(path).map_err(|source| TlsSetupError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsSetupError::BadCertificate {
            what,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Reads a private key that only its owner can read.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    let read = |source| TlsSetupError::Read {
        what: "client key file",
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(TlsSetupError::KeyReadable {
            path: path.to_path_buf(),
            mode,
        });
    }
    let bytes = std::fs::read(path).map_err(read)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsSetupError::BadKey {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// A TLS connection to a collector, with the bytes written to its socket counted.
pub struct Connection {
    pub tls: TlsStream<Counting>,
    /// Bytes written to the socket so far.
    pub written: Arc<AtomicU64>,
    /// The socket, for [`unacked_bytes`].
    pub fd: RawFd,
}

/// Connects and completes the TLS handshake (at most [`CONNECT_TIMEOUT`]).
pub async fn connect(ep: &Endpoint) -> io::Result<Connection> {
    let attempt = async {
        let tcp = TcpStream::connect((ep.host.as_str(), ep.port)).await?;
        tcp.set_nodelay(true)?;
        let fd = tcp.as_raw_fd();
        let written = Arc::new(AtomicU64::new(0));
        let counting = Counting {
            inner: tcp,
            written: written.clone(),
        };
        let tls = TlsConnector::from(ep.tls.clone())
            .connect(ep.server_name.clone(), counting)
            .await?;
        Ok(Connection { tls, written, fd })
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no TLS connection within {} s", CONNECT_TIMEOUT.as_secs()),
            ))
        })
}

/// A TCP stream that counts the bytes written to it.
pub struct Counting {
    inner: TcpStream,
    written: Arc<AtomicU64>,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Bytes written to the TCP socket `fd` that its peer has not acknowledged yet (Linux
/// `TIOCOUTQ`/`SIOCOUTQ`: the send queue, sent-but-unacknowledged plus not yet sent).
#[allow(unsafe_code)]
pub fn unacked_bytes(fd: RawFd) -> io::Result<u64> {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ writes one c_int through the pointer, which points at `n`; `fd` is
    // a socket the caller keeps open for the duration of the call (an invalid descriptor
    // only makes the call fail with EBADF).
    let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n as *mut libc::c_int) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn a_key_readable_by_others_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("client.key");
        std::fs::write(&key, "not a key\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_key(&key).unwrap_err().to_string();
        assert!(e.contains("mode 0644") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = read_key(&key).unwrap_err().to_string();
        assert!(e.contains("no PEM private key"), "{e}");
    }

    #[test]
    fn files_without_certificates_say_what_they_need() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::File::create(&ca)
            .unwrap()
            .write_all(b"not a certificate\n")
            .unwrap();
        let e = client_config(Some(&ca), None).unwrap_err().to_string();
        assert!(e.contains("BEGIN CERTIFICATE"), "{e}");
        let e = client_config(Some(&dir.path().join("missing.pem")), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read CA file"), "{e}");
        let e = Endpoint::new("h", 1, Some("bad name!"), Some(&ca), None).unwrap_err();
        assert!(e.to_string().contains("server_name"), "{e}");
    }

    #[test]
    fn unacked_bytes_refuses_a_bad_descriptor() {
        assert!(unacked_bytes(-1).is_err());
    }
}
