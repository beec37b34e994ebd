//! Camera password rotation for every front end and for `vigil serve`: a fresh random
//! password per camera (within the camera's constraints), set over the camera's verified
//! HTTPS ONVIF link, proven (an authenticated ONVIF call and an RTSP DESCRIBE) and only then
//! kept; the resolution of rotations a crash interrupted; which cameras the schedule makes
//! due; and the per-camera report, audited and published as events. The state machine and
//! its crash cases: docs/design/password-rotation.md; the user guide: docs/cameras-onvif.md.

use std::sync::Arc;
use std::time::Duration;

use vigil_access::{AccessError, AuditKind};
use vigil_events::{Category, EventBus, NewEvent, Severity};
use vigil_media::ingest::{Opener, Source};
use vigil_media::ingest_tls::TrustStore;
use vigil_media::store::{Camera, DeviceIdentity, RotationState, Store, StoreError, now_us};
use vigil_onvif::{Client, Credentials, OnvifError, Options, Target};
use zeroize::Zeroizing;

use crate::ErrorKind;
use crate::audit::Trail;

/// A camera password's length when the camera sets no rule of its own.
pub const DEFAULT_LENGTH: usize = 16;
/// The shortest and longest password a rule may ask for.
pub const MIN_LENGTH: usize = 8;
pub const MAX_LENGTH: usize = 64;
/// The symbols a rule may allow besides letters and digits. Quotes, `&`, `<`, `>`, `\`,
/// backticks and spaces are left out: cameras' web pages and RTSP stacks are known to
/// mishandle them.
pub const SYMBOLS: &str = "!#$%()*+,-./:;=?@[]^_{}~";
/// A pending password younger than this may belong to a rotation still running (in this
/// process or another); older, it was interrupted and is resolved before a new rotation.
pub(crate) const PENDING_IN_FLIGHT_US: i64 = 5 * 60 * 1_000_000;
/// Each ONVIF request to a camera as a whole.
const ONVIF_TIMEOUT: Duration = Duration::from_secs(10);
/// Cameras may take a moment to apply a new password to every service: the new one is
/// tried this many times, this far apart, before it counts as not working.
const PROOF_ATTEMPTS: u32 = 3;
const PROOF_PAUSE: Duration = Duration::from_secs(2);
/// The reason given for a camera added by RTSP URL.
pub const NOT_ROTATABLE_RTSP: &str = "not rotatable: added by RTSP URL; add it by ONVIF";

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error(
        "'{asked}' is not this recording server (this one is '{this}'); rotating the cameras of another server is done on that server (several servers under one management: issue 15)"
    )]
    OtherServer { asked: String, this: String },
    #[error("{0}")]
    BadRule(String),
    #[error("say which cameras: --all, --server NAME or camera names")]
    NothingSelected,
    #[error("the rotation report could not be recorded in the audit log: {0}")]
    Audit(AccessError),
}

impl RotationError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            RotationError::Store(StoreError::NoSuchCamera(_)) => ErrorKind::NotFound,
            RotationError::Store(StoreError::InvalidCamera(_))
            | RotationError::OtherServer { .. }
            | RotationError::BadRule(_)
            | RotationError::NothingSelected => ErrorKind::InvalidInput,
            RotationError::Store(_) | RotationError::Audit(_) => ErrorKind::Internal,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            RotationError::Store(StoreError::NoSuchCamera(_)) => "camera_not_found",
            RotationError::OtherServer { .. } => "other_server",
            RotationError::BadRule(_) => "invalid_password_rule",
            RotationError::NothingSelected | RotationError::Store(StoreError::InvalidCamera(_)) => {
                "invalid_field"
            }
            _ => "internal",
        }
    }
}

impl crate::error::Classified for RotationError {
    fn kind(&self) -> ErrorKind {
        RotationError::kind(self)
    }
    fn code(&self) -> &'static str {
        RotationError::code(self)
    }

    fn database_error(&self) -> Option<&vigil_access::AccessError> {
        match self {
            RotationError::Audit(e) => Some(e),
            _ => None,
        }
    }
}

/// What a camera accepts as a password: its length and which symbols it takes besides
/// letters and digits (none by default: many cameras refuse symbols).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordRule {
    pub length: usize,
    pub symbols: String,
}

impl Default for PasswordRule {
    fn default() -> Self {
        PasswordRule {
            length: DEFAULT_LENGTH,
            symbols: String::new(),
        }
    }
}

impl PasswordRule {
    /// A rule from its length and allowed symbols, checked.
    pub fn new(length: usize, symbols: &str) -> Result<PasswordRule, RotationError> {
        if !(MIN_LENGTH..=MAX_LENGTH).contains(&length) {
            return Err(RotationError::BadRule(format!(
                "a camera password of {length} characters: give {MIN_LENGTH} to {MAX_LENGTH} (default {DEFAULT_LENGTH})"
            )));
        }
        let mut chosen: Vec<char> = Vec::new();
        for c in symbols.chars() {
            if !SYMBOLS.contains(c) {
                return Err(RotationError::BadRule(format!(
                    "'{}' cannot be a password symbol: choose among {SYMBOLS} (letters and digits are always used)",
                    c.escape_default()
                )));
            }
            if !chosen.contains(&c) {
                chosen.push(c);
            }
        }
        Ok(PasswordRule {
            length,
            symbols: chosen.into_iter().collect(),
        })
    }

    /// Reads the stored form `LENGTH` or `LENGTH:SYMBOLS`.
    pub fn parse(text: &str) -> Result<PasswordRule, RotationError> {
        let (len, symbols) = text.split_once(':').unwrap_or((text, ""));
        let length = len.trim().parse::<usize>().map_err(|_| {
            RotationError::BadRule(format!(
                "password rule '{}' does not start with a length (LENGTH or LENGTH:SYMBOLS, e.g. 16 or 20:-_.)",
                text.chars().take(80).collect::<String>().escape_default()
            ))
        })?;
        PasswordRule::new(length, symbols)
    }

    /// The stored form.
    pub fn to_text(&self) -> String {
        if self.symbols.is_empty() {
            self.length.to_string()
        } else {
            format!("{}:{}", self.length, self.symbols)
        }
    }

    /// A fresh random password: uniformly drawn characters (letters, digits, the allowed
    /// symbols), with at least one lower-case letter, one upper-case letter, one digit and,
    /// when symbols are allowed, one symbol, since cameras with complexity rules refuse
    /// passwords without them.
    pub fn generate(&self) -> Zeroizing<String> {
        let mut alphabet: Vec<u8> = (b'a'..=b'z')
            .chain(b'A'..=b'Z')
            .chain(b'0'..=b'9')
            .collect();
        alphabet.extend(self.symbols.bytes());
        let rng = aws_lc_rs::rand::SystemRandom::new();
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - 256 % alphabet.len();
        loop {
            let mut out = Zeroizing::new(String::with_capacity(self.length));
            while out.len() < self.length {
                let mut bytes = Zeroizing::new([0u8; 64]);
                aws_lc_rs::rand::SecureRandom::fill(&rng, &mut bytes[..])
                    .expect("the system random generator works");
                for &b in bytes.iter() {
                    if (b as usize) < limit && out.len() < self.length {
                        out.push(alphabet[b as usize % alphabet.len()] as char);
                    }
                }
            }
            if self.complete(&out) {
                return out;
            }
        }
    }

    /// Whether `password` keeps the rule: its length, its characters and one of each class.
    pub fn complete(&self, password: &str) -> bool {
        let b = password.as_bytes();
        password.chars().count() == self.length
            && password
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || self.symbols.contains(c))
            && b.iter().any(u8::is_ascii_lowercase)
            && b.iter().any(u8::is_ascii_uppercase)
            && b.iter().any(u8::is_ascii_digit)
            && (self.symbols.is_empty() || password.chars().any(|c| self.symbols.contains(c)))
    }
}

/// Which cameras a run rotates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every camera of this server.
    All,
    /// Every camera of the recording server with this name (only this server's own name is
    /// accepted: several servers under one management are issue 15).
    Server(String),
    /// These cameras, by name.
    Cameras(Vec<String>),
}

/// How one camera's rotation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Outcome {
    /// The camera has a new password, proven and stored.
    Rotated,
    /// The camera keeps its old password (stored as before); `reason` says why.
    KeptOld,
    /// The camera cannot be rotated (added by RTSP URL, no credentials, plain HTTP).
    NotRotatable,
    /// Neither password could be proven: both are kept, and tried again at the next start of
    /// `vigil serve`; or the store failed.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Rotated => "rotated",
            Outcome::KeptOld => "kept_old",
            Outcome::NotRotatable => "not_rotatable",
            Outcome::Failed => "failed",
        }
    }

    /// A rotation that was wanted and did not happen.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::KeptOld | Outcome::Failed)
    }
}

/// One camera's line of a run's report. Never holds a password.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CameraRotation {
    pub camera: String,
    pub result: Outcome,
    /// Why, for every result but `rotated` (and what was done about it).
    pub reason: Option<String>,
    /// When this camera's rotation began: it got one of the `concurrency` turns (µs since
    /// the Unix epoch). With `time_us`, how long a camera took and how many ran at once.
    pub started_us: i64,
    /// When this camera's rotation ended (µs since the Unix epoch).
    pub time_us: i64,
}

/// A run: each camera's result, in the order they finished.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RotationReport {
    pub started_us: i64,
    pub finished_us: i64,
    pub cameras: Vec<CameraRotation>,
}

impl RotationReport {
    /// How many cameras ended with `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.cameras.iter().filter(|c| c.result == outcome).count()
    }

    pub fn any_failed(&self) -> bool {
        self.cameras.iter().any(|c| c.result.is_failure())
    }
}

/// What a rotation talks to: the store (the vault), the cameras (ONVIF with the
/// installation's trust store, RTSP through the recorders' opener) and where events go.
#[derive(Clone)]
pub struct Rotator {
    pub store: Arc<Store>,
    pub trust: TrustStore,
    /// The recorders' opener (RTSPS through the verified tunnel).
    pub opener: Arc<dyn Opener>,
    /// This recording server's name (events, `--server`).
    pub server: String,
    pub events: Option<Arc<EventBus>>,
    /// Cameras rotated at once.
    pub concurrency: usize,
    /// Each ONVIF request as a whole.
    pub timeout: Duration,
}

impl Rotator {
    pub fn new(
        store: Arc<Store>,
        trust: TrustStore,
        opener: Arc<dyn Opener>,
        server: &str,
    ) -> Self {
        Rotator {
            store,
            trust,
            opener,
            server: server.to_owned(),
            events: None,
            concurrency: 4,
            timeout: ONVIF_TIMEOUT,
        }
    }

    /// A rotator for a front end (the CLI, the API) of the installation `cfg` describes: its
    /// camera trust store, the camera links without the device check
    /// ([`crate::runtime::rotation_opener`]), its server name and concurrency, events to `events`.
    pub fn for_installation(
        cfg: &vigil_config::Config,
        store: Arc<Store>,
        events: Arc<EventBus>,
    ) -> Self {
        let opener = crate::runtime::rotation_opener(cfg, &store, Some(events.clone()));
        let mut r = Rotator::new(
            store,
            crate::onvif::camera_trust(&cfg.data_dir),
            opener,
            &crate::export::server_name(&cfg.management.hostnames),
        );
        r.events = Some(events);
        r.concurrency = cfg.cameras.rotation_concurrency;
        r
    }

    /// The cameras a selection names, checked before anything is sent.
    pub fn select(&self, selection: &Selection) -> Result<Vec<Camera>, RotationError> {
        match selection {
            Selection::All => Ok(self.store.cameras()?),
            Selection::Server(name) => {
                if !name.eq_ignore_ascii_case(&self.server) {
                    return Err(RotationError::OtherServer {
                        asked: name.clone(),
                        this: self.server.clone(),
                    });
                }
                Ok(self.store.cameras()?)
            }
            Selection::Cameras(names) if names.is_empty() => Err(RotationError::NothingSelected),
            Selection::Cameras(names) => {
                let mut out: Vec<Camera> = Vec::new();
                for n in names {
                    let cam = self.store.camera(n)?;
                    if !out.iter().any(|c| c.id == cam.id) {
                        out.push(cam);
                    }
                }
                Ok(out)
            }
        }
    }

    /// Rotates the selected cameras, at most `concurrency` at once; `progress` hears of each
    /// camera as it finishes. Each camera's result is audited (`camera_password_rotation`)
    /// and published (`camera.password_rotated`, `camera.password_rotation_failed`).
    pub async fn rotate(
        &self,
        selection: &Selection,
        trail: Option<&Trail<'_>>,
        mut progress: impl FnMut(&CameraRotation),
    ) -> Result<RotationReport, RotationError> {
        let cameras = self.select(selection)?;
        let started_us = now_us();
        let semaphore = Arc::new(tokio::sync::Semaphore::new(self.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for cam in cameras {
            let (me, semaphore) = (self.clone(), semaphore.clone());
            tasks.spawn(async move {
                let _permit = semaphore.acquire_owned().await;
                let started_us = now_us();
                let line = me.rotate_one(&cam).await;
                CameraRotation { started_us, ..line }
            });
        }
        let mut report = RotationReport {
            started_us,
            finished_us: started_us,
            cameras: Vec::new(),
        };
        let mut audit_error = None;
        while let Some(done) = tasks.join_next().await {
            let line = match done {
                Ok(line) => line,
                Err(e) => {
                    tracing::error!(error = %e, "a camera's rotation task ended abnormally");
                    continue;
                }
            };
            if let Err(e) = self.tell(&line, trail) {
                audit_error.get_or_insert(e);
            }
            progress(&line);
            report.cameras.push(line);
        }
        report.finished_us = now_us();
        match audit_error {
            Some(e) => Err(RotationError::Audit(e)),
            None => Ok(report),
        }
    }

    /// Resolves every rotation a crash or `kill -9` left pending: the pending password is
    /// tried first (committed if the camera takes it), then the old one (the pending one is
    /// abandoned); when neither is proven both are kept for the next start, and an event is
    /// raised. `vigil serve` runs this before its recorders start, at most `concurrency`
    /// cameras at once (an unreachable camera costs its time-outs, not everyone's).
    pub async fn resolve_interrupted(
        &self,
        trail: Option<&Trail<'_>>,
    ) -> Result<Vec<CameraRotation>, RotationError> {
        let pending: Vec<String> = self
            .store
            .rotation_states()?
            .into_iter()
            .filter(|(_, s)| s.pending_since_us.is_some())
            .map(|(id, _)| id)
            .collect();
        let semaphore = Arc::new(tokio::sync::Semaphore::new(self.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for id in pending {
            let cam = match self.store.camera(&id) {
                Ok(c) => c,
                Err(StoreError::NoSuchCamera(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let (me, semaphore) = (self.clone(), semaphore.clone());
            tasks.spawn(async move {
                let _permit = semaphore.acquire_owned().await;
                let started_us = now_us();
                let line = match me.link(&cam) {
                    Ok(link) => {
                        let (outcome, reason) = me.resolve(&cam, &link).await;
                        line(
                            &cam,
                            outcome,
                            Some(format!("interrupted rotation: {reason}")),
                        )
                    }
                    // No way to ask the camera (its device record is gone): the password it
                    // was added with stays, and the pending one is kept for an admin.
                    Err(line) => line,
                };
                CameraRotation { started_us, ..line }
            });
        }
        let mut out = Vec::new();
        while let Some(done) = tasks.join_next().await {
            let line = match done {
                Ok(line) => line,
                Err(e) => {
                    tracing::error!(error = %e, "the resolution of an interrupted rotation ended abnormally");
                    continue;
                }
            };
            if let Err(e) = self.tell(&line, trail) {
                tracing::error!(error = %e, "cannot audit the resolution of an interrupted rotation");
            }
            out.push(line);
        }
        Ok(out)
    }

    /// The cameras whose password is older than `period` (or, never rotated, that were
    /// added by ONVIF longer ago than that) and have no rotation pending.
    pub fn due(&self, period: Duration, now_us: i64) -> Result<Vec<Camera>, RotationError> {
        let devices: Vec<String> = self
            .store
            .device_identities()?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let states = self.store.rotation_states()?;
        let period_us = i64::try_from(period.as_micros()).unwrap_or(i64::MAX);
        let mut out = Vec::new();
        for cam in self.store.cameras()? {
            if !cam.enabled || !devices.contains(&cam.id) || !cam.has_password {
                continue;
            }
            let state = states
                .iter()
                .find(|(id, _)| *id == cam.id)
                .map(|(_, s)| s.clone())
                .unwrap_or_default();
            if state.pending_since_us.is_some() {
                continue;
            }
            let since = state.rotated_us.or(state.added_us).unwrap_or(now_us);
            if now_us.saturating_sub(since) >= period_us {
                out.push(cam);
            }
        }
        Ok(out)
    }

    /// One camera, start to end; never fails, every ending is a line of the report.
    async fn rotate_one(&self, cam: &Camera) -> CameraRotation {
        let link = match self.link(cam) {
            Ok(l) => l,
            Err(line) => return line,
        };
        let state = match self.store.rotation_state(&cam.id) {
            Ok(s) => s,
            Err(e) => return line(cam, Outcome::Failed, Some(e.to_string())),
        };
        if let Some(since) = state.pending_since_us {
            if now_us() - since < PENDING_IN_FLIGHT_US {
                return line(
                    cam,
                    Outcome::Failed,
                    Some(
                        "another rotation of this camera is in progress; nothing was changed"
                            .into(),
                    ),
                );
            }
            let (outcome, reason) = self.resolve(cam, &link).await;
            if outcome == Outcome::Failed {
                return line(
                    cam,
                    outcome,
                    Some(format!("an interrupted rotation is not resolved: {reason}")),
                );
            }
        }
        let rule = match state.rule.as_deref().map(PasswordRule::parse).transpose() {
            Ok(r) => r.unwrap_or_default(),
            Err(e) => {
                return line(
                    cam,
                    Outcome::Failed,
                    Some(format!("its password rule: {e}")),
                );
            }
        };
        // The committed password now: an interrupted rotation resolved above may have
        // changed it.
        let old = match self.store.camera_password(&cam.id) {
            Ok(Some(p)) => Zeroizing::new(p),
            Ok(None) => {
                return line(
                    cam,
                    Outcome::NotRotatable,
                    Some("not rotatable: no password is stored for it".into()),
                );
            }
            Err(e) => return line(cam, Outcome::Failed, Some(e.to_string())),
        };
        let new = rule.generate();
        let (outcome, reason) = self.change(cam, &link, &old, &new).await;
        line(cam, outcome, reason)
    }

    /// The steps that change a camera's password; `old` is the committed one.
    async fn change(
        &self,
        cam: &Camera,
        link: &Link,
        old: &str,
        new: &str,
    ) -> (Outcome, Option<String>) {
        // Durable before the camera hears of it: whatever happens next, the password the
        // camera may end up with is in the vault.
        if let Err(e) = self.store.begin_rotation(&cam.id, new) {
            return (Outcome::Failed, Some(format!("nothing was changed: {e}")));
        }
        let with_old = self.client(link, old);
        if let Err(e) = with_old.users().await {
            self.abandon(cam);
            return match e {
                OnvifError::Unauthorized => (
                    Outcome::Failed,
                    Some(format!(
                        "the camera refuses the stored password over ONVIF ({e}); nothing was changed, check the camera's credentials"
                    )),
                ),
                e => (
                    Outcome::KeptOld,
                    Some(format!(
                        "before anything was changed: {e}; the new password was never sent and the camera keeps its password"
                    )),
                ),
            };
        }
        let sent = with_old.set_password(&link.username, new).await;
        let refused = match &sent {
            Ok(()) => None,
            // The camera answered and said no: it did not change.
            Err(
                e @ (OnvifError::Fault { .. }
                | OnvifError::Unauthorized
                | OnvifError::NoSuchUser(_)
                | OnvifError::PlaintextSecret { .. }
                | OnvifError::HttpAuthRequired { .. }),
            ) => Some(e.to_string()),
            // No answer, or one that cannot be read: it may have changed.
            Err(_) => None,
        };
        if let Some(why) = refused {
            let old_works = self.prove(cam, link, old).await;
            self.abandon(cam);
            let proof = match old_works {
                Ok(()) => "the old password is proven to work still".to_owned(),
                Err(e) => format!("the old password could not be proven now either ({e})"),
            };
            return (
                Outcome::KeptOld,
                Some(format!(
                    "the camera refused the new password: {why}; {proof}"
                )),
            );
        }
        let sent_note = match &sent {
            Ok(()) => String::new(),
            Err(e) => format!("SetUser got no clear answer ({e}); "),
        };
        let mut last = None;
        for attempt in 0..PROOF_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(PROOF_PAUSE).await;
            }
            match self.prove(cam, link, new).await {
                Ok(()) => {
                    return match self.store.commit_rotation(&cam.id) {
                        Ok(()) => (Outcome::Rotated, None),
                        Err(e) => (
                            Outcome::Failed,
                            Some(format!(
                                "the camera took the new password but it could not be stored as the camera's ({e}); both passwords are kept and resolved at the next start of vigil serve"
                            )),
                        ),
                    };
                }
                Err(e) => last = Some(e),
            }
        }
        let failed = last.unwrap_or_default();
        // The new password does not work everywhere: back to the old one.
        let with_new = self.client(link, new);
        let mut set_back = String::new();
        if with_new.device_information().await.is_ok() {
            set_back = match with_new.set_password(&link.username, old).await {
                Ok(()) => "the old password was set back; ".into(),
                Err(e) => format!("setting the old password back failed ({e}); "),
            };
        }
        match self.prove(cam, link, old).await {
            Ok(()) => {
                self.abandon(cam);
                (
                    Outcome::KeptOld,
                    Some(format!(
                        "{sent_note}the new password did not work ({failed}); {set_back}the old password is proven to work and kept"
                    )),
                )
            }
            Err(e) => (
                Outcome::Failed,
                Some(format!(
                    "{sent_note}the new password did not work ({failed}); {set_back}the old one could not be proven either ({e}); both are kept and tried again at the next start of vigil serve"
                )),
            ),
        }
    }

    /// Settles a pending rotation: pending proven → committed; old proven → abandoned; else
    /// both kept.
    async fn resolve(&self, cam: &Camera, link: &Link) -> (Outcome, String) {
        let pending = match self.store.pending_password(&cam.id) {
            Ok(Some(p)) => Zeroizing::new(p),
            Ok(None) => return (Outcome::KeptOld, "nothing was pending any more".into()),
            Err(e) => return (Outcome::Failed, e.to_string()),
        };
        let new_err = match self.prove(cam, link, &pending).await {
            Ok(()) => {
                return match self.store.commit_rotation(&cam.id) {
                    Ok(()) => (
                        Outcome::Rotated,
                        "the camera had taken the new password; it is now kept".into(),
                    ),
                    Err(e) => (
                        Outcome::Failed,
                        format!("cannot store the new password: {e}"),
                    ),
                };
            }
            Err(e) => e,
        };
        let old = match self.store.camera_password(&cam.id) {
            Ok(p) => Zeroizing::new(p.unwrap_or_default()),
            Err(e) => return (Outcome::Failed, e.to_string()),
        };
        match self.prove(cam, link, &old).await {
            Ok(()) => {
                self.abandon(cam);
                (
                    Outcome::KeptOld,
                    format!(
                        "the camera still has its old password (the new one: {new_err}); the new one is dropped"
                    ),
                )
            }
            Err(old_err) => (
                Outcome::Failed,
                format!(
                    "neither password is proven now (new: {new_err}; old: {old_err}); both are kept and tried again at the next start"
                ),
            ),
        }
    }

    /// Proves a password: an authenticated ONVIF call, then an RTSP DESCRIBE of the
    /// camera's main stream.
    pub(crate) async fn prove(
        &self,
        cam: &Camera,
        link: &Link,
        password: &str,
    ) -> Result<(), String> {
        self.client(link, password)
            .device_information()
            .await
            .map_err(|e| format!("ONVIF: {e}"))?;
        self.describe(cam, &link.username, password)
            .await
            .map_err(|e| format!("RTSP: {e}"))
    }

    /// An RTSP DESCRIBE of the camera's main stream with these credentials, through the
    /// recorders' opener (RTSPS verified as when recording).
    pub(crate) async fn describe(
        &self,
        cam: &Camera,
        username: &str,
        password: &str,
    ) -> Result<(), vigil_media::ingest::IngestError> {
        let source = Source {
            stream_id: cam.id.clone(),
            url: cam.url.clone(),
            username: Some(username.to_owned()),
            password: Some(password.to_owned()),
            inactivity_timeout: Duration::from_secs(10),
            tls_pin: cam.tls_pin.clone(),
        };
        self.opener.describe(&source).await
    }

    fn client(&self, link: &Link, password: &str) -> Client {
        let mut options = Options::new(self.trust.clone());
        options.timeout = self.timeout;
        options.pin = link.pin.clone();
        Client::new(
            link.target.clone(),
            Some(Credentials::new(link.username.clone(), password.to_owned())),
            options,
        )
    }

    fn abandon(&self, cam: &Camera) {
        if let Err(e) = self.store.abandon_rotation(&cam.id) {
            // The pending password stays: start-up resolves it by asking the camera.
            tracing::error!(camera = %cam.name, error = %e, "cannot drop a pending camera password");
        }
    }

    /// How the camera's ONVIF service is reached for a rotation, or why it cannot be.
    #[allow(clippy::result_large_err)]
    fn link(&self, cam: &Camera) -> Result<Link, CameraRotation> {
        let identity: Option<DeviceIdentity> = self
            .store
            .device_identities()
            .map_err(|e| line(cam, Outcome::Failed, Some(e.to_string())))?
            .into_iter()
            .find(|(id, _)| *id == cam.id)
            .map(|(_, d)| d);
        let Some(identity) = identity else {
            return Err(line(
                cam,
                Outcome::NotRotatable,
                Some(NOT_ROTATABLE_RTSP.into()),
            ));
        };
        let Some(username) = cam.username.clone() else {
            return Err(line(
                cam,
                Outcome::NotRotatable,
                Some("not rotatable: no user name is stored for it".into()),
            ));
        };
        let target = Target::parse(&identity.onvif_url).map_err(|e| {
            line(
                cam,
                Outcome::Failed,
                Some(format!("its recorded ONVIF address: {e}")),
            )
        })?;
        if !target.is_https() {
            return Err(line(
                cam,
                Outcome::NotRotatable,
                Some("not rotatable: its ONVIF link is plain HTTP, where the new password would cross the network in clear; add it again by https://".into()),
            ));
        }
        // The certificate recorded when it was added: pinned, so the link is the verified one
        // of that day (a self-signed camera certificate has no chain to verify; a CA-issued
        // one is the same certificate until the camera is re-added or trusted anew).
        Ok(Link {
            target,
            username,
            pin: identity.certificate,
        })
    }

    /// Audits and publishes one camera's result.
    fn tell(&self, l: &CameraRotation, trail: Option<&Trail<'_>>) -> Result<(), AccessError> {
        match l.result {
            Outcome::Rotated => tracing::info!(camera = %l.camera, "camera password rotated"),
            Outcome::NotRotatable => {}
            _ => {
                tracing::warn!(camera = %l.camera, result = l.result.as_str(), reason = l.reason.as_deref().unwrap_or(""), "camera password not rotated")
            }
        }
        if let Some(bus) = &self.events {
            let event = match l.result {
                Outcome::Rotated => Some(NewEvent::vigil(
                    &self.server,
                    "camera.password_rotated",
                    Category::Camera,
                    Severity::Notice,
                    format!(
                        "{}: the camera has a new password, proven over ONVIF and RTSP{}",
                        l.camera,
                        l.reason
                            .as_deref()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default()
                    ),
                )),
                Outcome::KeptOld | Outcome::Failed => Some(
                    NewEvent::vigil(
                        &self.server,
                        "camera.password_rotation_failed",
                        Category::Camera,
                        if l.result == Outcome::Failed {
                            Severity::Error
                        } else {
                            Severity::Warning
                        },
                        format!(
                            "{}: password not rotated ({}): {}",
                            l.camera,
                            l.result.as_str(),
                            clip(l.reason.as_deref().unwrap_or(""), 1500)
                        ),
                    )
                    .attribute("reason", clip(l.reason.as_deref().unwrap_or(""), 1000)),
                ),
                Outcome::NotRotatable => None,
            };
            if let Some(e) = event {
                let e = e
                    .camera(l.camera.clone())
                    .attribute("result", l.result.as_str());
                if let Err(err) = bus.publish(e) {
                    tracing::error!(error = %err, "rotation event refused");
                }
            }
        }
        match trail {
            Some(t) => t.record(
                AuditKind::CameraPasswordRotation,
                serde_json::json!({
                    "camera": l.camera, "result": l.result.as_str(), "reason": l.reason,
                    "time_us": l.time_us,
                }),
            ),
            None => Ok(()),
        }
    }
}

/// At most `max` bytes of `s`, cut at a character boundary (event fields have limits,
/// docs/events.md).
fn clip(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// A camera's ONVIF link as a rotation uses it.
pub(crate) struct Link {
    pub(crate) target: Target,
    pub(crate) username: String,
    pub(crate) pin: Option<String>,
}

/// A camera's line as it ends; the task that ran it sets `started_us` (when it got its turn),
/// until then the line spans no time.
fn line(cam: &Camera, result: Outcome, reason: Option<String>) -> CameraRotation {
    let time_us = now_us();
    CameraRotation {
        camera: cam.name.clone(),
        result,
        reason,
        started_us: time_us,
        time_us,
    }
}

/// Sets (or with `None` removes) a camera's own password rule (`LENGTH` or
/// `LENGTH:SYMBOLS`), checked, and audits the change.
pub fn set_rule(
    store: &Store,
    name: &str,
    rule: Option<&PasswordRule>,
    trail: &Trail<'_>,
) -> Result<RotationState, RotationError> {
    let before = store.rotation_state(name)?;
    let text = rule.map(PasswordRule::to_text);
    store.set_password_rule(name, text.as_deref())?;
    let cam = store.camera(name)?;
    trail
        .record(
            AuditKind::CameraChanged,
            serde_json::json!({
                "action": "changed", "camera": cam.name,
                "before": {"password_rule": before.rule}, "after": {"password_rule": text},
            }),
        )
        .map_err(RotationError::Audit)?;
    Ok(store.rotation_state(name)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_keep_their_rule() {
        let rule = PasswordRule::default();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let p = rule.generate();
            assert_eq!(p.len(), DEFAULT_LENGTH);
            assert!(p.chars().all(|c| c.is_ascii_alphanumeric()), "{}", *p);
            assert!(rule.complete(&p));
            assert!(seen.insert(p.to_string()), "a password came twice");
        }
        let rule = PasswordRule::new(MIN_LENGTH, "-_.").unwrap();
        for _ in 0..200 {
            let p = rule.generate();
            assert_eq!(p.chars().count(), MIN_LENGTH);
            assert!(
                p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            );
            assert!(p.chars().any(|c| "-_.".contains(c)), "{}", *p);
            assert!(p.bytes().any(|b| b.is_ascii_digit()));
            assert!(p.bytes().any(|b| b.is_ascii_uppercase()));
            assert!(p.bytes().any(|b| b.is_ascii_lowercase()));
        }
        let long = PasswordRule::new(MAX_LENGTH, SYMBOLS).unwrap().generate();
        assert_eq!(long.len(), MAX_LENGTH);
        // Every allowed character turns up: the draw is not biased away from any.
        let rule = PasswordRule::new(64, "").unwrap();
        let all: std::collections::HashSet<char> = (0..100)
            .flat_map(|_| rule.generate().chars().collect::<Vec<_>>())
            .collect();
        assert_eq!(all.len(), 62);
    }

    #[test]
    fn rules_are_read_checked_and_written_back() {
        assert_eq!(PasswordRule::parse("16").unwrap(), PasswordRule::default());
        let r = PasswordRule::parse("20:-_.-").unwrap();
        assert_eq!((r.length, r.symbols.as_str()), (20, "-_."));
        assert_eq!(r.to_text(), "20:-_.");
        assert_eq!(PasswordRule::parse(&r.to_text()).unwrap(), r);
        for (bad, says) in [
            ("7", "8 to 64"),
            ("65", "8 to 64"),
            ("", "length"),
            ("abc", "length"),
            ("16:'", "cannot be a password symbol"),
            ("16:<", "cannot be a password symbol"),
            ("16: ", "cannot be a password symbol"),
            ("16:\u{e9}", "cannot be a password symbol"),
        ] {
            let e = PasswordRule::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn outcomes_name_themselves_and_say_what_failed() {
        assert!(Outcome::KeptOld.is_failure() && Outcome::Failed.is_failure());
        assert!(!Outcome::Rotated.is_failure() && !Outcome::NotRotatable.is_failure());
        assert_eq!(
            serde_json::to_value(Outcome::NotRotatable).unwrap(),
            serde_json::json!("not_rotatable")
        );
    }
}
