//! §4.4 invalidation after unsafe methods.

use crate::support::*;

fn site(post_status: u16, location: &'static str) -> Origin {
    origin(move |r, _| {
        if r.method() == http::Method::GET {
            resp(200, &[("cache-control", "max-age=600")], "page")
        } else {
            resp(post_status, &[("location", location)], "")
        }
    })
}

async fn warm(c: &mut palisade_cache::Cache<Origin>, paths: &[&str]) {
    for p in paths {
        send(c, get(p)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn successful_post_invalidates_target_and_same_origin_location() {
    let o = site(201, "/b");
    let mut c = cache(&o);
    warm(&mut c, &["/a", "/b", "/c"]).await;
    send(&mut c, req("POST", "/a", &[])).await;
    assert_eq!(send(&mut c, get("/a")).await.x_cache(), Some("miss"));
    assert_eq!(send(&mut c, get("/b")).await.x_cache(), Some("miss"));
    assert_eq!(send(&mut c, get("/c")).await.x_cache(), Some("hit"));
    for m in ["PUT", "DELETE", "PATCH"] {
        send(&mut c, req(m, "/c", &[])).await;
        assert_eq!(send(&mut c, get("/c")).await.x_cache(), Some("miss"), "{m}");
    }
}

#[tokio::test(start_paused = true)]
async fn other_origin_location_and_failed_posts_do_not_invalidate() {
    let o = site(303, "http://other.example/b");
    let mut c = cache(&o);
    warm(&mut c, &["/a", "/b"]).await;
    send(&mut c, req("POST", "/a", &[])).await;
    assert_eq!(send(&mut c, get("/a")).await.x_cache(), Some("miss"));
    assert_eq!(send(&mut c, get("/b")).await.x_cache(), Some("hit"));

    let o = site(500, "/a");
    let mut c = cache(&o);
    warm(&mut c, &["/a"]).await;
    send(&mut c, req("POST", "/a", &[])).await;
    assert_eq!(send(&mut c, get("/a")).await.x_cache(), Some("hit"));
    // Safe methods do not invalidate.
    send(&mut c, req("OPTIONS", "/a", &[])).await;
    assert_eq!(send(&mut c, get("/a")).await.x_cache(), Some("hit"));
}
