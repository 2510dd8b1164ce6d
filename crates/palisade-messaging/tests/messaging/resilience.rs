//! Palisade's layers around a producer, a `Service<PublishRequest>`: timeout → retry →
//! breaker → bulkhead → rate limit → producer, each in its any-request mode. A scripted
//! in-memory producer makes every behaviour exact under paused time; one run goes to real
//! NATS JetStream.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use palisade_breaker::{BreakerHandle, CircuitBreakerLayer, SlidingWindow, State};
use palisade_bulkhead::BulkheadLayer;
use palisade_core::classify::{DefaultClassifier, Outcome, classify_fn};
use palisade_core::key::{KeyError, key_fn};
use palisade_core::{BoxError, BulkheadFull, CircuitOpen, Elapsed, RateLimited};
use palisade_messaging::{PublishError, PublishErrorKind, PublishReceipt, PublishRequest};
use palisade_ratelimit::{Quota, RateLimitLayer};
use palisade_retry::{Backoff, Decision, RetryEvent, RetryLayer, RetryReason, predicate_fn};
use palisade_timeout::TimeoutLayer;
use tokio::time::Instant;
use tower::util::BoxCloneService;
use tower::{Service, ServiceBuilder, ServiceExt};

/// What the scripted producer does on one call.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Confirms after this long.
    Ack(Duration),
    /// Fails as `Unavailable` after this long.
    Unavailable(Duration),
}

/// An in-memory producer that plays a script, one step per call (the last step repeats),
/// and records what it was sent.
#[derive(Clone)]
struct Scripted {
    script: Arc<Mutex<VecDeque<Step>>>,
    sent: Arc<Mutex<Vec<PublishRequest>>>,
    seq: Arc<AtomicU32>,
}

impl Scripted {
    fn new(script: impl IntoIterator<Item = Step>) -> Self {
        Self {
            script: Arc::new(Mutex::new(script.into_iter().collect())),
            sent: Arc::new(Mutex::new(Vec::new())),
            seq: Arc::new(AtomicU32::new(0)),
        }
    }

    fn calls(&self) -> usize {
        self.sent.lock().unwrap().len()
    }
}

impl Service<PublishRequest> for Scripted {
    type Response = PublishReceipt;
    type Error = PublishError;
    type Future = Pin<Box<dyn Future<Output = Result<PublishReceipt, PublishError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), PublishError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: PublishRequest) -> Self::Future {
        let step = {
            let mut script = self.script.lock().unwrap();
            if script.len() > 1 {
                script.pop_front()
            } else {
                script.front().copied()
            }
        }
        .expect("a script");
        self.sent.lock().unwrap().push(req);
        let seq = self.seq.clone();
        Box::pin(async move {
            match step {
                Step::Ack(after) => {
                    tokio::time::sleep(after).await;
                    let n = seq.fetch_add(1, Ordering::SeqCst) + 1;
                    Ok(PublishReceipt::new(Some(u64::from(n)), false))
                }
                Step::Unavailable(after) => {
                    tokio::time::sleep(after).await;
                    Err(PublishError::new(
                        PublishErrorKind::Unavailable,
                        "broker unreachable",
                    ))
                }
            }
        })
    }
}

/// The stack's dials, per test.
struct Dials {
    timeout: Duration,
    per_minute: u32,
    max_concurrent: usize,
}

impl Default for Dials {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            per_minute: 100,
            max_concurrent: 10,
        }
    }
}

type Publisher = BoxCloneService<PublishRequest, PublishReceipt, BoxError>;

/// timeout → retry → breaker → bulkhead → rate limit → `producer`; returns the stack, the
/// breaker's handle and the retry events.
fn stack<P>(producer: P, dials: &Dials) -> (Publisher, BreakerHandle, Arc<Mutex<Vec<RetryEvent>>>)
where
    P: Service<PublishRequest, Response = PublishReceipt, Error = PublishError>
        + Clone
        + Send
        + 'static,
    P::Future: Send + 'static,
{
    let retries = Arc::new(Mutex::new(Vec::new()));
    let log = retries.clone();
    // Retry what the broker says may succeed again (same message id: deduplicated);
    // anything else, including the inner layers' refusals, is returned as is.
    let retry = RetryLayer::any_request()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(100)))
        .no_budget()
        .predicate(predicate_fn(
            |r: Result<&PublishReceipt, &BoxError>| match r {
                Ok(_) => Decision::Success,
                Err(e)
                    if e.downcast_ref::<PublishError>()
                        .is_some_and(PublishError::is_retryable) =>
                {
                    Decision::Retry {
                        reason: RetryReason::Error,
                        after: None,
                    }
                }
                Err(_) => Decision::Return,
            },
        ))
        .on_event(move |e| log.lock().unwrap().push(e.clone()));
    // Errors are failures, except the local refusals of the layers inside (the broker was
    // not called): DefaultClassifier's rule for errors, for a response that is not HTTP.
    let breaker = CircuitBreakerLayer::builder()
        .window(SlidingWindow::Count(4))
        .minimum_calls(4)
        .failure_rate_threshold(50.0)
        .wait_in_open(Duration::from_secs(30))
        .classifier(classify_fn(
            |r: Result<&PublishReceipt, &BoxError>| match r {
                Ok(_) => Outcome::Success,
                Err(e) => DefaultClassifier::new().classify_error(e),
            },
        ))
        .build()
        .unwrap();
    let handle = breaker.handle();
    let bulkhead = BulkheadLayer::builder()
        .max_concurrent(dials.max_concurrent)
        .max_queue(0)
        .release_on_response()
        .build()
        .unwrap();
    let by_subject = key_fn(|req: &PublishRequest| {
        req.subject
            .split('.')
            .next()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or(KeyError::Invalid { what: "subject" })
    });
    let limit = RateLimitLayer::any_request(
        by_subject,
        Quota::per_minute("publish", dials.per_minute).unwrap(),
    );
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::any_request(dials.timeout))
        .layer(retry)
        .layer(breaker)
        .layer(bulkhead)
        .layer(limit)
        .service(producer);
    (BoxCloneService::new(svc), handle, retries)
}

fn msg(subject: &str, id: &str) -> PublishRequest {
    PublishRequest::new(subject, "payload").with_message_id(id)
}

fn attempts(events: &Mutex<Vec<RetryEvent>>) -> Vec<u32> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            RetryEvent::Attempt { n, .. } => Some(*n),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn unavailable_twice_is_retried_with_the_same_message() {
    let ms = Duration::from_millis(10);
    let producer = Scripted::new([Step::Unavailable(ms), Step::Unavailable(ms), Step::Ack(ms)]);
    let (svc, breaker, retries) = stack(producer.clone(), &Dials::default());

    let started = Instant::now();
    let receipt = svc.oneshot(msg("orders.created", "m-1")).await.unwrap();
    assert_eq!(receipt.sequence, Some(1));
    // Three attempts of 10 ms and two backoffs of 100 ms.
    assert_eq!(started.elapsed(), Duration::from_millis(230));
    assert_eq!(producer.calls(), 3);
    assert_eq!(attempts(&retries), vec![2, 3]);
    let sent = producer.sent.lock().unwrap();
    assert!(sent.iter().all(|r| r.message_id.as_deref() == Some("m-1")));
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn failures_open_the_breaker_and_the_retry_stops_there() {
    let producer = Scripted::new([Step::Unavailable(Duration::from_millis(10))]);
    let (svc, breaker, retries) = stack(producer.clone(), &Dials::default());

    // Three attempts, three failures: not yet the breaker's minimum of four calls.
    let err = svc
        .clone()
        .oneshot(msg("orders.created", "m-1"))
        .await
        .unwrap_err();
    assert_eq!(
        err.downcast_ref::<PublishError>().map(PublishError::kind),
        Some(PublishErrorKind::Unavailable)
    );
    assert_eq!(producer.calls(), 3);
    assert_eq!(breaker.state(), State::Closed);

    // The fourth failure opens it; the retry then meets CircuitOpen and returns it.
    let err = svc
        .clone()
        .oneshot(msg("orders.created", "m-2"))
        .await
        .unwrap_err();
    let open = err.downcast_ref::<CircuitOpen>().expect("CircuitOpen");
    assert!(
        open.retry_after
            .is_some_and(|d| d <= Duration::from_secs(30))
    );
    assert_eq!(producer.calls(), 4);
    assert_eq!(breaker.state(), State::Open);

    // While open, the broker is not called at all.
    let err = svc.oneshot(msg("orders.created", "m-3")).await.unwrap_err();
    assert!(err.is::<CircuitOpen>());
    assert_eq!(producer.calls(), 4);
    assert_eq!(attempts(&retries), vec![2, 3, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_rejects_and_is_not_retried() {
    let producer = Scripted::new([Step::Ack(Duration::from_secs(1))]);
    let dials = Dials {
        max_concurrent: 1,
        ..Dials::default()
    };
    let (svc, breaker, retries) = stack(producer.clone(), &dials);

    let first = tokio::spawn(svc.clone().oneshot(msg("orders.created", "m-1")));
    tokio::task::yield_now().await; // the first publish holds the only slot
    assert_eq!(producer.calls(), 1);
    let err = svc
        .clone()
        .oneshot(msg("orders.created", "m-2"))
        .await
        .unwrap_err();
    assert!(err.is::<BulkheadFull>(), "{err}");
    assert_eq!(producer.calls(), 1);
    assert_eq!(first.await.unwrap().unwrap().sequence, Some(1));
    // The slot is free again once the first is confirmed.
    assert_eq!(
        svc.oneshot(msg("orders.created", "m-3"))
            .await
            .unwrap()
            .sequence,
        Some(2)
    );
    assert_eq!(producer.calls(), 2);
    assert!(attempts(&retries).is_empty());
    // The refusal was the bulkhead's, not the broker's: the breaker ignored it.
    assert_eq!(breaker.totals().calls, 2);
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_rejects_per_subject_prefix() {
    let producer = Scripted::new([Step::Ack(Duration::ZERO)]);
    let dials = Dials {
        per_minute: 2,
        ..Dials::default()
    };
    let (svc, _breaker, retries) = stack(producer.clone(), &dials);

    for id in ["m-1", "m-2"] {
        svc.clone()
            .oneshot(msg("orders.created", id))
            .await
            .unwrap();
    }
    let err = svc
        .clone()
        .oneshot(msg("orders.updated", "m-3"))
        .await
        .unwrap_err();
    let limited = err.downcast_ref::<RateLimited>().expect("RateLimited");
    assert_eq!(limited.retry_after, Duration::from_secs(30));
    assert_eq!(producer.calls(), 2);
    // Another prefix has its own bucket; a subject without one is a KeyError.
    svc.clone()
        .oneshot(msg("invoices.paid", "m-4"))
        .await
        .unwrap();
    let err = svc.oneshot(msg(".x", "m-5")).await.unwrap_err();
    assert!(err.is::<KeyError>(), "{err}");
    assert_eq!(producer.calls(), 3);
    assert!(attempts(&retries).is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_timeout_covers_every_attempt() {
    // One attempt fails after 1.5 s, the retry hangs: the 2 s timeout fires in the retry.
    let producer = Scripted::new([
        Step::Unavailable(Duration::from_millis(1500)),
        Step::Ack(Duration::from_secs(60)),
    ]);
    let (svc, _breaker, retries) = stack(producer.clone(), &Dials::default());

    let started = Instant::now();
    let err = svc.oneshot(msg("orders.created", "m-1")).await.unwrap_err();
    let elapsed = err.downcast_ref::<Elapsed>().expect("Elapsed");
    assert_eq!(elapsed.timeout, Duration::from_secs(2));
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(producer.calls(), 2);
    assert_eq!(attempts(&retries), vec![2]);
}

/// The same stack around a real JetStream publisher: a publish goes through every layer
/// and is stored once; the rate limit refuses the third one without touching the broker.
#[cfg(feature = "nats")]
#[tokio::test]
async fn around_real_jetstream() {
    use async_nats::jetstream::{self, stream};
    use palisade_messaging::producer::JetStreamPublisher;

    let Some(client) = crate::support::nats().await else {
        return;
    };
    let js = jetstream::new(client);
    let name = crate::support::unique("palisade_stack");
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{name}.>")],
        duplicate_window: Duration::from_secs(60),
        ..Default::default()
    })
    .await
    .expect("create stream");
    let dials = Dials {
        timeout: Duration::from_secs(5),
        per_minute: 2,
        ..Dials::default()
    };
    let (svc, breaker, retries) = stack(JetStreamPublisher::from_context(js.clone()), &dials);
    let subject = format!("{name}.events");
    let first = svc.clone().oneshot(msg(&subject, "a")).await.unwrap();
    assert_eq!(first.sequence, Some(1));
    let again = svc.clone().oneshot(msg(&subject, "a")).await.unwrap();
    assert!(
        again.duplicate,
        "same message id: deduplicated by JetStream"
    );
    let err = svc.oneshot(msg(&subject, "b")).await.unwrap_err();
    assert!(err.is::<RateLimited>(), "{err}");
    let stored = js
        .get_stream(&name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages;
    assert_eq!(stored, 1);
    assert_eq!(breaker.state(), State::Closed);
    assert!(attempts(&retries).is_empty());
    js.delete_stream(&name).await.unwrap();
}
