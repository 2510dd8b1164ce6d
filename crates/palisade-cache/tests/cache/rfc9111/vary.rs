//! §4.1 `Vary`: secondary keys, normalisation, `*`.

use crate::support::*;

fn echo_origin() -> Origin {
    origin(|r, _| {
        let lang = r
            .headers()
            .get("accept-language")
            .map_or("none", |v| v.to_str().unwrap())
            .to_owned();
        resp(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("vary", "Accept-Language"),
                ("x-lang", &lang),
            ],
            "x",
        )
    })
}

#[tokio::test(start_paused = true)]
async fn vary_mismatch_goes_upstream_and_variants_coexist() {
    let o = echo_origin();
    let mut c = cache(&o);
    send(&mut c, req("GET", "/a", &[("accept-language", "en")])).await;
    let de = send(&mut c, req("GET", "/a", &[("accept-language", "de")])).await;
    assert_eq!(
        (de.x_cache(), de.header("x-lang")),
        (Some("miss"), Some("de"))
    );
    let none = send(&mut c, get("/a")).await;
    assert_eq!(
        (none.x_cache(), none.header("x-lang")),
        (Some("miss"), Some("none"))
    );
    for lang in ["en", "de"] {
        let got = send(&mut c, req("GET", "/a", &[("accept-language", lang)])).await;
        assert_eq!(
            (got.x_cache(), got.header("x-lang")),
            (Some("hit"), Some(lang))
        );
    }
    assert_eq!(send(&mut c, get("/a")).await.x_cache(), Some("hit"));
    assert_eq!(o.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn vary_values_are_normalised() {
    let o = echo_origin();
    let mut c = cache(&o);
    send(&mut c, req("GET", "/a", &[("accept-language", "en, de")])).await;
    let got = send(
        &mut c,
        req(
            "GET",
            "/a",
            &[("accept-language", "en"), ("accept-language", " de ")],
        ),
    )
    .await;
    assert_eq!(got.x_cache(), Some("hit"));
    assert_eq!(o.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn vary_star_never_matches() {
    let o = origin(|_, _| {
        resp(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("vary", "Accept-Language, *"),
            ],
            "x",
        )
    });
    let mut c = cache(&o);
    send(&mut c, get("/a")).await;
    send(&mut c, get("/a")).await;
    assert_eq!(o.calls(), 2);
}
