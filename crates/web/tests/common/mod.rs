//! Test harness for the API: a fresh data directory with a real access database, recording
//! index and PKI; requests go through the real router in-process (`call`) or over real TLS
//! sockets (`serve`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
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
            .create_first_admin(ADMIN, Some(ADMIN_PASSWORD))
            .unwrap();
        let pki = Pki::init(&data.join("pki"), &InitOptions::default()).unwrap();
        let state = AppState::new(config_path.clone(), config, access, store, pki).unwrap();
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
        let mut b = Request::builder().method(method).uri(path);
        match auth {
            Auth::None => {}
            Auth::Bearer(t) => b = b.header(header::AUTHORIZATION, format!("Bearer {t}")),
            Auth::Session { cookie, csrf } => {
                b = b
                    .header(
                        header::COOKIE,
                        format!("{}={cookie}", vigil_web::auth::SESSION_COOKIE),
                    )
                    .header(vigil_web::auth::CSRF_HEADER, csrf);
            }
            Auth::SessionNoCsrf { cookie } => {
                b = b.header(
                    header::COOKIE,
                    format!("{}={cookie}", vigil_web::auth::SESSION_COOKIE),
                );
            }
        }
        let req = match body {
            Some(v) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(&v).unwrap()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        self.send(req).await
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
