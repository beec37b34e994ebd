//! Device allow-listing: before a recorder connects to a camera that was added by ONVIF, the
//! device answering at the camera's ONVIF address is asked who it is (GetDeviceInformation over
//! the link verified as when it was added) and compared with the identity recorded then; a
//! different device's streams are refused, reported once per change (`camera.device_mismatch`,
//! an audit entry, an alarm by the built-in rule) until an admin accepts it on purpose
//! ([`accept_device`]). User guide docs/cameras-onvif.md, design docs/design/onvif.md
//! ("Device allow-listing").

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigil_access::{Access, AuditKind, AuditRecord};
use vigil_events::{Category, EventBus, NewEvent, Severity};
use vigil_media::ingest::{FrameSource, IngestError, Opener, Source};
use vigil_media::ingest_tls::TrustStore;
use vigil_media::store::{DeviceCheck, DeviceIdentity, Store, StoreError, main_stream_id, now_us};
use vigil_onvif::{Client, Credentials, OnvifError, Options, Target};

use crate::audit::Trail;
use crate::cameras::CameraError;
use crate::onvif::OnvifUseError;

/// How long a device that answered as recorded is not asked again. A flapping link
/// reconnects within its back-off (1, 2, 4 … s) without asking the device each time; a
/// device replaced by hand (unplugged, another plugged in and booted) takes far longer than
/// this, so a cached answer never covers a swap.
pub const MATCH_CACHE_TTL: Duration = Duration::from_secs(10);
/// The question as a whole (connect, TLS, answer): a recorder waits for it before it
/// connects.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// The check states stored and shown (`DeviceCheck::state`).
pub const VERIFIED: &str = "verified";
pub const MISMATCH: &str = "mismatch";
pub const UNVERIFIED: &str = "unverified";

/// What a device said it is, and the certificate its ONVIF service presented. A field the
/// device could not be asked for (its certificate was already another one) is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Found {
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub firmware: Option<String>,
    pub certificate: Option<String>,
}

impl Found {
    /// One key for "the same device answered": a repeated check of it is no change.
    fn key(&self) -> String {
        let f = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
        format!(
            "serial={} model={} manufacturer={} certificate={}",
            f(&self.serial),
            f(&self.model),
            f(&self.manufacturer),
            f(&self.certificate)
        )
    }
}

/// One way the device answering differs from the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// `serial`, `model`, `manufacturer` or `certificate`.
    pub field: &'static str,
    pub expected: String,
    pub found: String,
}

/// What a check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The recorded device answered.
    Verified,
    /// Another device answered: its streams are refused.
    Mismatch {
        found: Found,
        differences: Vec<Difference>,
    },
    /// The device could not be asked (its ONVIF service down, credentials refused, a bad
    /// answer): nothing says it is another device.
    Unverified { reason: String },
}

/// How the device answering differs from the recorded identity. Serial, manufacturer and
/// model must be equal (after trimming; what the device reported when it was added); the
/// firmware may change (updates). The certificate must be the recorded one where one was
/// recorded (HTTPS). A device that reported no serial when it was added is told apart by
/// model, manufacturer and certificate only.
pub fn compare(recorded: &DeviceIdentity, found: &Found) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut field = |name: &'static str, expected: &str, found: &Option<String>| {
        let found = found.as_deref().map(str::trim);
        if found != Some(expected.trim()) {
            out.push(Difference {
                field: name,
                expected: expected.trim().to_owned(),
                found: found.unwrap_or("unknown").to_owned(),
            });
        }
    };
    field("serial", &recorded.serial, &found.serial);
    field("model", &recorded.model, &found.model);
    field("manufacturer", &recorded.manufacturer, &found.manufacturer);
    if let Some(expected) = &recorded.certificate
        && found.certificate.as_ref() != Some(expected)
    {
        out.push(Difference {
            field: "certificate",
            expected: expected.clone(),
            found: found
                .certificate
                .clone()
                .unwrap_or_else(|| "none (plain HTTP)".into()),
        });
    }
    out
}

/// Asks the device at the recorded ONVIF address who it is and compares. Over HTTPS the
/// certificate must be the recorded one (asked with it as a pin) or verify against the trust
/// store as when the camera was added: a device with another certificate that verifies is
/// asked who it is (so the refusal names its serial), one whose certificate does not verify
/// is not sent a login and is refused for its certificate alone.
pub async fn check(
    recorded: &DeviceIdentity,
    credentials: Option<Credentials>,
    trust: TrustStore,
    timeout: Duration,
) -> Verdict {
    let target = match Target::parse(&recorded.onvif_url) {
        Ok(t) => t,
        Err(e) => {
            return Verdict::Unverified {
                reason: e.to_string(),
            };
        }
    };
    let ask = |pin: Option<String>| {
        let mut options = Options::new(trust.clone());
        options.timeout = timeout;
        options.pin = pin;
        // A plain-http address was allowed by an admin when the camera was added.
        options.allow_plain_http = !target.is_https();
        let client = Client::new(target.clone(), credentials.clone(), options);
        async move {
            let answer = client.device_information().await;
            (answer, client.certificate_fingerprint())
        }
    };
    let pin = recorded.certificate.clone().filter(|_| target.is_https());
    let pinned = pin.is_some();
    let (answer, certificate) = match ask(pin).await {
        (Err(OnvifError::CertificateChanged { new, .. }), _) if pinned => {
            match ask(None).await {
                (Ok(info), certificate) => (Ok(info), certificate),
                // Only the certificate is known.
                _ => {
                    return Verdict::Mismatch {
                        differences: vec![Difference {
                            field: "certificate",
                            expected: recorded.certificate.clone().unwrap_or_default(),
                            found: new.clone(),
                        }],
                        found: Found {
                            certificate: Some(new),
                            ..Found::default()
                        },
                    };
                }
            }
        }
        other => other,
    };
    match answer {
        Ok(info) => {
            let found = Found {
                manufacturer: Some(info.manufacturer),
                model: Some(info.model),
                serial: Some(info.serial_number),
                firmware: Some(info.firmware_version),
                certificate,
            };
            let differences = compare(recorded, &found);
            if differences.is_empty() {
                Verdict::Verified
            } else {
                Verdict::Mismatch { found, differences }
            }
        }
        Err(e) => Verdict::Unverified {
            reason: e.to_string(),
        },
    }
}

/// Recent matches, by camera id, with the identity they matched (a new record makes them
/// stale at once).
#[derive(Debug)]
pub struct MatchCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (DeviceIdentity, Instant)>>,
}

impl MatchCache {
    pub fn new(ttl: Duration) -> MatchCache {
        MatchCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `camera_id`'s device matched `identity` less than the TTL before `now`.
    pub fn fresh(&self, camera_id: &str, identity: &DeviceIdentity, now: Instant) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(camera_id).is_some_and(|(matched, at)| {
            matched == identity && now.saturating_duration_since(*at) < self.ttl
        })
    }

    pub fn put(&self, camera_id: &str, identity: &DeviceIdentity, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(camera_id.to_owned(), (identity.clone(), now));
    }

    pub fn forget(&self, camera_id: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(camera_id);
    }
}

/// The recording runtime's device checks: asks, caches matches, stores the outcome in the
/// camera registry and reports each change once (event, audit entry).
pub struct DeviceChecker {
    store: Arc<Store>,
    trust: TrustStore,
    events: Option<Arc<EventBus>>,
    /// The server name events are published under.
    server: String,
    access: Option<Arc<Access>>,
    cache: MatchCache,
    timeout: Duration,
    /// One check per camera at a time: its two streams connecting at once ask once.
    busy: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl DeviceChecker {
    pub fn new(
        store: Arc<Store>,
        trust: TrustStore,
        events: Option<Arc<EventBus>>,
        access: Option<Arc<Access>>,
    ) -> DeviceChecker {
        DeviceChecker {
            store,
            trust,
            server: events
                .as_ref()
                .map(|b| b.server().to_owned())
                .unwrap_or_default(),
            events,
            access,
            cache: MatchCache::new(MATCH_CACHE_TTL),
            timeout: ASK_TIMEOUT,
            busy: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the streams of camera `camera_id` may be played now: `Err` with the reason
    /// (for the camera's status) when another device answers at its address. A camera
    /// without a recorded identity (added by RTSP URL) is not checked.
    pub async fn admit(&self, camera_id: &str) -> Result<(), String> {
        let gate = {
            let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            busy.entry(camera_id.to_owned()).or_default().clone()
        };
        let _one_at_a_time = gate.lock().await;
        let (camera, recorded, password) = match self.read(camera_id) {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(()),
            Err(e) => {
                // The registry cannot be read: the recorder's own open reads it too and
                // reports; this check is not the place to stop recording.
                tracing::error!(camera = camera_id, error = %e, "cannot read the camera's device identity; not checked");
                return Ok(());
            }
        };
        if self.cache.fresh(camera_id, &recorded, Instant::now()) {
            return Ok(());
        }
        let credentials = camera
            .username
            .clone()
            .map(|u| Credentials::new(u, password.unwrap_or_default()));
        let verdict = check(&recorded, credentials, self.trust.clone(), self.timeout).await;
        let name = camera.name.as_str();
        match &verdict {
            Verdict::Verified => {
                self.cache.put(camera_id, &recorded, Instant::now());
                self.report(camera_id, name, &recorded, &verdict);
                Ok(())
            }
            Verdict::Unverified { .. } => {
                self.cache.forget(camera_id);
                self.report(camera_id, name, &recorded, &verdict);
                Ok(())
            }
            Verdict::Mismatch { .. } => {
                self.cache.forget(camera_id);
                Err(self.report(camera_id, name, &recorded, &verdict))
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn read(
        &self,
        camera_id: &str,
    ) -> Result<Option<(vigil_media::store::Camera, DeviceIdentity, Option<String>)>, StoreError>
    {
        let Some(recorded) = self
            .store
            .device_identities()?
            .into_iter()
            .find(|(id, _)| id == camera_id)
            .map(|(_, d)| d)
        else {
            return Ok(None);
        };
        let camera = self.store.camera(camera_id)?;
        let password = self.store.camera_password(camera_id)?;
        Ok(Some((camera, recorded, password)))
    }

    /// Stores the check and, when it differs from the last one stored (another state, or
    /// another device), publishes it and, for a mismatch, audits it. The status text.
    fn report(
        &self,
        camera_id: &str,
        name: &str,
        recorded: &DeviceIdentity,
        verdict: &Verdict,
    ) -> String {
        let address = &recorded.onvif_url;
        let (state, found, detail) = match verdict {
            Verdict::Verified => (
                VERIFIED,
                String::new(),
                format!("the device at {address} is the one recorded for this camera"),
            ),
            Verdict::Unverified { reason } => (
                UNVERIFIED,
                String::new(),
                format!(
                    "the device at {address} could not be asked who it is ({reason}); its video is taken but not verified to come from the recorded device (serial {}). Check its ONVIF service and credentials",
                    recorded.serial
                ),
            ),
            Verdict::Mismatch { found, differences } => (
                MISMATCH,
                found.key(),
                format!(
                    "the device answering at {address} is not the one recorded for this camera ({}): a replaced device or one impersonating it; its video is refused (not recorded, not shown live). Check the device; if it was replaced on purpose, accept it with `vigil camera accept-device {name}` (or POST /api/v1/cameras/{name}/accept-device)",
                    differences
                        .iter()
                        .map(|d| format!("{} {} instead of {}", d.field, d.found, d.expected))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        };
        let previous = self.store.device_check(camera_id).unwrap_or_else(|e| {
            tracing::error!(camera = name, error = %e, "cannot read the last device check");
            None
        });
        let changed = previous
            .as_ref()
            .is_none_or(|p| p.state != state || p.found != found);
        let check = DeviceCheck {
            state: state.into(),
            found,
            detail: detail.clone(),
            checked_us: now_us(),
        };
        if let Err(e) = self.store.set_device_check(camera_id, &check) {
            tracing::error!(camera = name, error = %e, "cannot store the device check");
        }
        if !changed {
            return detail;
        }
        match verdict {
            Verdict::Verified => {
                // Said only when it follows a refusal or an unverified connection: every
                // other connection of a camera checks the same thing again.
                if previous.is_some() {
                    self.publish(
                        NewEvent::vigil(
                            &self.server,
                            "camera.device_verified",
                            Category::Camera,
                            Severity::Notice,
                            format!("{name}: {detail}"),
                        )
                        .camera(name)
                        .attribute("address", address.clone())
                        .attribute("serial", recorded.serial.clone()),
                    );
                }
            }
            Verdict::Unverified { reason } => {
                tracing::warn!(camera = name, reason = %reason, "camera device not verified; video taken");
                self.publish(
                    NewEvent::vigil(
                        &self.server,
                        "camera.device_unverified",
                        Category::Camera,
                        Severity::Warning,
                        format!("{name}: {detail}"),
                    )
                    .camera(name)
                    .attribute("address", address.clone())
                    .attribute("expected_serial", recorded.serial.clone())
                    .attribute("reason", reason.clone()),
                );
            }
            Verdict::Mismatch { found, .. } => {
                tracing::error!(camera = name, address = %address, found = %found.key(), "another device answers at the camera's address; its streams are refused");
                let unknown = || "unknown".to_owned();
                let none = || "none".to_owned();
                self.publish(
                    NewEvent::vigil(
                        &self.server,
                        "camera.device_mismatch",
                        Category::Camera,
                        Severity::Critical,
                        format!("{name}: {detail}"),
                    )
                    .camera(name)
                    .attribute("address", address.clone())
                    .attribute("expected_serial", recorded.serial.clone())
                    .attribute("found_serial", found.serial.clone().unwrap_or_else(unknown))
                    .attribute("expected_model", recorded.model.clone())
                    .attribute("found_model", found.model.clone().unwrap_or_else(unknown))
                    .attribute(
                        "expected_fingerprint",
                        recorded.certificate.clone().unwrap_or_else(none),
                    )
                    .attribute(
                        "found_fingerprint",
                        found.certificate.clone().unwrap_or_else(none),
                    ),
                );
                if let Some(access) = &self.access {
                    let entry = AuditRecord::new(AuditKind::CameraChanged, Some("vigil"), None)
                        .detail(serde_json::json!({
                            "action": "device_mismatch", "camera": name, "address": address,
                            "expected": identity_json(recorded),
                            "found": {
                                "manufacturer": found.manufacturer, "model": found.model,
                                "firmware": found.firmware, "serial": found.serial,
                                "certificate": found.certificate,
                            },
                        }));
                    if let Err(e) = access.audit(entry) {
                        tracing::error!(camera = name, error = %e, "cannot record the device mismatch in the audit log");
                    }
                }
            }
        }
        detail
    }

    fn publish(&self, event: NewEvent) {
        let Some(bus) = &self.events else { return };
        if let Err(e) = bus.publish(event) {
            tracing::error!(error = %e, "device check event refused");
        }
    }
}

fn identity_json(d: &DeviceIdentity) -> serde_json::Value {
    serde_json::json!({
        "manufacturer": d.manufacturer, "model": d.model, "firmware": d.firmware,
        "serial": d.serial, "certificate": d.certificate,
    })
}

/// The [`Opener`] every recorder of `vigil serve` connects through: the device check first,
/// then the inner opener (plain RTSP, or the verified RTSPS tunnel). The recorder knows
/// nothing of it; a refusal is a permanent error (state `failed`, with the reason).
pub struct DeviceCheckOpener {
    inner: Arc<dyn Opener>,
    checker: Arc<DeviceChecker>,
}

impl DeviceCheckOpener {
    pub fn new(inner: Arc<dyn Opener>, checker: Arc<DeviceChecker>) -> DeviceCheckOpener {
        DeviceCheckOpener { inner, checker }
    }
}

impl Opener for DeviceCheckOpener {
    fn open<'a>(
        &'a self,
        source: &'a Source,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<Box<dyn FrameSource>, IngestError>> + Send + 'a,
        >,
    > {
        Box::pin(async move {
            self.checker
                .admit(main_stream_id(&source.stream_id))
                .await
                .map_err(IngestError::DeviceRefused)?;
            self.inner.open(source).await
        })
    }
}

/// A camera's recorded device and its last check, as every front end shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceView {
    /// The device service address the camera was added from (and its device is asked at).
    pub onvif_url: String,
    pub manufacturer: String,
    pub model: String,
    pub firmware: String,
    pub serial: String,
    /// SHA-256 fingerprint of its ONVIF HTTPS certificate; null over plain HTTP.
    pub certificate: Option<String>,
    /// The last check before a connection: `verified`; `mismatch` (another device answers:
    /// its video is refused until an admin accepts it); `unverified` (the device could not
    /// be asked: its video is taken, with a warning); `unchecked` (no connection since the
    /// identity was recorded).
    pub check: String,
    /// The last check in words, with what to do.
    pub check_detail: Option<String>,
    /// RFC 3339 time of the last check.
    pub checked_at: Option<String>,
}

/// The recorded device of the camera with this id and its last check; `None` for a camera
/// not added by ONVIF.
pub fn device_view(store: &Store, camera_id: &str) -> Result<Option<DeviceView>, StoreError> {
    let Some(d) = store
        .device_identities()?
        .into_iter()
        .find(|(id, _)| id == camera_id)
        .map(|(_, d)| d)
    else {
        return Ok(None);
    };
    let check = store.device_check(camera_id)?;
    Ok(Some(DeviceView {
        onvif_url: d.onvif_url,
        manufacturer: d.manufacturer,
        model: d.model,
        firmware: d.firmware,
        serial: d.serial,
        certificate: d.certificate,
        check: check
            .as_ref()
            .map_or_else(|| "unchecked".to_owned(), |c| c.state.clone()),
        check_detail: check.as_ref().map(|c| c.detail.clone()),
        checked_at: check
            .as_ref()
            .map(|c| vigil_media::time::format_us(c.checked_us)),
    }))
}

/// What accepting the device now answering did.
#[derive(Debug, Clone)]
pub struct DeviceAccepted {
    pub camera: String,
    pub previous: DeviceIdentity,
    pub identity: DeviceIdentity,
}

/// Accepts the device now answering at a camera's recorded ONVIF address as the camera's
/// device (an admin replaced it on purpose): asks it who it is with the camera's credentials
/// and records that identity, audited with the old and the new one; the certificates its
/// `rtsps://` streams presented before are forgotten. Over HTTPS its certificate must verify
/// against the trust store, or be exactly `pin`. A running server's recorders of the camera
/// restart with it within seconds.
pub async fn accept_device(
    store: &Store,
    trust: TrustStore,
    name: &str,
    pin: Option<&str>,
    trail: &Trail<'_>,
) -> Result<DeviceAccepted, OnvifUseError> {
    let camera = store
        .camera(name)
        .map_err(|e| OnvifUseError::Camera(CameraError::Store(e)))?;
    let previous = store
        .device_identity(&camera.id)?
        .ok_or_else(|| OnvifUseError::NotOnvif(camera.name.clone()))?;
    let pin = pin
        .map(vigil_media::ingest_tls::parse_fingerprint)
        .transpose()
        .map_err(|e| OnvifUseError::Camera(CameraError::Store(StoreError::InvalidCamera(e))))?;
    let target = Target::parse(&previous.onvif_url)?;
    let password = store.camera_password(&camera.id)?;
    let credentials = camera
        .username
        .clone()
        .map(|u| Credentials::new(u, password.unwrap_or_default()));
    let mut options = Options::new(trust);
    options.pin = pin;
    // A plain-http address was allowed by an admin when the camera was added.
    options.allow_plain_http = !target.is_https();
    let client = Client::new(target, credentials, options);
    let info = client.device_information().await?;
    let identity = DeviceIdentity {
        onvif_url: previous.onvif_url.clone(),
        manufacturer: info.manufacturer,
        model: info.model,
        firmware: info.firmware_version,
        serial: info.serial_number,
        certificate: client.certificate_fingerprint(),
    };
    store.set_device_identity(&camera.id, &identity)?;
    // Its `rtsps://` streams have certificates of their own: verified against the trust
    // store and remembered anew (a pin, if any, still decides).
    store.forget_tls_seen(&camera.id)?;
    trail
        .record(
            AuditKind::CameraChanged,
            serde_json::json!({
                "action": "device_accepted", "camera": camera.name,
                "address": identity.onvif_url,
                "previous": identity_json(&previous),
                "identity": identity_json(&identity),
            }),
        )
        .map_err(OnvifUseError::Audit)?;
    Ok(DeviceAccepted {
        camera: camera.name,
        previous,
        identity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded() -> DeviceIdentity {
        DeviceIdentity {
            onvif_url: "https://10.0.0.9/onvif/device_service".into(),
            manufacturer: "Acme".into(),
            model: "Dome 4".into(),
            firmware: "1.0".into(),
            serial: "SN-1".into(),
            certificate: Some("AA:BB".into()),
        }
    }

    fn answered(serial: &str, certificate: &str) -> Found {
        Found {
            manufacturer: Some("Acme".into()),
            model: Some("Dome 4 ".into()),
            serial: Some(serial.into()),
            firmware: Some("2.0".into()),
            certificate: Some(certificate.into()),
        }
    }

    #[test]
    fn the_same_device_matches_even_after_a_firmware_update() {
        assert_eq!(compare(&recorded(), &answered("SN-1", "AA:BB")), vec![]);
    }

    #[test]
    fn another_serial_model_or_certificate_is_another_device() {
        let d = compare(&recorded(), &answered("SN-2", "AA:BB"));
        assert_eq!(
            d,
            vec![Difference {
                field: "serial",
                expected: "SN-1".into(),
                found: "SN-2".into()
            }]
        );
        let d = compare(&recorded(), &answered("SN-1", "CC:DD"));
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].field, d[0].found.as_str(), d[0].expected.as_str()),
            ("certificate", "CC:DD", "AA:BB")
        );
        let mut other = answered("SN-1", "AA:BB");
        other.model = Some("Bullet 2".into());
        other.manufacturer = None;
        let fields: Vec<_> = compare(&recorded(), &other)
            .into_iter()
            .map(|d| (d.field, d.found))
            .collect();
        assert_eq!(
            fields,
            [
                ("model", "Bullet 2".to_owned()),
                ("manufacturer", "unknown".to_owned())
            ]
        );
        // A device recorded over plain HTTP has no certificate to compare; one that now
        // answers without one where one was recorded differs.
        let mut http = recorded();
        http.certificate = None;
        assert!(compare(&http, &answered("SN-1", "EE:FF")).is_empty());
        let mut none = answered("SN-1", "AA:BB");
        none.certificate = None;
        assert_eq!(compare(&recorded(), &none)[0].field, "certificate");
    }

    #[test]
    fn a_device_without_a_serial_is_told_by_model_and_certificate() {
        let mut r = recorded();
        r.serial = String::new();
        assert!(compare(&r, &answered("", "AA:BB")).is_empty());
        assert_eq!(compare(&r, &answered("SN-9", "AA:BB"))[0].field, "serial");
    }

    #[test]
    fn a_match_is_cached_for_the_ttl_and_only_for_the_identity_it_matched() {
        let cache = MatchCache::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(!cache.fresh("cam-1", &recorded(), t0));
        cache.put("cam-1", &recorded(), t0);
        assert!(cache.fresh("cam-1", &recorded(), t0 + Duration::from_secs(9)));
        assert!(!cache.fresh("cam-1", &recorded(), t0 + Duration::from_secs(10)));
        assert!(!cache.fresh("cam-2", &recorded(), t0));
        // A new record (an accepted device) is asked at once.
        let mut accepted = recorded();
        accepted.serial = "SN-2".into();
        assert!(!cache.fresh("cam-1", &accepted, t0));
        cache.forget("cam-1");
        assert!(!cache.fresh("cam-1", &recorded(), t0));
    }

    #[test]
    fn the_found_key_tells_devices_apart() {
        assert_eq!(answered("SN-2", "CC").key(), answered("SN-2", "CC").key());
        assert_ne!(answered("SN-2", "CC").key(), answered("SN-3", "CC").key());
        assert_ne!(answered("SN-2", "CC").key(), answered("SN-2", "DD").key());
    }
}
