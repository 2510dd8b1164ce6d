//! [`replay`]: sends a recording to a candidate and compares its answers.

use std::future::Future;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use palisade_core::BoxError;
use tokio::time::Instant;
use tower_service::Service;

use crate::record::{Exchange, REDACTED};
use crate::replay::diff::{Difference, diff_json};
use crate::replay::options::{Pace, ReplayOptions};
use crate::replay::report::{ExchangeOutcome, ReplayReport};

/// Sends every exchange of `recording` to `service` (in recorded order, at the [`Pace`] of
/// `options`: one at a time, or up to [`ReplayOptions::concurrency`] at once with
/// [`Pace::Fast`]) and compares each answer with the recorded one: the status,
/// the chosen headers, and the body, field by field when both are JSON.
///
/// The request is rebuilt from the recording: method, URI (its path and query for a
/// candidate URL; see [`HttpTarget`](crate::replay::HttpTarget)), headers except redacted,
/// hop-by-hop, `host` and `content-length`, and the recorded body (only its first bytes if
/// the recording truncated it). A recorded body that was truncated is not compared. An
/// exchange whose method or URI does not parse is reported as failed without being sent.
pub async fn replay<S, B>(
    recording: &[Exchange],
    mut service: S,
    options: &ReplayOptions,
) -> ReplayReport
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    let mut order: Vec<&Exchange> = recording.iter().collect();
    order.sort_by_key(|e| (e.at_us, e.seq));
    if options.pace == Pace::Fast && options.concurrency > 1 {
        return concurrent(&order, service, options).await;
    }
    let first = order.first().map_or(0, |e| e.at_us);
    let start = Instant::now();
    let mut report = ReplayReport::default();
    for ex in order {
        if options.pace == Pace::Recorded {
            tokio::time::sleep_until(start + Duration::from_micros(ex.at_us - first)).await;
        }
        let mut outcome = outcome(ex);
        match request(ex, options) {
            Ok(req) => {
                let sent = Instant::now();
                let res = match std::future::poll_fn(|cx| service.poll_ready(cx)).await {
                    Ok(()) => read(service.call(req), options.max_body).await,
                    Err(e) => Err(e.into()),
                };
                outcome.replayed = sent.elapsed();
                finish(ex, res, options, &mut outcome);
            }
            Err(e) => outcome.differences.push(Difference::Failed(e)),
        }
        report.outcomes.push(outcome);
    }
    report
}

/// [`Pace::Fast`] with up to `options.concurrency` requests in flight.
async fn concurrent<S, B>(
    order: &[&Exchange],
    mut service: S,
    options: &ReplayOptions,
) -> ReplayReport
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    enum Step {
        Done(Done),
        Ready(Result<(), BoxError>),
        Finished,
    }
    let mut outcomes: Vec<ExchangeOutcome> = order.iter().map(|ex| outcome(ex)).collect();
    let mut pending = Vec::with_capacity(options.concurrency);
    let mut next = 0;
    let mut prepared: Option<Request<Full<Bytes>>> = None;
    loop {
        // The next exchange that can be sent; one whose request does not parse fails here.
        while prepared.is_none() && next < order.len() {
            match request(order[next], options) {
                Ok(req) => prepared = Some(req),
                Err(e) => {
                    outcomes[next].differences.push(Difference::Failed(e));
                    next += 1;
                }
            }
        }
        let step = std::future::poll_fn(|cx| {
            if let std::task::Poll::Ready(done) = poll_any(&mut pending, cx) {
                return std::task::Poll::Ready(Step::Done(done));
            }
            if prepared.is_some() && pending.len() < options.concurrency {
                if let std::task::Poll::Ready(r) = service.poll_ready(cx) {
                    return std::task::Poll::Ready(Step::Ready(r.map_err(Into::into)));
                }
            } else if prepared.is_none() && pending.is_empty() {
                return std::task::Poll::Ready(Step::Finished);
            }
            std::task::Poll::Pending
        })
        .await;
        match step {
            Step::Done((i, res, took)) => {
                outcomes[i].replayed = took;
                finish(order[i], res, options, &mut outcomes[i]);
            }
            Step::Ready(ready) => {
                let Some(req) = prepared.take() else { continue };
                let i = next;
                next += 1;
                match ready {
                    Ok(()) => {
                        let sent = Instant::now();
                        let call = read(service.call(req), options.max_body);
                        pending.push(Box::pin(async move {
                            let res = call.await;
                            (i, res, sent.elapsed())
                        }));
                    }
                    Err(e) => finish(order[i], Err(e), options, &mut outcomes[i]),
                }
            }
            Step::Finished => break,
        }
    }
    ReplayReport { outcomes }
}

/// An exchange's index, its answer and how long it took.
type Done = (usize, Result<(u16, HeaderMap, Bytes), BoxError>, Duration);

/// Polls every pending request; the first finished one, removed.
fn poll_any<F: Future<Output = Done>>(
    pending: &mut Vec<std::pin::Pin<Box<F>>>,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<Done> {
    for i in 0..pending.len() {
        if let std::task::Poll::Ready(done) = pending[i].as_mut().poll(cx) {
            drop(pending.swap_remove(i));
            return std::task::Poll::Ready(done);
        }
    }
    std::task::Poll::Pending
}

fn outcome(ex: &Exchange) -> ExchangeOutcome {
    ExchangeOutcome {
        seq: ex.seq,
        method: ex.method.clone(),
        uri: ex.uri.clone(),
        expected_status: ex.status,
        actual_status: None,
        recorded: Duration::from_micros(ex.duration_us),
        replayed: Duration::ZERO,
        differences: Vec::new(),
    }
}

/// Compares a replayed answer (or its failure) with the recording.
fn finish(
    ex: &Exchange,
    res: Result<(u16, HeaderMap, Bytes), BoxError>,
    options: &ReplayOptions,
    outcome: &mut ExchangeOutcome,
) {
    match res {
        Ok((status, headers, body)) => {
            outcome.actual_status = Some(status);
            compare(
                ex,
                status,
                &headers,
                &body,
                options,
                &mut outcome.differences,
            );
        }
        Err(e) => outcome.differences.push(Difference::Failed(e.to_string())),
    }
}

fn request(ex: &Exchange, options: &ReplayOptions) -> Result<Request<Full<Bytes>>, String> {
    let method = Method::from_bytes(ex.method.as_bytes())
        .map_err(|_| format!("bad recorded method {:?}", ex.method))?;
    let uri: Uri = ex
        .uri
        .parse()
        .map_err(|_| format!("bad recorded uri {:?}", ex.uri))?;
    let body = ex
        .request
        .body_bytes()
        .ok_or_else(|| "bad recorded request body_hex".to_owned())?;
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    for (name, value) in &ex.request.headers {
        if value == REDACTED {
            continue;
        }
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            continue;
        };
        if [HOST, CONTENT_LENGTH, TRANSFER_ENCODING, CONNECTION].contains(&name) {
            continue;
        }
        headers.append(name, value);
    }
    for (name, value) in &options.set {
        headers.insert(name.clone(), value.clone());
    }
    Ok(req)
}

async fn read<F, E, B>(call: F, max_body: usize) -> Result<(u16, HeaderMap, Bytes), BoxError>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    let res = call.await.map_err(Into::into)?;
    let (parts, body) = res.into_parts();
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Into::into)?;
        if let Ok(mut data) = frame.into_data() {
            use bytes::Buf;
            if buf.len() + data.remaining() > max_body {
                return Err(format!("response body over {max_body} bytes").into());
            }
            while data.has_remaining() {
                let chunk = data.chunk();
                buf.extend_from_slice(chunk);
                let n = chunk.len();
                data.advance(n);
            }
        }
    }
    Ok((parts.status.as_u16(), parts.headers, buf.freeze()))
}

fn compare(
    ex: &Exchange,
    status: u16,
    headers: &HeaderMap,
    body: &Bytes,
    options: &ReplayOptions,
    out: &mut Vec<Difference>,
) {
    if ex.status != Some(status) {
        out.push(Difference::Status {
            expected: ex.status,
            actual: status,
        });
    }
    for name in &options.headers {
        let expected = ex.response.header(name.as_str());
        if expected == Some(REDACTED) {
            continue;
        }
        let actual = headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        if expected != actual.as_deref() {
            out.push(Difference::Header {
                name: name.as_str().to_owned(),
                expected: expected.map(ToOwned::to_owned),
                actual,
            });
        }
    }
    if ex.response.truncated || ex.status.is_none() {
        return;
    }
    let Some(expected) = ex.response.body_bytes() else {
        return;
    };
    if expected == *body {
        return;
    }
    match (
        serde_json::from_slice::<serde_json::Value>(&expected),
        serde_json::from_slice::<serde_json::Value>(body),
    ) {
        (Ok(e), Ok(a)) => diff_json(&e, &a, &options.ignored, out),
        _ => out.push(Difference::Body {
            expected_len: expected.len() as u64,
            actual_len: body.len() as u64,
        }),
    }
}
