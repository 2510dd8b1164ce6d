//! Throughput of the event store and the saga orchestrator, in memory and on PostgreSQL.
//!
//! ```text
//! cargo bench -p palisade-workflow --all-features --bench workflow
//! ```
//!
//! A plain timing harness (not criterion): each figure is a sustained rate over thousands
//! of operations, several of them concurrent, which criterion's per-iteration model does
//! not fit. PostgreSQL figures need `DATABASE_URL` (default
//! `postgres://root@127.0.0.1:5432/test`) and are skipped without a server.

use std::time::{Duration, Instant};

use palisade_core::BoxError;
use palisade_workflow::saga::{
    MemorySagaStore, Saga, SagaOrchestrator, SagaStore, Step, StepRequest,
};
use palisade_workflow::{EventStore, ExpectedVersion, MemoryEventStore, NewEvent};
use serde_json::json;
use tower::service_fn;

fn report(name: &str, n: u64, elapsed: Duration) {
    println!(
        "{name:<55} {n:>7} ops in {:>8.3} s = {:>9.0} ops/s",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
}

fn ev() -> Vec<NewEvent> {
    vec![NewEvent::new("deposited", json!({ "amount": 1 }))]
}

async fn single_stream<S: EventStore>(name: &str, store: &S, n: u64) {
    let t = Instant::now();
    for v in 0..n {
        store
            .append("single", ExpectedVersion::Exact(v), ev())
            .await
            .unwrap();
    }
    report(name, n, t.elapsed());
}

async fn many_streams<S: EventStore>(name: &str, stores: Vec<S>, per_task: u64) {
    let tasks = stores.len() as u64;
    let t = Instant::now();
    let handles: Vec<_> = stores
        .into_iter()
        .enumerate()
        .map(|(w, store)| {
            tokio::spawn(async move {
                for i in 0..per_task {
                    let stream = format!("s-{w}-{}", i % 100);
                    store
                        .append(&stream, ExpectedVersion::Any, ev())
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    report(name, tasks * per_task, t.elapsed());
}

fn saga() -> Saga<u64> {
    let mut b = Saga::builder("bench");
    for name in ["reserve", "charge", "ship"] {
        b = b.step(Step::new(
            name,
            service_fn(|r: StepRequest<u64>| async move { Ok::<_, BoxError>(r.context + 1) }),
            service_fn(|_r: StepRequest<u64>| async move { Ok::<_, BoxError>(()) }),
        ));
    }
    b.build().unwrap()
}

async fn sagas<St: SagaStore>(name: &str, stores: Vec<St>, per_task: u64, tag: &str) {
    let tasks = stores.len() as u64;
    let t = Instant::now();
    let handles: Vec<_> = stores
        .into_iter()
        .enumerate()
        .map(|(w, store)| {
            let tag = tag.to_owned();
            tokio::spawn(async move {
                let orch = SagaOrchestrator::new(saga(), store);
                for i in 0..per_task {
                    let r = orch.start(&format!("{tag}-{w}-{i}"), 0).await.unwrap();
                    assert_eq!(r.context, json!(3));
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    report(name, tasks * per_task, t.elapsed());
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let store = MemoryEventStore::new();
    single_stream(
        "memory: append, one stream, expected version",
        &store,
        200_000,
    )
    .await;
    many_streams(
        "memory: append, 8 tasks x 100 streams each",
        vec![store; 8],
        25_000,
    )
    .await;
    sagas(
        "memory: 3-step sagas, 1 task",
        vec![MemorySagaStore::new()],
        20_000,
        "m1",
    )
    .await;
    sagas(
        "memory: 3-step sagas, 8 tasks",
        vec![MemorySagaStore::new(); 8],
        5_000,
        "m8",
    )
    .await;
    #[cfg(feature = "postgres")]
    pg::run().await;
}

#[cfg(feature = "postgres")]
mod pg {
    use std::sync::Arc;

    use palisade_workflow::event_store::PgEventStore;
    use palisade_workflow::pg::{Schema, migrate};
    use palisade_workflow::saga::PgSagaStore;
    use tokio_postgres::{Client, NoTls};

    async fn connect(url: &str) -> Option<Arc<Client>> {
        let (client, conn) = tokio_postgres::connect(url, NoTls).await.ok()?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Some(Arc::new(client))
    }

    pub(super) async fn run() {
        let url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned());
        let Some(admin) = connect(&url).await else {
            println!("postgres: skipped, no server at {url}");
            return;
        };
        let schema = Schema::new(&format!("palisade_wf_bench_{}", std::process::id())).unwrap();
        migrate(&admin, &schema).await.unwrap();
        let mut clients = Vec::new();
        for _ in 0..8 {
            clients.push(connect(&url).await.unwrap());
        }
        let store = PgEventStore::new(admin.clone(), &schema).await.unwrap();
        super::single_stream(
            "postgres: append, one stream, expected version",
            &store,
            3_000,
        )
        .await;
        let mut stores = Vec::new();
        for c in &clients {
            stores.push(PgEventStore::new(c.clone(), &schema).await.unwrap());
        }
        super::many_streams(
            "postgres: append, 8 connections x 100 streams each",
            stores,
            1_000,
        )
        .await;
        let one = PgSagaStore::new(admin.clone(), &schema).await.unwrap();
        super::sagas("postgres: 3-step sagas, 1 connection", vec![one], 500, "p1").await;
        let mut stores = Vec::new();
        for c in &clients {
            stores.push(PgSagaStore::new(c.clone(), &schema).await.unwrap());
        }
        super::sagas("postgres: 3-step sagas, 8 connections", stores, 250, "p8").await;
        admin
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
    }
}
