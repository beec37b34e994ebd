//! Hand-built TLS ClientHellos and a reader of the server's first flight: which protocol
//! versions a server accepts, and its certificate chain as sent in clear up to TLS 1.2.
//!
//! rustls cannot speak TLS 1.0/1.1 at all, yet an audit must say whether a device still
//! accepts them. A ClientHello capped at a given version and the answer (ServerHello and, up
//! to TLS 1.2, the Certificate message; or an alert) are enough: no handshake is completed
//! and no key is used, so the probe costs the client no cryptography and the server less
//! than a handshake. TLS 1.3 acceptance is learnt from a HelloRetryRequest
//! ([`client_hello13`]). Everything read here is untrusted input: lengths are checked
//! against the bytes present and the total is capped ([`MAX_FLIGHT`]).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const TLS10: u16 = 0x0301;
pub const TLS11: u16 = 0x0302;
pub const TLS12: u16 = 0x0303;

pub fn version_name(v: u16) -> &'static str {
    match v {
        0x0300 => "SSL 3.0",
        TLS10 => "TLS 1.0",
        TLS11 => "TLS 1.1",
        TLS12 => "TLS 1.2",
        0x0304 => "TLS 1.3",
        _ => "unknown",
    }
}

fn u16be(v: usize) -> [u8; 2] {
    (v as u16).to_be_bytes()
}

fn ext(out: &mut Vec<u8>, kind: u16, body: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&u16be(body.len()));
    out.extend_from_slice(body);
}

/// A ClientHello whose highest version is `max` (TLS 1.0 to 1.2, no supported_versions
/// extension so a TLS 1.3 server must answer as 1.2 or refuse).
pub fn client_hello(max: u16, sni: Option<&str>) -> Vec<u8> {
    let suites: &[u16] = if max >= TLS12 {
        &[
            0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0xc009, 0xc00a, 0x009c,
            0x009d, 0x002f, 0x0035, 0x00ff,
        ]
    } else {
        &[
            0xc013, 0xc014, 0xc009, 0xc00a, 0x002f, 0x0035, 0x000a, 0x00ff,
        ]
    };
    let mut exts = Vec::new();
    if let Some(name) = sni {
        let mut b = Vec::new();
        b.extend_from_slice(&u16be(name.len() + 3));
        b.push(0);
        b.extend_from_slice(&u16be(name.len()));
        b.extend_from_slice(name.as_bytes());
        ext(&mut exts, 0x0000, &b);
    }
    ext(
        &mut exts,
        0x000a,
        &[0, 6, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18],
    );
    ext(&mut exts, 0x000b, &[1, 0]);
    if max >= TLS12 {
        let algs: [u16; 10] = [
            0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601, 0x0201, 0x0203,
        ];
        let mut b = u16be(algs.len() * 2).to_vec();
        for a in algs {
            b.extend_from_slice(&a.to_be_bytes());
        }
        ext(&mut exts, 0x000d, &b);
    }
    ext(&mut exts, 0x0017, &[]);
    ext(&mut exts, 0xff01, &[0]);

    hello_record(max, suites, &exts)
}

/// SHA-256("HelloRetryRequest"): the random of a ServerHello that is really a
/// HelloRetryRequest (RFC 8446 4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// A TLS 1.3-only ClientHello with an empty key_share list. A TLS 1.3 server must answer
/// with a HelloRetryRequest naming a group (RFC 8446 4.1.1), which costs it no key exchange
/// and no signature; anything else refuses. This learns whether TLS 1.3 is accepted at a
/// fraction of a handshake's cost on both sides.
pub fn client_hello13(sni: Option<&str>) -> Vec<u8> {
    let mut exts = Vec::new();
    if let Some(name) = sni {
        let mut b = Vec::new();
        b.extend_from_slice(&u16be(name.len() + 3));
        b.push(0);
        b.extend_from_slice(&u16be(name.len()));
        b.extend_from_slice(name.as_bytes());
        ext(&mut exts, 0x0000, &b);
    }
    ext(&mut exts, 0x002b, &[2, 0x03, 0x04]);
    ext(
        &mut exts,
        0x000a,
        &[0, 6, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18],
    );
    let algs: [u16; 9] = [
        0x0403, 0x0804, 0x0503, 0x0805, 0x0603, 0x0806, 0x0807, 0x0401, 0x0501,
    ];
    let mut b = u16be(algs.len() * 2).to_vec();
    for a in algs {
        b.extend_from_slice(&a.to_be_bytes());
    }
    ext(&mut exts, 0x000d, &b);
    ext(&mut exts, 0x0033, &[0, 0]);
    hello_record(TLS12, &[0x1301, 0x1302, 0x1303], &exts)
}

fn hello_record(legacy_version: u16, suites: &[u16], exts: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&legacy_version.to_be_bytes());
    // The random only has to be unpredictable for a real handshake; this one is never finished.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    body.extend((0..32u32).map(|i| (seed >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(37)));
    body.push(0);
    body.extend_from_slice(&u16be(suites.len() * 2));
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&u16be(exts.len()));
    body.extend_from_slice(exts);
    let mut hs = vec![1u8];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16];
    rec.extend_from_slice(&TLS10.to_be_bytes());
    rec.extend_from_slice(&u16be(hs.len()));
    rec.extend_from_slice(&hs);
    rec
}

/// Parses the first record of the answer: the version of a ServerHello, or None for an
/// alert or anything else.
pub fn server_hello_version(first: &[u8]) -> Option<u16> {
    // record header (5) + handshake type (1) + length (3) + version (2)
    if first.len() < 11 || first[0] != 0x16 || first[5] != 2 {
        return None;
    }
    Some(u16::from_be_bytes([first[9], first[10]]))
}

/// Why an answer is not a TLS server's first flight.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotTls {
    #[error("ServerHello is truncated")]
    ServerHelloTruncated,
    #[error("ServerHello extensions are truncated")]
    ExtensionsTruncated,
    #[error("ServerHello extension is truncated")]
    ExtensionTruncated,
    #[error("supported_versions in ServerHello is not 2 bytes")]
    SupportedVersionsLength,
    #[error("ServerHello extensions are malformed")]
    ExtensionsMalformed,
    #[error("Certificate message has a wrong length")]
    CertificateLength,
    #[error("Certificate entry is truncated")]
    CertificateEntryTruncated,
    #[error("Certificate entry is empty")]
    CertificateEntryEmpty,
    #[error("handshake message {0} before the ServerHello")]
    MessageBeforeHello(u8),
    #[error("handshake message is too large")]
    MessageTooLarge,
    #[error("not a TLS record (first bytes {0:02x?})")]
    NotARecord([u8; 5]),
    #[error("record type {0} before the ServerHello")]
    RecordBeforeHello(u8),
    #[error("first flight is too large")]
    FlightTooLarge,
    #[error("the server closed the connection")]
    Closed,
    #[error("the server closed the connection mid-answer")]
    ClosedMidAnswer,
}

/// What the server's first flight said, as far as it has arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flight {
    /// More bytes are needed.
    Partial,
    /// The server refused with this alert description.
    Alert(u8),
    /// The bytes are not a TLS server's answer.
    NotTls(NotTls),
    /// The server chose `version`. `hello_retry` marks a HelloRetryRequest; `tls13_too`
    /// marks a server that chose 1.2 or below but signalled (by the RFC 8446 downgrade
    /// sentinel) that it also speaks TLS 1.3. `chain` is the certificate chain (DER, leaf
    /// first) when it was asked for and travels in clear (up to TLS 1.2); `Some(empty)` when
    /// the server finished its flight without a certificate.
    Hello {
        version: u16,
        hello_retry: bool,
        tls13_too: bool,
        chain: Option<Vec<Vec<u8>>>,
    },
}

/// Most bytes of a first flight the probe reads (a chain of several large RSA certificates
/// fits many times over).
pub const MAX_FLIGHT: usize = 256 * 1024;

/// Initial size of the buffer a first flight is read into.
const FIRST_READ: usize = 2048;

fn u24(b: &[u8]) -> usize {
    (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2])
}

/// The version a ServerHello body selects (its supported_versions extension when present)
/// and whether it is a HelloRetryRequest.
fn parse_server_hello(body: &[u8]) -> Result<(u16, bool, bool), NotTls> {
    if body.len() < 2 + 32 + 1 {
        return Err(NotTls::ServerHelloTruncated);
    }
    let legacy = u16::from_be_bytes([body[0], body[1]]);
    let hrr = body[2..34] == HRR_RANDOM;
    // RFC 8446 4.1.3: a TLS 1.3 server that negotiates 1.2 or below must end its random
    // with "DOWNGRD" and 0x01 (for 1.2) or 0x00 (below).
    let downgrade = body[26..33] == *b"DOWNGRD" && body[33] <= 1;
    let sid = usize::from(body[34]);
    let mut at = 35 + sid + 2 + 1;
    if body.len() < at {
        return Err(NotTls::ServerHelloTruncated);
    }
    let mut version = legacy;
    if body.len() >= at + 2 {
        let len = usize::from(u16::from_be_bytes([body[at], body[at + 1]]));
        at += 2;
        let exts = body.get(at..at + len).ok_or(NotTls::ExtensionsTruncated)?;
        let mut e = exts;
        while e.len() >= 4 {
            let kind = u16::from_be_bytes([e[0], e[1]]);
            let elen = usize::from(u16::from_be_bytes([e[2], e[3]]));
            let data = e.get(4..4 + elen).ok_or(NotTls::ExtensionTruncated)?;
            if kind == 0x002b {
                if data.len() != 2 {
                    return Err(NotTls::SupportedVersionsLength);
                }
                version = u16::from_be_bytes([data[0], data[1]]);
            }
            e = &e[4 + elen..];
        }
        if !e.is_empty() {
            return Err(NotTls::ExtensionsMalformed);
        }
    }
    Ok((version, hrr, downgrade))
}

/// Parses a TLS 1.0-1.2 Certificate message body into DER certificates.
fn parse_certificates(body: &[u8]) -> Result<Vec<Vec<u8>>, NotTls> {
    if body.len() < 3 || u24(body) != body.len() - 3 {
        return Err(NotTls::CertificateLength);
    }
    let mut rest = &body[3..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 3 {
            return Err(NotTls::CertificateEntryTruncated);
        }
        let len = u24(rest);
        let der = rest
            .get(3..3 + len)
            .ok_or(NotTls::CertificateEntryTruncated)?;
        if der.is_empty() {
            return Err(NotTls::CertificateEntryEmpty);
        }
        out.push(der.to_vec());
        rest = &rest[3 + len..];
    }
    Ok(out)
}

/// Reads a server's answer to a ClientHello from the raw bytes received so far: records are
/// reassembled into handshake messages; parsing stops at the ServerHello (unless
/// `want_chain`), at the Certificate, or at the end of the flight.
pub fn parse_flight(data: &[u8], want_chain: bool) -> Flight {
    let mut hs = Vec::new();
    let mut rest = data;
    let mut server_hello: Option<(u16, bool, bool)> = None;
    loop {
        // Handshake messages complete so far.
        let mut at = 0;
        while hs.len() >= at + 4 {
            let kind = hs[at];
            let len = u24(&hs[at + 1..]);
            let Some(body) = hs.get(at + 4..at + 4 + len) else {
                break;
            };
            match (kind, server_hello) {
                (2, None) => match parse_server_hello(body) {
                    Ok((version, hello_retry, tls13_too)) => {
                        server_hello = Some((version, hello_retry, tls13_too));
                        // Past TLS 1.2 the certificate is encrypted; an HRR ends the flight.
                        if !want_chain || version > TLS12 || hello_retry {
                            return Flight::Hello {
                                version,
                                hello_retry,
                                tls13_too,
                                chain: None,
                            };
                        }
                    }
                    Err(e) => return Flight::NotTls(e),
                },
                (_, None) => {
                    return Flight::NotTls(NotTls::MessageBeforeHello(kind));
                }
                (11, Some((version, _, tls13_too))) => {
                    return match parse_certificates(body) {
                        Ok(chain) => Flight::Hello {
                            version,
                            hello_retry: false,
                            tls13_too,
                            chain: Some(chain),
                        },
                        Err(e) => Flight::NotTls(e),
                    };
                }
                (14, Some((version, _, tls13_too))) => {
                    return Flight::Hello {
                        version,
                        hello_retry: false,
                        tls13_too,
                        chain: Some(Vec::new()),
                    };
                }
                _ => {}
            }
            at += 4 + len;
        }
        hs.drain(..at);
        if hs.len() > MAX_FLIGHT {
            return Flight::NotTls(NotTls::MessageTooLarge);
        }
        if rest.len() < 5 {
            return Flight::Partial;
        }
        let (kind, major, len) = (
            rest[0],
            rest[1],
            usize::from(u16::from_be_bytes([rest[3], rest[4]])),
        );
        if major != 3 || !(20..=23).contains(&kind) || len > 16384 + 2048 {
            let first = rest[..5].try_into().expect("5 bytes");
            return Flight::NotTls(NotTls::NotARecord(first));
        }
        let Some(payload) = rest.get(5..5 + len) else {
            return Flight::Partial;
        };
        match kind {
            21 if server_hello.is_none() => {
                return Flight::Alert(payload.get(1).copied().unwrap_or(0));
            }
            22 => hs.extend_from_slice(payload),
            _ => {
                // Anything else after the ServerHello ends what can be read in clear.
                return match server_hello {
                    Some((version, hello_retry, tls13_too)) => Flight::Hello {
                        version,
                        hello_retry,
                        tls13_too,
                        chain: None,
                    },
                    None => Flight::NotTls(NotTls::RecordBeforeHello(kind)),
                };
            }
        }
        rest = &rest[5 + len..];
    }
}

/// Reads the answer to a ClientHello already sent on `s` until [`parse_flight`] decides.
pub async fn answer(
    s: &mut TcpStream,
    want_chain: bool,
    timeout: Duration,
) -> std::io::Result<Flight> {
    tokio::time::timeout(timeout, read_flight(s, want_chain))
        .await
        .unwrap_or_else(|_| Err(timed_out("no answer")))
}

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, what.to_string())
}

async fn read_flight(s: &mut TcpStream, want_chain: bool) -> std::io::Result<Flight> {
    // A first flight with one ECDSA certificate is about a kilobyte; the buffer grows
    // (doubling) only for larger chains. Hundreds of probes run at once, so a generous
    // fixed size would cost megabytes of freshly faulted heap per audit.
    let mut buf = Vec::with_capacity(FIRST_READ);
    loop {
        match parse_flight(&buf, want_chain) {
            Flight::Partial if buf.len() < MAX_FLIGHT => {}
            Flight::Partial => return Ok(Flight::NotTls(NotTls::FlightTooLarge)),
            done => return Ok(done),
        }
        // Read straight into the heap buffer: a stack chunk held across the await would
        // make every probe future (three per endpoint) kilobytes larger to move around.
        if buf.capacity() - buf.len() < FIRST_READ / 2 {
            buf.reserve(buf.capacity());
        }
        let n = s.read_buf(&mut buf).await?;
        if n == 0 {
            return Ok(if buf.is_empty() {
                Flight::NotTls(NotTls::Closed)
            } else {
                Flight::NotTls(NotTls::ClosedMidAnswer)
            });
        }
    }
}

/// Opens a TCP connection to `addr` and sends `first` on it (nothing when empty). The outer
/// error means the connection could not be opened; the inner result is that of the send on
/// the open connection.
///
/// To a nearby host the TCP handshake is usually complete by the time connect(2) returns;
/// the bytes then go out at once rather than after the runtime has reported the connection
/// as established, which saves a trip through the reactor per connection (hundreds per
/// audit). Otherwise the send waits for the connection as usual.
///
/// The connection ends with a reset rather than a FIN exchange when dropped: nothing is lost
/// (the probe has read what it needs), neither side keeps a TIME_WAIT socket, and the kernel
/// does half the work per connection.
pub async fn connect_send(
    addr: SocketAddr,
    first: &[u8],
    timeout: Duration,
) -> std::io::Result<(TcpStream, std::io::Result<()>)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let connect = async {
        let sock = Socket::new(
            Domain::for_address(addr),
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )?;
        sock.set_linger(Some(Duration::ZERO))?;
        match sock.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        // getpeername succeeds only once the connection is established.
        let established = sock.peer_addr().is_ok();
        let mut sent = Ok(0);
        if established && !first.is_empty() {
            // MSG_NOSIGNAL: a connection reset must be an error, not a SIGPIPE.
            sent = match sock.send_with_flags(first, libc::MSG_NOSIGNAL) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
                other => other,
            };
        }
        let s = TcpStream::from_std(std::net::TcpStream::from(sock))?;
        if !established {
            s.writable().await?;
            if let Some(e) = s.take_error()? {
                return Err(e);
            }
        }
        Ok((s, sent))
    };
    let (mut s, sent) = tokio::time::timeout(timeout, connect)
        .await
        .unwrap_or_else(|_| Err(timed_out("connect timed out")))?;
    let sent = match sent {
        Ok(n) if n < first.len() => tokio::time::timeout(timeout, s.write_all(&first[n..]))
            .await
            .unwrap_or_else(|_| Err(timed_out("send timed out"))),
        Ok(_) => Ok(()),
        Err(e) => Err(e),
    };
    Ok((s, sent))
}

/// Offers TLS up to `max` (at most 1.2) on a new connection and returns the version the
/// server picked, with its certificate chain when `want_chain`.
pub async fn offer(
    addr: SocketAddr,
    sni: Option<&str>,
    max: u16,
    want_chain: bool,
    timeout: Duration,
) -> std::io::Result<Flight> {
    let (mut s, sent) = connect_send(addr, &client_hello(max, sni), timeout).await?;
    sent?;
    answer(&mut s, want_chain, timeout).await
}

/// Whether the server accepts TLS 1.3 (see [`client_hello13`]).
pub async fn accepts_tls13(
    addr: SocketAddr,
    sni: Option<&str>,
    timeout: Duration,
) -> std::io::Result<bool> {
    let (mut s, sent) = connect_send(addr, &client_hello13(sni), timeout).await?;
    sent?;
    Ok(matches!(
        answer(&mut s, false, timeout).await?,
        Flight::Hello {
            version: 0x0304,
            ..
        }
    ))
}

/// Offers TLS up to `max` and returns the version the server picked, if it picked one.
pub async fn accepted_version(
    addr: SocketAddr,
    sni: Option<&str>,
    max: u16,
    timeout: Duration,
) -> std::io::Result<Option<u16>> {
    Ok(match offer(addr, sni, max, false, timeout).await? {
        Flight::Hello { version, .. } if (0x0300..=max).contains(&version) => Some(version),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_is_well_formed() {
        let h = client_hello(TLS12, Some("cam.example"));
        assert_eq!(h[0], 0x16);
        let rec_len = u16::from_be_bytes([h[3], h[4]]) as usize;
        assert_eq!(rec_len + 5, h.len());
        assert_eq!(h[5], 1);
        let hs_len = u32::from_be_bytes([0, h[6], h[7], h[8]]) as usize;
        assert_eq!(hs_len + 4, rec_len);
        assert_eq!(u16::from_be_bytes([h[9], h[10]]), TLS12);
        assert!(h.windows(11).any(|w| w == b"cam.example"));
    }

    #[test]
    fn answers_are_classified() {
        assert_eq!(
            server_hello_version(&[0x16, 3, 3, 0, 80, 2, 0, 0, 76, 3, 3]),
            Some(TLS12)
        );
        assert_eq!(server_hello_version(&[0x15, 3, 3, 0, 2, 2, 70]), None);
        assert_eq!(server_hello_version(b"HTTP/1.1 400"), None);
        assert_eq!(server_hello_version(&[]), None);
    }

    fn record(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut r = vec![kind, 3, 3];
        r.extend_from_slice(&u16be(payload.len()));
        r.extend_from_slice(payload);
        r
    }

    fn handshake(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut h = vec![kind];
        h.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        h.extend_from_slice(body);
        h
    }

    fn server_hello(version: u16, random: [u8; 32], exts: &[u8]) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        b.extend_from_slice(&random);
        b.push(0);
        b.extend_from_slice(&[0xc0, 0x2b, 0]);
        if !exts.is_empty() {
            b.extend_from_slice(&u16be(exts.len()));
            b.extend_from_slice(exts);
        }
        handshake(2, &b)
    }

    fn certificates(ders: &[&[u8]]) -> Vec<u8> {
        let mut list = Vec::new();
        for d in ders {
            list.extend_from_slice(&(d.len() as u32).to_be_bytes()[1..]);
            list.extend_from_slice(d);
        }
        let mut b = (list.len() as u32).to_be_bytes()[1..].to_vec();
        b.extend_from_slice(&list);
        handshake(11, &b)
    }

    #[test]
    fn tls12_flight_yields_version_and_chain_across_records() {
        let mut hs = server_hello(TLS12, [7; 32], &[]);
        hs.extend(certificates(&[b"leaf-der", b"ca-der"]));
        hs.extend(handshake(12, &[1, 2, 3]));
        hs.extend(handshake(14, &[]));
        // Split the handshake bytes over three records, cutting messages in the middle.
        let mut data = Vec::new();
        for part in hs.chunks(hs.len() / 3 + 1) {
            data.extend(record(22, part));
        }
        let want = Flight::Hello {
            version: TLS12,
            hello_retry: false,
            tls13_too: false,
            chain: Some(vec![b"leaf-der".to_vec(), b"ca-der".to_vec()]),
        };
        assert_eq!(parse_flight(&data, true), want);
        // Every prefix is either still partial or already the full answer.
        for n in 0..data.len() {
            let got = parse_flight(&data[..n], true);
            assert!(got == Flight::Partial || got == want, "{n}: {got:?}");
        }
        // Without the chain, the ServerHello is enough.
        assert!(matches!(
            parse_flight(&data[..20], false),
            Flight::Partial | Flight::Hello { chain: None, .. }
        ));
        let without = record(22, &hs[..hs.len() - 4 - 4 - 3]);
        assert_eq!(
            parse_flight(&without, false),
            Flight::Hello {
                version: TLS12,
                hello_retry: false,
                tls13_too: false,
                chain: None,
            }
        );
    }

    #[test]
    fn flight_without_certificate_and_tls13_answers() {
        let mut hs = server_hello(TLS12, [1; 32], &[]);
        hs.extend(handshake(14, &[]));
        assert_eq!(
            parse_flight(&record(22, &hs), true),
            Flight::Hello {
                version: TLS12,
                hello_retry: false,
                tls13_too: false,
                chain: Some(Vec::new())
            }
        );
        // A TLS 1.3 server choosing 1.2 marks its random with the downgrade sentinel.
        let mut random = [9u8; 32];
        random[24..].copy_from_slice(b"DOWNGRD\x01");
        let sh = server_hello(TLS12, random, &[]);
        assert!(matches!(
            parse_flight(&record(22, &sh), false),
            Flight::Hello {
                tls13_too: true,
                version: TLS12,
                ..
            }
        ));
        random[31] = 7;
        let sh = server_hello(TLS12, random, &[]);
        assert!(matches!(
            parse_flight(&record(22, &sh), false),
            Flight::Hello {
                tls13_too: false,
                ..
            }
        ));
        // A HelloRetryRequest selecting TLS 1.3 through supported_versions.
        let hrr = server_hello(
            TLS12,
            HRR_RANDOM,
            &[0x00, 0x2b, 0, 2, 3, 4, 0x00, 0x33, 0, 2, 0, 0x1d],
        );
        assert_eq!(
            parse_flight(&record(22, &hrr), true),
            Flight::Hello {
                version: 0x0304,
                hello_retry: true,
                tls13_too: false,
                chain: None
            }
        );
    }

    #[test]
    fn refusals_and_garbage_are_classified() {
        assert_eq!(parse_flight(&[], true), Flight::Partial);
        assert_eq!(parse_flight(&record(21, &[2, 70]), true), Flight::Alert(70));
        assert!(
            matches!(parse_flight(b"HTTP/1.1 400 Bad Request\r\n", true), Flight::NotTls(m) if m.to_string().contains("not a TLS record"))
        );
        assert!(matches!(
            parse_flight(b"RTSP/1.0 200 OK", false),
            Flight::NotTls(_)
        ));
        // A record claiming more than TLS allows.
        assert!(matches!(
            parse_flight(&[22, 3, 3, 0xff, 0xff], true),
            Flight::NotTls(_)
        ));
        // A Certificate before any ServerHello.
        let c = certificates(&[b"x"]);
        assert!(
            matches!(parse_flight(&record(22, &c), true), Flight::NotTls(m) if m.to_string().contains("before the ServerHello"))
        );
        // Truncated ServerHello body.
        assert!(
            matches!(parse_flight(&record(22, &handshake(2, &[3, 3, 1])), true), Flight::NotTls(m) if m.to_string().contains("truncated"))
        );
        // Bad supported_versions length.
        let sh = server_hello(TLS12, [0; 32], &[0x00, 0x2b, 0, 1, 3]);
        assert!(matches!(
            parse_flight(&record(22, &sh), true),
            Flight::NotTls(_)
        ));
        // Certificate list whose length disagrees with the message.
        let mut hs = server_hello(TLS12, [0; 32], &[]);
        hs.extend(handshake(11, &[0, 0, 9, 0, 0, 1, 0xaa]));
        assert!(
            matches!(parse_flight(&record(22, &hs), true), Flight::NotTls(m) if m.to_string().contains("wrong length"))
        );
        // An empty certificate entry.
        let mut hs = server_hello(TLS12, [0; 32], &[]);
        hs.extend(handshake(11, &[0, 0, 3, 0, 0, 0]));
        assert!(
            matches!(parse_flight(&record(22, &hs), true), Flight::NotTls(m) if m.to_string().contains("empty"))
        );
        // Application data before any ServerHello.
        assert!(matches!(
            parse_flight(&record(23, &[1, 2]), true),
            Flight::NotTls(_)
        ));
    }

    #[tokio::test]
    async fn connect_send_delivers_the_first_bytes_or_fails_to_connect() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (s, sent) = connect_send(addr, b"hello", Duration::from_secs(5))
            .await
            .unwrap();
        sent.unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        let mut got = [0u8; 5];
        std::io::Read::read_exact(&mut peer, &mut got).unwrap();
        assert_eq!(&got, b"hello");
        // Nothing to send: just the connection, usable afterwards.
        let (mut s2, sent) = connect_send(addr, &[], Duration::from_secs(5))
            .await
            .unwrap();
        sent.unwrap();
        s2.write_all(b"x").await.unwrap();
        drop(s2);
        // The probe ends with a reset, not a FIN.
        drop(s);
        let mut rest = [0u8; 1];
        let r = std::io::Read::read(&mut peer, &mut rest);
        assert!(
            r.as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "{r:?}"
        );
        // A closed port is an error at connect time.
        drop(listener);
        assert!(
            connect_send(addr, b"hello", Duration::from_secs(5))
                .await
                .is_err()
        );
    }

    #[test]
    fn tls13_hello_is_well_formed() {
        let h = client_hello13(Some("nvr.example"));
        let rec_len = u16::from_be_bytes([h[3], h[4]]) as usize;
        assert_eq!(rec_len + 5, h.len());
        assert!(
            h.windows(5).any(|w| w == [0x00, 0x2b, 0, 3, 2]),
            "supported_versions"
        );
        assert!(
            h.windows(6).any(|w| w == [0x00, 0x33, 0, 2, 0, 0]),
            "empty key_share"
        );
        assert!(h.windows(11).any(|w| w == b"nvr.example"));
    }
}
