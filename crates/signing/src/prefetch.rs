//! Scanning (reading and hashing) segment files ahead of the verifier on worker threads, so
//! verification uses every core while it still checks segments one by one, in order.
//!
//! Hashing dominates verification (docs/BENCHMARKS-evidence.md); the checks that follow a scan
//! are cheap and depend on the segments before them. So the files are scanned by up to
//! [`MAX_WORKERS`] threads in a window of at most `2 × workers` files ahead of the segment the
//! verifier is checking: memory stays bounded (a scan keeps one hash per fragment), and a
//! failure found early wastes at most that window.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use crate::mp4::{Scanned, scan_file};

/// More threads than this would only contend for the disk.
pub const MAX_WORKERS: usize = 8;

/// How often the progress callback hears about bytes scanned while the verifier waits.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

type ScanResult = (usize, io::Result<Scanned>);

/// Shared between the verifier and the workers: the next job to hand out and how far the
/// verifier has consumed, which bounds the look-ahead.
struct Window {
    next: usize,
    consumed: usize,
    stop: bool,
}

/// Scans `files` (in the order the verifier will ask for them) on worker threads.
pub struct Prefetch {
    files: Vec<PathBuf>,
    scanned: Arc<AtomicU64>,
    window: Arc<(Mutex<Window>, Condvar)>,
    results: mpsc::Receiver<ScanResult>,
    ready: HashMap<usize, io::Result<Scanned>>,
    workers: Vec<thread::JoinHandle<()>>,
}

/// Environment variable that sets the number of worker threads (1 to [`MAX_WORKERS`]), e.g.
/// to leave cores to recording while a large verification runs, or to measure one thread.
pub const THREADS_ENV: &str = "VIGIL_VERIFY_THREADS";

/// Worker threads to use: [`THREADS_ENV`] when it holds a number, otherwise the cores
/// available; at most [`MAX_WORKERS`], at least 1.
pub fn default_workers() -> usize {
    std::env::var(THREADS_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or_else(|| {
            thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .clamp(1, MAX_WORKERS)
}

impl Prefetch {
    /// Starts `workers` threads scanning `files` in order, at most `2 × workers` ahead.
    pub fn start(files: Vec<PathBuf>, workers: usize) -> Prefetch {
        let workers = workers.clamp(1, MAX_WORKERS).min(files.len().max(1));
        let ahead = 2 * workers;
        let scanned = Arc::new(AtomicU64::new(0));
        let window = Arc::new((
            Mutex::new(Window {
                next: 0,
                consumed: 0,
                stop: false,
            }),
            Condvar::new(),
        ));
        let (tx, results) = mpsc::channel::<ScanResult>();
        let handles = (0..workers)
            .map(|_| {
                let (files, scanned, window, tx) =
                    (files.clone(), scanned.clone(), window.clone(), tx.clone());
                thread::spawn(move || {
                    loop {
                        let job = {
                            let (lock, cv) = &*window;
                            let mut w = lock.lock().unwrap_or_else(|p| p.into_inner());
                            while !w.stop && w.next < files.len() && w.next >= w.consumed + ahead {
                                w = cv.wait(w).unwrap_or_else(|p| p.into_inner());
                            }
                            if w.stop || w.next >= files.len() {
                                return;
                            }
                            w.next += 1;
                            w.next - 1
                        };
                        let r = scan_file(&files[job], &mut |n| {
                            scanned.fetch_add(n, Ordering::Relaxed);
                        });
                        if tx.send((job, r)).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        Prefetch {
            files,
            scanned,
            window,
            results,
            ready: HashMap::new(),
            workers: handles,
        }
    }

    /// The scan of file number `i` (in the order given to [`Prefetch::start`]); files before
    /// it that were not asked for are dropped. While waiting, `progress` hears the bytes
    /// scanned so far by every worker.
    pub fn take(&mut self, i: usize, progress: &mut dyn FnMut(u64)) -> io::Result<Scanned> {
        assert!(
            i < self.files.len(),
            "file {i} was not given to the prefetch"
        );
        {
            let (lock, cv) = &*self.window;
            let mut w = lock.lock().unwrap_or_else(|p| p.into_inner());
            if i + 1 > w.consumed {
                w.consumed = i + 1;
                cv.notify_all();
            }
        }
        self.ready.retain(|k, _| *k >= i);
        loop {
            // It may have arrived while an earlier file was awaited (and the workers may all
            // be done since): look before waiting.
            if let Some(r) = self.ready.remove(&i) {
                progress(self.scanned.load(Ordering::Relaxed));
                return r;
            }
            match self.results.recv_timeout(PROGRESS_EVERY) {
                Ok((job, r)) if job >= i => {
                    self.ready.insert(job, r);
                }
                // A file the verifier skipped.
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    progress(self.scanned.load(Ordering::Relaxed));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(io::Error::other(
                        "a verification worker thread ended before scanning its file",
                    ));
                }
            }
        }
    }

    /// Bytes scanned so far by every worker.
    pub fn scanned_bytes(&self) -> u64 {
        self.scanned.load(Ordering::Relaxed)
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        {
            let (lock, cv) = &*self.window;
            lock.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
            cv.notify_all();
        }
        // A worker in the middle of a file finishes it; nothing waits for its answer.
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp4::scan_file;

    fn files(dir: &std::path::Path, n: usize) -> Vec<PathBuf> {
        (0..n)
            .map(|i| {
                let p = dir.join(format!("f{i}"));
                // Not MP4: a scan still reads and hashes it (as one init unit).
                std::fs::write(&p, vec![i as u8; 1000 + i]).unwrap();
                p
            })
            .collect()
    }

    #[test]
    fn scans_match_a_sequential_scan_in_any_order_of_taking() {
        let dir = tempfile::tempdir().unwrap();
        let list = files(dir.path(), 20);
        for workers in [1, 2, 4] {
            let mut p = Prefetch::start(list.clone(), workers);
            // Skipping files (as the verifier does for segments it need not read) is fine.
            for i in [0, 1, 3, 4, 9, 10, 19] {
                let got = p.take(i, &mut |_| {});
                let want = scan_file(&list[i], &mut |_| {});
                assert_eq!(
                    format!("{got:?}"),
                    format!("{want:?}"),
                    "file {i} with {workers} workers"
                );
            }
        }
    }

    #[test]
    fn a_scan_that_arrived_early_is_kept_for_its_turn() {
        let dir = tempfile::tempdir().unwrap();
        let list = files(dir.path(), 8);
        let mut p = Prefetch::start(list.clone(), 4);
        // Let every worker finish, so later files' scans are waiting before they are asked for.
        std::thread::sleep(Duration::from_millis(200));
        for (i, path) in list.iter().enumerate() {
            let want = scan_file(path, &mut |_| {});
            assert_eq!(format!("{:?}", p.take(i, &mut |_| {})), format!("{want:?}"));
        }
    }

    #[test]
    fn the_look_ahead_is_bounded_and_dropping_stops_the_workers() {
        let dir = tempfile::tempdir().unwrap();
        let list = files(dir.path(), 50);
        let mut p = Prefetch::start(list.clone(), 2);
        p.take(0, &mut |_| {}).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        // At most 2 × 2 files past the one consumed were scanned.
        let most: u64 = (0..1 + 4).map(|i| 1000 + i as u64).sum();
        assert!(p.scanned_bytes() <= most, "{} > {most}", p.scanned_bytes());
        drop(p);
    }

    #[test]
    fn a_missing_file_is_an_error_for_that_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut list = files(dir.path(), 3);
        list.insert(1, dir.path().join("gone"));
        let mut p = Prefetch::start(list, 2);
        p.take(0, &mut |_| {}).ok();
        assert_eq!(
            p.take(1, &mut |_| {}).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        // The files after it are still scanned (as far as a scan of non-MP4 bytes goes).
        let third = p.take(3, &mut |_| {});
        assert!(
            !matches!(&third, Err(e) if e.kind() == io::ErrorKind::NotFound),
            "{third:?}"
        );
    }
}
