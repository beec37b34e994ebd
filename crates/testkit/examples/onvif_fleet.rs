//! A fleet of ONVIF devices for bench/cameras: COUNT oxvif mock devices
//! ([`vigil_testkit::onvif::OnvifPeer`]) on 127.0.0.1, 127.0.0.2, … (WS-Discovery on each
//! address at one shared UDP port), each behind HTTPS with the given certificate and key, with
//! the user `admin` and the password read from a file. Prints one line
//! `READY {"discovery_port": P, "devices": [{"serial", "https_port"}, …]}` once everything
//! listens, then runs until its standard input closes (the driver went away).
//!
//! Usage: onvif_fleet COUNT CERT.pem KEY.pem PASSWORD_FILE

use std::io::Read;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use vigil_testkit::onvif::{OnvifDevice, OnvifPeer};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [count, cert, key, password] = args.as_slice() else {
        return Err("usage: onvif_fleet COUNT CERT.pem KEY.pem PASSWORD_FILE".into());
    };
    let count: usize = count
        .parse()
        .ok()
        .filter(|n| (1..=250).contains(n))
        .ok_or("COUNT: a number of devices from 1 to 250 (one loopback address each)")?;
    let password = std::fs::read_to_string(password)
        .map_err(|e| format!("{password}: {e}"))?
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let chain = CertificateDer::from_pem_file(cert).map_err(|e| format!("{cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{key}: {e}"))?;
    let devices: Vec<OnvifDevice> = (0..count)
        .map(|i| OnvifDevice::new(&format!("SN-BENCH-{i:03}"), &password))
        .collect();
    let mut peer = OnvifPeer::try_start(&devices).map_err(|e| format!("starting: {e}"))?;
    let mut listed = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        let port = peer.serve_https(i, vec![chain.clone()], key.clone_key());
        listed.push(format!(
            "{{\"serial\": \"{}\", \"https_port\": {port}}}",
            d.serial
        ));
    }
    println!(
        "READY {{\"discovery_port\": {}, \"devices\": [{}]}}",
        peer.discovery_port(),
        listed.join(", ")
    );
    // Until the driver closes our standard input (or dies).
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(peer);
    Ok(())
}
