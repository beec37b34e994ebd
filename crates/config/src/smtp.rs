//! The mail server rules' `email` action sends through (`[smtp]` in `vigil.toml`): its
//! settings, their checks, and how the commented file writes them. Reference:
//! docs/rules-and-alarms.md ("E-mail").

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::RuleConfig;

/// The mail server rules' `email` action sends through (`[smtp]`; docs/rules-and-alarms.md).
/// Always over TLS with the server's certificate verified; unset `server`: no e-mail.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// `host:port`; port 587 when left out (465 with `tls = "implicit"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// `starttls` (default: the submission port, TLS required before anything else is
    /// sent) or `implicit` (TLS from the first byte). Clear text is not offered.
    pub tls: SmtpTls,
    /// The name the server's certificate must carry; default: the host of `server`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// CA certificates (PEM) to verify the server with; default: the system's CA store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Log in with this user name and the password in `password_file` (mode 0600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// The sender, `vigil@example.net` or `Vigil <vigil@example.net>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    #[default]
    Starttls,
    Implicit,
}

impl SmtpConfig {
    /// The server's host and port, when one is set.
    pub fn host_port(&self) -> Option<Result<(String, u16), String>> {
        let default = match self.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Implicit => 465,
        };
        self.server
            .as_deref()
            .map(|s| crate::split_host_port(s, default))
    }
}

/// `[smtp]`: a usable server and sender once set, and set when a rule sends e-mail (files
/// are read when the rules start).
pub(crate) fn check(
    m: &SmtpConfig,
    rules: &[RuleConfig],
    at: &dyn Fn(&str) -> String,
) -> Result<(), String> {
    let Some(hp) = m.host_port() else {
        if let Some(i) = rules.iter().position(|r| r.email.is_some()) {
            let k = format!("rules[{i}].email");
            return Err(format!(
                "`{k}`{} needs a mail server: set `[smtp] server = \"mail.example.net:587\"` and `from`, or remove the e-mail action",
                at(&k)
            ));
        }
        return Ok(());
    };
    if let Err(why) = hp {
        return Err(format!(
            "`smtp.server` = {:?}{} {why}: write host:port, e.g. \"mail.example.net:587\"",
            m.server.as_deref().unwrap_or_default(),
            at("smtp.server")
        ));
    }
    let from_ok = m.from.as_deref().is_some_and(|f| {
        let addr = match f.rsplit_once('<') {
            Some((_, rest)) => rest.strip_suffix('>').unwrap_or(""),
            None => f.trim(),
        };
        crate::rules::is_email_address(addr) && !f.chars().any(char::is_control)
    });
    if !from_ok {
        return Err(format!(
            "`smtp.from`{} {}: give the sender as \"vigil@example.net\" or \"Vigil <vigil@example.net>\"",
            at(if m.from.is_some() {
                "smtp.from"
            } else {
                "smtp.server"
            }),
            match &m.from {
                Some(f) => format!("= {f:?} is not an e-mail address"),
                None => "is missing".to_owned(),
            }
        ));
    }
    match (&m.username, &m.password_file) {
        (Some(u), None) if !u.is_empty() => Err(format!(
            "`smtp.username`{} is set without `password_file`: add the file holding the password (mode 0600), or remove the user name",
            at("smtp.username")
        )),
        (None, Some(_)) => Err(format!(
            "`smtp.password_file`{} is set without `username`: add the user name to log in with",
            at("smtp.password_file")
        )),
        _ => Ok(()),
    }
}

/// The `[smtp]` table, or a commented example when no server is set.
pub(crate) fn smtp_table(smtp: &SmtpConfig) -> String {
    if smtp.server.is_none() && *smtp == SmtpConfig::default() {
        return "# Rules' `email` action sends through this server, always over TLS\n\
                # (docs/rules-and-alarms.md):\n\
                # [smtp]\n\
                # server = \"mail.example.net:587\"     # STARTTLS; tls = \"implicit\" for port 465\n\
                # from = \"Vigil <vigil@example.net>\"\n\
                # username = \"vigil\"\n\
                # password_file = \"/etc/vigil/smtp.pass\"  # mode 0600\n\
                # ca_file = \"/etc/vigil/mail-ca.pem\"     # default: the system's CA store\n"
            .into();
    }
    format!(
        "[smtp]\n{}",
        toml::to_string(smtp).expect("smtp settings serialize")
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::Config;

    #[test]
    fn smtp_round_trips_and_bad_smtp_settings_say_what_to_do_and_where() {
        let mut c = Config::with_data_dir("/var/lib/vigil");
        assert!(c.smtp.host_port().is_none(), "no e-mail by default");
        let back = Config::parse(&c.to_commented_toml(), Path::new("vigil.toml")).unwrap();
        assert_eq!(back, c);
        c.smtp = SmtpConfig {
            server: Some("mail.example.net".into()),
            tls: SmtpTls::Implicit,
            server_name: Some("smtp.example.net".into()),
            ca_file: Some("/etc/vigil/mail-ca.pem".into()),
            username: Some("vigil".into()),
            password_file: Some("/etc/vigil/smtp.pass".into()),
            from: Some("Vigil <vigil@example.net>".into()),
        };
        let back = Config::parse(&c.to_commented_toml(), Path::new("vigil.toml")).unwrap();
        assert_eq!(back, c);
        assert_eq!(
            back.smtp.host_port(),
            Some(Ok(("mail.example.net".to_owned(), 465)))
        );
        let rule = "[[rules]]\nname = \"door\"\nemail = { to = [\"soc@example.net\"] }\n";
        let good = "[smtp]\nserver = \"m:587\"\nfrom = \"v@example.net\"\n";
        assert!(
            Config::parse(
                &format!("data_dir = \"d\"\n{good}{rule}"),
                Path::new("x.toml")
            )
            .is_ok()
        );
        for (text, want) in [
            (
                rule.to_owned(),
                "`rules[0].email` on line 4 needs a mail server",
            ),
            (
                "[smtp]\nserver = \"m:0\"\nfrom = \"v@example.net\"\n".into(),
                "`smtp.server` = \"m:0\" on line 3",
            ),
            ("[smtp]\nserver = \"m\"\n".into(), "`smtp.from`"),
            (
                "[smtp]\nserver = \"m\"\nfrom = \"vigil\"\n".into(),
                "is not an e-mail address",
            ),
            (
                format!("{good}username = \"u\"\n"),
                "without `password_file`",
            ),
            (
                format!("{good}password_file = \"p\"\n"),
                "without `username`",
            ),
            (format!("{good}tls = \"none\"\n"), "tls"),
            (
                format!("{good}[[rules]]\nname = \"r\"\nemail = {{ to = [] }}\n"),
                "give 1 to 20",
            ),
            (
                format!("{good}[[rules]]\nname = \"r\"\nemail = {{ to = [\"a b@c\"] }}\n"),
                "not an e-mail address",
            ),
        ] {
            let err = Config::parse(&format!("data_dir = \"d\"\n{text}"), Path::new("x.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
