//! Recording servers under a management server (docs/cluster.md, docs/design/cluster.md): the
//! use cases the CLI and the API call (enrolment tokens, the server list, removal), the
//! management server's inter-server service (enrolment, heartbeats, revocation, online and
//! offline events) and a recording server's side (its mutual-TLS API, heartbeats that carry
//! the revocation list back). The registry, protocol and listeners are vigil-cluster's; this
//! module adds the PKI, the audit log and the event bus.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use vigil_access::{Access, Actor, AuditKind, AuditRecord};
use vigil_cluster::client::{ClientError, Connection, Method};
use vigil_cluster::listener::{Handler, Listener, Reply, Request};
use vigil_cluster::member::Membership;
use vigil_cluster::protocol::{self, EnrolReply, Heartbeat, HeartbeatReply};
use vigil_cluster::registry::{Issued, Refusal};
use vigil_cluster::tls::{RevocationSet, RevokingVerifier};
use vigil_cluster::{JoinToken, Registry, ServerRow, ServerState, TokenRow};
use vigil_config::Config;
use vigil_events::{Category, EventBus, NewEvent, Severity, Source, SourceKind};
use vigil_media::store::Store;
use vigil_pki::Pki;

use crate::audit::Trail;

/// How often a recording server reports.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// A server not heard from for this long is offline (three missed heartbeats).
pub const OFFLINE_AFTER: Duration = Duration::from_secs(15);
/// How often the management server re-reads revocations (`vigil server remove` runs in
/// another process) and looks for servers gone quiet. Bounds how long a removed server's
/// connections stay open.
pub const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// Lifetime of a recording server's certificate: a year, like the generated server
/// certificate (docs/design/cluster.md, "Certificates").
pub const MEMBER_CERT_DAYS: u32 = 365;
/// Default lifetime of an enrolment token.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Cluster(#[from] vigil_cluster::Error),
    #[error(transparent)]
    Pki(#[from] vigil_pki::PkiError),
    #[error("cannot write the audit log: {0}")]
    Audit(#[from] vigil_access::AccessError),
    #[error("no server named {0:?} is joined (see vigil server list)")]
    NoSuchServer(String),
    #[error("cannot start the inter-server listener on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

fn pki_of(cfg: &Config) -> Result<Pki, ClusterError> {
    Ok(Pki::open(&cfg.data_dir.join("pki"))?)
}

/// SHA-256 of the installation CA certificate's DER.
pub fn ca_sha256(pki: &Pki) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, pki.ca_cert_der());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// A token just created: its text is shown once, never stored.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewToken {
    /// The token (`vjt1.…`): hand it to the joining server's admin as a file.
    pub token: String,
    pub id: String,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub expires: OffsetDateTime,
}

/// Creates a one-time enrolment token for a server called `name`, valid for `lifetime`;
/// audited (without the secret).
pub fn create_token(
    cfg: &Config,
    trail: &Trail<'_>,
    name: &str,
    lifetime: Duration,
) -> Result<NewToken, ClusterError> {
    let pki = pki_of(cfg)?;
    let registry = Registry::open(&cfg.data_dir)?;
    let (token, row) =
        registry.create_token(name, lifetime, ca_sha256(&pki), OffsetDateTime::now_utc())?;
    trail.record(
        AuditKind::CertificateOperation,
        serde_json::json!({
            "operation": "server_token_created",
            "server": row.name,
            "token_id": row.id,
            "expires": rfc3339(row.expires),
        }),
    )?;
    Ok(NewToken {
        token: token.expose(),
        id: row.id,
        name: row.name,
        expires: row.expires,
    })
}

/// Every token (without secrets).
pub fn tokens(cfg: &Config) -> Result<Vec<TokenRow>, ClusterError> {
    Ok(Registry::open(&cfg.data_dir)?.tokens()?)
}

/// A server as `vigil server list` and the API show it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServerView {
    pub name: String,
    /// joined (no heartbeat yet), online, offline or removed.
    pub state: String,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub last_seen: Option<OffsetDateTime>,
    pub address: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub certificate_expires: OffsetDateTime,
    /// SHA-256 of its certificate (hex).
    pub certificate_sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub joined: OffsetDateTime,
    /// The last heartbeat's report: version, cameras_recording, cameras_total,
    /// disk_free_bytes, disk_total_bytes, api_port.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub status: Option<serde_json::Value>,
    /// Cameras assigned to it (`vigil camera assign`).
    pub cameras: usize,
}

fn view(row: ServerRow, now: OffsetDateTime, cameras: usize) -> ServerView {
    // The stored state is the management server's last sweep; when it is not running, a
    // stale "online" must not be shown.
    let state = match row.state {
        ServerState::Online
            if row.last_seen.is_none_or(|t| {
                now - t > time::Duration::try_from(OFFLINE_AFTER).unwrap_or_default()
            }) =>
        {
            ServerState::Offline
        }
        s => s,
    };
    ServerView {
        name: row.name,
        state: state.as_str().to_owned(),
        last_seen: row.last_seen,
        address: row.last_address.or(Some(row.joined_from)),
        certificate_expires: row.cert_not_after,
        certificate_sha256: row.cert_sha256,
        joined: row.joined,
        status: row.status,
        cameras,
    }
}

/// Every server the management server knows, current ones first.
pub fn servers(cfg: &Config) -> Result<Vec<ServerView>, ClusterError> {
    let now = OffsetDateTime::now_utc();
    let registry = Registry::open(&cfg.data_dir)?;
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    for a in registry.assignments()? {
        *counts.entry(a.server).or_default() += 1;
    }
    Ok(registry
        .servers()?
        .into_iter()
        .map(|r| {
            let n = match r.removed {
                None => counts.get(&r.name).copied().unwrap_or(0),
                Some(_) => 0,
            };
            view(r, now, n)
        })
        .collect())
}

/// Removes a server: its certificate is revoked, a running management server refuses its
/// new connections and closes its open ones within [`SWEEP_EVERY`]; audited.
pub fn remove_server(
    cfg: &Config,
    trail: &Trail<'_>,
    name: &str,
) -> Result<ServerView, ClusterError> {
    let now = OffsetDateTime::now_utc();
    let mut registry = Registry::open(&cfg.data_dir)?;
    let unassigned = registry.assigned_to(name)?;
    let row = registry
        .remove(name, now)?
        .ok_or_else(|| ClusterError::NoSuchServer(name.to_owned()))?;
    trail.record(
        AuditKind::CertificateOperation,
        serde_json::json!({
            "operation": "server_removed",
            "server": row.name,
            "certificate_sha256": row.cert_sha256,
            "cameras_unassigned": unassigned,
        }),
    )?;
    Ok(view(row, now, 0))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The management server's inter-server service.
struct ManagementService {
    registry: Mutex<Registry>,
    pki: Mutex<Pki>,
    revoked: Arc<RevocationSet>,
    access: Option<Arc<Access>>,
    events: Option<Arc<EventBus>>,
    server_name: String,
    /// The management server's cameras: what assigned cameras are defined by.
    store: Option<Arc<Store>>,
    /// Keys the assignments revision (crate::assignments::revision).
    revision_key: [u8; 32],
}

impl ManagementService {
    fn audit(&self, peer: SocketAddr, who: &str, detail: serde_json::Value) {
        let Some(access) = &self.access else {
            return;
        };
        let record = AuditRecord::new(
            AuditKind::CertificateOperation,
            Some(who),
            Some(&peer.ip().to_string()),
        )
        .detail(detail);
        if let Err(e) = access.audit(record) {
            tracing::error!(error = %e, "cannot write the audit log");
        }
    }

    fn event(&self, server: &str, online: bool, detail: &str) {
        let Some(bus) = &self.events else {
            return;
        };
        let (kind, severity, message) = if online {
            (
                "cluster.server_online",
                Severity::Notice,
                format!("recording server {server} is online{detail}"),
            )
        } else {
            (
                "cluster.server_offline",
                Severity::Warning,
                format!(
                    "recording server {server} is offline: no heartbeat for {} s",
                    OFFLINE_AFTER.as_secs()
                ),
            )
        };
        let published = bus.publish(
            NewEvent {
                time_us: (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64,
                source: Source::new(SourceKind::Vigil, &self.server_name),
                kind: kind.into(),
                category: Category::System,
                severity,
                message,
                camera: None,
                attributes: Default::default(),
            }
            .attribute("server", server.to_owned()),
        );
        if let Err(e) = published {
            tracing::warn!(error = %e, "server state event not published");
        }
    }

    fn enrol(&self, request: &Request) -> Reply {
        let peer = request.peer.addr;
        let refuse = |status: u16, code: &str, message: String| {
            self.audit(
                peer,
                "server:unknown",
                serde_json::json!({
                    "operation": "server_join_refused",
                    "reason": message,
                }),
            );
            Reply::error(status, code, message)
        };
        let body = match protocol::parse_enrol_request(&request.body) {
            Ok(b) => b,
            Err(e) => return refuse(400, "bad_request", e.to_string()),
        };
        let token = match JoinToken::parse(&body.token) {
            Ok(t) => t,
            Err(e) => return refuse(403, "token_refused", e.to_string()),
        };
        let now = OffsetDateTime::now_utc();
        let result = {
            let pki = self.pki.lock().unwrap_or_else(|e| e.into_inner());
            let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
            registry.enrol(&token, &peer.ip().to_string(), now, |name| {
                let (pem, info) = pki
                    .sign_member_csr(&body.csr, name, MEMBER_CERT_DAYS)
                    .map_err(|e| e.to_string())?;
                Ok(Issued {
                    cert_pem: pem,
                    cert_der: info.der.to_vec(),
                    not_after: info.not_after,
                })
            })
        };
        match result {
            Ok(Ok((name, issued))) => {
                self.audit(
                    peer,
                    &format!("server:{name}"),
                    serde_json::json!({
                        "operation": "server_joined",
                        "server": name,
                        "token_id": token.id(),
                        "certificate_sha256": vigil_cluster::cert_sha256(&issued.cert_der),
                        "certificate_expires": rfc3339(issued.not_after),
                    }),
                );
                tracing::info!(server = %name, peer = %peer, "recording server joined");
                let ca = self
                    .pki
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .ca_cert_pem()
                    .to_owned();
                Reply::json(
                    200,
                    &EnrolReply {
                        name,
                        certificate: issued.cert_pem,
                        ca,
                    },
                )
            }
            Ok(Err(refusal)) => {
                let status = match refusal {
                    Refusal::BadRequest(_) => 400,
                    Refusal::NameTaken(_) => 409,
                    _ => 403,
                };
                let mut reply = refuse(status, "token_refused", refusal.to_string());
                if matches!(refusal, Refusal::BadRequest(_)) {
                    reply = Reply::error(400, "bad_request", refusal.to_string());
                }
                reply
            }
            Err(e) => {
                tracing::error!(error = %e, "enrolment failed");
                Reply::error(
                    500,
                    "internal",
                    "the registry cannot be written; see the management server's log",
                )
            }
        }
    }

    fn heartbeat(&self, request: &Request) -> Reply {
        let Some(fp) = &request.peer.cert_sha256 else {
            return Reply::error(
                401,
                "certificate_required",
                "a heartbeat needs this server's certificate: join first with vigil server join",
            );
        };
        let hb = match protocol::parse_heartbeat(&request.body) {
            Ok(h) => h,
            Err(e) => return Reply::error(400, "bad_request", e.to_string()),
        };
        let now = OffsetDateTime::now_utc();
        let status = serde_json::to_value(&hb).unwrap_or_default();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let addr = request.peer.addr.ip().to_string();
        match registry.heartbeat(fp, &addr, &status, now) {
            Ok(Some((name, before))) => {
                if before != ServerState::Online {
                    self.event(&name, true, &format!(" (version {})", hb.version));
                }
                let revoked = registry.revoked(now).unwrap_or_default();
                let assignments = self.store.as_ref().and_then(|store| {
                    match crate::assignments::definitions(store, &registry, &name) {
                        Ok(defs) => Some(crate::assignments::revision(&self.revision_key, &defs)),
                        Err(e) => {
                            tracing::error!(server = %name, error = %e, "cannot read the server's assigned cameras");
                            None
                        }
                    }
                });
                Reply::json(
                    200,
                    &HeartbeatReply {
                        name,
                        revoked,
                        assignments,
                    },
                )
            }
            Ok(None) => Reply::error(
                403,
                "not_a_member",
                "this certificate belongs to no joined server (it was removed, or never joined): join again with a new token",
            ),
            Err(e) => {
                tracing::error!(error = %e, "heartbeat not recorded");
                Reply::error(500, "internal", "the registry cannot be written")
            }
        }
    }

    /// `GET /v1/assignments`: the full definitions of the caller's cameras, credentials
    /// included; only to the server holding the certificate (never logged).
    fn assignments(&self, request: &Request) -> Reply {
        let Some(fp) = &request.peer.cert_sha256 else {
            return Reply::error(
                401,
                "certificate_required",
                "assignments need this server's certificate: join first with vigil server join",
            );
        };
        let Some(store) = &self.store else {
            return Reply::error(404, "not_found", "this server assigns no cameras");
        };
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let name = match registry.server_by_cert(fp) {
            Ok(Some(n)) => n,
            Ok(None) => {
                return Reply::error(
                    403,
                    "not_a_member",
                    "this certificate belongs to no joined server: join again with a new token",
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the registry");
                return Reply::error(500, "internal", "the registry cannot be read");
            }
        };
        match crate::assignments::definitions(store, &registry, &name) {
            Ok(cameras) => Reply::json(
                200,
                &protocol::Assignments {
                    revision: crate::assignments::revision(&self.revision_key, &cameras),
                    cameras,
                },
            ),
            Err(e) => {
                tracing::error!(server = %name, error = %e, "cannot read the server's assigned cameras");
                Reply::error(500, "internal", "the assigned cameras cannot be read")
            }
        }
    }

    /// Re-reads revocations and marks quiet servers offline.
    fn sweep(&self) {
        let now = OffsetDateTime::now_utc();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        match registry.revoked(now) {
            Ok(list) => {
                if self.revoked.replace(list) {
                    tracing::info!("revocation list changed");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read revocations"),
        }
        match registry.sweep_offline(now, OFFLINE_AFTER) {
            Ok(names) => {
                for n in names {
                    self.event(&n, false, "");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot mark servers offline"),
        }
    }
}

impl Handler for ManagementService {
    fn handle(&self, request: Request) -> Reply {
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", protocol::PATH_ENROL) => self.enrol(&request),
            ("POST", protocol::PATH_HEARTBEAT) => self.heartbeat(&request),
            ("GET", protocol::PATH_ASSIGNMENTS) => self.assignments(&request),
            _ => Reply::error(404, "not_found", "no such inter-server request"),
        }
    }

    fn refused(&self, peer: SocketAddr, reason: &str) {
        self.audit(
            peer,
            "server:unknown",
            serde_json::json!({"operation": "server_connection_refused", "reason": reason}),
        );
    }

    fn closed_revoked(&self, peer: SocketAddr, cert_sha256: &str) {
        self.audit(
            peer,
            "server:removed",
            serde_json::json!({
                "operation": "server_connection_closed",
                "reason": "certificate revoked",
                "certificate_sha256": cert_sha256,
            }),
        );
    }
}

/// The management role's inter-server listener and its sweeper.
pub struct ManagementServer {
    listener: Listener,
    sweeper: tokio::task::JoinHandle<()>,
}

impl ManagementServer {
    /// Binds `cfg.management.inter_server` (call inside a tokio runtime).
    pub async fn start(
        cfg: &Config,
        store: Option<Arc<Store>>,
        access: Option<Arc<Access>>,
        events: Option<Arc<EventBus>>,
    ) -> Result<ManagementServer, ClusterError> {
        let pki = pki_of(cfg)?;
        let registry = Registry::open(&cfg.data_dir)?;
        let revoked = RevocationSet::new(registry.revoked(OffsetDateTime::now_utc())?);
        let verifier = RevokingVerifier::new(pki.ca_cert_der(), revoked.clone(), true)?;
        let tls = vigil_cluster::tls::server_config(pki.inter_server_certified_key()?, verifier)?;
        let service = Arc::new(ManagementService {
            registry: Mutex::new(registry),
            pki: Mutex::new(pki),
            revoked: revoked.clone(),
            access,
            events,
            server_name: crate::export::server_name(&cfg.management.hostnames),
            store,
            revision_key: {
                let mut k = [0u8; 32];
                aws_lc_rs::rand::fill(&mut k)
                    .map_err(|_| ClusterError::Cluster(vigil_cluster::Error::Random))?;
                k
            },
        });
        let addr = cfg.management.inter_server.bind;
        let listener = Listener::bind(addr, tls, revoked, service.clone())
            .await
            .map_err(|source| ClusterError::Bind { addr, source })?;
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            loop {
                tick.tick().await;
                let s = service.clone();
                let _ = tokio::task::spawn_blocking(move || s.sweep()).await;
            }
        });
        Ok(ManagementServer { listener, sweeper })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    pub async fn shutdown(self) {
        self.sweeper.abort();
        self.listener.shutdown().await;
    }
}

/// What a recording server reports about itself.
fn status(store: &Store, data_dir: &Path, version: &str, api_port: Option<u16>) -> Heartbeat {
    let cameras = store.cameras().unwrap_or_default();
    let enabled: Vec<_> = cameras.iter().filter(|c| c.enabled).collect();
    let recording = enabled
        .iter()
        .filter(|c| {
            store
                .status(&c.id)
                .ok()
                .flatten()
                .is_some_and(|s| s.state == "recording")
        })
        .count();
    let total = vigil_media::retention::volume_bytes(data_dir).unwrap_or(0);
    Heartbeat {
        version: version.chars().take(64).collect(),
        cameras_recording: u32::try_from(recording).unwrap_or(u32::MAX),
        cameras_total: u32::try_from(enabled.len()).unwrap_or(u32::MAX),
        disk_free_bytes: vigil_media::retention::free_bytes(data_dir)
            .unwrap_or(0)
            .min(total),
        disk_total_bytes: total,
        api_port,
    }
}

/// A recording server's API on 9443: its status, to installation certificates only; recorded
/// video of its cameras, to the management server's certificate only.
struct RecordingApi {
    store: Arc<Store>,
    data_dir: std::path::PathBuf,
    version: String,
    archive: vigil_config::ArchiveConfig,
    /// SHA-256 of the certificate the management server presented on the last heartbeat
    /// connection; `None` before the first one.
    management_cert: Arc<Mutex<Option<String>>>,
}

impl Handler for RecordingApi {
    fn handle(&self, request: Request) -> Reply {
        if request.peer.cert_sha256.is_none() {
            return Reply::error(
                401,
                "certificate_required",
                "a client certificate is required",
            );
        }
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", protocol::PATH_STATUS) => Reply::json(
                200,
                &status(&self.store, &self.data_dir, &self.version, None),
            ),
            ("GET", path) if path.starts_with(protocol::PATH_CAMERAS) => {
                let management = self
                    .management_cert
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                // Other recording servers hold certificates of the installation too; video
                // goes only to the server this one reports to.
                match management {
                    Some(m) if request.peer.cert_sha256.as_deref() == Some(m.as_str()) => {
                        crate::remote_video::serve(
                            &self.store,
                            &self.archive,
                            path,
                            request.query.as_deref(),
                        )
                    }
                    Some(_) => Reply::error(
                        403,
                        "not_management",
                        "recorded video is served to the management server only",
                    ),
                    None => Reply::error(
                        503,
                        "not_connected",
                        "this recording server has not reached its management server yet",
                    ),
                }
            }
            _ => Reply::error(404, "not_found", "no such inter-server request"),
        }
    }
}

/// The recording role's inter-server side: its API on `recording.api` and its heartbeats.
pub struct RecordingMember {
    listener: Listener,
    reporter: tokio::task::JoinHandle<()>,
    pub name: String,
}

impl RecordingMember {
    /// Loads the membership `vigil server join` stored and starts the API and heartbeats
    /// (call inside a tokio runtime).
    pub async fn start(
        cfg: &Config,
        store: Arc<Store>,
        version: &str,
    ) -> Result<RecordingMember, ClusterError> {
        let data_dir = cfg.data_dir.clone();
        let member = Membership::load(&data_dir)?;
        let identity = member.certified_key()?;
        let revoked = RevocationSet::new(Membership::revoked(&data_dir));
        // Only client certificates: no enrolment happens here.
        let verifier = RevokingVerifier::new(&member.ca, revoked.clone(), false)?;
        let tls = vigil_cluster::tls::server_config(identity.clone(), verifier)?;
        let api = Arc::new(RecordingApi {
            store,
            data_dir,
            version: version.to_owned(),
            archive: cfg.archive.clone(),
            management_cert: Arc::new(Mutex::new(None)),
        });
        let addr = cfg.recording.api.bind;
        let listener = Listener::bind(addr, tls, revoked.clone(), api.clone())
            .await
            .map_err(|source| ClusterError::Bind { addr, source })?;
        let client = Arc::new(vigil_cluster::tls::member_client_config(
            &member.ca, identity,
        )?);
        let name = member.name.clone();
        let api_port = listener.local_addr().port();
        let reporter = tokio::spawn(report(member, client, api, revoked, api_port));
        Ok(RecordingMember {
            listener,
            reporter,
            name,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    pub async fn shutdown(self) {
        self.reporter.abort();
        self.listener.shutdown().await;
    }
}

/// Heartbeats every [`HEARTBEAT_EVERY`] over one kept-open connection; each answer's
/// revocation list is applied to this server's API and kept on disk.
async fn report(
    member: Membership,
    client: Arc<rustls::ClientConfig>,
    api: Arc<RecordingApi>,
    revoked: Arc<RevocationSet>,
    api_port: u16,
) {
    let (store, data_dir, version) = (api.store.clone(), api.data_dir.clone(), api.version.clone());
    let management_cert = api.management_cert.clone();
    let mut conn: Option<Connection> = None;
    // The assignments revision applied last; none at start, so the first heartbeat fetches.
    let mut applied: Option<String> = None;
    let mut last_error: Option<String> = None;
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let hb = {
            let (store, data_dir, version) = (store.clone(), data_dir.clone(), version.clone());
            match tokio::task::spawn_blocking(move || {
                status(&store, &data_dir, &version, Some(api_port))
            })
            .await
            {
                Ok(h) => h,
                Err(_) => continue,
            }
        };
        let body = serde_json::to_vec(&hb).unwrap_or_default();
        let result: Result<HeartbeatReply, String> = async {
            if conn.as_ref().is_none_or(|c| c.is_closed()) {
                conn = Some(
                    Connection::open(&member.management, client.clone())
                        .await
                        .map_err(|e| e.to_string())?,
                );
            }
            let c = conn.as_mut().expect("opened above");
            let answer = c
                .call(Method::POST, protocol::PATH_HEARTBEAT, Some(body))
                .await
                .map_err(|e: ClientError| e.to_string())?;
            // The certificate that answered a heartbeat (verified against the installation
            // CA for the management server's name) is the one video is served to.
            if let Some(fp) = c.peer_cert_sha256() {
                *management_cert.lock().unwrap_or_else(|e| e.into_inner()) = Some(fp.to_owned());
            }
            let reply = protocol::parse_heartbeat_reply(&answer).map_err(|e| e.to_string())?;
            if let Some(rev) = reply
                .assignments
                .as_ref()
                .filter(|r| applied.as_ref() != Some(*r))
            {
                let answer = c
                    .call_limited(
                        Method::GET,
                        protocol::PATH_ASSIGNMENTS,
                        None,
                        protocol::MAX_ASSIGNMENTS_BODY,
                    )
                    .await
                    .map_err(|e: ClientError| format!("fetching the camera assignments: {e}"))?;
                let assignments = protocol::parse_assignments(&answer)
                    .map_err(|e| format!("the camera assignments are refused: {e}"))?;
                let (store, dir) = (store.clone(), data_dir.clone());
                let count = assignments.cameras.len();
                let done = tokio::task::spawn_blocking(move || {
                    crate::assignments::apply(&store, &dir, &assignments)
                })
                .await
                .map_err(|_| "applying the camera assignments failed".to_string())?;
                report_applied(count, &done);
                // Refused cameras are tried again with the next revision, not every 5 s.
                applied = Some(rev.clone());
            }
            Ok(reply)
        }
        .await;
        match result {
            Ok(reply) => {
                if last_error.take().is_some() {
                    tracing::info!(management = %member.management, "heartbeats reach the management server again");
                }
                if revoked.replace(reply.revoked.clone()) {
                    tracing::info!(entries = reply.revoked.len(), "revocation list updated");
                    if let Err(e) = Membership::save_revoked(&data_dir, &reply.revoked) {
                        tracing::warn!(error = %e, "cannot keep the revocation list");
                    }
                }
            }
            Err(e) => {
                conn = None;
                if last_error.as_deref() != Some(e.as_str()) {
                    tracing::warn!(management = %member.management, error = %e, "heartbeat failed");
                    eprintln!("warning: heartbeat to {} failed: {e}", member.management);
                }
                last_error = Some(e);
            }
        }
    }
}

/// Says what applying assignments did (names only: definitions hold credentials).
fn report_applied(count: usize, done: &crate::assignments::Applied) {
    if done.is_empty() {
        return;
    }
    let names = |v: &[String]| v.join(", ");
    tracing::info!(
        assigned = count,
        added = %names(&done.added),
        changed = %names(&done.changed),
        stopped = %names(&done.stopped),
        "camera assignments applied"
    );
    println!(
        "Camera assignments applied: {count} assigned; added [{}], changed [{}], stopped [{}]",
        names(&done.added),
        names(&done.changed),
        names(&done.stopped)
    );
    for (name, why) in &done.refused {
        tracing::error!(camera = %name, reason = %why, "assigned camera not applied");
        eprintln!("error: assigned camera {name} not applied: {why}");
    }
}

/// Joins the management server at `url` with the token in `token_text` (the file's content),
/// naming this server by `sans` in its certificate.
pub async fn join(
    cfg: &Config,
    url: &str,
    token_text: &str,
    sans: &[String],
) -> Result<Membership, JoinFailure> {
    let target = vigil_cluster::client::Target::parse(url, cfg.management.inter_server.bind.port())
        .map_err(|e| JoinFailure(e.to_string()))?;
    let token = JoinToken::parse(token_text).map_err(|e| JoinFailure(e.to_string()))?;
    vigil_cluster::member::join(&cfg.data_dir, &target, &token, sans)
        .await
        .map_err(|e| JoinFailure(e.to_string()))
}

/// Why `vigil server join` failed, in one sentence for the admin.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JoinFailure(String);

/// The actor of a recording server in the audit log.
pub fn server_actor(name: &str, peer: SocketAddr) -> Actor {
    Actor {
        name: format!("server:{name}"),
        source: peer.ip().to_string(),
    }
}
