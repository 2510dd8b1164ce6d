use super::*;
use bytes::Bytes;
use http::StatusCode;

const FP_A: Fingerprint = [1; 32];
const FP_B: Fingerprint = [2; 32];
const LEASE: Duration = Duration::from_secs(10);
const TTL: Duration = Duration::from_secs(100);

fn res(body: &'static str) -> StoredResponse {
    StoredResponse {
        status: StatusCode::CREATED,
        headers: vec![],
        body: Bytes::from_static(body.as_bytes()),
    }
}

fn started(b: Begin) -> u64 {
    match b {
        Begin::Started { fencing_token, .. } => fencing_token,
        other => panic!("expected Started, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn lifecycle() {
    let s = MemoryStore::new();
    let t = started(s.begin_now("k", &FP_A, LEASE, TTL).unwrap());
    assert_eq!(
        s.begin_now("k", &FP_A, LEASE, TTL).unwrap(),
        Begin::InFlight
    );
    assert_eq!(
        s.begin_now("k", &FP_B, LEASE, TTL).unwrap(),
        Begin::Mismatch
    );
    assert!(!s.complete_now("k", t + 1, &res("x"), TTL));
    assert!(s.complete_now("k", t, &res("x"), TTL));
    assert!(!s.complete_now("k", t, &res("y"), TTL), "completing twice");
    assert_eq!(
        s.begin_now("k", &FP_A, LEASE, TTL).unwrap(),
        Begin::Completed(Arc::new(res("x")))
    );
    assert_eq!(
        s.begin_now("k", &FP_B, LEASE, TTL).unwrap(),
        Begin::Mismatch
    );
    tokio::time::advance(TTL).await;
    let t2 = started(s.begin_now("k", &FP_B, LEASE, TTL).unwrap());
    assert!(t2 > t);
}

#[tokio::test(start_paused = true)]
async fn lease_expiry_and_fencing() {
    let s = MemoryStore::new();
    let t1 = started(s.begin_now("k", &FP_A, LEASE, TTL).unwrap());
    tokio::time::advance(LEASE).await;
    match s.begin_now("k", &FP_A, LEASE, TTL).unwrap() {
        Begin::Started {
            fencing_token,
            took_over_expired,
        } => {
            assert!(fencing_token > t1);
            assert!(took_over_expired);
            // The late finisher cannot overwrite; the new holder can.
            assert!(!s.complete_now("k", t1, &res("late"), TTL));
            assert!(!s.release_sync("k", t1));
            assert!(s.complete_now("k", fencing_token, &res("new"), TTL));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.begin_now("k", &FP_A, LEASE, TTL).unwrap(),
        Begin::Completed(Arc::new(res("new")))
    );
}

#[tokio::test(start_paused = true)]
async fn release_and_renew() {
    let s = MemoryStore::new();
    let t = started(s.begin_now("k", &FP_A, LEASE, TTL).unwrap());
    tokio::time::advance(LEASE / 2).await;
    assert!(s.renew_now("k", t, LEASE));
    tokio::time::advance(LEASE / 2).await;
    assert_eq!(
        s.begin_now("k", &FP_A, LEASE, TTL).unwrap(),
        Begin::InFlight
    );
    assert!(!s.release_sync("k", t + 1));
    assert!(s.release_sync("k", t));
    assert!(s.is_empty());
    started(s.begin_now("k", &FP_A, LEASE, TTL).unwrap());
}

#[tokio::test(start_paused = true)]
async fn bounded() {
    let s = MemoryStore::with_limits(2, 1 << 20, 2);
    let a = started(s.begin_now("a", &FP_A, LEASE, TTL).unwrap());
    let b = started(s.begin_now("b", &FP_A, LEASE, TTL).unwrap());
    // Full of live locks: refuse rather than evict a lock.
    assert!(s.begin_now("c", &FP_A, LEASE, TTL).is_err());
    assert!(s.complete_now("a", a, &res("a"), TTL));
    assert!(s.complete_now("b", b, &res("b"), TTL));
    let c = started(s.begin_now("c", &FP_A, LEASE, TTL).unwrap());
    assert!(s.complete_now("c", c, &res("c"), TTL));
    // Three completed records, room for two: the least recently used ("a") went.
    assert_eq!(s.len(), 2);
    started(s.begin_now("a", &FP_A, LEASE, TTL).unwrap());
    assert_eq!(
        s.begin_now("b", &FP_A, LEASE, TTL).unwrap(),
        Begin::Completed(Arc::new(res("b")))
    );
}

#[tokio::test(start_paused = true)]
async fn bounded_by_bytes_and_locks_never_evicted() {
    let max = 16 * 1024;
    let s = MemoryStore::with_limits(1000, max, 10);
    let held = started(s.begin_now("held", &FP_A, LEASE, TTL).unwrap());
    let body = Bytes::from(vec![b'x'; 1024]);
    for i in 0..200 {
        let k = format!("k{i}");
        let t = started(s.begin_now(&k, &FP_A, LEASE, TTL).unwrap());
        let r = StoredResponse {
            status: StatusCode::OK,
            headers: vec![],
            body: body.clone(),
        };
        assert!(s.complete_now(&k, t, &r, TTL));
    }
    let size = s.weighted_size();
    assert!(size <= max, "{size} > {max}");
    // Each record weighs its key, body and overhead: at most 16 KiB / (1 KiB + 192 + key).
    let per = 1024 + RECORD_OVERHEAD + 2;
    assert!(
        s.len() - 1 <= usize::try_from(max / per).unwrap(),
        "{}",
        s.len()
    );
    assert!(s.len() > 8, "the cache is used, {}", s.len());
    // The newest records survive, the oldest went; the lock is untouched.
    assert!(matches!(
        s.begin_now("k199", &FP_A, LEASE, TTL).unwrap(),
        Begin::Completed(_)
    ));
    assert!(matches!(
        s.begin_now("k0", &FP_A, LEASE, TTL).unwrap(),
        Begin::Started { .. }
    ));
    assert_eq!(
        s.begin_now("held", &FP_A, LEASE, TTL).unwrap(),
        Begin::InFlight
    );
    assert!(s.complete_now("held", held, &res("h"), TTL));
}

/// `len`, `is_empty` and `in_flight` count locks and completed records.
#[tokio::test(start_paused = true)]
async fn counts_locks_and_records() {
    let s = MemoryStore::new();
    assert!(s.is_empty());
    assert_eq!((s.len(), s.in_flight()), (0, 0));
    let t = started(s.begin_now("k", &FP_A, LEASE, TTL).unwrap());
    assert!(!s.is_empty());
    assert_eq!((s.len(), s.in_flight()), (1, 1));
    started(s.begin_now("j", &FP_A, LEASE, TTL).unwrap());
    assert_eq!((s.len(), s.in_flight()), (2, 2));
    assert!(s.complete_now("k", t, &res("x"), TTL));
    assert!(!s.is_empty());
    assert_eq!((s.len(), s.in_flight()), (2, 1));
}

/// A full lock map purges the locks whose lease has run out (exactly at its end
/// included), keeping the live ones, before refusing.
#[tokio::test(start_paused = true)]
async fn a_full_lock_map_purges_expired_leases_at_their_end() {
    let s = MemoryStore::with_limits(10, 1 << 20, 2);
    started(s.begin_now("a", &FP_A, LEASE, TTL).unwrap());
    tokio::time::advance(Duration::from_secs(1)).await;
    let b = started(s.begin_now("b", &FP_A, LEASE, TTL).unwrap());
    // At the very end of a's lease (its TTL still runs): a is purged, b is kept.
    tokio::time::advance(LEASE.checked_sub(Duration::from_secs(1)).unwrap()).await;
    let c = started(s.begin_now("c", &FP_A, LEASE, TTL).unwrap());
    assert_eq!(s.in_flight(), 2);
    assert!(s.complete_now("b", b, &res("b"), TTL));
    assert!(s.complete_now("c", c, &res("c"), TTL));
}

/// A lease can be renewed up to, not at, its end.
#[tokio::test(start_paused = true)]
async fn a_lease_is_not_renewable_at_its_end() {
    let s = MemoryStore::new();
    let t = started(s.begin_now("k", &FP_A, LEASE, TTL).unwrap());
    tokio::time::advance(LEASE.checked_sub(Duration::from_millis(1)).unwrap()).await;
    assert!(s.renew_now("k", t, LEASE));
    tokio::time::advance(LEASE).await;
    assert!(!s.renew_now("k", t, LEASE));
}

/// A renewal past the key's TTL extends the lock's life with its lease, so the holder can
/// still complete.
#[tokio::test(start_paused = true)]
async fn renewal_extends_a_lock_past_its_ttl() {
    let s = MemoryStore::new();
    let t = started(s.begin_now("k", &FP_A, LEASE, LEASE).unwrap());
    tokio::time::advance(LEASE.checked_sub(Duration::from_secs(1)).unwrap()).await;
    assert!(s.renew_now("k", t, LEASE));
    tokio::time::advance(LEASE / 2).await;
    assert_eq!(
        s.begin_now("k", &FP_A, LEASE, LEASE).unwrap(),
        Begin::InFlight
    );
    assert!(s.complete_now("k", t, &res("x"), TTL));
}

/// `with_max_entries(n)` bounds both the completed records and the locks by `n`.
#[tokio::test(start_paused = true)]
async fn with_max_entries_bounds_records_and_locks() {
    let s = MemoryStore::with_max_entries(2);
    let a = started(s.begin_now("a", &FP_A, LEASE, TTL).unwrap());
    let b = started(s.begin_now("b", &FP_A, LEASE, TTL).unwrap());
    assert!(
        s.begin_now("c", &FP_A, LEASE, TTL).is_err(),
        "two locks at most"
    );
    assert!(s.complete_now("a", a, &res("a"), TTL));
    assert!(s.complete_now("b", b, &res("b"), TTL));
    let c = started(s.begin_now("c", &FP_A, LEASE, TTL).unwrap());
    assert!(s.complete_now("c", c, &res("c"), TTL));
    assert_eq!(s.len(), 2, "two records at most");
    let text = format!("{s:?}");
    assert!(text.contains("max_entries: 2,"), "{text}");
    assert!(text.contains("max_in_flight: 2,"), "{text}");
    assert!(text.contains("max_bytes: 67108864,"), "{text}");
}

/// A record weighs exactly its key, each header's name and value plus 32, its body and
/// [`RECORD_OVERHEAD`], and at least `max_bytes / max_entries`.
#[tokio::test(start_paused = true)]
async fn record_weight_is_exact() {
    // A floor of 1 GiB / 100,000,000 = 10 bytes, below any record.
    let s = MemoryStore::with_limits(100_000_000, 1 << 30, 10);
    let t = started(s.begin_now("key", &FP_A, LEASE, TTL).unwrap());
    let r = StoredResponse {
        status: StatusCode::OK,
        headers: vec![
            (http::header::ETAG, http::HeaderValue::from_static("\"v1\"")),
            (
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain"),
            ),
        ],
        body: Bytes::from(vec![b'x'; 100]),
    };
    assert!(s.complete_now("key", t, &r, TTL));
    let headers = (4 + 4 + 32) + (12 + 10 + 32);
    assert_eq!(s.weighted_size(), RECORD_OVERHEAD + 3 + headers + 100);
    // A floor of 1 MiB / 10 entries: a small record is charged 104,857 bytes.
    let s = MemoryStore::with_limits(10, 1 << 20, 10);
    let t = started(s.begin_now("k", &FP_A, LEASE, TTL).unwrap());
    assert!(s.complete_now("k", t, &res("x"), TTL));
    assert_eq!(s.weighted_size(), (1 << 20) / 10);
}

/// The default store holds 64 MiB of records: three 16 MiB bodies all stay, a fourth and
/// fifth evict the least recently used.
#[tokio::test(start_paused = true)]
async fn default_byte_bound_is_64_mib() {
    assert_eq!(DEFAULT_MAX_BYTES, 64 << 20);
    let s = MemoryStore::new();
    let body = Bytes::from(vec![b'x'; 16 << 20]);
    for (i, k) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
        let t = started(s.begin_now(k, &FP_A, LEASE, TTL).unwrap());
        let r = StoredResponse {
            status: StatusCode::OK,
            headers: vec![],
            body: body.clone(),
        };
        assert!(s.complete_now(k, t, &r, TTL));
        let kept = (i + 1).min(3);
        assert_eq!(s.len(), kept, "after {k}");
        assert_eq!(
            s.weighted_size(),
            kept as u64 * (RECORD_OVERHEAD + 1 + (16 << 20))
        );
    }
}

#[tokio::test(start_paused = true)]
async fn renewal_checks_the_token_and_sets_lease_from_now() {
    let s = MemoryStore::new();
    let t = started(s.begin_now("k", &FP_A, LEASE, TTL).unwrap());
    tokio::time::advance(LEASE / 2).await;
    // Another token cannot renew.
    assert!(!s.renew_now("k", t + 1, LEASE));
    assert!(!s.renew_now("k", t.wrapping_sub(1), LEASE));
    tokio::time::advance(LEASE / 2).await;
    // The original lease (not extended by the refused renewals) is over.
    assert!(matches!(
        s.begin_now("k", &FP_A, LEASE, TTL).unwrap(),
        Begin::Started {
            took_over_expired: true,
            ..
        }
    ));
    let s = MemoryStore::new();
    let t = started(s.begin_now("k", &FP_A, LEASE, TTL).unwrap());
    tokio::time::advance(LEASE / 2).await;
    assert!(s.renew_now("k", t, LEASE));
    // Renewed to exactly LEASE from the renewal: held until then, free right after.
    tokio::time::advance(LEASE.checked_sub(Duration::from_millis(1)).unwrap()).await;
    assert_eq!(
        s.begin_now("k", &FP_A, LEASE, TTL).unwrap(),
        Begin::InFlight
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(matches!(
        s.begin_now("k", &FP_A, LEASE, TTL).unwrap(),
        Begin::Started {
            took_over_expired: true,
            ..
        }
    ));
    // A lease that already ran out cannot be renewed.
    assert!(!s.renew_now("k", t, LEASE));
}

#[derive(Debug, Clone)]
enum Op {
    Begin { key: u8, fp: u8 },
    Complete { key: u8, which: u8 },
    Release { key: u8, which: u8 },
    Advance { secs: u8 },
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        (0u8..3, 0u8..2).prop_map(|(key, fp)| Op::Begin { key, fp }),
        (0u8..3, 0u8..3).prop_map(|(key, which)| Op::Complete { key, which }),
        (0u8..3, 0u8..3).prop_map(|(key, which)| Op::Release { key, which }),
        (0u8..15).prop_map(|secs| Op::Advance { secs }),
    ]
}

/// Reference model of one key.
#[derive(Debug, Clone, Copy)]
enum Model {
    Locked {
        fp: u8,
        token: u64,
        lease_until: u64,
        expires: u64,
    },
    Done {
        fp: u8,
        expires: u64,
    },
}

proptest::proptest! {
    /// The store agrees with a simple model under random operations and clock jumps:
    /// one live holder per key, growing tokens, compare-and-set completion, expiry.
    #[test]
    fn agrees_with_model(ops in proptest::collection::vec(op(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let s = MemoryStore::new();
            let (lease, ttl) = (10u64, 30u64);
            let mut now = 0u64;
            let mut model: [Option<Model>; 3] = [None; 3];
            let mut tokens: [Vec<u64>; 3] = Default::default();
            let mut last_token = 0;
            for op in ops {
                match op {
                    Op::Advance { secs } => {
                        tokio::time::advance(Duration::from_secs(u64::from(secs))).await;
                        now += u64::from(secs);
                    }
                    Op::Begin { key, fp } => {
                        let k = key.to_string();
                        let got = s.begin_now(&k, &[fp; 32], Duration::from_secs(lease), Duration::from_secs(ttl)).unwrap();
                        let m = &mut model[key as usize];
                        let live = m.filter(|m| match *m {
                            Model::Locked { expires, .. } | Model::Done { expires, .. } => expires > now,
                        });
                        match (live, &got) {
                            (Some(Model::Done { fp: f, .. }), Begin::Completed(_)) => assert_eq!(f, fp),
                            (Some(Model::Done { fp: f, .. } | Model::Locked { fp: f, .. }), Begin::Mismatch) => assert_ne!(f, fp),
                            (Some(Model::Locked { fp: f, lease_until, .. }), Begin::InFlight) => {
                                assert_eq!(f, fp);
                                assert!(lease_until > now);
                            }
                            (prev, Begin::Started { fencing_token, took_over_expired }) => {
                                match prev {
                                    None => assert!(!took_over_expired),
                                    Some(Model::Locked { lease_until, .. }) => {
                                        assert!(lease_until <= now, "two live holders");
                                        assert!(took_over_expired);
                                    }
                                    Some(Model::Done { .. }) => panic!("started over a live record"),
                                }
                                assert!(*fencing_token > last_token, "tokens grow");
                                last_token = *fencing_token;
                                tokens[key as usize].push(*fencing_token);
                                *m = Some(Model::Locked { fp, token: *fencing_token, lease_until: now + lease, expires: now + ttl });
                            }
                            (prev, other) => panic!("model {prev:?} but store said {other:?}"),
                        }
                    }
                    Op::Complete { key, which } | Op::Release { key, which } => {
                        let Some(&token) = tokens[key as usize].iter().rev().nth(which as usize) else { continue };
                        let k = key.to_string();
                        let m = &mut model[key as usize];
                        let holds = matches!(*m, Some(Model::Locked { token: t, expires, .. }) if t == token && expires > now);
                        if matches!(op, Op::Complete { .. }) {
                            assert_eq!(s.complete_now(&k, token, &res("r"), Duration::from_secs(ttl)), holds);
                            if holds {
                                let Some(Model::Locked { fp, .. }) = *m else { unreachable!() };
                                *m = Some(Model::Done { fp, expires: now + ttl });
                            }
                        } else {
                            let holds_any = matches!(*m, Some(Model::Locked { token: t, .. }) if t == token);
                            assert_eq!(s.release_sync(&k, token), holds_any);
                            if holds_any {
                                *m = None;
                            }
                        }
                    }
                }
            }
        });
    }
}
