//! Civil times (proleptic Gregorian, years 0000–9999) to and from Unix microseconds, without a
//! time zone database: syslog timestamps carry a numeric offset (RFC 5424), a zone name
//! (Cisco) or nothing (RFC 3164), and only offsets can be turned into instants here.

/// A date and time as written, validated (month 1–12, day within the month, hour 0–23,
/// minute and second 0–59; RFC 5424 §6.2.3 forbids leap seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micros: u32,
}

/// What is wrong with a date or time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeError(pub String);

impl Civil {
    /// Checks every field's range and returns the time, or says which field is out of range.
    pub fn new(
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        micros: u32,
    ) -> Result<Civil, RangeError> {
        if year > 9999 {
            return Err(RangeError(format!("year {year} is out of range 0000-9999")));
        }
        if !(1..=12).contains(&month) {
            return Err(RangeError(format!("month {month} is out of range 1-12")));
        }
        let dim = days_in_month(year, month);
        if day == 0 || day > dim {
            return Err(RangeError(format!(
                "day {day} is out of range for {year:04}-{month:02} (1-{dim})"
            )));
        }
        if hour > 23 {
            return Err(RangeError(format!("hour {hour} is out of range 00-23")));
        }
        if minute > 59 {
            return Err(RangeError(format!("minute {minute} is out of range 00-59")));
        }
        if second > 59 {
            return Err(RangeError(format!(
                "second {second} is out of range 00-59 (leap seconds are not allowed)"
            )));
        }
        if micros > 999_999 {
            return Err(RangeError(format!("fraction {micros} µs is out of range")));
        }
        Ok(Civil {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
        })
    }

    /// Unix microseconds of this time at `offset_s` seconds east of UTC. Years 0000–9999
    /// always fit (about ±2.5e17 µs).
    pub fn to_unix_us(&self, offset_s: i32) -> i64 {
        let days = days_from_civil(i64::from(self.year), self.month, self.day);
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - i64::from(offset_s);
        secs * 1_000_000 + i64::from(self.micros)
    }

    /// The UTC civil time of Unix microseconds `us`, if its year is 0000–9999.
    pub fn from_unix_us(us: i64) -> Option<Civil> {
        let secs = us.div_euclid(1_000_000);
        let micros = us.rem_euclid(1_000_000) as u32;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let year = u16::try_from(y).ok().filter(|y| *y <= 9999)?;
        Some(Civil {
            year,
            month: m,
            day: d,
            hour: (sod / 3600) as u8,
            minute: (sod % 3600 / 60) as u8,
            second: (sod % 60) as u8,
            micros,
        })
    }
}

/// RFC 3339 in UTC with microseconds (`2026-03-01T00:01:02.345000Z`); out of range is `-`.
pub fn format_utc(us: i64) -> String {
    match Civil::from_unix_us(us) {
        Some(c) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second, c.micros
        ),
        None => "-".into(),
    }
}

pub fn is_leap(year: u16) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

pub fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u8, d: u8) -> i64 {
    let (m, d) = (i64::from(m), i64::from(d));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        let c = Civil::new(1970, 1, 1, 0, 0, 0, 0).unwrap();
        assert_eq!(c.to_unix_us(0), 0);
        // RFC 5424 §6.2.3.1 example 2: 1985-04-12T19:20:50.52-04:00 is 23:20:50.52Z.
        let a = Civil::new(1985, 4, 12, 19, 20, 50, 520_000).unwrap();
        let b = Civil::new(1985, 4, 12, 23, 20, 50, 520_000).unwrap();
        assert_eq!(a.to_unix_us(-4 * 3600), b.to_unix_us(0));
        assert_eq!(b.to_unix_us(0), 482_196_050_520_000);
        assert_eq!(
            format_utc(482_196_050_520_000),
            "1985-04-12T23:20:50.520000Z"
        );
        let max = Civil::new(9999, 12, 31, 23, 59, 59, 999_999).unwrap();
        assert_eq!(Civil::from_unix_us(max.to_unix_us(0)), Some(max));
        let min = Civil::new(0, 1, 1, 0, 0, 0, 0).unwrap();
        assert_eq!(Civil::from_unix_us(min.to_unix_us(0)), Some(min));
        assert_eq!(format_utc(i64::MAX), "-");
        assert_eq!(format_utc(i64::MIN), "-");
    }

    #[test]
    fn ranges_say_which_field() {
        assert!(
            Civil::new(2026, 2, 29, 0, 0, 0, 0)
                .unwrap_err()
                .0
                .contains("day 29")
        );
        Civil::new(2028, 2, 29, 0, 0, 0, 0).unwrap();
        assert!(
            Civil::new(2026, 13, 1, 0, 0, 0, 0)
                .unwrap_err()
                .0
                .contains("month 13")
        );
        assert!(
            Civil::new(2026, 1, 1, 24, 0, 0, 0)
                .unwrap_err()
                .0
                .contains("hour 24")
        );
        assert!(
            Civil::new(2026, 1, 1, 0, 0, 60, 0)
                .unwrap_err()
                .0
                .contains("leap")
        );
    }
}
