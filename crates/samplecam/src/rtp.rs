//! RTP packetization of H.264 access units (RFC 6184, packetization-mode=1) and RTCP sender
//! reports (RFC 3550), both framed for RTSP interleaved TCP (RFC 2326 section 10.12).
//!
//! One `Packetizer` belongs to one session: it owns the SSRC, the sequence number and the
//! sender statistics that the sender reports must agree with.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::clip::Frame;

/// RTP payload type announced in the SDP (dynamic range).
pub(crate) const PAYLOAD_TYPE: u8 = 96;
const RTP_HEADER_LEN: usize = 12;
const FU_A: u8 = 28;
/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

pub(crate) struct Packetizer {
    ssrc: u32,
    seq: u16,
    max_payload: usize,
    packets_sent: u32,
    octets_sent: u32,
}

impl Packetizer {
    /// `max_payload` must be at least 3 (FU indicator, FU header, one byte of NAL data).
    pub(crate) fn new(ssrc: u32, initial_seq: u16, max_payload: usize) -> Packetizer {
        Packetizer {
            ssrc,
            seq: initial_seq,
            max_payload: max_payload.max(3),
            packets_sent: 0,
            octets_sent: 0,
        }
    }

    pub(crate) fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Sequence number the next packet will carry.
    pub(crate) fn next_seq(&self) -> u16 {
        self.seq
    }

    /// Appends all RTP packets of `frame` to `out`, each prefixed with the interleaved header
    /// for `channel`. The marker bit is set on the last packet of the access unit.
    pub(crate) fn packetize(
        &mut self,
        frame: &Frame,
        timestamp: u32,
        channel: u8,
        out: &mut Vec<u8>,
    ) {
        let nal_count = frame.nal_units().count();
        for (i, nal) in frame.nal_units().enumerate() {
            let last_nal = i + 1 == nal_count;
            if nal.len() <= self.max_payload {
                self.push_packet(out, channel, timestamp, last_nal, &[nal]);
                continue;
            }
            // FU-A: the NAL header is split into the FU indicator (F, NRI) and FU header (type).
            let indicator = (nal[0] & 0xE0) | FU_A;
            let nal_kind = nal[0] & 0x1F;
            let chunk = self.max_payload - 2;
            let body = &nal[1..];
            let pieces = body.len().div_ceil(chunk);
            for (n, piece) in body.chunks(chunk).enumerate() {
                let start = if n == 0 { 0x80 } else { 0 };
                let end = if n + 1 == pieces { 0x40 } else { 0 };
                let header = start | end | nal_kind;
                self.push_packet(
                    out,
                    channel,
                    timestamp,
                    last_nal && n + 1 == pieces,
                    &[&[indicator, header], piece],
                );
            }
        }
    }

    fn push_packet(
        &mut self,
        out: &mut Vec<u8>,
        channel: u8,
        timestamp: u32,
        marker: bool,
        payload: &[&[u8]],
    ) {
        let payload_len: usize = payload.iter().map(|p| p.len()).sum();
        let len = RTP_HEADER_LEN + payload_len;
        // The caller bounds max_payload so every packet fits the 16-bit interleaved length.
        let len16 = u16::try_from(len).unwrap_or(u16::MAX);
        out.extend_from_slice(&[b'$', channel]);
        out.extend_from_slice(&len16.to_be_bytes());
        out.push(0x80); // V=2, no padding, no extension, no CSRC
        out.push(if marker { 0x80 } else { 0 } | PAYLOAD_TYPE);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for p in payload {
            out.extend_from_slice(p);
        }
        self.seq = self.seq.wrapping_add(1);
        self.packets_sent = self.packets_sent.wrapping_add(1);
        self.octets_sent = self.octets_sent.wrapping_add(payload_len as u32);
    }

    /// Appends a compound RTCP packet (sender report + SDES CNAME) for `channel`.
    /// `now` and `rtp_timestamp` must describe the same instant.
    pub(crate) fn sender_report(
        &self,
        now: SystemTime,
        rtp_timestamp: u32,
        cname: &str,
        channel: u8,
        out: &mut Vec<u8>,
    ) {
        let mut rtcp = Vec::with_capacity(64);
        // SR: V=2, RC=0, PT=200, length = 6 words after the first.
        rtcp.extend_from_slice(&[0x80, 200, 0, 6]);
        rtcp.extend_from_slice(&self.ssrc.to_be_bytes());
        rtcp.extend_from_slice(&ntp_timestamp(now).to_be_bytes());
        rtcp.extend_from_slice(&rtp_timestamp.to_be_bytes());
        rtcp.extend_from_slice(&self.packets_sent.to_be_bytes());
        rtcp.extend_from_slice(&self.octets_sent.to_be_bytes());
        // SDES with one chunk: SSRC, CNAME item, END, padded to a 32-bit boundary.
        let cname = &cname.as_bytes()[..cname.len().min(255)];
        let mut chunk = Vec::with_capacity(cname.len() + 12);
        chunk.extend_from_slice(&self.ssrc.to_be_bytes());
        chunk.push(1);
        chunk.push(cname.len() as u8);
        chunk.extend_from_slice(cname);
        chunk.push(0);
        while chunk.len() % 4 != 0 {
            chunk.push(0);
        }
        let words = (4 + chunk.len()) / 4 - 1;
        rtcp.extend_from_slice(&[0x81, 202]);
        rtcp.extend_from_slice(&(words as u16).to_be_bytes());
        rtcp.extend_from_slice(&chunk);

        out.extend_from_slice(&[b'$', channel]);
        out.extend_from_slice(&(rtcp.len() as u16).to_be_bytes());
        out.extend_from_slice(&rtcp);
    }
}

/// 64-bit NTP timestamp (seconds since 1900 in the high word, binary fraction in the low word).
pub(crate) fn ntp_timestamp(now: SystemTime) -> u64 {
    let since_unix = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_unix.as_secs().wrapping_add(NTP_UNIX_OFFSET);
    let frac = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clip::Clip;
    use std::time::Duration;

    /// Splits interleaved output into (channel, packet) pairs, checking the framing.
    fn frames_of(out: &[u8]) -> Vec<(u8, &[u8])> {
        let mut rest = out;
        let mut v = Vec::new();
        while !rest.is_empty() {
            assert_eq!(rest[0], b'$');
            let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
            v.push((rest[1], &rest[4..4 + len]));
            rest = &rest[4 + len..];
        }
        v
    }

    #[test]
    fn keyframe_is_fragmented_and_reassembles() {
        let clip = Clip::builtin().unwrap();
        let frame = &clip.frames()[0];
        let mut p = Packetizer::new(0xDEAD_BEEF, 65_530, 1_000);
        let mut out = Vec::new();
        p.packetize(frame, 1234, 4, &mut out);
        let packets = frames_of(&out);
        assert!(packets.len() > 3, "IDR frame should need FU-A");
        let mut seq = 65_530u16;
        let mut rebuilt: Vec<Vec<u8>> = Vec::new();
        let mut in_fu = false;
        for (i, (channel, pkt)) in packets.iter().enumerate() {
            assert_eq!(*channel, 4);
            assert!(pkt.len() <= 12 + 1_000);
            assert_eq!(pkt[0], 0x80);
            assert_eq!(pkt[1] & 0x7F, PAYLOAD_TYPE);
            assert_eq!(
                pkt[1] & 0x80 != 0,
                i + 1 == packets.len(),
                "marker only at end"
            );
            assert_eq!(u16::from_be_bytes([pkt[2], pkt[3]]), seq);
            seq = seq.wrapping_add(1);
            assert_eq!(u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]), 1234);
            assert_eq!(
                u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]),
                0xDEAD_BEEF
            );
            let payload = &pkt[12..];
            if payload[0] & 0x1F == FU_A {
                let (s, e) = (payload[1] & 0x80 != 0, payload[1] & 0x40 != 0);
                if s {
                    assert!(!in_fu);
                    rebuilt.push(vec![(payload[0] & 0xE0) | (payload[1] & 0x1F)]);
                    in_fu = true;
                }
                assert!(in_fu);
                rebuilt.last_mut().unwrap().extend_from_slice(&payload[2..]);
                if e {
                    in_fu = false;
                }
            } else {
                assert!(!in_fu);
                rebuilt.push(payload.to_vec());
            }
        }
        assert!(!in_fu);
        let original: Vec<Vec<u8>> = frame.nal_units().map(<[u8]>::to_vec).collect();
        assert_eq!(rebuilt, original);
        assert_eq!(p.next_seq(), seq);
    }

    #[test]
    fn sender_report_layout() {
        let clip = Clip::builtin().unwrap();
        let mut p = Packetizer::new(7, 0, 1_400);
        let mut out = Vec::new();
        p.packetize(&clip.frames()[1], 0, 0, &mut out);
        let sent_packets = frames_of(&out).len() as u32;
        let octets: u32 = frames_of(&out)
            .iter()
            .map(|(_, d)| d.len() as u32 - 12)
            .sum();
        let mut sr = Vec::new();
        let when = UNIX_EPOCH + Duration::from_millis(1_500);
        p.sender_report(when, 9_000, "cam", 1, &mut sr);
        let pkts = frames_of(&sr);
        assert_eq!(pkts.len(), 1);
        let (ch, rtcp) = pkts[0];
        assert_eq!(ch, 1);
        assert_eq!(&rtcp[..4], &[0x80, 200, 0, 6]);
        let ntp = u64::from_be_bytes(rtcp[8..16].try_into().unwrap());
        assert_eq!(ntp >> 32, NTP_UNIX_OFFSET + 1);
        assert_eq!(ntp & 0xFFFF_FFFF, 1 << 31);
        assert_eq!(u32::from_be_bytes(rtcp[16..20].try_into().unwrap()), 9_000);
        assert_eq!(
            u32::from_be_bytes(rtcp[20..24].try_into().unwrap()),
            sent_packets
        );
        assert_eq!(u32::from_be_bytes(rtcp[24..28].try_into().unwrap()), octets);
        let sdes = &rtcp[28..];
        assert_eq!(sdes[1], 202);
        let words = usize::from(u16::from_be_bytes([sdes[2], sdes[3]]));
        assert_eq!(sdes.len(), (words + 1) * 4);
        assert_eq!(&sdes[8..10], &[1, 3]);
        assert_eq!(&sdes[10..13], b"cam");
    }
}
