//! Alarm e-mail as the rules send it: the sink's settings from `[smtp]` (files read, the
//! password file's mode checked) and the message a rule's match becomes
//! (docs/rules-and-alarms.md, "E-mail").

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vigil_config::{SmtpConfig, SmtpTls};
use vigil_events::Event;
use vigil_mail::{Mail, MailSettings, TlsMode};
use zeroize::Zeroizing;

/// Why `[smtp]` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MailSetupError {
    #[error("`smtp.server` {0}")]
    Server(String),
    #[error("`smtp.from` is missing: give the sender as \"vigil@example.net\"")]
    NoSender,
    #[error("cannot read `smtp.{field}` {}: {source}", path.display())]
    File {
        field: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "`smtp.password_file` {} can be read by other users (mode {mode:o}): run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    OpenPasswordFile { path: PathBuf, mode: u32 },
    #[error("`smtp.password_file` {} is empty", path.display())]
    EmptyPassword { path: PathBuf },
    #[error("{0}")]
    Sink(#[from] vigil_mail::MailError),
}

fn read(field: &'static str, path: &Path) -> Result<Vec<u8>, MailSetupError> {
    std::fs::read(path).map_err(|source| MailSetupError::File {
        field,
        path: path.to_owned(),
        source,
    })
}

/// The sink's settings, or `None` when no server is configured. `hello_name` is the name
/// Vigil greets the server with (the management host name).
pub fn mail_settings(
    smtp: &SmtpConfig,
    hello_name: &str,
) -> Result<Option<MailSettings>, MailSetupError> {
    let Some(hp) = smtp.host_port() else {
        return Ok(None);
    };
    let (host, port) = hp.map_err(MailSetupError::Server)?;
    let from = smtp.from.clone().ok_or(MailSetupError::NoSender)?;
    let ca_pem = smtp
        .ca_file
        .as_deref()
        .map(|p| read("ca_file", p))
        .transpose()?;
    let login = match (&smtp.username, &smtp.password_file) {
        (Some(user), Some(path)) => {
            let meta = std::fs::metadata(path).map_err(|source| MailSetupError::File {
                field: "password_file",
                path: path.clone(),
                source,
            })?;
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(MailSetupError::OpenPasswordFile {
                    path: path.clone(),
                    mode,
                });
            }
            let bytes = Zeroizing::new(read("password_file", path)?);
            let password = Zeroizing::new(
                String::from_utf8_lossy(&bytes)
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
            );
            if password.is_empty() {
                return Err(MailSetupError::EmptyPassword { path: path.clone() });
            }
            Some((user.clone(), password))
        }
        _ => None,
    };
    Ok(Some(MailSettings {
        server_name: smtp.server_name.clone().unwrap_or_else(|| host.clone()),
        host,
        port,
        tls: match smtp.tls {
            SmtpTls::Starttls => TlsMode::StartTls,
            SmtpTls::Implicit => TlsMode::Implicit,
        },
        ca_pem,
        login,
        from,
        hello_name: if hello_name.is_empty() {
            "localhost".into()
        } else {
            hello_name.to_owned()
        },
        retry_after: [Duration::from_secs(5), Duration::from_secs(30)],
    }))
}

/// The e-mail a rule's match sends: the subject says what and where in one line, the body
/// every field of the event.
pub fn rule_mail(
    server: &str,
    rule: &str,
    e: &Event,
    alarm_id: Option<i64>,
    to: &[String],
) -> Mail {
    let ev = &e.event;
    let place = ev
        .camera
        .as_deref()
        .map(|c| format!(" on camera {c}"))
        .unwrap_or_else(|| format!(" from {}", ev.source.name));
    let subject: String = format!(
        "[Vigil {server}] {}: {}{place} (rule {rule})",
        ev.severity.as_str(),
        ev.kind
    )
    .chars()
    .filter(|c| !c.is_control())
    .take(200)
    .collect();
    let mut body = format!(
        "Rule {rule} matched an event on Vigil server {server}.\n\n\
         Event:    {kind} (id {id})\n\
         Time:     {time}\n\
         Severity: {severity} ({category})\n\
         Source:   {source_kind} {source}\n",
        kind = ev.kind,
        id = e.id,
        time = vigil_signing::fmt_time(ev.time_us),
        severity = ev.severity.as_str(),
        category = ev.category.as_str(),
        source_kind = ev.source.kind.as_str(),
        source = ev.source.name,
    );
    if let Some(c) = &ev.camera {
        body.push_str(&format!("Camera:   {c}\n"));
    }
    if let Some(id) = alarm_id {
        body.push_str(&format!(
            "Alarm:    {id} (acknowledge or close it on the Events page of the web client)\n"
        ));
    }
    body.push_str(&format!("\n{}\n", ev.message));
    if !ev.attributes.is_empty() {
        body.push_str("\nAttributes:\n");
        for (k, v) in &ev.attributes {
            body.push_str(&format!("  {k}: {v}\n"));
        }
    }
    Mail {
        to: to.to_vec(),
        subject,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use vigil_events::{Category, NewEvent, Severity, Source, SourceKind};

    #[test]
    fn a_match_becomes_one_line_of_subject_and_every_field_in_the_body() {
        let e = Event {
            id: 42,
            received_us: 1,
            event: NewEvent {
                time_us: 1_700_000_000_000_000,
                source: Source::new(SourceKind::Syslog, "sw-3"),
                kind: "syslog.dot1x_failure".into(),
                category: Category::Security,
                severity: Severity::Warning,
                message: "802.1X failed on Gi1/0/7\r\nSubject: injected".into(),
                camera: Some("lobby".into()),
                attributes: BTreeMap::from([("port".to_owned(), "Gi1/0/7".to_owned())]),
            },
        };
        let m = rule_mail("rec1", "dot1x", &e, Some(7), &["soc@example.net".into()]);
        assert_eq!(
            m.subject,
            "[Vigil rec1] warning: syslog.dot1x_failure on camera lobby (rule dot1x)"
        );
        for part in [
            "Event:    syslog.dot1x_failure (id 42)",
            "Time:     2023-11-14T22:13:20",
            "Camera:   lobby",
            "Alarm:    7",
            "  port: Gi1/0/7",
            "802.1X failed on Gi1/0/7",
        ] {
            assert!(m.body.contains(part), "{part} in\n{}", m.body);
        }
    }

    #[test]
    fn settings_come_from_smtp_and_a_readable_password_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            mail_settings(&SmtpConfig::default(), "h")
                .unwrap()
                .is_none()
        );
        let pass = dir.path().join("smtp.pass");
        std::fs::write(&pass, "s3cret\n").unwrap();
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut smtp = SmtpConfig {
            server: Some("mail.example.net".into()),
            from: Some("Vigil <vigil@example.net>".into()),
            username: Some("vigil".into()),
            password_file: Some(pass.clone()),
            ..Default::default()
        };
        let e = mail_settings(&smtp, "h").unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = mail_settings(&smtp, "vigil.example.net").unwrap().unwrap();
        assert_eq!((s.host.as_str(), s.port), ("mail.example.net", 587));
        assert_eq!(s.server_name, "mail.example.net");
        assert_eq!(s.login.as_ref().unwrap().1.as_str(), "s3cret");
        smtp.tls = SmtpTls::Implicit;
        assert_eq!(mail_settings(&smtp, "h").unwrap().unwrap().port, 465);
        smtp.ca_file = Some(dir.path().join("missing.pem"));
        let e = mail_settings(&smtp, "h").unwrap_err().to_string();
        assert!(
            e.contains("smtp.ca_file") && e.contains("missing.pem"),
            "{e}"
        );
    }
}
