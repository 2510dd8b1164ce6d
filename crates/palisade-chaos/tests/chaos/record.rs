//! Traffic record/replay: redaction, sampling, the body bound, the writer's queue, timing,
//! and a round trip against a changed service.

use std::convert::Infallible;
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use palisade_chaos::record::{Exchange, REDACTED, RecordLayer, read_recording};
use palisade_chaos::replay::{Difference, Pace, ReplayOptions, replay};
use serde_json::json;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

/// What the recorded service receives.
type In = Request<palisade_chaos::record::RecordBody<Full<Bytes>>>;

/// An in-memory file.
#[derive(Clone, Default)]
struct Memory(Arc<Mutex<Vec<u8>>>);

impl Write for Memory {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Memory {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
    fn exchanges(&self) -> Vec<Exchange> {
        let mut all = read_recording(self.text().as_bytes()).unwrap();
        all.sort_by_key(|e| e.seq);
        all
    }
}

fn json_response(value: &serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .header("content-type", "application/json")
        .header("set-cookie", "session=abc")
        .body(Full::new(Bytes::from(value.to_string())))
        .unwrap()
}

/// Sends `req` through `svc` and reads the whole response body.
async fn send<S, B>(svc: &mut S, req: Request<Full<Bytes>>) -> (u16, Bytes)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    let status = res.status().as_u16();
    (status, res.into_body().collect().await.unwrap().to_bytes())
}

fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .uri(uri)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn secrets_are_redacted_and_only_chosen_headers_kept() {
    let file = Memory::default();
    let rec = RecordLayer::to_writer(file.clone(), 16)
        .unwrap()
        .redact(HeaderName::from_static("x-api-key"));
    let handle = rec.handle();
    let mut svc = rec.layer(service_fn(|_req: In| async {
        Ok::<_, Infallible>(json_response(&json!({"ok": true})))
    }));
    let req = Request::builder()
        .uri("/a?q=1")
        .header("authorization", "Bearer t0ken")
        .header("cookie", "sid=c00kie")
        .header("proxy-authorization", "Basic pr0xy")
        .header("x-api-key", "k3y")
        .header("x-trace", "t-1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(&mut svc, req).await;
    handle.flush().await.unwrap();
    let text = file.text();
    for secret in ["t0ken", "c00kie", "pr0xy", "k3y", "session=abc"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let ex = &file.exchanges()[0];
    assert_eq!(
        (ex.method.as_str(), ex.uri.as_str(), ex.status),
        ("GET", "/a?q=1", Some(200))
    );
    assert_eq!(
        ex.request.headers,
        [
            ("authorization", REDACTED),
            ("cookie", REDACTED),
            ("proxy-authorization", REDACTED),
            ("x-api-key", REDACTED),
            ("x-trace", "t-1"),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
    );
    assert_eq!(ex.response.header("set-cookie"), Some(REDACTED));
    assert_eq!(ex.response.header("content-type"), Some("application/json"));
    assert_eq!(ex.response.body.as_deref(), Some(r#"{"ok":true}"#));

    // Only the listed headers, redaction still applied.
    let file = Memory::default();
    let rec = RecordLayer::to_writer(file.clone(), 16)
        .unwrap()
        .only_headers([
            http::header::AUTHORIZATION,
            HeaderName::from_static("x-trace"),
        ]);
    let handle = rec.handle();
    let mut svc = rec.layer(service_fn(|_req: In| async {
        Ok::<_, Infallible>(json_response(&json!(1)))
    }));
    let req = Request::builder()
        .header("authorization", "Bearer t0ken")
        .header("x-trace", "t-2")
        .header("x-other", "o")
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(&mut svc, req).await;
    handle.flush().await.unwrap();
    let ex = &file.exchanges()[0];
    assert_eq!(
        ex.request.headers,
        [("authorization", REDACTED), ("x-trace", "t-2")]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
    );
    assert!(ex.response.headers.is_empty());
}

#[tokio::test]
async fn sampling_is_seeded_and_counted() {
    async fn run(seed: u64) -> (Vec<String>, palisade_chaos::record::RecordStats) {
        let file = Memory::default();
        let rec = RecordLayer::to_writer(file.clone(), 2048)
            .unwrap()
            .sample(0.3)
            .seed(seed);
        let handle = rec.handle();
        let mut svc = rec.layer(service_fn(|_req: In| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        }));
        for i in 0..1000 {
            send(&mut svc, get(&format!("/{i}"))).await;
        }
        handle.flush().await.unwrap();
        let uris = file.exchanges().into_iter().map(|e| e.uri).collect();
        (uris, handle.stats())
    }
    let (a, stats) = run(42).await;
    assert!((250..350).contains(&a.len()), "{} sampled", a.len());
    assert_eq!(stats.sampled, a.len() as u64);
    assert_eq!(stats.written, a.len() as u64);
    assert_eq!(stats.sampled + stats.unsampled, 1000);
    assert_eq!(stats.dropped, 0);
    let (b, _) = run(42).await;
    assert_eq!(a, b, "the same seed records the same requests");
    let (c, _) = run(43).await;
    assert_ne!(a, c);

    // 0 records nothing, and writes nothing.
    let file = Memory::default();
    let rec = RecordLayer::to_writer(file.clone(), 4).unwrap().sample(0.0);
    let handle = rec.handle();
    let mut svc = rec.layer(service_fn(|_req: In| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    }));
    send(&mut svc, get("/")).await;
    handle.flush().await.unwrap();
    assert_eq!(file.text(), "");
    assert_eq!((handle.stats().sampled, handle.stats().unsampled), (0, 1));
}

#[tokio::test]
async fn bodies_are_bounded_but_pass_through_whole() {
    let file = Memory::default();
    let rec = RecordLayer::to_writer(file.clone(), 16)
        .unwrap()
        .max_body(10);
    let handle = rec.handle();
    let mut svc = rec.layer(service_fn(|req: In| async move {
        // The handler reads the whole request body and echoes it twice.
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let echo = [&body[..], &body[..]].concat();
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(echo))))
    }));
    let req = Request::builder()
        .method("POST")
        .uri("/echo")
        .body(Full::new(Bytes::from("0123456789abcdef")))
        .unwrap();
    let (status, body) = send(&mut svc, req).await;
    assert_eq!((status, body.len()), (200, 32));
    // Non-UTF-8 bytes are written as hex.
    let req = Request::builder()
        .method("POST")
        .body(Full::new(Bytes::from_static(&[0xff, 0xfe])))
        .unwrap();
    send(&mut svc, req).await;
    handle.flush().await.unwrap();
    let ex = file.exchanges();
    assert_eq!(ex[0].request.body.as_deref(), Some("0123456789"));
    assert_eq!(
        (ex[0].request.body_len, ex[0].request.truncated),
        (16, true)
    );
    assert_eq!(ex[0].response.body.as_deref(), Some("0123456789"));
    assert_eq!(
        (ex[0].response.body_len, ex[0].response.truncated),
        (32, true)
    );
    assert_eq!(ex[1].request.body_hex.as_deref(), Some("fffe"));
    assert_eq!(ex[1].response.body_hex.as_deref(), Some("fffefffe"));
    assert!(!ex[1].request.truncated && !ex[1].response.truncated);

    // 0: lengths only.
    let file = Memory::default();
    let rec = RecordLayer::to_writer(file.clone(), 16)
        .unwrap()
        .max_body(0);
    let handle = rec.handle();
    let mut svc = rec.layer(service_fn(|_req: In| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("abc"))))
    }));
    send(&mut svc, get("/")).await;
    handle.flush().await.unwrap();
    let ex = &file.exchanges()[0];
    assert_eq!(
        (ex.response.body.as_deref(), ex.response.body_len),
        (None, 3)
    );
}

/// A file whose first write blocks until released.
struct Stuck {
    entered: mpsc::Sender<()>,
    release: Arc<Mutex<mpsc::Receiver<()>>>,
    first: bool,
    out: Memory,
}

impl Write for Stuck {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if std::mem::take(&mut self.first) {
            self.entered.send(()).unwrap();
            self.release.lock().unwrap().recv().unwrap();
        }
        self.out.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_instead_of_blocking() {
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let out = Memory::default();
    let stuck = Stuck {
        entered: entered_tx,
        release: Arc::new(Mutex::new(release_rx)),
        first: true,
        out: out.clone(),
    };
    let rec = RecordLayer::to_writer(stuck, 1).unwrap();
    let handle = rec.handle();
    let mut svc = rec.layer(service_fn(|_req: In| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    }));
    send(&mut svc, get("/0")).await;
    // The writer is now stuck writing /0: one more fits in the queue, three are dropped,
    // and none of the requests waited.
    entered.recv_timeout(Duration::from_secs(5)).unwrap();
    let started = std::time::Instant::now();
    for i in 1..5 {
        send(&mut svc, get(&format!("/{i}"))).await;
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(handle.stats().dropped, 3);
    release.send(()).unwrap();
    handle.flush().await.unwrap();
    let stats = handle.stats();
    assert_eq!((stats.sampled, stats.written, stats.dropped), (5, 2, 3));
    let uris: Vec<String> = read_recording(out.text().as_bytes())
        .unwrap()
        .into_iter()
        .map(|e| e.uri)
        .collect();
    assert_eq!(uris, ["/0", "/1"]);
}

#[tokio::test(start_paused = true)]
async fn timing_and_errors_are_recorded() {
    let file = Memory::default();
    let rec = RecordLayer::to_writer(file.clone(), 16).unwrap();
    let handle = rec.handle();
    let mut svc = rec.layer(service_fn(|req: In| async move {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if req.uri().path() == "/fail" {
            return Err("upstream reset");
        }
        Ok(Response::new(Full::new(Bytes::new())))
    }));
    tokio::time::sleep(Duration::from_millis(100)).await;
    send(&mut svc, get("/ok")).await;
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(get("/fail"))
        .await
        .unwrap_err();
    assert_eq!(err, "upstream reset");
    handle.flush().await.unwrap();
    let ex = file.exchanges();
    assert_eq!(
        (ex[0].at_us, ex[0].duration_us, ex[0].status),
        (100_000, 250_000, Some(200))
    );
    assert_eq!(
        (ex[1].at_us, ex[1].duration_us, ex[1].status),
        (350_000, 250_000, None)
    );
    assert_eq!(ex[1].error.as_deref(), Some("upstream reset"));
}

#[tokio::test(start_paused = true)]
async fn round_trip_against_a_changed_service_shows_exactly_the_changes() {
    let file = Memory::default();
    let rec = RecordLayer::to_writer(file.clone(), 64).unwrap();
    let handle = rec.handle();
    // v1: a price list, an echo of the request body, a text page, and a 404.
    let v1 = rec.layer(service_fn(|req: In| async move {
        let path = req.uri().path().to_owned();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        Ok::<_, Infallible>(match path.as_str() {
            "/prices" => json_response(
                &json!({"items": [{"sku": "a", "price": 5}, {"sku": "b", "price": 7}], "at": 1}),
            ),
            "/echo" => Response::new(Full::new(body)),
            "/page" => Response::builder()
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from("hello")))
                .unwrap(),
            _ => Response::builder()
                .status(404)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        })
    }));
    let mut v1 = v1;
    send(&mut v1, get("/prices")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let post = |body: &'static str| {
        Request::builder()
            .method("POST")
            .uri("/echo")
            .header("authorization", "Bearer old")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    send(&mut v1, post(r#"{"n":1}"#)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(&mut v1, get("/page")).await;
    send(&mut v1, get("/missing")).await;
    handle.flush().await.unwrap();
    let recording = file.exchanges();
    assert_eq!(recording.len(), 4);

    // v2: b's price changed, `at` changed (ignored), a field added; the echo is the same
    // (it must receive the recorded body and the configured authorization); the page's
    // type and text changed; /missing now answers 410.
    let seen_auth = Arc::new(Mutex::new(Vec::new()));
    let calls_at = Arc::new(Mutex::new(Vec::new()));
    let (auth, at) = (seen_auth.clone(), calls_at.clone());
    let start = Instant::now();
    let v2 = service_fn(move |req: Request<Full<Bytes>>| {
        let (auth, at) = (auth.clone(), at.clone());
        async move {
            at.lock().unwrap().push(start.elapsed());
            auth.lock()
                .unwrap()
                .push(req.headers().get("authorization").cloned());
            let path = req.uri().path().to_owned();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            Ok::<_, Infallible>(match path.as_str() {
                "/prices" => json_response(
                    &json!({"items": [{"sku": "a", "price": 5}, {"sku": "b", "price": 8}], "at": 2, "currency": "EUR"}),
                ),
                "/echo" => Response::new(Full::new(body)),
                "/page" => Response::builder()
                    .header("content-type", "text/html")
                    .body(Full::new(Bytes::from("<p>hello")))
                    .unwrap(),
                _ => Response::builder()
                    .status(410)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            })
        }
    });
    let options = ReplayOptions::new()
        .pace(Pace::Recorded)
        .ignore_field("/at")
        .set_header(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer new"),
        );
    let report = replay(&recording, v2, &options).await;

    // Sent at the recorded pace, with the fresh credentials, never the redacted value.
    assert_eq!(
        *calls_at.lock().unwrap(),
        [0, 100, 300, 300].map(Duration::from_millis)
    );
    assert!(
        seen_auth
            .lock()
            .unwrap()
            .iter()
            .all(|a| a.as_ref().unwrap() == "Bearer new")
    );

    let diffs: Vec<Vec<String>> = report
        .outcomes
        .iter()
        .map(|o| o.differences.iter().map(ToString::to_string).collect())
        .collect();
    assert_eq!(
        diffs,
        [
            vec![
                "field /items/1/price: 7 -> 8".to_owned(),
                "field /currency: (none) -> \"EUR\"".to_owned(),
            ],
            vec![],
            vec![
                "header content-type: text/plain -> text/html".to_owned(),
                "body differs (5 -> 8 bytes)".to_owned(),
            ],
            vec!["status 404 -> 410".to_owned()],
        ]
    );
    assert!(matches!(
        report.outcomes[3].differences[0],
        Difference::Status {
            expected: Some(404),
            actual: 410
        }
    ));
    let summary = report.summary();
    assert_eq!(
        (
            summary.total,
            summary.same,
            summary.different,
            summary.failed
        ),
        (4, 1, 3, 0)
    );
    let table = report.to_string();
    assert!(
        table.ends_with("4 replayed: 1 same, 3 different, 0 failed"),
        "{table}"
    );
    assert!(table.contains("404>410"), "{table}");
    assert!(table.lines().nth(2).unwrap().contains("200=200"), "{table}");

    // The same service replays clean, as fast as it allows.
    let same = Arc::new(AtomicUsize::new(0));
    let n = same.clone();
    let v1_again = service_fn(move |req: Request<Full<Bytes>>| {
        n.fetch_add(1, Ordering::Relaxed);
        async move {
            let path = req.uri().path().to_owned();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            Ok::<_, Infallible>(match path.as_str() {
                "/prices" => json_response(
                    &json!({"at": 1, "items": [{"sku": "a", "price": 5}, {"sku": "b", "price": 7}]}),
                ),
                "/echo" => Response::new(Full::new(body)),
                "/page" => Response::builder()
                    .header("content-type", "text/plain")
                    .body(Full::new(Bytes::from("hello")))
                    .unwrap(),
                _ => Response::builder()
                    .status(404)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            })
        }
    });
    let started = Instant::now();
    let report = replay(&recording, v1_again, &ReplayOptions::new()).await;
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert!(report.is_clean(), "{report}");
    assert_eq!(same.load(Ordering::Relaxed), 4);

    // A failing candidate is reported, not a panic.
    let failing = service_fn(|_req: Request<Full<Bytes>>| async {
        Err::<Response<Full<Bytes>>, _>("connection refused")
    });
    let report = replay(&recording[..1], failing, &ReplayOptions::new()).await;
    assert_eq!(
        report.outcomes[0].differences,
        [Difference::Failed("connection refused".into())]
    );
    assert_eq!(report.summary().failed, 1);
}

/// A JSON answer naming the request's path, as recorded and as replayed.
fn path_json(path: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json!({ "path": path }).to_string())))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn fast_replay_keeps_up_to_its_concurrency_in_flight_and_the_recorded_order() {
    use palisade_test::ScriptedService;
    use palisade_test::scripted::{delay, ms, respond};

    let file = Memory::default();
    let rec = RecordLayer::to_writer(file.clone(), 16).unwrap();
    let handle = rec.handle();
    let mut v1 = rec.layer(service_fn(|req: In| async move {
        Ok::<_, Infallible>(path_json(req.uri().path()))
    }));
    for i in 0..8 {
        send(&mut v1, get(&format!("/n/{i}"))).await;
    }
    handle.flush().await.unwrap();
    let recording = file.exchanges();
    assert_eq!(recording.len(), 8);

    // Each replayed call takes 100 ms; the candidate answers as recorded.
    let candidate = || {
        ScriptedService::otherwise(
            delay(ms(100)).then(respond(|seen| Ok(path_json(seen.uri.path())))),
        )
    };
    for (n, rounds) in [
        (None, 8),
        (Some(0), 8),
        (Some(1), 8),
        (Some(3), 3),
        (Some(8), 1),
        (Some(100), 1),
    ] {
        let v2 = candidate();
        let mut options = ReplayOptions::new();
        if let Some(n) = n {
            options = options.concurrency(n);
        }
        let start = Instant::now();
        let report = replay(&recording, v2.clone(), &options).await;
        assert_eq!(start.elapsed(), ms(100) * rounds, "concurrency {n:?}");
        assert_eq!(
            v2.max_in_flight(),
            n.unwrap_or(1).clamp(1, 8),
            "concurrency {n:?}"
        );
        assert_eq!(v2.calls(), 8);
        assert_eq!(report.summary().same, 8, "{report}");
        let uris: Vec<_> = report.outcomes.iter().map(|o| o.uri.as_str()).collect();
        assert_eq!(uris, (0..8).map(|i| format!("/n/{i}")).collect::<Vec<_>>());
        assert!(report.outcomes.iter().all(|o| o.replayed == ms(100)));
    }
}

#[tokio::test(start_paused = true)]
async fn concurrent_replay_reports_failures_in_place() {
    use palisade_test::ScriptedService;
    use palisade_test::scripted::{delay, error, ms};

    let mut recording = Vec::new();
    let file = Memory::default();
    let rec = RecordLayer::to_writer(file.clone(), 16).unwrap();
    let handle = rec.handle();
    let mut v1 = rec.layer(service_fn(|req: In| async move {
        Ok::<_, Infallible>(path_json(req.uri().path()))
    }));
    for i in 0..4 {
        send(&mut v1, get(&format!("/n/{i}"))).await;
    }
    handle.flush().await.unwrap();
    recording.extend(file.exchanges());
    recording[1].method = "NOT A METHOD".into();

    // The second sent request (the third exchange, as the second is never sent) fails slowly.
    let v2 = ScriptedService::new()
        .then(delay(ms(10)).then(palisade_test::scripted::respond(|seen| {
            Ok(path_json(seen.uri.path()))
        })))
        .then(delay(ms(50)).then(error("refused")))
        .then(delay(ms(10)).then(palisade_test::scripted::respond(|seen| {
            Ok(path_json(seen.uri.path()))
        })));
    let report = replay(&recording, v2.clone(), &ReplayOptions::new().concurrency(4)).await;
    assert_eq!(v2.calls(), 3);
    assert_eq!(v2.max_in_flight(), 3);
    let diffs: Vec<Vec<String>> = report
        .outcomes
        .iter()
        .map(|o| o.differences.iter().map(ToString::to_string).collect())
        .collect();
    assert_eq!(diffs[0], Vec::<String>::new());
    assert_eq!(diffs[3], Vec::<String>::new());
    assert_eq!(diffs[1].len(), 1);
    assert!(diffs[1][0].contains("NOT A METHOD"), "{:?}", diffs[1]);
    assert_eq!(diffs[2].len(), 1);
    assert!(diffs[2][0].contains("refused"), "{:?}", diffs[2]);
    assert_eq!(report.outcomes[2].replayed, ms(50));
}
