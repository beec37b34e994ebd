//! The recording runtime of a recording server: start-up recovery, one recorder per stream of
//! every enabled camera (its main stream, and its secondary stream when it has one, recorded
//! or live only) kept in step with the camera registry (cameras added, changed, disabled or
//! removed while running are picked up), the evidence ledgers they sign into, the space
//! reserve and the retention schedule, and a clean stop. With a [`LiveHub`], the recorders also
//! feed live viewers from the same ingest, each stream its own feed, and the viewers of a
//! removed camera or secondary stream are let go.
//!
//! Front ends present what happens through [`RuntimeEvent`]s; the order of writes and why
//! each exists is in docs/storage-format.md and docs/signing-format.md.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use vigil_config::Config;
use vigil_media::evidence::{Evidence, EvidenceError, Signing};
use vigil_media::ingest_tls::{CertificateBook, TlsOpener};
use vigil_media::live::{FeedKey, LiveHub, Stream};
use vigil_media::recorder::{self, RecorderEnv, RecorderHandle, RecorderSettings, Storage};
use vigil_media::reserve::SpaceReserve;
use vigil_media::retention::{self, RetentionPolicy, Urgency};
use vigil_media::store::{Camera, DeviceIdentity, RecoveryReport, Store, StoreError, StreamMode};

use vigil_events::{Category, EventBus, NewEvent, Severity};

use crate::ErrorKind;
use crate::device_check::{DeviceCheckOpener, DeviceChecker};
use crate::events::StatusWatch;
use crate::rotation::{Rotator, Selection};
use crate::setup::{self, SetupError};

/// Reads the configuration in effect (the settings use case changes it without a restart).
pub type LiveConfig = Arc<dyn Fn() -> Config + Send + Sync>;

/// How often the recorders are compared with the camera registry.
const RECONCILE_EVERY: Duration = Duration::from_secs(2);
/// How often retention runs (a full volume also frees space at once, from the recorder).
const RETENTION_EVERY: Duration = Duration::from_secs(10);
/// How often the password rotation schedule looks for cameras due, and how long after the
/// start it first does (recorders connect first).
const ROTATION_CHECK_EVERY: Duration = Duration::from_secs(3600);
const ROTATION_FIRST_CHECK: Duration = Duration::from_secs(60);
/// A camera the schedule tried and could not rotate is tried again after this long.
const ROTATION_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("start-up recovery failed: {0}")]
    Recovery(StoreError),
    #[error(transparent)]
    Keys(#[from] SetupError),
    #[error("cannot open the evidence ledgers: {0}")]
    Evidence(#[from] EvidenceError),
    #[error("start-up recovery did not finish: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl RuntimeError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::Keys(e) => e.kind(),
            _ => ErrorKind::Internal,
        }
    }
}

/// What the runtime reports as it goes, for the front end to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeEvent {
    /// Start-up recovery made the index and the files agree.
    Recovered(RecoveryReport),
    /// The configured free-space floor cannot be reached on this volume; a smaller one is used.
    FloorUnreachable(String),
    /// A stream's recorder started; a secondary stream is named `CAMERA (secondary)`.
    CameraStarted {
        name: String,
        url: String,
        /// Fed to live viewers only, not stored (a secondary stream in `live` mode).
        live_only: bool,
    },
    CameraStopped {
        name: String,
    },
    /// Shutdown began: recorders finish their current GOPs and close their files.
    ShuttingDown,
    /// Every recorder stopped and every ledger was closed.
    Stopped,
}

/// How to run.
pub struct RuntimeOptions {
    pub signing: Signing,
    /// With it, retention follows settings changed at runtime.
    pub live: Option<LiveConfig>,
    /// Called once with the evidence ledgers, before any recorder starts: exports made while
    /// recording must sign through the same ledger writers (one writer per camera and
    /// process).
    pub on_evidence: Option<Box<dyn FnOnce(Arc<Evidence>) + Send>>,
    /// Called once with a view of SIEM forwarding when it runs (the metrics read it).
    pub on_siem: Option<Box<dyn FnOnce(vigil_siem::SiemMonitor) + Send>>,
    pub on_event: Arc<dyn Fn(RuntimeEvent) + Send + Sync>,
    /// Live viewers' feeds (the API's hub): every recorder publishes into it.
    pub live_video: Option<Arc<LiveHub>>,
    /// Where the runtime's events go (start and stop, streams losing and regaining their
    /// camera, retention deleting video).
    pub events: Option<Arc<EventBus>>,
    /// The audit log the runtime records in: password rotations it runs (start-up resolution,
    /// the schedule) and devices refused by the device allow-list (`crate::device_check`).
    /// `vigil serve` with the API passes the API's; without one (a server without the API:
    /// `--role recording`) the runtime opens the installation's audit log itself
    /// ([`crate::audit::open_access`]), so what the server does on its own is audited
    /// whichever front end runs beside it (docs/security-model.md, "Audit log").
    pub access: Option<Arc<vigil_access::Access>>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            signing: Signing::On,
            live: None,
            on_evidence: None,
            on_siem: None,
            on_event: Arc::new(|_| {}),
            live_video: None,
            events: None,
            access: None,
        }
    }
}

/// The recorders' settings from the configuration.
pub fn recorder_settings(cfg: &Config) -> RecorderSettings {
    RecorderSettings {
        segment_duration: Duration::from_secs(u64::from(cfg.storage.segment_seconds)),
        inactivity_timeout: cfg.ingest.inactivity_timeout,
        max_backoff: cfg.ingest.max_backoff,
    }
}

/// The retention policy from the configuration.
pub fn retention_policy(cfg: &Config) -> RetentionPolicy {
    RetentionPolicy {
        max_age_secs: cfg.retention.max_age.map(|d| d.as_secs() as i64),
        max_bytes: cfg.retention.max_bytes.map(|b| b as i64),
        min_free_bytes: cfg.storage.min_free_bytes,
    }
}

/// What the log says while no camera is configured.
pub const NO_CAMERA: &str = "no camera is configured, so nothing is recorded; add one with `vigil camera add NAME --url rtsp://HOST/PATH` (or POST /api/v1/cameras) and this server starts recording it within seconds";

/// Records every enabled camera until `shutdown` resolves, then stops cleanly.
pub async fn run(
    cfg: Config,
    store: Arc<Store>,
    shutdown: impl Future<Output = ()>,
    opts: RuntimeOptions,
) -> Result<(), RuntimeError> {
    let event = opts.on_event.clone();
    let report = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            // Before recovery, which would otherwise adopt an interrupted import's segment
            // file as the camera's own (docs/design/handover.md).
            if let Err(e) = crate::handover::settle(&store) {
                tracing::error!(error = %e, "cannot check for interrupted footage imports");
            }
            store.recover()
        })
        .await?
        .map_err(RuntimeError::Recovery)?
    };
    tracing::info!(
        "start-up recovery checked {} segments: {} GOPs re-indexed, {} bytes of torn data truncated, {} interrupted segments closed, {} stray files adopted and {} removed, {} missing files dropped from the index",
        report.segments_checked,
        report.gops_reindexed,
        report.bytes_truncated,
        report.interrupted.len(),
        report.orphans_adopted,
        report.orphans_removed,
        report.missing_files
    );
    tracing::debug!(?report, "start-up recovery report");
    let interrupted = report.interrupted.clone();
    let publish = |e: NewEvent| {
        if let Some(bus) = &opts.events
            && let Err(err) = bus.publish(e)
        {
            tracing::error!(error = %err, "runtime event refused");
        }
    };
    let server = opts
        .events
        .as_ref()
        .map(|b| b.server().to_owned())
        .unwrap_or_default();
    // SIEM forwarding: off (None) until `[siem]` lists a collector. It recovers its spool
    // (file reads), so it starts off the async threads; a setting that cannot be used (a
    // missing CA file, a key readable by others) is reported and recording goes on.
    let mut siem = match &opts.events {
        Some(bus) => {
            let (bus, siem_cfg, data_dir) = (bus.clone(), cfg.siem.clone(), cfg.data_dir.clone());
            match tokio::task::spawn_blocking(move || {
                vigil_siem::SiemForwarder::start(bus, &siem_cfg, &data_dir)
            })
            .await?
            {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(error = %e, "SIEM forwarding cannot start");
                    publish(NewEvent::vigil(
                        &server,
                        "siem.start_failed",
                        Category::System,
                        Severity::Error,
                        format!("SIEM forwarding did not start: {e}"),
                    ));
                    None
                }
            }
        }
        None => None,
    };
    if let (Some(f), Some(share)) = (&siem, opts.on_siem) {
        share(f.monitor());
    }
    publish(
        NewEvent::vigil(
            &server,
            "system.started",
            Category::System,
            Severity::Notice,
            format!(
                "recording started; start-up recovery checked {} segments, re-indexed {} GOPs, truncated {} bytes of torn data",
                report.segments_checked, report.gops_reindexed, report.bytes_truncated
            ),
        )
        .attribute("interrupted_segments", report.interrupted.len().to_string()),
    );
    event(RuntimeEvent::Recovered(report));
    let settings = recorder_settings(&cfg);
    let policy = retention_policy(&cfg);
    setup::ensure_keys(&cfg)?;
    let evidence = Arc::new(Evidence::new(&cfg.data_dir, opts.signing)?);
    evidence.set_recovered(interrupted);
    if let Some(share) = opts.on_evidence {
        share(evidence.clone());
    }
    let prune_hook = {
        let evidence = evidence.clone();
        Arc::new(move |camera: &str, seq: i64| {
            evidence.prune(camera, seq).map_err(|e| {
                tracing::error!(camera, seq, error = %e, "cannot record the prune in the evidence ledger; keeping the segment");
                e.to_string()
            })
        })
    };
    // The archive tier (docs/design/archive.md): off until `[archive]` names an endpoint. A
    // setting that cannot be used (keys readable by others, a missing CA file) is reported and
    // recording goes on with everything kept local.
    let archive_task = {
        let bus = opts.events.clone();
        let origin = server.clone();
        let on_pass: Arc<dyn Fn(&vigil_archive::ArchiveReport) + Send + Sync> = Arc::new(
            move |r: &vigil_archive::ArchiveReport| {
                let publish = |e: NewEvent| {
                    if let Some(bus) = &bus
                        && let Err(err) = bus.publish(e)
                    {
                        tracing::error!(error = %err, "archive event refused");
                    }
                };
                if !r.archived.is_empty() {
                    tracing::info!(
                        segments = r.archived.len(),
                        bytes = r.bytes_freed,
                        "archive pass"
                    );
                    publish(
                        NewEvent::vigil(&origin, "recording.archived", Category::Recording, Severity::Info,
                            format!("{} segments moved to the archive, verified against the ledger ({} bytes freed locally)", r.archived.len(), r.bytes_freed))
                        .attribute("segments", r.archived.len().to_string())
                        .attribute("bytes", r.bytes_freed.to_string()),
                    );
                }
                // One event per pass, not per segment: a bucket without Object Lock would
                // otherwise repeat the same reason for every due segment every minute.
                if let Some(first) = r.failures.first() {
                    publish(
                        NewEvent::vigil(
                            &origin,
                            "recording.archive_failed",
                            Category::Recording,
                            Severity::Warning,
                            format!(
                                "{} segment(s) stay local this pass; segment {} of {}: {}",
                                r.failures.len(),
                                first.seq,
                                first.camera_id,
                                first.reason
                            ),
                        )
                        .attribute("segments", r.failures.len().to_string())
                        .attribute("stream", first.camera_id.clone())
                        .attribute("segment", first.seq.to_string()),
                    );
                }
                if let Some(why) = &r.stopped {
                    tracing::error!(reason = %why, "archive pass stopped");
                }
            },
        );
        let (archive_cfg, store) = (cfg.archive.clone(), store.clone());
        match tokio::task::spawn_blocking(move || {
            crate::archive::ArchiveTask::start(&archive_cfg, store, on_pass)
        })
        .await?
        {
            Ok(task) => task,
            Err(e) => {
                tracing::error!(error = %e, "the archive tier cannot start; video stays local");
                publish(NewEvent::vigil(
                    &server,
                    "recording.archive_start_failed",
                    Category::Recording,
                    Severity::Error,
                    format!("the archive tier did not start: {e}"),
                ));
                None
            }
        }
    };
    let reserve = Arc::new(SpaceReserve::for_data_dir(&cfg.data_dir));
    if !reserve.ensure() {
        tracing::warn!(
            bytes = reserve.bytes(),
            "not enough free space for the space reserve yet; taken once retention frees room"
        );
    }
    if let (_, Some(warning)) = retention::effective_floor(
        cfg.storage.min_free_bytes,
        retention::volume_bytes(&cfg.data_dir),
    ) {
        tracing::warn!("{warning}");
        event(RuntimeEvent::FloorUnreachable(warning));
    }
    let space: recorder::FreeSpace = {
        let prune_hook = prune_hook.clone();
        let reserve = reserve.clone();
        Arc::new(move |store: &Store, needed: u64| {
            retention::free_space(
                store,
                needed,
                &*prune_hook,
                Some(&reserve),
                Urgency::Emergency,
            )
            .map(|r| r.bytes_freed)
            .unwrap_or(0)
        })
    };
    let access = match opts.access.clone() {
        Some(a) => Some(a),
        None => own_audit_log(&cfg).await,
    };
    let trust = crate::onvif::camera_trust(&cfg.data_dir);
    let mut trusted_cas = vigil_pki::camera_cas::generation(&cfg.data_dir.join("pki"));
    let opener = camera_opener_with(trust.clone(), &store, opts.events.clone(), access.clone());
    // Before any recorder starts: a rotation a crash interrupted is settled, so every
    // recorder connects with the password the camera has (docs/design/password-rotation.md).
    let rotator = {
        let mut r = Rotator::new(
            store.clone(),
            trust.clone(),
            link_opener_with(trust.clone(), &store, opts.events.clone()),
            &server,
        );
        r.events = opts.events.clone();
        r.concurrency = cfg.cameras.rotation_concurrency;
        r
    };
    {
        let trail = access
            .as_deref()
            .map(|a| crate::audit::Trail::new(a, rotation_actor("start-up")));
        match rotator.resolve_interrupted(trail.as_ref()).await {
            Ok(lines) => {
                for l in lines {
                    tracing::info!(camera = %l.camera, result = l.result.as_str(), reason = l.reason.as_deref().unwrap_or(""), "interrupted password rotation resolved");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot resolve interrupted password rotations"),
        }
    }
    let mut rotation_tick = tokio::time::interval_at(
        tokio::time::Instant::now() + ROTATION_FIRST_CHECK,
        ROTATION_CHECK_EVERY,
    );
    let mut rotation_run: Option<tokio::task::JoinHandle<()>> = None;
    let mut rotation_tried: HashMap<String, tokio::time::Instant> = HashMap::new();
    let mut running: HashMap<String, (StreamSpec, RecorderHandle)> = HashMap::new();
    let mut watch = StatusWatch::default();
    let mut told_no_camera = false;
    tokio::pin!(shutdown);
    let mut reconcile = tokio::time::interval(RECONCILE_EVERY);
    let mut retention_tick = tokio::time::interval(RETENTION_EVERY);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = reconcile.tick() => {
                // A CA an admin trusted or removed for cameras (another process may have
                // changed the directory) applies from the next camera connection.
                let now_cas = vigil_pki::camera_cas::generation(&cfg.data_dir.join("pki"));
                if now_cas != trusted_cas {
                    trusted_cas = now_cas;
                    trust.replace(&crate::onvif::camera_trust(&cfg.data_dir));
                    // A stream refused for good (an untrusted certificate is a permanent
                    // error: its recorder waits an hour) is started again below, now.
                    let failed: Vec<String> = running
                        .keys()
                        .filter(|id| matches!(store.status(id), Ok(Some(s)) if s.state == "failed"))
                        .cloned()
                        .collect();
                    for id in &failed {
                        if let Some((spec, handle)) = running.remove(id) {
                            event(RuntimeEvent::CameraStopped { name: spec.camera.name.clone() });
                            handle.stop().await;
                        }
                    }
                    tracing::info!(restarted = failed.len(), "the CAs trusted for camera certificates changed; new camera connections use them, and refused streams try again");
                }
                let cameras = match store.cameras() {
                    Ok(c) => c,
                    Err(e) => { tracing::error!(error = %e, "cannot read cameras"); continue; }
                };
                // Said once each time the camera list becomes empty, so a new installation
                // that records nothing says why.
                if cameras.is_empty() && !told_no_camera {
                    tracing::info!("{NO_CAMERA}");
                }
                told_no_camera = cameras.is_empty();
                for (id, (spec, _)) in &running {
                    let Ok(Some(status)) = store.status(id) else { continue };
                    let camera = cameras.iter().find(|c| c.id == spec.feed.camera_id).map_or(spec.camera.name.as_str(), |c| c.name.as_str());
                    if let Some(e) = watch.observe(&server, id, &spec.camera.name, camera, &status) {
                        publish(e);
                    }
                }
                let devices: HashMap<String, DeviceIdentity> = match store.device_identities() {
                    Ok(d) => d.into_iter().collect(),
                    Err(e) => { tracing::error!(error = %e, "cannot read camera device identities"); continue; }
                };
                let password_set: HashMap<String, i64> = match store.password_set_times() {
                    Ok(t) => t.into_iter().collect(),
                    Err(e) => { tracing::error!(error = %e, "cannot read when camera passwords were set"); continue; }
                };
                let wanted = wanted_streams(&cameras, &devices, &password_set);
                let flowing = |id: &str| {
                    matches!(store.status(id), Ok(Some(s)) if matches!(s.state.as_str(), "recording" | "live"))
                };
                for (spec, handle) in stale_recorders(&mut running, &wanted, flowing) {
                    event(RuntimeEvent::CameraStopped { name: spec.camera.name.clone() });
                    handle.stop().await;
                }
                watch.retain(|id| running.contains_key(id));
                if let Some(hub) = &opts.live_video {
                    // Viewers of a removed camera or secondary stream are let go (a disabled
                    // camera's keep waiting).
                    hub.retain(|key| cameras.iter().any(|c| {
                        c.id == key.camera_id
                            && (key.stream == Stream::Main || c.secondary.is_some())
                    }));
                }
                for spec in wanted {
                    if running.contains_key(&spec.camera.id) { continue; }
                    let storage = if spec.recorded {
                        // Never record unsigned video: without its ledger a stream waits, and
                        // the next pass tries again.
                        match evidence.observer(&spec.camera.id) {
                            Ok(o) => Storage::Recorded { observer: Some(o), space: space.clone() },
                            Err(e) => {
                                tracing::error!(camera = %spec.camera.name, error = %e, "cannot open the evidence ledger; not recording unsigned video");
                                continue;
                            }
                        }
                    } else {
                        Storage::LiveOnly
                    };
                    let env = RecorderEnv { opener: opener.clone(), live: opts.live_video.clone(), ..RecorderEnv::default() };
                    match recorder::start_stream(store.clone(), spec.camera.clone(), spec.feed.clone(), storage, settings.clone(), env) {
                        Ok(h) => {
                            event(RuntimeEvent::CameraStarted { name: spec.camera.name.clone(), url: spec.camera.url.clone(), live_only: !spec.recorded });
                            running.insert(spec.camera.id.clone(), (spec, h));
                        }
                        Err(e) => tracing::error!(camera = %spec.camera.name, error = %e, "cannot start recorder"),
                    }
                }
            }
            _ = rotation_tick.tick() => {
                let period = opts.live.as_ref().map_or(cfg.cameras.rotate_passwords_every, |l| l().cameras.rotate_passwords_every);
                let Some(period) = period else { continue };
                if rotation_run.as_ref().is_some_and(|t| !t.is_finished()) { continue; }
                let now = tokio::time::Instant::now();
                rotation_tried.retain(|_, at| now.duration_since(*at) < ROTATION_RETRY_AFTER);
                let due: Vec<String> = match rotator.due(period, vigil_media::store::now_us()) {
                    Ok(c) => {
                        let due: Vec<_> = c.into_iter().filter(|c| !rotation_tried.contains_key(&c.id)).collect();
                        for c in &due { rotation_tried.insert(c.id.clone(), now); }
                        due.into_iter().map(|c| c.name).collect()
                    }
                    Err(e) => { tracing::error!(error = %e, "cannot find the cameras due for a password rotation"); continue; }
                };
                if due.is_empty() { continue; }
                tracing::info!(cameras = due.len(), "scheduled camera password rotation");
                let (rotator, access) = (rotator.clone(), access.clone());
                rotation_run = Some(tokio::spawn(async move {
                    let trail = access.as_deref().map(|a| crate::audit::Trail::new(a, rotation_actor("schedule")));
                    if let Err(e) = rotator.rotate(&Selection::Cameras(due), trail.as_ref(), |_| {}).await {
                        tracing::error!(error = %e, "scheduled password rotation");
                    }
                }));
            }
            _ = retention_tick.tick() => {
                let store = store.clone();
                let prune_hook = prune_hook.clone();
                let reserve = reserve.clone();
                let policy = opts.live.as_ref().map(|l| retention_policy(&l())).unwrap_or(policy);
                let ledgers = evidence.clone();
                let pass = tokio::task::spawn_blocking(move || {
                    // Locks whose time ran out end with a signed record before retention runs.
                    let expired = crate::locks::expire_due(&store, &ledgers, vigil_media::store::now_us());
                    (expired, retention::enforce(&store, &policy, &*prune_hook, Some(&reserve)))
                }).await;
                let pass = match pass {
                    Ok((expired, r)) => {
                        match expired {
                            Ok(ended) => for l in ended {
                                publish(NewEvent::vigil(&server, "recording.evidence_lock_expired", Category::Recording, Severity::Notice,
                                    format!("evidence lock {} ended: its time ran out; retention may delete that video again", l.id))
                                    .attribute("lock", l.id.to_string()));
                            },
                            Err(e) => tracing::error!(error = %e, "cannot end expired evidence locks"),
                        }
                        Ok(r)
                    }
                    Err(e) => Err(e),
                };
                match pass {
                    Ok(Ok(r)) if r.segments_deleted > 0 => {
                        tracing::info!(deleted = r.segments_deleted, bytes = r.bytes_freed, "retention pass");
                        publish(NewEvent::vigil(&server, "recording.retention_pruned", Category::Recording, Severity::Info,
                            format!("retention deleted {} segments ({} bytes) of old video", r.segments_deleted, r.bytes_freed))
                            .attribute("segments", r.segments_deleted.to_string())
                            .attribute("bytes", r.bytes_freed.to_string()));
                    }
                    Ok(Err(e)) => tracing::error!(error = %e, "retention failed"),
                    _ => {}
                }
            }
        }
    }
    event(RuntimeEvent::ShuttingDown);
    if let Some(run) = rotation_run.take() {
        // A rotation stopped midway leaves its pending password, which the next start
        // settles with the camera.
        run.abort();
    }
    for (_, (_, handle)) in running.drain() {
        handle.stop().await;
    }
    evidence.close_all();
    if let Some(task) = archive_task {
        let _ = tokio::task::spawn_blocking(move || task.stop()).await;
    }
    publish(NewEvent::vigil(
        &server,
        "system.stopped",
        Category::System,
        Severity::Notice,
        "recording stopped cleanly",
    ));
    if let Some(mut f) = siem.take() {
        // Waits (briefly) for what was sent to be delivered; the rest goes at the next start.
        let _ = tokio::task::spawn_blocking(move || f.stop()).await;
    }
    event(RuntimeEvent::Stopped);
    Ok(())
}

/// How every recorder connects: first the device allow-list's check of a camera added by
/// ONVIF (`crate::device_check`: another device at its address is refused), then plain RTSP
/// as it is, RTSPS through the verified TLS tunnel (docs/design/camera-tls.md), both trusting
/// the installation CA, the camera CAs and the system roots.
pub fn camera_opener(
    cfg: &Config,
    store: &Arc<Store>,
    events: Option<Arc<EventBus>>,
    audit: Option<Arc<vigil_access::Access>>,
) -> Arc<dyn vigil_media::ingest::Opener> {
    camera_opener_with(
        crate::onvif::camera_trust(&cfg.data_dir),
        store,
        events,
        audit,
    )
}

/// [`camera_opener`] verifying camera certificates with `trust` (shared: replacing its anchors
/// applies to every later connection).
fn camera_opener_with(
    trust: vigil_media::ingest_tls::TrustStore,
    store: &Arc<Store>,
    events: Option<Arc<EventBus>>,
    audit: Option<Arc<vigil_access::Access>>,
) -> Arc<dyn vigil_media::ingest::Opener> {
    let tls = link_opener_with(trust.clone(), store, events.clone());
    let checker = Arc::new(DeviceChecker::new(store.clone(), trust, events, audit));
    Arc::new(DeviceCheckOpener::new(tls, checker))
}

/// The camera links without the device allow-list's check: for password rotation, which
/// talks to the recorded ONVIF address with the recorded certificate itself, and proves a
/// password the store has not committed yet (the check would ask the device with the old one).
pub fn rotation_opener(
    cfg: &Config,
    store: &Arc<Store>,
    events: Option<Arc<EventBus>>,
) -> Arc<dyn vigil_media::ingest::Opener> {
    link_opener_with(crate::onvif::camera_trust(&cfg.data_dir), store, events)
}

/// Plain RTSP as it is, RTSPS through the verified TLS tunnel with `trust`.
fn link_opener_with(
    trust: vigil_media::ingest_tls::TrustStore,
    store: &Arc<Store>,
    events: Option<Arc<EventBus>>,
) -> Arc<dyn vigil_media::ingest::Opener> {
    let book = Arc::new(CameraCertificates {
        store: store.clone(),
        events,
    });
    Arc::new(TlsOpener::new(
        Arc::new(vigil_media::ingest::RetinaOpener),
        trust,
        book,
    ))
}

/// The installation's audit log for a runtime started without the API's: opened off the
/// async threads (SQLite, or PostgreSQL with its connection). One that cannot be opened is
/// said loudly and recording goes on: losing video is worse than an entry the log misses, and
/// the server log still names every rotation and refused device.
async fn own_audit_log(cfg: &Config) -> Option<Arc<vigil_access::Access>> {
    let cfg = cfg.clone();
    match tokio::task::spawn_blocking(move || crate::audit::open_access(&cfg)).await {
        Ok(Ok(access)) => Some(Arc::new(access)),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot open the audit log: password rotations and refused devices of this server are logged here only");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "opening the audit log ended abnormally");
            None
        }
    }
}

/// Who the audit log names for the rotations `vigil serve` runs by itself.
fn rotation_actor(what: &str) -> vigil_access::Actor {
    vigil_access::Actor {
        name: format!("server:password-rotation ({what})"),
        source: "server".to_owned(),
    }
}

/// The certificates camera streams presented, kept in the camera registry; a changed one is
/// published as `camera.certificate_changed` (docs/events.md).
struct CameraCertificates {
    store: Arc<Store>,
    events: Option<Arc<EventBus>>,
}

impl CertificateBook for CameraCertificates {
    fn seen(&self, stream_id: &str) -> Option<String> {
        self.store.tls_seen(stream_id).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the certificate a camera presented before");
            None
        })
    }

    fn remember(&self, stream_id: &str, fingerprint: &str) {
        if let Err(e) = self.store.set_tls_seen(stream_id, fingerprint) {
            tracing::error!(error = %e, "cannot remember a camera's certificate");
        }
    }

    fn changed(&self, stream_id: &str, old: &str, new: &str) {
        let stream = self
            .store
            .stream(stream_id)
            .map(|c| c.name)
            .unwrap_or_else(|_| stream_id.to_owned());
        let camera = self
            .store
            .cameras()
            .ok()
            .and_then(|cams| {
                cams.into_iter().find(|c| {
                    c.id == stream_id || c.secondary.as_ref().is_some_and(|s| s.id == stream_id)
                })
            })
            .map_or_else(|| stream.clone(), |c| c.name);
        tracing::error!(camera = %stream, old, new, "camera certificate changed; link stopped");
        let Some(bus) = &self.events else { return };
        let event = NewEvent::vigil(
            bus.server(),
            "camera.certificate_changed",
            Category::Camera,
            Severity::Alert,
            format!(
                "{stream}: the camera presented a different TLS certificate (SHA-256 {new}, was {old}); the link is stopped until an admin trusts the new certificate"
            ),
        )
        .camera(camera)
        .attribute("stream", stream)
        .attribute("old_fingerprint", old)
        .attribute("new_fingerprint", new);
        if let Err(e) = bus.publish(event) {
            tracing::error!(error = %e, "certificate change event refused");
        }
    }
}

/// One stream a recorder runs: what it connects to, the live feed it publishes into and
/// whether it is stored. A recorder whose spec changes is restarted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StreamSpec {
    /// The stream as the recorder sees it (a secondary one from [`Camera::secondary_camera`]);
    /// its id keys the running recorders.
    camera: Camera,
    feed: FeedKey,
    recorded: bool,
    /// The device identity recorded for the camera (added by ONVIF): accepting another
    /// device restarts the streams a refusal stopped.
    device: Option<DeviceIdentity>,
    /// When an admin last set the camera's password by hand (`vigil camera set-password`):
    /// a change restarts both streams, so they log in with it now rather than at their next
    /// back-off (a rotation's commit does not: the camera closes its sessions itself).
    password_set_us: Option<i64>,
}

/// The streams that should be running: every enabled camera's main stream (stored), and its
/// secondary stream when it has one (stored or live only, as set).
fn wanted_streams(
    cameras: &[Camera],
    devices: &HashMap<String, DeviceIdentity>,
    password_set: &HashMap<String, i64>,
) -> Vec<StreamSpec> {
    let mut out = Vec::new();
    for cam in cameras.iter().filter(|c| c.enabled) {
        let device = devices.get(&cam.id).cloned();
        let password_set_us = password_set.get(&cam.id).copied();
        out.push(StreamSpec {
            camera: cam.main_camera(),
            feed: FeedKey::main(&cam.id),
            recorded: true,
            device: device.clone(),
            password_set_us,
        });
        if let (Some(sec), Some(stream)) = (&cam.secondary, cam.secondary_camera()) {
            out.push(StreamSpec {
                camera: stream,
                feed: FeedKey::secondary(&cam.id),
                recorded: sec.mode == StreamMode::Recorded,
                device,
                password_set_us,
            });
        }
    }
    out
}

/// Takes out of `running` the recorders whose stream is gone (camera removed or disabled,
/// secondary removed) or changed (a changed URL or password needs a new session, a changed
/// mode another kind of recorder).
fn stale_recorders<H>(
    running: &mut HashMap<String, (StreamSpec, H)>,
    wanted: &[StreamSpec],
    flowing: impl Fn(&str) -> bool,
) -> Vec<(StreamSpec, H)> {
    let wanted: HashMap<&str, &StreamSpec> =
        wanted.iter().map(|s| (s.camera.id.as_str(), s)).collect();
    let mut stale = Vec::new();
    for (id, (spec, _)) in running.iter_mut() {
        match wanted.get(id.as_str()) {
            Some(w) if *w == spec => {}
            // A new device record alone (an accepted device, a certificate installed on the
            // camera) restarts the streams its check refused; one whose video flows keeps
            // its connection (the next connection is checked against the new record).
            Some(w)
                if w.device != spec.device && flowing(id) && {
                    let mut same = (*w).clone();
                    same.device = spec.device.clone();
                    same == *spec
                } =>
            {
                *spec = (*w).clone();
            }
            _ => stale.push(id.clone()),
        }
    }
    stale
        .into_iter()
        .filter_map(|id| running.remove(&id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_media::store::{NewCamera, NewSecondary};

    /// The runtime on a task of its own, until [`Running::stop`].
    struct Running {
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<Result<(), RuntimeError>>,
    }

    impl Running {
        /// Asks the runtime to stop and waits until it has, cleanly.
        async fn stop(self) {
            self.stop.send(()).unwrap();
            self.task.await.unwrap().unwrap();
        }
    }

    /// Starts [`run`] with `opts`; it runs until the returned handle is stopped.
    fn spawn_runtime(cfg: Config, store: Arc<Store>, opts: RuntimeOptions) -> Running {
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(
            cfg,
            store,
            async move {
                let _ = stop_rx.await;
            },
            opts,
        ));
        Running { stop, task }
    }

    fn store_with(names: &[&str]) -> (tempfile::TempDir, Store) {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::init(tmp.path()).unwrap();
        for name in names {
            store
                .add_camera(&NewCamera {
                    name: (*name).into(),
                    url: format!("rtsp://192.0.2.1/{name}"),
                    ..Default::default()
                })
                .unwrap();
        }
        (tmp, store)
    }

    fn sub(url: &str, mode: StreamMode) -> NewSecondary {
        NewSecondary {
            url: url.into(),
            mode,
            ..Default::default()
        }
    }

    #[test]
    fn recorders_of_removed_disabled_or_changed_streams_are_stale() {
        let (_tmp, store) = store_with(&["a", "b", "c", "d", "e", "f", "g"]);
        for (name, mode) in [
            ("e", StreamMode::Live),
            ("f", StreamMode::Recorded),
            ("g", StreamMode::Live),
        ] {
            let url = format!("rtsp://192.0.2.1/{name}-sub");
            store.set_secondary(name, Some(&sub(&url, mode))).unwrap();
        }
        let cams = store.cameras().unwrap();
        let wanted = wanted_streams(&cams, &HashMap::new(), &HashMap::new());
        let names = |specs: &[StreamSpec]| -> Vec<(String, Stream, bool)> {
            let mut v: Vec<_> = specs
                .iter()
                .map(|s| (s.camera.name.clone(), s.feed.stream, s.recorded))
                .collect();
            v.sort_by(|x, y| x.0.cmp(&y.0));
            v
        };
        let expect = |n: &str, st, rec| (n.to_owned(), st, rec);
        assert_eq!(
            names(&wanted)[4..],
            [
                expect("e", Stream::Main, true),
                expect("e (secondary)", Stream::Secondary, false),
                expect("f", Stream::Main, true),
                expect("f (secondary)", Stream::Secondary, true),
                expect("g", Stream::Main, true),
                expect("g (secondary)", Stream::Secondary, false),
            ]
        );
        let mut running: HashMap<String, (StreamSpec, ())> = wanted
            .into_iter()
            .map(|s| (s.camera.id.clone(), (s, ())))
            .collect();
        store.remove_camera("a", false).unwrap();
        store.set_camera_enabled("b", false).unwrap();
        store.set_secondary("e", None).unwrap();
        store
            .set_secondary("f", Some(&sub("rtsp://192.0.2.1/f-sub", StreamMode::Live)))
            .unwrap();
        store
            .set_secondary("d", Some(&sub("rtsp://192.0.2.1/d-sub", StreamMode::Live)))
            .unwrap();
        let mut now = store.cameras().unwrap();
        for c in &mut now {
            if c.name == "c" {
                c.url = "rtsp://192.0.2.9/c".into();
            }
            // Another URL for g's secondary restarts only that stream.
            if let Some(s) = c.secondary.as_mut().filter(|_| c.name == "g") {
                s.url = "rtsp://192.0.2.9/g-sub".into();
            }
        }
        let mut stale: Vec<String> = stale_recorders(
            &mut running,
            &wanted_streams(&now, &HashMap::new(), &HashMap::new()),
            |_| false,
        )
        .into_iter()
        .map(|(s, ())| s.camera.name)
        .collect();
        stale.sort();
        assert_eq!(
            stale,
            [
                "a",
                "b",
                "c",
                "e (secondary)",
                "f (secondary)",
                "g (secondary)"
            ]
        );
        let mut kept: Vec<&str> = running
            .values()
            .map(|(s, ())| s.camera.name.as_str())
            .collect();
        kept.sort();
        assert_eq!(kept, ["d", "e", "f", "g"]);
    }

    #[test]
    fn settings_and_policy_follow_the_configuration() {
        let mut cfg = Config::with_data_dir("/var/lib/vigil");
        cfg.storage.segment_seconds = 30;
        cfg.retention.max_age = Some(Duration::from_secs(7 * 86400));
        cfg.retention.max_bytes = Some(1 << 30);
        assert_eq!(
            recorder_settings(&cfg).segment_duration,
            Duration::from_secs(30)
        );
        let p = retention_policy(&cfg);
        assert_eq!(p.max_age_secs, Some(7 * 86400));
        assert_eq!(p.max_bytes, Some(1 << 30));
        assert_eq!(p.min_free_bytes, cfg.storage.min_free_bytes);
    }

    #[test]
    fn a_new_device_record_restarts_the_refused_streams_only() {
        let (_tmp, store) = store_with(&["a", "b"]);
        store
            .set_secondary("a", Some(&sub("rtsp://192.0.2.1/a-sub", StreamMode::Live)))
            .unwrap();
        let cams = store.cameras().unwrap();
        let a = cams.iter().find(|c| c.name == "a").unwrap().id.clone();
        let identity = |serial: &str| DeviceIdentity {
            serial: serial.into(),
            ..Default::default()
        };
        let before = HashMap::from([(a.clone(), identity("SN-1"))]);
        let mut running: HashMap<String, (StreamSpec, ())> =
            wanted_streams(&cams, &before, &HashMap::new())
                .into_iter()
                .map(|s| (s.camera.id.clone(), (s, ())))
                .collect();
        assert!(
            stale_recorders(
                &mut running,
                &wanted_streams(&cams, &before, &HashMap::new()),
                |_| false
            )
            .is_empty()
        );
        let after = HashMap::from([(a, identity("SN-2"))]);
        // Streams whose video flows keep their connection; the record they run with is the
        // new one.
        assert!(
            stale_recorders(
                &mut running,
                &wanted_streams(&cams, &after, &HashMap::new()),
                |_| true
            )
            .is_empty()
        );
        assert!(
            stale_recorders(
                &mut running,
                &wanted_streams(&cams, &after, &HashMap::new()),
                |_| false
            )
            .is_empty()
        );
        // Refused ones (not flowing) restart with it.
        let mut running: HashMap<String, (StreamSpec, ())> =
            wanted_streams(&cams, &before, &HashMap::new())
                .into_iter()
                .map(|s| (s.camera.id.clone(), (s, ())))
                .collect();
        let mut stale: Vec<String> = stale_recorders(
            &mut running,
            &wanted_streams(&cams, &after, &HashMap::new()),
            |_| false,
        )
        .into_iter()
        .map(|(s, ())| s.camera.name)
        .collect();
        stale.sort();
        assert_eq!(stale, ["a", "a (secondary)"]);
    }

    #[tokio::test]
    async fn recorders_feed_the_live_hub_and_a_removed_cameras_viewers_are_let_go() {
        use vigil_media::live::{LiveState, ViewerEvent};
        let tmp = tempfile::tempdir().unwrap();
        let cfg = setup::init(tmp.path(), &tmp.path().join("vigil.toml"), false).unwrap();
        let store = Arc::new(Store::open(&cfg.data_dir).unwrap());
        // Nothing listens there: the recorder connects, fails and retries.
        let cam = store
            .add_camera(&NewCamera {
                name: "lobby".into(),
                url: "rtsp://127.0.0.1:1/none".into(),
                ..Default::default()
            })
            .unwrap();
        let hub = Arc::new(LiveHub::new());
        let mut viewer = hub.subscribe(&FeedKey::main(&cam.id));
        let opts = RuntimeOptions {
            live_video: Some(hub.clone()),
            ..Default::default()
        };
        let running = spawn_runtime(cfg, store.clone(), opts);
        let secs = Duration::from_secs;
        let first = tokio::time::timeout(secs(5), viewer.next())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(first, ViewerEvent::State(LiveState::Offline)));
        let next = tokio::time::timeout(secs(5), viewer.next())
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(next, ViewerEvent::State(LiveState::Connecting)),
            "{next:?}"
        );
        store.remove_camera("lobby", false).unwrap();
        // The next pass stops the recorder (its viewers see it stop) and lets them go.
        let mut seen = Vec::new();
        loop {
            let next = tokio::time::timeout(secs(6), viewer.next()).await;
            match next.expect("the viewer was let go within a pass") {
                Some(ViewerEvent::State(s)) => seen.push(s),
                Some(other) => panic!("{other:?}"),
                None => break,
            }
        }
        assert_eq!(seen.last(), Some(&LiveState::Stopped), "{seen:?}");
        assert_eq!(hub.viewers(&FeedKey::main(&cam.id)), 0);
        running.stop().await;
    }

    #[tokio::test]
    async fn the_runtime_runs_siem_forwarding_when_a_collector_is_configured() {
        use vigil_events::{EventQuery, EventStore};
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = setup::init(tmp.path(), &tmp.path().join("vigil.toml"), false).unwrap();
        let spool = cfg.data_dir.join("siem").join("spool");
        // A collector nobody listens on: events wait in the spool.
        cfg.siem.collectors = vec![vigil_config::SiemCollector {
            target: "127.0.0.1:1".into(),
            ca_file: Some(cfg.data_dir.join("pki").join("ca.crt")),
            ..Default::default()
        }];
        let run_once = |cfg: Config| async move {
            let store = Arc::new(Store::open(&cfg.data_dir).unwrap());
            let events = Arc::new(EventStore::open(&cfg.data_dir).unwrap());
            let bus = EventBus::start(events.clone(), "srv1").unwrap();
            let monitor = Arc::new(std::sync::Mutex::new(None));
            let opts = RuntimeOptions {
                events: Some(bus.clone()),
                on_siem: {
                    let monitor = monitor.clone();
                    Some(Box::new(move |m| *monitor.lock().unwrap() = Some(m)))
                },
                ..Default::default()
            };
            let running = spawn_runtime(cfg, store, opts);
            tokio::time::sleep(Duration::from_millis(300)).await;
            bus.publish(NewEvent::vigil(
                "srv1",
                "security.login_failed",
                Category::Security,
                Severity::Notice,
                "bad password",
            ))
            .unwrap();
            bus.flush();
            tokio::time::sleep(Duration::from_millis(300)).await;
            running.stop().await;
            bus.flush();
            let monitor = monitor.lock().unwrap().take();
            (events, monitor)
        };
        let (_, monitor) = run_once(cfg.clone()).await;
        let records: u64 = std::fs::read_dir(&spool)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension() == Some("seg".as_ref()))
            .map(|p| {
                vigil_siem::spool::scan_segment(&std::fs::read(p).unwrap())
                    .unwrap()
                    .records
            })
            .sum();
        assert_eq!(records, 1, "the security event waits in the spool");
        // The metrics show the collector down, the event waiting and its age.
        let store = Store::open(&cfg.data_dir).unwrap();
        let text = crate::metrics::collect(
            &crate::metrics::Sources {
                store: &store,
                access: None,
                pki: None,
                events: None,
                evidence: None,
                siem: Some(&monitor.expect("the runtime shares its SIEM forwarder")),
                mail: None,
                rules: None,
                webhooks: &[],
            },
            vigil_media::store::now_us(),
        )
        .unwrap();
        let collector = "vigil_siem_collector_up{collector=\"127.0.0.1:1\"} 0\n";
        assert!(text.contains(collector), "{text}");
        let backlog = "vigil_siem_spool_backlog_events{collector=\"127.0.0.1:1\"} 1\n";
        assert!(text.contains(backlog), "{text}");
        assert!(
            text.contains("vigil_siem_events_spooled_total 1\n"),
            "{text}"
        );
        let age: f64 = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    "vigil_siem_spool_oldest_pending_age_seconds{collector=\"127.0.0.1:1\"} ",
                )
            })
            .expect("an age per collector")
            .parse()
            .unwrap();
        assert!(
            (0.2..60.0).contains(&age),
            "{age}: the event waited about 0.3 s"
        );
        // A setting that cannot be used is reported as an event; recording goes on.
        cfg.siem.collectors[0].ca_file = Some(tmp.path().join("missing-ca.pem"));
        let (events, monitor) = run_once(cfg.clone()).await;
        assert!(monitor.is_none(), "forwarding did not start");
        let failed = events
            .query(&EventQuery {
                kinds: vec!["siem.start_failed".into()],
                ..Default::default()
            })
            .unwrap()
            .events;
        assert_eq!(failed.len(), 1);
        assert!(
            failed[0].event.message.contains("missing-ca.pem"),
            "{}",
            failed[0].event.message
        );
        // Without a collector nothing is created.
        let tmp2 = tempfile::tempdir().unwrap();
        let cfg2 = setup::init(tmp2.path(), &tmp2.path().join("vigil.toml"), false).unwrap();
        let dir2 = cfg2.data_dir.join("siem");
        run_once(cfg2).await;
        assert!(!dir2.exists());
    }

    #[tokio::test]
    async fn the_runtime_tells_its_start_a_lost_camera_and_its_stop_as_events() {
        use vigil_events::{EventQuery, EventStore, Live};
        let tmp = tempfile::tempdir().unwrap();
        let cfg = setup::init(tmp.path(), &tmp.path().join("vigil.toml"), false).unwrap();
        let store = Arc::new(Store::open(&cfg.data_dir).unwrap());
        store
            .add_camera(&NewCamera {
                name: "lobby".into(),
                url: "rtsp://127.0.0.1:1/none".into(),
                ..Default::default()
            })
            .unwrap();
        let events = Arc::new(EventStore::open(&cfg.data_dir).unwrap());
        let bus = EventBus::start(events.clone(), "srv1").unwrap();
        let mut live = bus.subscribe();
        let opts = RuntimeOptions {
            events: Some(bus.clone()),
            ..Default::default()
        };
        let running = spawn_runtime(cfg, store.clone(), opts);
        let mut kinds = Vec::new();
        while !kinds.iter().any(|k| k == "camera.connection_lost") {
            match tokio::time::timeout(Duration::from_secs(20), live.next()).await {
                Ok(Some(Live::Event(e))) => {
                    if e.event.kind == "camera.connection_lost" {
                        assert_eq!(e.event.camera.as_deref(), Some("lobby"));
                        assert!(
                            e.event.message.starts_with("lobby: connection lost ("),
                            "{}",
                            e.event.message
                        );
                        assert!(!e.event.attributes["reason"].is_empty());
                    }
                    kinds.push(e.event.kind.clone());
                }
                other => panic!("no connection_lost event within 20 s: {other:?}, saw {kinds:?}"),
            }
        }
        assert_eq!(kinds[0], "system.started", "{kinds:?}");
        running.stop().await;
        bus.flush();
        let stored = events
            .query(&EventQuery {
                kinds: vec!["system.".into()],
                ..Default::default()
            })
            .unwrap()
            .events;
        let kinds: Vec<&str> = stored.iter().map(|e| e.event.kind.as_str()).collect();
        assert_eq!(kinds, ["system.stopped", "system.started"]);
        assert_eq!(stored[0].event.source.name, "srv1");
    }

    #[tokio::test]
    async fn a_secondary_stream_has_its_own_recorder_feed_and_status() {
        use vigil_media::live::{LiveState, ViewerEvent};
        let tmp = tempfile::tempdir().unwrap();
        let cfg = setup::init(tmp.path(), &tmp.path().join("vigil.toml"), false).unwrap();
        let store = Arc::new(Store::open(&cfg.data_dir).unwrap());
        // Nothing listens on either URL: both recorders connect, fail and retry.
        let cam = store
            .add_camera(&NewCamera {
                name: "lobby".into(),
                url: "rtsp://127.0.0.1:1/main".into(),
                secondary: Some(sub("rtsp://127.0.0.1:1/sub", StreamMode::Live)),
                ..Default::default()
            })
            .unwrap();
        let sid = cam.secondary.clone().unwrap().id;
        let hub = Arc::new(LiveHub::new());
        let mut main = hub.subscribe(&FeedKey::main(&cam.id));
        let mut secondary = hub.subscribe(&FeedKey::secondary(&cam.id));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let opts = RuntimeOptions {
            live_video: Some(hub.clone()),
            on_event: {
                let seen = seen.clone();
                Arc::new(move |e| seen.lock().unwrap().push(e))
            },
            ..Default::default()
        };
        let running = spawn_runtime(cfg, store.clone(), opts);
        let secs = Duration::from_secs;
        for v in [&mut main, &mut secondary] {
            for want in [LiveState::Offline, LiveState::Connecting] {
                let got = tokio::time::timeout(secs(5), v.next())
                    .await
                    .unwrap()
                    .unwrap();
                assert!(
                    matches!(&got, ViewerEvent::State(s) if *s == want),
                    "{got:?}"
                );
            }
        }
        let started: Vec<RuntimeEvent> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, RuntimeEvent::CameraStarted { .. }))
            .cloned()
            .collect();
        let main_started = RuntimeEvent::CameraStarted {
            name: "lobby".into(),
            url: "rtsp://127.0.0.1:1/main".into(),
            live_only: false,
        };
        let sub_started = RuntimeEvent::CameraStarted {
            name: "lobby (secondary)".into(),
            url: "rtsp://127.0.0.1:1/sub".into(),
            live_only: true,
        };
        assert_eq!(started.len(), 2, "{started:?}");
        assert!(
            started.contains(&main_started) && started.contains(&sub_started),
            "{started:?}"
        );
        // Its status is its own row, under the stream's id.
        assert!(store.status(&sid).unwrap().is_some());
        // The secondary is removed: its recorder stops and its viewers are let go; the
        // camera's main stream goes on.
        store.set_secondary("lobby", None).unwrap();
        let mut states = Vec::new();
        loop {
            let next = tokio::time::timeout(secs(6), secondary.next()).await;
            match next.expect("the viewer was let go within a pass") {
                Some(ViewerEvent::State(s)) => states.push(s),
                Some(other) => panic!("{other:?}"),
                None => break,
            }
        }
        assert_eq!(states.last(), Some(&LiveState::Stopped), "{states:?}");
        assert_eq!(hub.viewers(&FeedKey::main(&cam.id)), 1);
        assert!(seen.lock().unwrap().iter().any(|e| *e
            == RuntimeEvent::CameraStopped {
                name: "lobby (secondary)".into()
            }));
        assert!(
            !seen.lock().unwrap().iter().any(|e| *e
                == RuntimeEvent::CameraStopped {
                    name: "lobby".into()
                }),
            "the main stream's recorder was not restarted"
        );
        running.stop().await;
    }

    #[tokio::test]
    async fn an_empty_installation_starts_and_stops_cleanly() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = setup::init(tmp.path(), &tmp.path().join("vigil.toml"), false).unwrap();
        let store = Arc::new(Store::open(&cfg.data_dir).unwrap());
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let shared = Arc::new(std::sync::Mutex::new(None));
        let opts = RuntimeOptions {
            on_event: {
                let seen = seen.clone();
                Arc::new(move |e| seen.lock().unwrap().push(e))
            },
            on_evidence: {
                let shared = shared.clone();
                Some(Box::new(move |e| *shared.lock().unwrap() = Some(e)))
            },
            ..Default::default()
        };
        run(
            cfg,
            store,
            tokio::time::sleep(Duration::from_millis(50)),
            opts,
        )
        .await
        .unwrap();
        let seen = seen.lock().unwrap();
        assert!(matches!(seen.first(), Some(RuntimeEvent::Recovered(_))));
        assert_eq!(
            &seen[seen.len() - 2..],
            [RuntimeEvent::ShuttingDown, RuntimeEvent::Stopped]
        );
        assert!(shared.lock().unwrap().is_some(), "the ledgers were shared");
    }
}
