//! The web crate's side of the application layer's settings ports: the running listeners
//! and the served certificate, which [`vigil_app::settings::Settings::apply`] changes
//! (docs/design/application-layer.md).

use vigil_app::settings::{
    CertificateError, CertificateRotation, ListenerControl, ListenerError, Rotation,
};
use vigil_config::Config;

use crate::listen::{ApplyReport, ListenError, ListenerPlan, Listeners};
use crate::state::AppState;

impl ListenerControl for Listeners {
    type Plan = ListenerPlan;
    type Report = ApplyReport;

    fn plan(&self, cfg: &Config) -> ListenerPlan {
        ListenerPlan::from_config(cfg)
    }

    async fn apply(&self, plan: &ListenerPlan) -> Result<ApplyReport, ListenerError> {
        Listeners::apply(self, plan).await.map_err(|e| match e {
            e @ ListenError::Bind { .. } => ListenerError::BindFailed(e.to_string()),
            ListenError::Unreachable => ListenerError::Unreachable,
            e @ ListenError::ShutDown => ListenerError::ShutDown(e.to_string()),
            e => ListenerError::Other(e.to_string()),
        })
    }
}

/// The server certificate lives in the PKI; new handshakes get it through the live TLS
/// configuration.
impl CertificateRotation for AppState {
    async fn reissue(&self, hostnames: Vec<String>) -> Result<Rotation, CertificateError> {
        let pki = self.pki.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut pki = pki.lock().unwrap_or_else(|e| e.into_inner());
            pki.set_hostnames(&hostnames, vigil_pki::time::OffsetDateTime::now_utc())
        })
        .await
        .map_err(|e| CertificateError::Other(e.to_string()))?;
        match result {
            Ok(Some(ck)) => {
                self.tls
                    .rotate(ck, vigil_pki::SessionPolicy::Keep)
                    .map_err(|e| CertificateError::Other(e.to_string()))?;
                Ok(Rotation::Reissued)
            }
            // The imported certificate keeps being served; the generated one was reissued.
            Ok(None) => Ok(Rotation::ImportedInUse),
            Err(e @ vigil_pki::PkiError::BadName { .. })
            | Err(e @ vigil_pki::PkiError::BadOption(_)) => {
                Err(CertificateError::BadName(e.to_string()))
            }
            Err(e) => Err(CertificateError::Other(e.to_string())),
        }
    }
}
