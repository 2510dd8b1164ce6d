//! 1,000,000 distinct keys: tracked keys stay under the cap, and memory with them.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use palisade_core::key::{PeerAddr, PeerIp};
use palisade_ratelimit::{Quota, RateLimitLayer};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service, service_fn};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const CAP: usize = 50_000;

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_million_keys_stay_under_the_cap() {
    let layer = RateLimitLayer::new(PeerIp, Quota::per_minute("default", 10).unwrap())
        .max_keys(CAP)
        .response_headers(false);
    let mut svc = layer.layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    }));
    let mut req = Request::new(());
    let region = Region::new(GLOBAL);
    let mut peak = 0;
    let mut peak_bytes = 0isize;
    for i in 0u32..1_000_000 {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        req.extensions_mut()
            .insert(PeerAddr(SocketAddr::new(ip, 1)));
        let fut = svc.call(std::mem::take(&mut req));
        assert!(fut.await.is_ok(), "a fresh key always has its burst");
        req = Request::new(());
        peak = peak.max(layer.tracked_keys());
        if i % 10_000 == 0 {
            let s = region.change();
            peak_bytes = peak_bytes.max(s.bytes_allocated as isize - s.bytes_deallocated as isize);
        }
        if i == 500_000 {
            // Idle keys are swept as time passes.
            tokio::time::advance(Duration::from_secs(61)).await;
        }
    }
    assert!(peak <= CAP, "tracked {peak} keys, cap {CAP}");
    assert!(
        layer.tracked_keys() >= CAP / 2,
        "the cap is not hit too early"
    );
    let per_key = peak_bytes as f64 / CAP as f64;
    println!("peak {peak} keys, peak live heap {peak_bytes} B, {per_key:.1} B per tracked key");
    // 40 B entry + 1 control byte, power-of-two tables at most 7/8 full, 2 tables while growing.
    assert!(per_key < 200.0, "{per_key} bytes per key");
    tokio::time::advance(Duration::from_secs(61)).await;
    let n = layer.tracked_keys();
    assert_eq!(layer.sweep_idle(), n);
    assert_eq!(layer.tracked_keys(), 0);
}
