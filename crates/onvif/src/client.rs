//! The ONVIF client of one device: which address it is reached at, the certificate rules and
//! limits it is reached with, the calls Vigil makes (identity, services, profiles, stream
//! URIs, users, SetUser), and the device clock offset WS-Security needs.

use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;
use url::Url;
use vigil_media::ingest_tls::TrustStore;

use crate::OnvifError;
use crate::device::{self, DeviceInformation, Service, User};
use crate::digest::{self, DigestChallenge};
use crate::http::{self, TlsRules};
use crate::media::{self, Profile};
use crate::security;
use crate::soap::{self, TR2, TRT};
use crate::wssec::{self, Credentials};

/// The device service path ONVIF devices answer at when the address names none.
pub const DEVICE_SERVICE_PATH: &str = "/onvif/device_service";

/// A device's ONVIF address: its device service URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    url: Url,
}

impl Target {
    /// Reads `http://HOST[:PORT][/PATH]` or `https://…`; without a path (or `/`), the device
    /// service is at [`DEVICE_SERVICE_PATH`]. Credentials in the address are refused: they
    /// would end up in logs and process lists.
    pub fn parse(address: &str) -> Result<Target, OnvifError> {
        let bad = || OnvifError::BadAddress(address.to_owned());
        let mut url = Url::parse(address.trim()).map_err(|_| bad())?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(OnvifError::BadAddress(
                "the address holds a user name or password; give them separately, never in the URL"
                    .into(),
            ));
        }
        if url.path().is_empty() || url.path() == "/" {
            url.set_path(DEVICE_SERVICE_PATH);
        }
        url.set_fragment(None);
        Ok(Target { url })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn is_https(&self) -> bool {
        self.url.scheme() == "https"
    }

    /// `HOST` or `HOST:PORT` as given.
    pub fn host(&self) -> String {
        match self.url.port() {
            Some(p) => format!("{}:{p}", self.url.host_str().unwrap_or_default()),
            None => self.url.host_str().unwrap_or_default().to_owned(),
        }
    }

    /// Where the device's service at `xaddr` is reached *through this address*: the scheme,
    /// host and port stay the ones the admin gave (and the certificate was verified for),
    /// only the path comes from the device. A device behind NAT reports addresses this
    /// server cannot reach, and a device must not be able to send the client, with its
    /// credentials, to another host or down to plain HTTP.
    pub fn service(&self, xaddr: &str) -> Result<Url, OnvifError> {
        let theirs = Url::parse(xaddr).map_err(|_| {
            OnvifError::Malformed(format!("service address '{xaddr}' is not a URL"))
        })?;
        let mut url = self.url.clone();
        url.set_path(theirs.path());
        url.set_query(theirs.query());
        Ok(url)
    }
}

/// How a device is reached.
#[derive(Debug, Clone)]
pub struct Options {
    /// The CAs an https device's certificate may chain to (the installation's).
    pub trust: TrustStore,
    /// The one certificate (SHA-256 fingerprint, `AB:CD:…`) accepted instead.
    pub pin: Option<String>,
    /// Each request as a whole: connect, TLS, sending, the whole answer.
    pub timeout: Duration,
    /// The largest answer read.
    pub max_response: usize,
    /// Send a new password (SetUser) over plain http. Off: anyone on the camera network
    /// could read it.
    pub allow_plaintext_secrets: bool,
    /// An admin allowed this device over plain http: an HTTP Digest challenge is answered
    /// over it too. Off: a plain-http device that asks for HTTP Digest is refused
    /// ([`OnvifError::DigestOverPlainHttp`]).
    pub allow_plain_http: bool,
}

impl Options {
    pub fn new(trust: TrustStore) -> Options {
        Options {
            trust,
            pin: None,
            timeout: Duration::from_secs(10),
            max_response: crate::MAX_RESPONSE_BYTES,
            allow_plaintext_secrets: false,
            allow_plain_http: false,
        }
    }
}

/// Which media service answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaVersion {
    Media1,
    Media2,
}

/// A client of one device.
pub struct Client {
    target: Target,
    credentials: Option<Credentials>,
    options: Options,
    /// Device clock minus this server's (seconds), once asked.
    clock_offset: Mutex<Option<i64>>,
    services: Mutex<Option<Vec<Service>>>,
    /// The certificate accepted at the first https exchange; any later exchange must see it
    /// again.
    fingerprint: Mutex<Option<String>>,
    /// The HTTP Digest challenge the device last sent, answered up front in later requests
    /// (its nonce counted up) so each call is one exchange; a 401 renews it.
    digest: Mutex<Option<DigestChallenge>>,
}

impl Client {
    pub fn new(target: Target, credentials: Option<Credentials>, options: Options) -> Client {
        Client {
            target,
            credentials,
            options,
            clock_offset: Mutex::new(None),
            services: Mutex::new(None),
            fingerprint: Mutex::new(None),
            digest: Mutex::new(None),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The SHA-256 fingerprint of the certificate the device presented and Vigil accepted
    /// (https only, after a first call).
    pub fn certificate_fingerprint(&self) -> Option<String> {
        self.fingerprint
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn exchange(
        &self,
        url: &url::Url,
        action: &str,
        body: String,
        authorization: Option<String>,
    ) -> Result<http::Answer, OnvifError> {
        let tls = self.target.is_https().then(|| TlsRules {
            trust: &self.options.trust,
            pin: self.options.pin.clone(),
            seen: if self.options.pin.is_some() {
                None
            } else {
                self.certificate_fingerprint()
            },
        });
        let (answer, fingerprint) = http::post(
            url,
            action,
            body,
            authorization,
            tls,
            self.options.timeout,
            self.options.max_response,
        )
        .await?;
        if let Some(fp) = fingerprint {
            *self.fingerprint.lock().unwrap_or_else(|p| p.into_inner()) = Some(fp);
        }
        Ok(answer)
    }

    /// Sends one request and hands back the body of a 200 answer; any other status is the
    /// fault it carries or an HTTP error.
    async fn call<T>(
        &self,
        url: &url::Url,
        action: &'static str,
        body: &str,
        authenticated: bool,
        parse: impl Fn(&str) -> Result<T, OnvifError>,
    ) -> Result<T, OnvifError> {
        let header = match (&self.credentials, authenticated) {
            (Some(creds), true) => {
                let now = OffsetDateTime::now_utc()
                    + time::Duration::seconds(self.device_clock_offset().await);
                Some(wssec::security_header(creds, now))
            }
            _ => None,
        };
        let envelope = soap::envelope(header.as_deref(), body);
        let answer = self.exchange_authorized(url, action, envelope).await?;
        match answer.status {
            200 => parse(&answer.body),
            status => {
                // A fault says more than the status; devices send them with 400, 401 or 500.
                if let Err(e @ (OnvifError::Fault { .. } | OnvifError::Unauthorized)) =
                    parse(&answer.body)
                {
                    return Err(e);
                }
                match (status, answer.www_authenticate) {
                    (401, Some(_)) if self.credentials.is_some() => Err(OnvifError::Unauthorized),
                    (401, Some(scheme)) => Err(OnvifError::HttpAuthRequired {
                        scheme: scheme
                            .split_whitespace()
                            .next()
                            .unwrap_or("")
                            .chars()
                            .take(32)
                            .collect(),
                    }),
                    (401 | 403, None) => Err(OnvifError::Unauthorized),
                    (status, _) => Err(OnvifError::Http {
                        status,
                        action: short(action),
                    }),
                }
            }
        }
    }

    /// One request, answering the device's HTTP Digest challenge when it asks for one (RFC
    /// 7616): with the challenge kept from an earlier answer up front, and after a 401 with a
    /// usable challenge once more with it. Never over plain http unless the device was allowed
    /// plain http. The answer the caller sees is the last one (a second 401 is a refusal of
    /// the credentials).
    async fn exchange_authorized(
        &self,
        url: &url::Url,
        action: &str,
        envelope: String,
    ) -> Result<http::Answer, OnvifError> {
        let target = http::request_target(url);
        let first = self.digest_authorization(&target)?;
        let answer = self.exchange(url, action, envelope.clone(), first).await?;
        if answer.status != 401 || self.credentials.is_none() {
            return Ok(answer);
        }
        let Some(header) = answer.www_authenticate.as_deref() else {
            return Ok(answer);
        };
        let challenge =
            digest::choose(header).map_err(|e| OnvifError::HttpAuthUnsupported(e.to_string()))?;
        if !self.target.is_https() && !self.options.allow_plain_http {
            return Err(OnvifError::DigestOverPlainHttp {
                addr: self.target.host(),
            });
        }
        *self.digest.lock().unwrap_or_else(|p| p.into_inner()) = Some(challenge);
        let second = self.digest_authorization(&target)?;
        self.exchange(url, action, envelope, second).await
    }

    /// The `Authorization` value for one request from the challenge kept, if any.
    fn digest_authorization(&self, target: &str) -> Result<Option<String>, OnvifError> {
        let Some(creds) = &self.credentials else {
            return Ok(None);
        };
        let mut kept = self.digest.lock().unwrap_or_else(|p| p.into_inner());
        let Some(challenge) = kept.as_mut() else {
            return Ok(None);
        };
        challenge
            .authorization(creds, "POST", target)
            .map(Some)
            .map_err(|e| OnvifError::HttpAuthUnsupported(e.to_string()))
    }

    /// Device clock minus this server's, asked once (GetSystemDateAndTime needs no
    /// credentials); 0 when the device does not say.
    async fn device_clock_offset(&self) -> i64 {
        if let Some(o) = *self.clock_offset.lock().unwrap_or_else(|p| p.into_inner()) {
            return o;
        }
        let (action, body) = device::GET_SYSTEM_DATE_AND_TIME;
        let envelope = soap::envelope(None, body);
        let offset = match self
            .exchange_authorized(self.target.url(), action, envelope)
            .await
        {
            Ok(a) if a.status == 200 => match device::parse_system_date_time(&a.body) {
                Ok(Some(t)) => (t - OffsetDateTime::now_utc()).whole_seconds(),
                _ => 0,
            },
            _ => 0,
        };
        if offset.abs() > 5 {
            tracing::info!(
                device = %self.target.host(),
                offset_s = offset,
                "the device's clock differs from this server's; WS-Security uses the device's"
            );
        }
        *self.clock_offset.lock().unwrap_or_else(|p| p.into_inner()) = Some(offset);
        offset
    }

    /// The device's clock (no credentials needed).
    pub async fn system_date_time(&self) -> Result<Option<OffsetDateTime>, OnvifError> {
        let (action, body) = device::GET_SYSTEM_DATE_AND_TIME;
        self.call(
            self.target.url(),
            action,
            body,
            false,
            device::parse_system_date_time,
        )
        .await
    }

    /// Manufacturer, model, firmware, serial number.
    pub async fn device_information(&self) -> Result<DeviceInformation, OnvifError> {
        let (action, body) = device::GET_DEVICE_INFORMATION;
        self.call(
            self.target.url(),
            action,
            body,
            true,
            device::parse_device_information,
        )
        .await
    }

    /// The services the device offers (GetServices, or GetCapabilities on devices without
    /// it), asked once.
    pub async fn services(&self) -> Result<Vec<Service>, OnvifError> {
        if let Some(s) = self
            .services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Ok(s);
        }
        let (action, body) = device::GET_SERVICES;
        let services = match self
            .call(
                self.target.url(),
                action,
                body,
                true,
                device::parse_services,
            )
            .await
        {
            Ok(s) => s,
            Err(OnvifError::Fault { .. } | OnvifError::Http { .. }) => {
                let (action, body) = device::GET_CAPABILITIES;
                self.call(
                    self.target.url(),
                    action,
                    body,
                    true,
                    device::parse_capabilities,
                )
                .await?
            }
            Err(e) => return Err(e),
        };
        *self.services.lock().unwrap_or_else(|p| p.into_inner()) = Some(services.clone());
        Ok(services)
    }

    fn service_url(
        &self,
        services: &[Service],
        namespace: &str,
    ) -> Option<Result<Url, OnvifError>> {
        services
            .iter()
            .find(|s| s.namespace == namespace)
            .map(|s| self.target.service(&s.xaddr))
    }

    /// The media profiles, from Media2 when the device offers it (H.265 profiles are only
    /// described there), else Media1.
    pub async fn profiles(&self) -> Result<(Vec<Profile>, MediaVersion), OnvifError> {
        let services = self.services().await?;
        if let Some(url) = self.service_url(&services, TR2) {
            let (action, body) = media::GET_PROFILES2;
            match self
                .call(&url?, action, body, true, media::parse_profiles2)
                .await
            {
                Ok(p) => return Ok((p, MediaVersion::Media2)),
                // Announced but broken Media2 is common; Media1 is mandatory.
                Err(OnvifError::Fault { .. } | OnvifError::Http { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let url = self
            .service_url(&services, TRT)
            .ok_or(OnvifError::Missing(
                "media service (the device offers no video profiles)",
            ))??;
        let (action, body) = media::GET_PROFILES;
        let p = self
            .call(&url, action, body, true, media::parse_profiles)
            .await?;
        Ok((p, MediaVersion::Media1))
    }

    /// The RTSP URI (RTP over RTSP/TCP) of a profile.
    pub async fn stream_uri(
        &self,
        token: &str,
        version: MediaVersion,
    ) -> Result<String, OnvifError> {
        let services = self.services().await?;
        match version {
            MediaVersion::Media2 => {
                let url = self
                    .service_url(&services, TR2)
                    .ok_or(OnvifError::Missing("Media2 service"))??;
                self.call(
                    &url,
                    media::GET_STREAM_URI2_ACTION,
                    &media::stream_uri2_body(token),
                    true,
                    media::parse_stream_uri2,
                )
                .await
            }
            MediaVersion::Media1 => {
                let url = self
                    .service_url(&services, TRT)
                    .ok_or(OnvifError::Missing("media service"))??;
                self.call(
                    &url,
                    media::GET_STREAM_URI_ACTION,
                    &media::stream_uri_body(token),
                    true,
                    media::parse_stream_uri,
                )
                .await
            }
        }
    }

    /// The device's user accounts.
    pub async fn users(&self) -> Result<Vec<User>, OnvifError> {
        let (action, body) = device::GET_USERS;
        self.call(self.target.url(), action, body, true, device::parse_users)
            .await
    }

    /// The address of the device's Advanced Security service, if it offers one.
    pub async fn advanced_security_url(&self) -> Result<Option<Url>, OnvifError> {
        let services = self.services().await?;
        self.service_url(&services, security::TAS).transpose()
    }

    async fn security_url(&self) -> Result<Url, OnvifError> {
        self.advanced_security_url()
            .await?
            .ok_or(OnvifError::NoAdvancedSecurity)
    }

    /// Has the device make an RSA key pair of `bits` bits (the private key never leaves it),
    /// waits up to `wait` for it, and asks it for a PKCS#10 CSR for `CN=common_name` signed
    /// with that key. Answers the key's id and the DER CSR.
    pub async fn create_key_and_csr(
        &self,
        common_name: &str,
        bits: u32,
        wait: Duration,
    ) -> Result<(String, Vec<u8>), OnvifError> {
        let url = self.security_url().await?;
        let (action, body) = security::create_rsa_key_pair(bits, "vigil");
        let key = self
            .call(
                &url,
                action,
                &body,
                true,
                security::parse_create_rsa_key_pair,
            )
            .await?;
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            let (action, body) = security::get_key_status(&key);
            let state = self
                .call(&url, action, &body, true, security::parse_get_key_status)
                .await?;
            let waited = started.elapsed();
            match state {
                security::KeyStatus::Ok => break,
                security::KeyStatus::Corrupt => {
                    return Err(OnvifError::KeyNotReady {
                        state: "corrupt",
                        secs: waited.as_secs(),
                    });
                }
                security::KeyStatus::Generating if waited >= wait => {
                    return Err(OnvifError::KeyNotReady {
                        state: "still being generated",
                        secs: waited.as_secs(),
                    });
                }
                security::KeyStatus::Generating => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        }
        let (action, body) = security::create_pkcs10_csr(&key, common_name);
        let csr = self
            .call(&url, action, &body, true, security::parse_create_pkcs10_csr)
            .await?;
        Ok((key, csr))
    }

    /// Uploads the device's certificate `leaf` (the device must hold its private key) and
    /// the CA certificates above it, makes them a certification path and has the device's
    /// HTTPS serve it, in place of what it served before. Answers the path's id. Connections
    /// made after this answer see the new certificate.
    pub async fn serve_certificate(
        &self,
        leaf: &[u8],
        chain: &[Vec<u8>],
        alias: &str,
    ) -> Result<String, OnvifError> {
        let url = self.security_url().await?;
        let mut ids = Vec::with_capacity(1 + chain.len());
        for (i, der) in std::iter::once(leaf)
            .chain(chain.iter().map(Vec::as_slice))
            .enumerate()
        {
            let (action, body) = security::upload_certificate(der, alias, i == 0);
            ids.push(
                self.call(
                    &url,
                    action,
                    &body,
                    true,
                    security::parse_upload_certificate,
                )
                .await?,
            );
        }
        let (action, body) = security::create_certification_path(&ids, alias);
        let path = self
            .call(
                &url,
                action,
                &body,
                true,
                security::parse_create_certification_path,
            )
            .await?;
        let (action, body) = security::get_assigned_server_certificates();
        let assigned = self
            .call(
                &url,
                action,
                &body,
                true,
                security::parse_assigned_server_certificates,
            )
            .await?;
        let ((action, body), answer) = match assigned.first() {
            Some(old) => (
                security::replace_server_certificate_assignment(old, &path),
                "ReplaceServerCertificateAssignmentResponse",
            ),
            None => (
                security::add_server_certificate_assignment(&path),
                "AddServerCertificateAssignmentResponse",
            ),
        };
        self.call(&url, action, &body, true, |t| {
            security::parse_empty(t, answer)
        })
        .await?;
        Ok(path)
    }

    /// Gives the existing user `username` the password `new_password`, keeping its level.
    /// Refused over plain http unless the options allow it: SetUser carries the password
    /// itself, not a digest.
    pub async fn set_password(&self, username: &str, new_password: &str) -> Result<(), OnvifError> {
        if !self.target.is_https() && !self.options.allow_plaintext_secrets {
            return Err(OnvifError::PlaintextSecret {
                addr: self.target.host(),
            });
        }
        let users = self.users().await?;
        let user = users
            .iter()
            .find(|u| u.username == username)
            .ok_or_else(|| OnvifError::NoSuchUser(username.to_owned()))?;
        let level = if user.level.is_empty() {
            "User"
        } else {
            user.level.as_str()
        };
        self.call(
            self.target.url(),
            device::SET_USER_ACTION,
            &device::set_user_body(username, new_password, level),
            true,
            device::parse_set_user,
        )
        .await
    }
}

/// The operation name of a SOAP action URI, for messages.
fn short(action: &'static str) -> &'static str {
    action.rsplit('/').next().unwrap_or(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_the_default_path_and_refuse_credentials() {
        let t = Target::parse("https://cam.example").unwrap();
        assert_eq!(t.url().as_str(), "https://cam.example/onvif/device_service");
        assert!(t.is_https());
        let t = Target::parse("http://10.0.0.5:8080/onvif/device").unwrap();
        assert_eq!(t.host(), "10.0.0.5:8080");
        for bad in [
            "rtsp://cam/",
            "cam.example",
            "https://admin:pw@cam/",
            "http://",
        ] {
            assert!(
                matches!(Target::parse(bad), Err(OnvifError::BadAddress(_))),
                "{bad}"
            );
        }
        let e = Target::parse("https://admin:pw@cam/")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("pw@"), "{e}");
    }

    #[test]
    fn service_addresses_keep_the_admins_scheme_host_and_port() {
        let t = Target::parse("https://cam.example:8443").unwrap();
        let u = t.service("http://192.168.1.64/onvif/Media?x=1").unwrap();
        assert_eq!(u.as_str(), "https://cam.example:8443/onvif/Media?x=1");
        assert!(t.service("not a url").is_err());
    }
}
