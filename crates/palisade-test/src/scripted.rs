//! [`ScriptedService`]: a handler that answers from a script and records what it saw.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use palisade_core::BoxError;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

/// The response type of a [`ScriptedService`].
pub type ScriptedResponse = Response<Full<Bytes>>;

type Responder = Arc<dyn Fn(&Seen) -> Result<ScriptedResponse, BoxError> + Send + Sync>;

/// One request as the service saw it (its body is not read).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Seen {
    /// The method.
    pub method: Method,
    /// The URI.
    pub uri: Uri,
    /// The headers.
    pub headers: HeaderMap,
    /// When it was called (tokio time).
    pub at: Instant,
    /// Its 0-based position among all calls.
    pub index: usize,
}

#[derive(Clone)]
enum Action {
    Status(StatusCode),
    Error(String),
    Hang,
    Respond(Responder),
}

/// One answer of a script: what to do, after an optional delay, how many times.
#[derive(Clone)]
pub struct Step {
    delay: Duration,
    action: Action,
    times: usize,
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = match &self.action {
            Action::Status(s) => format!("status {s}"),
            Action::Error(e) => format!("error {e:?}"),
            Action::Hang => "hang".to_owned(),
            Action::Respond(_) => "closure".to_owned(),
        };
        f.debug_struct("Step")
            .field("delay", &self.delay)
            .field("action", &action)
            .field("times", &self.times)
            .finish()
    }
}

impl Step {
    fn new(action: Action) -> Self {
        Self {
            delay: Duration::ZERO,
            action,
            times: 1,
        }
    }
    /// Repeats this step `n` times (at least once).
    #[must_use]
    pub fn times(mut self, n: usize) -> Self {
        self.times = n.max(1);
        self
    }
}

/// Answers 200 with an empty body.
pub fn ok() -> Step {
    Step::new(Action::Status(StatusCode::OK))
}

/// Answers 200 with this body.
pub fn body(body: impl Into<Bytes>) -> Step {
    let body = body.into();
    respond(move |_| Ok(Response::new(Full::new(body.clone()))))
}

/// Answers with this status (an invalid one becomes 500).
pub fn status(code: u16) -> Step {
    Step::new(Action::Status(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    ))
}

/// Fails with an error carrying `message`.
pub fn error(message: impl Into<String>) -> Step {
    Step::new(Action::Error(message.into()))
}

/// Never answers (until dropped).
pub fn hang() -> Step {
    Step::new(Action::Hang)
}

/// Answers with whatever `f` returns for the request.
pub fn respond(
    f: impl Fn(&Seen) -> Result<ScriptedResponse, BoxError> + Send + Sync + 'static,
) -> Step {
    Step::new(Action::Respond(Arc::new(f)))
}

/// Starts a delayed step: `delay(ms(50)).then_ok()`.
pub fn delay(delay: Duration) -> Delay {
    Delay(delay)
}

/// A delay waiting for the step it precedes; see [`delay`].
#[derive(Debug, Clone, Copy)]
pub struct Delay(Duration);

impl Delay {
    /// After the delay, answer 200.
    pub fn then_ok(self) -> Step {
        self.then(ok())
    }
    /// After the delay, do `step`.
    pub fn then(self, mut step: Step) -> Step {
        step.delay += self.0;
        step
    }
}

/// Milliseconds, for short scripts: `delay(ms(50))`.
pub const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

struct Shared {
    script: Mutex<VecDeque<Step>>,
    otherwise: Mutex<Step>,
    seen: Mutex<Vec<Seen>>,
    cancelled: Mutex<Vec<usize>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A Tower service for `http::Request<B>` that answers from a script, records every request
/// and counts concurrent calls. Clones share the script and the records.
///
/// ```
/// use palisade_test::scripted::{ScriptedService, delay, ms, status};
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let svc = ScriptedService::new()
///     .then(status(503).times(2))
///     .then(delay(ms(50)).then_ok());
/// let statuses = [503, 503, 200, 200]; // then the default: ok()
/// for expected in statuses {
///     let res = svc.clone().oneshot(http::Request::new(())).await.unwrap();
///     assert_eq!(res.status(), expected);
/// }
/// assert_eq!(svc.calls(), 4);
/// # }
/// ```
#[derive(Clone)]
pub struct ScriptedService {
    shared: Arc<Shared>,
}

impl fmt::Debug for ScriptedService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptedService")
            .field("calls", &self.calls())
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

impl Default for ScriptedService {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ScriptedService {
    /// A service answering 200 to everything until steps are added.
    pub fn new() -> Self {
        Self::otherwise(ok())
    }

    /// A service answering `step` once its script is used up.
    pub fn otherwise(step: Step) -> Self {
        Self {
            shared: Arc::new(Shared {
                script: Mutex::new(VecDeque::new()),
                otherwise: Mutex::new(step),
                seen: Mutex::new(Vec::new()),
                cancelled: Mutex::new(Vec::new()),
                in_flight: AtomicUsize::new(0),
                max_in_flight: AtomicUsize::new(0),
            }),
        }
    }

    /// Appends a step to the script.
    #[must_use]
    pub fn then(self, step: Step) -> Self {
        lock(&self.shared.script).push_back(step);
        self
    }

    /// Appends a step to the script of a service already in use.
    pub fn push(&self, step: Step) {
        lock(&self.shared.script).push_back(step);
    }

    /// Changes the answer given once the script is used up, for a service already in use
    /// (an upstream that starts failing, or slows down, in the middle of a test).
    pub fn set_otherwise(&self, step: Step) {
        *lock(&self.shared.otherwise) = step;
    }

    /// How many times it was called.
    pub fn calls(&self) -> usize {
        lock(&self.shared.seen).len()
    }

    /// Every request it saw, in call order.
    pub fn requests(&self) -> Vec<Seen> {
        lock(&self.shared.seen).clone()
    }

    /// The indices of the calls whose futures were dropped before they answered (a hedge's
    /// loser, a call under a timeout), in the order they were dropped.
    pub fn cancelled(&self) -> Vec<usize> {
        lock(&self.shared.cancelled).clone()
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// The most calls ever in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    fn next_step(&self) -> Step {
        let mut script = lock(&self.shared.script);
        match script.front_mut() {
            Some(step) if step.times > 1 => {
                step.times -= 1;
                step.clone()
            }
            Some(_) => script
                .pop_front()
                .unwrap_or_else(|| lock(&self.shared.otherwise).clone()),
            None => lock(&self.shared.otherwise).clone(),
        }
    }
}

struct InFlight {
    shared: Arc<Shared>,
    index: usize,
    answered: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !self.answered {
            lock(&self.shared.cancelled).push(self.index);
        }
    }
}

pin_project! {
    /// Response future of [`ScriptedService`].
    pub struct ScriptedFuture {
        sleep: Option<Pin<Box<Sleep>>>,
        outcome: Option<Result<ScriptedResponse, BoxError>>,
        // Leaves the in-flight count when the call answers (or is dropped unanswered).
        guard: Option<InFlight>,
    }
}

impl fmt::Debug for ScriptedFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptedFuture").finish_non_exhaustive()
    }
}

impl Future for ScriptedFuture {
    type Output = Result<ScriptedResponse, BoxError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(sleep) = this.sleep {
            std::task::ready!(sleep.as_mut().poll(cx));
            *this.sleep = None;
        }
        match this.outcome.take() {
            Some(outcome) => {
                if let Some(guard) = this.guard.as_mut() {
                    guard.answered = true;
                }
                *this.guard = None;
                Poll::Ready(outcome)
            }
            None => Poll::Pending, // hang (or polled after completion)
        }
    }
}

impl<B> Service<Request<B>> for ScriptedService {
    type Response = ScriptedResponse;
    type Error = BoxError;
    type Future = ScriptedFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> ScriptedFuture {
        let shared = &self.shared;
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let seen = {
            let mut log = lock(&shared.seen);
            let seen = Seen {
                method: req.method().clone(),
                uri: req.uri().clone(),
                headers: req.headers().clone(),
                at: Instant::now(),
                index: log.len(),
            };
            log.push(seen.clone());
            seen
        };
        let guard = InFlight {
            shared: shared.clone(),
            index: seen.index,
            answered: false,
        };
        let step = self.next_step();
        let outcome = match &step.action {
            Action::Status(s) => {
                let mut res = Response::new(Full::new(Bytes::new()));
                *res.status_mut() = *s;
                Some(Ok(res))
            }
            Action::Error(e) => Some(Err(BoxError::from(e.clone()))),
            Action::Hang => None,
            Action::Respond(f) => Some(f(&seen)),
        };
        ScriptedFuture {
            sleep: (!step.delay.is_zero()).then(|| Box::pin(tokio::time::sleep(step.delay))),
            outcome,
            guard: Some(guard),
        }
    }
}
