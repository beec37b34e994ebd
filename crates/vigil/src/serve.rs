//! `vigil serve` and `vigil demo`: assembles a server from the recording runtime
//! (`vigil_app::runtime`) and the HTTPS API, runs certificate maintenance, serves the REST API
//! on threads of its own (`vigil_web::workers`), prints what happens, and shuts down cleanly
//! on SIGINT/SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use vigil_app::runtime::{self, LiveConfig, RuntimeEvent, RuntimeOptions};
use vigil_config::Config;
use vigil_media::datadir_lock::DataDirLock;
use vigil_media::evidence::Signing;
use vigil_media::store::{NewCamera, Store};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Keep the demo's data here instead of a fresh temporary directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Stop by itself after this long (e.g. 30s); default: run until Ctrl-C.
    #[arg(long, value_parser = vigil_config::parse_duration)]
    pub duration: Option<Duration>,
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Roles to run: all (one box, the default), management (API, web client, events,
    /// recording servers join here; records nothing) or recording (records its cameras,
    /// reports to the management server it joined; no web client). Overrides `role` in
    /// vigil.toml (docs/cluster.md).
    #[arg(long, value_parser = parse_role)]
    pub role: Option<vigil_config::Role>,
}

fn parse_role(text: &str) -> Result<vigil_config::Role, String> {
    text.parse()
}

pub fn run_serve(config: &Path, args: &ServeArgs) -> anyhow::Result<()> {
    // SIGTERM and SIGINT are caught from the first moment: one that arrives while the server
    // is still starting stops it cleanly once it runs, instead of killing it half-started.
    let runtime = ingest_runtime()?;
    let shutdown = {
        let _context = runtime.enter();
        shutdown_signal()?
    };
    let mut cfg = Config::load(config)?;
    if let Some(role) = args.role {
        cfg.role = role;
        cfg.validate()
            .map_err(|m| anyhow::anyhow!("{}: with --role {role}: {m}", config.display()))?;
    }
    let store = Arc::new(Store::open(&cfg.data_dir)?);
    let _lock = lock_data_dir(&cfg.data_dir, "serve")?;
    match cfg.role {
        vigil_config::Role::All => {}
        vigil_config::Role::Recording => return serve_recording(cfg, store, &runtime, shutdown),
        vigil_config::Role::Management => {
            if !cfg.management.enabled {
                anyhow::bail!(
                    "role management needs [management] enabled = true in {}",
                    config.display()
                );
            }
        }
    }
    let web = Web::start(config, &cfg, store.clone(), None)?;
    let inputs = match EventInputs::start(&cfg, &web) {
        Ok(i) => i,
        Err(e) => {
            web.stop();
            return Err(e);
        }
    };
    let result = if cfg.role == vigil_config::Role::Management {
        // Recording servers join and report here; this process records nothing.
        let started = web
            .runtime
            .block_on(vigil_app::cluster::ManagementServer::start(
                &cfg,
                Some(store.clone()),
                Some(web.state.access.clone()),
                Some(web.state.events.clone()),
            ));
        match started {
            Ok(inter) => {
                println!(
                    "Inter-server API (mutual TLS) listening on {}",
                    inter.local_addr()
                );
                println!("Management role only: no camera is recorded by this server");
                runtime.block_on(shutdown);
                web.runtime.block_on(inter.shutdown());
                println!("Stopped cleanly");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    } else {
        let live = web.live_config();
        runtime.block_on(serve(
            cfg,
            store,
            shutdown,
            Some(live),
            Some(web.state.clone()),
        ))
    };
    if let Some(i) = inputs {
        i.stop();
    }
    web.stop();
    result
}

/// The recording role on its own: the cameras of this data directory, the inter-server API
/// (mutual TLS) and heartbeats to the management server it joined; no web client, events
/// inputs or metrics listener (docs/cluster.md).
fn serve_recording(
    cfg: Config,
    store: Arc<Store>,
    runtime: &tokio::runtime::Runtime,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    if !cfg.recording.enabled {
        anyhow::bail!("role recording needs [recording] enabled = true");
    }
    vigil_app::setup::ensure_keys(&cfg)?;
    runtime.block_on(async {
        let member =
            vigil_app::cluster::RecordingMember::start(&cfg, store.clone(), crate::VERSION).await?;
        println!(
            "Recording server {} API (mutual TLS) listening on {}",
            member.name,
            member.local_addr()
        );
        let result = serve(cfg, store, shutdown, None, None).await;
        member.shutdown().await;
        result
    })
}

/// The events role's listeners (`vigil_intake`: syslog and generic events over TLS, opt-in
/// plaintext), publishing on the API's event bus. They run on a runtime of their own, so a
/// flood of events or handshakes takes no time from recording or the API; their TLS serves
/// the management certificate (renewals included) and takes client certificates of the
/// Vigil CA (docs/events-in.md).
pub struct EventInputs {
    runtime: tokio::runtime::Runtime,
    intake: vigil_intake::Intake,
}

impl EventInputs {
    /// Binds every configured input before recording starts; `None` when the events role is
    /// disabled.
    pub fn start(cfg: &Config, web: &Web) -> anyhow::Result<Option<EventInputs>> {
        let settings =
            vigil_intake::Settings::from_config(&cfg.events).map_err(anyhow::Error::msg)?;
        if settings.bind.is_empty() {
            return Ok(None);
        }
        let ca = web
            .state
            .pki
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ca_cert_der()
            .clone();
        let tls = vigil_intake::Tls {
            live: web.state.tls.clone(),
            ca,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("vigil-events-in")
            .enable_all()
            .build()?;
        let intake = runtime.block_on(vigil_intake::Intake::start(
            settings,
            Some(tls),
            web.state.events.clone(),
            // Checked with the file's lines when the configuration was read.
            Arc::new(
                vigil_config::camera_ports::camera_map(&cfg.events.camera_ports, &|_| {
                    String::new()
                })
                .map_err(anyhow::Error::msg)?,
            ),
        ))?;
        for (input, addr) in intake.addrs() {
            if input.is_tls() {
                println!("Events ({}) listening on {addr}", input.as_str());
            } else {
                println!(
                    "WARNING: events ({}) listening on {addr} in PLAINTEXT (allowed_sources only)",
                    input.as_str()
                );
            }
        }
        Ok(Some(EventInputs { runtime, intake }))
    }

    /// Closes the listeners and their connections (before the bus closes).
    pub fn stop(self) {
        let EventInputs { runtime, intake } = self;
        runtime.block_on(intake.shutdown());
        runtime.shutdown_timeout(Duration::from_secs(2));
    }
}

/// Takes the data directory for this process until it exits, before anything binds or
/// records: a second recorder would interleave its records with ours in every camera's
/// evidence ledger.
pub fn lock_data_dir(data_dir: &Path, command: &str) -> anyhow::Result<DataDirLock> {
    let lock = DataDirLock::acquire(data_dir, command)?;
    if let Some(previous) = lock.previous_holder() {
        tracing::warn!(%previous, "the previous process on this data directory did not shut down cleanly; recovering");
    }
    Ok(lock)
}

/// The management role's API: its own runtime, so a burst of API requests or TLS handshakes
/// cannot delay video ingest, and ingest's one-worker tuning does not cap the API.
pub struct Web {
    runtime: tokio::runtime::Runtime,
    state: vigil_web::SharedState,
    webhook: Option<Arc<vigil_access::WebhookSink>>,
    /// Ends the event upkeep (audit feed, event retention), which then runs a last pass.
    upkeep: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
    /// Ends the rule task (docs/rules-and-alarms.md), which then runs what it queued.
    rules: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
    /// The metrics role's loopback listener (docs/metrics.md), when `[metrics] enabled`.
    metrics: Option<vigil_web::metrics::MetricsListener>,
}

impl Web {
    /// Opens the access database and PKI and binds every management listener before any
    /// recording starts; a listener that cannot bind stops the start with a clear message.
    /// `plan` overrides the configured listeners (the demo binds to loopback).
    pub fn start(
        config_path: &Path,
        cfg: &Config,
        store: Arc<Store>,
        plan: Option<vigil_web::ListenerPlan>,
    ) -> anyhow::Result<Web> {
        let access_config = vigil_app::access_settings::access_config(cfg)
            .with_context(|| format!("{}", config_path.display()))?;
        let (sink, webhook) = vigil_app::access_settings::alert_sink(cfg)
            .with_context(|| format!("{}", config_path.display()))?;
        let access = Arc::new(
            vigil_access::Access::open_target_with(
                &vigil_app::database::target(cfg)
                    .with_context(|| format!("{}", config_path.display()))?,
                access_config,
                Arc::new(vigil_access::SystemClock),
                sink,
            )
            .context("cannot open the access database")?,
        );
        // Blocks that last "until restart" end here, like on the camera.
        access.begin_server_run()?;
        vigil_app::setup::ensure_keys(cfg)?;
        let pki = vigil_pki::Pki::open(&cfg.data_dir.join("pki"))?;
        // Starts the listeners and runs certificate maintenance; accepting and serving
        // connections (settings changes included) happens on `vigil_web::workers`' threads.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("vigil-web-control")
            .enable_all()
            .build()?;
        let events = vigil_events::EventStore::open(&cfg.data_dir)
            .context("cannot open the event database")?;
        let bus = vigil_events::EventBus::start(
            Arc::new(events),
            &vigil_app::export::server_name(&cfg.management.hostnames),
        )?;
        let state = vigil_web::AppState::new(
            config_path.to_owned(),
            cfg.clone(),
            access.clone(),
            store,
            pki,
            bus.clone(),
        )?;
        if let Some(w) = &webhook {
            let _ = state.alert_webhook.set(w.clone());
        }
        let upkeep = {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = runtime.spawn(vigil_app::events::run_event_upkeep(access, bus, async {
                let _ = stopped.await;
            }));
            Some((stop, task))
        };
        // Alarm e-mail: a server that cannot be used is said once; the rules' other actions
        // and recording go on.
        let hello = cfg
            .management
            .hostnames
            .first()
            .cloned()
            .unwrap_or_default();
        if let Err(e) = state.alarms.start_mail(&cfg.smtp, &hello) {
            tracing::error!(error = %e, "alarm e-mail cannot start; rules' e-mail actions are skipped");
            eprintln!("warning: alarm e-mail cannot start: {e}");
        }
        let rules = {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let _guard = runtime.enter();
            let task = state.alarms.spawn_rules(async {
                let _ = stopped.await;
            });
            Some((stop, task))
        };
        // The demo (which passes a plan) serves no metrics: its port could collide with a
        // server's on the same host.
        let serve_metrics = plan.is_none() && cfg.metrics.enabled;
        let report = runtime.block_on(async {
            match plan {
                Some(plan) => {
                    let (router, _) = vigil_web::app(state.clone());
                    state.listeners.install_router(router);
                    state.listeners.apply(&plan).await
                }
                None => vigil_web::start(&state).await,
            }
        })?;
        for l in &report.started {
            println!("Web client and API listening on {l}");
        }
        let metrics = if serve_metrics {
            let m = runtime.block_on(vigil_web::metrics::MetricsListener::start(
                state.clone(),
                cfg.metrics.bind,
            ));
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    runtime.block_on(state.listeners.shutdown());
                    return Err(e.into());
                }
            };
            println!(
                "Metrics (Prometheus, loopback only) on http://{}/metrics",
                m.local_addr()
            );
            Some(m)
        } else {
            None
        };
        // Renew the generated server certificate 30 days ahead (swapped in live) and alert
        // at 30/14/7/1 days for every certificate in use.
        {
            let _guard = runtime.enter();
            vigil_web::maintenance::spawn_certificate_maintenance(
                state.clone(),
                Duration::from_secs(6 * 3600),
            );
        }
        Ok(Web {
            runtime,
            state,
            webhook,
            upkeep,
            rules,
            metrics,
        })
    }

    /// The configuration in effect, as changed at runtime through the settings API.
    pub fn live_config(&self) -> LiveConfig {
        let state = self.state.clone();
        Arc::new(move || {
            state
                .config
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        })
    }

    /// The addresses actually bound.
    pub fn local_addrs(&self) -> Vec<(vigil_web::Scheme, std::net::SocketAddr)> {
        self.runtime.block_on(self.state.listeners.local_addrs())
    }

    pub fn stop(mut self) {
        if let Some(m) = self.metrics.take() {
            self.runtime.block_on(m.shutdown());
        }
        self.runtime.block_on(self.state.listeners.shutdown());
        if let Some((stop, task)) = self.upkeep.take() {
            let _ = stop.send(());
            let _ = self.runtime.block_on(task);
        }
        if let Some((stop, task)) = self.rules.take() {
            let _ = stop.send(());
            let _ = self.runtime.block_on(task);
        }
        self.state.events.close();
        if let Some(w) = &self.webhook {
            let s = w.stats();
            tracing::info!(
                sent = s.sent,
                failed = s.failed,
                dropped = s.dropped,
                "webhook deliveries"
            );
            w.shutdown();
        }
        self.runtime.shutdown_timeout(Duration::from_secs(2));
    }
}

/// The server's async runtime. Ingest is I/O-bound (64 cameras use about a tenth of a core),
/// and every extra worker thread costs wake-ups on each packet (work stealing), so one worker
/// per two cores is plenty; disk work runs on the writer threads and the blocking pool.
fn ingest_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads((cores / 2).max(1))
        .enable_all()
        .build()
}

/// Catches SIGINT and SIGTERM from now on (call it inside a runtime context) and returns what
/// resolves on the first of them, also one that arrived before it is awaited.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

/// Runs the recording runtime until `shutdown` resolves, printing what it does. With `live`,
/// retention follows settings changed at runtime; with `api`, the API's exports sign through
/// the recorders' ledgers.
pub async fn serve(
    cfg: Config,
    store: Arc<Store>,
    shutdown: impl std::future::Future<Output = ()>,
    live: Option<LiveConfig>,
    api: Option<vigil_web::SharedState>,
) -> anyhow::Result<()> {
    let opts = RuntimeOptions {
        signing: signing_mode(),
        live,
        // The API's live route and the recorders share one hub: one ingest per camera feeds
        // every viewer.
        live_video: api.as_ref().map(|api| api.live.clone()),
        events: api.as_ref().map(|api| api.events.clone()),
        access: api.as_ref().map(|api| api.access.clone()),
        on_siem: api.clone().map(|api| {
            Box::new(move |monitor: vigil_app::metrics::SiemMonitor| {
                let _ = api.siem.set(monitor);
            }) as Box<dyn FnOnce(_) + Send>
        }),
        on_evidence: api.map(|api| {
            Box::new(move |evidence: Arc<vigil_media::evidence::Evidence>| {
                // Rules' evidence locks sign through the same ledgers.
                api.alarms
                    .attach_recording(api.store.clone(), evidence.clone());
                let _ = api.evidence.set(evidence);
            }) as Box<dyn FnOnce(_) + Send>
        }),
        on_event: Arc::new(print_event),
    };
    runtime::run(cfg, store, shutdown, opts).await?;
    Ok(())
}

fn print_event(event: RuntimeEvent) {
    match event {
        RuntimeEvent::Recovered(report) => println!(
            "Recovery: {} segments checked, {} GOPs re-indexed, {} bytes of torn data truncated, {} orphan files removed, {} adopted",
            report.segments_checked,
            report.gops_reindexed,
            report.bytes_truncated,
            report.orphans_removed,
            report.orphans_adopted
        ),
        RuntimeEvent::FloorUnreachable(warning) => eprintln!("warning: {warning}"),
        RuntimeEvent::CameraStarted {
            name,
            url,
            live_only: false,
        } => println!("Recording camera {name} from {url}"),
        RuntimeEvent::CameraStarted {
            name,
            url,
            live_only: true,
        } => println!("Live view of camera {name} from {url} (not recorded)"),
        RuntimeEvent::CameraStopped { name } => println!("Stopping camera {name}"),
        RuntimeEvent::ShuttingDown => {
            println!("Shutting down: finishing current GOPs and closing files")
        }
        RuntimeEvent::Stopped => println!("Stopped cleanly"),
    }
}

/// `VIGIL_BENCH_UNSIGNED=1` turns signing off so `bench/signing` can measure its cost; it
/// says so loudly because such recordings cannot be verified.
fn signing_mode() -> Signing {
    if std::env::var_os("VIGIL_BENCH_UNSIGNED").is_some_and(|v| v == "1") {
        tracing::warn!("VIGIL_BENCH_UNSIGNED=1: recording WITHOUT signatures (benchmark only)");
        eprintln!("WARNING: signing disabled by VIGIL_BENCH_UNSIGNED=1 (benchmark only)");
        Signing::OffForBenchmark
    } else {
        Signing::On
    }
}

pub fn run_demo(args: &DemoArgs) -> anyhow::Result<()> {
    let runtime = ingest_runtime()?;
    let signals = {
        let _context = runtime.enter();
        shutdown_signal()?
    };
    let (_tmp, data_dir) = match &args.data_dir {
        Some(d) => (None, d.clone()),
        None => {
            let t = tempfile::Builder::new().prefix("vigil-demo-").tempdir()?;
            let p = t.path().to_owned();
            (Some(t), p)
        }
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    // Before anything else: a demo on a directory in use would otherwise pick another port
    // and record into the same ledgers.
    let _lock = lock_data_dir(&data_dir, "demo")?;
    let config_path = data_dir.join("vigil.toml");
    let fresh = !config_path.exists();
    let mut cfg = if fresh {
        crate::init_cmd::init(&data_dir, &config_path, false)?
    } else {
        Config::load(&config_path)?
    };
    // The demo records only; keep its segments short so a short run shows rotation.
    cfg.storage.segment_seconds = 10;
    println!("Vigil demo");
    println!("  data directory: {}", cfg.data_dir.display());
    println!("  configuration:  {}", config_path.display());
    if fresh {
        crate::init_cmd::create_first_admin(&cfg, "admin", None)?;
    }
    let store = Arc::new(Store::open(&cfg.data_dir)?);
    // The demo's API listens on loopback only; 8443 if free, else any free port.
    let loopback = |port: u16| vigil_web::ListenerPlan {
        https: vec![std::net::SocketAddr::from(([127, 0, 0, 1], port))],
        http: Vec::new(),
    };
    let web = match Web::start(&config_path, &cfg, store.clone(), Some(loopback(8443))) {
        Ok(w) => w,
        Err(_) => Web::start(&config_path, &cfg, store.clone(), Some(loopback(0)))?,
    };
    if let Some((_, addr)) = web.local_addrs().first() {
        println!("  web client:     https://{addr}/ (sign in as admin with the password above)");
        println!(
            "  API:            https://{addr}/api/v1/openapi.json (trust the CA: vigil --config {} pki ca-cert)",
            config_path.display()
        );
    }
    let live = web.live_config();
    let result = runtime.block_on(async {
        let camera = vigil_samplecam::SampleCamera::start(
            "127.0.0.1:0".parse().expect("static address"),
            vigil_samplecam::SampleCameraOptions::default(),
        )
        .await
        .context("cannot start the built-in sample camera")?;
        let url = camera.url();
        println!("  sample camera:  {url} (built-in H.264 clip, looped)");
        // A previous demo run in the same directory left the camera with a port that is
        // gone: point it at this run's port, keeping its id so the earlier recordings stay
        // listed and exportable under the same name.
        match store.camera("sample") {
            Ok(_) => {
                store.set_camera_url("sample", &url)?;
            }
            Err(vigil_media::store::StoreError::NoSuchCamera(_)) => {
                store.add_camera(&NewCamera {
                    name: "sample".into(),
                    url: url.clone(),
                    ..Default::default()
                })?;
            }
            Err(e) => return Err(e.into()),
        }
        let status_store = store.clone();
        let reporter = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            tick.tick().await;
            loop {
                tick.tick().await;
                let Ok(cam) = status_store.camera("sample") else {
                    continue;
                };
                let status = status_store.status(&cam.id).ok().flatten();
                let recorded: f64 = status_store
                    .ranges(&cam.id, 0, i64::MAX / 2)
                    .map(|r| r.iter().map(|(s, e)| (e - s) as f64 / 1e6).sum())
                    .unwrap_or(0.0);
                if let Some(s) = status {
                    println!(
                        "  camera sample: {} {:.0} kbit/s {:.1} fps, {:.0} s recorded{}",
                        s.state,
                        s.bitrate_bps / 1000.0,
                        s.fps,
                        recorded,
                        s.last_error.map(|e| format!(" ({e})")).unwrap_or_default()
                    );
                }
            }
        });
        println!("Recording. Try, in another shell:");
        println!("  vigil --config {} camera status", config_path.display());
        println!(
            "  vigil --config {} export sample --from -30s --to now -o demo.mp4",
            config_path.display()
        );
        let duration = args.duration;
        let stop = async move {
            match duration {
                Some(d) => {
                    tokio::select! { _ = tokio::time::sleep(d) => {}, _ = signals => {} }
                }
                None => signals.await,
            }
        };
        let result = serve(
            cfg.clone(),
            store.clone(),
            stop,
            Some(live),
            Some(web.state.clone()),
        )
        .await;
        reporter.abort();
        camera.shutdown().await;
        let cam = store.camera("sample")?;
        let ranges = store.ranges(&cam.id, 0, i64::MAX / 2)?;
        let secs: f64 = ranges.iter().map(|(s, e)| (e - s) as f64 / 1e6).sum();
        let frames: i64 = store.segments(&cam.id)?.iter().map(|s| s.frames).sum();
        println!(
            "Demo recorded {secs:.1} s ({frames} frames) in {} range(s)",
            ranges.len()
        );
        result
    });
    web.stop();
    result?;
    if args.data_dir.is_none() {
        println!("The temporary data directory is removed now; pass --data-dir to keep it.");
    }
    Ok(())
}
