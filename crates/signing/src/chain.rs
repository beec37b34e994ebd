//! Hash-chain and signature checking over a stream of ledger records.
//!
//! Shared by the server-side verifier (a full ledger from its genesis record, keys introduced
//! by genesis and rotation records) and the export-bundle verifier (an excerpt starting at any
//! record, keys from the certificates shipped in the bundle). It decides which records are
//! covered by a valid signature, which are unsigned, and where the chain is first broken.

use std::collections::HashMap;

use crate::keys::{CaCert, CertProblem, CheckedKey, KeyId, SigProblem, check_signing_cert};
use crate::record::{Body, Hash, NOTHING_SIGNED, Predecessor, Record, Stop, signature_message};
use crate::report::{Event, Failure, FailureKind};

pub(crate) enum Mode {
    /// A whole ledger: must start with genesis at seq 0; keys come from genesis and rotations.
    Full,
    /// An excerpt: starts anywhere; any key with a valid certificate from the bundle may sign.
    Excerpt,
}

/// A chain-level failure and the first record it makes untrustworthy.
#[derive(Debug, Clone)]
pub(crate) struct ChainFailure {
    pub first_bad_seq: u64,
    /// The record whose check failed (for a damaged or torn-off record, the seq it would
    /// have had).
    pub failed_seq: u64,
    pub failure: Failure,
}

pub(crate) struct ChainChecker<'a> {
    mode: Mode,
    cas: &'a [CaCert],
    keys: HashMap<KeyId, Result<CheckedKey, CertProblem>>,
    active: Option<KeyId>,
    pending_rotation: Option<KeyId>,
    expected_seq: Option<u64>,
    head: Hash,
    last_good_sig: Option<u64>,
    /// Time of the first record after the last good signature.
    pending_time: Option<i64>,
    last_time: Option<i64>,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    failure: Option<ChainFailure>,
    /// Seq of the record being checked.
    current_seq: u64,
    predecessor: Option<(u64, Predecessor)>,
    pub camera_id: Option<String>,
    pub events: Vec<(u64, Event)>,
    pub signatures: u64,
    pub records: u64,
    pub signers: Vec<String>,
    /// The ledger ended with a clean shutdown record (and its signature).
    last_two: [u8; 2],
    /// Excerpt mode: only this key may sign (a handover's excerpt, whose signer the
    /// receiving server's signed fact names).
    pub only_key: Option<KeyId>,
}

/// What the checker concluded.
pub(crate) struct ChainOutcome {
    pub last_good_sig: Option<u64>,
    /// Records up to this seq are vouched for by the next generation's predecessor record,
    /// which names this record's hash.
    pub vouched_through: Option<u64>,
    pub failure: Option<ChainFailure>,
    /// Seq of the last record that passed the checks.
    pub last_seq: Option<u64>,
    /// Recorded time of the last record that carries one.
    pub last_time: Option<i64>,
    /// The predecessor record (after genesis) and its seq.
    pub predecessor: Option<(u64, Predecessor)>,
    pub camera_id: Option<String>,
    pub events: Vec<(u64, Event)>,
    pub signatures: u64,
    pub records: u64,
    pub signers: Vec<String>,
    pub ended_cleanly: bool,
}

impl ChainOutcome {
    /// Covered by a valid signature. Records a crashed run wrote after its last signature are
    /// covered by the restarted run's first signature, which follows its unclean-shutdown
    /// record: the restarted server vouches for them (reported as an event, not a failure).
    pub fn is_signed(&self, seq: u64) -> bool {
        (self.last_good_sig.is_some_and(|s| seq < s)
            || self.vouched_through.is_some_and(|v| seq <= v))
            && self.failure.as_ref().is_none_or(|f| seq < f.first_bad_seq)
    }
    /// The next generation's signed predecessor record names record `seq` (whose hash the
    /// caller compared): the server that retired this ledger vouches for every record up to
    /// it, as a restarted server does for a crash tail. A record at or after a failed check
    /// is not whitewashed: then nothing is vouched for.
    pub fn vouch(&mut self, seq: u64) {
        if self.failure.as_ref().is_some_and(|f| f.failed_seq <= seq)
            || self.last_seq.is_none_or(|l| seq > l)
        {
            return;
        }
        self.vouched_through = Some(seq);
        if let Some(f) = &mut self.failure {
            f.first_bad_seq = f.first_bad_seq.max(seq + 1);
        }
    }
    /// Made untrustworthy by a chain failure.
    pub fn is_untrusted(&self, seq: u64) -> bool {
        self.failure
            .as_ref()
            .is_some_and(|f| seq >= f.first_bad_seq)
    }
}

impl<'a> ChainChecker<'a> {
    pub fn new(mode: Mode, cas: &'a [CaCert]) -> Self {
        Self {
            mode,
            cas,
            keys: HashMap::new(),
            active: None,
            pending_rotation: None,
            expected_seq: None,
            head: [0; 32],
            last_good_sig: None,
            pending_time: None,
            last_time: None,
            first_seq: None,
            last_seq: None,
            failure: None,
            current_seq: 0,
            predecessor: None,
            camera_id: None,
            events: Vec::new(),
            signatures: 0,
            records: 0,
            signers: Vec::new(),
            last_two: [0, 0],
            only_key: None,
        }
    }

    /// Adds a certificate that may sign (excerpt mode: the bundle's certificates).
    pub fn add_cert(&mut self, cert_der: &[u8]) {
        let checked = check_signing_cert(cert_der, self.cas);
        if let Ok(k) = &checked {
            self.keys.insert(k.key_id, checked);
        } else if let Ok(id) = crate::keys::cert_key_id(cert_der) {
            self.keys.insert(id, checked);
        }
    }

    fn fail(&mut self, kind: FailureKind, at_us: Option<i64>, detail: String) {
        if self.failure.is_none() {
            let first_bad_seq = self
                .last_good_sig
                .map_or(self.first_seq.unwrap_or(0), |s| s + 1);
            self.failure = Some(ChainFailure {
                first_bad_seq,
                failed_seq: self.current_seq,
                failure: Failure {
                    kind,
                    at_us,
                    segment: None,
                    detail,
                },
            });
        }
    }

    /// Processes the next record. Returns false once the chain is broken.
    pub fn push(&mut self, rec: &Record) -> bool {
        if self.failure.is_some() {
            return false;
        }
        self.records += 1;
        self.current_seq = rec.seq;
        if self.first_seq.is_none() {
            self.first_seq = Some(rec.seq);
            if matches!(self.mode, Mode::Full) && (rec.seq != 0 || rec.prev != [0; 32]) {
                self.fail(
                    FailureKind::Missing,
                    rec.body.time_us(),
                    format!(
                        "the ledger starts at record {} instead of its genesis record",
                        rec.seq
                    ),
                );
                return false;
            }
        }
        if let Some(exp) = self.expected_seq {
            if rec.seq < exp {
                self.fail(
                    FailureKind::Reordered,
                    self.last_time,
                    format!("ledger record {} appears after record {}", rec.seq, exp - 1),
                );
                return false;
            }
            if rec.seq > exp {
                self.fail(
                    FailureKind::Missing,
                    self.last_time,
                    format!("ledger records {exp}..{} were removed", rec.seq - 1),
                );
                return false;
            }
            if rec.prev != self.head {
                self.fail(
                    FailureKind::Modified,
                    self.last_time,
                    format!(
                        "ledger record {} does not link to record {} (records were replaced)",
                        rec.seq,
                        exp - 1
                    ),
                );
                return false;
            }
        }
        let t = rec.body.time_us();
        let tail_time = self.pending_time;
        if self.pending_time.is_none() && !matches!(rec.body, Body::Signature { .. }) {
            self.pending_time = t.or(self.last_time);
        }
        match &rec.body {
            Body::Genesis {
                camera_id,
                cert_der,
                ..
            } => {
                if rec.seq != 0 {
                    self.fail(
                        FailureKind::Inserted,
                        self.last_time,
                        format!("a second genesis record at ledger record {}", rec.seq),
                    );
                    return false;
                }
                self.camera_id = Some(camera_id.clone());
                match check_signing_cert(cert_der, self.cas) {
                    Ok(k) => {
                        self.active = Some(k.key_id);
                        self.keys.insert(k.key_id, Ok(k));
                    }
                    Err(p) => {
                        let (kind, d) = problem(p);
                        self.fail(kind, t, format!("the ledger's genesis key: {d}"));
                        return false;
                    }
                }
            }
            Body::KeyRotation {
                new_key_id,
                new_cert_der,
                rotated_at_us,
            } => {
                let checked = check_signing_cert(new_cert_der, self.cas);
                if let Ok(k) = &checked
                    && &k.key_id != new_key_id
                {
                    self.fail(
                        FailureKind::BadCertificate,
                        self.last_time,
                        "key rotation record names a key that its certificate does not hold".into(),
                    );
                    return false;
                }
                self.keys.insert(*new_key_id, checked);
                self.pending_rotation = Some(*new_key_id);
                self.events.push((
                    rec.seq,
                    Event::KeyRotation {
                        rotated_at_us: *rotated_at_us,
                        new_key_id: hex::encode(new_key_id),
                    },
                ));
            }
            Body::Signature {
                signed_at_us,
                key_id,
                signature,
            } => {
                if !self.check_signature(rec.seq, &rec.prev, *signed_at_us, key_id, signature) {
                    return false;
                }
            }
            Body::UncleanShutdown {
                detected_at_us,
                torn_bytes,
                last_signed_seq,
            } => {
                // Records the crashed run wrote after its last signature are covered by the
                // restarted run's next signature: having found the crash (this record), the
                // restarted server vouches for what the crashed run left. The event says so.
                let from = match self.last_good_sig {
                    Some(s) => s + 1,
                    None if *last_signed_seq != NOTHING_SIGNED => last_signed_seq.saturating_add(1),
                    None => self.first_seq.unwrap_or(0),
                };
                let recovered_records = rec.seq.saturating_sub(from);
                self.events.push((
                    rec.seq,
                    Event::UncleanShutdown {
                        detected_at_us: *detected_at_us,
                        torn_bytes: *torn_bytes,
                        recovered_records,
                        recovered_from_us: if recovered_records > 0 {
                            tail_time
                        } else {
                            None
                        },
                    },
                ));
            }
            Body::Gap {
                before_us,
                after_us,
                reason,
            } => self.events.push((
                rec.seq,
                Event::Gap {
                    before_us: *before_us,
                    after_us: *after_us,
                    reason: reason.clone(),
                },
            )),
            Body::Prune {
                segment,
                pruned_at_us,
            } => self.events.push((
                rec.seq,
                Event::Pruned {
                    segment: *segment,
                    pruned_at_us: *pruned_at_us,
                },
            )),
            Body::Handover(h) => self.events.push((
                rec.seq,
                Event::Handover {
                    segment: h.segment,
                    from_us: h.from_us,
                    to_us: h.to_us,
                    source_server: h.source_server.clone(),
                    source_key: hex::encode(h.source_key),
                    source_camera: h.source_camera.clone(),
                    recipient: h.recipient.clone(),
                    by: h.by.clone(),
                    at_us: h.at_us,
                },
            )),
            Body::EvidenceLock(l) => self.events.push((
                rec.seq,
                Event::EvidenceLock {
                    action: l.action,
                    lock_id: l.lock_id,
                    from_us: l.from_us,
                    to_us: l.to_us,
                    at_us: l.at_us,
                    by: l.by.clone(),
                    reason: l.reason.clone(),
                },
            )),
            Body::SegmentRecovered {
                segment,
                final_len,
                truncated_bytes,
                recovered_at_us,
            } => self.events.push((
                rec.seq,
                Event::SegmentRecovered {
                    segment: *segment,
                    final_len: *final_len,
                    truncated_bytes: *truncated_bytes,
                    recovered_at_us: *recovered_at_us,
                },
            )),
            Body::Predecessor(p) => {
                // Only the record right after genesis may continue another ledger: anywhere
                // else it would let a ledger vouch for a file mid-way through its own chain.
                if rec.seq != 1 {
                    self.fail(
                        FailureKind::Inserted,
                        self.last_time,
                        format!(
                            "a predecessor record at ledger record {} (only record 1 may name a retired ledger)",
                            rec.seq
                        ),
                    );
                    return false;
                }
                self.predecessor = Some((rec.seq, p.clone()));
            }
            Body::SegmentOpen { .. }
            | Body::Fragment(_)
            | Body::SegmentClose { .. }
            | Body::Shutdown { .. } => {}
        }
        if t.is_some() {
            self.last_time = t;
        }
        self.expected_seq = Some(rec.seq + 1);
        self.head = rec.hash;
        self.last_seq = Some(rec.seq);
        self.last_two = [self.last_two[1], rec.body.type_code()];
        true
    }

    fn check_signature(
        &mut self,
        seq: u64,
        head: &Hash,
        signed_at_us: i64,
        key_id: &KeyId,
        signature: &[u8; 64],
    ) -> bool {
        if seq == 0 {
            self.fail(
                FailureKind::Modified,
                None,
                "a ledger cannot start with a signature".into(),
            );
            return false;
        }
        let at = self.pending_time.or(self.last_time);
        let allowed = match self.mode {
            Mode::Full => self.active.as_ref() == Some(key_id),
            Mode::Excerpt => self.only_key.is_none_or(|k| &k == key_id),
        };
        let key = match (allowed, self.keys.get(key_id)) {
            (true, Some(Ok(k))) => k.clone(),
            (_, Some(Err(p))) => {
                let (kind, d) = problem(p.clone());
                self.fail(
                    kind,
                    at,
                    format!("ledger record {seq} is signed with a key whose {d}"),
                );
                return false;
            }
            (false, Some(Ok(_))) => {
                self.fail(
                    FailureKind::UnknownKey,
                    at,
                    format!(
                        "ledger record {seq} is signed with key {} which is not the active signing key of this ledger",
                        short(key_id)
                    ),
                );
                return false;
            }
            (_, None) => {
                self.fail(
                    FailureKind::UnknownKey,
                    at,
                    format!(
                        "ledger record {seq} is signed with key {}, for which no trusted certificate exists",
                        short(key_id)
                    ),
                );
                return false;
            }
        };
        let msg = signature_message(
            self.camera_id.as_deref().unwrap_or(""),
            seq - 1,
            head,
            signed_at_us,
        );
        match key.verify_at(&msg, signature, signed_at_us) {
            Ok(()) => {}
            Err(SigProblem::Mismatch) => {
                self.fail(
                    FailureKind::Modified,
                    at,
                    format!(
                        "signature in ledger record {seq} does not match the chain it signs (records before it were modified)"
                    ),
                );
                return false;
            }
            Err(SigProblem::CertNotValid(d)) => {
                self.fail(FailureKind::BadCertificate, at, d);
                return false;
            }
        }
        if !self.signers.contains(&key.subject) {
            self.signers.push(key.subject.clone());
        }
        self.signatures += 1;
        self.last_good_sig = Some(seq);
        self.pending_time = None;
        if let Some(k) = self.pending_rotation.take() {
            self.active = Some(k);
        }
        true
    }

    /// Accounts for why the record stream ended early.
    pub fn stop(&mut self, stop: Option<&Stop>) {
        if let Some(Stop::Corrupt { offset, error }) = stop {
            let at = self.last_time;
            self.current_seq = self.expected_seq.or(self.first_seq).unwrap_or(0);
            self.fail(
                FailureKind::Modified,
                at,
                format!(
                    "ledger damaged at byte {offset} (after record {:?}): {error}",
                    self.last_seq
                ),
            );
        }
    }

    pub fn finish(self) -> ChainOutcome {
        ChainOutcome {
            last_good_sig: self.last_good_sig,
            vouched_through: None,
            failure: self.failure,
            last_seq: self.last_seq,
            last_time: self.last_time,
            predecessor: self.predecessor,
            camera_id: self.camera_id,
            events: self.events,
            signatures: self.signatures,
            records: self.records,
            signers: self.signers,
            ended_cleanly: self.last_two
                == [
                    crate::record::kind::SHUTDOWN,
                    crate::record::kind::SIGNATURE,
                ],
        }
    }
}

fn problem(p: CertProblem) -> (FailureKind, String) {
    match p {
        CertProblem::UnknownIssuer(d) => (FailureKind::UnknownKey, d),
        CertProblem::Bad(d) => (FailureKind::BadCertificate, d),
    }
}

fn short(k: &KeyId) -> String {
    hex::encode(&k[..8])
}
