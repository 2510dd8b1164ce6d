//! Matchers as composable predicates: unit cases and properties.

use http::{HeaderName, HeaderValue, Method, Request};
use palisade_policy::{Glob, Matcher, PathTemplate};
use proptest::prelude::*;

fn req(method: &Method, path: &str) -> Request<()> {
    Request::builder()
        .method(method.clone())
        .uri(path)
        .body(())
        .unwrap()
}

#[test]
fn host_and_header_conditions() {
    let m = Matcher::host("*.example.com");
    let with_host = |h: &str| Request::get("/").header("host", h).body(()).unwrap();
    assert!(m.matches(&with_host("a.example.com")));
    assert!(m.matches(&with_host("A.Example.com:8080")));
    assert!(!m.matches(&with_host("example.com")));
    assert!(!m.matches(&with_host("badexample.com")));
    assert!(
        Matcher::host("api.internal")
            .matches(&Request::get("http://API.internal:81/x").body(()).unwrap())
    );
    let h = HeaderName::from_static("x-tenant");
    let present = Matcher::header(h.clone());
    let value = Matcher::header_value(h, HeaderValue::from_static("gold"));
    let r = Request::get("/")
        .header("x-tenant", "silver")
        .header("x-tenant", "gold")
        .body(())
        .unwrap();
    assert!(present.matches(&r) && value.matches(&r));
    let r = Request::get("/")
        .header("x-tenant", "silver")
        .body(())
        .unwrap();
    assert!(present.matches(&r) && !value.matches(&r));
    assert!(!present.matches(&Request::get("/").body(()).unwrap()));
}

#[test]
fn combinators_from_a_file_and_from_code_agree() {
    let set = palisade_policy::PolicySet::from_toml(
        r#"
        [[routes]]
        match = { any = [{ prefix = "/api" }, { host = "api.local" }], not = { glob = "/api/internal/**" }, method = ["GET", "head"] }
        [fallback]
        "#,
    )
    .unwrap();
    let code = Matcher::prefix("/api")
        .unwrap()
        .or(Matcher::host("api.local"))
        .and(!Matcher::glob("/api/internal/**").unwrap())
        .and(Matcher::Method(vec![Method::GET, Method::HEAD]));
    assert_eq!(
        set.explain()["routes"][0]["match"],
        "all(any(prefix /api, host api.local), method GET|HEAD, not(glob /api/internal/**))"
    );
    for (m, p, want) in [
        (Method::GET, "/api/users", true),
        (Method::HEAD, "/api", true),
        (Method::POST, "/api/users", false),
        (Method::GET, "/api/internal/x", false),
        (Method::GET, "/apix", false),
        (Method::GET, "/other", false),
    ] {
        assert_eq!(code.matches(&req(&m, p)), want, "{m} {p}");
    }
}

fn join(segs: &[String]) -> String {
    segs.iter().flat_map(|s| ["/", s.as_str()]).collect()
}

fn segment() -> impl Strategy<Value = String> {
    "[a-z0-9_.-]{1,8}"
}

proptest! {
    #[test]
    fn a_template_matches_its_instances_and_nothing_longer_or_shorter(
        parts in prop::collection::vec((segment(), any::<bool>()), 1..6),
        values in prop::collection::vec(segment(), 6),
        extra in segment(),
    ) {
        let template: String = parts.iter().enumerate()
            .map(|(i, (lit, param))| if *param { format!("/{{p{i}}}") } else { format!("/{lit}") })
            .collect();
        let path: String = parts.iter().zip(&values)
            .map(|((lit, param), v)| if *param { format!("/{v}") } else { format!("/{lit}") })
            .collect();
        let t = PathTemplate::new(&template).unwrap();
        prop_assert!(t.matches(&path), "{} !~ {}", template, path);
        let longer = format!("{path}/{extra}");
        prop_assert!(!t.matches(&longer));
        let shorter = &path[..path.rfind('/').unwrap()];
        let shorter_path = if shorter.is_empty() { "/" } else { shorter };
        prop_assert!(!t.matches(shorter_path) || parts.len() == 1 && parts[0].0.is_empty());
        let slash = format!("{path}/");
        prop_assert!(!t.matches(&slash));
    }

    #[test]
    fn literal_globs_match_only_themselves_and_double_star_matches_all(
        segs in prop::collection::vec(segment(), 1..5),
        other in prop::collection::vec(segment(), 1..5),
    ) {
        let path: String = join(&segs);
        let other: String = join(&other);
        let g = Glob::new(&path).unwrap();
        prop_assert!(g.matches(&path));
        prop_assert_eq!(g.matches(&other), other == path);
        prop_assert!(Glob::new("/**").unwrap().matches(&other));
        let under = format!("/{}/**", segs[0]);
        prop_assert!(Glob::new(&under).unwrap().matches(&path));
    }

    #[test]
    fn prefixes_stop_at_segment_boundaries(p in prop::collection::vec(segment(), 1..4), rest in segment()) {
        let prefix: String = join(&p);
        let m = Matcher::prefix(&prefix).unwrap();
        prop_assert!(m.matches(&req(&Method::GET, &prefix)));
        let below = format!("{prefix}/{rest}");
        prop_assert!(m.matches(&req(&Method::GET, &below)));
        let glued = format!("{prefix}{rest}");
        prop_assert!(!m.matches(&req(&Method::GET, &glued)));
    }

    #[test]
    fn combinators_are_boolean_algebra(
        a_path in segment(), b_path in segment(), path in segment(), post in any::<bool>(),
    ) {
        let a = Matcher::prefix(&format!("/{a_path}")).unwrap();
        let b = Matcher::method(Method::POST).and(Matcher::path(&format!("/{b_path}")).unwrap());
        let r = req(if post { &Method::POST } else { &Method::GET }, &format!("/{path}"));
        let (x, y) = (a.matches(&r), b.matches(&r));
        prop_assert_eq!(a.clone().and(b.clone()).matches(&r), x && y);
        prop_assert_eq!(a.clone().or(b.clone()).matches(&r), x || y);
        prop_assert_eq!((!a.clone()).matches(&r), !x);
        prop_assert_eq!((!!a.clone()).matches(&r), x);
        prop_assert_eq!(!a.clone(), Matcher::Not(Box::new(a.clone())));
        prop_assert!(Matcher::All(vec![]).matches(&r));
        prop_assert!(!Matcher::Any(vec![]).matches(&r));
    }

    #[test]
    fn arbitrary_patterns_and_paths_never_panic(pattern in "/[a-z*?{}/]{0,20}", path in "/[a-z*?{}/]{0,30}") {
        if let Ok(t) = PathTemplate::new(&pattern) { let _ = t.matches(&path); }
        if let Ok(g) = Glob::new(&pattern) { let _ = g.matches(&path); }
    }
}
