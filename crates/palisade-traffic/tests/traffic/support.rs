#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};

/// A test arm: answers its name with a configurable status after a configurable delay, and
/// counts the requests it served (completed).
#[derive(Clone, Debug)]
pub struct Arm {
    pub name: &'static str,
    pub status: Arc<AtomicU16>,
    pub delay_ms: Arc<AtomicU64>,
    pub served: Arc<AtomicUsize>,
}

impl Arm {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            status: Arc::new(AtomicU16::new(200)),
            delay_ms: Arc::new(AtomicU64::new(0)),
            served: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    pub fn set_status(&self, s: u16) {
        self.status.store(s, Ordering::SeqCst);
    }

    pub fn set_delay(&self, d: Duration) {
        self.delay_ms.store(d.as_millis() as u64, Ordering::SeqCst);
    }
}

impl<B: Send + 'static> tower::Service<Request<B>> for Arm {
    type Response = Response<&'static str>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        let this = self.clone();
        let status = this.status.load(Ordering::SeqCst);
        let delay = Duration::from_millis(this.delay_ms.load(Ordering::SeqCst));
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            this.served.fetch_add(1, Ordering::SeqCst);
            Ok(Response::builder().status(status).body(this.name).unwrap())
        })
    }
}
