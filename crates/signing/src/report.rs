//! Verification results shared by the server-side verifier and the export-bundle verifier.

use std::fmt;

/// Kinds of verification failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// Content differs from what was hashed and signed.
    Modified,
    /// A fragment, segment or ledger records were removed.
    Missing,
    /// Data that the chain does not cover (foreign fragment or segment, extra bytes).
    Inserted,
    /// Data or records out of their recorded order.
    Reordered,
    /// A file ends before the signed data does.
    Truncated,
    /// Data after the last valid signature, e.g. the tail of an unclean shutdown. Not tampering.
    Unsigned,
    /// Signed with a key whose certificate no trusted CA issued.
    UnknownKey,
    /// A certificate that is malformed, of the wrong kind, or not valid at signing time.
    BadCertificate,
}

impl FailureKind {
    /// Everything but `Unsigned` indicates tampering or an untrusted origin.
    pub fn is_tampering(self) -> bool {
        self != FailureKind::Unsigned
    }
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Modified => "modified",
            FailureKind::Missing => "missing",
            FailureKind::Inserted => "inserted",
            FailureKind::Reordered => "reordered",
            FailureKind::Truncated => "truncated",
            FailureKind::Unsigned => "unsigned",
            FailureKind::UnknownKey => "unknown key",
            FailureKind::BadCertificate => "bad certificate",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first point of failure.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    /// Wall-clock time (unix micros) of the first affected recorded data, when known.
    pub at_us: Option<i64>,
    /// Segment file concerned, if any.
    pub segment: Option<u64>,
    /// What exactly was found, for people.
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(t) = self.at_us {
            write!(f, " at {}", crate::fmt_time(t))?;
        }
        if let Some(s) = self.segment {
            write!(f, " (segment {s:016x})")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// Recorded data that no valid signature covers (not tampering by itself).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnsignedSpan {
    pub segment: Option<u64>,
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
    pub bytes: u64,
    /// The span ends in an unclean shutdown that a later run recorded.
    pub after_unclean_shutdown: bool,
    pub detail: String,
}

/// A signed fact found in the ledger: legitimate events, not failures.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    Gap {
        before_us: i64,
        after_us: i64,
        reason: String,
    },
    Pruned {
        segment: u64,
        pruned_at_us: i64,
    },
    /// "Recovered after unclean shutdown": the previous run ended without a clean shutdown; the
    /// restarted server recorded that fact and its first signature vouches for the
    /// `recovered_records` records the crashed run wrote after its last signature.
    UncleanShutdown {
        detected_at_us: i64,
        /// Bytes of a torn ledger record cut off at start-up.
        torn_bytes: u64,
        recovered_records: u64,
        /// Recorded time of the first of those records (where the crash tail begins).
        recovered_from_us: Option<i64>,
    },
    /// Start-up recovery after an unclean shutdown found the segment that was open at the crash
    /// ending at `final_len` (0: removed, it held no complete GOP), after cutting
    /// `truncated_bytes` of a GOP that was being written at the crash point. Not tampering.
    SegmentRecovered {
        segment: u64,
        final_len: u64,
        truncated_bytes: u64,
        recovered_at_us: i64,
    },
    KeyRotation {
        rotated_at_us: i64,
        new_key_id: String,
    },
    /// An evidence lock: retention keeps `from_us`..`to_us` of the camera's video from `at_us`
    /// (`locked`), or no longer (`released`, `expired`).
    EvidenceLock {
        action: crate::record::LockAction,
        lock_id: u64,
        from_us: i64,
        to_us: i64,
        at_us: i64,
        by: String,
        reason: String,
    },
    /// The server could not continue the camera's ledger file (`reason`, `detail`), moved it
    /// aside as `retired_file` and continued the recording in `continued_in`, whose signed
    /// predecessor record pins the retired file's length and SHA-256 and its last intact
    /// record. That record vouches for the `vouched_records` records the retired ledger holds
    /// after its last signature. Not tampering by itself; damage inside the retired file is
    /// reported as a failure.
    LedgerContinued {
        retired_file: String,
        continued_in: String,
        retired_at_us: i64,
        reason: crate::record::RetireReason,
        detail: String,
        retired_len: u64,
        retired_sha256: String,
        /// Seq of the retired ledger's last intact record (`None`: none was).
        last_seq: Option<u64>,
        vouched_records: u64,
    },
    /// A write that failed part-way left `bytes` bytes of an incomplete record after record
    /// `after_seq` of `ledger`; the next record continues the chain after them.
    InterruptedWrite {
        ledger: String,
        offset: u64,
        bytes: u64,
        after_seq: Option<u64>,
        /// Recorded time of the last record before them.
        at_us: Option<i64>,
    },
    CodecChange {
        segment: u64,
        at_us: i64,
    },
    /// Video of `from_us`..`to_us` recorded and signed by `source_server` (key
    /// `source_key`) was imported into segment `segment`; `recipient` checked it and signed
    /// this fact (docs/design/handover.md).
    Handover {
        segment: u64,
        from_us: i64,
        to_us: i64,
        source_server: String,
        source_key: String,
        source_camera: String,
        recipient: String,
        by: String,
        at_us: i64,
    },
}

/// A stretch of verified video and who signed it: this server's own recording, or video a
/// handover brought in, signed by the server that recorded it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignedPart {
    pub from_us: i64,
    pub to_us: i64,
    /// The server whose key signed the video (from its signing certificate, or the handover
    /// fact's source server).
    pub signed_by: String,
    /// For imported video: the server whose signed handover fact brought it in.
    pub handover_recorded_by: Option<String>,
}

impl SignedPart {
    fn describe(&self) -> String {
        let by = match &self.handover_recorded_by {
            Some(r) => format!("{} (handover recorded by {r})", self.signed_by),
            None => self.signed_by.clone(),
        };
        format!(
            "{}\u{2013}{} signed by {by}",
            crate::fmt_time(self.from_us),
            crate::fmt_time(self.to_us)
        )
    }
}

/// The server name in a Vigil signing certificate's subject ("CN=vigil recording signing key:
/// rec-1, O=Vigil" -> "rec-1"); other subjects as they are.
pub fn signer_name(subject: &str) -> String {
    subject
        .split(", ")
        .find_map(|p| p.strip_prefix("CN=vigil recording signing key: "))
        .unwrap_or(subject)
        .to_string()
}

/// How much was checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Checked {
    pub segments: u64,
    pub fragments: u64,
    /// Media bytes hashed and matched against signed records.
    pub bytes: u64,
    pub first_us: Option<i64>,
    pub last_us: Option<i64>,
    pub ledger_records: u64,
    pub signatures: u64,
}

impl Checked {
    pub(crate) fn add_fragment(&mut self, start_us: i64, duration_us: u64, bytes: u64) {
        self.fragments += 1;
        self.bytes += bytes;
        let end = start_us.saturating_add(duration_us as i64);
        self.first_us = Some(self.first_us.map_or(start_us, |f| f.min(start_us)));
        self.last_us = Some(self.last_us.map_or(end, |l| l.max(end)));
    }
}

/// Result of verifying a recording (server side) or the recording part of an export bundle.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub camera_id: String,
    /// First tampering failure; if there is none, the first unsigned span as an `Unsigned`
    /// failure; `None` means verified.
    pub failure: Option<Failure>,
    pub unsigned: Vec<UnsignedSpan>,
    pub events: Vec<Event>,
    pub checked: Checked,
    /// Subjects of the certificates whose signatures were checked.
    pub signers: Vec<String>,
    /// Verified video in time order, by who signed it (adjacent video of one signer merged).
    /// Empty when nothing verified or the verifier does not tell parts apart (bundles).
    pub parts: Vec<SignedPart>,
}

impl Report {
    /// Everything in range is signed, intact, and no foreign data is present.
    pub fn is_verified(&self) -> bool {
        self.failure.is_none()
    }

    /// Tampering (or untrusted origin) was found, as opposed to merely unsigned data.
    pub fn is_tampered(&self) -> bool {
        self.failure.as_ref().is_some_and(|f| f.kind.is_tampering())
    }

    /// One line for people: "verified: ..." or the failure.
    pub fn summary(&self) -> String {
        let c = &self.checked;
        let span = match (c.first_us, c.last_us) {
            (Some(a), Some(b)) => format!(" from {} to {}", crate::fmt_time(a), crate::fmt_time(b)),
            _ => String::new(),
        };
        let what = format!(
            "{} segments, {} fragments, {} bytes{span}",
            c.segments, c.fragments, c.bytes
        );
        let imported = self.parts.iter().any(|p| p.handover_recorded_by.is_some());
        match &self.failure {
            None if imported => format!(
                "verified: {}; {what}",
                self.parts
                    .iter()
                    .map(SignedPart::describe)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => format!("verified: {what}"),
            Some(f) => format!("{f} (checked {what})"),
        }
    }
}
