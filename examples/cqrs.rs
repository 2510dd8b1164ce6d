//! CQRS over one event store, through axum: a write side whose command endpoint appends
//! through a `CommandHandler` (a conflict or a refusal becomes a problem response), a read
//! side served from a projection that follows the store's global order, and palisade-traffic's
//! `Split` sending reads (`GET`, `HEAD`, `OPTIONS`) to the read side and everything else to the
//! write side (in production, two deployments; here two routers in one process). The arm that
//! answered is named in `x-served-by`.
//!
//! ```text
//! cargo run --example cqrs --features workflow,traffic
//! ```
//!
//! It drives the split in-process with `oneshot` and prints what it gets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderName;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use palisade::BoxError;
use palisade::traffic::{Rule, Split};
use palisade::workflow::projection::MemoryCheckpointStore;
use palisade::workflow::{
    Aggregate, AggregateRepository, Command, CommandHandler, MemoryEventStore, Projection,
    ProjectionRunner, RecordedEvent,
};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

#[derive(Default, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

#[derive(Serialize, Deserialize)]
enum AccountEvent {
    Deposited(u64),
    Withdrawn(u64),
}

enum AccountCommand {
    Deposit(u64),
    Withdraw(u64),
}

impl Aggregate for Account {
    type Event = AccountEvent;
    type Command = AccountCommand;
    type Error = palisade::rejection::AnyRejection;

    fn event_type(e: &AccountEvent) -> &'static str {
        match e {
            AccountEvent::Deposited(_) => "deposited",
            AccountEvent::Withdrawn(_) => "withdrawn",
        }
    }
    fn apply(&mut self, e: AccountEvent) {
        match e {
            AccountEvent::Deposited(n) => self.balance += n,
            AccountEvent::Withdrawn(n) => self.balance -= n,
        }
    }
    fn decide(&self, c: &AccountCommand) -> Result<Vec<AccountEvent>, Self::Error> {
        match *c {
            AccountCommand::Deposit(n) => Ok(vec![AccountEvent::Deposited(n)]),
            AccountCommand::Withdraw(n) if n <= self.balance => {
                Ok(vec![AccountEvent::Withdrawn(n)])
            }
            AccountCommand::Withdraw(_) => {
                Err(palisade::rejection::AnyRejection::new(InsufficientFunds))
            }
        }
    }
}

/// The domain's refusal, answered 422 like any Palisade rejection.
#[derive(Debug)]
struct InsufficientFunds;

impl std::fmt::Display for InsufficientFunds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the withdrawal exceeds the balance")
    }
}
impl std::error::Error for InsufficientFunds {}
impl palisade::rejection::Rejection for InsufficientFunds {
    fn kind(&self) -> &'static str {
        "insufficient_funds"
    }
    fn status(&self) -> StatusCode {
        StatusCode::UNPROCESSABLE_ENTITY
    }
    fn grpc_code(&self) -> palisade::grpc::GrpcCode {
        palisade::grpc::GrpcCode::FailedPrecondition
    }
}

/// The read model: balances by account, fed by the projection runner.
#[derive(Clone, Default)]
struct Balances(Arc<Mutex<HashMap<String, u64>>>);

impl Projection for Balances {
    async fn apply(&mut self, event: &RecordedEvent) -> Result<(), BoxError> {
        let e: AccountEvent = serde_json::from_value(event.data.clone())?;
        let mut map = self.0.lock().unwrap();
        let b = map.entry(event.stream.clone()).or_default();
        match e {
            AccountEvent::Deposited(n) => *b += n,
            AccountEvent::Withdrawn(n) => *b -= n,
        }
        Ok(())
    }
}

#[derive(Clone)]
struct AppState {
    commands: CommandHandler<Account, MemoryEventStore>,
    balances: Balances,
}

async fn command(
    State(state): State<AppState>,
    Path((id, verb, amount)): Path<(String, String, u64)>,
) -> Response {
    let cmd = match verb.as_str() {
        "deposit" => AccountCommand::Deposit(amount),
        "withdraw" => AccountCommand::Withdraw(amount),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    match state.commands.oneshot(Command::new(id, cmd)).await {
        Ok(out) => (StatusCode::ACCEPTED, format!("version {}", out.version)).into_response(),
        // A conflict is a 409, a refusal whatever its rejection says (here 422).
        Err(err) => palisade::response::error_response(&*err, false).into_response(),
    }
}

async fn query(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.balances.0.lock().unwrap().get(&id) {
        Some(b) => b.to_string().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The write side and the read side behind one split: reads to `read`, the rest to `write`.
pub(crate) fn app() -> Result<Router, BoxError> {
    let store = MemoryEventStore::new();
    let balances = Balances::default();
    let state = AppState {
        commands: CommandHandler::new(AggregateRepository::new(store.clone())).retry_conflicts(3),
        balances: balances.clone(),
    };
    let mut runner =
        ProjectionRunner::new(store, balances, MemoryCheckpointStore::new(), "balances");
    tokio::spawn(async move { runner.run(Duration::from_millis(10)).await });

    let write = Router::new()
        .route("/accounts/{id}/{verb}/{amount}", post(command))
        .with_state(state.clone());
    let read = Router::new()
        .route("/accounts/{id}", get(query))
        .with_state(state);
    let (split, _handle) = Split::builder()
        .arm("write", write)
        .arm("read", read)
        .weights([100, 0]) // what no rule claims goes to the write side
        .rule(Rule::reads("read"))
        .response_header(HeaderName::from_static("x-served-by"))
        .build()?;
    Ok(Router::new().fallback_service(split))
}

/// Sends one request through `app`: status, the arm that answered, body.
pub(crate) async fn send(app: &Router, method: &str, uri: &str) -> (StatusCode, String, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let arm = res
        .headers()
        .get("x-served-by")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, arm, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let app = app()?;
    for (method, uri) in [
        ("POST", "/accounts/alice/deposit/100"),
        ("POST", "/accounts/alice/withdraw/30"),
        ("POST", "/accounts/alice/withdraw/500"),
    ] {
        let (status, arm, body) = send(&app, method, uri).await;
        println!("{method} {uri} -> {status} (x-served-by: {arm}) {body}");
    }
    tokio::time::sleep(Duration::from_millis(50)).await; // the projection catches up
    let (status, arm, body) = send(&app, "GET", "/accounts/alice").await;
    println!("GET /accounts/alice -> {status} (x-served-by: {arm}) {body}");
    assert_eq!(
        (status, arm.as_str(), body.as_str()),
        (StatusCode::OK, "read", "70")
    );
    Ok(())
}
