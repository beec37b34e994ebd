//! Per-stream counters of this process (frames received and written, reconnections,
//! retention deletions), read by the Prometheus metrics (docs/metrics.md).
//!
//! They live in a process-wide table keyed by stream id rather than in the [`Store`]
//! (crate::store::Store) value: a process opens the store more than once (the API and the
//! recorders hold their own handles) and Prometheus counters describe the process, starting at
//! zero when it starts. Stream ids are random, so streams of different data directories opened
//! by one process (tests) never share an entry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

/// The live counters of one stream; increments are single relaxed atomic additions.
#[derive(Debug, Default)]
pub struct StreamCounters {
    frames_received: AtomicU64,
    frames_written: AtomicU64,
    reconnects: AtomicU64,
    retention_deleted_segments: AtomicU64,
    retention_deleted_bytes: AtomicU64,
}

impl StreamCounters {
    pub fn frame_received(&self) {
        self.frames_received.fetch_add(1, Relaxed);
    }

    pub fn frames_written(&self, n: u64) {
        self.frames_written.fetch_add(n, Relaxed);
    }

    pub fn reconnect(&self) {
        self.reconnects.fetch_add(1, Relaxed);
    }

    pub fn retention_deleted(&self, bytes: u64) {
        self.retention_deleted_segments.fetch_add(1, Relaxed);
        self.retention_deleted_bytes.fetch_add(bytes, Relaxed);
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            frames_received: self.frames_received.load(Relaxed),
            frames_written: self.frames_written.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            retention_deleted_segments: self.retention_deleted_segments.load(Relaxed),
            retention_deleted_bytes: self.retention_deleted_bytes.load(Relaxed),
        }
    }
}

/// The counters' values at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub frames_received: u64,
    pub frames_written: u64,
    /// Sessions that ended with an error and are retried.
    pub reconnects: u64,
    pub retention_deleted_segments: u64,
    pub retention_deleted_bytes: u64,
}

fn table() -> &'static Mutex<HashMap<String, Arc<StreamCounters>>> {
    static TABLE: OnceLock<Mutex<HashMap<String, Arc<StreamCounters>>>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

/// The counters of stream `id` (a camera id or a secondary stream's id), created at zero.
/// Hot paths take the `Arc` once and keep it.
pub fn stream(id: &str) -> Arc<StreamCounters> {
    table()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(id.to_owned())
        .or_default()
        .clone()
}

/// The values for stream `id`; zero for a stream nothing was counted for in this process.
pub fn snapshot(id: &str) -> CounterSnapshot {
    table()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)
        .map(|c| c.snapshot())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_stream() {
        let a = stream("cam-test-counters-a");
        a.frame_received();
        a.frame_received();
        a.frames_written(5);
        a.reconnect();
        a.retention_deleted(1000);
        a.retention_deleted(24);
        assert_eq!(
            snapshot("cam-test-counters-a"),
            CounterSnapshot {
                frames_received: 2,
                frames_written: 5,
                reconnects: 1,
                retention_deleted_segments: 2,
                retention_deleted_bytes: 1024,
            }
        );
        assert_eq!(snapshot("cam-test-counters-b"), CounterSnapshot::default());
        // The same stream's handle is shared.
        stream("cam-test-counters-a").reconnect();
        assert_eq!(snapshot("cam-test-counters-a").reconnects, 2);
    }
}
