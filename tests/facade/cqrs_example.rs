//! The CQRS example: commands reach the write side, reads the read side (`x-served-by`), a
//! refused command is a 422 problem, and the projection serves what the commands appended.
#![cfg(all(feature = "workflow", feature = "traffic"))]

#[allow(dead_code, unreachable_pub)]
#[path = "../../examples/cqrs.rs"]
mod example;

use std::time::Duration;

use axum::http::StatusCode;

#[tokio::test]
async fn reads_and_writes_go_to_their_sides() {
    let app = example::app().unwrap();

    let (status, arm, body) = example::send(&app, "POST", "/accounts/bob/deposit/100").await;
    assert_eq!(
        (status, arm.as_str(), body.as_str()),
        (StatusCode::ACCEPTED, "write", "version 1")
    );
    let (status, arm, _) = example::send(&app, "POST", "/accounts/bob/withdraw/500").await;
    assert_eq!(
        (status, arm.as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "write")
    );
    // A read path sent with a write method goes to the write side, which has no such route.
    let (status, arm, _) = example::send(&app, "POST", "/accounts/bob").await;
    assert_eq!((status, arm.as_str()), (StatusCode::NOT_FOUND, "write"));

    // The read side answers from the projection once it has caught up.
    let mut seen = None;
    for _ in 0..100 {
        let (status, arm, body) = example::send(&app, "GET", "/accounts/bob").await;
        assert_eq!(arm, "read");
        if status == StatusCode::OK {
            seen = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen.as_deref(), Some("100"));
}
