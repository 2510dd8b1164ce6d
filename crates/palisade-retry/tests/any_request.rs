//! The retry layer around services of any request type (`RetryLayer::any_request`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_core::classify::{Outcome, classify_fn};
use palisade_core::{BoxError, CircuitOpen, Elapsed};
use palisade_retry::{
    Backoff, GiveUpReason, ReplayRequest, RetryEvent, RetryLayer, RetryReason, TpsBudget,
};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

/// A message that counts its replays.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Publish {
    subject: &'static str,
    id: u32,
}

type Events = Arc<Mutex<Vec<RetryEvent>>>;

fn recorded() -> (Events, impl Fn(&RetryEvent) + Send + Sync + 'static) {
    let events = Events::default();
    let log = events.clone();
    (events, move |e: &RetryEvent| {
        log.lock().unwrap().push(e.clone());
    })
}

/// Fails `failures` times with an error, then answers the request's id.
fn flaky(
    failures: u32,
    calls: Arc<AtomicU32>,
    seen: Arc<Mutex<Vec<Publish>>>,
) -> impl Service<Publish, Response = u32, Error = BoxError, Future = impl Send> + Clone {
    service_fn(move |req: Publish| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        seen.lock().unwrap().push(req.clone());
        async move {
            if n < failures {
                Err::<u32, BoxError>("unavailable".into())
            } else {
                Ok(req.id)
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn errors_are_retried_with_the_same_request_and_backoff() {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (events, on_event) = recorded();
    let svc = RetryLayer::any_request()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(50)))
        .on_event(on_event)
        .layer(flaky(2, calls.clone(), seen.clone()));
    let started = Instant::now();
    let req = Publish {
        subject: "orders",
        id: 7,
    };
    assert_eq!(svc.oneshot(req.clone()).await.unwrap(), 7);
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(*seen.lock().unwrap(), vec![req.clone(), req.clone(), req]);
    let events = events.lock().unwrap();
    assert_eq!(events.len(), 2);
    assert!(matches!(
        events[..],
        [
            RetryEvent::Attempt {
                n: 2,
                reason: RetryReason::Error,
                ..
            },
            RetryEvent::Attempt { n: 3, .. }
        ]
    ));
}

#[tokio::test(start_paused = true)]
async fn exhausted_after_max_attempts_returns_the_last_error() {
    let calls = Arc::new(AtomicU32::new(0));
    let (events, on_event) = recorded();
    let svc = RetryLayer::any_request()
        .max_attempts(4)
        .backoff(Backoff::constant(Duration::from_millis(1)))
        .no_budget()
        .on_event(on_event)
        .layer(flaky(u32::MAX, calls.clone(), Arc::default()));
    let err = svc
        .oneshot(Publish {
            subject: "orders",
            id: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "unavailable");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert!(matches!(
        events.lock().unwrap().last(),
        Some(RetryEvent::Exhausted { attempts: 4, .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn the_budget_stops_retries() {
    let calls = Arc::new(AtomicU32::new(0));
    let (events, on_event) = recorded();
    // 10 s TTL, no minimum, 0 % retries: no retry is ever affordable.
    let budget = TpsBudget::new(Duration::from_secs(10), 0, 0.0);
    let svc = RetryLayer::any_request()
        .budget(budget)
        .on_event(on_event)
        .layer(flaky(u32::MAX, calls.clone(), Arc::default()));
    assert!(
        svc.oneshot(Publish {
            subject: "orders",
            id: 1,
        })
        .await
        .is_err()
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(matches!(
        events.lock().unwrap()[..],
        [RetryEvent::BudgetExhausted { attempts: 1, .. }]
    ));
}

#[tokio::test(start_paused = true)]
async fn a_rejection_retry_after_above_the_max_backoff_gives_up() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let (events, on_event) = recorded();
    let open = service_fn(move |_n: u64| {
        c.fetch_add(1, Ordering::SeqCst);
        async { Err::<u64, BoxError>(CircuitOpen::new(Some(Duration::from_secs(600))).into()) }
    });
    let svc = RetryLayer::any_request().on_event(on_event).layer(open);
    let err = svc.oneshot(1).await.unwrap_err();
    assert!(err.is::<CircuitOpen>());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(matches!(
        events.lock().unwrap()[..],
        [RetryEvent::GaveUp {
            attempts: 1,
            reason: GiveUpReason::ServerDelayTooLong,
            ..
        }]
    ));
}

#[tokio::test(start_paused = true)]
async fn a_classifier_retries_responses_and_returns_ignored_ones() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let (events, on_event) = recorded();
    // The store answers 0 ("not stored") twice, then a sequence number.
    let store = service_fn(move |_n: u64| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<u64, BoxError>(if n < 2 { 0 } else { 100 + u64::from(n) }) }
    });
    let classifier = classify_fn(|r: Result<&u64, &BoxError>| match r {
        Ok(0) => Outcome::Failure,
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Ignored,
    });
    let svc = RetryLayer::any_request()
        .backoff(Backoff::constant(Duration::from_millis(1)))
        .classifier(classifier)
        .on_event(on_event)
        .layer(store);
    assert_eq!(svc.oneshot(9).await.unwrap(), 102);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(matches!(
        events.lock().unwrap()[..],
        [
            RetryEvent::Attempt {
                n: 2,
                reason: RetryReason::Response,
                ..
            },
            RetryEvent::Attempt {
                n: 3,
                reason: RetryReason::Response,
                ..
            }
        ]
    ));

    // Ignored errors are returned at once.
    let failing = service_fn(|_n: u64| async { Err::<u64, BoxError>("bad input".into()) });
    let svc = RetryLayer::any_request()
        .classifier(classifier)
        .layer(failing);
    assert_eq!(svc.oneshot(1).await.unwrap_err().to_string(), "bad input");
}

#[tokio::test(start_paused = true)]
async fn per_attempt_timeout_applies() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    // The first attempt hangs; the second answers.
    let svc = service_fn(move |n: u64| {
        let k = c.fetch_add(1, Ordering::SeqCst);
        async move {
            if k == 0 {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            Ok::<u64, BoxError>(n)
        }
    });
    let svc = RetryLayer::any_request()
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .per_attempt_timeout(Duration::from_secs(1))
        .layer(svc);
    let started = Instant::now();
    assert_eq!(svc.oneshot(5).await.unwrap(), 5);
    assert_eq!(started.elapsed(), Duration::from_millis(1010));
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // Every attempt hangs: the last Elapsed is returned.
    let hang = service_fn(|_n: u64| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<u64, BoxError>(0)
    });
    let svc = RetryLayer::any_request()
        .max_attempts(2)
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .per_attempt_timeout(Duration::from_secs(1))
        .layer(hang);
    assert!(svc.oneshot(5).await.unwrap_err().is::<Elapsed>());
}

/// A request that is not `Clone`: only some can be replayed.
#[derive(Debug)]
struct Query {
    sql: String,
    replayable: bool,
}

impl ReplayRequest for Query {
    fn replay(&self) -> Option<Self> {
        self.replayable.then(|| Query {
            sql: self.sql.clone(),
            replayable: true,
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_that_cannot_be_replayed_is_sent_once() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let db = service_fn(move |q: Query| {
        c.fetch_add(1, Ordering::SeqCst);
        async move { Err::<String, BoxError>(format!("failed: {}", q.sql).into()) }
    });
    let svc = RetryLayer::any_request()
        .backoff(Backoff::constant(Duration::from_millis(1)))
        .no_budget()
        .layer(db);
    let once = Query {
        sql: "insert".into(),
        replayable: false,
    };
    assert_eq!(
        svc.clone().oneshot(once).await.unwrap_err().to_string(),
        "failed: insert"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let again = Query {
        sql: "select".into(),
        replayable: true,
    };
    assert!(svc.oneshot(again).await.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn one_attempt_never_clones_the_request() {
    /// Counts its clones.
    #[derive(Debug)]
    struct Counted(Arc<AtomicU32>);
    impl Clone for Counted {
        fn clone(&self) -> Self {
            self.0.fetch_add(1, Ordering::SeqCst);
            Self(self.0.clone())
        }
    }
    let clones = Arc::new(AtomicU32::new(0));
    let svc = RetryLayer::any_request()
        .max_attempts(1)
        .layer(service_fn(|_c: Counted| async { Ok::<_, BoxError>(()) }));
    svc.oneshot(Counted(clones.clone())).await.unwrap();
    assert_eq!(clones.load(Ordering::SeqCst), 0);
}
