//! A real S3-compatible store: objects through `object_store` (signed headers, path-style
//! requests, TLS verified against the configured CA or the system's), and the Object Lock
//! calls `object_store` does not have (PutObjectRetention, GetObjectRetention, deleting one
//! version) as requests on presigned URLs sent by the same `reqwest`. Presigned URLs carry the
//! access key id and a signature, never the secret; errors are reported without the URL.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use md5::{Digest, Md5};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::signer::{SignedUrlOptions, Signer};
use object_store::{Certificate, ClientOptions, ObjectStoreExt, PutPayload};
use reqwest::Method;
use vigil_config::ArchiveConfig;

use crate::credentials::{Credentials, CredentialsError};
use crate::store::{ObjectArchive, ObjectError};

/// How long a presigned Object Lock request stays valid: it is sent at once.
const PRESIGN_FOR: Duration = Duration::from_secs(120);
/// A request that has not completed by then failed (the archiver tries again next pass).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Why the archive cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("the archive tier is not configured: [archive] has no endpoint")]
    NotConfigured,
    #[error("[archive] {0}")]
    Config(String),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("cannot read the archive CA file {path}: {source}")]
    CaFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the archive CA file {path} holds no usable PEM certificate: {why}")]
    BadCa {
        path: std::path::PathBuf,
        why: String,
    },
    #[error("cannot set up the S3 client: {0}")]
    Client(String),
}

/// See the module documentation.
#[derive(Clone)]
pub struct S3Archive {
    s3: Arc<AmazonS3>,
    http: reqwest::Client,
}

impl S3Archive {
    /// The archive `[archive]` describes, with the keys of its credentials file.
    pub fn from_config(config: &ArchiveConfig) -> Result<Self, S3Error> {
        let endpoint = config.endpoint.as_deref().ok_or(S3Error::NotConfigured)?;
        vigil_config::parse_archive_endpoint(endpoint)
            .map_err(|why| S3Error::Config(format!("endpoint {endpoint:?} {why}")))?;
        let bucket = config
            .bucket
            .as_deref()
            .ok_or_else(|| S3Error::Config("bucket is missing".into()))?;
        let keys = config
            .credentials_file
            .as_deref()
            .ok_or_else(|| S3Error::Config("credentials_file is missing".into()))?;
        let credentials = Credentials::read(keys)?;
        let ca = match &config.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|source| S3Error::CaFile {
                path: path.clone(),
                source,
            })?),
            None => None,
        };
        Self::new(
            endpoint,
            bucket,
            &config.region,
            &credentials,
            ca.as_deref(),
        )
        .map_err(|e| match (e, &config.ca_file) {
            (S3Error::BadCa { why, .. }, Some(path)) => S3Error::BadCa {
                path: path.clone(),
                why,
            },
            (e, _) => e,
        })
    }

    /// An archive at `endpoint` (`https://host[:port]`), verifying its certificate against
    /// `ca_pem` only, or the system's roots when `None`.
    pub fn new(
        endpoint: &str,
        bucket: &str,
        region: &str,
        credentials: &Credentials,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, S3Error> {
        let mut options = ClientOptions::new()
            .with_timeout(REQUEST_TIMEOUT)
            .with_connect_timeout(Duration::from_secs(10));
        let mut http = reqwest::Client::builder()
            .https_only(true)
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10));
        if let Some(pem) = ca_pem {
            let bad = |why: String| S3Error::BadCa {
                path: "(given)".into(),
                why,
            };
            let certs = Certificate::from_pem_bundle(pem).map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("no CERTIFICATE block".into()));
            }
            for c in certs {
                options = options.with_root_certificate(c);
            }
            options = options.with_no_system_certificates(true);
            let certs =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| bad(e.to_string()))?;
            http = http.tls_certs_only(certs);
        }
        let s3 = AmazonS3Builder::new()
            .with_endpoint(endpoint.trim_end_matches('/'))
            .with_bucket_name(bucket)
            .with_region(region)
            .with_access_key_id(&credentials.access_key_id)
            .with_secret_access_key(&credentials.secret_access_key)
            .with_virtual_hosted_style_request(false)
            .with_client_options(options)
            .build()
            .map_err(|e| S3Error::Client(e.to_string()))?;
        let http = http
            .build()
            .map_err(|e| S3Error::Client(e.without_url().to_string()))?;
        Ok(Self {
            s3: Arc::new(s3),
            http,
        })
    }

    async fn presigned(
        &self,
        method: Method,
        key: &str,
        query: &[(&str, &str)],
    ) -> Result<reqwest::Url, ObjectError> {
        let options = SignedUrlOptions::default().with_query(query.iter().copied());
        self.s3
            .signed_url_opts(method, &ObjectPath::from(key), PRESIGN_FOR, &options)
            .await
            .map_err(|e| ObjectError::Failed {
                action: "signing a request",
                key: key.into(),
                why: e.to_string(),
            })
    }

    /// Sends a presigned request and returns the body of a 2xx answer.
    async fn send(
        &self,
        action: &'static str,
        key: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Bytes, ObjectError> {
        let failed = |why: String| ObjectError::Failed {
            action,
            key: key.into(),
            why,
        };
        let response = request
            .send()
            .await
            .map_err(|e| failed(e.without_url().to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| failed(e.without_url().to_string()))?;
        if status.is_success() {
            return Ok(body);
        }
        let text = String::from_utf8_lossy(&body);
        let code = xml_value(&text, "Code").unwrap_or_default();
        let message = xml_value(&text, "Message").unwrap_or_default();
        let why = format!("HTTP {status} {code} {message}").trim().to_owned();
        Err(match status.as_u16() {
            404 if code == "NoSuchKey" || code.is_empty() => {
                ObjectError::NotFound { key: key.into() }
            }
            403 | 400 | 409 => ObjectError::Refused {
                action,
                key: key.into(),
                why,
            },
            _ => ObjectError::Failed {
                action,
                key: key.into(),
                why,
            },
        })
    }
}

fn object_failed(action: &'static str, key: &str, e: object_store::Error) -> ObjectError {
    match e {
        object_store::Error::NotFound { .. } => ObjectError::NotFound { key: key.into() },
        object_store::Error::PermissionDenied { source, .. } => ObjectError::Refused {
            action,
            key: key.into(),
            why: source.to_string(),
        },
        e => ObjectError::Failed {
            action,
            key: key.into(),
            why: e.to_string(),
        },
    }
}

impl ObjectArchive for S3Archive {
    async fn put(&self, key: &str, data: Bytes) -> Result<Option<String>, ObjectError> {
        let r = self
            .s3
            .put(&ObjectPath::from(key), PutPayload::from_bytes(data))
            .await
            .map_err(|e| object_failed("upload", key, e))?;
        Ok(r.version)
    }

    async fn get(&self, key: &str) -> Result<Bytes, ObjectError> {
        let r = self
            .s3
            .get(&ObjectPath::from(key))
            .await
            .map_err(|e| object_failed("download", key, e))?;
        r.bytes()
            .await
            .map_err(|e| object_failed("download", key, e))
    }

    async fn delete(&self, key: &str, version: Option<&str>) -> Result<(), ObjectError> {
        match version {
            None => self
                .s3
                .delete(&ObjectPath::from(key))
                .await
                .map_err(|e| object_failed("deletion", key, e)),
            Some(v) => {
                let url = self
                    .presigned(Method::DELETE, key, &[("versionId", v)])
                    .await?;
                self.send("deletion", key, self.http.delete(url)).await?;
                Ok(())
            }
        }
    }

    async fn retain_until(&self, key: &str, until_us: i64) -> Result<(), ObjectError> {
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>COMPLIANCE</Mode>\
             <RetainUntilDate>{}</RetainUntilDate></Retention>",
            s3_date(until_us)
        );
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(body.as_bytes()));
        let url = self
            .presigned(Method::PUT, key, &[("retention", "")])
            .await?;
        let request = self
            .http
            .put(url)
            .header("Content-MD5", md5)
            .header("Content-Type", "application/xml")
            .body(body);
        self.send("retention", key, request).await?;
        Ok(())
    }

    async fn retention(&self, key: &str) -> Result<Option<i64>, ObjectError> {
        let url = self
            .presigned(Method::GET, key, &[("retention", "")])
            .await?;
        let body = match self
            .send("reading the retention", key, self.http.get(url))
            .await
        {
            Ok(b) => b,
            Err(ObjectError::NotFound { .. }) => return Ok(None),
            // AWS answers 404, others 400: either way the object has no retention.
            Err(ObjectError::Refused { why, .. } | ObjectError::Failed { why, .. })
                if why.contains("NoSuchObjectLockConfiguration")
                    || why.contains("ObjectLockConfigurationNotFound") =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let text = String::from_utf8_lossy(&body);
        let Some(date) = xml_value(&text, "RetainUntilDate") else {
            return Ok(None);
        };
        let parsed =
            chrono::DateTime::parse_from_rfc3339(&date).map_err(|e| ObjectError::Failed {
                action: "reading the retention",
                key: key.into(),
                why: format!("the store answered an unreadable date {date:?}: {e}"),
            })?;
        Ok(Some(parsed.timestamp_micros()))
    }
}

/// `until_us` as S3 writes dates (whole seconds, UTC), rounded up so a retention is never
/// shorter than asked.
fn s3_date(until_us: i64) -> String {
    let secs = until_us.div_euclid(1_000_000) + i64::from(until_us.rem_euclid(1_000_000) != 0);
    let t = vigil_signing::fmt_time(secs * 1_000_000);
    format!("{}Z", &t[..t.len() - 8])
}

/// The text of the first `<tag>…</tag>` in an S3 XML answer (no nesting in the ones read).
fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_dates_are_whole_seconds_rounded_up() {
        assert_eq!(s3_date(1_714_564_800_000_000), "2024-05-01T12:00:00Z");
        assert_eq!(s3_date(1_714_564_800_000_001), "2024-05-01T12:00:01Z");
    }

    #[test]
    fn s3_error_answers_are_read() {
        let xml = "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>";
        assert_eq!(xml_value(xml, "Code").as_deref(), Some("AccessDenied"));
        assert_eq!(xml_value(xml, "Message").as_deref(), Some("Access Denied."));
        assert_eq!(xml_value(xml, "RetainUntilDate"), None);
        assert_eq!(xml_value("<Code>unclosed", "Code"), None);
    }

    #[test]
    fn plain_http_and_a_bad_ca_are_refused() {
        let c = Credentials {
            access_key_id: "AK".into(),
            secret_access_key: "SK".into(),
        };
        let err = S3Archive::new("https://127.0.0.1:9", "b", "us-east-1", &c, Some(b"junk"))
            .err()
            .expect("a CA file without a certificate is refused");
        assert!(matches!(err, S3Error::BadCa { .. }), "{err}");
        let cfg = ArchiveConfig {
            endpoint: Some("http://127.0.0.1:9".into()),
            bucket: Some("b".into()),
            credentials_file: Some("/nonexistent".into()),
            ..ArchiveConfig::default()
        };
        let err = S3Archive::from_config(&cfg).err().expect("http is refused");
        assert!(err.to_string().contains("plain HTTP"), "{err}");
    }
}
