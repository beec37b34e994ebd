//! A hand-built TLS ClientHello to learn which protocol versions a server accepts.
//!
//! rustls cannot speak TLS 1.0/1.1 at all, yet an audit must say whether a device still
//! accepts them. A ClientHello capped at a given version and the first bytes of the answer
//! (ServerHello or alert) are enough; no handshake is completed and no key is used.

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

    let mut body = Vec::new();
    body.extend_from_slice(&max.to_be_bytes());
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
    body.extend_from_slice(&exts);

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

/// Offers TLS up to `max` and returns the version the server picked, if it picked one.
pub async fn accepted_version(
    addr: SocketAddr,
    sni: Option<&str>,
    max: u16,
    timeout: Duration,
) -> std::io::Result<Option<u16>> {
    let work = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(&client_hello(max, sni)).await?;
        let mut buf = [0u8; 11];
        let mut got = 0;
        while got < buf.len() {
            let n = s.read(&mut buf[got..]).await?;
            if n == 0 {
                break;
            }
            got += n;
        }
        Ok(server_hello_version(&buf[..got]).filter(|v| *v <= max && *v >= 0x0300))
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer",
            ))
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
}
