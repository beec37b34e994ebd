//! Test harness for the API: a fresh data directory with a real access database, recording
//! index and PKI; requests go through the real router in-process (`call`, `get`, `post`,
//! `patch`) or over real TLS sockets (`serve`, `tls_connect`, `read_answer`, and command-line
//! clients through `run`).
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use vigil_access::{
    Access, AccessConfig, Actor, CameraScope, ManualClock, NewToken, NewUser, Role, Timestamp,
    TracingSink,
};
use vigil_config::Config;
use vigil_media::store::Store;
use vigil_pki::{InitOptions, Pki};
use vigil_web::auth::{CSRF_HEADER, ConnInfo, SESSION_COOKIE};
use vigil_web::{AppState, ListenerPlan, SharedState};

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple 42";

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub state: SharedState,
    pub router: Router,
    pub clock: Arc<ManualClock>,
    pub config_path: PathBuf,
}

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Bearer(String),
    Session {
        cookie: String,
        csrf: String,
    },
    /// A session cookie without the CSRF header.
    SessionNoCsrf {
        cookie: String,
    },
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The stable error code of an error answer.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }

    /// A header's value, empty when absent.
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(|_| {})
    }

    /// A harness whose configuration is adjusted by `f` before anything opens.
    pub fn with_config(f: impl FnOnce(&mut Config)) -> Self {
        Self::with_config_and_access(f, AccessConfig::default())
    }

    /// A harness whose access store uses `access` (IDS allow-list, thresholds, sessions).
    pub fn with_access(access: AccessConfig) -> Self {
        Self::with_config_and_access(|_| {}, access)
    }

    /// Both: configuration adjusted by `f`, access store opened with `access`.
    pub fn with_config_and_access(f: impl FnOnce(&mut Config), access: AccessConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let mut config = Config::with_data_dir(&data);
        f(&mut config);
        let config_path = dir.path().join("vigil.toml");
        std::fs::write(&config_path, config.to_commented_toml()).unwrap();
        let store = Arc::new(Store::init(&data).unwrap());
        let clock = Arc::new(ManualClock::new(Timestamp::from_unix_ms(1_790_000_000_000)));
        let access = Arc::new(
            Access::open_with(
                &data.join("access.db"),
                access,
                clock.clone(),
                Arc::new(TracingSink),
            )
            .unwrap(),
        );
        access
            .create_first_admin(ADMIN, Some(ADMIN_PASSWORD), &Actor::cli())
            .unwrap();
        let pki = Pki::init(&data.join("pki"), &InitOptions::default()).unwrap();
        let events = vigil_events::EventBus::start(
            Arc::new(vigil_events::EventStore::open(&data).unwrap()),
            "vigil-test",
        )
        .unwrap();
        let state = AppState::new(config_path.clone(), config, access, store, pki, events).unwrap();
        let (router, _) = vigil_web::app(state.clone());
        Harness {
            dir,
            state,
            router,
            clock,
            config_path,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Sends one request through the router (no socket).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Option<serde_json::Value>,
    ) -> Answer {
        self.send(request(method, path, auth, body)).await
    }

    pub async fn get(&self, path: &str, auth: &Auth) -> Answer {
        self.call(Method::GET, path, auth, None).await
    }

    pub async fn post(&self, path: &str, auth: &Auth, body: Option<serde_json::Value>) -> Answer {
        self.call(Method::POST, path, auth, body).await
    }

    pub async fn patch(&self, path: &str, auth: &Auth, body: serde_json::Value) -> Answer {
        self.call(Method::PATCH, path, auth, Some(body)).await
    }

    /// Sends a prepared request through the router.
    pub async fn send(&self, req: Request<Body>) -> Answer {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Creates a user (password returned).
    pub fn user(&self, name: &str, role: Role, cameras: CameraScope) -> String {
        // The policy refuses passwords containing the user name: derive one that cannot.
        let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
        let password = format!("zq{hex}x-v9-kt7-w3m");
        self.state
            .access
            .create_user(
                &NewUser {
                    username: name.into(),
                    role,
                    cameras,
                    password: Some(password.clone()),
                },
                &Actor::cli(),
            )
            .unwrap();
        password
    }

    /// A new user, logged in through the API.
    pub async fn signed_in(&self, name: &str, role: Role, cameras: CameraScope) -> Auth {
        let password = self.user(name, role, cameras);
        self.login(name, &password).await
    }

    /// An API token for `role`.
    pub fn token(&self, role: Role, cameras: CameraScope) -> String {
        self.state
            .access
            .create_token(
                &NewToken {
                    name: format!("{role}-token"),
                    role,
                    cameras,
                    expires_in: None,
                },
                &Actor::cli(),
            )
            .unwrap()
            .token
    }

    /// Logs in through the API and returns the session.
    pub async fn login(&self, user: &str, password: &str) -> Auth {
        let a = self
            .call(
                Method::POST,
                "/api/v1/session",
                &Auth::None,
                Some(serde_json::json!({"username": user, "password": password})),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "login failed: {}", a.text());
        let cookie = a
            .headers
            .get(header::SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_owned();
        let csrf = a.json()["csrf_token"].as_str().unwrap().to_owned();
        Auth::Session { cookie, csrf }
    }

    pub async fn admin(&self) -> Auth {
        self.login(ADMIN, ADMIN_PASSWORD).await
    }

    /// Starts real listeners (HTTPS on 127.0.0.1, port 0; plus HTTP when `http` is set).
    /// Returns (https address, http address).
    pub async fn serve(&self, http: bool) -> (SocketAddr, Option<SocketAddr>) {
        let (router, _) = vigil_web::app(self.state.clone());
        self.state.listeners.install_router(router);
        let plan = ListenerPlan {
            https: vec!["127.0.0.1:0".parse().unwrap()],
            http: if http {
                vec!["127.0.0.1:0".parse().unwrap()]
            } else {
                vec![]
            },
        };
        self.state.listeners.apply(&plan).await.unwrap();
        let addrs = self.state.listeners.local_addrs().await;
        let https = addrs
            .iter()
            .find(|(s, _)| *s == vigil_web::Scheme::Https)
            .unwrap()
            .1;
        let http = addrs
            .iter()
            .find(|(s, _)| *s == vigil_web::Scheme::Http)
            .map(|x| x.1);
        (https, http)
    }

    /// Starts an HTTPS listener on 127.0.0.1 (port 0) serving `router` instead of the API
    /// (a test route next to it, say) and returns its address.
    pub async fn serve_router(&self, router: Router) -> SocketAddr {
        self.state.listeners.install_router(router);
        let plan = ListenerPlan {
            https: vec!["127.0.0.1:0".parse().unwrap()],
            http: vec![],
        };
        self.state.listeners.apply(&plan).await.unwrap();
        self.state.listeners.local_addrs().await[0].1
    }

    /// A TLS connection to `addr` trusting only the installation CA, from the local address
    /// `from` (any loopback address works on Linux), offering `alpn`.
    pub async fn tls_connect(
        &self,
        addr: SocketAddr,
        from: std::net::IpAddr,
        alpn: &[&[u8]],
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let mut config = self.state.pki.lock().unwrap().client_config(None).unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let socket = match from {
            std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(from, 0))?;
        let tcp = socket.connect(addr).await?;
        let name = tokio_rustls::rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
    }

    /// The installation CA certificate, written to a file for curl/openssl.
    pub fn ca_file(&self) -> PathBuf {
        let path = self.dir.path().join("ca.pem");
        let pem = self.state.pki.lock().unwrap().ca_cert_pem().to_owned();
        std::fs::write(&path, pem).unwrap();
        path
    }

    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }
}

/// A request as a client sends it: `auth`'s headers, and `body` as JSON when given.
pub fn request(
    method: Method,
    path: &str,
    auth: &Auth,
    body: Option<serde_json::Value>,
) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    match auth {
        Auth::None => {}
        Auth::Bearer(t) => b = b.header(header::AUTHORIZATION, format!("Bearer {t}")),
        Auth::Session { cookie, csrf } => {
            b = b
                .header(header::COOKIE, format!("{SESSION_COOKIE}={cookie}"))
                .header(CSRF_HEADER, csrf);
        }
        Auth::SessionNoCsrf { cookie } => {
            b = b.header(header::COOKIE, format!("{SESSION_COOKIE}={cookie}"));
        }
    }
    match body {
        Some(v) => b
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&v).unwrap()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

/// A GET as [`request`] makes it, with these headers added (`Range`, `If-Range`...).
pub fn get_with(path: &str, auth: &Auth, headers: &[(&str, &str)]) -> Request<Body> {
    let mut req = request(Method::GET, path, auth, None);
    for (k, v) in headers {
        req.headers_mut().append(
            header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            header::HeaderValue::from_str(v).unwrap(),
        );
    }
    req
}

/// `req` arriving from `ip`, as the listener attaches the connection to it.
pub fn from_peer(mut req: Request<Body>, ip: IpAddr) -> Request<Body> {
    req.extensions_mut().insert(ConnInfo {
        peer: SocketAddr::new(ip, 40_000),
        local: "127.0.0.1:8443".parse().unwrap(),
    });
    req
}

/// Runs a command-line client with stdin closed, bounded by coreutils `timeout` (it must not
/// hang a test run), off the async runtime that serves its requests.
pub async fn run(
    program: &Path,
    args: impl IntoIterator<Item = impl AsRef<std::ffi::OsStr>>,
    limit: Duration,
) -> Output {
    let timeout = vigil_testkit::require_tool("timeout");
    let mut cmd = Command::new(timeout);
    cmd.args(["--kill-after=5", &format!("{}", limit.as_secs())])
        .arg(program)
        .args(args)
        .stdin(Stdio::null());
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap()
}

/// One HTTP/1.1 answer as a raw client got it: the status, the header block and the body
/// ([`read_answer`] reads one framed by `Content-Length`, what every API answer and error
/// has).
pub struct RawAnswer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{e}: {}\n{}",
                self.head,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one answer (head and `Content-Length` body) from `stream`; an error when the
/// connection ends first.
pub async fn read_answer<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
) -> std::io::Result<RawAnswer> {
    use tokio::io::AsyncReadExt as _;
    let mut buf = Vec::new();
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed after {:?}",
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut answer = RawAnswer {
        status: head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer: {head}")),
        head,
        body: buf[end..].to_vec(),
    };
    let len: usize = answer
        .header("content-length")
        .map(|v| v.parse().unwrap())
        .unwrap_or(0);
    while answer.body.len() < len {
        let mut chunk = vec![0u8; len - answer.body.len()];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        answer.body.extend_from_slice(&chunk[..n]);
    }
    answer.body.truncate(len);
    Ok(answer)
}

/// Whether the peer closes `stream` within `limit` (a read that ends or fails), reading and
/// dropping whatever else arrives meanwhile.
pub async fn closed_within<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> bool {
    use tokio::io::AsyncReadExt as _;
    let mut sink = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// A WebSocket client over the harness's TLS connections (tokio-tungstenite), for the live
/// routes' tests.
pub mod ws {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::time::Duration;

    use futures_util::StreamExt as _;
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    use tokio_tungstenite::tungstenite::{Error as WsError, Message};

    use super::{Auth, Harness};

    type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;
    pub type Socket = WebSocketStream<Tls>;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// Opens the WebSocket at `path` (e.g. `/api/v1/events/live`) over a fresh TLS connection
    /// (HTTP/1.1), authenticated as `auth`, with `origin` as the `Origin` header.
    pub async fn open(
        h: &Harness,
        addr: SocketAddr,
        path: &str,
        auth: &Auth,
        origin: Option<&str>,
    ) -> Result<Socket, WsError> {
        let tls = h.tls_connect(addr, LOOPBACK, &[b"http/1.1"]).await.unwrap();
        let mut req = format!("wss://{addr}{path}").into_client_request().unwrap();
        let headers = req.headers_mut();
        match auth {
            Auth::None => {}
            Auth::Bearer(t) => {
                headers.insert("authorization", format!("Bearer {t}").parse().unwrap());
            }
            Auth::Session { cookie, .. } | Auth::SessionNoCsrf { cookie } => {
                let c = format!("{}={cookie}", vigil_web::auth::SESSION_COOKIE);
                headers.insert("cookie", c.parse().unwrap());
            }
        }
        if let Some(o) = origin {
            headers.insert("origin", HeaderValue::from_str(o).unwrap());
        }
        tokio_tungstenite::client_async(req, tls)
            .await
            .map(|(socket, response)| {
                assert_eq!(response.status(), 101);
                socket
            })
    }

    pub fn same_origin(addr: SocketAddr) -> String {
        format!("https://{addr}")
    }

    /// The refusal of a handshake: its status and error code.
    pub fn refusal(e: WsError) -> (u16, String) {
        match e {
            WsError::Http(resp) => {
                let code = resp
                    .body()
                    .as_ref()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
                    .and_then(|v| v["code"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                (resp.status().as_u16(), code)
            }
            other => panic!("not an HTTP refusal: {other}"),
        }
    }

    /// What arrives next, within `limit`.
    pub async fn next(ws: &mut Socket, limit: Duration) -> Message {
        tokio::time::timeout(limit, ws.next())
            .await
            .expect("nothing arrived in time")
            .expect("the socket ended")
            .expect("socket error")
    }

    pub fn json(m: &Message) -> serde_json::Value {
        match m {
            Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// Reads until the close frame (within `limit`) and returns its code and reason.
    pub async fn closed(ws: &mut Socket, limit: Duration) -> (u16, String) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, ws.next()).await {
                Err(_) => panic!("the socket was not closed within {limit:?}"),
                Ok(Some(Ok(Message::Close(Some(frame))))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Ok(Some(Ok(Message::Close(None)))) => panic!("closed without a code"),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => panic!("socket error before the close frame: {e}"),
                Ok(None) => panic!("the connection ended without a close frame"),
            }
        }
    }
}

/// Unpacks the tar archive `tar` into `dir` with GNU tar, as a recipient of an exported
/// bundle would.
pub fn untar(tar: &[u8], dir: &Path) {
    let file = dir.join("bundle.tar");
    std::fs::write(&file, tar).unwrap();
    let out = Command::new("tar")
        .arg("-xf")
        .arg(&file)
        .arg("-C")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
