//! What to do next, added to an error when the CLI shows it.
//!
//! The libraries' messages say what is wrong; which `vigil` command helps is the CLI's to
//! say (the API names its own routes instead). Each piece of advice follows the message of
//! the typed error it belongs to, wherever that message stands in the shown chain.

use std::error::Error;

use vigil_app::cameras::CameraError;
use vigil_app::export::ExportError;
use vigil_app::runtime::RuntimeError;
use vigil_app::setup::SetupError;
use vigil_app::verify::VerifyError;
use vigil_config::ConfigError;
use vigil_media::evidence::EvidenceError;
use vigil_media::store::StoreError;
use vigil_pki::{ImportError, PkiError};

const LIST_CAMERAS: &str = "; `vigil camera list` shows the configured cameras";

/// `e` as `error: ...` shows it, with advice: each cause after a colon, except a cause whose
/// words its wrapper already said (many errors print their source inside their own message,
/// and `{:#}` would repeat it).
pub fn present(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let said = cause.to_string();
        if text.contains(&said) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&said);
    }
    let mut advised: Vec<String> = Vec::new();
    for cause in e.chain() {
        let mut next: Option<&(dyn Error + 'static)> = Some(cause);
        while let Some(err) = next {
            if let Some(advice) = advice(err) {
                let said = err.to_string();
                if !advised.contains(&said) {
                    text = text.replace(&said, &format!("{said}{advice}"));
                    advised.push(said);
                }
            }
            next = held(err);
        }
    }
    text
}

/// The advice for one error, written to follow its message.
fn advice(e: &(dyn Error + 'static)) -> Option<String> {
    if let Some(ConfigError::Read { .. }) = e.downcast_ref() {
        return Some(". Create one with `vigil init --data-dir DIR`.".into());
    }
    if let Some(e) = e.downcast_ref::<StoreError>() {
        return match e {
            StoreError::NoSuchCamera(_) => Some(LIST_CAMERAS.into()),
            StoreError::NoSecondary(_) => Some(
                "; leave out --secondary for its main stream (`vigil camera list` shows each camera's streams)".into(),
            ),
            StoreError::NotInitialised(dir) => Some(format!(
                "; run `vigil init --data-dir {}` first",
                dir.display()
            )),
            _ => None,
        };
    }
    match e.downcast_ref::<ExportError>() {
        Some(ExportError::NoCamera(_)) => return Some(LIST_CAMERAS.into()),
        Some(ExportError::Empty { camera, .. }) => {
            return Some(format!(
                "; list what exists with `vigil recordings {camera}`"
            ));
        }
        Some(ExportError::Exists(_)) => return Some("; give --force to overwrite it".into()),
        _ => {}
    }
    if let Some(VerifyError::NoCamera(_)) = e.downcast_ref() {
        return Some(LIST_CAMERAS.into());
    }
    if let Some(EvidenceError::Key { .. }) = e.downcast_ref() {
        return Some(
            "; run `vigil init` for this data directory or restore keys/signing from backup".into(),
        );
    }
    if let Some(ImportError::NotForPendingCsr { .. }) = e.downcast_ref() {
        return Some(NOT_FOR_PENDING_CSR.into());
    }
    match e.downcast_ref::<PkiError>()? {
        PkiError::NotInitialized { .. } => {
            Some(": run `vigil init` first (it creates the certificate authority)".into())
        }
        PkiError::Corrupt { .. } => {
            Some(": restore it from backup or re-run `vigil init` in an empty directory".into())
        }
        PkiError::NoPendingCsr => Some(
            ": run `vigil pki csr --cn NAME` first, send the CSR to your CA, then install the \
             certificate it returns"
                .into(),
        ),
        PkiError::Import(ImportError::NotForPendingCsr { .. }) => Some(NOT_FOR_PENDING_CSR.into()),
        _ => None,
    }
}

const NOT_FOR_PENDING_CSR: &str =
    ". Submit the CSR from `vigil pki csr` and install the certificate issued for it";

/// The library error an application-layer error holds without offering it as its source
/// (its message stands inside the wrapper's).
fn held<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a (dyn Error + 'static)> {
    if let Some(e) = e.downcast_ref::<SetupError>() {
        return match e {
            SetupError::Store(s) => Some(s),
            SetupError::Pki(p) => Some(p),
            _ => None,
        };
    }
    if let Some(e) = e.downcast_ref::<RuntimeError>() {
        return match e {
            RuntimeError::Recovery(s) => Some(s),
            RuntimeError::Keys(k) => Some(k),
            _ => None,
        };
    }
    if let Some(ExportError::Store(s)) = e.downcast_ref() {
        return Some(s);
    }
    if let Some(CameraError::Store(s)) = e.downcast_ref() {
        return Some(s);
    }
    if let Some(VerifyError::Store(s)) = e.downcast_ref() {
        return Some(s);
    }
    if let Some(PkiError::Import(i)) = e.downcast_ref() {
        return Some(i);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_follows_the_message_it_belongs_to_wherever_it_stands() {
        let e = anyhow::Error::new(StoreError::NoSuchCamera("door".into()));
        assert_eq!(
            present(&e),
            "no camera named 'door'; `vigil camera list` shows the configured cameras"
        );
        // Held inside an application error's message, and shown once per place.
        let e = anyhow::Error::new(VerifyError::Store(StoreError::NotInitialised(
            "/srv/v".into(),
        )))
        .context("verifying");
        assert_eq!(
            present(&e),
            "verifying: data directory /srv/v is not initialised; run `vigil init --data-dir \
             /srv/v` first"
        );
        // A source whose message its wrapper already holds is not said twice.
        let e = anyhow::Error::new(ConfigError::Read {
            path: "/etc/vigil.toml".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
        assert_eq!(
            present(&e),
            "cannot read config file /etc/vigil.toml: entity not found. Create one with `vigil \
             init --data-dir DIR`."
        );
        let e = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::NotFound))
            .context("cannot read x.pem: entity not found")
            .context("importing");
        assert_eq!(
            present(&e),
            "importing: cannot read x.pem: entity not found"
        );
        let e = anyhow::Error::new(PkiError::Import(ImportError::NotForPendingCsr {
            subject: "CN=x".into(),
        }));
        assert!(
            present(&e).ends_with(
                "different key. Submit the CSR from `vigil pki csr` and install the certificate \
                 issued for it"
            ),
            "{}",
            present(&e)
        );
        let plain = anyhow::anyhow!("something else");
        assert_eq!(present(&plain), "something else");
    }
}
