//! The outbox and its relays against the real PostgreSQL.

use crate::support;
use palisade_messaging::outbox::{Outbox, OutboxMessage, OutboxRelay};
use palisade_messaging::{PublishReceipt, PublishRequest};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::Client;
use tower::service_fn;

/// A schema of its own, dropped (with its outbox) at the end.
struct Schema {
    client: Client,
    name: String,
}

impl Schema {
    async fn new() -> Option<(Self, Outbox)> {
        let client = support::postgres().await?;
        let name = support::unique("palisade_outbox");
        client
            .batch_execute(&format!(
                "CREATE SCHEMA {name}; CREATE TABLE {name}.orders (id int PRIMARY KEY)"
            ))
            .await
            .unwrap();
        let outbox = Outbox::new(&format!("{name}.outbox")).unwrap();
        outbox.migrate(&client).await.unwrap();
        outbox.migrate(&client).await.unwrap(); // idempotent
        Some((Self { client, name }, outbox))
    }

    async fn drop_schema(self) {
        self.client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await
            .unwrap();
    }
}

type Seen = Arc<Mutex<HashMap<String, u32>>>;

/// A producer that records each message id it is asked to publish, after `delay`.
fn recorder(
    seen: Seen,
    delay: Duration,
) -> impl tower::Service<
    PublishRequest,
    Response = PublishReceipt,
    Error = std::io::Error,
    Future = impl Future<Output = Result<PublishReceipt, std::io::Error>> + Send,
> + Clone
+ Send
+ 'static {
    service_fn(move |req: PublishRequest| {
        let seen = seen.clone();
        async move {
            tokio::time::sleep(delay).await;
            *seen
                .lock()
                .unwrap()
                .entry(req.message_id.clone().unwrap())
                .or_default() += 1;
            Ok(PublishReceipt::default())
        }
    })
}

async fn enqueue_many(client: &mut Client, outbox: &Outbox, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let tx = client.transaction().await.unwrap();
        for i in chunk {
            outbox
                .enqueue(
                    &tx,
                    &OutboxMessage::new("orders.created", format!("{i}"))
                        .with_message_id(format!("m-{i}")),
                )
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
async fn enqueue_commits_or_rolls_back_with_the_caller() {
    let Some((mut db, outbox)) = Schema::new().await else {
        return;
    };
    let orders = format!("{}.orders", db.name);
    let tx = db.client.transaction().await.unwrap();
    tx.execute(&format!("INSERT INTO {orders} VALUES (1)"), &[])
        .await
        .unwrap();
    outbox
        .enqueue(
            &tx,
            &OutboxMessage::new("orders.created", "1").with_header("k", "v"),
        )
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        outbox.pending(&db.client).await.unwrap(),
        0,
        "rolled back together"
    );

    let tx = db.client.transaction().await.unwrap();
    tx.execute(&format!("INSERT INTO {orders} VALUES (1)"), &[])
        .await
        .unwrap();
    outbox
        .enqueue(
            &tx,
            &OutboxMessage::new("orders.created", "1").with_header("k", "v"),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(outbox.pending(&db.client).await.unwrap(), 1);

    // The relay publishes it with a generated id and the header, then marks it sent.
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let producer = service_fn(move |req: PublishRequest| {
        g.lock().unwrap().push(req);
        async { Ok::<_, std::io::Error>(PublishReceipt::default()) }
    });
    let relay = OutboxRelay::builder(outbox.clone(), producer)
        .build()
        .unwrap();
    let batch = relay.run_once(&mut db.client).await.unwrap();
    assert_eq!((batch.claimed, batch.published, batch.failed), (1, 1, 0));
    let req = got.lock().unwrap().pop().unwrap();
    assert_eq!(req.subject, "orders.created");
    assert_eq!(&req.payload[..], b"1");
    assert_eq!(req.headers, vec![("k".to_owned(), "v".to_owned())]);
    assert_eq!(req.message_id.as_deref().map(str::len), Some(36), "a uuid");
    assert_eq!(outbox.pending(&db.client).await.unwrap(), 0);
    assert_eq!(relay.run_once(&mut db.client).await.unwrap().claimed, 0);
    db.drop_schema().await;
}

#[tokio::test]
async fn two_relays_never_publish_a_row_twice() {
    let Some((mut db, outbox)) = Schema::new().await else {
        return;
    };
    const N: usize = 400;
    enqueue_many(&mut db.client, &outbox, N).await;
    let seen: Seen = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let relay = OutboxRelay::builder(
            outbox.clone(),
            recorder(seen.clone(), Duration::from_millis(2)),
        )
        .batch_size(20)
        .build()
        .unwrap();
        let mut client = support::postgres().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut published = 0;
            loop {
                let b = relay.run_once(&mut client).await.unwrap();
                if b.claimed == 0 {
                    return published;
                }
                published += b.published;
            }
        }));
    }
    let mut per_relay = Vec::new();
    for t in tasks {
        per_relay.push(t.await.unwrap());
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), N, "every row published");
    assert!(seen.values().all(|&n| n == 1), "no row published twice");
    assert_eq!(per_relay.iter().sum::<usize>(), N);
    assert!(
        per_relay.iter().all(|&n| n > 0),
        "both relays shared the work: {per_relay:?}"
    );
    assert_eq!(outbox.pending(&db.client).await.unwrap(), 0);
    db.drop_schema().await;
}

#[tokio::test]
async fn a_relay_crash_loses_nothing() {
    let Some((mut db, outbox)) = Schema::new().await else {
        return;
    };
    enqueue_many(&mut db.client, &outbox, 30).await;
    // Relay A claims a batch and hangs while publishing; then it "crashes" (its task and
    // connection go away before the commit).
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let started = Arc::new(Mutex::new(Some(started_tx)));
    let hanging = service_fn(move |_req: PublishRequest| {
        if let Some(tx) = started.lock().unwrap().take() {
            let _ = tx.send(());
        }
        std::future::pending::<Result<PublishReceipt, std::io::Error>>()
    });
    let relay_a = OutboxRelay::builder(outbox.clone(), hanging)
        .batch_size(10)
        .build()
        .unwrap();
    let mut client_a = support::postgres().await.unwrap();
    let crashed = tokio::spawn(async move { relay_a.run_once(&mut client_a).await });
    started_rx.await.unwrap();
    crashed.abort();
    let _ = crashed.await;

    // Relay B publishes all 30, including the 10 A had claimed.
    let seen: Seen = Arc::default();
    let relay_b = OutboxRelay::builder(outbox.clone(), recorder(seen.clone(), Duration::ZERO))
        .build()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < 30 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "rows of the crashed relay never came back"
        );
        relay_b.run_once(&mut db.client).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen.lock().unwrap().values().all(|&n| n == 1));
    assert_eq!(outbox.pending(&db.client).await.unwrap(), 0);
    db.drop_schema().await;
}

#[tokio::test]
async fn failures_back_off_and_park_after_max_attempts_without_blocking_others() {
    let Some((mut db, outbox)) = Schema::new().await else {
        return;
    };
    let tx = db.client.transaction().await.unwrap();
    outbox
        .enqueue(
            &tx,
            &OutboxMessage::new("poison", "x").with_message_id("bad"),
        )
        .await
        .unwrap();
    outbox
        .enqueue(
            &tx,
            &OutboxMessage::new("fine", "y").with_message_id("good"),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let producer = service_fn(|req: PublishRequest| async move {
        if req.subject == "poison" {
            Err(std::io::Error::other("broker says no"))
        } else {
            Ok(PublishReceipt::default())
        }
    });
    let relay = OutboxRelay::builder(outbox.clone(), producer)
        .max_attempts(2)
        .backoff(Duration::from_millis(1), Duration::from_millis(1))
        .build()
        .unwrap();
    let b = relay.run_once(&mut db.client).await.unwrap();
    assert_eq!((b.claimed, b.published, b.failed), (2, 1, 1));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let b = relay.run_once(&mut db.client).await.unwrap();
    assert_eq!((b.claimed, b.published, b.failed), (1, 0, 1));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let b = relay.run_once(&mut db.client).await.unwrap();
    assert_eq!(b.claimed, 0, "parked after max_attempts");
    let row = db
        .client
        .query_one(
            &format!(
                "SELECT attempts, last_error, sent_at IS NULL FROM {} WHERE message_id = 'bad'",
                outbox.table()
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);
    assert!(row.get::<_, String>(1).contains("broker says no"));
    assert!(row.get::<_, bool>(2));
    db.drop_schema().await;
}

#[tokio::test]
async fn notify_wakes_an_idle_relay_and_polling_is_the_fallback() {
    let Some((mut db, outbox)) = Schema::new().await else {
        return;
    };
    let seen: Seen = Arc::default();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // Polling every 60 s: only a notification can make it publish within the test.
    let relay = OutboxRelay::builder(outbox.clone(), recorder(seen.clone(), Duration::ZERO))
        .poll_interval(Duration::from_secs(60))
        .build()
        .unwrap();
    let task = tokio::spawn(relay.run(support::pg_config(), async {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(300)).await; // idle, listening
    let tx = db.client.transaction().await.unwrap();
    outbox
        .enqueue(&tx, &OutboxMessage::new("s", "x").with_message_id("woke"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen.lock().unwrap().contains_key("woke") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "NOTIFY did not wake the relay"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_tx.send(()).unwrap();
    task.await.unwrap();

    // A row inserted without a notification is found by polling.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let relay = OutboxRelay::builder(outbox.clone(), recorder(seen.clone(), Duration::ZERO))
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let task = tokio::spawn(relay.run(support::pg_config(), async {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(200)).await;
    db.client
        .execute(
            &format!(
                "INSERT INTO {} (message_id, subject, payload) VALUES ('polled', 's', 'x')",
                outbox.table()
            ),
            &[],
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen.lock().unwrap().contains_key("polled") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "polling did not find the row"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_tx.send(()).unwrap();
    task.await.unwrap();
    db.drop_schema().await;
}

#[tokio::test]
async fn relay_config_is_checked() {
    let outbox = Outbox::new("o").unwrap();
    let p = service_fn(|_: PublishRequest| async {
        Ok::<_, std::io::Error>(PublishReceipt::default())
    });
    let e = OutboxRelay::builder(outbox.clone(), p)
        .batch_size(0)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "relay.batch_size");
    let e = OutboxRelay::builder(outbox.clone(), p)
        .poll_interval(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "relay.poll_interval");
    let e = OutboxRelay::builder(outbox.clone(), p)
        .backoff(Duration::from_secs(2), Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "relay.backoff.max");
    let e = OutboxRelay::builder(outbox.clone(), p)
        .publish_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "relay.publish_timeout");
    let e = OutboxRelay::builder(outbox, p)
        .max_attempts(0)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "relay.max_attempts");
}

#[tokio::test]
async fn a_running_relay_reconnects_after_losing_the_database() {
    use crate::proxy::Proxy;
    let Some((mut db, outbox)) = Schema::new().await else {
        return;
    };
    let config = support::pg_config();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let upstream = tokio::net::lookup_host((host.as_str(), port))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::start(upstream).await;
    // A fresh config: `host`/`port` on a parsed one would add a second host, not replace it.
    let mut via_proxy = tokio_postgres::Config::new();
    via_proxy.host("127.0.0.1").port(proxy.addr.port());
    if let Some(user) = config.get_user() {
        via_proxy.user(user);
    }
    if let Some(db) = config.get_dbname() {
        via_proxy.dbname(db);
    }
    if let Some(pw) = config.get_password() {
        via_proxy.password(pw);
    }

    let seen: Seen = Arc::default();
    let relay = OutboxRelay::builder(outbox.clone(), recorder(seen.clone(), Duration::ZERO))
        .poll_interval(Duration::from_millis(50))
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .build()
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(relay.run(via_proxy, async {
        let _ = stop_rx.await;
    }));
    enqueue_many(&mut db.client, &outbox, 5).await;
    // Wait for the commit, not only the publishes: a cut between the two would (rightly)
    // publish those rows again after the reconnect.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while outbox.pending(&db.client).await.unwrap() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "first rows not relayed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen.lock().unwrap().len(), 5);

    proxy.cut();
    let tx = db.client.transaction().await.unwrap();
    for i in 0..5 {
        outbox
            .enqueue(
                &tx,
                &OutboxMessage::new("s", "x").with_message_id(format!("late-{i}")),
            )
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        seen.lock().unwrap().len(),
        5,
        "nothing relayed while cut off"
    );
    proxy.restore().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < 10 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay did not reconnect"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen.lock().unwrap().values().all(|&n| n == 1));
    stop_tx.send(()).unwrap();
    task.await.unwrap();
    assert_eq!(outbox.pending(&db.client).await.unwrap(), 0);
    db.drop_schema().await;
}

#[tokio::test]
async fn a_hung_publish_times_out_and_releases_the_row() {
    let Some((mut db, outbox)) = Schema::new().await else {
        return;
    };
    enqueue_many(&mut db.client, &outbox, 1).await;
    let hanging = service_fn(|_req: PublishRequest| {
        std::future::pending::<Result<PublishReceipt, std::io::Error>>()
    });
    let relay = OutboxRelay::builder(outbox.clone(), hanging)
        .publish_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let b = tokio::time::timeout(Duration::from_secs(5), relay.run_once(&mut db.client))
        .await
        .expect("the batch ends despite the hung broker")
        .unwrap();
    assert_eq!((b.claimed, b.published, b.failed), (1, 0, 1));
    let row = db
        .client
        .query_one(
            &format!("SELECT attempts, last_error FROM {}", outbox.table()),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
    assert!(row.get::<_, String>(1).contains("timed out"));
    db.drop_schema().await;
}
