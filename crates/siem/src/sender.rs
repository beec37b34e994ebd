//! One sender per collector: reads the spool after the collector's cursor, sends each record
//! as an RFC 5425 frame, and moves the cursor when records are delivered.
//!
//! Syslog over TLS has no application acknowledgement, so "delivered" is defined here:
//! a record is delivered when (1) all its bytes were written to the TLS connection, (2) the
//! collector's TCP acknowledged them (the bytes written to the socket minus what the kernel
//! still holds unacknowledged, `TIOCOUTQ`, reached the end of the record), and (3) the
//! connection was still open `confirm_after` (default 2 s) later, without the collector
//! closing or resetting it. A collector that refuses a client (wrong certificate name)
//! closes the connection right after reading, so nothing it refused is ever delivered.
//!
//! When the connection ends for any reason, the next connection starts after the cursor: the
//! records sent but not yet delivered are sent again. Duplicates are therefore possible,
//! only in that window, and always as a run that repeats a contiguous range of sequence
//! numbers right after a reconnect; the collector removes them by (HOSTNAME, `seq`). A
//! collector that acknowledges bytes in TCP and then crashes within `confirm_after` without
//! having read them cannot be told apart from one that read them: those are the bytes a
//! receiver without an application acknowledgement (RFC 5425 has none; RELP does) can lose.
//!
//! A collector whose TCP stops acknowledging for 60 s is disconnected and reconnected.
//! Reconnects back off from 250 ms, doubling up to `max_backoff`.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::format::Formatter;
use crate::spool::Spool;
use crate::transport::{self, Counting, Endpoint};

/// A collector disconnected after its TCP acknowledged nothing for this long.
pub const STALL: Duration = Duration::from_secs(60);
/// First reconnect delay.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Records per write at most.
const BATCH_RECORDS: usize = 512;
/// Bytes read from the spool per write, about.
const BATCH_BYTES: usize = 256 * 1024;
/// How often delivery is checked.
const TICK: Duration = Duration::from_millis(50);
/// A cursor is written to disk at most this often while records keep being delivered.
const CURSOR_EVERY: Duration = Duration::from_millis(250);

type TlsWrite = WriteHalf<tokio_rustls::client::TlsStream<Counting>>;
/// A write in progress; it hands back the write half and the frame buffer (reused for the
/// next batch: a fresh one would grow by reallocation, copying the frames, batch after batch).
type Writing =
    Pin<Box<dyn Future<Output = std::io::Result<(TlsWrite, Vec<u8>, u64, u64, usize)>> + Send>>;

/// A collector and how to reach and write to it.
#[derive(Debug, Clone)]
pub struct Collector {
    pub name: String,
    pub endpoint: Endpoint,
    pub formatter: Formatter,
    pub confirm_after: Duration,
    pub max_backoff: Duration,
}

/// What a sender has done, for status and metrics.
#[derive(Debug, Default)]
pub struct SenderStats {
    pub connected: AtomicBool,
    /// Records written (including those sent again after a reconnect).
    pub sent: AtomicU64,
    /// The last delivered sequence number.
    pub delivered_seq: AtomicU64,
    pub connects: AtomicU64,
    /// Records sent again after a reconnect (the duplicates the collector may see).
    pub resent: AtomicU64,
    /// The highest sequence number sent.
    pub highest_sent: AtomicU64,
    /// Records dropped from the spool before this collector got them.
    pub skipped: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl SenderStats {
    fn error(&self, e: String) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    }
}

/// Sends the spool to `c` until `stop` turns true.
pub async fn run(
    spool: Arc<Spool>,
    c: Collector,
    stats: Arc<SenderStats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = FIRST_BACKOFF;
    let mut failures = 0u32;
    while !*stop.borrow() {
        let connected = tokio::select! {
            r = transport::connect(&c.endpoint) => r,
            _ = stop.changed() => continue,
        };
        match connected {
            Ok(conn) => {
                stats.connects.fetch_add(1, Ordering::Relaxed);
                stats.connected.store(true, Ordering::Relaxed);
                if failures > 0 {
                    tracing::info!(target: "vigil::siem", collector = %c.name, "connected to the SIEM collector again");
                }
                failures = 0;
                backoff = FIRST_BACKOFF;
                let end = session(&spool, &c, &stats, conn, &mut stop).await;
                stats.connected.store(false, Ordering::Relaxed);
                match end {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(target: "vigil::siem", collector = %c.name, error = %e, "SIEM connection ended; reconnecting");
                        stats.error(e);
                    }
                }
            }
            Err(e) => {
                failures += 1;
                let msg = format!(
                    "cannot connect to {}:{}: {e}",
                    c.endpoint.host, c.endpoint.port
                );
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(target: "vigil::siem", collector = %c.name, failures, "{msg}");
                }
                stats.error(msg);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => {}
        }
        backoff = (backoff * 2).min(c.max_backoff);
    }
}

/// A write whose delivery is pending.
struct Pending {
    /// Socket bytes written up to the end of its last record.
    socket_end: u64,
    last_seq: u64,
    acked_at: Option<Instant>,
}

/// One connection: `Ok` when stopped, `Err` when the connection ended.
async fn session(
    spool: &Spool,
    c: &Collector,
    stats: &SenderStats,
    conn: transport::Connection,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let fd = conn.fd;
    let written = conn.written;
    let start = spool.cursor(&c.name).unwrap_or(0);
    let mut delivered = start;
    let mut highest_sent = stats.highest_sent.load(Ordering::Relaxed).max(start);
    let mut reader = spool.reader(start);
    let mut durable = spool.watch();
    let (mut rd, wr) = tokio::io::split(conn.tls);
    let mut wr = Some(wr);
    let mut writing: Option<Writing> = None;
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut tick = tokio::time::interval(TICK);
    let mut rbuf = [0u8; 256];
    let mut stopping: Option<Instant> = None;
    let mut last_acked = written.load(Ordering::Relaxed);
    let mut last_progress = Instant::now();
    let mut cursor_written = Instant::now();
    let mut cursor_dirty = false;
    let mut frames = Vec::with_capacity(BATCH_BYTES + 64 * 1024);
    let result = loop {
        if writing.is_none() && stopping.is_none() {
            let batch = reader
                .read(spool, BATCH_RECORDS, BATCH_BYTES)
                .map_err(|e| e.to_string())?;
            if batch.skipped > 0 {
                stats.skipped.fetch_add(batch.skipped, Ordering::Relaxed);
            }
            if let Some(last) = batch.records.last() {
                frames.clear();
                for r in &batch.records {
                    c.formatter.frame(r.seq, &r.event, &mut frames);
                    if r.seq <= highest_sent {
                        stats.resent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                highest_sent = highest_sent.max(last.seq);
                stats.highest_sent.store(highest_sent, Ordering::Relaxed);
                let last_seq = last.seq;
                let count = batch.records.len();
                let mut w = wr.take().expect("the write half is here when not writing");
                let bytes = std::mem::take(&mut frames);
                let counter = written.clone();
                writing = Some(Box::pin(async move {
                    w.write_all(&bytes).await?;
                    w.flush().await?;
                    Ok((w, bytes, last_seq, counter.load(Ordering::Relaxed), count))
                }));
            }
        }
        tokio::select! {
            r = rd.read(&mut rbuf) => match r {
                // A collector sends nothing back; the end of the stream is its close.
                Ok(0) => break Err("the collector closed the connection".to_owned()),
                Ok(_) => {}
                Err(e) => break Err(format!("the connection failed: {e}")),
            },
            done = async { writing.as_mut().expect("checked").await }, if writing.is_some() => {
                writing = None;
                match done {
                    Ok((w, bytes, last_seq, socket_end, count)) => {
                        wr = Some(w);
                        frames = bytes;
                        stats.sent.fetch_add(count as u64, Ordering::Relaxed);
                        pending.push_back(Pending { socket_end, last_seq, acked_at: None });
                    }
                    Err(e) => break Err(format!("cannot write to the collector: {e}")),
                }
            },
            _ = durable.changed(), if writing.is_none() && stopping.is_none() => {},
            _ = tick.tick() => {
                let now = Instant::now();
                let unacked = transport::unacked_bytes(fd).map_err(|e| e.to_string())?;
                let acked = written.load(Ordering::Relaxed).saturating_sub(unacked);
                if acked > last_acked || (unacked == 0 && writing.is_none()) {
                    last_progress = now;
                }
                last_acked = acked;
                for p in pending.iter_mut() {
                    if p.acked_at.is_none() && p.socket_end <= acked {
                        p.acked_at = Some(now);
                    }
                }
                while let Some(p) = pending.front() {
                    match p.acked_at {
                        Some(t) if now.duration_since(t) >= c.confirm_after => {
                            delivered = p.last_seq;
                            pending.pop_front();
                            cursor_dirty = true;
                        }
                        _ => break,
                    }
                }
                if cursor_dirty && (now.duration_since(cursor_written) >= CURSOR_EVERY || pending.is_empty()) {
                    spool.ack(&c.name, delivered).map_err(|e| e.to_string())?;
                    stats.delivered_seq.store(delivered, Ordering::Relaxed);
                    cursor_written = now;
                    cursor_dirty = false;
                }
                if now.duration_since(last_progress) >= STALL {
                    break Err(format!("the collector acknowledged nothing for {} s", STALL.as_secs()));
                }
                if let Some(since) = stopping {
                    let done = pending.is_empty() && writing.is_none();
                    if done || now.duration_since(since) >= c.confirm_after + Duration::from_secs(2) {
                        break Ok(());
                    }
                }
            },
            _ = stop.changed(), if stopping.is_none() => stopping = Some(Instant::now()),
        }
    };
    if cursor_dirty {
        spool.ack(&c.name, delivered).map_err(|e| e.to_string())?;
        stats.delivered_seq.store(delivered, Ordering::Relaxed);
    }
    if result.is_ok()
        && let Some(mut w) = wr
    {
        // close_notify, so the collector sees a clean end.
        let _ = tokio::time::timeout(Duration::from_secs(2), w.shutdown()).await;
    }
    result
}
