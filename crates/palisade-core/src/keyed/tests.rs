use super::*;
use std::sync::Arc;

const MIN: Duration = Duration::from_secs(60);

fn keys<V: Clone>(s: &KeyedStore<u32, V>) -> Vec<u32> {
    let mut v: Vec<u32> = s
        .shards
        .iter()
        .flat_map(|sh| sh.lock().unwrap().index.keys().copied().collect::<Vec<_>>())
        .collect();
    v.sort_unstable();
    v
}

/// Walks each shard's list both ways and checks it against the index.
fn check<V: Clone>(s: &KeyedStore<u32, V>) {
    let mut total = 0;
    for sh in &s.shards {
        let sh = sh.lock().unwrap();
        assert_eq!(sh.index.len(), sh.nodes.len());
        assert!(sh.nodes.len() <= sh.cap);
        let mut fwd = Vec::new();
        let mut i = sh.head;
        let mut prev = NIL;
        while i != NIL {
            assert_eq!(sh.nodes[i as usize].prev, prev);
            assert_eq!(sh.index[&sh.nodes[i as usize].key], i);
            fwd.push(i);
            prev = i;
            i = sh.nodes[i as usize].next;
        }
        assert_eq!(prev, sh.tail);
        assert_eq!(fwd.len(), sh.nodes.len());
        total += fwd.len();
    }
    assert_eq!(total, s.len());
}

#[tokio::test(start_paused = true)]
async fn evicts_the_least_recently_used_at_the_cap() {
    let s: KeyedStore<u32, u32> = KeyedStore::new(3, MIN);
    for k in 0..3 {
        assert_eq!(s.get_or_insert_with(&k, || k * 10), Ok(k * 10));
    }
    assert_eq!(s.get(&0), Some(0));
    assert_eq!(s.get_or_insert_with(&3, || 30), Ok(30)); // evicts 1
    assert_eq!(keys(&s), [0, 2, 3]);
    assert_eq!(s.get_or_insert_with(&2, || 99), Ok(20), "kept, not remade");
    assert_eq!(s.get_or_insert_with(&4, || 40), Ok(40)); // evicts 0
    assert_eq!(keys(&s), [2, 3, 4]);
    assert_eq!(s.len(), 3);
    check(&s);
    assert_eq!(s.remove(&3), Some(30));
    assert_eq!(s.remove(&3), None);
    assert_eq!(keys(&s), [2, 4]);
    check(&s);
}

#[tokio::test(start_paused = true)]
async fn pinned_entries_survive_the_cap_and_expiry() {
    let s: KeyedStore<u32, Arc<()>> =
        KeyedStore::new(2, MIN).pin_while(|v, _| Arc::strong_count(v) > 1);
    let held = s.get_or_insert_with(&0, || Arc::new(())).unwrap();
    s.get_or_insert_with(&1, || Arc::new(())).unwrap();
    s.get(&1);
    // 0 is least recently used but pinned: 1 goes.
    s.get_or_insert_with(&2, || Arc::new(())).unwrap();
    assert_eq!(keys(&s), [0, 2]);
    let held2 = s.get(&2).unwrap();
    assert_eq!(s.get_or_insert_with(&3, || Arc::new(())), Err(StoreFull));
    assert_eq!(keys(&s), [0, 2]);
    tokio::time::advance(2 * MIN).await;
    s.evict_idle();
    assert_eq!(keys(&s), [0, 2], "pinned entries do not expire");
    drop((held, held2));
    tokio::time::advance(2 * MIN).await;
    s.evict_idle();
    assert!(s.is_empty());
    check(&s);
}

#[tokio::test(start_paused = true)]
async fn idle_entries_expire_as_operations_go_by() {
    let s: KeyedStore<u32, u32> = KeyedStore::new(100, MIN);
    for k in 0..5 {
        s.get_or_insert_with(&k, || k).unwrap();
    }
    tokio::time::advance(Duration::from_millis(59_999)).await;
    s.get(&4);
    assert_eq!(s.len(), 5, "not idle yet");
    tokio::time::advance(Duration::from_millis(1)).await;
    // Each operation expires at most EXPIRY_STEPS entries from the LRU end.
    s.get(&99);
    assert_eq!(keys(&s), [2, 3, 4]);
    s.get_or_insert_with(&5, || 5).unwrap();
    assert_eq!(keys(&s), [4, 5], "4 was used a millisecond later");
    check(&s);
}

#[tokio::test(start_paused = true)]
async fn splits_large_caps_exactly_across_shards() {
    let s: KeyedStore<u32, u32> = KeyedStore::new(10_001, MIN);
    assert_eq!(s.shards.len(), 4);
    let caps: usize = s.shards.iter().map(|x| x.lock().unwrap().cap).sum();
    assert_eq!(caps, 10_001);
    for k in 0..50_000 {
        s.get_or_insert_with(&k, || k).unwrap();
        if k % 5_000 == 0 {
            check(&s);
        }
    }
    assert_eq!(s.len(), 10_001);
    check(&s);
    let s: KeyedStore<u32, u32> = KeyedStore::new(usize::MAX, MIN);
    assert_eq!((s.max_keys(), s.shards.len()), (MAX_KEYS, MAX_SHARDS));
}

/// A reference model: a vector from most to least recently used, expiring and evicting
/// from its end exactly as the store documents.
#[derive(Default)]
struct Model {
    lru: Vec<(u32, u32, u64)>, // (key, value, last used in ms)
}

impl Model {
    fn expire(&mut self, now: u64, idle: u64) {
        for _ in 0..EXPIRY_STEPS {
            match self.lru.last() {
                Some(&(_, _, used)) if now - used >= idle => {
                    self.lru.pop();
                }
                _ => break,
            }
        }
    }
    fn touch(&mut self, i: usize, now: u64) -> u32 {
        let mut e = self.lru.remove(i);
        e.2 = now;
        self.lru.insert(0, e);
        e.1
    }
}

proptest::proptest! {
    #[test]
    fn matches_a_reference_lru(
        cap in 1usize..6,
        ops in proptest::collection::vec((0u8..4, 0u32..8, 0u64..40), 1..200),
    ) {
        const IDLE: u64 = 50;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let s: KeyedStore<u32, u32> = KeyedStore::new(cap, Duration::from_millis(IDLE));
            let mut m = Model::default();
            let mut now = 0;
            for (n, (op, key, dt)) in ops.into_iter().enumerate() {
                let value = n as u32;
                match op {
                    0 => {
                        m.expire(now, IDLE);
                        let want = m.lru.iter().position(|e| e.0 == key).map(|i| m.touch(i, now));
                        proptest::prop_assert_eq!(s.get(&key), want);
                    }
                    1 => {
                        m.expire(now, IDLE);
                        let want = if let Some(i) = m.lru.iter().position(|e| e.0 == key) {
                            m.touch(i, now)
                        } else {
                            if m.lru.len() >= cap {
                                m.lru.pop();
                            }
                            m.lru.insert(0, (key, value, now));
                            value
                        };
                        proptest::prop_assert_eq!(s.get_or_insert_with(&key, || value), Ok(want));
                    }
                    2 => {
                        let want = m.lru.iter().position(|e| e.0 == key).map(|i| m.lru.remove(i).1);
                        proptest::prop_assert_eq!(s.remove(&key), want);
                    }
                    _ => {
                        tokio::time::advance(Duration::from_millis(dt)).await;
                        now += dt;
                    }
                }
                let mut want: Vec<u32> = m.lru.iter().map(|e| e.0).collect();
                want.sort_unstable();
                proptest::prop_assert_eq!(keys(&s), want);
                check(&s);
            }
            Ok(())
        })?;
    }
}

#[tokio::test(start_paused = true)]
async fn borrowed_lookups() {
    let s: KeyedStore<String, u8> = KeyedStore::new(4, MIN);
    s.get_or_insert_with("a", || 1).unwrap();
    assert_eq!(s.get("a"), Some(1));
    assert_eq!(s.remove("a"), Some(1));
    assert!(s.is_empty());
}
