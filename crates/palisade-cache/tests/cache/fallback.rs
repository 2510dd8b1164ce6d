//! `FallbackLayer`: chosen outcomes answered from a fallback, with an event per answer.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use palisade_cache::{FallbackEvent, FallbackLayer, FallbackReason};
use palisade_core::{BoxError, BulkheadFull, CircuitOpen, Listeners};
use palisade_test::EventRecorder;
use tower::{Layer, ServiceExt, service_fn};

fn inner(
    outcome: u8,
) -> impl tower::Service<
    Request<()>,
    Response = Response<Full<Bytes>>,
    Error = BoxError,
    Future = impl Send,
> + Clone {
    service_fn(move |_req: Request<()>| async move {
        match outcome {
            0 => Ok(Response::new(Full::new(Bytes::from_static(b"real")))),
            1 => Err::<_, BoxError>(CircuitOpen::new(None).into()),
            2 => Err(BulkheadFull::new(None).into()),
            3 => Err("plain failure".into()),
            _ => Ok(Response::builder()
                .status(503)
                .body(Full::new(Bytes::from_static(b"down")))
                .unwrap()),
        }
    })
}

async fn run(layer: &FallbackLayer, outcome: u8) -> Result<(StatusCode, Bytes), BoxError> {
    let res = layer
        .layer(inner(outcome))
        .oneshot(Request::new(()))
        .await?;
    let status = res.status();
    Ok((status, res.into_body().collect().await.unwrap().to_bytes()))
}

#[tokio::test]
async fn answers_only_the_chosen_rejection_kind() {
    let events = EventRecorder::new();
    let layer = FallbackLayer::fixed(StatusCode::OK, Bytes::from_static(b"cached default"))
        .on_rejection("circuit_open")
        .listeners(Listeners::new().on(events.on::<FallbackEvent>()));
    assert_eq!(
        run(&layer, 0).await.unwrap(),
        (StatusCode::OK, Bytes::from_static(b"real"))
    );
    assert_eq!(
        run(&layer, 1).await.unwrap(),
        (StatusCode::OK, Bytes::from_static(b"cached default"))
    );
    assert!(run(&layer, 2).await.unwrap_err().is::<BulkheadFull>());
    assert!(run(&layer, 3).await.is_err());
    assert_eq!(run(&layer, 4).await.unwrap().0, 503);
    let seen: Vec<_> = events
        .events::<FallbackEvent>()
        .into_iter()
        .map(|e| e.reason)
        .collect();
    assert_eq!(seen.len(), 1);
    assert!(matches!(
        &seen[0],
        FallbackReason::Error {
            kind: Some("circuit_open"),
            ..
        }
    ));
}

#[tokio::test]
async fn any_error_and_server_errors_with_a_closure() {
    let layer = FallbackLayer::new(|reason| {
        let text = match reason {
            FallbackReason::Error { kind, .. } => format!("error {}", kind.unwrap_or("other")),
            FallbackReason::Status(s) => format!("status {}", s.as_u16()),
            _ => String::new(),
        };
        Response::new(Bytes::from(text))
    })
    .on_any_error()
    .on_server_errors();
    assert_eq!(run(&layer, 2).await.unwrap().1, "error bulkhead_full");
    assert_eq!(run(&layer, 3).await.unwrap().1, "error other");
    assert_eq!(run(&layer, 4).await.unwrap().1, "status 503");
    assert_eq!(run(&layer, 0).await.unwrap().1, "real");
}

#[tokio::test]
async fn configuring_a_cloned_layer_leaves_the_clone_as_it_was() {
    // Used to panic ("configured before it is cloned"); now copy-on-write.
    let base = FallbackLayer::fixed(StatusCode::OK, Bytes::from_static(b"fallback"));
    let kept = base.clone();
    let any = base.on_any_error();
    assert_eq!(
        run(&any, 3).await.unwrap(),
        (StatusCode::OK, Bytes::from_static(b"fallback"))
    );
    // The clone made before was not changed: a plain error still goes through.
    assert!(run(&kept, 3).await.is_err());
}
