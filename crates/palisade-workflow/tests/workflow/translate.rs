//! The anti-corruption layer.

use http_body_util::BodyExt;
use palisade_core::BoxError;
use palisade_core::response::error_response;
use palisade_workflow::translate::{
    Direction, FromDomain, ToDomain, TranslateLayer, TranslationError,
};
use serde_json::{Value, json};
use tower::{Layer, ServiceExt, service_fn};

/// The domain: temperatures in millikelvin.
#[derive(Debug, PartialEq)]
struct Reading {
    sensor: String,
    millikelvin: u64,
}

/// The legacy model: `{"id": "...", "temp_f": 98.6}`.
#[derive(Clone)]
struct Legacy;

impl ToDomain<Value> for Legacy {
    type Domain = Reading;
    fn to_domain(&self, v: Value) -> Result<Reading, TranslationError> {
        let sensor = v["id"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| TranslationError::request("/id", "must be a non-empty string"))?;
        let f = v["temp_f"]
            .as_f64()
            .ok_or_else(|| TranslationError::request("/temp_f", "must be a number"))?;
        let mk = ((f - 32.0) * 5.0 / 9.0 + 273.15) * 1000.0;
        if !(0.0..=1e9).contains(&mk) {
            return Err(TranslationError::request(
                "/temp_f",
                "is below absolute zero or absurd",
            ));
        }
        Ok(Reading {
            sensor: sensor.to_owned(),
            millikelvin: mk.round() as u64,
        })
    }
}

impl FromDomain<Option<u64>> for Legacy {
    type External = Value;
    fn from_domain(&self, avg: Option<u64>) -> Result<Value, TranslationError> {
        let mk = avg.ok_or_else(|| TranslationError::response("/avg_f", "no average known"))?;
        let f = (mk as f64 / 1000.0 - 273.15) * 9.0 / 5.0 + 32.0;
        Ok(json!({ "avg_f": (f * 10.0).round() / 10.0 }))
    }
}

fn domain() -> impl tower::Service<
    Reading,
    Response = Option<u64>,
    Error = BoxError,
    Future = impl Future<Output = Result<Option<u64>, BoxError>> + Send,
> + Clone {
    service_fn(|r: Reading| async move {
        match r.sensor.as_str() {
            "down" => Err::<Option<u64>, BoxError>("sensor store down".into()),
            "new" => Ok(None),
            _ => Ok(Some(r.millikelvin)),
        }
    })
}

async fn render(err: &BoxError) -> (u16, Value) {
    let res = error_response(&**err, false);
    let status = res.status().as_u16();
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn translates_both_ways() {
    let svc = TranslateLayer::new(Legacy).layer(domain());
    let out = svc
        .oneshot(json!({ "id": "s1", "temp_f": 98.6 }))
        .await
        .unwrap();
    assert_eq!(out, json!({ "avg_f": 98.6 }));
}

#[tokio::test]
async fn a_bad_request_field_is_a_422_naming_it() {
    let svc = TranslateLayer::new(Legacy).layer(domain());
    for (input, field) in [
        (json!({ "temp_f": 1.0 }), "/id"),
        (json!({ "id": "s", "temp_f": "hot" }), "/temp_f"),
        (json!({ "id": "s", "temp_f": -1000.0 }), "/temp_f"),
        (json!(null), "/id"),
    ] {
        let err = svc.clone().oneshot(input).await.unwrap_err();
        let t = TranslationError::find(&*err).expect("typed");
        assert_eq!((t.field.as_ref(), t.direction), (field, Direction::Request));
        let (status, body) = render(&err).await;
        assert_eq!(status, 422);
        assert_eq!(body["field"], field);
        assert_eq!(body["status"], 422);
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .starts_with(&format!("field `{field}`"))
        );
    }
}

#[tokio::test]
async fn a_response_that_does_not_translate_is_a_502() {
    let svc = TranslateLayer::new(Legacy).layer(domain());
    let err = svc
        .oneshot(json!({ "id": "new", "temp_f": 1.0 }))
        .await
        .unwrap_err();
    let (status, body) = render(&err).await;
    assert_eq!(status, 502);
    assert_eq!(body["field"], "/avg_f");
}

#[tokio::test]
async fn the_inner_error_passes_through() {
    let svc = TranslateLayer::new(Legacy).layer(domain());
    let err = svc
        .oneshot(json!({ "id": "down", "temp_f": 1.0 }))
        .await
        .unwrap_err();
    assert!(TranslationError::find(&*err).is_none());
    assert_eq!(err.to_string(), "sensor store down");
}

#[tokio::test]
async fn closures_translate_too_and_accessors_reach_the_inner_service() {
    let layer = TranslateLayer::from_fns(
        |s: &'static str| {
            s.parse::<u32>()
                .map_err(|_| TranslationError::request("/", "not a number"))
        },
        |n: u32| Ok::<_, TranslationError>(n.to_string()),
    );
    let mut svc = layer.layer(service_fn(|n: u32| async move { Ok::<_, BoxError>(n * 2) }));
    let _ = svc.get_mut();
    let _ = svc.get_ref();
    assert_eq!(svc.clone().oneshot("21").await.unwrap(), "42");
    let err = svc.oneshot("x").await.unwrap_err();
    assert_eq!(render(&err).await.0, 422);
}
