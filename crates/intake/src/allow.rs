//! The allow-list of `[events] allowed_sources`: networks whose senders need no client
//! certificate over TLS, and the only senders a plaintext listener takes.

use std::net::IpAddr;

use ipnet::IpNet;

/// Source networks; an IPv4 address seen as IPv4-mapped IPv6 (`::ffff:10.0.0.1`, from a
/// dual-stack socket) matches its IPv4 networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    nets: Vec<IpNet>,
}

impl AllowList {
    pub fn new(nets: Vec<IpNet>) -> Self {
        AllowList { nets }
    }

    /// Parses `[events] allowed_sources` (see `vigil_config::parse_source`).
    pub fn parse(sources: &[String]) -> Result<Self, String> {
        sources
            .iter()
            .map(|s| vigil_config::parse_source(s).map_err(|why| format!("{s:?} {why}")))
            .collect::<Result<Vec<_>, _>>()
            .map(AllowList::new)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

/// The address as the sender has it: IPv4-mapped IPv6 addresses as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_addresses_and_mapped_addresses() {
        let a = AllowList::parse(&["10.1.2.0/24".into(), "2001:db8::7".into()]).unwrap();
        assert!(a.contains("10.1.2.200".parse().unwrap()));
        assert!(a.contains("::ffff:10.1.2.9".parse().unwrap()));
        assert!(!a.contains("10.1.3.1".parse().unwrap()));
        assert!(a.contains("2001:db8::7".parse().unwrap()));
        assert!(!a.contains("2001:db8::8".parse().unwrap()));
        assert!(!AllowList::default().contains("127.0.0.1".parse().unwrap()));
        let err = AllowList::parse(&["10.1.2.3/24".into()]).unwrap_err();
        assert!(err.contains("host bits"), "{err}");
    }
}
