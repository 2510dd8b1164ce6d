//! Test support: upstream servers in the test process, the gateway binary as a child
//! process, and a small client. Every wait is bounded.

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;

/// The longest any single step may take.
pub(crate) const STEP: Duration = Duration::from_secs(10);

/// Runs `f` with a bound, failing the test instead of hanging.
pub(crate) async fn bounded<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(STEP, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// What an upstream saw of one request.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) path_and_query: String,
    pub(crate) headers: HeaderMap,
    pub(crate) version: http::Version,
}

/// An upstream server in the test process.
pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    pub(crate) seen: Arc<Mutex<Vec<Seen>>>,
    /// Status to answer with (200 by default).
    pub(crate) status: Arc<AtomicU16>,
    /// Delay before answering, in milliseconds.
    pub(crate) delay_ms: Arc<AtomicU64>,
    pub(crate) hits: Arc<AtomicUsize>,
}

impl Upstream {
    pub(crate) async fn start(name: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let hits = Arc::new(AtomicUsize::new(0));
        let (s, st, d, h) = (seen.clone(), status.clone(), delay_ms.clone(), hits.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (s, st, d, h) = (s.clone(), st.clone(), d.clone(), h.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (s, st, d, h) = (s.clone(), st.clone(), d.clone(), h.clone());
                        async move {
                            if req.uri().path() == "/health" {
                                let code = st.load(Ordering::Relaxed);
                                let mut res = Response::new(Full::new(Bytes::from_static(b"ok")));
                                *res.status_mut() = StatusCode::from_u16(code).unwrap();
                                return Ok::<_, Infallible>(res);
                            }
                            h.fetch_add(1, Ordering::Relaxed);
                            s.lock().unwrap().push(Seen {
                                path_and_query: req
                                    .uri()
                                    .path_and_query()
                                    .map(ToString::to_string)
                                    .unwrap_or_default(),
                                headers: req.headers().clone(),
                                version: req.version(),
                            });
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(http_body_util::Collected::to_bytes)
                                .unwrap_or_default();
                            let delay = d.load(Ordering::Relaxed);
                            if delay > 0 {
                                tokio::time::sleep(Duration::from_millis(delay)).await;
                            }
                            let text = format!("{name} got {} bytes", body.len());
                            let mut res = Response::new(Full::new(Bytes::from(text)));
                            *res.status_mut() =
                                StatusCode::from_u16(st.load(Ordering::Relaxed)).unwrap();
                            res.headers_mut()
                                .insert("x-upstream", name.parse().unwrap());
                            res.headers_mut()
                                .insert("keep-alive", "timeout=5".parse().unwrap());
                            res.headers_mut()
                                .insert("x-internal", "secret".parse().unwrap());
                            Ok::<_, Infallible>(res)
                        }
                    });
                    let _ = Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            seen,
            status,
            delay_ms,
            hits,
        }
    }

    pub(crate) fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the upstream saw no request")
    }

    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }
}

/// The gateway binary, killed when dropped.
pub(crate) struct Gateway {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) admin: SocketAddr,
    dir: TempDir,
}

/// A temporary directory removed when dropped.
pub(crate) struct TempDir(pub(crate) std::path::PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "palisade-gateway-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_palisade-gateway");

/// A config with ephemeral listener and admin ports, followed by `rest`.
pub(crate) fn config(limits: &str, rest: &str) -> String {
    format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\nlimits = {{ {limits} }}\n\n[admin]\naddress = \"127.0.0.1:0\"\n\n{rest}"
    )
}

impl Gateway {
    /// Starts the binary on `config` and waits until it prints its addresses.
    pub(crate) fn start(config: &str) -> Self {
        Self::start_with(config, &[], false)
    }

    /// Like [`start`](Self::start), with more arguments; with `capture_logs`, stderr goes to
    /// [`logs`](Self::logs) and `RUST_LOG` is `info`.
    pub(crate) fn start_with(config: &str, args: &[&str], capture_logs: bool) -> Self {
        let dir = TempDir::new();
        let path = dir.0.join("gateway.toml");
        std::fs::write(&path, config).unwrap();
        let stderr = if capture_logs {
            Stdio::from(std::fs::File::create(dir.0.join("stderr.log")).unwrap())
        } else {
            Stdio::inherit()
        };
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&path)
            .args(args)
            .env("RUST_LOG", if capture_logs { "info" } else { "warn" })
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let (mut addr, mut admin) = (None, None);
            while let Some(Ok(line)) = lines.next() {
                if let Some(a) = line.strip_prefix("palisade-gateway listening on http://") {
                    addr = a.parse::<SocketAddr>().ok();
                }
                if let Some(a) = line.strip_prefix("palisade-gateway admin on http://") {
                    admin = a.parse::<SocketAddr>().ok();
                }
                if let (Some(a), Some(b)) = (addr, admin) {
                    let _ = tx.send((a, b));
                    addr = None;
                }
            }
        });
        let Ok((addr, admin)) = rx.recv_timeout(STEP) else {
            let _ = child.kill();
            panic!("the gateway did not start on:\n{config}");
        };
        Self {
            child,
            addr,
            admin,
            dir,
        }
    }

    /// What the gateway wrote to stderr so far (started with `capture_logs`).
    pub(crate) fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("stderr.log")).unwrap_or_default()
    }

    /// The config file the gateway was started with (rewrite it, then `POST /reload`).
    pub(crate) fn config_path(&self) -> std::path::PathBuf {
        self.dir.0.join("gateway.toml")
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// Sends SIGTERM.
    pub(crate) fn terminate(&self) {
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// Waits (bounded) for the process to exit.
    pub(crate) async fn wait_exit(&mut self) -> std::process::ExitStatus {
        for _ in 0..200 {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the gateway did not exit");
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response, read whole.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

pub(crate) fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// Sends `req` through a fresh client, bounded.
pub(crate) async fn send(req: Request<Full<Bytes>>) -> Answer {
    bounded("request", async {
        let res = client().request(req).await.expect("request failed");
        let (parts, body) = res.into_parts();
        let body = body
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    })
    .await
}

pub(crate) async fn get(url: &str) -> Answer {
    send(Request::get(url).body(Full::default()).unwrap()).await
}

/// A `POST` with an empty body (the admin actions).
pub(crate) async fn post(url: &str) -> Answer {
    send(Request::post(url).body(Full::default()).unwrap()).await
}

/// A `GET` with these headers.
pub(crate) async fn get_with(url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req.body(Full::<Bytes>::default()).unwrap()).await
}
