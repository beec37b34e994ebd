//! ONVIF cameras for the tests (feature `onvif`): oxvif's mock server, a stateful ONVIF
//! device written independently of Vigil (device and media services, WS-Security
//! PasswordDigest checking, a SetUser that changes the password it checks), on loopback.
//! Each device answers WS-Discovery probes on its own loopback address (127.0.0.1,
//! 127.0.0.2, …) at one shared port, the way one camera per IP address answers on 3702, so a
//! unicast sweep over 127.0.0.0/29 finds them. A device can also be put behind HTTPS (a TLS
//! front with the given certificate relaying to its HTTP port).
//!
//! The devices run on a runtime of their own, so synchronous tests and tests that start the
//! `vigil` binary can use them as well as async ones.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use oxvif::discovery::DiscoveredDevice;
use oxvif::mock::{DeviceState, DiscoveryResponder, MockServer};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};

/// One device to start.
#[derive(Debug, Clone)]
pub struct OnvifDevice {
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    pub firmware: String,
    /// The administrator account WS-Security is checked against.
    pub username: String,
    pub password: String,
}

impl OnvifDevice {
    /// A device with this serial number, model `"VigilTest-<serial>"`, and the user
    /// `admin` with `password`.
    pub fn new(serial: &str, password: &str) -> OnvifDevice {
        OnvifDevice {
            manufacturer: "oxvif-mock".into(),
            model: format!("VigilTest-{serial}"),
            serial: serial.into(),
            firmware: "1.0.0-test".into(),
            username: "admin".into(),
            password: password.into(),
        }
    }
}

/// The running devices; stopped when dropped.
pub struct OnvifPeer {
    runtime: Option<tokio::runtime::Runtime>,
    servers: Vec<MockServer>,
    responders: Vec<DiscoveryResponder>,
    fronts: Vec<tokio::task::JoinHandle<()>>,
    discovery_port: u16,
}

impl OnvifPeer {
    /// Starts `devices` with WS-Security enforced.
    pub fn start(devices: &[OnvifDevice]) -> OnvifPeer {
        Self::try_start(devices).unwrap_or_else(|e| panic!("cannot start the ONVIF peers: {e}"))
    }

    pub fn try_start(devices: &[OnvifDevice]) -> std::io::Result<OnvifPeer> {
        let addresses: Vec<Ipv4Addr> = (0..devices.len())
            .map(|i| Ipv4Addr::new(127, 0, 0, 1 + i as u8))
            .collect();
        Self::start_at(devices, &addresses, 0)
    }

    /// Starts device `i` at `addresses[i]`: its device service there (HTTP, a port chosen by
    /// the kernel, announced with that address; loopback devices all serve HTTP on 127.0.0.1) and its WS-Discovery responder at
    /// `addresses[i]:discovery_port` (0: one port the kernel chooses for all). Called from a
    /// thread inside a network namespace, everything listens in that namespace (the runtime's
    /// threads are started from it).
    pub fn start_at(
        devices: &[OnvifDevice],
        addresses: &[Ipv4Addr],
        discovery_port: u16,
    ) -> std::io::Result<OnvifPeer> {
        assert_eq!(devices.len(), addresses.len(), "one address per device");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let (servers, responders, discovery_port) =
            on_its_own_thread(&runtime, start_devices(devices, addresses, discovery_port))?;
        Ok(OnvifPeer {
            runtime: Some(runtime),
            servers,
            responders,
            fronts: Vec::new(),
            discovery_port,
        })
    }

    /// The device service URL of device `i` over plain HTTP.
    pub fn device_url(&self, i: usize) -> String {
        self.servers[i].device_url().to_owned()
    }

    /// The HTTP port of device `i`.
    pub fn port(&self, i: usize) -> u16 {
        self.servers[i].port()
    }

    /// The loopback address device `i` answers WS-Discovery probes on (as started by
    /// [`OnvifPeer::start`]).
    pub fn discovery_address(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, 0, 1 + i as u8)
    }

    /// The UDP port every device answers WS-Discovery probes on.
    pub fn discovery_port(&self) -> u16 {
        self.discovery_port
    }

    /// The password device `i` now checks for `user` (what SetUser left).
    pub fn password(&self, i: usize, user: &str) -> Option<String> {
        self.servers[i]
            .device()
            .read()
            .users
            .iter()
            .find(|u| u.username == user)
            .map(|u| u.password.clone())
    }

    /// Puts device `i` behind HTTPS with this certificate chain and key; returns the port of
    /// the TLS front on 127.0.0.1.
    pub fn serve_https(
        &mut self,
        i: usize,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> u16 {
        let config = tls_config(chain, key);
        let backend = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port(i)));
        let runtime = self.runtime.as_ref().expect("running");
        let (port, task) = on_its_own_thread(runtime, async move {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .expect("bind the TLS front");
            let port = listener.local_addr().expect("local address").port();
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
            let task = tokio::spawn(async move {
                loop {
                    let Ok((sock, _)) = listener.accept().await else {
                        return;
                    };
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(sock).await else {
                            return;
                        };
                        let Ok(mut plain) = TcpStream::connect(backend).await else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    });
                }
            });
            (port, task)
        });
        self.fronts.push(task);
        port
    }
}

fn tls_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> rustls::ServerConfig {
    rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("certificate and key match")
}

async fn start_devices(
    devices: &[OnvifDevice],
    addresses: &[Ipv4Addr],
    discovery_port: u16,
) -> std::io::Result<(Vec<MockServer>, Vec<DiscoveryResponder>, u16)> {
    let mut servers = Vec::new();
    for (d, ip) in devices.iter().zip(addresses) {
        let mut state = DeviceState::default();
        state.info.manufacturer = d.manufacturer.clone();
        state.info.model = d.model.clone();
        state.info.serial_number = d.serial.clone();
        state.info.firmware_version = d.firmware.clone();
        for u in &mut state.users {
            if u.username == d.username {
                u.password = d.password.clone();
            }
        }
        if !state.users.iter().any(|u| u.username == d.username) {
            let mut admin = state.users[0].clone();
            admin.username = d.username.clone();
            admin.password = d.password.clone();
            state.users.push(admin);
        }
        let mut builder = MockServer::builder();
        if !ip.is_loopback() {
            // Loopback devices share 127.0.0.1 for HTTP (oxvif serves only addresses an
            // interface has); the others serve at their own address.
            builder = builder.bind_ip(*ip).advertise_ip(*ip);
        }
        servers.push(
            builder
                .initial_state(state)
                .enforce_auth(true)
                .start()
                .await?,
        );
    }
    // One responder per device on its own loopback address, all at the first one's port
    // (chosen by the kernel), as cameras at different addresses all answer on 3702.
    let mut responders = Vec::new();
    let mut port = discovery_port;
    for (i, (server, d)) in servers.iter().zip(devices).enumerate() {
        let address = SocketAddr::from((addresses[i], port));
        let announced = DiscoveredDevice {
            endpoint: format!("urn:uuid:00000000-0000-4000-8000-{:012}", i + 1),
            types: vec!["dn:NetworkVideoTransmitter".into(), "tds:Device".into()],
            scopes: vec![
                format!("onvif://www.onvif.org/hardware/{}", d.model),
                format!("onvif://www.onvif.org/name/{}", d.serial),
            ],
            xaddrs: vec![server.device_url().to_owned()],
        };
        let responder =
            DiscoveryResponder::spawn_many(&address.to_string(), None, vec![announced]).await?;
        port = responder.local_addr().port();
        responders.push(responder);
    }
    Ok((servers, responders, port))
}

impl Drop for OnvifPeer {
    fn drop(&mut self) {
        for f in &self.fronts {
            f.abort();
        }
        let servers = std::mem::take(&mut self.servers);
        let responders = std::mem::take(&mut self.responders);
        if let Some(runtime) = self.runtime.take() {
            on_its_own_thread(&runtime, async move {
                for r in responders {
                    r.shutdown().await;
                }
                for s in servers {
                    let _ = s.shutdown().await;
                }
            });
            // Dropping a runtime blocks, which a test's own runtime does not allow.
            runtime.shutdown_background();
        }
    }
}

/// Runs `work` on the peers' runtime from a thread of its own: the caller may be inside a
/// test's runtime, where blocking on another one is not allowed.
fn on_its_own_thread<F>(runtime: &tokio::runtime::Runtime, work: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| runtime.block_on(work))
            .join()
            .expect("the ONVIF peers' runtime")
    })
}
