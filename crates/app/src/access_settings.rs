//! Translates the `[access]` section of `vigil.toml` (plain config types) into the access
//! library's settings: session lifetimes, intrusion detection and the webhook alert sink.

use std::sync::Arc;

use vigil_access::{
    AccessConfig, AlertSink, BlockPolicy, IdsConfig, MultiSink, SessionConfig, TracingSink,
    WebhookConfig, WebhookSink,
};
use vigil_config::{BlockSetting, Config, WebhookSettings};

#[derive(Debug, thiserror::Error)]
pub enum AccessSettingsError {
    #[error("access.ids.allow_list: {0}")]
    AllowList(#[from] vigil_access::AllowListError),
    #[error("access.ids: {0}")]
    Ids(#[from] vigil_access::IdsConfigError),
    #[error("access.webhook: {0}")]
    Webhook(#[from] vigil_access::WebhookError),
    #[error(
        "access.webhook.{field}: cannot read {path}: {source}; check the path and its permissions"
    )]
    WebhookFile {
        field: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Session lifetimes from the configuration.
pub fn session_config(cfg: &Config) -> SessionConfig {
    SessionConfig {
        idle_timeout: cfg.access.session_idle_timeout,
        absolute_lifetime: cfg.access.session_absolute_lifetime,
        ..SessionConfig::default()
    }
}

/// Intrusion-detection settings from the configuration.
pub fn ids_config(cfg: &Config) -> Result<IdsConfig, AccessSettingsError> {
    let s = &cfg.access.ids;
    let ids = IdsConfig {
        notification_threshold: s.notification_threshold,
        timeout: s.timeout,
        deadtime: s.deadtime,
        block: match s.block {
            BlockSetting::Off => BlockPolicy::Off,
            BlockSetting::UntilRestart => BlockPolicy::UntilRestart,
            BlockSetting::For(d) => BlockPolicy::For(d),
        },
        allow_list: vigil_access::parse_allow_list(&s.allow_list)?,
        ..IdsConfig::default()
    };
    ids.validate()?;
    Ok(ids)
}

/// Session and intrusion-detection settings from the configuration.
pub fn access_config(cfg: &Config) -> Result<AccessConfig, AccessSettingsError> {
    Ok(AccessConfig {
        session: session_config(cfg),
        ids: ids_config(cfg)?,
        ..AccessConfig::default()
    })
}

/// The webhook sink's settings, with the secret and CA read from their files.
pub fn webhook_config(
    w: &WebhookSettings,
    server_name: Option<String>,
) -> Result<WebhookConfig, AccessSettingsError> {
    let read = |field: &'static str, path: &std::path::Path| {
        std::fs::read_to_string(path).map_err(|source| AccessSettingsError::WebhookFile {
            field,
            path: path.to_owned(),
            source,
        })
    };
    let mut config = WebhookConfig::new(w.url.clone());
    config.secret = w
        .secret_file
        .as_deref()
        .map(|p| read("secret_file", p).map(|s| s.trim().to_owned()))
        .transpose()?;
    config.ca_pem = w
        .ca_file
        .as_deref()
        .map(|p| read("ca_file", p))
        .transpose()?;
    config.allow_plaintext_http = w.allow_plaintext_http;
    config.server_name = server_name;
    config.validate()?;
    Ok(config)
}

/// The sink intrusion alerts go to, and the webhook part of it (for its delivery counters).
pub type AlertSinks = (Arc<dyn AlertSink>, Option<Arc<WebhookSink>>);

/// Where intrusion alerts go: always the log, plus the webhook when configured.
pub fn alert_sink(cfg: &Config) -> Result<AlertSinks, AccessSettingsError> {
    let Some(w) = &cfg.access.webhook else {
        return Ok((Arc::new(TracingSink), None));
    };
    let server = cfg.management.hostnames.first().cloned();
    let sink = Arc::new(WebhookSink::start(webhook_config(w, server)?)?);
    let multi: Arc<dyn AlertSink> = Arc::new(MultiSink(vec![
        Arc::new(TracingSink),
        sink.clone() as Arc<dyn AlertSink>,
    ]));
    Ok((multi, Some(sink)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_map_to_the_library_defaults() {
        let cfg = Config::with_data_dir("/d");
        let a = access_config(&cfg).unwrap();
        assert_eq!(a.session, SessionConfig::default());
        assert_eq!(a.ids, IdsConfig::default());
    }

    #[test]
    fn bad_allow_list_and_webhook_files_are_named() {
        let mut cfg = Config::with_data_dir("/d");
        cfg.access.ids.allow_list = vec!["10.0.0.0/99".into()];
        let e = access_config(&cfg).unwrap_err().to_string();
        assert!(e.contains("allow_list"), "{e}");
        let w = WebhookSettings {
            url: "https://alerts.example.net/x".into(),
            secret_file: Some("/nonexistent/secret".into()),
            ..Default::default()
        };
        let e = webhook_config(&w, None).unwrap_err().to_string();
        assert!(
            e.contains("secret_file") && e.contains("/nonexistent/secret"),
            "{e}"
        );
        let w = WebhookSettings {
            url: "http://alerts.example.net/x".into(),
            ..Default::default()
        };
        assert!(
            webhook_config(&w, None).is_err(),
            "plaintext webhook must be refused"
        );
    }
}
