//! A loopback TCP relay a test can pause: the stand-in for a network partition between Vigil
//! and a peer (bytes stop flowing, nothing is closed, new connections are accepted and then hang),
//! which a stopped server (connection refused at once) does not reproduce.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Relays `127.0.0.1:port` to a target until dropped; [`Partition::cut`] holds every byte
/// (in both directions, on open and new connections) until [`Partition::heal`].
pub struct Partition {
    pub port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    cut: AtomicBool,
    stop: AtomicBool,
    connections: AtomicU64,
}

impl Partition {
    /// Starts relaying to `target`; panics when it cannot listen on loopback.
    pub fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback relay");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            cut: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            connections: AtomicU64::new(0),
        });
        let s = shared.clone();
        std::thread::Builder::new()
            .name("partition-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = conn else { continue };
                    let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(5))
                    else {
                        continue;
                    };
                    s.connections.fetch_add(1, Ordering::SeqCst);
                    for (from, to) in [
                        (client.try_clone(), server.try_clone()),
                        (server.try_clone(), client.try_clone()),
                    ] {
                        if let (Ok(from), Ok(to)) = (from, to) {
                            let s = s.clone();
                            let _ = std::thread::Builder::new()
                                .name("partition-pump".into())
                                .spawn(move || pump(from, to, &s));
                        }
                    }
                }
            })
            .expect("start the relay thread");
        Partition { port, shared }
    }

    /// From now on no byte passes, in either direction.
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
    }

    /// Bytes held during the cut are delivered, and traffic flows again.
    pub fn heal(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.cut.store(false, Ordering::SeqCst);
        // Wakes the accept loop so it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, s: &Shared) {
    // A short read timeout lets the pump notice the relay being dropped.
    let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if s.stop.load(Ordering::SeqCst) {
            break;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => break,
        };
        while s.cut.load(Ordering::SeqCst) && !s.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_wait_during_a_cut_and_arrive_after_the_heal() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = echo.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut c in echo.incoming().take(2).flatten() {
                std::thread::spawn(move || {
                    let mut b = [0u8; 16];
                    while let Ok(n) = c.read(&mut b) {
                        if n == 0 || c.write_all(&b[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let p = Partition::start(addr);
        let mut c = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut b = [0u8; 4];
        c.write_all(b"ping").unwrap();
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"ping");
        p.cut();
        c.write_all(b"pong").unwrap();
        let e = c.read_exact(&mut b).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{e}"
        );
        // A new connection is accepted but nothing passes either.
        let mut d = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
        d.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        d.write_all(b"new!").unwrap();
        assert!(d.read_exact(&mut b).is_err());
        p.heal();
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"pong");
        d.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        d.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"new!");
        assert_eq!(p.connections(), 2);
    }
}
