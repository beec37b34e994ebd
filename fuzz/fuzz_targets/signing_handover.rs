//! Fuzzes the check of handover material (vigil-signing `handover::check_material`): another
//! server's ledger excerpt, CA and signing certificate as the receiving server keeps them beside
//! an imported segment, checked against a handover fact. The fact's pins (excerpt length and
//! hash, CA fingerprint, key id) are computed from the input, so mutations get past them into
//! the PEM decoding, the excerpt reader, the chain and signature checks and the fragment span
//! rules. Any input must end in the imported layout or a failure naming the segment: never a
//! panic.
//!
//! Input: `u16 ca_len`, CA PEM, `u16 signer_len`, signer PEM, `u64 first_record`,
//! `u64 last_record`, `i64 from_us`, `i64 to_us`, `u8 camera_len`, camera id, then the excerpt
//! (all big-endian). The committed seeds are real material of a two-server test recording.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_signing::handover::{Material, check_material};
use vigil_signing::keys::{cert_key_id, fingerprint_bytes, pem_to_der};
use vigil_signing::HandoverFact;

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| u64::from_be_bytes(b.try_into().unwrap()))
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let parsed = (|| {
        let n = input.u16()?;
        let ca = std::str::from_utf8(input.take(n)?).ok()?;
        let n = input.u16()?;
        let signer = std::str::from_utf8(input.take(n)?).ok()?;
        let first_record = input.u64()?;
        let last_record = input.u64()?;
        let from_us = input.u64()? as i64;
        let to_us = input.u64()? as i64;
        let n = usize::from(*input.take(1)?.first()?);
        let camera = std::str::from_utf8(input.take(n)?).ok()?;
        Some((ca, signer, first_record, last_record, from_us, to_us, camera, input.0))
    })();
    let Some((ca, signer, first_record, last_record, from_us, to_us, camera, excerpt)) = parsed
    else {
        return;
    };
    let ca_der = pem_to_der(ca, "ca").unwrap_or_default();
    let signer_der = pem_to_der(signer, "signer").unwrap_or_default();
    let fact = HandoverFact {
        at_us: 0,
        segment: 7,
        from_us,
        to_us,
        source_server: "failover-1".into(),
        source_key: cert_key_id(&signer_der).unwrap_or([0; 32]),
        source_ca: fingerprint_bytes(&ca_der),
        source_camera: camera.into(),
        first_record,
        last_record,
        excerpt_len: excerpt.len() as u64,
        excerpt_sha256: vigil_signing::sha256(excerpt),
        recipient: "rec-1".into(),
        by: "fuzz".into(),
    };
    let m = Material {
        excerpt,
        ca_pem: ca,
        signer_pem: signer,
    };
    match check_material(&m, &fact) {
        Ok(imported) => {
            // What the imported file must hold: the init, then the signed fragments back to
            // back, all in the receiving segment, spanning exactly the fact's range.
            let mut offset = imported.init_len;
            for f in &imported.fragments {
                assert_eq!(f.segment, fact.segment);
                assert_eq!(f.offset, offset);
                offset = offset.saturating_add(f.length);
            }
            assert_eq!(imported.file_len(), offset);
            assert_eq!(imported.fragments.first().map(|f| f.start_us), Some(from_us));
        }
        Err(f) => assert_eq!(f.segment, Some(fact.segment)),
    }
});
