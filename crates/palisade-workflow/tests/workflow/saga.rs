//! Sagas: forward runs, compensation, timeouts, stuck compensations, queries, and crash
//! injection at every log write.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_core::BoxError;
use palisade_workflow::StoreError;
use palisade_workflow::saga::{
    HistoryKind, MemorySagaStore, OnUnknown, Saga, SagaError, SagaEvent, SagaOrchestrator,
    SagaRecord, SagaState, SagaStore, Step, StepRequest,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tower::service_fn;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub done: Vec<String>,
}

/// Idempotent participants that count effects: per step, the keys whose action applied and
/// the keys whose compensation undid one.
#[derive(Debug, Default)]
pub struct Ledger {
    applied: Mutex<HashMap<String, HashSet<String>>>,
    undone: Mutex<HashMap<String, HashSet<String>>>,
    pub action_calls: AtomicU32,
    pub compensation_calls: AtomicU32,
}

impl Ledger {
    pub fn applied(&self, step: &str) -> HashSet<String> {
        self.applied
            .lock()
            .unwrap()
            .get(step)
            .cloned()
            .unwrap_or_default()
    }
    pub fn undone(&self, step: &str) -> HashSet<String> {
        self.undone
            .lock()
            .unwrap()
            .get(step)
            .cloned()
            .unwrap_or_default()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Behave {
    Ok,
    Fail,
    Hang,
    CompensationFails,
}

pub fn step(ledger: &Arc<Ledger>, name: &'static str, behave: Behave) -> Step<Order> {
    let l = ledger.clone();
    let action = service_fn(move |req: StepRequest<Order>| {
        let l = l.clone();
        async move {
            l.action_calls.fetch_add(1, Ordering::SeqCst);
            match behave {
                Behave::Fail => return Err::<Order, BoxError>("declined".into()),
                Behave::Hang => std::future::pending::<()>().await,
                Behave::Ok | Behave::CompensationFails => {}
            }
            let mut ctx = req.context;
            l.applied
                .lock()
                .unwrap()
                .entry(req.step.clone())
                .or_default()
                .insert(req.idempotency_key);
            if !ctx.done.contains(&req.step) {
                ctx.done.push(req.step);
            }
            Ok(ctx)
        }
    });
    let l = ledger.clone();
    let compensation = service_fn(move |req: StepRequest<Order>| {
        let l = l.clone();
        async move {
            l.compensation_calls.fetch_add(1, Ordering::SeqCst);
            if behave == Behave::CompensationFails {
                return Err::<(), BoxError>("refund service down".into());
            }
            let applied = l.applied(&req.step).contains(&req.idempotency_key);
            if applied {
                l.undone
                    .lock()
                    .unwrap()
                    .entry(req.step.clone())
                    .or_default()
                    .insert(req.idempotency_key);
            }
            Ok(())
        }
    });
    Step::new(name, action, compensation).timeout(Duration::from_secs(1))
}

const STEPS: [&str; 3] = ["reserve", "charge", "ship"];

pub fn saga(ledger: &Arc<Ledger>, last: Behave) -> Saga<Order> {
    Saga::builder("order")
        .step(step(ledger, "reserve", Behave::Ok))
        .step(step(ledger, "charge", Behave::Ok))
        .step(step(ledger, "ship", last))
        .compensation_backoff(Duration::from_millis(10))
        .build()
        .unwrap()
}

/// Each step's action applied at most once under one key, and the end state is all done or
/// all compensated.
pub fn check_end_state(ledger: &Ledger, record: &SagaRecord) {
    let key = |s: &str| format!("{}/{s}", record.id);
    for s in STEPS {
        let applied = ledger.applied(s);
        assert!(
            applied.len() <= 1,
            "step {s} applied under several keys: {applied:?}"
        );
        assert!(applied.iter().all(|k| *k == key(s)));
    }
    match record.state {
        SagaState::Done => {
            for s in STEPS {
                assert_eq!(ledger.applied(s).len(), 1, "{s} done");
                assert!(ledger.undone(s).is_empty(), "{s} not compensated");
            }
            let ctx: Order = serde_json::from_value(record.context.clone()).unwrap();
            assert_eq!(ctx.done, STEPS);
        }
        SagaState::Compensated => {
            for s in STEPS {
                assert_eq!(
                    ledger.applied(s),
                    ledger.undone(s),
                    "{s}: every applied effect undone"
                );
            }
        }
        other => panic!("unexpected end state {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_saga_runs_every_step() {
    let ledger = Arc::new(Ledger::default());
    let done = Arc::new(AtomicU32::new(0));
    let d = done.clone();
    let orch = SagaOrchestrator::new(saga(&ledger, Behave::Ok), MemorySagaStore::new()).on_event(
        move |e| {
            if matches!(e, SagaEvent::StepDone { .. } | SagaEvent::Done { .. }) {
                d.fetch_add(1, Ordering::SeqCst);
            }
        },
    );
    let r = orch.start("o-1", Order::default()).await.unwrap();
    assert_eq!(r.state, SagaState::Done);
    assert_eq!(r.step, 3);
    check_end_state(&ledger, &r);
    assert_eq!(done.load(Ordering::SeqCst), 4);
    assert_eq!(ledger.action_calls.load(Ordering::SeqCst), 3);
    let kinds: Vec<_> = r.history.iter().map(|h| (h.step, h.kind)).collect();
    assert_eq!(
        kinds,
        [
            (0, HistoryKind::ActionStarted),
            (0, HistoryKind::ActionDone),
            (1, HistoryKind::ActionStarted),
            (1, HistoryKind::ActionDone),
            (2, HistoryKind::ActionStarted),
            (2, HistoryKind::ActionDone),
        ]
    );
    assert_eq!(orch.get("o-1").await.unwrap().unwrap(), r);
    assert!(matches!(
        orch.start("o-1", Order::default()).await,
        Err(SagaError::AlreadyExists)
    ));
    for bad in ["", "a b", &"x".repeat(129)] {
        assert!(matches!(
            orch.start(bad, Order::default()).await,
            Err(SagaError::InvalidId)
        ));
    }
    assert!(matches!(
        orch.resume("nope").await,
        Err(SagaError::NotFound)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_failed_step_compensates_the_done_ones_in_reverse() {
    let ledger = Arc::new(Ledger::default());
    let orch = SagaOrchestrator::new(saga(&ledger, Behave::Fail), MemorySagaStore::new());
    let r = orch.start("o-2", Order::default()).await.unwrap();
    assert_eq!(r.state, SagaState::Compensated);
    assert_eq!(r.error.as_deref(), Some("declined"));
    check_end_state(&ledger, &r);
    assert_eq!(ledger.undone("reserve").len(), 1);
    assert_eq!(ledger.undone("charge").len(), 1);
    // The failed step is not compensated (it returned an error: nothing applied).
    assert_eq!(ledger.compensation_calls.load(Ordering::SeqCst), 2);
    let comp: Vec<_> = r
        .history
        .iter()
        .filter(|h| h.kind == HistoryKind::CompensationDone)
        .map(|h| h.step)
        .collect();
    assert_eq!(comp, [1, 0], "reverse order");
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_step_is_compensated_too() {
    let ledger = Arc::new(Ledger::default());
    let orch = SagaOrchestrator::new(saga(&ledger, Behave::Hang), MemorySagaStore::new());
    let started = tokio::time::Instant::now();
    let r = orch.start("o-3", Order::default()).await.unwrap();
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(1),
        "the step timeout"
    );
    assert_eq!(r.state, SagaState::Compensated);
    assert_eq!(r.error.as_deref(), Some("step timed out"));
    assert_eq!(ledger.compensation_calls.load(Ordering::SeqCst), 3);
    check_end_state(&ledger, &r);
}

#[tokio::test(start_paused = true)]
async fn the_saga_timeout_counts_across_restarts() {
    let ledger = Arc::new(Ledger::default());
    let store = MemorySagaStore::new();
    let mk = || {
        Saga::builder("order")
            .step(step(&ledger, "reserve", Behave::Ok))
            .step(step(&ledger, "charge", Behave::Hang).timeout(Duration::from_secs(10)))
            .step(step(&ledger, "ship", Behave::Ok))
            .timeout(Duration::from_secs(4))
            .build()
            .unwrap()
    };
    let orch = SagaOrchestrator::new(mk(), store.clone());
    let o = orch.clone();
    let task = tokio::spawn(async move { o.start("o-4", Order::default()).await });
    tokio::time::sleep(Duration::from_secs(3)).await;
    task.abort();
    // The log says 0 ms were spent before "charge" started; the 3 s of the crashed run in
    // "charge" are lost with it, so the restart has 4 s of budget left and uses it all.
    let restarted = tokio::time::Instant::now();
    let r = SagaOrchestrator::new(mk(), store)
        .resume("o-4")
        .await
        .unwrap();
    assert_eq!(restarted.elapsed(), Duration::from_secs(4));
    assert_eq!(r.state, SagaState::Compensated);
    assert_eq!(r.error.as_deref(), Some("saga timed out"));
    assert!(r.elapsed_ms >= 4000);
    check_end_state(&ledger, &r);
}

#[tokio::test(start_paused = true)]
async fn a_compensation_that_keeps_failing_marks_the_saga_stuck() {
    let ledger = Arc::new(Ledger::default());
    let stuck = Arc::new(AtomicU32::new(0));
    let s = stuck.clone();
    let saga = Saga::builder("order")
        .step(step(&ledger, "reserve", Behave::Ok))
        .step(step(&ledger, "charge", Behave::CompensationFails))
        .step(step(&ledger, "ship", Behave::Fail))
        .compensation_attempts(4)
        .compensation_backoff(Duration::from_millis(100))
        .build()
        .unwrap();
    let orch = SagaOrchestrator::new(saga, MemorySagaStore::new()).on_event(move |e| {
        if let SagaEvent::Stuck { attempts, step, .. } = e {
            assert_eq!((*attempts, step.as_str()), (4, "charge"));
            s.fetch_add(1, Ordering::SeqCst);
        }
    });
    let started = tokio::time::Instant::now();
    let r = orch.start("o-5", Order::default()).await.unwrap();
    assert_eq!(r.state, SagaState::Stuck);
    assert_eq!(r.step, 2, "charge (and reserve) still owed");
    assert_eq!(r.error.as_deref(), Some("refund service down"));
    assert_eq!(stuck.load(Ordering::SeqCst), 1);
    assert_eq!(ledger.compensation_calls.load(Ordering::SeqCst), 4);
    // Backoff 100, 200, 400 ms between the four attempts.
    assert_eq!(started.elapsed(), Duration::from_millis(700));
    assert!(
        ledger.undone("reserve").is_empty(),
        "reserve is not compensated out of order"
    );
    let listed = orch.list(SagaState::Stuck, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["o-5"]
    );
    assert!(orch.list(SagaState::Running, 10).await.unwrap().is_empty());
    // A resumed stuck saga is returned as it is.
    assert_eq!(orch.resume("o-5").await.unwrap(), r);
}

#[test]
fn saga_definitions_are_checked() {
    let ledger = Arc::new(Ledger::default());
    let cases: Vec<(Result<Saga<Order>, _>, &str)> = vec![
        (Saga::builder("order").build(), "steps"),
        (
            Saga::builder("bad name")
                .step(step(&ledger, "a", Behave::Ok))
                .build(),
            "name",
        ),
        (
            Saga::builder("o")
                .step(step(&ledger, "a", Behave::Ok))
                .step(step(&ledger, "a", Behave::Ok))
                .build(),
            "steps[1].name",
        ),
        (
            Saga::builder("o")
                .step(step(&ledger, "a/b", Behave::Ok))
                .build(),
            "steps[0].name",
        ),
        (
            Saga::builder("o")
                .step(step(&ledger, "a", Behave::Ok).timeout(Duration::ZERO))
                .build(),
            "steps[0].timeout",
        ),
        (
            Saga::builder("o")
                .step(step(&ledger, "a", Behave::Ok))
                .compensation_attempts(0)
                .build(),
            "compensation_attempts",
        ),
        (
            Saga::builder("o")
                .step(step(&ledger, "a", Behave::Ok))
                .timeout(Duration::ZERO)
                .build(),
            "timeout",
        ),
    ];
    for (result, field) in cases {
        assert_eq!(result.unwrap_err().field(), field);
    }
}

/// A saga log that "crashes" at its `crash_at`-th write: before writing (the step ran, its
/// outcome is not logged) or after (logged, the next step not started). The write then
/// never returns, and the test aborts the orchestrator's task.
#[derive(Clone)]
pub struct CrashStore<St> {
    inner: St,
    writes: Arc<AtomicUsize>,
    crash_at: usize,
    after_write: bool,
    crashed: Arc<Notify>,
}

impl<St: SagaStore> CrashStore<St> {
    async fn write(&self, record: &SagaRecord, create: bool) -> Result<bool, StoreError> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.crash_at && !self.after_write {
            self.crashed.notify_one();
            std::future::pending::<()>().await;
        }
        let created = if create {
            self.inner.create(record).await?
        } else {
            self.inner.save(record).await?;
            true
        };
        if n == self.crash_at {
            self.crashed.notify_one();
            std::future::pending::<()>().await;
        }
        Ok(created)
    }
}

impl<St: SagaStore> SagaStore for CrashStore<St> {
    async fn create(&self, record: &SagaRecord) -> Result<bool, StoreError> {
        self.write(record, true).await
    }
    async fn save(&self, record: &SagaRecord) -> Result<(), StoreError> {
        self.write(record, false).await.map(|_| ())
    }
    async fn load(&self, id: &str) -> Result<Option<SagaRecord>, StoreError> {
        self.inner.load(id).await
    }
    async fn list(
        &self,
        saga: &str,
        state: SagaState,
        max: usize,
    ) -> Result<Vec<SagaRecord>, StoreError> {
        self.inner.list(saga, state, max).await
    }
}

/// Crashes a run at every log write (both sides of it), restarts with `recover`, and checks
/// the end state and that no effect happened twice. Returns how many crash points it tried.
pub async fn crash_matrix<St: SagaStore>(store: St, last: Behave, on_unknown: OnUnknown) -> usize {
    let mut tried = 0;
    for after_write in [false, true] {
        for crash_at in 1.. {
            let ledger = Arc::new(Ledger::default());
            let mk = || {
                Saga::builder("order")
                    .step(step(&ledger, "reserve", Behave::Ok).on_unknown(on_unknown))
                    .step(step(&ledger, "charge", Behave::Ok).on_unknown(on_unknown))
                    .step(step(&ledger, "ship", last).on_unknown(on_unknown))
                    .compensation_backoff(Duration::from_millis(10))
                    .build()
                    .unwrap()
            };
            let crashed = Arc::new(Notify::new());
            let crashing = CrashStore {
                inner: store.clone(),
                writes: Arc::new(AtomicUsize::new(0)),
                crash_at,
                after_write,
                crashed: crashed.clone(),
            };
            let id = format!("crash-{last:?}-{on_unknown:?}-{after_write}-{crash_at}");
            let orch = SagaOrchestrator::new(mk(), crashing);
            let o = orch.clone();
            let i = id.clone();
            let mut task = tokio::spawn(async move { o.start(&i, Order::default()).await });
            let finished = tokio::select! {
                r = &mut task => Some(r.unwrap().unwrap()),
                () = crashed.notified() => { task.abort(); None }
            };
            if let Some(record) = finished {
                // No write left to crash at: the matrix for this side is complete.
                check_end_state(&ledger, &record);
                break;
            }
            tried += 1;
            let restarted = SagaOrchestrator::new(mk(), store.clone());
            let record = match restarted.get(&id).await.unwrap() {
                // Crashed before the first write: nothing was logged and nothing ran.
                None => {
                    assert_eq!(ledger.action_calls.load(Ordering::SeqCst), 0);
                    continue;
                }
                Some(logged) => {
                    let recovered = restarted.recover().await.unwrap();
                    // An instance logged as unfinished is among those recovered.
                    assert_eq!(
                        recovered.iter().any(|r| r.id == id),
                        !logged.state.is_final(),
                        "{id}"
                    );
                    restarted.get(&id).await.unwrap().unwrap()
                }
            };
            check_end_state(&ledger, &record);
            let expected = if last == Behave::Ok {
                SagaState::Done
            } else {
                SagaState::Compensated
            };
            if on_unknown == OnUnknown::Retry || last != Behave::Ok {
                assert_eq!(record.state, expected, "{id}");
            }
        }
    }
    tried
}

#[tokio::test(start_paused = true)]
async fn crash_at_every_boundary_of_a_successful_saga() {
    let tried = crash_matrix(MemorySagaStore::new(), Behave::Ok, OnUnknown::Retry).await;
    // create + 3 × (started, done) + final: 8 writes, each crashed before and after.
    assert_eq!(tried, 16);
}

#[tokio::test(start_paused = true)]
async fn crash_at_every_boundary_of_a_compensated_saga() {
    let tried = crash_matrix(MemorySagaStore::new(), Behave::Fail, OnUnknown::Retry).await;
    // create + 2 × (started, done) + (started, failed) + 2 × (comp started, comp done) + final.
    assert_eq!(tried, 24);
}

#[tokio::test(start_paused = true)]
async fn crash_with_compensate_on_unknown() {
    let tried = crash_matrix(MemorySagaStore::new(), Behave::Ok, OnUnknown::Compensate).await;
    assert_eq!(tried, 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sagas_run_independently() {
    let ok_ledger = Arc::new(Ledger::default());
    let bad_ledger = Arc::new(Ledger::default());
    let store = MemorySagaStore::new();
    let good = SagaOrchestrator::new(saga(&ok_ledger, Behave::Ok), store.clone());
    let bad = SagaOrchestrator::new(
        Saga::builder("refund")
            .step(step(&bad_ledger, "reserve", Behave::Ok))
            .step(step(&bad_ledger, "charge", Behave::Ok))
            .step(step(&bad_ledger, "ship", Behave::Fail))
            .build()
            .unwrap(),
        store.clone(),
    );
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (g, b) = (good.clone(), bad.clone());
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                g.start(&format!("g-{i}"), Order::default()).await
            } else {
                b.start(&format!("b-{i}"), Order::default()).await
            }
        }));
    }
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        let want = if r.id.starts_with("g-") {
            SagaState::Done
        } else {
            SagaState::Compensated
        };
        assert_eq!(r.state, want, "{}", r.id);
    }
    assert_eq!(ok_ledger.applied("ship").len(), 10);
    assert_eq!(bad_ledger.applied("charge"), bad_ledger.undone("charge"));
    assert_eq!(bad_ledger.undone("charge").len(), 10);
    assert_eq!(good.list(SagaState::Done, 100).await.unwrap().len(), 10);
    assert_eq!(
        bad.list(SagaState::Compensated, 100).await.unwrap().len(),
        10
    );
    assert!(
        good.list(SagaState::Compensated, 100)
            .await
            .unwrap()
            .is_empty(),
        "listed per saga"
    );
}
