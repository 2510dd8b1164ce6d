//! Per-route Palisade stacks from one policy file (`examples/config.toml`), served by axum.
//!
//! ```text
//! cargo run --example config --features policy,toggle,traffic [-- my.toml]   # on :3000
//! ```
//!
//! The file says which layers each route gets (composed in the canonical order, checked,
//! reloaded on change); this program brings the handlers, the flags and the server.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, StatusCode};
use axum::routing::{get, post};
use palisade::BoxError;
use palisade::policy::{Loader, PolicyHandle, PolicyService};
use palisade::toggle::FileProvider;
use palisade::traffic::Split;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::sleep;
use tower::Layer;

/// Counts `/pay` executions, to show that a replayed payment runs once.
pub(crate) static CHARGES: AtomicUsize = AtomicUsize::new(0);

async fn pay() -> (StatusCode, String) {
    let n = CHARGES.fetch_add(1, Ordering::SeqCst) + 1;
    (StatusCode::CREATED, format!("{{\"charge\":\"ch_{n}\"}}"))
}

/// The policy file at `path` (flags from `flags.json` beside it) over the app's handlers.
pub(crate) fn load(path: &Path) -> Result<(PolicyHandle, PolicyService<Router>), BoxError> {
    let flags = FileProvider::open(path.with_file_name("flags.json"))?;
    let handle = PolicyHandle::from_path(Loader::new().flags(flags), path)?;
    let (checkout, _) = Split::builder()
        .arm("v1", get(|| async { "checkout v1" }))
        .arm("v2", get(|| async { "checkout v2" }))
        .weights([90, 10])
        .response_header(HeaderName::from_static("x-served-by"))
        .seed(7)
        .build()?;
    let app = Router::new()
        .route("/pay", post(pay))
        .route("/search", get(|| sleep(Duration::from_millis(400)))) // > its 250 ms
        .route("/beta", get(|| async { "beta" }))
        .route_service("/checkout", checkout);
    Ok((handle.clone(), handle.layer().layer(app)))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let file = std::env::args().nth(1);
    let (handle, app) = load(Path::new(file.as_deref().unwrap_or("examples/config.toml")))?;
    handle.watch_file(Duration::from_secs(1));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    let app = axum::ServiceExt::<Request>::into_make_service(app);
    Ok(axum::serve(listener, app).await?)
}
