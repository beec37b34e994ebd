//! vigil-pki: the installation's certificate authority and server certificates.
//!
//! This crate owns everything about X.509 and TLS credentials in Vigil:
//! - a private CA created by `vigil init` (ECDSA P-256, 10 years, unique per installation),
//! - the server certificate issued by it (1 year by default) and its renewal before expiry,
//! - expiry alerts at 30/14/7/1 days for every certificate in use, including imported ones,
//! - bringing your own PKI: importing a certificate chain with its key, or creating a CSR whose
//!   key never leaves the server and installing the certificate an external CA returns,
//! - signing device CSRs (cameras) and issuing leaves for other roles with the system CA,
//! - the TLS configuration of every listener ([`tls`]): aws-lc-rs only, TLS 1.2/1.3 with AEAD
//!   suites, and live certificate rotation.
//!
//! On disk ([`Pki::dir`], normally `DATA_DIR/pki/`, mode 0700):
//!
//! | file | content |
//! |---|---|
//! | `ca.crt`, `ca.key` | the CA certificate and key |
//! | `server.crt`, `server.key` | the generated server certificate and key |
//! | `external.crt`, `external.key` | an imported or CSR-installed chain and key (when present, served instead of the generated one) |
//! | `pending.csr`, `pending.key` | an open certificate request and its key |
//! | `state.json` | installation id, host names, validity, which certificate is active, alerts sent |
//! | `camera-cas/*.crt` | CA certificates an admin imported for camera links ([`camera_cas`]) |
//!
//! Private keys are PKCS#8 PEM files created with mode 0600 and are never logged.

pub mod alerts;
pub mod camera_cas;
pub mod certinfo;
mod der;
pub mod error;
mod fsutil;
pub mod import;
mod issue;
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::KeyPair;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

pub use alerts::{ALERT_THRESHOLDS_DAYS, EXPIRED_THRESHOLD, ExpiryAlert, SentAlerts, alerts_due};
pub use certinfo::{CertInfo, CertRole, CertSource, fingerprint_sha256, rfc3339};
pub use error::{CsrError, ImportError, PkiError, Result};
pub use import::KeyFormat;
pub use issue::{IssuedLeaf, LeafKeyType, LeafRequest, LeafUsage, MAX_LEAF_DAYS};
/// Re-exported so callers name times the same way this crate does.
pub use time;
pub use tls::{LiveTls, SessionPolicy};

/// A generated server certificate is renewed when it has this little time left.
pub const RENEW_BEFORE_DAYS: i64 = 30;
/// Default lifetime of the generated server certificate.
pub const DEFAULT_SERVER_DAYS: u32 = 365;
/// Default lifetime of the CA.
pub const DEFAULT_CA_DAYS: u32 = 3650;

/// The CA certificate (PEM) in the PKI directory: what clients are given to trust.
pub const CA_CERT_FILE: &str = "ca.crt";
const CA_CRT: &str = CA_CERT_FILE;
const CA_KEY: &str = "ca.key";
const SERVER_CRT: &str = "server.crt";
const SERVER_KEY: &str = "server.key";
const EXTERNAL_CRT: &str = "external.crt";
const EXTERNAL_KEY: &str = "external.key";
const PENDING_CSR: &str = "pending.csr";
const PENDING_KEY: &str = "pending.key";
const STATE: &str = "state.json";
const LOCK: &str = ".lock";

/// Writes a private key file with mode 0600 (atomically, no window with wider permissions).
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> Result<()> {
    fsutil::write_secret(path, bytes)
}

/// Options of [`Pki::init`].
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// DNS names and IP addresses of this server, placed in the server certificate's SANs.
    /// Empty means `localhost`, `127.0.0.1` and `::1`.
    pub hostnames: Vec<String>,
    /// Lifetime of the generated server certificate (days).
    pub validity_days: u32,
    /// Lifetime of the CA (days).
    pub ca_validity_days: u32,
    /// Identifies the installation in the CA's name; random when `None`.
    pub installation_id: Option<String>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            hostnames: Vec::new(),
            validity_days: DEFAULT_SERVER_DAYS,
            ca_validity_days: DEFAULT_CA_DAYS,
            installation_id: None,
        }
    }
}

/// An open certificate request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCsr {
    pub common_name: String,
    pub sans: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    installation_id: String,
    hostnames: Vec<String>,
    server_validity_days: u32,
    /// Set while `external.crt` is the served certificate.
    external_source: Option<CertSource>,
    pending_csr: Option<PendingCsr>,
    #[serde(default)]
    alerts_sent: SentAlerts,
}

/// Everything `vigil pki status` shows.
#[derive(Debug, Clone)]
pub struct PkiStatus {
    pub installation_id: String,
    pub hostnames: Vec<String>,
    /// Which server certificate TLS presents.
    pub active_source: CertSource,
    pub certificates: Vec<CertInfo>,
    pub pending_csr: Option<PendingCsr>,
}

/// Result of importing or installing a certificate.
#[derive(Debug, Clone)]
pub struct Installed {
    /// What the TLS server should present from now on (swap it into [`LiveTls`]).
    pub certified_key: Arc<CertifiedKey>,
    /// The new server certificate.
    pub info: CertInfo,
    /// How the key was supplied (None for CSR-installed certificates, whose key was made here).
    pub key_format: Option<KeyFormat>,
}

/// The PKI of one installation, stored in one directory.
#[derive(Debug)]
pub struct Pki {
    dir: PathBuf,
    state: State,
    ca_cert_pem: String,
    ca_cert_der: CertificateDer<'static>,
}

impl Pki {
    /// Whether `dir` holds an initialised PKI.
    pub fn exists(dir: &Path) -> bool {
        dir.join(STATE).is_file() && dir.join(CA_CRT).is_file()
    }

    /// Creates the CA and the server certificate in `dir` (created with mode 0700). Refuses to
    /// overwrite an existing PKI, since that would invalidate every client's trust.
    pub fn init(dir: &Path, opts: &InitOptions) -> Result<Pki> {
        Self::init_at(dir, opts, OffsetDateTime::now_utc())
    }

    /// [`Pki::init`] at a given time.
    pub fn init_at(dir: &Path, opts: &InitOptions, now: OffsetDateTime) -> Result<Pki> {
        if dir.join(CA_KEY).exists() || dir.join(STATE).exists() {
            return Err(PkiError::AlreadyInitialized {
                dir: dir.to_path_buf(),
            });
        }
        if i64::from(opts.validity_days) <= RENEW_BEFORE_DAYS || opts.validity_days > 3650 {
            return Err(PkiError::BadOption(format!(
                "server certificate validity of {} days: use {} to 3650 days (renewal starts \
                 {RENEW_BEFORE_DAYS} days before expiry)",
                opts.validity_days,
                RENEW_BEFORE_DAYS + 1
            )));
        }
        if opts.ca_validity_days <= opts.validity_days || opts.ca_validity_days > 36500 {
            return Err(PkiError::BadOption(format!(
                "CA validity of {} days: it must exceed the server certificate's {} days",
                opts.ca_validity_days, opts.validity_days
            )));
        }
        let hostnames = if opts.hostnames.is_empty() {
            vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
        } else {
            let mut h: Vec<String> = opts
                .hostnames
                .iter()
                .map(|s| s.trim().to_string())
                .collect();
            h.dedup();
            h
        };
        for h in &hostnames {
            issue::san_for(h)?;
        }
        let installation_id = match &opts.installation_id {
            Some(id) if !id.trim().is_empty() => id.trim().to_string(),
            _ => hex(&issue::random_bytes::<8>()),
        };
        fsutil::ensure_private_dir(dir)?;
        let ca = issue::generate_ca(&installation_id, opts.ca_validity_days, now)?;
        fsutil::write_secret(&dir.join(CA_KEY), ca.key_pem.as_bytes())?;
        fsutil::write_public(&dir.join(CA_CRT), ca.cert_pem.as_bytes())?;
        let mut pki = Pki {
            dir: dir.to_path_buf(),
            state: State {
                installation_id,
                hostnames,
                server_validity_days: opts.validity_days,
                external_source: None,
                pending_csr: None,
                alerts_sent: SentAlerts::new(),
            },
            ca_cert_pem: ca.cert_pem,
            ca_cert_der: ca.cert_der,
        };
        pki.issue_server_cert(now)?;
        // The state file last: its presence marks a complete initialisation.
        pki.save_state()?;
        Ok(pki)
    }

    /// Opens the PKI created by [`Pki::init`].
    pub fn open(dir: &Path) -> Result<Pki> {
        if !Self::exists(dir) {
            return Err(PkiError::NotInitialized {
                dir: dir.to_path_buf(),
            });
        }
        let state_path = dir.join(STATE);
        let state: State =
            serde_json::from_str(&fsutil::read_string(&state_path)?).map_err(|e| {
                PkiError::Corrupt {
                    path: state_path.clone(),
                    reason: e.to_string(),
                }
            })?;
        let ca_path = dir.join(CA_CRT);
        let ca_cert_pem = fsutil::read_string(&ca_path)?;
        let ca_cert_der = pem::parse(&ca_cert_pem)
            .map_err(|e| PkiError::Corrupt {
                path: ca_path.clone(),
                reason: e.to_string(),
            })?
            .into_contents();
        Ok(Pki {
            dir: dir.to_path_buf(),
            state,
            ca_cert_pem,
            ca_cert_der: CertificateDer::from(ca_cert_der),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn installation_id(&self) -> &str {
        &self.state.installation_id
    }

    pub fn hostnames(&self) -> &[String] {
        &self.state.hostnames
    }

    /// The CA certificate in PEM, for clients to trust.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    pub fn ca_cert_der(&self) -> &CertificateDer<'static> {
        &self.ca_cert_der
    }

    /// Which server certificate is served.
    pub fn active_source(&self) -> CertSource {
        self.state.external_source.unwrap_or(CertSource::Generated)
    }

    pub fn pending_csr(&self) -> Option<&PendingCsr> {
        self.state.pending_csr.as_ref()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Re-reads the state written by other processes (e.g. `vigil pki import` while the server
    /// runs). Call before [`Pki::server_certified_key`] when reloading certificates.
    pub fn reload(&mut self) -> Result<()> {
        self.state = read_state(&self.dir)?;
        Ok(())
    }

    /// Locks the directory and reloads the state, so a change starts from what is on disk.
    fn begin(&mut self) -> Result<DirLock> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.path(LOCK);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(fsutil::SECRET_MODE)
            .open(&path)
            .map_err(|source| PkiError::Io {
                action: "cannot open lock file",
                path: path.clone(),
                source,
            })?;
        file.lock().map_err(|source| PkiError::Io {
            action: "cannot lock",
            path,
            source,
        })?;
        self.reload()?;
        Ok(DirLock { _file: file })
    }

    fn save_state(&self) -> Result<()> {
        let json = serde_json::to_vec_pretty(&self.state).expect("state serialises");
        fsutil::write_public(&self.path(STATE), &json)
    }

    fn load_ca(&self) -> Result<issue::Ca> {
        let key = Zeroizing::new(fsutil::read_string(&self.path(CA_KEY))?);
        issue::Ca::load(&self.ca_cert_pem, &key).map_err(|reason| PkiError::Corrupt {
            path: self.path(CA_KEY),
            reason,
        })
    }

    fn issue_server_cert(&mut self, now: OffsetDateTime) -> Result<Arc<CertifiedKey>> {
        let ca = self.load_ca()?;
        let req = issue::server_request(
            &self.state.installation_id,
            &self.state.hostnames,
            self.state.server_validity_days,
        );
        let leaf = ca.issue(&req, now)?;
        fsutil::write_secret(&self.path(SERVER_KEY), leaf.key_pem.as_bytes())?;
        fsutil::write_public(&self.path(SERVER_CRT), leaf.cert_pem.as_bytes())?;
        leaf.certified_key()
    }

    fn read_chain(&self, name: &str) -> Result<Vec<CertificateDer<'static>>> {
        let path = self.path(name);
        import::parse_cert_chain(&fsutil::read(&path)?).map_err(|e| PkiError::Corrupt {
            path,
            reason: e.to_string(),
        })
    }

    fn read_key(&self, name: &str) -> Result<PrivatePkcs8KeyDer<'static>> {
        let path = self.path(name);
        let pem = Zeroizing::new(fsutil::read(&path)?);
        import::parse_private_key(&pem, None)
            .map(|k| k.pkcs8)
            .map_err(|e| PkiError::Corrupt {
                path,
                reason: e.to_string(),
            })
    }

    fn load_certified(&self, crt: &str, key: &str) -> Result<Arc<CertifiedKey>> {
        let mut chain = self.read_chain(crt)?;
        let signing = import::load_signing_key(&self.read_key(key)?)?;
        // A stored external chain may end in its self-signed root (kept for status display);
        // clients already trust the root, so it is not sent.
        if chain.len() > 1
            && let Some(last) = chain.last()
            && certinfo::ParsedCert::parse(last).is_ok_and(|p| p.self_issued())
        {
            chain.pop();
        }
        Ok(Arc::new(CertifiedKey::new(chain, signing)))
    }

    /// The certificate and key TLS should present now: the external one when present,
    /// otherwise the generated one.
    pub fn server_certified_key(&self) -> Result<Arc<CertifiedKey>> {
        if self.state.external_source.is_some() {
            self.load_certified(EXTERNAL_CRT, EXTERNAL_KEY)
        } else {
            self.load_certified(SERVER_CRT, SERVER_KEY)
        }
    }

    /// What the inter-server listener presents (docs/design/cluster.md): the generated
    /// server certificate followed by the CA certificate, whichever certificate the HTTPS
    /// listeners serve, so a joining server can find the CA its token names and verify the
    /// leaf against it.
    pub fn inter_server_certified_key(&self) -> Result<Arc<CertifiedKey>> {
        let mut chain = self.read_chain(SERVER_CRT)?;
        chain.truncate(1);
        chain.push(self.ca_cert_der.clone());
        let signing = import::load_signing_key(&self.read_key(SERVER_KEY)?)?;
        Ok(Arc::new(CertifiedKey::new(chain, signing)))
    }

    /// TLS state for a listener, serving [`Pki::server_certified_key`].
    pub fn live_tls(&self) -> Result<LiveTls> {
        LiveTls::new(self.server_certified_key()?)
    }

    /// Every certificate of the installation with its facts.
    pub fn status(&self) -> Result<PkiStatus> {
        let mut certificates = Vec::new();
        let corrupt = |path: PathBuf| move |reason: String| PkiError::Corrupt { path, reason };
        certificates.push(
            CertInfo::from_der(&self.ca_cert_der, CertSource::Generated, CertRole::Ca, true)
                .map_err(corrupt(self.path(CA_CRT)))?,
        );
        let external = self.state.external_source;
        for der in self.read_chain(SERVER_CRT)? {
            certificates.push(
                CertInfo::from_der(
                    &der,
                    CertSource::Generated,
                    CertRole::Server,
                    external.is_none(),
                )
                .map_err(corrupt(self.path(SERVER_CRT)))?,
            );
        }
        if let Some(source) = external {
            for (i, der) in self.read_chain(EXTERNAL_CRT)?.iter().enumerate() {
                let role = if i == 0 {
                    CertRole::Server
                } else {
                    CertRole::Chain
                };
                certificates.push(
                    CertInfo::from_der(der, source, role, true)
                        .map_err(corrupt(self.path(EXTERNAL_CRT)))?,
                );
            }
        }
        // CAs trusted for camera links are certificates of the installation too (their expiry
        // is alerted like the others'); an unreadable one is not trusted and not listed.
        certificates.extend(camera_cas::list(&self.dir)?.certificates);
        Ok(PkiStatus {
            installation_id: self.state.installation_id.clone(),
            hostnames: self.state.hostnames.clone(),
            active_source: self.active_source(),
            certificates,
            pending_csr: self.state.pending_csr.clone(),
        })
    }

    /// The certificates the installation depends on right now: the CA, the served chain and
    /// the CAs trusted for camera links.
    pub fn certs_in_use(&self) -> Result<Vec<CertInfo>> {
        Ok(self
            .status()?
            .certificates
            .into_iter()
            .filter(|c| c.in_use || c.role == CertRole::CameraCa)
            .collect())
    }

    /// Expiry alerts due at `now` for `certs` (normally [`Pki::certs_in_use`]); each threshold
    /// fires once per certificate, which is recorded in the state file.
    pub fn due_expiry_alerts(
        &mut self,
        now: OffsetDateTime,
        certs: &[CertInfo],
    ) -> Result<Vec<ExpiryAlert>> {
        let _lock = self.begin()?;
        let before = self.state.alerts_sent.clone();
        let alerts = alerts_due(now, certs, &mut self.state.alerts_sent);
        if self.state.alerts_sent != before {
            self.save_state()?;
        }
        Ok(alerts)
    }

    /// Renews the generated server certificate when it expires within 30 days of `now`.
    /// Returns the new certificate when it is the one TLS serves (swap it into [`LiveTls`]);
    /// `None` when nothing was due or when an external certificate is served (the generated one
    /// is still renewed on disk so `reset` falls back to a valid certificate).
    pub fn renew_if_due(&mut self, now: OffsetDateTime) -> Result<Option<Arc<CertifiedKey>>> {
        let _lock = self.begin()?;
        let current = self.read_chain(SERVER_CRT)?;
        let due = match current.first().map(|c| certinfo::ParsedCert::parse(c)) {
            Some(Ok(p)) => p.not_after() - now <= Duration::days(RENEW_BEFORE_DAYS),
            _ => true,
        };
        if !due {
            return Ok(None);
        }
        let renewed = self.renew_server_cert_locked(now)?;
        Ok(self.state.external_source.is_none().then_some(renewed))
    }

    /// Issues a new generated server certificate (new key) now, whatever its expiry.
    pub fn renew_server_cert(&mut self, now: OffsetDateTime) -> Result<Arc<CertifiedKey>> {
        let _lock = self.begin()?;
        self.renew_server_cert_locked(now)
    }

    fn renew_server_cert_locked(&mut self, now: OffsetDateTime) -> Result<Arc<CertifiedKey>> {
        let old_fp = self
            .read_chain(SERVER_CRT)
            .ok()
            .and_then(|c| c.first().map(|c| fingerprint_sha256(c)));
        let ck = self.issue_server_cert(now)?;
        if let Some(fp) = old_fp {
            self.state.alerts_sent.remove(&fp);
            self.save_state()?;
        }
        Ok(ck)
    }

    /// Changes the host names of the generated server certificate and reissues it.
    /// Returns the new certificate when it is the one TLS serves.
    pub fn set_hostnames(
        &mut self,
        hostnames: &[String],
        now: OffsetDateTime,
    ) -> Result<Option<Arc<CertifiedKey>>> {
        if hostnames.is_empty() {
            return Err(PkiError::BadOption(
                "the server certificate needs at least one host name or address".into(),
            ));
        }
        for h in hostnames {
            issue::san_for(h)?;
        }
        let _lock = self.begin()?;
        if hostnames == self.state.hostnames.as_slice() {
            return Ok(None);
        }
        self.state.hostnames = hostnames.to_vec();
        self.save_state()?;
        let ck = self.renew_server_cert_locked(now)?;
        Ok(self.state.external_source.is_none().then_some(ck))
    }

    /// Imports a certificate chain (PEM, server certificate first) and its private key
    /// (PKCS#8, encrypted PKCS#8, traditional RSA/EC, or legacy encrypted PEM). The key is
    /// stored decrypted as PKCS#8 with mode 0600 so the server starts unattended. A pending
    /// CSR is discarded.
    pub fn import(
        &mut self,
        cert_chain_pem: &[u8],
        key_pem: &[u8],
        passphrase: Option<&[u8]>,
    ) -> Result<Installed> {
        self.import_at(
            cert_chain_pem,
            key_pem,
            passphrase,
            OffsetDateTime::now_utc(),
        )
    }

    /// [`Pki::import`] checking validity at `now`.
    pub fn import_at(
        &mut self,
        cert_chain_pem: &[u8],
        key_pem: &[u8],
        passphrase: Option<&[u8]>,
        now: OffsetDateTime,
    ) -> Result<Installed> {
        let material = import::parse_import(cert_chain_pem, key_pem, passphrase)?;
        let _lock = self.begin()?;
        let ck = import::check_material(
            &material.chain,
            &material.key.pkcs8,
            now,
            std::slice::from_ref(&self.ca_cert_der),
        )?;
        let key_pem = Zeroizing::new(pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            material.key.pkcs8.secret_pkcs8_der().to_vec(),
        )));
        self.install_external(&material.chain, &key_pem, CertSource::Imported)?;
        fsutil::remove_if_exists(&self.path(PENDING_KEY))?;
        fsutil::remove_if_exists(&self.path(PENDING_CSR))?;
        self.state.pending_csr = None;
        self.save_state()?;
        Ok(Installed {
            info: CertInfo::from_der(
                &material.chain[0],
                CertSource::Imported,
                CertRole::Server,
                true,
            )
            .map_err(PkiError::Generate)?,
            certified_key: ck,
            key_format: Some(material.key.format),
        })
    }

    fn install_external(
        &mut self,
        chain: &[CertificateDer<'static>],
        key_pem: &str,
        source: CertSource,
    ) -> Result<()> {
        let chain_pem = pem::encode_many(
            &chain
                .iter()
                .map(|c| pem::Pem::new("CERTIFICATE", c.to_vec()))
                .collect::<Vec<_>>(),
        );
        fsutil::write_secret(&self.path(EXTERNAL_KEY), key_pem.as_bytes())?;
        fsutil::write_public(&self.path(EXTERNAL_CRT), chain_pem.as_bytes())?;
        self.state.external_source = Some(source);
        Ok(())
    }

    /// Deletes the imported or CSR-installed certificate and its key; the generated server
    /// certificate is served again and returned. Returns what was removed (None if nothing).
    pub fn reset(&mut self) -> Result<(Option<CertSource>, Arc<CertifiedKey>)> {
        let _lock = self.begin()?;
        let removed = self.state.external_source.take();
        self.save_state()?;
        fsutil::remove_if_exists(&self.path(EXTERNAL_KEY))?;
        fsutil::remove_if_exists(&self.path(EXTERNAL_CRT))?;
        Ok((removed, self.server_certified_key()?))
    }

    /// Creates a new key (stored here with mode 0600, never exported) and a CSR for it, to be
    /// signed by an external CA. Replaces any earlier pending request.
    pub fn csr(&mut self, common_name: &str, sans: &[String]) -> Result<String> {
        let cn = common_name.trim();
        if cn.is_empty() {
            return Err(PkiError::BadOption(
                "a certificate request needs a common name (--cn)".into(),
            ));
        }
        let mut names: Vec<String> = sans.iter().map(|s| s.trim().to_string()).collect();
        if names.is_empty() && issue::san_for(cn).is_ok() {
            names.push(cn.to_string());
        }
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.subject_alt_names = names
            .iter()
            .map(|n| issue::san_for(n))
            .collect::<Result<_>>()?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let csr = params.serialize_request(&key)?.pem()?;
        let _lock = self.begin()?;
        fsutil::write_secret(
            &self.path(PENDING_KEY),
            Zeroizing::new(key.serialize_pem()).as_bytes(),
        )?;
        fsutil::write_public(&self.path(PENDING_CSR), csr.as_bytes())?;
        self.state.pending_csr = Some(PendingCsr {
            common_name: cn.to_string(),
            sans: names,
            created: OffsetDateTime::now_utc(),
        });
        self.save_state()?;
        Ok(csr)
    }

    /// The pending CSR in PEM, if one is open.
    pub fn pending_csr_pem(&self) -> Result<Option<String>> {
        if self.state.pending_csr.is_none() {
            return Ok(None);
        }
        fsutil::read_string(&self.path(PENDING_CSR)).map(Some)
    }

    /// Installs the certificate (chain) an external CA issued for the pending CSR.
    pub fn install_cert(&mut self, cert_chain_pem: &[u8]) -> Result<Installed> {
        self.install_cert_at(cert_chain_pem, OffsetDateTime::now_utc())
    }

    /// [`Pki::install_cert`] checking validity at `now`.
    pub fn install_cert_at(
        &mut self,
        cert_chain_pem: &[u8],
        now: OffsetDateTime,
    ) -> Result<Installed> {
        let _lock = self.begin()?;
        if self.state.pending_csr.is_none() {
            return Err(PkiError::NoPendingCsr);
        }
        let chain = import::parse_cert_chain(cert_chain_pem)?;
        let key_pem = Zeroizing::new(fsutil::read_string(&self.path(PENDING_KEY))?);
        let key = self.read_key(PENDING_KEY)?;
        let leaf = certinfo::ParsedCert::parse(&chain[0])
            .map_err(|reason| ImportError::BadCertificate { index: 1, reason })?;
        let pending_spki = import::load_signing_key(&key)?
            .public_key()
            .map(|k| k.to_vec())
            .unwrap_or_default();
        if leaf.spki_der() != pending_spki.as_slice() {
            return Err(ImportError::NotForPendingCsr {
                subject: leaf.subject(),
            }
            .into());
        }
        let ck =
            import::check_material(&chain, &key, now, std::slice::from_ref(&self.ca_cert_der))?;
        self.install_external(&chain, &key_pem, CertSource::CsrInstalled)?;
        self.state.pending_csr = None;
        self.save_state()?;
        fsutil::remove_if_exists(&self.path(PENDING_KEY))?;
        fsutil::remove_if_exists(&self.path(PENDING_CSR))?;
        Ok(Installed {
            info: CertInfo::from_der(&chain[0], CertSource::CsrInstalled, CertRole::Server, true)
                .map_err(PkiError::Generate)?,
            certified_key: ck,
            key_format: None,
        })
    }

    /// Signs a device's CSR (e.g. a camera's) with the system CA for `days` days. The result
    /// is a TLS server+client end-entity certificate whatever the request asked for.
    pub fn sign_csr(&self, csr_pem: &str, days: u32) -> Result<String> {
        self.sign_csr_at(csr_pem, days, OffsetDateTime::now_utc())
    }

    /// [`Pki::sign_csr`] at a given time.
    pub fn sign_csr_at(&self, csr_pem: &str, days: u32, now: OffsetDateTime) -> Result<String> {
        Ok(self.load_ca()?.sign_csr(csr_pem, days, now)?)
    }

    /// [`Pki::sign_csr`], with a description of the certificate it issued (for the audit log
    /// and the answer to whoever asked).
    pub fn sign_csr_described(&self, csr_pem: &str, days: u32) -> Result<(String, CertInfo)> {
        let pem = self.sign_csr(csr_pem, days)?;
        let der = import::parse_cert_chain(pem.as_bytes())?
            .into_iter()
            .next()
            .ok_or(CsrError::Sign("no certificate was produced".into()))?;
        let info = CertInfo::from_der(&der, CertSource::Generated, CertRole::Server, false)
            .map_err(PkiError::Generate)?;
        Ok((pem, info))
    }

    /// Signs a joining Vigil server's CSR for `days` days with the subject `CN=<name>, O=Vigil`
    /// (the request's subject is ignored; its names and key are kept) as a TLS server+client
    /// certificate, and describes it (docs/design/cluster.md).
    pub fn sign_member_csr(
        &self,
        csr_pem: &str,
        name: &str,
        days: u32,
    ) -> Result<(String, CertInfo)> {
        let pem =
            self.load_ca()?
                .sign_csr_as(csr_pem, days, OffsetDateTime::now_utc(), Some(name))?;
        let der = import::parse_cert_chain(pem.as_bytes())?
            .into_iter()
            .next()
            .ok_or(CsrError::Sign("no certificate was produced".into()))?;
        let info = CertInfo::from_der(&der, CertSource::Generated, CertRole::Server, false)
            .map_err(PkiError::Generate)?;
        Ok((pem, info))
    }

    /// Issues a certificate for another role (recording-server mTLS, evidence signing).
    /// Nothing is stored: the caller keeps the key (see [`write_secret_file`]).
    pub fn issue_leaf(&self, req: &LeafRequest) -> Result<IssuedLeaf> {
        self.load_ca()?.issue(req, OffsetDateTime::now_utc())
    }

    /// Accepts only client certificates issued by this installation's CA (mutual TLS between
    /// Vigil servers).
    pub fn client_verifier(&self) -> Result<Arc<dyn ClientCertVerifier>> {
        tls::client_verifier(std::slice::from_ref(&self.ca_cert_der))
    }

    /// A TLS client configuration trusting this installation's CA, optionally presenting
    /// `identity` for mutual TLS.
    pub fn client_config(
        &self,
        identity: Option<Arc<CertifiedKey>>,
    ) -> Result<rustls::ClientConfig> {
        tls::client_config(std::slice::from_ref(&self.ca_cert_der), identity)
    }
}

fn read_state(dir: &Path) -> Result<State> {
    let path = dir.join(STATE);
    serde_json::from_str(&fsutil::read_string(&path)?).map_err(|e| PkiError::Corrupt {
        path,
        reason: e.to_string(),
    })
}

/// Exclusive advisory lock on the PKI directory, held for the duration of one change. The CLI
/// and a running server both change the store; without the lock one could overwrite the
/// other's state with a stale copy. Released when dropped (closing the file drops the lock).
struct DirLock {
    _file: std::fs::File,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
