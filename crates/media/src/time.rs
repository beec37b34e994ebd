//! Times as users type and read them: RFC 3339 (`2026-11-21T10:00:00Z`), relative forms
//! (`-10m`, `-2h`, `now`), and plain Unix seconds.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot read time '{input}': {reason}. Use RFC 3339 (2026-11-21T10:00:00Z), a relative time (-10m, -2h, now) or Unix seconds"
)]
pub struct TimeError {
    input: String,
    reason: String,
}

/// Parses a user time into Unix microseconds, relative forms counting back from `now_us`.
pub fn parse_time(input: &str, now_us: i64) -> Result<i64, TimeError> {
    let s = input.trim();
    let err = |reason: &str| TimeError {
        input: input.to_owned(),
        reason: reason.to_owned(),
    };
    if s == "now" {
        return Ok(now_us);
    }
    // humantime accepts durations up to u64::MAX seconds, far more microseconds than an i64
    // holds: such a time is refused, not wrapped into a wrong one (or an overflow panic).
    let out_of_range = || err("too far from now");
    if let Some(rel) = s.strip_prefix('-') {
        let d: Duration = humantime::parse_duration(rel).map_err(|e| err(&e.to_string()))?;
        return micros(d)
            .and_then(|us| now_us.checked_sub(us))
            .ok_or_else(out_of_range);
    }
    if let Some(rel) = s.strip_prefix('+') {
        let d: Duration = humantime::parse_duration(rel).map_err(|e| err(&e.to_string()))?;
        return micros(d)
            .and_then(|us| now_us.checked_add(us))
            .ok_or_else(out_of_range);
    }
    if s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty() {
        let secs: i64 = s.parse().map_err(|_| err("number too large"))?;
        return Ok(secs.saturating_mul(1_000_000));
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|e| err(&e.to_string()))?;
    let d = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| err("before 1970"))?;
    Ok(d.as_micros() as i64)
}

/// `d` in microseconds, if that fits an i64.
fn micros(d: Duration) -> Option<i64> {
    i64::try_from(d.as_micros()).ok()
}

/// The last instant RFC 3339 can write, 9999-12-31T23:59:59.999999Z.
const MAX_FORMAT_US: i64 = 253_402_300_800_000_000 - 1;

/// RFC 3339 with milliseconds, UTC; times before 1970 or after 9999 show as those limits.
pub fn format_us(us: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_micros(us.clamp(0, MAX_FORMAT_US) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let now = 1_800_000_000_000_000;
        assert_eq!(parse_time("now", now).unwrap(), now);
        assert_eq!(parse_time("-10m", now).unwrap(), now - 600_000_000);
        assert_eq!(
            parse_time("1700000000", now).unwrap(),
            1_700_000_000_000_000
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z", now).unwrap(),
            1_700_000_000_000_000
        );
        assert_eq!(format_us(1_700_000_000_000_000), "2023-11-14T22:13:20.000Z");
        for bad in [
            "",
            "yesterday",
            "-ten minutes",
            "2023-13-40T00:00:00Z",
            "99999999999999999999",
        ] {
            let e = parse_time(bad, now).unwrap_err().to_string();
            assert!(e.contains("RFC 3339"), "{e}");
        }
    }

    #[test]
    fn relative_times_beyond_the_i64_range_are_refused() {
        let now = 1_800_000_000_000_000;
        // Found by the media_time fuzz target: 51381868398691 hours is about 1.8e23 us, which
        // wrapped through `as i64` and then overflowed the subtraction.
        for far in [
            "-51381868398691h",
            "+51381868398691h",
            "+292270y",
            "-300000y",
        ] {
            let e = parse_time(far, now).unwrap_err().to_string();
            assert!(e.contains("too far from now"), "{far}: {e}");
        }
        // Up to the edge of the range the arithmetic stays exact.
        let max_ahead = (i64::MAX - now) / 1_000_000;
        assert_eq!(
            parse_time(&format!("+{max_ahead}s"), now).unwrap(),
            now + max_ahead * 1_000_000
        );
        assert_eq!(
            parse_time(&format!("-{}s", now / 1_000_000 + 1), now).unwrap(),
            -1_000_000
        );
    }

    #[test]
    fn times_after_year_9999_are_shown_as_its_end() {
        // Found by the media_time fuzz target: Unix seconds 17000000070000 (year 540,000)
        // parse, and humantime refuses to write a year past 9999 (a Display error, which
        // `to_string` turns into a panic). The API shows parsed times back in range errors.
        let us = parse_time("17000000070000", 1_800_000_000_000_000).unwrap();
        assert_eq!(format_us(us), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_us(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(
            format_us(253_402_300_799_000_000),
            "9999-12-31T23:59:59.000Z"
        );
        assert_eq!(format_us(i64::MIN), "1970-01-01T00:00:00.000Z");
    }
}
