//! Two-phase commit: a No vote, a prepare timeout, and a coordinator crash after the
//! decision is logged, before the commit reaches everyone.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_core::BoxError;
use palisade_workflow::twopc::{
    Coordinator, DecisionLog, MemoryDecisionLog, Phase, TwoPcError, TwoPcRequest, TxState, Vote,
};
use tokio::sync::Notify;
use tower::service_fn;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prep {
    Yes,
    No,
    Hang,
}

/// A participant holding prepared transactions, counting its effects.
#[derive(Debug)]
pub struct Db {
    prep: Prep,
    prepared: Mutex<HashSet<String>>,
    pub committed: Mutex<Vec<String>>,
    pub aborted: Mutex<Vec<String>>,
    pub commit_calls: AtomicU32,
    pub abort_calls: AtomicU32,
    /// The next commit never answers (the coordinator "dies" while delivering).
    hang_next_commit: AtomicBool,
    /// Commits fail this many times.
    fail_commits: AtomicU32,
    pub commit_seen: Notify,
}

impl Db {
    pub fn new(prep: Prep) -> Arc<Self> {
        Arc::new(Self {
            prep,
            prepared: Mutex::default(),
            committed: Mutex::default(),
            aborted: Mutex::default(),
            commit_calls: AtomicU32::new(0),
            abort_calls: AtomicU32::new(0),
            hang_next_commit: AtomicBool::new(false),
            fail_commits: AtomicU32::new(0),
            commit_seen: Notify::new(),
        })
    }
    pub fn committed(&self) -> Vec<String> {
        self.committed.lock().unwrap().clone()
    }
    pub fn aborted(&self) -> Vec<String> {
        self.aborted.lock().unwrap().clone()
    }
}

pub fn participant(
    db: Arc<Db>,
) -> impl tower::Service<
    TwoPcRequest<u32>,
    Response = Vote,
    Error = BoxError,
    Future = impl Future<Output = Result<Vote, BoxError>> + Send,
> + Clone
+ Send
+ Sync
+ 'static {
    service_fn(move |req: TwoPcRequest<u32>| {
        let db = db.clone();
        async move {
            match req.phase {
                Phase::Prepare => match db.prep {
                    Prep::Yes => {
                        db.prepared.lock().unwrap().insert(req.tx);
                        Ok(Vote::Yes)
                    }
                    Prep::No => Ok(Vote::No),
                    Prep::Hang => std::future::pending().await,
                },
                Phase::Commit => {
                    db.commit_calls.fetch_add(1, Ordering::SeqCst);
                    db.commit_seen.notify_one();
                    if db.hang_next_commit.swap(false, Ordering::SeqCst) {
                        std::future::pending::<()>().await;
                    }
                    if db
                        .fail_commits
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        return Err("commit failed".into());
                    }
                    // Idempotent: only a prepared transaction commits, once.
                    if db.prepared.lock().unwrap().remove(&req.tx) {
                        db.committed.lock().unwrap().push(req.tx);
                    }
                    Ok(Vote::Yes)
                }
                Phase::Abort => {
                    db.abort_calls.fetch_add(1, Ordering::SeqCst);
                    if db.prepared.lock().unwrap().remove(&req.tx) {
                        db.aborted.lock().unwrap().push(req.tx);
                    }
                    Ok(Vote::Yes)
                }
            }
        }
    })
}

fn coordinator<L: DecisionLog>(dbs: &[(&str, &Arc<Db>)], log: L) -> Coordinator<u32, L> {
    let mut b = Coordinator::<u32, L>::builder()
        .prepare_timeout(Duration::from_secs(2))
        .ack_attempts(3)
        .ack_backoff(Duration::from_millis(50));
    for (name, db) in dbs {
        b = b.participant(*name, participant(Arc::clone(db)));
    }
    b.build(log).unwrap()
}

#[tokio::test(start_paused = true)]
async fn all_yes_commits_everywhere() {
    let (a, b) = (Db::new(Prep::Yes), Db::new(Prep::Yes));
    let c = coordinator(&[("a", &a), ("b", &b)], MemoryDecisionLog::new());
    let r = c.execute("tx-1", 7).await.unwrap();
    assert_eq!(r.state, TxState::Committed);
    assert_eq!(r.acked, [true, true]);
    assert_eq!(a.committed(), ["tx-1"]);
    assert_eq!(b.committed(), ["tx-1"]);
    assert!(matches!(
        c.execute("tx-1", 7).await,
        Err(TwoPcError::AlreadyExists)
    ));
    assert!(matches!(c.execute("", 7).await, Err(TwoPcError::InvalidId)));
}

#[tokio::test(start_paused = true)]
async fn a_no_vote_aborts_everyone() {
    let (a, b, d) = (Db::new(Prep::Yes), Db::new(Prep::No), Db::new(Prep::Yes));
    let coord = coordinator(&[("a", &a), ("b", &b), ("d", &d)], MemoryDecisionLog::new());
    let r = coord.execute("tx-2", 1).await.unwrap();
    assert_eq!(r.state, TxState::Aborted);
    assert_eq!(r.reason.as_deref(), Some("b voted no"));
    assert_eq!(a.aborted(), ["tx-2"]);
    assert_eq!(d.aborted(), ["tx-2"]);
    assert!(b.aborted().is_empty(), "b never prepared");
    assert_eq!(
        b.abort_calls.load(Ordering::SeqCst),
        1,
        "b is told all the same"
    );
    for db in [&a, &b, &d] {
        assert!(db.committed().is_empty());
        assert_eq!(db.commit_calls.load(Ordering::SeqCst), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn a_prepare_timeout_aborts() {
    let (a, b) = (Db::new(Prep::Yes), Db::new(Prep::Hang));
    let c = coordinator(&[("a", &a), ("b", &b)], MemoryDecisionLog::new());
    let started = tokio::time::Instant::now();
    let r = c.execute("tx-3", 1).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(r.state, TxState::Aborted);
    assert_eq!(
        r.reason.as_deref(),
        Some("b did not vote within the prepare timeout")
    );
    assert_eq!(a.aborted(), ["tx-3"]);
    assert!(a.committed().is_empty());
}

/// The coordinator dies after logging Commit, while b's commit is in flight (a may or may
/// not have committed); a new coordinator on the same log commits everyone, once each.
pub async fn crash_after_the_decision<L: DecisionLog>(log: L) {
    let (a, b) = (Db::new(Prep::Yes), Db::new(Prep::Yes));
    b.hang_next_commit.store(true, Ordering::SeqCst);
    let c = coordinator(&[("a", &a), ("b", &b)], log.clone());
    let task = tokio::spawn(async move { c.execute("tx-4", 9).await });
    b.commit_seen.notified().await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    let logged = log.load("tx-4").await.unwrap().unwrap();
    assert_eq!(logged.state, TxState::Committing, "the decision is logged");
    assert!(b.committed().is_empty(), "b is prepared, blocked, waiting");

    let restarted = coordinator(&[("a", &a), ("b", &b)], log.clone());
    let recovered = restarted.recover().await.unwrap();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].state, TxState::Committed);
    assert_eq!(a.committed(), ["tx-4"]);
    assert_eq!(b.committed(), ["tx-4"]);
    assert_eq!(
        b.commit_calls.load(Ordering::SeqCst),
        2,
        "b was asked again"
    );
    assert!(log.unfinished(10).await.unwrap().is_empty());
    assert!(restarted.recover().await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_coordinator_crash_after_the_decision_is_recovered() {
    crash_after_the_decision(MemoryDecisionLog::new()).await;
}

#[tokio::test(start_paused = true)]
async fn a_coordinator_crash_before_the_decision_aborts_on_recovery() {
    let (a, b) = (Db::new(Prep::Yes), Db::new(Prep::Hang));
    let log = MemoryDecisionLog::new();
    let c = coordinator(&[("a", &a), ("b", &b)], log.clone());
    let task = tokio::spawn(async move { c.execute("tx-5", 1).await });
    tokio::time::sleep(Duration::from_millis(500)).await; // a prepared, b still thinking
    task.abort();
    assert_eq!(
        log.load("tx-5").await.unwrap().unwrap().state,
        TxState::Preparing
    );
    let r = coordinator(&[("a", &a), ("b", &b)], log)
        .recover()
        .await
        .unwrap();
    assert_eq!(r[0].state, TxState::Aborted);
    assert_eq!(
        r[0].reason.as_deref(),
        Some("coordinator stopped before deciding")
    );
    assert_eq!(a.aborted(), ["tx-5"]);
    assert!(a.committed().is_empty());
}

#[tokio::test(start_paused = true)]
async fn undelivered_decisions_are_left_for_recovery() {
    let (a, b) = (Db::new(Prep::Yes), Db::new(Prep::Yes));
    b.fail_commits.store(4, Ordering::SeqCst);
    let log = MemoryDecisionLog::new();
    let c = coordinator(&[("a", &a), ("b", &b)], log.clone());
    let started = tokio::time::Instant::now();
    let r = c.execute("tx-6", 1).await.unwrap();
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(100),
        "3 attempts, 2 backoffs"
    );
    assert_eq!(r.state, TxState::Committing);
    assert_eq!(r.acked, [true, false]);
    assert_eq!(b.commit_calls.load(Ordering::SeqCst), 3);
    let r = c.recover().await.unwrap();
    assert_eq!(r[0].state, TxState::Committed);
    assert_eq!(
        a.commit_calls.load(Ordering::SeqCst),
        1,
        "an acked participant is not asked again"
    );
    assert_eq!(b.committed(), ["tx-6"]);
}

#[test]
fn coordinator_settings_are_checked() {
    let a = Db::new(Prep::Yes);
    let log = MemoryDecisionLog::new();
    let err = Coordinator::<u32, MemoryDecisionLog>::builder()
        .build(log.clone())
        .unwrap_err();
    assert_eq!(err.field(), "participants");
    let err = Coordinator::<u32, MemoryDecisionLog>::builder()
        .participant("a", participant(a.clone()))
        .participant("a", participant(a.clone()))
        .build(log.clone())
        .unwrap_err();
    assert_eq!(err.field(), "participants[1].name");
    let err = Coordinator::<u32, MemoryDecisionLog>::builder()
        .participant("a", participant(a.clone()))
        .prepare_timeout(Duration::ZERO)
        .build(log.clone())
        .unwrap_err();
    assert_eq!(err.field(), "prepare_timeout");
    let err = Coordinator::<u32, MemoryDecisionLog>::builder()
        .participant("a", participant(a.clone()))
        .ack_attempts(0)
        .build(log)
        .unwrap_err();
    assert_eq!(err.field(), "ack_attempts");
}
