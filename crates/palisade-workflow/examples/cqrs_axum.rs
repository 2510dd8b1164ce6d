//! CQRS over one event store, through axum: a command endpoint that appends through a
//! `CommandHandler` (a conflict or a refusal becomes a problem response) and a query
//! endpoint served from a projection that follows the store's global order.
//!
//! ```text
//! cargo run -p palisade-workflow --example cqrs_axum
//! ```
//!
//! It drives the router in-process with `oneshot` and prints what it gets; put the two
//! routes behind palisade-traffic's CQRS split to send reads and writes to separate
//! deployments.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use palisade_core::BoxError;
use palisade_workflow::projection::MemoryCheckpointStore;
use palisade_workflow::{
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
    type Error = palisade_core::AnyRejection;

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
            AccountCommand::Withdraw(_) => Err(palisade_core::AnyRejection::new(InsufficientFunds)),
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
impl palisade_core::Rejection for InsufficientFunds {
    fn kind(&self) -> &'static str {
        "insufficient_funds"
    }
    fn status(&self) -> StatusCode {
        StatusCode::UNPROCESSABLE_ENTITY
    }
    fn grpc_code(&self) -> palisade_core::GrpcCode {
        palisade_core::GrpcCode::FailedPrecondition
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
        Err(err) => palisade_core::response::error_response(&*err, false).into_response(),
    }
}

async fn query(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.balances.0.lock().unwrap().get(&id) {
        Some(b) => b.to_string().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn send(app: &Router, method: &str, uri: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let store = MemoryEventStore::new();
    let balances = Balances::default();
    let state = AppState {
        commands: CommandHandler::new(AggregateRepository::new(store.clone())).retry_conflicts(3),
        balances: balances.clone(),
    };
    let mut runner =
        ProjectionRunner::new(store, balances, MemoryCheckpointStore::new(), "balances");
    tokio::spawn(async move { runner.run(Duration::from_millis(10)).await });

    let app = Router::new()
        .route("/accounts/{id}/{verb}/{amount}", post(command))
        .route("/accounts/{id}", get(query))
        .with_state(state);

    for (method, uri) in [
        ("POST", "/accounts/alice/deposit/100"),
        ("POST", "/accounts/alice/withdraw/30"),
        ("POST", "/accounts/alice/withdraw/500"),
    ] {
        let (status, body) = send(&app, method, uri).await;
        println!("{method} {uri} -> {status} {body}");
    }
    tokio::time::sleep(Duration::from_millis(50)).await; // the projection catches up
    let (status, body) = send(&app, "GET", "/accounts/alice").await;
    println!("GET /accounts/alice -> {status} {body}");
    assert_eq!((status, body.as_str()), (StatusCode::OK, "70"));
}
