//! One device answer through every ONVIF SOAP parser (device service: system time, device
//! information, services, capabilities, users, SetUser; media: Media1 and Media2 profiles and
//! stream URIs; Advanced Security: key pair, key status, CSR, certificate upload, certification
//! paths and their assignment): never a panic, and whatever is accepted keeps the limits the rest of Vigil
//! relies on (identity fields cut, URIs bounded, at most MAX_PROFILES profiles). Input: the
//! answer's bytes (invalid UTF-8 as the HTTP layer would refuse it, so it is read lossily to
//! still reach the XML parser).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_onvif::device::{self, MAX_FIELD_CHARS, MAX_URI_CHARS};
use vigil_onvif::media::{self, MAX_PROFILES};
use vigil_onvif::security::{self, MAX_DER_BYTES, MAX_ID_CHARS};

fn short(s: &str) -> bool {
    s.chars().count() <= MAX_FIELD_CHARS
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = device::parse_system_date_time(&text);
    if let Ok(info) = device::parse_device_information(&text) {
        for f in [
            &info.manufacturer,
            &info.model,
            &info.firmware_version,
            &info.serial_number,
            &info.hardware_id,
        ] {
            assert!(short(f), "{f}");
        }
    }
    for services in [
        device::parse_services(&text),
        device::parse_capabilities(&text),
    ]
    .into_iter()
    .flatten()
    {
        for s in services {
            assert!(!s.xaddr.is_empty() && s.xaddr.chars().count() <= MAX_URI_CHARS);
        }
    }
    if let Ok(users) = device::parse_users(&text) {
        assert!(
            users
                .iter()
                .all(|u| !u.username.is_empty() && short(&u.username))
        );
    }
    let _ = device::parse_set_user(&text);
    for profiles in [media::parse_profiles(&text), media::parse_profiles2(&text)]
        .into_iter()
        .flatten()
    {
        assert!(profiles.len() <= MAX_PROFILES);
        for p in profiles {
            assert!(!p.token.is_empty() && short(&p.token) && short(&p.name));
            assert!(p.encoding.chars().count() <= 16);
            let _ = p.pixels();
        }
    }
    for uri in [
        media::parse_stream_uri(&text),
        media::parse_stream_uri2(&text),
    ]
    .into_iter()
    .flatten()
    {
        assert!(!uri.is_empty() && uri.chars().count() <= MAX_URI_CHARS);
    }
    for id in [
        security::parse_create_rsa_key_pair(&text),
        security::parse_upload_certificate(&text),
        security::parse_create_certification_path(&text),
    ]
    .into_iter()
    .flatten()
    {
        assert!(!id.is_empty() && id.chars().count() <= MAX_ID_CHARS);
        assert!(!id.chars().any(char::is_control));
    }
    if let Ok(paths) = security::parse_assigned_server_certificates(&text) {
        assert!(paths.iter().all(|p| !p.is_empty() && p.chars().count() <= MAX_ID_CHARS));
    }
    let _ = security::parse_get_key_status(&text);
    if let Ok(csr) = security::parse_create_pkcs10_csr(&text) {
        assert!(csr.len() <= MAX_DER_BYTES + 3);
    }
    let _ = security::parse_empty(&text, "AddServerCertificateAssignmentResponse");
});
