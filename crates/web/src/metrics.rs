//! The metrics role's listener: `GET /metrics` in the Prometheus text format on a loopback
//! address, plain HTTP without authentication (docs/metrics.md, docs/security-model.md). The
//! figures come from `vigil_app::metrics`; this module only binds, routes and answers.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vigil_app::metrics::{CONTENT_TYPE, Sources, collect};

use crate::{ApiError, SharedState};

/// Why the metrics listener did not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsListenError {
    /// Configuration validation refuses this too; checked again here so no caller can open
    /// the unauthenticated listener to the network.
    #[error("the metrics listener must bind a loopback address, not {0}")]
    NotLoopback(SocketAddr),
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running metrics listener; [`MetricsListener::shutdown`] stops it.
pub struct MetricsListener {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl MetricsListener {
    /// Binds `bind` (loopback only) and serves on the current runtime.
    pub async fn start(
        state: SharedState,
        bind: SocketAddr,
    ) -> Result<MetricsListener, MetricsListenError> {
        if !bind.ip().is_loopback() {
            return Err(MetricsListenError::NotLoopback(bind));
        }
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|source| MetricsListenError::Bind { addr: bind, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| MetricsListenError::Bind { addr: bind, source })?;
        let (stop, stopped) = oneshot::channel::<()>();
        let router = Router::new()
            .route("/metrics", get(scrape))
            .with_state(state);
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "metrics listener failed");
            }
        });
        Ok(MetricsListener {
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for open scrapes to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Reading the figures queries SQLite, so it runs on the blocking pool.
async fn scrape(State(state): State<SharedState>) -> Response {
    let collected = tokio::task::spawn_blocking(move || {
        let mail = state.alarms.mail();
        let mut webhooks = Vec::new();
        if let Some(alerts) = state.alert_webhook.get() {
            webhooks.push(vigil_app::metrics::WebhookFigures::of("alerts", alerts));
        }
        webhooks.extend(state.alarms.webhook_figures());
        collect(
            &Sources {
                store: &state.store,
                access: Some(&state.access),
                pki: Some(&state.pki),
                events: Some(&state.events),
                evidence: state.evidence.get().map(|e| &**e),
                siem: state.siem.get(),
                mail: mail.as_deref().map(|m| m.stats()),
                rules: Some(state.alarms.stats()),
                webhooks: &webhooks,
            },
            vigil_media::store::now_us(),
        )
    })
    .await;
    match collected {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot collect metrics");
            ApiError::from_app(e).into_response()
        }
        Err(e) => ApiError::internal(format!("metrics collection failed: {e}")).into_response(),
    }
}
