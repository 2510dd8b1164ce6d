//! Redis store, lock and inbox against a live Redis (`REDIS_URL`, default 127.0.0.1:6379).
//! Outside CI a missing Redis skips the test with a message; under `CI=true` it fails.
#![cfg(feature = "redis")]
#![allow(clippy::many_single_char_names)]

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use palisade_core::HandleRejectionsLayer;
use palisade_idempotency::{
    Begin, DistributedLock, IdempotencyLayer, InboxLayer, RedisLock, RedisStore, Store,
    StoredResponse,
};
use redis::aio::ConnectionManager;
use support::{Answer, Handler, is_problem, post, send};
use tower::{Layer, ServiceBuilder, ServiceExt};

type Svc = tower::util::BoxCloneService<Request<Full<Bytes>>, Response<Full<Bytes>>, Infallible>;

async fn conn() -> Option<ConnectionManager> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let attempt = async {
        let client = redis::Client::open(url.as_str())?;
        ConnectionManager::new(client).await
    };
    match tokio::time::timeout(Duration::from_secs(3), attempt).await {
        Ok(Ok(c)) => Some(c),
        other => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "Redis at {url} is required under CI: {other:?}"
            );
            eprintln!("skipping: Redis at {url} not reachable ({other:?})");
            None
        }
    }
}

fn prefix(test: &str) -> String {
    format!("palisade-test:{test}:{}:", rand::random::<u64>())
}

fn stack(layer: IdempotencyLayer<RedisStore>, h: &Handler) -> Svc {
    let svc = ServiceBuilder::new()
        .layer(HandleRejectionsLayer::new())
        .layer(layer)
        .service(h.clone());
    tower::util::BoxCloneService::new(svc.and_then(
        |res: Response<
            palisade_core::RejectionBody<palisade_idempotency::body::ResponseBody<Full<Bytes>>>,
        >| async move {
            let (parts, body) = res.into_parts();
            let body = body
                .collect()
                .await
                .map_or_else(|_| Bytes::new(), http_body_util::Collected::to_bytes);
            Ok(Response::from_parts(parts, Full::new(body)))
        },
    ))
}

fn original(a: &Answer) -> bool {
    a.headers.get("idempotent-replayed").is_none() && a.headers.contains_key("x-request-n")
}

fn replayed(a: &Answer) -> bool {
    a.headers
        .get("idempotent-replayed")
        .map(http::HeaderValue::as_bytes)
        == Some(b"true")
}

#[tokio::test]
async fn redis_replay_mismatch_and_server_errors() {
    let Some(c) = conn().await else { return };
    let h = Handler::new();
    let mut svc = stack(
        IdempotencyLayer::new(RedisStore::new(c, prefix("basic"))),
        &h,
    );
    let a = send(&mut svc, post(Some("\"k1\""), "A")).await;
    let b = send(&mut svc, post(Some("\"k1\""), "A")).await;
    assert!(original(&a));
    assert!(replayed(&b));
    assert_eq!((b.status, &b.body), (a.status, &a.body));
    assert_eq!(b.headers["content-type"], a.headers["content-type"]);
    let m = send(&mut svc, post(Some("\"k1\""), "B")).await;
    assert_eq!(m.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(is_problem(&m));
    h.0.status.store(500, Ordering::SeqCst);
    let e = send(&mut svc, post(Some("\"k2\""), "A")).await;
    let f = send(&mut svc, post(Some("\"k2\""), "A")).await;
    assert_eq!(
        (e.status, f.status),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::INTERNAL_SERVER_ERROR
        )
    );
    assert!(replayed(&f));
    assert_eq!(h.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_thousand_concurrent_two_instances_execute_once() {
    let (Some(c1), Some(c2)) = (conn().await, conn().await) else {
        return;
    };
    let p = prefix("thousand");
    let h = Handler::new();
    h.0.gated.store(true, Ordering::SeqCst);
    // Two independent layer instances with their own connections, as two servers.
    let a = stack(IdempotencyLayer::new(RedisStore::new(c1, p.clone())), &h);
    let b = stack(IdempotencyLayer::new(RedisStore::new(c2, p)), &h);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..1000 {
        let mut svc = if i % 2 == 0 { a.clone() } else { b.clone() };
        let tx = tx.clone();
        tokio::spawn(async move {
            tx.send(send(&mut svc, post(Some("\"same\""), "pay 10")).await)
                .unwrap();
        });
    }
    let mut answers = Vec::new();
    for _ in 0..500 {
        let ans = rx.recv().await.unwrap();
        assert_eq!(ans.status, StatusCode::CONFLICT);
        answers.push(ans);
    }
    h.0.gate.add_permits(1);
    for _ in 0..500 {
        answers.push(rx.recv().await.unwrap());
    }
    assert_eq!(h.calls(), 1);
    let originals: Vec<_> = answers.iter().filter(|x| original(x)).collect();
    assert_eq!(originals.len(), 1);
    let first = originals[0].clone();
    for x in &answers {
        if original(x) {
            continue;
        }
        if x.status == StatusCode::CONFLICT {
            assert!(is_problem(x));
        } else {
            assert!(replayed(x));
            assert_eq!((x.status, &x.body), (first.status, &first.body));
        }
    }
    // Both instances now replay the stored response.
    for mut s in [a.clone(), b.clone(), a, b] {
        let again = send(&mut s, post(Some("\"same\""), "pay 10")).await;
        assert!(replayed(&again));
        assert_eq!((again.status, &again.body), (first.status, &first.body));
        assert_eq!(again.headers["content-type"], first.headers["content-type"]);
    }
    assert_eq!(h.calls(), 1);
}

#[tokio::test]
async fn redis_ttl_expiry() {
    let Some(c) = conn().await else { return };
    let h = Handler::new();
    let mut svc = stack(
        IdempotencyLayer::new(RedisStore::new(c, prefix("ttl")))
            .ttl(Duration::from_millis(300))
            .lease(Duration::from_millis(300)),
        &h,
    );
    assert!(original(&send(&mut svc, post(Some("\"k1\""), "A")).await));
    assert!(replayed(&send(&mut svc, post(Some("\"k1\""), "A")).await));
    // Server-side expiry: real time has to pass.
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(original(&send(&mut svc, post(Some("\"k1\""), "A")).await));
    assert_eq!(h.calls(), 2);
}

fn record(body: &'static str) -> StoredResponse {
    StoredResponse {
        status: StatusCode::CREATED,
        headers: vec![(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        )],
        body: Bytes::from_static(body.as_bytes()),
    }
}

#[tokio::test]
async fn redis_store_lease_expiry_and_fencing() {
    let Some(c) = conn().await else { return };
    let s = RedisStore::new(c, prefix("fencing"));
    let fp = [7u8; 32];
    let ttl = Duration::from_secs(60);
    let lease = Duration::from_millis(150);
    let Begin::Started {
        fencing_token: t1,
        took_over_expired: false,
    } = s.begin("k", &fp, lease, ttl).await.unwrap()
    else {
        panic!("first begin must start")
    };
    assert_eq!(
        s.begin("k", &fp, lease, ttl).await.unwrap(),
        Begin::InFlight
    );
    assert_eq!(
        s.begin("k", &[8; 32], lease, ttl).await.unwrap(),
        Begin::Mismatch
    );
    tokio::time::sleep(Duration::from_millis(250)).await; // the holder "crashed"
    let Begin::Started {
        fencing_token: t2,
        took_over_expired: true,
    } = s.begin("k", &fp, lease, ttl).await.unwrap()
    else {
        panic!("expired lease must be taken over")
    };
    assert!(t2 > t1);
    assert!(!s.complete("k", t1, &record("late"), ttl).await.unwrap());
    assert!(!s.release("k", t1).await.unwrap());
    assert!(s.complete("k", t2, &record("new"), ttl).await.unwrap());
    match s.begin("k", &fp, lease, ttl).await.unwrap() {
        Begin::Completed(r) => assert_eq!(*r, record("new")),
        other => panic!("{other:?}"),
    }
    // Renew keeps a live lock held past its original lease; a stale token cannot renew.
    let Begin::Started {
        fencing_token: t4, ..
    } = s.begin("n", &fp, lease, ttl).await.unwrap()
    else {
        panic!()
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(s.renew("n", t4, lease).await.unwrap());
    assert!(!s.renew("n", t4 + 1, lease).await.unwrap());
    tokio::time::sleep(Duration::from_millis(100)).await; // 200 ms > original 150 ms lease
    assert_eq!(
        s.begin("n", &fp, lease, ttl).await.unwrap(),
        Begin::InFlight
    );
    // Release frees a held lock.
    let Begin::Started {
        fencing_token: t3, ..
    } = s.begin("r", &fp, lease, ttl).await.unwrap()
    else {
        panic!()
    };
    assert!(s.release("r", t3).await.unwrap());
    assert!(matches!(
        s.begin("r", &fp, lease, ttl).await.unwrap(),
        Begin::Started { .. }
    ));
}

#[tokio::test]
async fn redis_distributed_lock() {
    let Some(c) = conn().await else { return };
    let lock = RedisLock::new(c, prefix("lock"));
    let lease = Duration::from_millis(200);
    let t1 = lock.acquire("job", lease).await.unwrap().unwrap();
    assert_eq!(lock.acquire("job", lease).await.unwrap(), None);
    assert!(lock.renew("job", t1, lease).await.unwrap());
    assert!(!lock.renew("job", t1 + 1, lease).await.unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t2 = lock.acquire("job", lease).await.unwrap().unwrap();
    assert!(t2 > t1, "fencing tokens grow");
    assert!(!lock.release("job", t1).await.unwrap());
    assert!(lock.release("job", t2).await.unwrap());
    assert!(lock.acquire("job", lease).await.unwrap().unwrap() > t2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_inbox_processes_each_id_once() {
    let Some(c) = conn().await else { return };
    let store = RedisStore::new(c, prefix("inbox"));
    let effects = Arc::new(std::sync::Mutex::new(
        std::collections::HashMap::<u32, u32>::new(),
    ));
    let e = effects.clone();
    let svc =
        InboxLayer::new(store, |m: &u32| m.to_string()).layer(tower::service_fn(move |id: u32| {
            let e = e.clone();
            async move {
                *e.lock().unwrap().entry(id).or_default() += 1;
                Ok::<_, std::io::Error>(())
            }
        }));
    let mut tasks = Vec::new();
    for i in 0..2000u32 {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            let id = (i * 7919) % 200;
            loop {
                match svc.clone().oneshot(id).await {
                    Ok(_) => return,
                    Err(e) if e.is::<palisade_core::IdempotencyConflict>() => {
                        tokio::task::yield_now().await;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let effects = effects.lock().unwrap();
    assert_eq!(effects.len(), 200);
    assert!(effects.values().all(|&n| n == 1));
}

#[tokio::test]
async fn redis_keys_use_prefix_and_hash_tag() {
    let Some(c) = conn().await else { return };
    let s = RedisStore::new(c, "pfx:");
    let k = s.redis_key("5:\"P1\"k1");
    assert!(k.starts_with("pfx:{") && k.ends_with('}'));
    assert_eq!(k.len(), "pfx:{}".len() + 64);
    assert_ne!(k, s.redis_key("5:\"P2\"k1"));
}

/// A connection that counts round trips (one per command or pipeline).
#[derive(Clone)]
struct Counting {
    inner: ConnectionManager,
    n: Arc<std::sync::atomic::AtomicUsize>,
}

impl redis::aio::ConnectionLike for Counting {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        self.n.fetch_add(1, Ordering::SeqCst);
        self.inner.req_packed_command(cmd)
    }
    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        self.n.fetch_add(1, Ordering::SeqCst);
        self.inner.req_packed_commands(pipeline, offset, count)
    }
    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

#[tokio::test]
async fn redis_round_trips_two_on_first_execution_one_on_replay() {
    let Some(c) = conn().await else { return };
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let store = RedisStore::new(
        Counting {
            inner: c,
            n: n.clone(),
        },
        prefix("roundtrips"),
    );
    let h = Handler::new();
    let svc = ServiceBuilder::new()
        .layer(HandleRejectionsLayer::new())
        .layer(IdempotencyLayer::new(store))
        .service(h.clone());
    // Warm up: the first use of each script may cost a NOSCRIPT + SCRIPT LOAD.
    svc.clone()
        .oneshot(post(Some("\"warm\""), "A"))
        .await
        .unwrap();
    svc.clone()
        .oneshot(post(Some("\"warm\""), "A"))
        .await
        .unwrap();
    n.store(0, Ordering::SeqCst);
    let first = svc
        .clone()
        .oneshot(post(Some("\"k1\""), "A"))
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    assert_eq!(n.swap(0, Ordering::SeqCst), 2, "begin + complete");
    let replay = svc
        .clone()
        .oneshot(post(Some("\"k1\""), "A"))
        .await
        .unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(n.swap(0, Ordering::SeqCst), 1, "begin only");
    let get = Request::get("/orders")
        .header("idempotency-key", "\"k1\"")
        .body(Full::new(Bytes::new()))
        .unwrap();
    svc.oneshot(get).await.unwrap();
    assert_eq!(
        n.load(Ordering::SeqCst),
        0,
        "pass-through never touches Redis"
    );
}

#[tokio::test]
async fn redis_unreachable_is_503_and_handler_never_runs() {
    let client = redis::Client::open("redis://127.0.0.1:1").unwrap();
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(0)
        .set_connection_timeout(Some(Duration::from_millis(200)))
        .set_response_timeout(Some(Duration::from_millis(200)));
    let c = ConnectionManager::new_lazy_with_config(client, config).unwrap();
    let h = Handler::new();
    let mut svc = stack(
        IdempotencyLayer::new(RedisStore::new(c, prefix("down"))),
        &h,
    );
    let a = send(&mut svc, post(Some("\"k1\""), "A")).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.headers["retry-after"], "1");
    assert!(is_problem(&a));
    assert_eq!(h.calls(), 0);
}

/// A TCP proxy to Redis that the test can cut (dropping every connection and refusing new
/// ones) and restore, so a fault never touches the shared Redis itself.
struct Proxy {
    addr: std::net::SocketAddr,
    cut: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c, k) = (cut.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut down, _)) = listener.accept().await else {
                    return;
                };
                if c.load(Ordering::SeqCst) {
                    drop(down);
                    continue;
                }
                k.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                }));
            }
        });
        Self {
            addr,
            cut,
            conns,
            accept,
        }
    }
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }
    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// Issue #15: the connection to Redis drops between `begin` and `complete`. The caller gets
/// the handler's response, retries meanwhile get 503 or 409, and once Redis is reachable
/// again the background write lands and retries replay: the handler ran once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_connection_drop_between_begin_and_complete_never_reexecutes() {
    let Some(direct) = conn().await else { return };
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let info = redis::Client::open(url.as_str()).unwrap();
    let upstream = match info.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, port) => tokio::net::lookup_host((host.as_str(), *port))
            .await
            .unwrap()
            .next()
            .unwrap(),
        other => panic!("needs a TCP Redis, got {other:?}"),
    };
    let proxy = Proxy::start(upstream).await;
    let client = redis::Client::open(format!("redis://{}", proxy.addr)).unwrap();
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_response_timeout(Some(Duration::from_millis(500)))
        .set_connection_timeout(Some(Duration::from_millis(500)));
    let via_proxy = ConnectionManager::new_with_config(client, config)
        .await
        .unwrap();
    let p = prefix("drop");
    let store = RedisStore::new(via_proxy, p.clone());
    let h = Handler::new();
    h.0.gated.store(true, Ordering::SeqCst);
    let log = palisade_test::EventRecorder::new();
    let layer = IdempotencyLayer::new(store.clone())
        .global_scope()
        .lease(Duration::from_secs(10))
        .on_event(log.on());
    let svc = ServiceBuilder::new()
        .layer(HandleRejectionsLayer::new())
        .layer(layer)
        .service(h.clone());
    let first = tokio::spawn(svc.clone().oneshot(post(Some("\"k1\""), "A")));
    while h.calls() < 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The lock is in Redis; now the connection drops before `complete`.
    proxy.cut();
    h.0.gate.add_permits(1);
    let a = first.await.unwrap().unwrap();
    assert_eq!(
        a.status(),
        StatusCode::CREATED,
        "the caller gets the response"
    );
    assert!(
        log.events::<palisade_idempotency::IdempotencyEvent>()
            .contains(&palisade_idempotency::IdempotencyEvent::StoreFailed {
                instance: "idempotency".into()
            })
    );
    h.0.gated.store(false, Ordering::SeqCst);
    let during = svc
        .clone()
        .oneshot(post(Some("\"k1\""), "A"))
        .await
        .unwrap();
    assert!(
        matches!(during.status().as_u16(), 503 | 409),
        "{}",
        during.status()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.restore();
    let mut replayed_at = None;
    for i in 0..100 {
        let r = svc
            .clone()
            .oneshot(post(Some("\"k1\""), "A"))
            .await
            .unwrap();
        match r.status().as_u16() {
            503 | 409 => tokio::time::sleep(Duration::from_millis(100)).await,
            201 => {
                assert_eq!(r.headers()["idempotent-replayed"], "true");
                replayed_at = Some(i);
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(replayed_at.is_some(), "the stored response never arrived");
    assert_eq!(h.calls(), 1, "never a second execution");
    let key = store.redis_key(&palisade_idempotency::scope::store_key(&(), "k1"));
    let mut direct = direct;
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut direct)
        .await
        .unwrap();
}

#[tokio::test]
async fn redis_lock_keys_are_escaped_and_fences_expire() {
    let Some(mut c) = conn().await else { return };
    let p = prefix("fence");
    let lock = RedisLock::new(c.clone(), p.clone());
    let (k, fence) = lock.keys("a}b{c");
    assert_eq!(k, format!("{p}{{a%7Db%7Bc}}"));
    assert_eq!(fence, format!("{k}:fence"));
    let lease = Duration::from_millis(300);
    let t1 = lock.acquire("a}b{c", lease).await.unwrap().unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&fence)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        pttl > 0 && pttl <= 300,
        "fence key expires with the lease: {pttl}"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&k)
        .arg(&fence)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(exists, 0, "nothing outlives the lock");
    let t2 = lock.acquire("a}b{c", lease).await.unwrap().unwrap();
    assert!(t2 > t1, "tokens still grow after the fence expired");
    assert!(lock.release("a}b{c", t2).await.unwrap());
    let _: () = redis::cmd("DEL")
        .arg(&k)
        .arg(&fence)
        .query_async(&mut c)
        .await
        .unwrap();
}
