//! vigil-signing: evidence integrity for recorded video (issue 3, features E1-E3).
//!
//! * [`writer::LedgerWriter`]: the per-camera append-only ledger the recorder feeds. Every GOP
//!   fragment's SHA-256 is chained to the previous record; the chain head is signed (Ed25519)
//!   when a segment closes and at least every 10 s, and the file is fsynced at each signature.
//! * [`keys::SigningIdentity`]: the recording server's signing key, issued by the installation
//!   CA, stored 0600.
//! * [`verify::verify_recording`]: server-side verification of a camera's ledger and segment
//!   files for a time range, naming the first failure and its kind;
//!   [`verify::verify_recording_with_index`] also checks the (untrusted) index database.
//! * [`bundle`]: signed export bundles, verifiable offline with only the CA certificate.
//!
//! The byte formats are specified in `docs/signing-format.md`.

pub mod bundle;
mod chain;
pub mod generation;
pub mod handover;
pub mod keys;
pub mod mp4;
pub mod prefetch;
pub mod record;
pub mod report;
pub mod verify;
pub mod writer;

pub use keys::{CaCert, KeyError, SigningIdentity};
pub use record::{FragmentRecord, HandoverFact, Hash, LockAction, LockFact};
pub use report::{Checked, Event, Failure, FailureKind, Report, SignedPart, UnsignedSpan};
pub use verify::{
    IndexedGop, TimeRange, VerifyError, verify_recording, verify_recording_with_index,
};
pub use writer::{
    LedgerError, LedgerOptions, LedgerWriter, OpenReport, RecoveredSegment, SigningMode, sha256,
};

/// Formats unix microseconds as RFC 3339 UTC (e.g. `2024-05-01T12:00:00.250000Z`).
pub fn fmt_time(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn fmt_time_matches_known_instants() {
        assert_eq!(super::fmt_time(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            super::fmt_time(1_714_564_800_250_000),
            "2024-05-01T12:00:00.250000Z"
        );
        assert_eq!(
            super::fmt_time(951_782_400_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
        assert_eq!(super::fmt_time(-1), "1969-12-31T23:59:59.999999Z");
    }
}
