//! MAC addresses as switches write them (`0011.2233.4455`, `00:11:22:33:44:55`,
//! `00-11-22-33-44-55`, `001122-334455`, `001122334455`, any case), normalised to
//! `aa:bb:cc:dd:ee:ff` in lowercase.

use std::fmt;

/// A 48-bit MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Reads one of the notations above; anything else (other group sizes, mixed separators,
    /// more or fewer than 12 hex digits) is `None`.
    pub fn parse(s: &str) -> Option<Mac> {
        let b = s.as_bytes();
        let (sep, group) = match b.len() {
            12 => (None, 12),
            13 if b[6] == b'-' => (Some(b'-'), 6),
            14 if b[4] == b'.' && b[9] == b'.' => (Some(b'.'), 4),
            17 if b[2] == b':' || b[2] == b'-' => (Some(b[2]), 2),
            _ => return None,
        };
        let mut digits = [0u8; 12];
        let mut n = 0;
        for (i, &c) in b.iter().enumerate() {
            let in_group_pos = match sep {
                None => i % 12,
                Some(_) => i % (group + 1),
            };
            if sep.is_some() && in_group_pos == group {
                if Some(c) != sep {
                    return None;
                }
                continue;
            }
            let v = hex(c)?;
            if n == 12 {
                return None;
            }
            digits[n] = v;
            n += 1;
        }
        if n != 12 {
            return None;
        }
        let mut out = [0u8; 6];
        for (i, o) in out.iter_mut().enumerate() {
            *o = (digits[2 * i] << 4) | digits[2 * i + 1];
        }
        Some(Mac(out))
    }

    /// The first MAC address among the whitespace-separated words of `text` (words trimmed of
    /// surrounding punctuation such as `(`, `)`, `,`, `.`), for messages that name one client.
    pub fn find_in(text: &str) -> Option<Mac> {
        text.split(|c: char| c.is_whitespace() || c == '=' || c == '|')
            .take(256)
            .find_map(|w| Mac::parse(trim_punct(w)))
    }
}

fn trim_punct(w: &str) -> &str {
    let w = w.trim_matches(|c: char| matches!(c, '(' | ')' | '[' | ']' | ',' | ';' | '"' | '\''));
    // A sentence's full stop, but not the dots of `0011.2233.4455`.
    let w = w.strip_suffix('.').unwrap_or(w);
    // Cisco's SCI form `90e2.ba12.a00d/0000`: the MAC is before the slash.
    w.split('/').next().unwrap_or(w)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vendor_notation_normalises_to_lowercase_colons() {
        for s in [
            "0011.2233.44aa",
            "00:11:22:33:44:AA",
            "00-11-22-33-44-aa",
            "001122-3344AA",
            "0011223344aa",
        ] {
            assert_eq!(
                Mac::parse(s).unwrap().to_string(),
                "00:11:22:33:44:aa",
                "{s}"
            );
        }
    }

    #[test]
    fn near_misses_are_refused() {
        for s in [
            "",
            "0011.2233.44a",
            "0011.2233.44aag",
            "00:11:22:33:44-aa",
            "00:11:22:33:44:a",
            "0011:2233:44aa",
            "001122334455667",
            "Unknown MAC",
            "00.11.22.33.44.aa",
            "ééééééééééééé",
        ] {
            assert_eq!(Mac::parse(s), None, "{s}");
        }
    }

    #[test]
    fn finds_the_client_in_a_sentence() {
        let m = Mac::find_in("Security violation occurred, caused by MAC address 0013.1a41.544e.");
        assert_eq!(m.unwrap().to_string(), "00:13:1a:41:54:4e");
        let m = Mac::find_in("for RxSCI 90e2.ba12.a00d/0000, AuditSessionID");
        assert_eq!(m.unwrap().to_string(), "90:e2:ba:12:a0:0d");
        assert_eq!(
            Mac::find_in("for client (Unknown MAC) on Interface Fa0/3"),
            None
        );
    }
}
