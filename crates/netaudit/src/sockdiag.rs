//! Listening sockets through netlink `sock_diag` (what `ss` uses), asking the kernel for
//! listening TCP and unconnected UDP sockets only.
//!
//! `/proc/net/tcp` makes the kernel walk every bucket of the established-connection hash
//! table on each read (hundreds of thousands of buckets on a large machine) and format every
//! connection as text, which costs milliseconds on a busy server; a state-filtered dump
//! touches only the listening table. The caller falls back to `/proc/net/*` when netlink is
//! unavailable (e.g. a restricted container).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::listeners::Socket;
use vigil_netpolicy::model::Protocol;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const TCP_LISTEN: u32 = 10;
/// The state of an unconnected (bound, not connected) UDP socket.
const TCP_CLOSE: u32 = 7;
const NLMSG_HDR: usize = 16;
/// `inet_diag_msg`: family, state, timer, retrans, sockid (48), expires, rqueue, wqueue, uid,
/// inode.
const DIAG_MSG: usize = 72;
/// Most reply bytes read before giving up (bounds the loop on a misbehaving kernel).
const MAX_REPLY: usize = 64 << 20;

/// Why the netlink socket dump failed (the caller then reads `/proc/net/*` instead).
#[derive(Debug, thiserror::Error)]
pub enum SockDiagError {
    #[error("netlink socket: {0}")]
    Socket(std::io::Error),
    #[error("netlink send: {0}")]
    Send(std::io::Error),
    #[error("netlink receive: {0}")]
    Receive(std::io::Error),
    #[error("netlink socket closed before the dump ended")]
    Closed,
    #[error("netlink dump is unreasonably large")]
    TooLarge,
    #[error("the kernel refused the socket dump: {}", std::io::Error::from_raw_os_error(*.errno))]
    Refused { errno: i32 },
    #[error("netlink message length {0} is invalid")]
    BadLength(usize),
    #[error("inet_diag_msg of {0} bytes is too short")]
    ShortMessage(usize),
    #[error("unexpected address family {0}")]
    Family(i32),
}

struct Fd(libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor was opened by us and is closed exactly once.
        unsafe { libc::close(self.0) };
    }
}

fn request(family: u8, protocol: u8, states: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(NLMSG_HDR + 56);
    m.extend_from_slice(&((NLMSG_HDR + 56) as u32).to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
    // inet_diag_req_v2: family, protocol, ext, pad, states, then a zero socket id (48 bytes).
    m.extend_from_slice(&[family, protocol, 0, 0]);
    m.extend_from_slice(&states.to_ne_bytes());
    m.extend_from_slice(&[0u8; 48]);
    m
}

/// Parses one `inet_diag_msg`.
fn parse_msg(b: &[u8], protocol: Protocol) -> Result<Socket, SockDiagError> {
    if b.len() < DIAG_MSG {
        return Err(SockDiagError::ShortMessage(b.len()));
    }
    let family = i32::from(b[0]);
    let port = u16::from_be_bytes([b[4], b[5]]);
    let src = &b[8..24];
    let ip: IpAddr = if family == libc::AF_INET {
        Ipv4Addr::new(src[0], src[1], src[2], src[3]).into()
    } else if family == libc::AF_INET6 {
        Ipv6Addr::from(<[u8; 16]>::try_from(src).expect("16 bytes")).into()
    } else {
        return Err(SockDiagError::Family(family));
    };
    let inode = u32::from_ne_bytes(b[68..72].try_into().expect("4 bytes"));
    Ok(Socket {
        protocol,
        addr: SocketAddr::new(ip, port),
        inode: u64::from(inode),
        process: None,
    })
}

/// Splits a netlink reply into messages: `Ok(true)` once the dump is done.
fn parse_reply(
    buf: &[u8],
    protocol: Protocol,
    out: &mut Vec<Socket>,
) -> Result<bool, SockDiagError> {
    let mut rest = buf;
    while rest.len() >= NLMSG_HDR {
        let len = u32::from_ne_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        let kind = u16::from_ne_bytes(rest[4..6].try_into().expect("2 bytes"));
        if len < NLMSG_HDR || len > rest.len() {
            return Err(SockDiagError::BadLength(len));
        }
        let body = &rest[NLMSG_HDR..len];
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = body
                    .get(0..4)
                    .map(|e| -i32::from_ne_bytes(e.try_into().expect("4 bytes")))
                    .unwrap_or(0);
                return Err(SockDiagError::Refused { errno });
            }
            SOCK_DIAG_BY_FAMILY => out.push(parse_msg(body, protocol)?),
            _ => {}
        }
        // Messages are aligned to 4 bytes.
        let next = (len + 3) & !3;
        rest = rest.get(next..).unwrap_or(&[]);
    }
    Ok(false)
}

fn dump(
    fd: &Fd,
    family: u8,
    protocol: Protocol,
    states: u32,
) -> Result<Vec<Socket>, SockDiagError> {
    let proto = match protocol {
        Protocol::Tcp => libc::IPPROTO_TCP as u8,
        Protocol::Udp => libc::IPPROTO_UDP as u8,
    };
    let req = request(family, proto, states);
    // SAFETY: sockaddr_nl is plain data; zeroed with nl_family set addresses the kernel.
    let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    to.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: req and to outlive the call and their lengths are passed with them.
    let sent = unsafe {
        libc::sendto(
            fd.0,
            req.as_ptr().cast(),
            req.len(),
            0,
            (&to as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(SockDiagError::Send(std::io::Error::last_os_error()));
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        // SAFETY: buf is valid for writes of its length for the duration of the call.
        let n = unsafe { libc::recv(fd.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(SockDiagError::Receive(e));
        }
        if n == 0 {
            return Err(SockDiagError::Closed);
        }
        let n = n as usize;
        total += n;
        if parse_reply(&buf[..n], protocol, &mut out)? {
            return Ok(out);
        }
        if total > MAX_REPLY {
            return Err(SockDiagError::TooLarge);
        }
    }
}

/// Listening TCP and unconnected UDP sockets, IPv4 and IPv6.
pub fn listening() -> Result<Vec<Socket>, SockDiagError> {
    // SAFETY: plain socket(2) call; the descriptor is owned by Fd from here on.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if raw < 0 {
        return Err(SockDiagError::Socket(std::io::Error::last_os_error()));
    }
    let fd = Fd(raw);
    // A receive timeout bounds the wait should the kernel never answer.
    let tv = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    // SAFETY: tv outlives the call and its size is passed with it.
    unsafe {
        libc::setsockopt(
            fd.0,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    let mut out = Vec::new();
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        out.extend(dump(&fd, family, Protocol::Tcp, 1 << TCP_LISTEN)?);
        let udp = dump(&fd, family, Protocol::Udp, 1 << TCP_CLOSE)?;
        // Bound UDP sockets only (an unbound one has port 0).
        out.extend(udp.into_iter().filter(|s| s.addr.port() != 0));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(family: u8, port: u16, addr: &[u8], inode: u32) -> Vec<u8> {
        let mut b = vec![family, TCP_LISTEN as u8, 0, 0];
        b.extend_from_slice(&port.to_be_bytes());
        b.extend_from_slice(&[0, 0]);
        let mut src = [0u8; 16];
        src[..addr.len()].copy_from_slice(addr);
        b.extend_from_slice(&src);
        b.extend_from_slice(&[0u8; 16 + 4 + 8]);
        b.extend_from_slice(&[0u8; 16]);
        b.extend_from_slice(&inode.to_ne_bytes());
        assert_eq!(b.len(), DIAG_MSG);
        b
    }

    fn nl(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut m = ((NLMSG_HDR + body.len()) as u32).to_ne_bytes().to_vec();
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0u8; 10]);
        m.extend_from_slice(body);
        while !m.len().is_multiple_of(4) {
            m.push(0);
        }
        m
    }

    #[test]
    fn replies_parse_and_end() {
        let mut buf = nl(
            SOCK_DIAG_BY_FAMILY,
            &msg(libc::AF_INET as u8, 8443, &[127, 0, 0, 1], 42),
        );
        let v6 = Ipv6Addr::LOCALHOST.octets();
        buf.extend(nl(
            SOCK_DIAG_BY_FAMILY,
            &msg(libc::AF_INET6 as u8, 9443, &v6, 43),
        ));
        let mut out = Vec::new();
        assert!(!parse_reply(&buf, Protocol::Tcp, &mut out).unwrap());
        assert_eq!(out[0].addr, "127.0.0.1:8443".parse().unwrap());
        assert_eq!(out[0].inode, 42);
        assert_eq!(out[1].addr, "[::1]:9443".parse().unwrap());
        buf.extend(nl(NLMSG_DONE, &[0; 4]));
        assert!(parse_reply(&buf, Protocol::Tcp, &mut Vec::new()).unwrap());
    }

    #[test]
    fn bad_replies_are_errors() {
        let mut out = Vec::new();
        let e = parse_reply(
            &nl(NLMSG_ERROR, &(-13i32).to_ne_bytes()),
            Protocol::Tcp,
            &mut out,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("refused"), "{e}");
        let mut short = nl(SOCK_DIAG_BY_FAMILY, &[2, 10, 0, 0]);
        assert!(
            parse_reply(&short, Protocol::Tcp, &mut out)
                .unwrap_err()
                .to_string()
                .contains("too short")
        );
        short[0] = 200;
        assert!(
            parse_reply(&short, Protocol::Tcp, &mut out)
                .unwrap_err()
                .to_string()
                .contains("invalid")
        );
        let odd = nl(SOCK_DIAG_BY_FAMILY, &msg(99, 1, &[1, 2, 3, 4], 1));
        assert!(
            parse_reply(&odd, Protocol::Tcp, &mut out)
                .unwrap_err()
                .to_string()
                .contains("family")
        );
    }

    #[test]
    fn finds_a_real_listener_and_agrees_with_proc() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let uaddr = u.local_addr().unwrap();
        let got = listening().expect("sock_diag works here");
        assert!(
            got.iter()
                .any(|s| s.protocol == Protocol::Tcp && s.addr == addr)
        );
        assert!(
            got.iter()
                .any(|s| s.protocol == Protocol::Udp && s.addr == uaddr)
        );
        let proc_tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let from_proc = crate::listeners::parse_proc_net(&proc_tcp, Protocol::Tcp, false).unwrap();
        let ours = from_proc.iter().find(|s| s.addr == addr).unwrap();
        let diag = got.iter().find(|s| s.addr == addr).unwrap();
        assert_eq!(ours.inode, diag.inode);
    }
}
