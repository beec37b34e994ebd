//! The archive tier's settings (`[archive]` in `vigil.toml`): closed segments move with their
//! ledger excerpts to S3-compatible object storage. Its settings, their checks, and how the
//! commented file writes them. Reference: docs/design/archive.md.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The archive tier (`[archive]`; docs/design/archive.md): closed segments older than `after`
/// move with their ledger excerpts to an S3-compatible object store over verified TLS. Off
/// while `endpoint` is unset.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// `https://host[:port]` of the S3 API. Plain HTTP is refused: video and credentials never
    /// cross the network unencrypted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    pub region: String,
    /// Access key id and secret (`access_key_id = "…"`, `secret_access_key = "…"`), in a file
    /// of mode 0600 so they never appear in this file, a command line, a log or a URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    /// CA certificates (PEM) the endpoint's certificate must chain to; default: the system's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Object names start with this (e.g. `site-a/`); default: none.
    pub prefix: String,
    /// A closed segment is archived once its end is this old.
    #[serde(with = "crate::humantime_serde_compat")]
    pub after: Duration,
    /// `compliance`: every archived object gets an S3 Object Lock retention in compliance mode
    /// (the bucket must have Object Lock enabled); `off`: none.
    pub object_lock: ObjectLockMode,
    /// How long the store keeps each object under the lock, counted from its upload; an
    /// evidence lock extends it to cover the lock.
    pub object_lock_days: u32,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            bucket: None,
            region: "us-east-1".into(),
            credentials_file: None,
            ca_file: None,
            prefix: String::new(),
            after: Duration::from_secs(7 * 86_400),
            object_lock: ObjectLockMode::Compliance,
            object_lock_days: 30,
        }
    }
}

impl ArchiveConfig {
    /// Whether the archive tier is configured.
    pub fn enabled(&self) -> bool {
        self.endpoint.is_some()
    }

    /// The endpoint's host and port (443 when left out), once it is a valid `https://` URL.
    pub fn host_port(&self) -> Option<Result<(String, u16), String>> {
        self.endpoint.as_deref().map(parse_archive_endpoint)
    }
}

/// S3 Object Lock for archived objects.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ObjectLockMode {
    /// Not even the account root can delete or shorten before the retention date.
    #[default]
    Compliance,
    Off,
}

/// `https://host[:port]` (an optional trailing `/`): host and port. Anything that could carry
/// a secret or change the request (user info, a path, a query) is refused.
pub fn parse_archive_endpoint(endpoint: &str) -> Result<(String, u16), String> {
    let Some(rest) = endpoint.strip_prefix("https://") else {
        return Err(if endpoint.starts_with("http://") {
            "is plain HTTP: the archive is only reached over TLS, write https://".into()
        } else {
            "is not an https:// URL".into()
        });
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('@') {
        return Err(
            "carries user information: put the keys in `credentials_file`, never in the URL".into(),
        );
    }
    if rest.contains(['/', '?', '#']) || rest.is_empty() {
        return Err("must be https://host or https://host:port, without a path or query".into());
    }
    crate::split_host_port(rest, 443)
}

/// Whether `name` follows S3's bucket naming rules (3-63 characters of lowercase letters,
/// digits, `-` and `.`, starting and ending with a letter or digit).
pub fn is_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
}

/// `[archive]`: once an endpoint is set, a reachable https:// endpoint, a valid bucket, a
/// credentials file and sane ages (the credentials file is read when the archive starts).
pub(crate) fn check(a: &ArchiveConfig, at: &dyn Fn(&str) -> String) -> Result<(), String> {
    let Some(hp) = a.host_port() else {
        if a.bucket.is_some() || a.credentials_file.is_some() {
            return Err(format!(
                "`archive.endpoint`{} is missing: set the S3 endpoint, e.g. \"https://s3.example.net\", or remove [archive]",
                at(if a.bucket.is_some() {
                    "archive.bucket"
                } else {
                    "archive.credentials_file"
                })
            ));
        }
        return Ok(());
    };
    if let Err(why) = hp {
        return Err(format!(
            "`archive.endpoint`{} {why}",
            at("archive.endpoint")
        ));
    }
    match a.bucket.as_deref() {
        None => {
            return Err(format!(
                "`archive.bucket`{} is missing: name the bucket to archive into",
                at("archive.endpoint")
            ));
        }
        Some(b) if !is_bucket_name(b) => {
            return Err(format!(
                "`archive.bucket` = {b:?}{} is not an S3 bucket name: 3-63 lowercase letters, digits, '-' and '.'",
                at("archive.bucket")
            ));
        }
        Some(_) => {}
    }
    if a.credentials_file.is_none() {
        return Err(format!(
            "`archive.credentials_file`{} is missing: name the file (mode 0600) holding access_key_id and secret_access_key",
            at("archive.endpoint")
        ));
    }
    if a.region.is_empty()
        || !a
            .region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(format!(
            "`archive.region` = {:?}{} is not a region name, e.g. \"us-east-1\"",
            a.region,
            at("archive.region")
        ));
    }
    if a.prefix.starts_with('/')
        || a.prefix.contains("..")
        || a.prefix.chars().any(char::is_control)
    {
        return Err(format!(
            "`archive.prefix` = {:?}{} must be a relative object name prefix like \"site-a/\"",
            a.prefix,
            at("archive.prefix")
        ));
    }
    if a.after < Duration::from_secs(60) {
        return Err(format!(
            "`archive.after` = \"{}\"{} is too short: segments younger than a minute may still be read for live review; use at least 1m (default 7d)",
            crate::format_duration(a.after),
            at("archive.after")
        ));
    }
    if a.object_lock == ObjectLockMode::Compliance && !(1..=36_500).contains(&a.object_lock_days) {
        return Err(format!(
            "`archive.object_lock_days` = {}{} must be 1 to 36500 with object_lock = \"compliance\"",
            a.object_lock_days,
            at("archive.object_lock_days")
        ));
    }
    Ok(())
}

/// The `[archive]` table, or a commented example while the archive tier is off.
pub(crate) fn archive_table(archive: &ArchiveConfig) -> String {
    if *archive == ArchiveConfig::default() {
        return "# Closed segments older than `after` move with their ledger excerpts to S3-compatible\n\
                # object storage, over verified TLS, under S3 Object Lock (docs/design/archive.md):\n\
                # [archive]\n\
                # endpoint = \"https://s3.example.net\"\n\
                # bucket = \"vigil-archive\"\n\
                # region = \"us-east-1\"\n\
                # credentials_file = \"/etc/vigil/archive.keys\"  # mode 0600\n\
                # ca_file = \"/etc/vigil/archive-ca.pem\"        # default: the system's CA store\n\
                # after = \"7d\"\n\
                # object_lock = \"compliance\"                   # or \"off\"\n\
                # object_lock_days = 30\n"
            .into();
    }
    format!(
        "[archive]\n{}",
        toml::to_string(archive).expect("archive settings serialize")
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::Config;

    #[test]
    fn archive_round_trips_and_bad_archive_settings_say_what_to_do_and_where() {
        let mut c = Config::with_data_dir("/var/lib/vigil");
        assert!(!c.archive.enabled(), "no archive by default");
        c.archive = ArchiveConfig {
            endpoint: Some("https://s3.example.net:9000".into()),
            bucket: Some("vigil-archive".into()),
            region: "eu-central-1".into(),
            credentials_file: Some("/etc/vigil/archive.keys".into()),
            ca_file: Some("/etc/vigil/archive-ca.pem".into()),
            prefix: "site-a/".into(),
            after: Duration::from_secs(3 * 86_400),
            object_lock: ObjectLockMode::Compliance,
            object_lock_days: 90,
        };
        let back = Config::parse(&c.to_commented_toml(), Path::new("vigil.toml")).unwrap();
        assert_eq!(back, c);
        assert_eq!(
            back.archive.host_port(),
            Some(Ok(("s3.example.net".to_owned(), 9000)))
        );
        let good = "[archive]\nendpoint = \"https://s3.example.net\"\nbucket = \"vigil\"\ncredentials_file = \"k\"\n";
        let ok = Config::parse(&format!("data_dir = \"d\"\n{good}"), Path::new("x.toml")).unwrap();
        assert_eq!(
            ok.archive.host_port(),
            Some(Ok(("s3.example.net".to_owned(), 443)))
        );
        for (text, want) in [
            (
                "[archive]\nendpoint = \"http://s3.example.net\"\nbucket = \"vigil\"\ncredentials_file = \"k\"\n".to_owned(),
                "`archive.endpoint` on line 3 is plain HTTP",
            ),
            (
                "[archive]\nendpoint = \"https://AK:SECRET@s3.example.net\"\nbucket = \"vigil\"\ncredentials_file = \"k\"\n".to_owned(),
                "never in the URL",
            ),
            (
                "[archive]\nendpoint = \"https://s3.example.net/vigil?x=1\"\nbucket = \"vigil\"\ncredentials_file = \"k\"\n".to_owned(),
                "without a path or query",
            ),
            ("[archive]\nbucket = \"vigil\"\n".to_owned(), "`archive.endpoint` on line 3 is missing"),
            (
                "[archive]\nendpoint = \"https://s3.example.net\"\ncredentials_file = \"k\"\n".to_owned(),
                "`archive.bucket`",
            ),
            (
                "[archive]\nendpoint = \"https://s3.example.net\"\nbucket = \"Vigil_Bucket\"\ncredentials_file = \"k\"\n".to_owned(),
                "is not an S3 bucket name",
            ),
            (
                "[archive]\nendpoint = \"https://s3.example.net\"\nbucket = \"vigil\"\n".to_owned(),
                "`archive.credentials_file`",
            ),
            (format!("{good}after = \"10s\"\n"), "`archive.after` = \"10s\" on line 6 is too short"),
            (format!("{good}object_lock_days = 0\n"), "`archive.object_lock_days` = 0"),
            (format!("{good}object_lock = \"governance\"\n"), "object_lock"),
            (format!("{good}prefix = \"/abs\"\n"), "`archive.prefix`"),
            (format!("{good}secret_access_key = \"x\"\n"), "secret_access_key"),
        ] {
            let err = Config::parse(&format!("data_dir = \"d\"\n{text}"), Path::new("x.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
        let off = format!("{good}object_lock = \"off\"\nobject_lock_days = 0\n");
        assert!(Config::parse(&format!("data_dir = \"d\"\n{off}"), Path::new("x.toml")).is_ok());
    }
}
