//! Which camera a switch port or a MAC address belongs to (`[[events.camera_ports]]` in
//! `vigil.toml`): the entries, their checks, and the lookup table syslog in uses
//! (`vigil_syslog::CameraMap`), so "the switch port of camera `lobby` rejected a device" is an
//! event of camera `lobby` that its rules see. Reference: docs/events-in.md.

use serde::{Deserialize, Serialize};
use vigil_syslog::CameraMap;

/// Entries at most.
pub const MAX_CAMERA_PORTS: usize = 4096;

/// One entry: a camera's switch port (`switch` and `interface`) or its MAC address (`mac`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CameraPort {
    /// The camera's name, as events and rules name it.
    pub camera: String,
    /// The switch: the host name it gives itself in its messages or the address it sends
    /// from (a short name also matches its full name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch: Option<String>,
    /// The switch interface the camera is plugged into, in any of the vendor's spellings
    /// (`Gi1/0/3`, `GigabitEthernet1/0/3`, `ge-0/0/3`, `1/1/22`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The camera's own MAC address, in any common notation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// Checks the entries and builds their lookup table; `at` turns a key path
/// (`events.camera_ports[2].mac`) into where it was written.
pub fn camera_map(ports: &[CameraPort], at: &dyn Fn(&str) -> String) -> Result<CameraMap, String> {
    if ports.len() > MAX_CAMERA_PORTS {
        return Err(format!(
            "`events.camera_ports`{} has {} entries; at most {MAX_CAMERA_PORTS}",
            at("events.camera_ports"),
            ports.len()
        ));
    }
    let mut map = CameraMap::new();
    for (i, p) in ports.iter().enumerate() {
        let key = |k: &str| format!("events.camera_ports[{i}].{k}");
        let err = |k: &str, what: String| {
            let k = key(k);
            Err(format!("`{k}`{} {what}", at(&k)))
        };
        if p.camera.trim().is_empty()
            || p.camera.len() > 128
            || p.camera.chars().any(char::is_control)
        {
            return err("camera", "must be 1 to 128 bytes of printable text".into());
        }
        for (k, v) in [
            ("switch", &p.switch),
            ("interface", &p.interface),
            ("mac", &p.mac),
        ] {
            if let Some(v) = v
                && (v.trim().is_empty() || v.len() > 255 || v.chars().any(char::is_control))
            {
                return err(k, "must be 1 to 255 bytes of printable text".into());
            }
        }
        let added = match (&p.switch, &p.interface, &p.mac) {
            (Some(switch), Some(interface), None) => {
                map.add_port(switch, interface, &p.camera).map_err(|e| {
                    (
                        if matches!(e, vigil_syslog::MapError::BadInterface(_)) {
                            "interface"
                        } else {
                            "switch"
                        },
                        e,
                    )
                })
            }
            (None, None, Some(mac)) => map.add_mac(mac, &p.camera).map_err(|e| ("mac", e)),
            (Some(_), None, _) => {
                return err(
                    "interface",
                    "is missing: a port entry names the switch and its interface".into(),
                );
            }
            (None, Some(_), _) => {
                return err(
                    "switch",
                    "is missing: a port entry names the switch and its interface".into(),
                );
            }
            (Some(_), Some(_), Some(_)) => {
                return err(
                    "mac",
                    "is set beside `switch` and `interface`: write the port and the MAC as two entries".into(),
                );
            }
            (None, None, None) => {
                let k = format!("events.camera_ports[{i}]");
                return Err(format!(
                    "`{k}`{} maps nothing to camera {:?}: set `switch` and `interface`, or `mac`",
                    at(&k),
                    p.camera
                ));
            }
        };
        if let Err((k, why)) = added {
            return err(k, format!("cannot be mapped: {why}"));
        }
    }
    Ok(map)
}

/// The `[[events.camera_ports]]` tables of `ports`, as `vigil init` and the settings API write
/// them (a commented example when there are none).
pub fn camera_ports_toml(ports: &[CameraPort]) -> String {
    if ports.is_empty() {
        return "# Switch ports and MAC addresses of cameras, so syslog events on them are the\n\
                # camera's (docs/syslog-in.md):\n\
                # [[events.camera_ports]]\n\
                # camera = \"lobby\"\n\
                # switch = \"sw-lobby\"\n\
                # interface = \"Gi1/0/3\"\n"
            .into();
    }
    ports
        .iter()
        .map(|p| {
            format!(
                "\n[[events.camera_ports]]\n{}",
                toml::to_string(p).expect("camera port serializes")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_line(_: &str) -> String {
        String::new()
    }

    fn port(camera: &str, switch: &str, interface: &str) -> CameraPort {
        CameraPort {
            camera: camera.into(),
            switch: Some(switch.into()),
            interface: Some(interface.into()),
            mac: None,
        }
    }

    fn mac(camera: &str, mac: &str) -> CameraPort {
        CameraPort {
            camera: camera.into(),
            switch: None,
            interface: None,
            mac: Some(mac.into()),
        }
    }

    #[test]
    fn ports_and_macs_map_to_cameras() {
        let map = camera_map(
            &[
                port("lobby", "sw-lobby", "Gi1/0/3"),
                mac("gate", "0011.2233.4455"),
            ],
            &no_line,
        )
        .unwrap();
        assert_eq!(map.len(), 2);
        let gi = vigil_syslog::iface::Interface::parse("GigabitEthernet1/0/3").unwrap();
        assert_eq!(
            map.by_port(&["sw-lobby.example.com"], &gi),
            Some("lobby"),
            "long and short names, long and short interfaces"
        );
        let m = vigil_syslog::mac::Mac::parse("00:11:22:33:44:55").unwrap();
        assert_eq!(map.by_mac(&m), Some("gate"));
    }

    #[test]
    fn bad_entries_name_their_key() {
        let cases = [
            (
                vec![port("lobby", "sw-1", "not an interface!")],
                "[0].interface",
            ),
            (vec![mac("gate", "00:11:22:33:44")], "[0].mac"),
            (vec![mac("", "00:11:22:33:44:55")], "[0].camera"),
            (
                vec![
                    port("a", "sw-1", "Gi1/0/3"),
                    port("b", "SW-1", "GigabitEthernet1/0/3"),
                ],
                "[1].switch",
            ),
            (
                vec![mac("a", "0011.2233.4455"), mac("b", "00-11-22-33-44-55")],
                "[1].mac",
            ),
            (
                vec![CameraPort {
                    interface: None,
                    ..port("a", "sw-1", "Gi1/0/3")
                }],
                "[0].interface",
            ),
            (
                vec![CameraPort {
                    switch: None,
                    ..port("a", "sw-1", "Gi1/0/3")
                }],
                "[0].switch",
            ),
            (
                vec![CameraPort {
                    mac: Some("0011.2233.4455".into()),
                    ..port("a", "sw-1", "Gi1/0/3")
                }],
                "[0].mac",
            ),
            (
                vec![CameraPort {
                    camera: "a".into(),
                    switch: None,
                    interface: None,
                    mac: None,
                }],
                "[0]`",
            ),
        ];
        for (ports, want) in cases {
            let e = camera_map(&ports, &no_line).unwrap_err();
            assert!(
                e.starts_with(&format!("`events.camera_ports{want}")),
                "{want}: {e}"
            );
        }
    }
}
