//! Fuzzes the HTTPS API's request handling end to end (router, extractors, auth, every
//! handler's input parsing): arbitrary method, path, headers and body, without credentials or
//! with an admin token. Any request must get an answer, never a panic, and every error answer
//! must be the JSON error format.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt as _;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;
use vigil_access::{Access, AccessConfig, Actor, CameraScope, NewToken, Role};

struct Fixture {
    _dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    token: String,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let config = vigil_config::Config::with_data_dir(&data);
        let store = Arc::new(vigil_media::store::Store::init(&data).unwrap());
        let access = Arc::new(Access::open(&data.join("access.db"), AccessConfig::default()).unwrap());
        let token = access
            .create_token(
                &NewToken {
                    name: "fuzz".into(),
                    role: Role::Admin,
                    cameras: CameraScope::All,
                    expires_in: None,
                },
                &Actor::cli(),
            )
            .unwrap()
            .token;
        let pki = vigil_pki::Pki::init(&data.join("pki"), &Default::default()).unwrap();
        let events = vigil_events::EventBus::start(
            std::sync::Arc::new(vigil_events::EventStore::open(&data).unwrap()),
            "fuzz",
        )
        .unwrap();
        let state = vigil_web::AppState::new(
            dir.path().join("vigil.toml"),
            config,
            access,
            store,
            pki,
            events,
        )
        .unwrap();
        let (router, _) = vigil_web::app(state);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Fixture {
            _dir: dir,
            runtime,
            router,
            token,
        }
    })
}

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    // Layout: flags, then "path\nheader: value\n...\n\nbody".
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let path = lines.next().unwrap_or("/");
    let method = METHODS[usize::from(flags & 7) % METHODS.len()];
    let mut b = Request::builder()
        .method(method)
        .uri(format!("/api/v1/{}", path.trim_start_matches('/')));
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            b = b.header(k.trim(), v.trim());
        }
    }
    if flags & 8 != 0 {
        b = b.header("authorization", format!("Bearer {}", f.token));
    }
    let Ok(req) = b.body(Body::from(body.to_owned())) else {
        return; // not a valid HTTP request at all: hyper would refuse it before us
    };
    let resp = f.runtime.block_on(f.router.clone().oneshot(req)).unwrap();
    let status = resp.status();
    let bytes = f
        .runtime
        .block_on(resp.into_body().collect())
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    // A HEAD answer carries the status and headers of the GET answer but never a body.
    if method != "HEAD" && (status.is_client_error() || status.is_server_error()) {
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{status} answer is not JSON ({e})"));
        assert!(v["code"].is_string() && v["message"].is_string(), "{v}");
    }
});
