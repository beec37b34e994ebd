//! ONVIF camera use cases for every front end: discovering devices (WS-Discovery, then what
//! each says it is, and whether it is already added) and adding a camera by ONVIF (profiles
//! and stream URIs read, the recording stream and the grid stream chosen, the device's
//! identity recorded). docs/cameras-onvif.md; the client is vigil-onvif
//! (docs/design/onvif.md).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use vigil_access::{AccessError, AuditKind};
use vigil_media::ingest_tls::TrustStore;
use vigil_media::store::{Camera, DeviceIdentity, NewCamera, NewSecondary, Store, StoreError};
use vigil_onvif::client::MediaVersion;
use vigil_onvif::discovery::{self, Sweep};
use vigil_onvif::media::Profile;
use vigil_onvif::{Client, Credentials, DiscoveryError, OnvifError, Options, Target};

use crate::ErrorKind;
use crate::audit::Trail;
use crate::cameras::{self, CameraError};

#[derive(Debug, thiserror::Error)]
pub enum OnvifUseError {
    #[error("{0}")]
    Onvif(#[from] OnvifError),
    #[error("{0}")]
    Discovery(#[from] DiscoveryError),
    #[error("{0}")]
    Camera(#[from] CameraError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error(
        "the device has no H.264 or H.265 video profile to record (profiles: {0}); configure one on the device"
    )]
    NoVideoProfile(String),
    #[error(
        "'{0}' is plain HTTP: the camera's ONVIF service and its stream addresses would be unverified; use https://, or allow plain HTTP for this camera explicitly"
    )]
    PlainHttp(String),
    #[error("the camera was added but its identity could not be recorded in the audit log: {0}")]
    Audit(AccessError),
    #[error(
        "wait {0} s for answers: give 1 to {MAX_WAIT_S} s (cameras answer within a second or two)"
    )]
    BadWait(u64),
    #[error(
        "say what to probe: a subnet (an IPv4 subnet), the multicast probe of the server's local network, or both"
    )]
    NothingToProbe,
    #[error(
        "camera '{0}' was not added by ONVIF, so no device identity is recorded for it and there is no device to accept; add it with `vigil camera add NAME --onvif https://HOST` to have its device checked"
    )]
    NotOnvif(String),
    #[error("the installation CA could not sign the camera's certificate request: {0}")]
    Pki(String),
    #[error(
        "the camera's certificate request names {names}, not its address {host}; the certificate was not installed (check the camera's host name settings)"
    )]
    CsrNames { host: String, names: String },
    #[error(
        "camera {camera} took the new certificate (SHA-256 {issued}) but a new connection does not see it: {detail}; its recorded certificate is unchanged, check the camera's HTTPS settings and try again"
    )]
    NotServed {
        camera: String,
        issued: String,
        detail: String,
    },
}

/// The longest a discovery listens for answers after the last probe, seconds.
pub const MAX_WAIT_S: u64 = 30;

impl OnvifUseError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            OnvifUseError::Camera(e) => e.kind(),
            OnvifUseError::Onvif(OnvifError::BadAddress(_))
            | OnvifUseError::Discovery(DiscoveryError::BadSubnet(_))
            | OnvifUseError::Discovery(DiscoveryError::SubnetTooLarge { .. })
            | OnvifUseError::PlainHttp(_)
            | OnvifUseError::BadWait(_)
            | OnvifUseError::NothingToProbe => ErrorKind::InvalidInput,
            // The device said no or cannot be used as it is: the request must change (other
            // credentials, a pin, a profile on the device), not the server.
            OnvifUseError::Onvif(
                OnvifError::Unauthorized
                | OnvifError::HttpAuthRequired { .. }
                | OnvifError::HttpAuthUnsupported(_)
                | OnvifError::DigestOverPlainHttp { .. }
                | OnvifError::CertificateUntrusted { .. }
                | OnvifError::CertificateChanged { .. }
                | OnvifError::PlaintextSecret { .. },
            )
            | OnvifUseError::Onvif(OnvifError::NoAdvancedSecurity)
            | OnvifUseError::NoVideoProfile(_)
            | OnvifUseError::NotOnvif(_)
            | OnvifUseError::CsrNames { .. }
            | OnvifUseError::NotServed { .. } => ErrorKind::Conflict,
            OnvifUseError::Onvif(_) => ErrorKind::Unavailable,
            OnvifUseError::Discovery(DiscoveryError::Socket(_))
            | OnvifUseError::Store(_)
            | OnvifUseError::Pki(_)
            | OnvifUseError::Audit(_) => ErrorKind::Internal,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            OnvifUseError::Camera(e) => e.code(),
            OnvifUseError::Onvif(OnvifError::Unauthorized) => "onvif_unauthorized",
            OnvifUseError::Onvif(OnvifError::CertificateUntrusted { .. }) => {
                "onvif_certificate_untrusted"
            }
            OnvifUseError::Onvif(OnvifError::CertificateChanged { .. }) => {
                "onvif_certificate_changed"
            }
            OnvifUseError::Discovery(DiscoveryError::BadSubnet(_))
            | OnvifUseError::Discovery(DiscoveryError::SubnetTooLarge { .. }) => "invalid_subnet",
            OnvifUseError::Onvif(OnvifError::BadAddress(_)) | OnvifUseError::PlainHttp(_) => {
                "invalid_onvif_address"
            }
            OnvifUseError::NoVideoProfile(_) => "onvif_no_video_profile",
            OnvifUseError::NotOnvif(_) => "camera_not_onvif",
            OnvifUseError::Onvif(OnvifError::NoAdvancedSecurity) => "onvif_no_advanced_security",
            OnvifUseError::CsrNames { .. } => "camera_csr_names",
            OnvifUseError::NotServed { .. } => "camera_certificate_not_served",
            OnvifUseError::BadWait(_) => "invalid_wait",
            OnvifUseError::NothingToProbe => "invalid_field",
            e if e.kind() == ErrorKind::Internal => "internal",
            _ => "onvif_device_error",
        }
    }
}

impl crate::error::Classified for OnvifUseError {
    fn kind(&self) -> ErrorKind {
        OnvifUseError::kind(self)
    }
    fn code(&self) -> &'static str {
        OnvifUseError::code(self)
    }

    fn database_error(&self) -> Option<&vigil_access::AccessError> {
        match self {
            OnvifUseError::Audit(e) => Some(e),
            _ => None,
        }
    }
}

/// The CAs an ONVIF or RTSPS camera certificate may chain to: the installation CA
/// (`DATA_DIR/pki/ca.crt`), the CAs an admin trusted for cameras (`DATA_DIR/pki/camera-cas/`,
/// [`crate::camera_cas`]) and the system roots.
pub fn camera_trust(data_dir: &std::path::Path) -> TrustStore {
    let pki = data_dir.join("pki");
    let ca_path = pki.join(vigil_pki::CA_CERT_FILE);
    let mut cas = match std::fs::read(&ca_path) {
        Ok(pem) => vigil_pki::import::parse_cert_chain(&pem).unwrap_or_else(|e| {
            tracing::warn!(path = %ca_path.display(), error = %e, "the installation CA cannot be read; camera certificates are verified against the system roots only");
            Vec::new()
        }),
        Err(_) => Vec::new(),
    };
    match vigil_pki::camera_cas::ders(&pki) {
        Ok((imported, unreadable)) => {
            for (path, reason) in unreadable {
                tracing::warn!(path = %path.display(), %reason, "a camera CA file cannot be read; it is not trusted");
            }
            cas.extend(imported);
        }
        Err(e) => {
            tracing::warn!(error = %e, "the CAs trusted for cameras cannot be read; only the installation CA and the system roots verify camera certificates");
        }
    }
    TrustStore::new(&cas, true)
}

/// What a discovery sweep covers.
#[derive(Debug, Clone)]
pub struct DiscoverRequest {
    /// Probe every address of this IPv4 subnet by unicast, besides the multicast probe.
    pub subnet: Option<String>,
    /// Send the multicast probe on the local segment.
    pub multicast: bool,
    /// The WS-Discovery port probed (3702 for real cameras).
    pub port: u16,
    /// How long to listen for answers after the last probe.
    pub wait: Duration,
}

impl Default for DiscoverRequest {
    fn default() -> Self {
        DiscoverRequest {
            subnet: None,
            multicast: true,
            port: discovery::PORT,
            wait: Duration::from_secs(3),
        }
    }
}

/// One device found, as every front end lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiscoveredDevice {
    /// The address its answer came from.
    pub address: String,
    /// The device service address to add it with (`vigil camera add NAME --onvif ...`): the
    /// https one when it offers both.
    pub onvif_url: String,
    /// Its WS-Discovery endpoint id (`urn:uuid:...`).
    pub endpoint: String,
    /// Name from its discovery scopes, if any.
    pub name: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub firmware: Option<String>,
    pub serial: Option<String>,
    /// Where the identity came from: `device` (GetDeviceInformation answered without
    /// credentials) or `scopes` (only what the discovery answer says; most cameras want
    /// credentials for their device information).
    pub identity: String,
    /// The device announced an https service address.
    pub https: bool,
    /// The name of the camera it is already added as, if any (same serial, or same address).
    pub added_as: Option<String>,
}

/// Devices asked for their identity at once at most.
const IDENTIFY_CONCURRENCY: usize = 16;
/// Each of those questions as a whole.
const IDENTIFY_TIMEOUT: Duration = Duration::from_secs(3);

/// Finds ONVIF devices by WS-Discovery and says what each is and whether it is added.
pub async fn discover(
    store: &Store,
    trust: &TrustStore,
    req: &DiscoverRequest,
) -> Result<Vec<DiscoveredDevice>, OnvifUseError> {
    if req.wait.is_zero() || req.wait > Duration::from_secs(MAX_WAIT_S) {
        return Err(OnvifUseError::BadWait(req.wait.as_secs()));
    }
    if req.subnet.is_none() && !req.multicast {
        return Err(OnvifUseError::NothingToProbe);
    }
    let unicast = match &req.subnet {
        Some(s) => discovery::hosts(s)?,
        None => Vec::new(),
    };
    let result = discovery::sweep(&Sweep {
        multicast: req.multicast,
        unicast,
        port: req.port,
        wait: req.wait,
        ..Sweep::default()
    })
    .await?;
    if result.unreadable + result.other_probe + result.over_limit > 0 {
        tracing::info!(
            unreadable = result.unreadable,
            other_probe = result.other_probe,
            over_limit = result.over_limit,
            "WS-Discovery answers skipped"
        );
    }
    let added = AddedIndex::new(store)?;
    let semaphore = Arc::new(tokio::sync::Semaphore::new(IDENTIFY_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, found) in result.found.into_iter().enumerate() {
        let semaphore = semaphore.clone();
        let trust = trust.clone();
        tasks.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            (i, identify(found, trust).await)
        });
    }
    let mut devices = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok((i, mut d)) = done {
            d.added_as = added.find(&d);
            devices.push((i, d));
        }
    }
    devices.sort_by_key(|(i, _)| *i);
    Ok(devices.into_iter().map(|(_, d)| d).collect())
}

async fn identify(found: discovery::Found, trust: TrustStore) -> DiscoveredDevice {
    let m = &found.device;
    let https = m.xaddrs.iter().find(|x| x.starts_with("https://"));
    let onvif_url = https.unwrap_or(&m.xaddrs[0]).clone();
    let mut d = DiscoveredDevice {
        address: found.from.ip().to_string(),
        onvif_url: onvif_url.clone(),
        endpoint: m.endpoint.clone(),
        name: m.scope("name"),
        manufacturer: m.scope("mfr").or_else(|| m.scope("manufacturer")),
        model: m.scope("hardware"),
        firmware: None,
        serial: None,
        identity: "scopes".into(),
        https: https.is_some(),
        added_as: None,
    };
    // Without credentials: discovery must not send them to whatever answered a probe. Over
    // https the usual certificate rules apply; a device whose certificate is not trusted yet
    // is listed with what its scopes say.
    let Ok(target) = Target::parse(&onvif_url) else {
        return d;
    };
    let mut options = Options::new(trust);
    options.timeout = IDENTIFY_TIMEOUT;
    let client = Client::new(target, None, options);
    if let Ok(info) = client.device_information().await {
        d.manufacturer = Some(info.manufacturer).filter(|s| !s.is_empty());
        d.model = Some(info.model).filter(|s| !s.is_empty());
        d.firmware = Some(info.firmware_version).filter(|s| !s.is_empty());
        d.serial = Some(info.serial_number).filter(|s| !s.is_empty());
        d.identity = "device".into();
    }
    d
}

/// The cameras already added: by the serial and ONVIF address (host and port) recorded when
/// they were added by ONVIF, and by the host of their stream URLs (one camera per address).
struct AddedIndex {
    by_serial: HashMap<String, String>,
    by_onvif: HashMap<String, String>,
    by_host: HashMap<String, String>,
}

impl AddedIndex {
    fn new(store: &Store) -> Result<AddedIndex, StoreError> {
        let cameras = store.cameras()?;
        let name_of: HashMap<&str, &str> = cameras
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str()))
            .collect();
        let mut index = AddedIndex {
            by_serial: HashMap::new(),
            by_onvif: HashMap::new(),
            by_host: HashMap::new(),
        };
        for c in &cameras {
            for url in std::iter::once(&c.url).chain(c.secondary.as_ref().map(|s| &s.url)) {
                if let Some((host, _)) = host_port(url) {
                    index.by_host.entry(host).or_insert_with(|| c.name.clone());
                }
            }
        }
        for (id, d) in store.device_identities()? {
            let Some(name) = name_of.get(id.as_str()) else {
                continue;
            };
            if !d.serial.is_empty() {
                index.by_serial.insert(d.serial.clone(), (*name).to_owned());
            }
            if let Some((host, port)) = host_port(&d.onvif_url) {
                index
                    .by_onvif
                    .insert(format!("{host}:{port}"), (*name).to_owned());
            }
        }
        Ok(index)
    }

    fn find(&self, d: &DiscoveredDevice) -> Option<String> {
        d.serial
            .as_ref()
            .and_then(|s| self.by_serial.get(s))
            .or_else(|| {
                host_port(&d.onvif_url).and_then(|(h, p)| self.by_onvif.get(&format!("{h}:{p}")))
            })
            .or_else(|| self.by_host.get(&d.address))
            .cloned()
    }
}

/// The host (an IP address in its canonical form, a name in lower case) and port of a URL.
fn host_port(url: &str) -> Option<(String, u16)> {
    let u = url::Url::parse(url).ok()?;
    let h = u.host_str()?.trim_start_matches('[').trim_end_matches(']');
    let host = match h.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => h.to_ascii_lowercase(),
    };
    Some((host, u.port_or_known_default().unwrap_or(0)))
}

/// A camera to add from its ONVIF device.
#[derive(Clone)]
pub struct OnvifAdd {
    pub name: String,
    /// `https://HOST[:PORT][/PATH]` (or `http://` when `allow_http`).
    pub address: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Accept exactly this certificate (SHA-256 fingerprint) for the device's HTTPS.
    pub pin: Option<String>,
    /// Allow a plain-HTTP ONVIF address.
    pub allow_http: bool,
    pub enabled: bool,
    pub max_age_secs: Option<i64>,
    pub max_bytes: Option<i64>,
}

impl std::fmt::Debug for OnvifAdd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnvifAdd")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("pin", &self.pin)
            .finish_non_exhaustive()
    }
}

/// A stream picked from the device's profiles.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChosenStream {
    pub profile: String,
    pub encoding: String,
    pub width: u32,
    pub height: u32,
    pub url: String,
}

/// What adding by ONVIF did.
#[derive(Debug, Clone)]
pub struct OnvifAdded {
    pub camera: Camera,
    pub main: ChosenStream,
    pub secondary: Option<ChosenStream>,
    pub identity: DeviceIdentity,
}

fn recordable(p: &Profile) -> bool {
    matches!(p.encoding.as_str(), "H264" | "H265") && p.width > 0 && p.height > 0
}

/// The profile to record (the most pixels; at equal size H.264, which every browser plays,
/// then the higher frame rate) and the one for live grids: an H.264 profile smaller than the
/// main one, the largest of those at most 1280 pixels wide, else the smallest (grids show
/// many tiles, and only H.264 plays in every browser).
pub fn choose_streams(profiles: &[Profile]) -> Option<(&Profile, Option<&Profile>)> {
    let main = profiles
        .iter()
        .filter(|p| recordable(p))
        .max_by_key(|p| (p.pixels(), p.encoding == "H264", p.frame_rate.unwrap_or(0)))?;
    let smaller: Vec<&Profile> = profiles
        .iter()
        .filter(|p| {
            recordable(p)
                && p.encoding == "H264"
                && p.token != main.token
                && p.pixels() < main.pixels()
        })
        .collect();
    let secondary = smaller
        .iter()
        .filter(|p| p.width <= 1280)
        .max_by_key(|p| p.pixels())
        .or_else(|| smaller.iter().min_by_key(|p| p.pixels()))
        .copied();
    Some((main, secondary))
}

/// A stream URI as a camera URL: without user information (retina refuses credentials in
/// URLs, and they would be stored and shown).
fn clean_uri(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => uri.to_owned(),
    }
}

/// Adds a camera from its ONVIF device: reads its identity, profiles and stream URIs, records
/// the best stream and offers a smaller one for live grids as the secondary (live only), and
/// stores the device's identity (serial, certificate fingerprint). One audit entry for the
/// camera (as every add) and one for its identity.
pub async fn add(
    store: &Store,
    trust: TrustStore,
    req: &OnvifAdd,
    trail: &Trail<'_>,
) -> Result<OnvifAdded, OnvifUseError> {
    let target = Target::parse(&req.address)?;
    if !target.is_https() && !req.allow_http {
        return Err(OnvifUseError::PlainHttp(req.address.clone()));
    }
    vigil_media::store::check_camera_name(&req.name)
        .map_err(|e| OnvifUseError::Camera(CameraError::Store(e)))?;
    let pin = req
        .pin
        .as_deref()
        .map(vigil_media::ingest_tls::parse_fingerprint)
        .transpose()
        .map_err(|e| OnvifUseError::Camera(CameraError::Store(StoreError::InvalidCamera(e))))?;
    let credentials = req
        .username
        .as_ref()
        .map(|u| Credentials::new(u.clone(), req.password.clone().unwrap_or_default()));
    let mut options = Options::new(trust);
    options.pin = pin;
    options.allow_plain_http = req.allow_http;
    let client = Client::new(target.clone(), credentials, options);

    let info = client.device_information().await?;
    let (profiles, version) = client.profiles().await?;
    let (main, secondary) = choose_streams(&profiles).ok_or_else(|| {
        OnvifUseError::NoVideoProfile(
            profiles
                .iter()
                .map(|p| format!("{} {} {}x{}", p.token, p.encoding, p.width, p.height))
                .collect::<Vec<_>>()
                .join(", "),
        )
    })?;
    let main = chosen(&client, main, version).await?;
    let secondary = match secondary {
        Some(p) => Some(chosen(&client, p, version).await?),
        None => None,
    };
    let identity = DeviceIdentity {
        onvif_url: target.url().to_string(),
        manufacturer: info.manufacturer,
        model: info.model,
        firmware: info.firmware_version,
        serial: info.serial_number,
        certificate: client.certificate_fingerprint(),
    };
    let camera = cameras::add(
        store,
        &NewCamera {
            name: req.name.clone(),
            url: main.url.clone(),
            username: req.username.clone(),
            password: req.password.clone(),
            max_age_secs: req.max_age_secs,
            max_bytes: req.max_bytes,
            secondary: secondary.as_ref().map(|s| NewSecondary {
                url: s.url.clone(),
                username: req.username.clone(),
                password: req.password.clone(),
                mode: Default::default(),
            }),
        },
        req.enabled,
        trail,
    )?;
    store.set_device_identity(&camera.id, &identity)?;
    trail
        .record(
            AuditKind::CameraChanged,
            serde_json::json!({
                "action": "identified", "camera": camera.name, "onvif_url": identity.onvif_url,
                "manufacturer": identity.manufacturer, "model": identity.model,
                "firmware": identity.firmware, "serial": identity.serial,
                "certificate": identity.certificate,
                "main_profile": main.profile,
                "secondary_profile": secondary.as_ref().map(|s| s.profile.clone()),
            }),
        )
        .map_err(OnvifUseError::Audit)?;
    Ok(OnvifAdded {
        camera,
        main,
        secondary,
        identity,
    })
}

async fn chosen(
    client: &Client,
    p: &Profile,
    version: MediaVersion,
) -> Result<ChosenStream, OnvifUseError> {
    let uri = client.stream_uri(&p.token, version).await?;
    Ok(ChosenStream {
        profile: p.token.clone(),
        encoding: p.encoding.clone(),
        width: p.width,
        height: p.height,
        url: clean_uri(&uri),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(token: &str, enc: &str, w: u32, h: u32, fps: u32) -> Profile {
        Profile {
            token: token.into(),
            name: token.into(),
            encoding: enc.into(),
            width: w,
            height: h,
            frame_rate: Some(fps),
            bitrate: None,
        }
    }

    #[test]
    fn the_biggest_stream_records_and_a_small_h264_one_serves_grids() {
        let profiles = [
            p("jpeg", "JPEG", 3840, 2160, 5),
            p("main", "H265", 2592, 1944, 25),
            p("main264", "H264", 2592, 1944, 25),
            p("mid", "H264", 1280, 720, 25),
            p("low", "H264", 640, 360, 15),
            p("sub265", "H265", 1280, 720, 25),
        ];
        let (main, sub) = choose_streams(&profiles).unwrap();
        assert_eq!(main.token, "main264");
        assert_eq!(sub.unwrap().token, "mid");
        // Only big H.264 profiles below the main one: the smallest of them.
        let big = [
            p("a", "H264", 3840, 2160, 25),
            p("b", "H264", 2560, 1440, 25),
            p("c", "H264", 1920, 1080, 25),
        ];
        let (main, sub) = choose_streams(&big).unwrap();
        assert_eq!(
            (main.token.as_str(), sub.unwrap().token.as_str()),
            ("a", "c")
        );
        // One stream: no secondary; no video: nothing to record.
        assert!(choose_streams(&big[..1]).unwrap().1.is_none());
        assert!(choose_streams(&[p("j", "JPEG", 640, 480, 5), p("x", "", 0, 0, 0)]).is_none());
    }

    #[test]
    fn stream_uris_lose_their_credentials() {
        assert_eq!(
            clean_uri("rtsp://admin:secret@10.0.0.9:554/live?x=1"),
            "rtsp://10.0.0.9:554/live?x=1"
        );
        assert_eq!(clean_uri("rtsp://10.0.0.9/a"), "rtsp://10.0.0.9/a");
    }
}
