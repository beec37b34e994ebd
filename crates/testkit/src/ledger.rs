//! An evidence ledger edited the way an attacker or a failed write would: its records read
//! back, rewritten with the hash chain re-linked, re-signed with a key of one's own, or a torn
//! copy of a record left in front of it.

use std::path::Path;

use vigil_signing::record::{
    Body, Hash, LEDGER_MAGIC, Record, RecordReader, encode_record, signature_message,
};

/// Every record of the ledger file `ledger`, in order.
pub fn records(ledger: &Path) -> Vec<Record> {
    let bytes = std::fs::read(ledger).expect("read the ledger");
    let mut reader = RecordReader::new(&bytes[..]).expect("a ledger");
    let mut out = Vec::new();
    while let Some(record) = reader.next_record().expect("a readable record") {
        out.push(record);
    }
    out
}

/// Rewrites `ledger` with each record's body replaced by what `edit` returns for it, and every
/// record re-linked to the one before, so every record hash is valid again (signatures are
/// whatever `edit` leaves or makes). `edit` also gets the chain hash of the rewritten record
/// before it, which a signature over the chain so far covers.
pub fn rewrite(ledger: &Path, mut edit: impl FnMut(Record, &Hash) -> Body) {
    let mut out = LEDGER_MAGIC.to_vec();
    let mut prev = [0u8; 32];
    let mut buf = Vec::new();
    for record in records(ledger) {
        let seq = record.seq;
        let body = edit(record, &prev);
        prev = encode_record(seq, &prev, &body, &mut buf);
        out.extend_from_slice(&buf);
    }
    std::fs::write(ledger, out).expect("write the ledger");
}

/// The signature record a signer with the key `key_id` makes at `signed_at_us` over camera
/// `camera`'s chain before record `seq`, whose head is `prev`; `sign` makes the Ed25519
/// signature of the message it is given.
pub fn signature(
    camera: &str,
    seq: u64,
    prev: &Hash,
    signed_at_us: i64,
    key_id: Hash,
    sign: impl FnOnce(&[u8]) -> [u8; 64],
) -> Body {
    let message = signature_message(camera, seq - 1, prev, signed_at_us);
    Body::Signature {
        signed_at_us,
        key_id,
        signature: sign(&message),
    }
}

/// Puts the first `len` bytes of `record` in front of it, as a write that failed part-way
/// (a full volume) and was then repeated in full leaves them; returns where they start.
pub fn insert_interrupted_write(ledger: &Path, record: &Record, len: usize) -> usize {
    let mut attempt = Vec::new();
    encode_record(record.seq, &record.prev, &record.body, &mut attempt);
    let mut bytes = std::fs::read(ledger).expect("read the ledger");
    let at = usize::try_from(record.offset).expect("an offset in memory");
    bytes.splice(at..at, attempt[..len].iter().copied());
    std::fs::write(ledger, bytes).expect("write the ledger");
    at
}
