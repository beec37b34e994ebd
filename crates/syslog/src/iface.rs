//! Switch interface names, normalised so that the forms one port is written in compare equal:
//! Cisco's abbreviations (`Gi1/0/3`, `gi 1/0/3`, `Gig1/0/3`) and long names
//! (`GigabitEthernet1/0/3`), Juniper's logical units (`ge-0/0/3.0` is port `ge-0/0/3`),
//! Aruba's bare port numbers (`1/1/22`, `A1`).
//!
//! A name is split into a *family* (the letters in front: `GigabitEthernet`, `ge`, none) and
//! an *id* (the rest: `1/0/3`). Known Cisco families are written out in full; a family that is
//! an unambiguous prefix of a known one (`Gig`, `TenGig`) counts as that one, as on the IOS
//! command line; other families (Juniper's `ge-`, `xe-`, …) are kept in lowercase. A logical
//! unit or subinterface (`.0`, `.100`) is kept apart: a mapping written without one matches
//! every unit of the port.

use std::fmt;

/// Cisco interface families: (long name, the abbreviations IOS, IOS-XE and IOS-XR print).
const CISCO: &[(&str, &[&str])] = &[
    ("FastEthernet", &["fa", "fas"]),
    ("GigabitEthernet", &["gi", "gig"]),
    ("TwoGigabitEthernet", &["tw", "two"]),
    ("FiveGigabitEthernet", &["fi", "fiv"]),
    ("TenGigabitEthernet", &["te", "ten", "tengig"]),
    ("TwentyFiveGigE", &["twe", "twentyfivegig"]),
    ("FortyGigabitEthernet", &["fo", "for"]),
    ("HundredGigE", &["hu", "hun", "hundredgigabitethernet"]),
    ("Ethernet", &["et", "eth"]),
    ("AppGigabitEthernet", &["ap"]),
    ("Port-channel", &["po", "port-channel", "portchannel"]),
    ("Vlan", &["vl", "vlan"]),
];

/// Juniper families: never expanded (`ge-0/0/1` is not Cisco's `GigabitEthernet`).
const JUNIPER: &[&str] = &[
    "ge", "xe", "et", "mge", "fe", "ae", "irb", "me", "em", "vme",
];

/// The longest normalised interface name.
pub const MAX_LEN: usize = 64;

/// A normalised interface name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Interface {
    /// Canonical family: a Cisco long name, a lowercase other family, or empty.
    family: String,
    /// Juniper style: the family and the id are joined by `-` (`ge-0/0/1`).
    dash: bool,
    /// The port: `1/0/3`, `0/0/1`, `1/1/22`, `A1` (letters uppercase).
    id: String,
    /// The logical unit or subinterface, without its dot.
    unit: Option<String>,
}

impl Interface {
    /// Normalises `raw`; `None` for text that is no interface name: empty, characters other
    /// than letters, digits, `/`, `.`, `-`, `:`, `_` and one inner space, a port that does not
    /// start with a digit (or, without a family, one letter and a digit: Aruba's `A5`), or a
    /// normalised name longer than [`MAX_LEN`] bytes.
    pub fn parse(raw: &str) -> Option<Interface> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 2 * MAX_LEN {
            return None;
        }
        // `Gi 1/0/3` and `GigabitEthernet 1/0/3` (one space between family and id).
        let joined: String;
        let s = match raw.split_once(' ') {
            Some((a, b))
                if !b.contains(' ')
                    && a.bytes().all(|c| c.is_ascii_alphabetic() || c == b'-')
                    && b.bytes().next().is_some_and(|c| c.is_ascii_digit()) =>
            {
                joined = format!("{a}{b}");
                &joined
            }
            Some(_) => return None,
            None => raw,
        };
        if !s
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'/' | b'.' | b'-' | b':' | b'_'))
            || !s.bytes().any(|c| c.is_ascii_digit())
        {
            return None;
        }
        // Family: the leading letters (and inner dashes, as in `Port-channel`).
        let split = s
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_alphabetic() || c == '-'))
            .map_or(s.len(), |(i, _)| i);
        let (mut fam, mut rest) = s.split_at(split);
        // Aruba `A1`, `B12`: a single letter in front of the port number is part of the id.
        if fam.len() == 1 && !fam.ends_with('-') {
            fam = "";
            rest = s;
        }
        if fam.starts_with('-') {
            return None;
        }
        let dash = fam.ends_with('-');
        let fam = fam.trim_end_matches('-');
        let family = canonical_family(fam, dash);
        let (id, unit) = match rest.rsplit_once('.') {
            Some((id, unit))
                if !id.is_empty()
                    && !unit.is_empty()
                    && unit.bytes().all(|c| c.is_ascii_digit()) =>
            {
                (id, Some(unit.to_string()))
            }
            _ => (rest, None),
        };
        let id_ok = match id.as_bytes() {
            [d, ..] if d.is_ascii_digit() => true,
            [l, d, ..] if family.is_empty() && l.is_ascii_alphabetic() && d.is_ascii_digit() => {
                true
            }
            _ => false,
        };
        if !id_ok {
            return None;
        }
        let i = Interface {
            dash,
            family,
            id: id.to_ascii_uppercase(),
            unit,
        };
        // The normalised name reads back as itself (the expanded family may lengthen it).
        (i.to_string().len() <= MAX_LEN).then_some(i)
    }

    /// Whether an event's interface (`self`) is the port a mapping entry (`entry`) names:
    /// same family and id, and the entry's unit if it names one.
    pub fn matches_entry(&self, entry: &Interface) -> bool {
        self.family == entry.family
            && self.id == entry.id
            && (entry.unit.is_none() || entry.unit == self.unit)
    }

    /// The port without its unit.
    pub fn port(&self) -> Interface {
        Interface {
            unit: None,
            ..self.clone()
        }
    }
}

fn canonical_family(fam: &str, dash: bool) -> String {
    if fam.is_empty() {
        return String::new();
    }
    let lower = fam.to_ascii_lowercase();
    if dash || JUNIPER.contains(&fam) {
        // `ge-0/0/1`: Junos joins family and port with a dash; Cisco never does.
        return lower;
    }
    for (long, abbrevs) in CISCO {
        if long.eq_ignore_ascii_case(fam) || abbrevs.contains(&lower.as_str()) {
            return (*long).to_string();
        }
    }
    // An unambiguous prefix of one long name (`Gigabit`, `TenGigabit`), at least 2 letters.
    if lower.len() >= 2 {
        let mut hits = CISCO
            .iter()
            .filter(|(long, _)| long.to_ascii_lowercase().starts_with(&lower));
        if let (Some((long, _)), None) = (hits.next(), hits.next()) {
            return (*long).to_string();
        }
    }
    lower
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.family)?;
        if self.dash {
            f.write_str("-")?;
        }
        f.write_str(&self.id)?;
        if let Some(u) = &self.unit {
            write!(f, ".{u}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        Interface::parse(s).unwrap().to_string()
    }

    #[test]
    fn cisco_abbreviations_and_long_names_are_one_port() {
        for s in [
            "Gi1/0/3",
            "gi1/0/3",
            "Gig1/0/3",
            "GigabitEthernet1/0/3",
            "gigabitethernet1/0/3",
            "Gi 1/0/3",
            "GigabitEthernet 1/0/3",
        ] {
            assert_eq!(n(s), "GigabitEthernet1/0/3", "{s}");
        }
        assert_eq!(n("Fa0/14"), "FastEthernet0/14");
        assert_eq!(n("Te1/1/1"), "TenGigabitEthernet1/1/1");
        assert_eq!(n("Tw1/0/1"), "TwoGigabitEthernet1/0/1");
        assert_eq!(n("Twe1/0/1"), "TwentyFiveGigE1/0/1");
        assert_eq!(n("Hu0/0/0/0"), "HundredGigE0/0/0/0");
        assert_eq!(n("Et1/2"), "Ethernet1/2");
        assert_eq!(n("Po12"), "Port-channel12");
        assert_eq!(n("TenGigabit1/1/1"), "TenGigabitEthernet1/1/1");
    }

    #[test]
    fn normalised_names_read_back_as_themselves() {
        for s in [
            "Gi1/0/3",
            "ge-0/0/2.0",
            "A5",
            "a-b-1",
            "Port-channel12",
            "Vlan10",
            "te1/1/1.100",
            "1/1/22",
            "Hu0/0/0/0",
        ] {
            let i = Interface::parse(s).unwrap();
            assert_eq!(
                Interface::parse(&i.to_string()),
                Some(i.clone()),
                "{s} -> {i}"
            );
        }
    }

    #[test]
    fn juniper_units_and_aruba_ports() {
        assert_eq!(n("ge-0/0/2.0"), "ge-0/0/2.0");
        assert_eq!(n("xe-0/0/2"), "xe-0/0/2");
        assert_eq!(n("1/1/22"), "1/1/22");
        assert_eq!(n("a1"), "A1");
        assert_eq!(n("1"), "1");
        let event = Interface::parse("ge-0/0/2.0").unwrap();
        let entry = Interface::parse("ge-0/0/2").unwrap();
        assert!(event.matches_entry(&entry));
        assert!(
            !entry.matches_entry(&event),
            "an entry with a unit is that unit only"
        );
        assert!(
            !Interface::parse("ge-0/0/2")
                .unwrap()
                .matches_entry(&Interface::parse("GigabitEthernet0/0/2").unwrap()),
            "Juniper ge- is not Cisco's Gi"
        );
    }

    #[test]
    fn no_interface_names_are_refused() {
        for s in [
            "",
            "Unknown",
            "Gi",
            "a b c",
            "Gi1/0/3;rm",
            "1".repeat(65).as_str(),
            "-1",
            "Gi/0/1",
            "A/5",
            // fuzz (syslog_parse): a port not starting with a digit, too long once expanded.
            "Gi/0sd.jungabitEwhernet1/0sd.junos_2636.1.1.1.2.u1s.mac-addres/5",
            // Fine as written (60 bytes), too long once `Fo` is written out.
            format!("Fo1/{}", "0".repeat(56)).as_str(),
        ] {
            assert_eq!(Interface::parse(s), None, "{s:?}");
        }
    }
}
