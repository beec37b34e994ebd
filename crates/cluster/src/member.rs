//! What a recording server keeps once it has joined (`DATA_DIR/cluster/`, mode 0700):
//!
//! | file | content |
//! |---|---|
//! | `member.key` | its private key (PKCS#8 PEM, 0600), made here, never sent |
//! | `member.crt` | the certificate the installation CA issued for it |
//! | `ca.crt` | the installation CA certificate (checked against the token's hash) |
//! | `revoked.json` | the installation's revocation list, as of the last heartbeat |
//! | `member.json` | its name, the management server's URL, when it joined (written last) |
//!
//! and the joining itself ([`join`]): key and CSR, the token over TLS checked by the token's
//! CA hash, the answer checked (the certificate is for this key, from that CA).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::client::{ClientError, Connection, Target};
use crate::protocol::{self, EnrolRequest, PATH_ENROL};
use crate::token::JoinToken;
use crate::{Error, Result};

/// Directory in the data directory.
pub const DIR: &str = "cluster";
const KEY: &str = "member.key";
const CRT: &str = "member.crt";
const CA: &str = "ca.crt";
const REVOKED: &str = "revoked.json";
const ASSIGNED: &str = "assigned.json";
const META: &str = "member.json";

/// `DATA_DIR/cluster`.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join(DIR)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    name: String,
    management: String,
    #[serde(with = "time::serde::rfc3339")]
    joined: OffsetDateTime,
}

/// A joined server's identity.
pub struct Membership {
    pub name: String,
    /// The management server's inter-server URL.
    pub management: Target,
    pub joined: OffsetDateTime,
    pub cert: CertificateDer<'static>,
    pub ca: CertificateDer<'static>,
    key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("name", &self.name)
            .field("management", &self.management)
            .field("cert_sha256", &crate::cert_sha256(&self.cert))
            .finish_non_exhaustive()
    }
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

fn read_pem_cert(path: &Path) -> Result<CertificateDer<'static>> {
    let text = std::fs::read(path).map_err(io("cannot read", path))?;
    vigil_pki::import::parse_cert_chain(&text)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Invalid(format!("{}: no certificate", path.display())))
}

fn pem_cert(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

impl Membership {
    /// Whether this data directory has joined a management server.
    pub fn exists(data_dir: &Path) -> bool {
        dir(data_dir).join(META).is_file()
    }

    /// Loads the membership `join` stored.
    pub fn load(data_dir: &Path) -> Result<Membership> {
        let d = dir(data_dir);
        let meta_path = d.join(META);
        if !meta_path.is_file() {
            return Err(Error::Invalid(format!(
                "this server has not joined a management server ({} is missing): run `vigil server join https://MANAGEMENT:8444 --token-file FILE` first",
                meta_path.display()
            )));
        }
        let meta: Meta = serde_json::from_slice(
            &std::fs::read(&meta_path).map_err(io("cannot read", &meta_path))?,
        )
        .map_err(|e| Error::Invalid(format!("{}: {e}", meta_path.display())))?;
        let key_path = d.join(KEY);
        let key_pem = Zeroizing::new(
            std::fs::read_to_string(&key_path).map_err(io("cannot read", &key_path))?,
        );
        Ok(Membership {
            management: Target::parse(&meta.management, 8444)
                .map_err(|e| Error::Invalid(format!("{}: {e}", meta_path.display())))?,
            name: meta.name,
            joined: meta.joined,
            cert: read_pem_cert(&d.join(CRT))?,
            ca: read_pem_cert(&d.join(CA))?,
            key_pem,
        })
    }

    /// The certificate and key TLS presents (both directions), with the CA after the leaf.
    pub fn certified_key(&self) -> Result<Arc<rustls::sign::CertifiedKey>> {
        let key = vigil_pki::import::parse_private_key(self.key_pem.as_bytes(), None)
            .map_err(|e| Error::Invalid(format!("member.key: {e}")))?;
        let signing = vigil_pki::import::load_signing_key(&key.pkcs8)
            .map_err(|e| Error::Invalid(format!("member.key: {e}")))?;
        Ok(Arc::new(rustls::sign::CertifiedKey::new(
            vec![self.cert.clone(), self.ca.clone()],
            signing,
        )))
    }

    /// The revocation list kept from the last heartbeat (empty before the first).
    pub fn revoked(data_dir: &Path) -> Vec<String> {
        std::fs::read(dir(data_dir).join(REVOKED))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// The ids of the cameras the management server assigned to this server at some point
    /// (empty before the first assignments): those it may disable when they are assigned
    /// away, unlike cameras added on this server itself.
    pub fn assigned(data_dir: &Path) -> Vec<String> {
        std::fs::read(dir(data_dir).join(ASSIGNED))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Keeps the ids of the assigned cameras (ids only: no definition, no credential).
    pub fn save_assigned(data_dir: &Path, ids: &[String]) -> Result<()> {
        let d = dir(data_dir);
        // Present once joined; made here too so that the list is never silently lost.
        std::fs::create_dir_all(&d).map_err(io("cannot create", &d))?;
        let path = d.join(ASSIGNED);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(ids).unwrap_or_default())
            .map_err(io("cannot write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("cannot replace", &path))
    }

    /// Keeps the revocation list for the next start.
    pub fn save_revoked(data_dir: &Path, list: &[String]) -> Result<()> {
        let path = dir(data_dir).join(REVOKED);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(list).unwrap_or_default())
            .map_err(io("cannot write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("cannot replace", &path))
    }
}

/// Why joining failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(
        "this server already joined {management} as {name:?} ({dir}); to join again, have it removed on the management server and delete that directory"
    )]
    AlreadyJoined {
        name: String,
        management: String,
        dir: String,
    },
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the management server's answer is not usable: {0}")]
    BadAnswer(String),
    #[error(transparent)]
    Local(#[from] Error),
}

/// A new key and a CSR naming `sans` (the names and addresses other servers reach this one
/// by); the management server sets the subject from the token.
fn new_csr(sans: &[String]) -> Result<(String, Zeroizing<String>)> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| Error::Invalid(format!("cannot generate a key: {e}")))?;
    let mut params = rcgen::CertificateParams::new(sans.to_vec())
        .map_err(|e| Error::Invalid(format!("server names: {e}")))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "vigil recording server");
    let csr = params
        .serialize_request(&key)
        .and_then(|c| c.pem())
        .map_err(|e| Error::Invalid(format!("cannot make the certificate request: {e}")))?;
    Ok((csr, Zeroizing::new(key.serialize_pem())))
}

/// Joins the management server at `target` with `token`: generates this server's key, sends a
/// CSR naming `sans` with the token over TLS (the management certificate checked against the
/// token's CA hash), checks the certificate it gets and stores everything in
/// `DATA_DIR/cluster/`.
pub async fn join(
    data_dir: &Path,
    target: &Target,
    token: &JoinToken,
    sans: &[String],
) -> std::result::Result<Membership, JoinError> {
    if Membership::exists(data_dir) {
        let m = Membership::load(data_dir)?;
        return Err(JoinError::AlreadyJoined {
            name: m.name,
            management: m.management.to_string(),
            dir: dir(data_dir).display().to_string(),
        });
    }
    let (csr, key_pem) = new_csr(sans)?;
    let verifier = crate::tls::TokenCaVerifier::new(*token.ca_sha256());
    let config = Arc::new(crate::tls::join_client_config(verifier.clone())?);
    let mut conn = Connection::open(target, config).await?;
    let body = serde_json::to_vec(&EnrolRequest {
        token: token.expose(),
        csr,
    })
    .map_err(|e| JoinError::BadAnswer(e.to_string()))?;
    let answer = conn
        .call(hyper::Method::POST, PATH_ENROL, Some(body))
        .await?;
    let reply =
        protocol::parse_enrol_reply(&answer).map_err(|e| JoinError::BadAnswer(e.to_string()))?;
    let bad = |what: String| JoinError::BadAnswer(what);
    let cert = vigil_pki::import::parse_cert_chain(reply.certificate.as_bytes())
        .map_err(|e| bad(format!("certificate: {e}")))?
        .into_iter()
        .next()
        .ok_or_else(|| bad("no certificate".into()))?;
    let ca = vigil_pki::import::parse_cert_chain(reply.ca.as_bytes())
        .map_err(|e| bad(format!("CA certificate: {e}")))?
        .into_iter()
        .next()
        .ok_or_else(|| bad("no CA certificate".into()))?;
    if crate::cert_sha256(&ca) != crate::hex::encode(token.ca_sha256()) {
        return Err(bad(
            "its CA certificate is not the one the token names".into()
        ));
    }
    // The certificate must be for our key and chain to that CA.
    let key = vigil_pki::import::parse_private_key(key_pem.as_bytes(), None)
        .map_err(|e| bad(format!("key: {e}")))?;
    vigil_pki::import::check_material(
        std::slice::from_ref(&cert),
        &key.pkcs8,
        OffsetDateTime::now_utc(),
        std::slice::from_ref(&ca),
    )
    .map_err(|e| {
        bad(format!(
            "the issued certificate does not fit this server's key and CA: {e}"
        ))
    })?;

    let d = dir(data_dir);
    std::fs::create_dir_all(&d).map_err(io("cannot create", &d))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))
            .map_err(io("cannot restrict", &d))?;
    }
    vigil_pki::write_secret_file(&d.join(KEY), key_pem.as_bytes()).map_err(Error::from)?;
    let write = |name: &str, bytes: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, bytes).map_err(io("cannot write", &p))
    };
    write(CRT, pem_cert(&cert).as_bytes())?;
    write(CA, pem_cert(&ca).as_bytes())?;
    let meta = Meta {
        name: reply.name.clone(),
        management: target.to_string(),
        joined: OffsetDateTime::now_utc(),
    };
    write(
        META,
        &serde_json::to_vec_pretty(&meta).map_err(|e| bad(e.to_string()))?,
    )?;
    Ok(Membership {
        name: meta.name,
        management: target.clone(),
        joined: meta.joined,
        cert,
        ca,
        key_pem,
    })
}
