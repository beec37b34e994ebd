//! The connection workers: one single-threaded async runtime per core. Each runs an accept
//! loop on every listening socket and serves the connections it accepted itself, from the
//! TLS handshake to the last request.
//!
//! A connection never moves between threads, like in nginx's worker processes: its socket is
//! registered with its worker's own epoll, its tasks are woken on the same thread, and no
//! worker has to wake another one to hand over or steal work. Against one shared
//! multi-threaded runtime this took the server CPU per keep-alive request from 15.0 to 12.0 µs
//! and futex calls from about 1,000 to 5 per second under load (docs/BENCHMARKS.md).

use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Blocking work left on a worker's pool when it stops gets this long to finish.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// The pool of connection workers. [`Workers::stop`] ends them and waits; dropping the pool
/// only tells them to end.
pub struct Workers {
    handles: Vec<Handle>,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// How many workers [`Workers::per_core`] starts.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl Workers {
    /// One worker per core.
    pub fn per_core() -> std::io::Result<Self> {
        Self::start(cores())
    }

    /// Starts `n` (at least one) worker threads.
    pub fn start(n: usize) -> std::io::Result<Self> {
        let mut handles = Vec::with_capacity(n.max(1));
        let mut stops = Vec::with_capacity(n.max(1));
        let mut threads = Vec::with_capacity(n.max(1));
        for i in 0..n.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            let thread = std::thread::Builder::new()
                .name(format!("vigil-web-{i}"))
                .spawn(move || {
                    // Runs every task spawned onto this worker until the pool is stopped.
                    let _ = runtime.block_on(stopped);
                    runtime.shutdown_timeout(STOP_TIMEOUT);
                })?;
            threads.push(thread);
        }
        Ok(Workers {
            handles,
            stops,
            threads,
        })
    }

    /// Ends every worker (their remaining tasks are dropped; blocking work such as a database
    /// write gets a moment to finish) and waits for the threads. Blocks: call it off the
    /// async threads. Called on a worker thread, it does not wait for that thread itself.
    pub fn stop(mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        let me = std::thread::current().id();
        for t in self.threads.drain(..) {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// The workers' runtimes, to spawn onto.
    pub fn handles(&self) -> impl Iterator<Item = &Handle> {
        self.handles.iter()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_is_its_own_thread_and_stops_with_the_pool() {
        let pool = Workers::start(2).unwrap();
        assert_eq!(pool.len(), 2);
        let (tx, rx) = std::sync::mpsc::channel();
        let (_keep, wait) = tokio::sync::watch::channel(());
        let mut tasks = Vec::new();
        for h in pool.handles() {
            let tx = tx.clone();
            let mut wait = wait.clone();
            tasks.push(h.spawn(async move {
                tx.send(std::thread::current().name().unwrap_or("").to_owned())
                    .unwrap();
                // Never resolves while `_keep` lives: ends only when the worker stops.
                let _ = wait.changed().await;
            }));
        }
        let mut names: Vec<String> = (0..2).map(|_| rx.recv().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["vigil-web-0", "vigil-web-1"]);
        let t = std::time::Instant::now();
        pool.stop();
        assert!(t.elapsed() < STOP_TIMEOUT, "idle workers stop at once");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for t in tasks {
            let r = rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), t).await });
            assert!(r.expect("worker stopped").unwrap_err().is_cancelled());
        }
    }

    #[test]
    fn dropping_the_pool_ends_the_threads_too() {
        let pool = Workers::start(1).unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        pool.handles().next().unwrap().spawn(async move {
            // Dropped (and the channel closed) when the worker's runtime shuts down.
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        drop(pool);
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
    }
}
