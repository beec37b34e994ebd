//! WS-Discovery (2005/04, as ONVIF uses it): the Probe for network video transmitters, the
//! ProbeMatches parser, and a sweep that probes the multicast group on the local segment and,
//! because multicast does not cross routers, every address of a given subnet by unicast —
//! at a bounded rate, for a bounded time, keeping a bounded number of devices.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;

use crate::soap::{SOAP11, SOAP12};
use crate::xml;
use crate::{DiscoveryError, ProbeMatchError};

pub const MULTICAST_GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);
pub const PORT: u16 = 3702;
const WSD: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery";
const WSA: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
/// A ProbeMatches message larger than this is not read (one UDP datagram; real ones are
/// 1-3 KiB).
pub const MAX_MESSAGE: usize = 16 * 1024;
/// Matches read from one message at most.
const MAX_MATCHES_PER_MESSAGE: usize = 16;
/// Types, scopes and addresses kept per match at most.
const MAX_LIST: usize = 32;
const MAX_ITEM_CHARS: usize = 512;

/// The Probe for ONVIF devices (`dn:NetworkVideoTransmitter`), with `message_id`.
pub fn probe_message(message_id: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<s:Envelope xmlns:s="{s}" xmlns:a="{a}" xmlns:d="{d}" xmlns:dn="http://www.onvif.org/ver10/network/wsdl">"#,
            r#"<s:Header><a:Action s:mustUnderstand="1">{d}/Probe</a:Action>"#,
            "<a:MessageID>{id}</a:MessageID>",
            "<a:ReplyTo><a:Address>{a}/role/anonymous</a:Address></a:ReplyTo>",
            r#"<a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To></s:Header>"#,
            "<s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body></s:Envelope>"
        ),
        s = SOAP12,
        a = WSA,
        d = WSD,
        id = xml::escape(message_id),
    )
}

/// A fresh `urn:uuid:` message id (random, version 4).
pub fn new_message_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// One device's answer to a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeMatch {
    /// Its stable identity (`urn:uuid:…`).
    pub endpoint: String,
    pub types: Vec<String>,
    /// `onvif://www.onvif.org/…` scopes: name, hardware, location, profile.
    pub scopes: Vec<String>,
    /// Device service addresses.
    pub xaddrs: Vec<String>,
}

impl ProbeMatch {
    /// The value of the scope `onvif://www.onvif.org/<key>/<value>` (percent-decoded), e.g.
    /// `name` or `hardware`.
    pub fn scope(&self, key: &str) -> Option<String> {
        let prefix = format!("onvif://www.onvif.org/{key}/");
        self.scopes
            .iter()
            .find_map(|s| s.strip_prefix(&prefix))
            .map(|v| {
                url::form_urlencoded::parse(format!("v={v}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            })
    }
}

fn list(text: &str) -> Vec<String> {
    text.split_whitespace()
        .take(MAX_LIST)
        .map(|s| s.chars().take(MAX_ITEM_CHARS).collect())
        .collect()
}

/// Reads a ProbeMatches message. With `relates_to`, a message answering another probe is
/// refused ([`ProbeMatchError::OtherProbe`]), so stray or forged datagrams are not taken
/// for answers.
pub fn parse_probe_matches(
    data: &[u8],
    relates_to: Option<&str>,
) -> Result<Vec<ProbeMatch>, ProbeMatchError> {
    if data.len() > MAX_MESSAGE {
        return Err(ProbeMatchError::TooLarge(MAX_MESSAGE));
    }
    let text =
        std::str::from_utf8(data).map_err(|_| ProbeMatchError::Malformed("not UTF-8".into()))?;
    let doc = xml::parse(text).map_err(|e| ProbeMatchError::Malformed(e.to_string()))?;
    let root = doc.root_element();
    let soap = [SOAP12, SOAP11]
        .into_iter()
        .find(|ns| xml::is(root, ns, "Envelope"))
        .ok_or_else(|| ProbeMatchError::NotProbeMatches(format!("root is {}", xml::qname(root))))?;
    if let Some(expected) = relates_to {
        let got = xml::child(root, soap, "Header")
            .and_then(|h| xml::child(h, WSA, "RelatesTo"))
            .map(xml::text)
            .unwrap_or("");
        if got != expected {
            return Err(ProbeMatchError::OtherProbe(got.chars().take(80).collect()));
        }
    }
    let body = xml::child(root, soap, "Body")
        .ok_or_else(|| ProbeMatchError::NotProbeMatches("no SOAP Body".into()))?;
    // Some devices put their ProbeMatch straight into the Body, without the ProbeMatches
    // around it (IPyCam does: testdata/ipycam-1.3.0-probe-match.xml); what it says is the
    // same, so it is read the same.
    let matches = xml::child(body, WSD, "ProbeMatches")
        .or_else(|| xml::child(body, WSD, "ProbeMatch").map(|_| body))
        .ok_or_else(|| {
            let found = body
                .children()
                .find(|c| c.is_element())
                .map(xml::qname)
                .unwrap_or_else(|| "an empty body".into());
            ProbeMatchError::NotProbeMatches(format!("the body holds {found}"))
        })?;
    let mut out = Vec::new();
    for m in xml::children(matches, WSD, "ProbeMatch").take(MAX_MATCHES_PER_MESSAGE) {
        // WS-Addressing's EndpointReference; the same quirky devices name it in the
        // discovery namespace.
        let endpoint = xml::child(m, WSA, "EndpointReference")
            .or_else(|| xml::child(m, WSD, "EndpointReference"))
            .and_then(|e| xml::child(e, WSA, "Address"))
            .map(xml::text)
            .filter(|t| !t.is_empty())
            .ok_or(ProbeMatchError::Missing("EndpointReference address"))?;
        let text_of = |local: &str| xml::child(m, WSD, local).map(xml::text).unwrap_or("");
        let xaddrs = list(text_of("XAddrs"));
        if xaddrs.is_empty() {
            return Err(ProbeMatchError::Missing("XAddrs"));
        }
        out.push(ProbeMatch {
            endpoint: endpoint.chars().take(MAX_ITEM_CHARS).collect(),
            types: list(text_of("Types")),
            scopes: list(text_of("Scopes")),
            xaddrs,
        });
    }
    Ok(out)
}

/// A device found by a sweep: its answer and where the answer came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub from: SocketAddr,
    pub device: ProbeMatch,
}

/// What a sweep probes and how long it listens.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// Probe the multicast group on the local segment.
    pub multicast: bool,
    /// Addresses probed one by one (see [`hosts`]).
    pub unicast: Vec<Ipv4Addr>,
    /// The port probed (ONVIF devices listen on [`PORT`]).
    pub port: u16,
    /// How long to listen after the last probe was sent.
    pub wait: Duration,
    /// Unicast probes sent per 10 ms at most, so a /16 does not burst onto the network.
    pub rate: usize,
    /// Devices kept at most; answers beyond are dropped.
    pub max_devices: usize,
}

impl Default for Sweep {
    fn default() -> Self {
        Sweep {
            multicast: true,
            unicast: Vec::new(),
            port: PORT,
            wait: Duration::from_secs(3),
            rate: 64,
            max_devices: 1024,
        }
    }
}

/// What a sweep found, and how many datagrams it dropped and why (stray traffic and floods
/// are counted, not reported one by one).
#[derive(Debug, Default)]
pub struct SweepResult {
    pub found: Vec<Found>,
    pub unreadable: usize,
    pub other_probe: usize,
    pub over_limit: usize,
}

/// Subnets larger than this are refused, not probed (65,536 addresses is a /16).
pub const MAX_HOSTS: usize = 65_536;

/// The addresses of an IPv4 subnet `A.B.C.D/P` to probe: every host address (all of them
/// for /31 and /32).
pub fn hosts(subnet: &str) -> Result<Vec<Ipv4Addr>, DiscoveryError> {
    let net: ipnet::Ipv4Net = subnet
        .trim()
        .parse()
        .map_err(|_| DiscoveryError::BadSubnet(subnet.to_owned()))?;
    let count = 1u64 << (32 - u32::from(net.prefix_len()));
    if count > MAX_HOSTS as u64 {
        return Err(DiscoveryError::SubnetTooLarge {
            subnet: subnet.to_owned(),
            hosts: count,
            max: MAX_HOSTS,
            min_prefix: 16,
        });
    }
    Ok(net.hosts().collect())
}

/// Probes and listens; returns within `wait` after the last probe was sent (plus the send
/// time of the unicast probes, bounded by their rate).
pub async fn sweep(sweep: &Sweep) -> Result<SweepResult, DiscoveryError> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .await
        .map_err(DiscoveryError::Socket)?;
    // The local segment only: routers must not forward the probe.
    let _ = socket.set_multicast_ttl_v4(1);
    let id = new_message_id();
    let probe = probe_message(&id);
    let mut result = SweepResult::default();
    let mut seen = HashSet::new();
    let mut buf = vec![0u8; 64 * 1024];

    let mut targets: Vec<SocketAddr> = Vec::new();
    if sweep.multicast {
        targets.push(SocketAddr::from((MULTICAST_GROUP, sweep.port)));
    }
    targets.extend(
        sweep
            .unicast
            .iter()
            .map(|ip| SocketAddr::from((*ip, sweep.port))),
    );
    let rate = sweep.rate.max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut next = 0;
    let mut deadline = tokio::time::Instant::now() + sweep.wait;
    loop {
        tokio::select! {
            _ = tick.tick(), if next < targets.len() => {
                for to in &targets[next..(next + rate).min(targets.len())] {
                    if let Err(e) = socket.send_to(probe.as_bytes(), to).await {
                        // A host route missing or multicast unavailable is normal for part
                        // of a sweep; the rest goes on.
                        tracing::debug!(%to, error = %e, "WS-Discovery probe not sent");
                    }
                }
                next = (next + rate).min(targets.len());
                deadline = tokio::time::Instant::now() + sweep.wait;
            }
            received = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = received else { continue };
                take(&buf[..n], from, &id, sweep.max_devices, &mut seen, &mut result);
            }
            _ = tokio::time::sleep_until(deadline), if next >= targets.len() => break,
        }
    }
    Ok(result)
}

fn take(
    data: &[u8],
    from: SocketAddr,
    id: &str,
    max: usize,
    seen: &mut HashSet<String>,
    result: &mut SweepResult,
) {
    match parse_probe_matches(data, Some(id)) {
        Ok(matches) => {
            for m in matches {
                if !seen.contains(&m.endpoint) {
                    if result.found.len() >= max {
                        result.over_limit += 1;
                        continue;
                    }
                    seen.insert(m.endpoint.clone());
                    result.found.push(Found { from, device: m });
                }
            }
        }
        Err(ProbeMatchError::OtherProbe(_)) => result.other_probe += 1,
        Err(e) => {
            tracing::debug!(%from, error = %e, "unreadable WS-Discovery answer skipped");
            result.unreadable += 1;
        }
    }
}

/// The host of a device address (for matching against cameras already added).
pub fn xaddr_host(xaddr: &str) -> Option<IpAddr> {
    url::Url::parse(xaddr)
        .ok()?
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(relates: &str, body: &str) -> String {
        format!(
            r#"<s:Envelope xmlns:s="{SOAP12}" xmlns:a="{WSA}" xmlns:d="{WSD}"><s:Header><a:RelatesTo>{relates}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>"#
        )
    }

    const MATCH: &str = r#"<d:ProbeMatches><d:ProbeMatch><a:EndpointReference><a:Address>urn:uuid:1</a:Address></a:EndpointReference><d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types><d:Scopes>onvif://www.onvif.org/name/Lobby%20Cam onvif://www.onvif.org/hardware/X100</d:Scopes><d:XAddrs>http://10.0.0.9/onvif/device_service https://10.0.0.9/onvif/device_service</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches>"#;

    #[test]
    fn a_probe_match_gives_endpoint_scopes_and_addresses() {
        let m = parse_probe_matches(answer("urn:uuid:me", MATCH).as_bytes(), Some("urn:uuid:me"))
            .unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].endpoint, "urn:uuid:1");
        assert_eq!(m[0].xaddrs.len(), 2);
        assert_eq!(m[0].scope("name").as_deref(), Some("Lobby Cam"));
        assert_eq!(m[0].scope("hardware").as_deref(), Some("X100"));
        assert_eq!(m[0].scope("location"), None);
    }

    /// A real answer of IPyCam 1.3.0 (PyPI), captured from tests/peers/ipycam_camera.py: its
    /// ProbeMatch stands in the Body without ProbeMatches, its EndpointReference is in the
    /// discovery namespace, and its name scope has unencoded spaces.
    #[test]
    fn an_ipycam_answer_is_read_despite_its_quirks() {
        let data = include_bytes!("../testdata/ipycam-1.3.0-probe-match.xml");
        let m = parse_probe_matches(data, Some("urn:uuid:11111111-2222-4333-8444-555555555555"))
            .unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[0].endpoint,
            "urn:uuid:5327beb5-dc6b-4778-bc84-4c9707d9628a"
        );
        assert_eq!(m[0].xaddrs, ["http://127.0.0.1:18080/onvif/device_service"]);
        assert!(m[0].types.iter().any(|t| t == "dn:NetworkVideoTransmitter"));
        // The scope list is split at spaces, as the standard says: the name is cut short.
        assert_eq!(m[0].scope("name").as_deref(), Some("IPyCam"));
        // Another probe's answer is still refused.
        assert!(matches!(
            parse_probe_matches(data, Some("urn:uuid:other")),
            Err(ProbeMatchError::OtherProbe(_))
        ));
        // A bare ProbeMatch in another namespace is not taken for one.
        let text = std::str::from_utf8(data)
            .unwrap()
            .replace("<d:ProbeMatch>", r#"<d:ProbeMatch xmlns:d="urn:other">"#);
        assert!(matches!(
            parse_probe_matches(text.as_bytes(), None),
            Err(ProbeMatchError::NotProbeMatches(_))
        ));
    }

    #[test]
    fn answers_to_other_probes_and_foreign_messages_are_refused() {
        let m = answer("urn:uuid:other", MATCH);
        assert!(matches!(
            parse_probe_matches(m.as_bytes(), Some("urn:uuid:me")),
            Err(ProbeMatchError::OtherProbe(_))
        ));
        let wrong_ns = answer(
            "x",
            &MATCH.replace(
                "<d:ProbeMatches>",
                r#"<d:ProbeMatches xmlns:d="urn:other">"#,
            ),
        );
        assert!(matches!(
            parse_probe_matches(wrong_ns.as_bytes(), None),
            Err(ProbeMatchError::NotProbeMatches(_))
        ));
        let probe = probe_message("urn:uuid:x");
        assert!(matches!(
            parse_probe_matches(probe.as_bytes(), None),
            Err(ProbeMatchError::NotProbeMatches(_))
        ));
        assert!(matches!(
            parse_probe_matches(b"\xff\xfe", None),
            Err(ProbeMatchError::Malformed(_))
        ));
        assert!(matches!(
            parse_probe_matches(b"<a", None),
            Err(ProbeMatchError::Malformed(_))
        ));
        let big = vec![b' '; MAX_MESSAGE + 1];
        assert_eq!(
            parse_probe_matches(&big, None),
            Err(ProbeMatchError::TooLarge(MAX_MESSAGE))
        );
        let no_addr = answer("x", &MATCH.replace("<d:XAddrs>http://10.0.0.9/onvif/device_service https://10.0.0.9/onvif/device_service</d:XAddrs>", ""));
        assert_eq!(
            parse_probe_matches(no_addr.as_bytes(), None),
            Err(ProbeMatchError::Missing("XAddrs"))
        );
    }

    #[test]
    fn subnets_are_bounded() {
        assert_eq!(
            hosts("192.0.2.0/30").unwrap(),
            vec![Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2)]
        );
        assert_eq!(hosts("127.0.0.1/32").unwrap(), vec![Ipv4Addr::LOCALHOST]);
        assert!(matches!(
            hosts("10.0.0.0/8"),
            Err(DiscoveryError::SubnetTooLarge { .. })
        ));
        assert!(matches!(
            hosts("10.0.0.0"),
            Err(DiscoveryError::BadSubnet(_))
        ));
        assert!(matches!(
            hosts("fe80::/64"),
            Err(DiscoveryError::BadSubnet(_))
        ));
        assert_eq!(hosts("10.1.0.0/16").unwrap().len(), 65_534);
    }

    #[test]
    fn message_ids_are_fresh_uuids() {
        let a = new_message_id();
        assert_eq!(a.len(), "urn:uuid:".len() + 36);
        assert_ne!(a, new_message_id());
        assert!(probe_message(&a).contains(&a));
    }

    #[tokio::test]
    async fn a_flood_of_garbage_and_foreign_answers_is_counted_and_time_bounded() {
        // A fake responder that answers each probe with junk, an answer to another probe
        // and one real match, on loopback.
        let responder = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = responder.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            let (n, from) = responder.recv_from(&mut buf).await.unwrap();
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let id = text
                .split("<a:MessageID>")
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap()
                .to_owned();
            for _ in 0..200 {
                responder.send_to(b"<<<not xml", from).await.unwrap();
                responder
                    .send_to(answer("urn:uuid:someone-else", MATCH).as_bytes(), from)
                    .await
                    .unwrap();
            }
            responder
                .send_to(answer(&id, MATCH).as_bytes(), from)
                .await
                .unwrap();
            responder
                .send_to(answer(&id, MATCH).as_bytes(), from)
                .await
                .unwrap();
        });
        let started = std::time::Instant::now();
        let r = sweep(&Sweep {
            multicast: false,
            unicast: vec![Ipv4Addr::LOCALHOST],
            port,
            wait: Duration::from_millis(500),
            ..Sweep::default()
        })
        .await
        .unwrap();
        task.await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(r.found.len(), 1, "duplicates collapse: {r:?}");
        assert_eq!(r.unreadable, 200);
        assert_eq!(r.other_probe, 200);
    }
}
