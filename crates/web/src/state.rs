//! What every request handler shares: the access store, the recording index, the PKI, the
//! live TLS certificate, the settings in effect and the live video feeds.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use vigil_access::Access;
use vigil_app::alarms::{Alarms, AlarmsError};
use vigil_app::settings::Settings;
use vigil_config::Config;
use vigil_events::EventBus;
use vigil_media::evidence::Evidence;
use vigil_media::live::LiveHub;
use vigil_media::store::Store;
use vigil_pki::{LiveTls, Pki};

use crate::listen::Listeners;

/// Shared by all handlers through axum's `State`.
pub struct AppState {
    pub access: Arc<Access>,
    pub store: Arc<Store>,
    /// Certificate operations are rare and touch files; one at a time.
    pub pki: Arc<Mutex<Pki>>,
    /// The certificate new handshakes get; swapped by renewals, imports and resets.
    pub tls: LiveTls,
    /// The file the settings API persists to.
    pub config_path: PathBuf,
    /// The configuration in effect (saved to `config_path`), shared with `settings`, which
    /// alone changes it.
    pub config: Arc<RwLock<Config>>,
    /// Staged settings not yet saved ("restore" discards them), shared with `settings`.
    pub pending: Arc<Mutex<Option<Config>>>,
    /// The runtime-settings use case: stage, restore, factory defaults, apply.
    pub settings: Settings,
    /// The running listeners; the settings API rebinds them without a process restart.
    pub listeners: Listeners,
    /// The recorder's evidence ledgers, once recording runs in this process: an export signs
    /// the chain head through them, so video recorded a moment ago is covered.
    pub evidence: OnceLock<Arc<Evidence>>,
    /// The security-alert webhook sender, when `vigil serve` runs one (the metrics read it).
    pub alert_webhook: OnceLock<Arc<vigil_access::WebhookSink>>,
    /// SIEM forwarding, once it runs in this process (the metrics read it).
    pub siem: OnceLock<vigil_app::metrics::SiemMonitor>,
    /// Live video: the recorders in this process publish into it, the live route subscribes
    /// viewers (`routes/live.rs`).
    pub live: Arc<LiveHub>,
    /// Events: queried and watched through `routes/events.rs`, published by everything.
    pub events: Arc<EventBus>,
    /// Rules, alarms and bookmarks (`routes/alarms.rs`, `routes/rules.rs`); the server runs
    /// its rule task (`Alarms::spawn_rules`).
    pub alarms: Arc<Alarms>,
    /// Nonces of signed analytics posts within their time window (replays are refused, also
    /// after a restart: they are kept in `events.db`).
    pub webhook_nonces: Arc<vigil_app::analytics::Nonces>,
}

/// Why the state could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Pki(#[from] vigil_pki::PkiError),
    #[error("rules, alarms and bookmarks: {0}")]
    Alarms(#[from] AlarmsError),
    #[error("nonces of signed event posts: {0}")]
    Nonces(#[from] vigil_events::StoreError),
}

impl AppState {
    pub fn data_dir(&self) -> PathBuf {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .data_dir
            .clone()
    }

    /// The `[archive]` section in effect: playback, export and verify bring archived video
    /// back through it (`vigil_app::archive::Restore`).
    pub fn archive_config(&self) -> vigil_config::ArchiveConfig {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .archive
            .clone()
    }
}

/// The handle axum passes around.
pub type SharedState = Arc<AppState>;

impl AppState {
    /// Assembles the state from the opened stores; the TLS certificate comes from `pki`, the
    /// rules from `config` (the alarm and bookmark tables live beside `events`' store).
    pub fn new(
        config_path: PathBuf,
        config: Config,
        access: Arc<Access>,
        store: Arc<Store>,
        pki: Pki,
        events: Arc<EventBus>,
    ) -> Result<SharedState, StateError> {
        let tls = pki.live_tls()?;
        let alarms = Alarms::open(events.clone(), access.clone(), &config.rules)?;
        let events_dir = events
            .store()
            .path()
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let webhook_nonces = vigil_app::analytics::Nonces::persistent(
            vigil_events::nonces::NonceStore::open(&events_dir)?,
            vigil_media::store::now_us() / 1_000_000,
        )?;
        let listeners = Listeners::new(access.clone(), tls.clone());
        let settings = Settings::new(config_path.clone(), config, access.clone());
        Ok(Arc::new(AppState {
            access,
            store,
            pki: Arc::new(Mutex::new(pki)),
            tls,
            config_path,
            config: settings.in_effect_handle(),
            pending: settings.pending_handle(),
            settings,
            listeners,
            evidence: OnceLock::new(),
            alert_webhook: OnceLock::new(),
            siem: OnceLock::new(),
            live: Arc::new(LiveHub::new()),
            events,
            alarms,
            webhook_nonces: Arc::new(webhook_nonces),
        }))
    }
}
