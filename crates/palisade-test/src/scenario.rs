//! [`Scenario`]: drive requests at given instants through a stack and check the outcomes.

use std::fmt;
use std::time::Duration;

use http::Request;
use palisade_core::rejection::find_rejection;
use palisade_core::{BoxError, ResponseParts};
use tokio::time::Instant;
use tower_service::Service;

/// What happened to one request: `"200"`, `"503"`, `"rejected:circuit_open"`,
/// `"error:<text>"`, or `"pending"` if it had not finished when the scenario ended.
pub type Outcome = String;

/// A list of requests, each sent at an offset from the scenario's start (tokio time).
///
/// ```
/// use palisade_test::Scenario;
/// use palisade_test::scripted::{ScriptedService, status};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let svc = ScriptedService::new().then(status(503));
/// let table = Scenario::new()
///     .every(Duration::from_millis(100), 3, || http::Request::new(()))
///     .run(svc)
///     .await;
/// assert_eq!(table, ["503", "200", "200"]);
/// # }
/// ```
pub struct Scenario<B> {
    requests: Vec<(Duration, Box<dyn FnOnce() -> Request<B> + Send>)>,
    settle: Duration,
}

impl<B> fmt::Debug for Scenario<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at: Vec<_> = self.requests.iter().map(|(at, _)| *at).collect();
        f.debug_struct("Scenario")
            .field("at", &at)
            .field("settle", &self.settle)
            .finish()
    }
}

impl<B> Default for Scenario<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B> Scenario<B> {
    /// An empty scenario that waits up to 60 s (tokio time) for the last request.
    pub fn new() -> Self {
        Self {
            requests: Vec::new(),
            settle: Duration::from_secs(60),
        }
    }

    /// Sends `make()` at `offset` from the start.
    #[must_use]
    pub fn at(
        mut self,
        offset: Duration,
        make: impl FnOnce() -> Request<B> + Send + 'static,
    ) -> Self {
        self.requests.push((offset, Box::new(make)));
        self
    }

    /// Sends `n` requests from `make`, one every `interval`, starting at the last request's
    /// offset plus `interval` (or at 0 for the first).
    #[must_use]
    pub fn every(
        mut self,
        interval: Duration,
        n: usize,
        make: impl Fn() -> Request<B> + Clone + Send + 'static,
    ) -> Self {
        let mut at = self.requests.last().map(|(at, _)| *at + interval);
        for _ in 0..n {
            let offset = at.unwrap_or(Duration::ZERO);
            let make = make.clone();
            self.requests.push((offset, Box::new(make)));
            at = Some(offset + interval);
        }
        self
    }

    /// How long after the last request to wait for every outcome (default 60 s).
    #[must_use]
    pub fn settle(mut self, wait: Duration) -> Self {
        self.settle = wait;
        self
    }

    /// Runs the scenario on the current (paused) tokio runtime; returns one outcome per
    /// request, in the order they were added.
    pub async fn run<S>(self, svc: S) -> Vec<Outcome>
    where
        S: Service<Request<B>> + Clone + Send + 'static,
        S::Response: ResponseParts + Send,
        S::Error: Into<BoxError> + Send,
        S::Future: Send,
        B: Send + 'static,
    {
        let start = Instant::now();
        let mut order: Vec<usize> = (0..self.requests.len()).collect();
        order.sort_by_key(|&i| self.requests[i].0);
        let mut makers: Vec<_> = self.requests.into_iter().map(Some).collect();
        let mut tasks: Vec<Option<tokio::task::JoinHandle<Outcome>>> =
            (0..makers.len()).map(|_| None).collect();
        for i in order {
            let Some((at, make)) = makers[i].take() else {
                continue;
            };
            crate::time::advance_to(start + at).await;
            let mut svc = svc.clone();
            let req = make();
            tasks[i] = Some(tokio::spawn(async move {
                let res = match std::future::poll_fn(|cx| svc.poll_ready(cx)).await {
                    Ok(()) => svc.call(req).await,
                    Err(e) => Err(e),
                };
                match res {
                    Ok(res) => res.status().as_u16().to_string(),
                    Err(e) => {
                        let e: BoxError = e.into();
                        match find_rejection(&*e) {
                            Some(r) => format!("rejected:{}", r.kind()),
                            None => format!("error:{e}"),
                        }
                    }
                }
            }));
            crate::time::settle().await;
        }
        let deadline = Instant::now() + self.settle;
        let mut out = Vec::with_capacity(tasks.len());
        for task in tasks.into_iter().flatten() {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, task).await {
                Ok(Ok(outcome)) => out.push(outcome),
                Ok(Err(e)) => out.push(format!("error:task {e}")),
                Err(_) => out.push("pending".to_owned()),
            }
        }
        out
    }
}
