//! Which camera a switch port or a MAC address belongs to, so that "the switch port of camera
//! `lobby` rejected a device" becomes an event of camera `lobby`.
//!
//! The mapping is data (the `vigil.toml` section and the API come later): entries of
//! *switch + interface → camera* and *MAC → camera*. Lookups are tolerant:
//!
//! - **switch**: the name the switch gives itself in its messages (HOSTNAME) or the address it
//!   sends from, compared without regard to case; a short name (`sw-lobby`) also matches the
//!   same switch's full name (`sw-lobby.example.com`) and the other way round. Addresses
//!   compare as addresses (`2001:db8::1` = `2001:DB8:0::1`) and never by their first label.
//! - **interface**: normalised ([`crate::iface`]): `Gi1/0/3` = `GigabitEthernet1/0/3`; an entry
//!   without a unit (`ge-0/0/3`) covers every unit of the port (`ge-0/0/3.0`).
//! - **MAC**: any notation ([`crate::mac`]).
//!
//! A port entry wins over a MAC entry: the port is where the event happened, the MAC is
//! often the intruder's.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::iface::Interface;
use crate::mac::Mac;

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("switch name is empty")]
    EmptySwitch,
    #[error("camera name is empty")]
    EmptyCamera,
    #[error(
        "'{0}' is not an interface name (e.g. Gi1/0/3, GigabitEthernet1/0/3, ge-0/0/3, 1/1/22)"
    )]
    BadInterface(String),
    #[error("'{0}' is not a MAC address (e.g. 00:11:22:33:44:55 or 0011.2233.4455)")]
    BadMac(String),
    #[error("{0} is already mapped to camera {1}")]
    Duplicate(String, String),
}

#[derive(Debug, Clone)]
struct PortEntry {
    switch: String,
    interface: Interface,
    camera: String,
}

/// How an event was tied to its camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    Port,
    Mac,
}

impl MatchedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedBy::Port => "port",
            MatchedBy::Mac => "mac",
        }
    }
}

/// A camera found for an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CameraMatch<'a> {
    pub camera: &'a str,
    pub by: MatchedBy,
}

/// Switch ports and MAC addresses → camera names.
#[derive(Debug, Clone, Default)]
pub struct CameraMap {
    ports: Vec<PortEntry>,
    macs: BTreeMap<Mac, String>,
}

impl CameraMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty() && self.macs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ports.len() + self.macs.len()
    }

    /// Maps `interface` of `switch` (its host name or address) to `camera`.
    pub fn add_port(
        &mut self,
        switch: &str,
        interface: &str,
        camera: &str,
    ) -> Result<(), MapError> {
        let switch = switch.trim();
        if switch.is_empty() {
            return Err(MapError::EmptySwitch);
        }
        if camera.trim().is_empty() {
            return Err(MapError::EmptyCamera);
        }
        let iface =
            Interface::parse(interface).ok_or_else(|| MapError::BadInterface(interface.into()))?;
        if let Some(e) = self
            .ports
            .iter()
            .find(|e| same_switch(&e.switch, switch) && e.interface == iface)
        {
            return Err(MapError::Duplicate(
                format!("{iface} of {switch}"),
                e.camera.clone(),
            ));
        }
        self.ports.push(PortEntry {
            switch: switch.to_ascii_lowercase(),
            interface: iface,
            camera: camera.trim().to_string(),
        });
        Ok(())
    }

    /// Maps a MAC address (a camera's own) to `camera`.
    pub fn add_mac(&mut self, mac: &str, camera: &str) -> Result<(), MapError> {
        if camera.trim().is_empty() {
            return Err(MapError::EmptyCamera);
        }
        let m = Mac::parse(mac.trim()).ok_or_else(|| MapError::BadMac(mac.into()))?;
        if let Some(c) = self.macs.get(&m) {
            return Err(MapError::Duplicate(m.to_string(), c.clone()));
        }
        self.macs.insert(m, camera.trim().to_string());
        Ok(())
    }

    /// The camera on `interface` of the switch known by any of `switch_names`.
    pub fn by_port(&self, switch_names: &[&str], interface: &Interface) -> Option<&str> {
        self.ports
            .iter()
            .find(|e| {
                interface.matches_entry(&e.interface)
                    && switch_names.iter().any(|n| same_switch(&e.switch, n))
            })
            .map(|e| e.camera.as_str())
    }

    pub fn by_mac(&self, mac: &Mac) -> Option<&str> {
        self.macs.get(mac).map(String::as_str)
    }

    /// The port first, then the MAC.
    pub fn lookup(
        &self,
        switch_names: &[&str],
        interface: Option<&Interface>,
        mac: Option<&Mac>,
    ) -> Option<CameraMatch<'_>> {
        interface
            .and_then(|i| self.by_port(switch_names, i))
            .map(|camera| CameraMatch {
                camera,
                by: MatchedBy::Port,
            })
            .or_else(|| {
                mac.and_then(|m| self.by_mac(m)).map(|camera| CameraMatch {
                    camera,
                    by: MatchedBy::Mac,
                })
            })
    }
}

/// Whether the entry's switch name `entry` and a name an event carries are one switch.
fn same_switch(entry: &str, name: &str) -> bool {
    let name = name.trim();
    if name.is_empty() {
        return false;
    }
    match (entry.parse::<IpAddr>(), name.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => return a == b,
        (Ok(_), Err(_)) | (Err(_), Ok(_)) => return false,
        _ => {}
    }
    if entry.eq_ignore_ascii_case(name) {
        return true;
    }
    let short = |s: &str| s.split('.').next().unwrap_or(s).to_ascii_lowercase();
    match (entry.contains('.'), name.contains('.')) {
        (false, true) => short(name) == entry.to_ascii_lowercase(),
        (true, false) => short(entry) == name.to_ascii_lowercase(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> CameraMap {
        let mut m = CameraMap::new();
        m.add_port("sw-lobby", "GigabitEthernet1/0/3", "lobby")
            .unwrap();
        m.add_port("10.0.0.2", "ge-0/0/7", "garage").unwrap();
        m.add_port("core.example.com", "1/1/22", "dock").unwrap();
        m.add_mac("00:11:22:33:44:55", "lobby").unwrap();
        m.add_mac("0011.2233.4466", "yard").unwrap();
        m
    }

    #[test]
    fn ports_are_found_whatever_the_spelling() {
        let m = map();
        let gi = Interface::parse("Gi1/0/3").unwrap();
        assert_eq!(m.by_port(&["SW-LOBBY"], &gi), Some("lobby"));
        assert_eq!(m.by_port(&["sw-lobby.example.com"], &gi), Some("lobby"));
        assert_eq!(m.by_port(&["sw-hall"], &gi), None);
        let ge = Interface::parse("ge-0/0/7.0").unwrap();
        assert_eq!(m.by_port(&["nosuch", "10.0.0.2"], &ge), Some("garage"));
        assert_eq!(m.by_port(&["10"], &ge), None, "an address is no short name");
        let cx = Interface::parse("1/1/22").unwrap();
        assert_eq!(m.by_port(&["core"], &cx), Some("dock"));
        assert_eq!(m.by_port(&["core.other.org"], &cx), None);
    }

    #[test]
    fn port_before_mac() {
        let m = map();
        let gi = Interface::parse("Gi1/0/3").unwrap();
        let yard = Mac::parse("00:11:22:33:44:66").unwrap();
        let hit = m.lookup(&["sw-lobby"], Some(&gi), Some(&yard)).unwrap();
        assert_eq!((hit.camera, hit.by), ("lobby", MatchedBy::Port));
        let hit = m.lookup(&["sw-other"], Some(&gi), Some(&yard)).unwrap();
        assert_eq!((hit.camera, hit.by), ("yard", MatchedBy::Mac));
        assert_eq!(m.lookup(&["sw-other"], Some(&gi), None), None);
    }

    #[test]
    fn bad_entries_are_refused_with_the_reason() {
        let mut m = map();
        assert_eq!(
            m.add_port("SW-LOBBY", "Gi1/0/3", "x"),
            Err(MapError::Duplicate(
                "GigabitEthernet1/0/3 of SW-LOBBY".into(),
                "lobby".into()
            ))
        );
        assert!(matches!(
            m.add_port("s", "not a port", "x"),
            Err(MapError::BadInterface(_))
        ));
        assert_eq!(m.add_port(" ", "Gi1/0/1", "x"), Err(MapError::EmptySwitch));
        assert_eq!(m.add_port("s", "Gi1/0/1", ""), Err(MapError::EmptyCamera));
        assert!(matches!(
            m.add_mac("00:11:22:33:44", "x"),
            Err(MapError::BadMac(_))
        ));
        assert!(matches!(
            m.add_mac("00-11-22-33-44-55", "x"),
            Err(MapError::Duplicate(..))
        ));
        assert_eq!(m.len(), 5);
    }
}
