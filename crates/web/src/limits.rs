//! Limits on what a client may make the server wait for or hold while it has not proved who it
//! is: a declared body larger than the server accepts is refused before a byte of it is read,
//! a request body has a deadline, and each address may hold only so many connections that have
//! not authenticated.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::future::{Either, Ready, ready};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::error::ApiError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The error a request body yields once its deadline has passed; the JSON extractor's
/// rejection turns it into 408 `request_timeout`.
#[derive(Debug)]
pub struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyTimeout {}

/// Whether `err` or anything it was caused by is a [`BodyTimeout`] (extractors wrap body
/// errors in several layers).
pub fn caused_by_body_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.is::<BodyTimeout>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// A request body that fails with [`BodyTimeout`] when it is not complete by its deadline.
/// The timer is only created once the body makes the reader wait, so requests whose body is
/// already complete (every GET) cost nothing.
pub struct DeadlineBody<B> {
    inner: B,
    deadline: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    expired: bool,
}

impl<B: Body> DeadlineBody<B> {
    /// `deadline: None` leaves the body unlimited.
    pub fn new(inner: B, deadline: Option<Instant>) -> Self {
        // A body that has ended can make nobody wait: no deadline to keep.
        let deadline = deadline.filter(|_| !inner.is_end_stream());
        DeadlineBody {
            inner,
            deadline,
            timer: None,
            expired: false,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(Some(Err(BodyTimeout.into())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                // A sender that keeps a trickle going is cut too, not only one that stalls.
                if this.deadline.is_some_and(|d| Instant::now() >= d) {
                    this.expired = true;
                    return Poll::Ready(Some(Err(BodyTimeout.into())));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                this.deadline = None;
                this.timer = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let Some(deadline) = this.deadline else {
                    return Poll::Pending;
                };
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_ready() {
                    this.expired = true;
                    return Poll::Ready(Some(Err(BodyTimeout.into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        !self.expired && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Refuses a request whose `Content-Length` is above `max` with 413 before its body is read,
/// so a client cannot make the server wait for (or receive) bytes it will refuse anyway.
/// Bodies without a declared length are still cut at `max` by the body limit as they arrive.
#[derive(Clone, Copy)]
pub struct RefuseOversizedLayer {
    pub max: usize,
}

impl<S> tower::Layer<S> for RefuseOversizedLayer {
    type Service = RefuseOversized<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RefuseOversized {
            inner,
            max: self.max,
        }
    }
}

#[derive(Clone)]
pub struct RefuseOversized<S> {
    inner: S,
    max: usize,
}

/// The declared body length, when there is one that parses.
fn declared_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl<S> tower::Service<Request> for RefuseOversized<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match declared_length(&req) {
            Some(n) if n > self.max as u64 => {
                let mut resp = ApiError::payload_too_large().into_response();
                if req.version() <= axum::http::Version::HTTP_11 {
                    // The unread body is still on its way: this connection cannot carry
                    // another request, and the client should know before it sends more.
                    resp.headers_mut().insert(
                        header::CONNECTION,
                        axum::http::HeaderValue::from_static("close"),
                    );
                }
                Either::Left(ready(Ok(resp)))
            }
            _ => Either::Right(self.inner.call(req)),
        }
    }
}

/// Counts, per client address, the connections that have not authenticated yet, and refuses
/// new ones beyond a cap. IPv6 addresses count per /64 (one host usually holds a whole /64,
/// as intrusion detection assumes too); IPv4-mapped IPv6 counts as IPv4.
pub struct PeerSlots {
    counts: Mutex<HashMap<IpAddr, usize>>,
    cap: AtomicUsize,
}

impl PeerSlots {
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(PeerSlots {
            counts: Mutex::new(HashMap::new()),
            cap: AtomicUsize::new(cap),
        })
    }

    pub fn set_cap(&self, cap: usize) {
        self.cap.store(cap, Ordering::Relaxed);
    }

    /// A slot for a new connection from `ip`, or `None` when its address holds the cap.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Unauthenticated> {
        let key = address_key(ip);
        let cap = self.cap.load(Ordering::Relaxed);
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(key).or_insert(0);
        if *n >= cap {
            if *n == 0 {
                counts.remove(&key);
            }
            return None;
        }
        *n += 1;
        Some(Unauthenticated(Arc::new(Slot {
            slots: self.clone(),
            key,
            held: AtomicBool::new(true),
        })))
    }

    fn give_back(&self, key: IpAddr) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&key);
            }
        }
    }

    /// Connections from `ip`'s address that hold a slot now.
    pub fn held(&self, ip: IpAddr) -> usize {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(&address_key(ip)).copied().unwrap_or(0)
    }
}

fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u64::MAX as u128))),
        },
    }
}

/// A connection's place in its address's count of unauthenticated connections. The listener
/// attaches it to the connection's requests until one of them authenticates; the slot is
/// given back then, or when the connection ends.
#[derive(Clone)]
pub struct Unauthenticated(Arc<Slot>);

struct Slot {
    slots: Arc<PeerSlots>,
    key: IpAddr,
    held: AtomicBool,
}

impl Unauthenticated {
    /// The connection has proved who is calling: it no longer counts against its address.
    pub fn authenticated(&self) {
        self.0.give_back();
    }

    /// Whether the connection still counts against its address.
    pub fn is_held(&self) -> bool {
        self.0.held.load(Ordering::Relaxed)
    }
}

impl Slot {
    fn give_back(&self) {
        if self.held.swap(false, Ordering::AcqRel) {
            self.slots.give_back(self.key);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.give_back();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    #[test]
    fn slots_are_counted_per_address_and_given_back_once() {
        let slots = PeerSlots::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = slots.take(a).unwrap();
        let second = slots.take(a).unwrap();
        assert!(
            slots.take(a).is_none(),
            "a third connection from one address"
        );
        assert!(slots.take(b).is_some(), "another address is not affected");
        // Authenticating frees the slot; the connection ending later must not free it again.
        let kept = first.clone();
        first.authenticated();
        assert!(!kept.is_held());
        assert_eq!(slots.held(a), 1);
        let third = slots.take(a).unwrap();
        drop(kept);
        drop(first);
        assert_eq!(slots.held(a), 2);
        drop(second);
        drop(third);
        assert_eq!(slots.held(a), 0);
        assert!(
            slots.counts.lock().unwrap().is_empty(),
            "no entry left behind"
        );
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let slots = PeerSlots::new(1);
        let _one = slots.take("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(
            slots
                .take("2001:db8:1:2:ffff::9".parse().unwrap())
                .is_none(),
            "same /64"
        );
        assert!(slots.take("2001:db8:1:3::1".parse().unwrap()).is_some());
        let _v4 = slots.take("198.51.100.7".parse().unwrap()).unwrap();
        assert!(slots.take("::ffff:198.51.100.7".parse().unwrap()).is_none());
    }

    #[test]
    fn a_cap_of_zero_refuses_without_leaving_an_entry() {
        let slots = PeerSlots::new(0);
        assert!(slots.take("192.0.2.1".parse().unwrap()).is_none());
        assert!(slots.counts.lock().unwrap().is_empty());
    }

    /// A body that yields one byte each time it is polled after `every`, forever.
    struct Trickle {
        every: std::time::Duration,
        next: Option<Pin<Box<Sleep>>>,
    }

    impl Body for Trickle {
        type Data = bytes::Bytes;
        type Error = Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<bytes::Bytes>, Infallible>>> {
            let this = self.get_mut();
            let every = this.every;
            let t = this
                .next
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(every)));
            std::task::ready!(t.as_mut().poll(cx));
            this.next = None;
            Poll::Ready(Some(Ok(Frame::data(bytes::Bytes::from_static(b"x")))))
        }
    }

    #[tokio::test]
    async fn a_trickling_body_fails_at_its_deadline() {
        let start = Instant::now();
        let body = DeadlineBody::new(
            Trickle {
                every: std::time::Duration::from_millis(100),
                next: None,
            },
            Some(start + std::time::Duration::from_millis(550)),
        );
        let err = body.collect().await.expect_err("the deadline cuts it");
        assert!(caused_by_body_timeout(&*err), "{err}");
        let waited = start.elapsed();
        assert!(
            waited >= std::time::Duration::from_millis(550)
                && waited < std::time::Duration::from_secs(2),
            "{waited:?}"
        );
    }

    #[tokio::test]
    async fn an_ended_body_has_no_deadline_and_a_prompt_one_meets_it() {
        let empty = DeadlineBody::new(
            http_body_util::Empty::<bytes::Bytes>::new(),
            Some(Instant::now()),
        );
        assert!(empty.deadline.is_none());
        let full = DeadlineBody::new(
            http_body_util::Full::new(bytes::Bytes::from_static(b"{}")),
            Some(Instant::now() + std::time::Duration::from_secs(1)),
        );
        let got = full.collect().await.unwrap().to_bytes();
        assert_eq!(&got[..], b"{}");
    }
}
