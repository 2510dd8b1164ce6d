//! The event store contract on PostgreSQL.

use palisade_workflow::event_store::PgEventStore;
use palisade_workflow::pg::{Schema, migrate};

use crate::event_store::{concurrent_writers, contract};
use crate::support::{PgFixture, connect};

#[tokio::test]
async fn pg_store_keeps_the_contract() {
    let Some(fx) = PgFixture::new().await else {
        return;
    };
    // Migrating again is harmless.
    migrate(&fx.client, &fx.schema).await.unwrap();
    let store = PgEventStore::new(fx.client.clone(), &fx.schema)
        .await
        .unwrap();
    contract(&store, "t").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_store_loses_nothing_under_concurrent_writers() {
    let Some(fx) = PgFixture::new().await else {
        return;
    };
    // Eight connections, so eight server processes really race.
    let mut stores = Vec::new();
    for _ in 0..8 {
        let client = connect().await.unwrap();
        stores.push(PgEventStore::new(client, &fx.schema).await.unwrap());
    }
    concurrent_writers(stores, "c", 25).await;
}

#[test]
fn schema_names_are_checked() {
    for bad in ["", "1abc", "Abc", "a-b", "a;drop", &"a".repeat(64)] {
        assert!(Schema::new(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        Schema::new("palisade_wf_1").unwrap().as_str(),
        "palisade_wf_1"
    );
}

#[tokio::test]
async fn pg_snapshots_every_n() {
    let Some(fx) = PgFixture::new().await else {
        return;
    };
    let store = PgEventStore::new(fx.client.clone(), &fx.schema)
        .await
        .unwrap();
    let snaps = palisade_workflow::aggregate::PgSnapshotStore::new(fx.client.clone(), &fx.schema)
        .await
        .unwrap();
    crate::aggregate::snapshots_every_n(store, snaps, "acc-1").await;
}

#[tokio::test]
async fn pg_projection_restarts_from_checkpoint() {
    let Some(fx) = PgFixture::new().await else {
        return;
    };
    let store = PgEventStore::new(fx.client.clone(), &fx.schema)
        .await
        .unwrap();
    let cps = palisade_workflow::projection::PgCheckpointStore::new(fx.client.clone(), &fx.schema)
        .await
        .unwrap();
    crate::aggregate::projection_restarts_from_checkpoint(store, cps).await;
}

#[tokio::test(start_paused = true)]
async fn pg_saga_crash_matrix() {
    let Some(fx) = PgFixture::new().await else {
        return;
    };
    let store = palisade_workflow::saga::PgSagaStore::new(fx.client.clone(), &fx.schema)
        .await
        .unwrap();
    use crate::saga::{Behave, crash_matrix};
    use palisade_workflow::saga::OnUnknown;
    assert_eq!(
        crash_matrix(store.clone(), Behave::Ok, OnUnknown::Retry).await,
        16
    );
    assert_eq!(
        crash_matrix(store, Behave::Fail, OnUnknown::Retry).await,
        24
    );
}

#[tokio::test(start_paused = true)]
async fn pg_twopc_crash_after_the_decision() {
    let Some(fx) = PgFixture::new().await else {
        return;
    };
    let log = palisade_workflow::twopc::PgDecisionLog::new(fx.client.clone(), &fx.schema)
        .await
        .unwrap();
    crate::twopc::crash_after_the_decision(log).await;
}
