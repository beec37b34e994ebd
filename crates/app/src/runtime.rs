//! The recording runtime of a recording server: start-up recovery, one recorder per enabled
//! camera kept in step with the camera registry (cameras added, changed, disabled or removed
//! while running are picked up), the evidence ledgers they sign into, the space reserve and
//! the retention schedule, and a clean stop. With a [`LiveHub`], the recorders also feed live
//! viewers from the same ingest, and a removed camera's viewers are let go.
//!
//! Front ends present what happens through [`RuntimeEvent`]s; the order of writes and why
//! each exists is in docs/storage-format.md and docs/signing-format.md.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use vigil_config::Config;
use vigil_media::evidence::{Evidence, EvidenceError, Signing};
use vigil_media::live::LiveHub;
use vigil_media::recorder::{self, RecorderEnv, RecorderHandle, RecorderSettings};
use vigil_media::reserve::SpaceReserve;
use vigil_media::retention::{self, RetentionPolicy, Urgency};
use vigil_media::store::{Camera, RecoveryReport, Store, StoreError};

use crate::ErrorKind;
use crate::setup::{self, SetupError};

/// Reads the configuration in effect (the settings use case changes it without a restart).
pub type LiveConfig = Arc<dyn Fn() -> Config + Send + Sync>;

/// How often the recorders are compared with the camera registry.
const RECONCILE_EVERY: Duration = Duration::from_secs(2);
/// How often retention runs (a full volume also frees space at once, from the recorder).
const RETENTION_EVERY: Duration = Duration::from_secs(10);

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
    CameraStarted {
        name: String,
        url: String,
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
    pub on_event: Arc<dyn Fn(RuntimeEvent) + Send + Sync>,
    /// Live viewers' feeds (the API's hub): every recorder publishes into it.
    pub live_video: Option<Arc<LiveHub>>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            signing: Signing::On,
            live: None,
            on_evidence: None,
            on_event: Arc::new(|_| {}),
            live_video: None,
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
        tokio::task::spawn_blocking(move || store.recover())
            .await?
            .map_err(RuntimeError::Recovery)?
    };
    tracing::info!(?report, "start-up recovery done");
    let interrupted = report.interrupted.clone();
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
    let mut running: HashMap<String, (Camera, RecorderHandle)> = HashMap::new();
    tokio::pin!(shutdown);
    let mut reconcile = tokio::time::interval(RECONCILE_EVERY);
    let mut retention_tick = tokio::time::interval(RETENTION_EVERY);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = reconcile.tick() => {
                let cameras = match store.cameras() {
                    Ok(c) => c,
                    Err(e) => { tracing::error!(error = %e, "cannot read cameras"); continue; }
                };
                for (cam, handle) in stale_recorders(&mut running, &cameras) {
                    event(RuntimeEvent::CameraStopped { name: cam.name.clone() });
                    handle.stop().await;
                }
                if let Some(hub) = &opts.live_video {
                    // Viewers of a removed camera are let go (a disabled one's keep waiting).
                    hub.retain(|id| cameras.iter().any(|c| c.id == id));
                }
                for cam in cameras.iter().filter(|c| c.enabled) {
                    if running.contains_key(&cam.id) { continue; }
                    // Never record unsigned video: without its ledger a camera waits, and
                    // the next pass tries again.
                    let observer = match evidence.observer(&cam.id) {
                        Ok(o) => o,
                        Err(e) => {
                            tracing::error!(camera = %cam.name, error = %e, "cannot open the evidence ledger; not recording unsigned video");
                            continue;
                        }
                    };
                    let env = RecorderEnv { live: opts.live_video.clone(), ..RecorderEnv::default() };
                    match recorder::start_with(store.clone(), cam.clone(), settings.clone(), Some(observer), space.clone(), env) {
                        Ok(h) => {
                            event(RuntimeEvent::CameraStarted { name: cam.name.clone(), url: cam.url.clone() });
                            running.insert(cam.id.clone(), (cam.clone(), h));
                        }
                        Err(e) => tracing::error!(camera = %cam.name, error = %e, "cannot start recorder"),
                    }
                }
            }
            _ = retention_tick.tick() => {
                let store = store.clone();
                let prune_hook = prune_hook.clone();
                let reserve = reserve.clone();
                let policy = opts.live.as_ref().map(|l| retention_policy(&l())).unwrap_or(policy);
                match tokio::task::spawn_blocking(move || retention::enforce(&store, &policy, &*prune_hook, Some(&reserve))).await {
                    Ok(Ok(r)) if r.segments_deleted > 0 => {
                        tracing::info!(deleted = r.segments_deleted, bytes = r.bytes_freed, "retention pass");
                    }
                    Ok(Err(e)) => tracing::error!(error = %e, "retention failed"),
                    _ => {}
                }
            }
        }
    }
    event(RuntimeEvent::ShuttingDown);
    for (_, (_, handle)) in running.drain() {
        handle.stop().await;
    }
    evidence.close_all();
    event(RuntimeEvent::Stopped);
    Ok(())
}

/// Takes out of `running` the recorders whose camera is gone, disabled or changed (a changed
/// URL or password needs a new session).
fn stale_recorders<H>(
    running: &mut HashMap<String, (Camera, H)>,
    cameras: &[Camera],
) -> Vec<(Camera, H)> {
    let wanted: HashMap<&str, &Camera> = cameras
        .iter()
        .filter(|c| c.enabled)
        .map(|c| (c.id.as_str(), c))
        .collect();
    let stale: Vec<String> = running
        .iter()
        .filter(|(id, (cam, _))| wanted.get(id.as_str()).is_none_or(|w| *w != cam))
        .map(|(id, _)| id.clone())
        .collect();
    stale
        .into_iter()
        .filter_map(|id| running.remove(&id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_media::store::NewCamera;

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

    #[test]
    fn recorders_of_removed_disabled_or_changed_cameras_are_stale() {
        let (_tmp, store) = store_with(&["a", "b", "c", "d"]);
        let cams = store.cameras().unwrap();
        let mut running: HashMap<String, (Camera, ())> = cams
            .iter()
            .map(|c| (c.id.clone(), (c.clone(), ())))
            .collect();
        let mut now: Vec<Camera> = cams
            .iter()
            .filter(|c| c.name != "a") // removed
            .cloned()
            .collect();
        for c in &mut now {
            match c.name.as_str() {
                "b" => c.enabled = false,
                "c" => c.url = "rtsp://192.0.2.9/c".into(),
                _ => {}
            }
        }
        let mut stale: Vec<String> = stale_recorders(&mut running, &now)
            .into_iter()
            .map(|(c, ())| c.name)
            .collect();
        stale.sort();
        assert_eq!(stale, ["a", "b", "c"]);
        let kept: Vec<&str> = running.values().map(|(c, ())| c.name.as_str()).collect();
        assert_eq!(kept, ["d"]);
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
        let mut viewer = hub.subscribe(&cam.id);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let opts = RuntimeOptions {
            live_video: Some(hub.clone()),
            ..Default::default()
        };
        let running = tokio::spawn(run(
            cfg,
            store.clone(),
            async move {
                let _ = stop_rx.await;
            },
            opts,
        ));
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
        assert_eq!(hub.viewers(&cam.id), 0);
        stop_tx.send(()).unwrap();
        running.await.unwrap().unwrap();
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
