//! Listening sockets from `/proc/net/{tcp,tcp6,udp,udp6}` and their comparison with the
//! manifest. Processes are found by matching socket inodes in `/proc/PID/fd`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Serialize;

use crate::{Finding, FindingKind, Severity};
use vigil_netpolicy::model::Protocol;

/// A listening socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Socket {
    pub protocol: Protocol,
    pub addr: SocketAddr,
    pub inode: u64,
    /// `name[pid]` of the owning process when it could be found.
    pub process: Option<String>,
}

/// A listener the manifest says should exist.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedListener {
    pub protocol: Protocol,
    /// Bind address; the unspecified address matches any.
    pub bind: SocketAddr,
    pub component: String,
    pub encrypted: bool,
    pub local_only: bool,
}

/// The listeners of a Vigil configuration, as the manifest describes them.
pub fn expected_from_config(config: &vigil_config::Config) -> Vec<ExpectedListener> {
    let system = vigil_netpolicy::vigil::system(config);
    let mut out = Vec::new();
    for (component, addr, proto) in vigil_netpolicy::vigil::listeners(config) {
        let proto = if proto == "udp" {
            Protocol::Udp
        } else {
            Protocol::Tcp
        };
        let spec = system
            .roles
            .iter()
            .flat_map(|r| r.ports.iter())
            .find(|p| p.protocol == proto && p.port.contains(addr.port()));
        out.push(ExpectedListener {
            protocol: proto,
            bind: addr,
            component: component.to_string(),
            encrypted: spec.is_none_or(|s| s.encrypted),
            local_only: spec.is_some_and(|s| s.local_only),
        });
    }
    out
}

/// Why a `/proc/net/*` table could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcNetError {
    #[error("line {0}: expected at least 10 fields")]
    Fields(usize),
    #[error("line {line}: address `{address}` has no port")]
    NoPort { line: usize, address: String },
    #[error("line {line}: bad port in `{address}`")]
    Port { line: usize, address: String },
    #[error("line {line}: bad address in `{address}`")]
    Address { line: usize, address: String },
    #[error("line {line}: address `{address}` has the wrong length")]
    Length { line: usize, address: String },
}

fn parse_addr(hex: &str, v6: bool, line: usize) -> Result<SocketAddr, ProcNetError> {
    let address = || hex.to_string();
    let (ip, port) = hex.split_once(':').ok_or_else(|| ProcNetError::NoPort {
        line,
        address: address(),
    })?;
    let port = u16::from_str_radix(port, 16).map_err(|_| ProcNetError::Port {
        line,
        address: address(),
    })?;
    // The kernel prints each 32-bit word in host byte order (little-endian here).
    let words: Vec<u32> = (0..ip.len() / 8)
        .map(|i| u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| ProcNetError::Address {
            line,
            address: address(),
        })?;
    let ip: IpAddr = match (v6, words.as_slice()) {
        (false, [w]) => Ipv4Addr::from(w.to_le_bytes()).into(),
        (true, [a, b, c, d]) => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
            }
            Ipv6Addr::from(bytes).into()
        }
        _ => {
            return Err(ProcNetError::Length {
                line,
                address: address(),
            });
        }
    };
    Ok(SocketAddr::new(ip, port))
}

/// Parses one `/proc/net/*` table and keeps listening sockets: TCP in LISTEN, UDP sockets
/// bound without a remote peer.
pub fn parse_proc_net(
    text: &str,
    protocol: Protocol,
    v6: bool,
) -> Result<Vec<Socket>, ProcNetError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            if line.trim().is_empty() {
                continue;
            }
            return Err(ProcNetError::Fields(n + 1));
        }
        let local = parse_addr(f[1], v6, n + 1)?;
        let remote = parse_addr(f[2], v6, n + 1)?;
        let state = f[3];
        let listening = match protocol {
            Protocol::Tcp => state == "0A",
            Protocol::Udp => state == "07" && remote.port() == 0,
        };
        if listening {
            out.push(Socket {
                protocol,
                addr: local,
                inode: f[9].parse().unwrap_or(0),
                process: None,
            });
        }
    }
    Ok(out)
}

/// Calls `each` with the inode of every socket a process holds, read from its open
/// `/proc/PID/fd` directory. Links are read relative to the directory (readlinkat), so the
/// kernel resolves one name per descriptor instead of the whole `/proc/PID/fd/N` path, and
/// nothing is allocated per descriptor: a busy server holds thousands.
fn socket_inodes(fd_dir: &std::path::Path, mut each: impl FnMut(u64)) {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let (Ok(dir), Ok(entries)) = (std::fs::File::open(fd_dir), std::fs::read_dir(fd_dir)) else {
        // The process ended, or belongs to someone this user may not inspect.
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.as_bytes();
        // Descriptor numbers have at most 10 digits; anything else is not a descriptor.
        let mut cname = [0u8; 16];
        if name.is_empty() || name.len() >= cname.len() {
            continue;
        }
        cname[..name.len()].copy_from_slice(name);
        let mut link = [0u8; 40];
        // SAFETY: cname is NUL-terminated and outlives the call; link's length is passed
        // with it and readlinkat writes at most that many bytes.
        let n = unsafe {
            libc::readlinkat(
                dir.as_raw_fd(),
                cname.as_ptr().cast(),
                link.as_mut_ptr().cast(),
                link.len(),
            )
        };
        if n <= 0 {
            continue;
        }
        if let Some(inode) = link[..n as usize]
            .strip_prefix(b"socket:[")
            .and_then(|t| t.strip_suffix(b"]"))
            .and_then(|t| std::str::from_utf8(t).ok())
            .and_then(|t| t.parse().ok())
        {
            each(inode);
        }
    }
}

/// `name[pid]` of a process.
fn process_label(pid: u32) -> String {
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    format!("{name}[{pid}]")
}

/// The sockets this process holds, recorded before the audit's probes open theirs: the walk
/// of `/proc` can then skip this process, whose descriptor table is full of probe sockets
/// (none of them listening) while it runs.
#[derive(Debug, Clone)]
pub struct OwnSockets {
    pid: u32,
    inodes: std::collections::HashSet<u64>,
}

impl OwnSockets {
    /// Records this process's sockets now.
    pub fn now() -> Self {
        let mut inodes = std::collections::HashSet::new();
        socket_inodes(std::path::Path::new("/proc/self/fd"), |i| {
            inodes.insert(i);
        });
        Self {
            pid: std::process::id(),
            inodes,
        }
    }
}

/// Socket inode → `name[pid]` for the `wanted` inodes, for the processes this user may
/// inspect; this process's sockets come from `own`. The walk stops once every wanted inode
/// is found.
fn process_names(
    wanted: &std::collections::HashSet<u64>,
    own: &OwnSockets,
) -> HashMap<u64, String> {
    let mut map = HashMap::new();
    if wanted.is_empty() {
        return map;
    }
    let mine: Vec<u64> = own
        .inodes
        .iter()
        .copied()
        .filter(|i| wanted.contains(i))
        .collect();
    if !mine.is_empty() {
        let label = process_label(own.pid);
        map.extend(mine.into_iter().map(|i| (i, label.clone())));
    }
    if map.len() == wanted.len() {
        return map;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return map;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == own.pid {
            continue;
        }
        let mut label = None;
        socket_inodes(&p.path().join("fd"), |inode| {
            if wanted.contains(&inode) {
                let label = label.get_or_insert_with(|| process_label(pid));
                map.insert(inode, label.clone());
            }
        });
        if map.len() == wanted.len() {
            break;
        }
    }
    map
}

/// Every listening socket of this network namespace (from netlink sock_diag, or from
/// `/proc/net/*` where netlink is not available) with its owning process.
pub fn read_listening() -> Result<Vec<Socket>, crate::Error> {
    read_listening_with(&OwnSockets::now())
}

/// [`read_listening`], with this process's own sockets recorded earlier (see
/// [`OwnSockets`]).
pub fn read_listening_with(own: &OwnSockets) -> Result<Vec<Socket>, crate::Error> {
    let mut out = match crate::sockdiag::listening() {
        Ok(sockets) => sockets,
        Err(_) => read_proc_net()?,
    };
    let wanted: std::collections::HashSet<u64> = out.iter().map(|s| s.inode).collect();
    let names = process_names(&wanted, own);
    for s in &mut out {
        s.process = names.get(&s.inode).cloned();
    }
    out.sort_by_key(|s| (s.protocol, s.addr.port(), s.addr));
    out.dedup_by_key(|s| (s.protocol, s.addr));
    Ok(out)
}

/// Listening sockets from the `/proc/net/{tcp,tcp6,udp,udp6}` tables.
pub fn read_proc_net() -> Result<Vec<Socket>, crate::Error> {
    let mut out = Vec::new();
    for (file, proto, v6) in [
        ("/proc/net/tcp", Protocol::Tcp, false),
        ("/proc/net/tcp6", Protocol::Tcp, true),
        ("/proc/net/udp", Protocol::Udp, false),
        ("/proc/net/udp6", Protocol::Udp, true),
    ] {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            // A kernel without IPv6 has no tcp6/udp6.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && v6 => continue,
            Err(source) => {
                return Err(crate::Error::Io {
                    what: "socket table",
                    path: file.into(),
                    source,
                });
            }
        };
        out.extend(
            parse_proc_net(&text, proto, v6)
                .map_err(|source| crate::Error::SocketTable { file, source })?,
        );
    }
    Ok(out)
}

fn matches(e: &ExpectedListener, s: &Socket) -> bool {
    e.protocol == s.protocol
        && e.bind.port() == s.addr.port()
        && (e.bind.ip().is_unspecified()
            || e.bind.ip() == s.addr.ip()
            || s.addr.ip().is_unspecified())
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v| v.is_loopback()),
    }
}

/// Compares sockets with the manifest's listeners.
pub fn compare(sockets: &[Socket], expected: &[ExpectedListener]) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in sockets {
        let target = format!(
            "{} {}{}",
            s.protocol,
            s.addr,
            s.process
                .as_ref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default()
        );
        let loopback = is_loopback(s.addr.ip());
        match expected.iter().find(|e| matches(e, s)) {
            None if loopback => out.push(Finding {
                severity: Severity::Low,
                kind: FindingKind::UnexpectedListener,
                target,
                message: "listens on loopback but is not in the port manifest".into(),
            }),
            None => out.push(Finding {
                severity: Severity::Medium,
                kind: FindingKind::UnexpectedListener,
                target,
                message: "listens on the network but is not in the port manifest; stop the \
                          service, bind it to 127.0.0.1, or document it"
                    .into(),
            }),
            Some(e) if e.local_only && !loopback => out.push(Finding {
                severity: Severity::High,
                kind: FindingKind::LocalOnlyExposed,
                target,
                message: format!(
                    "{} is local-only but listens on {}; bind it to 127.0.0.1",
                    e.component,
                    s.addr.ip()
                ),
            }),
            Some(e) if !e.encrypted && !loopback => out.push(Finding {
                severity: Severity::Medium,
                kind: FindingKind::PlaintextListener,
                target,
                message: format!(
                    "{} is plaintext and reachable from the network (enabled by the admin)",
                    e.component
                ),
            }),
            Some(_) => {}
        }
    }
    for e in expected {
        if !sockets.iter().any(|s| matches(e, s)) {
            out.push(Finding {
                severity: Severity::Info,
                kind: FindingKind::MissingListener,
                target: format!("{} {}", e.protocol, e.bind),
                message: format!(
                    "{} is configured but nothing listens (not running?)",
                    e.component
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2508 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0000000000000000 100 0 0 10 0
   1: 00000000:20FB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2222 1 0000000000000000 100 0 0 10 0
   2: 0100007F:20FB 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 3333 1 0000000000000000 100 0 0 10 0
   3: 0A00000A:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5555 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn parses_proc_net() {
        let s = parse_proc_net(TCP, Protocol::Tcp, false).unwrap();
        let addrs: Vec<String> = s.iter().map(|s| s.addr.to_string()).collect();
        assert_eq!(addrs, ["127.0.0.1:9480", "0.0.0.0:8443", "10.0.0.10:8080"]);
        assert_eq!(s[1].inode, 2222);
        let s6 = parse_proc_net(TCP6, Protocol::Tcp, true).unwrap();
        assert_eq!(s6[0].addr.to_string(), "[::1]:22");
    }

    #[test]
    fn bad_tables_are_errors() {
        assert!(
            parse_proc_net(
                "hdr\n 0: zz:1 00000000:0000 0A a b c d e 1\n",
                Protocol::Tcp,
                false
            )
            .is_err()
        );
        assert!(parse_proc_net("hdr\n 0: 0100007F\n", Protocol::Tcp, false).is_err());
    }

    #[test]
    fn compare_flags_what_the_manifest_does_not_allow() {
        let mut c = vigil_config::Config::with_data_dir("/d");
        c.metrics.bind = "127.0.0.1:9480".parse().unwrap();
        c.management.http.push(vigil_config::Listener {
            bind: "0.0.0.0:8080".parse().unwrap(),
            label: String::new(),
        });
        let expected = expected_from_config(&c);
        let mut sockets = parse_proc_net(TCP, Protocol::Tcp, false).unwrap();
        // Metrics exposed on all addresses although it is local-only.
        sockets.push(Socket {
            protocol: Protocol::Tcp,
            addr: "0.0.0.0:9480".parse().unwrap(),
            inode: 9,
            process: None,
        });
        let f = compare(&sockets, &expected);
        let kinds: Vec<(FindingKind, &str)> =
            f.iter().map(|f| (f.kind, f.target.as_str())).collect();
        assert!(
            kinds.contains(&(FindingKind::PlaintextListener, "tcp 10.0.0.10:8080")),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&(FindingKind::LocalOnlyExposed, "tcp 0.0.0.0:9480")),
            "{kinds:?}"
        );
        // Every listener serve opens for this configuration is there, and nothing it does
        // not open (the inter-server ports, the events role while off) is expected.
        assert!(
            !kinds
                .iter()
                .any(|(k, _)| *k == FindingKind::MissingListener),
            "{kinds:?}"
        );
        // A listener serve opens but that is not there is missing.
        c.events.enabled = true;
        let f = compare(&sockets, &expected_from_config(&c));
        let missing: Vec<&str> = f
            .iter()
            .filter(|f| f.kind == FindingKind::MissingListener)
            .map(|f| f.target.as_str())
            .collect();
        assert_eq!(missing, ["tcp 0.0.0.0:1234", "tcp 0.0.0.0:6514"]);
        // 8443 (HTTPS) and loopback metrics are fine.
        assert!(
            !kinds
                .iter()
                .any(|(_, t)| *t == "tcp 0.0.0.0:8443" || *t == "tcp 127.0.0.1:9480"),
            "{kinds:?}"
        );
    }

    #[test]
    fn reads_real_sockets_of_this_process() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let socks = read_listening().unwrap();
        let me = format!("[{}]", std::process::id());
        for (proto, addr) in [
            (Protocol::Tcp, l.local_addr().unwrap()),
            (Protocol::Udp, u.local_addr().unwrap()),
        ] {
            let s = socks
                .iter()
                .find(|s| s.protocol == proto && s.addr == addr)
                .unwrap_or_else(|| panic!("{proto} {addr} not found"));
            assert!(
                s.process.as_deref().is_some_and(|p| p.ends_with(&me)),
                "{s:?}"
            );
        }
    }
}
