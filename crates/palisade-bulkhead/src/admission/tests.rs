use super::*;

#[test]
fn a_waiter_wakes_the_waker_it_was_last_polled_with() {
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let a = Arc::new(Admission::new(1, 1, vec![0].into(), None, Listeners::new()));
    let Acquire::Granted(p) = a.acquire(0) else {
        panic!("free slot")
    };
    let Acquire::Queued(w) = a.acquire(0) else {
        panic!("queued")
    };
    let (first, second) = (
        Arc::new(Count(AtomicUsize::new(0))),
        Arc::new(Count(AtomicUsize::new(0))),
    );
    w.register(&Waker::from(first.clone()));
    w.register(&Waker::from(first.clone()));
    // Polled again from another task: that task must be woken.
    w.register(&Waker::from(second.clone()));
    drop(p);
    assert!(w.is_granted());
    assert_eq!(first.0.load(Ordering::SeqCst), 0);
    assert_eq!(second.0.load(Ordering::SeqCst), 1);
    drop(a.take_grant(&w));
    assert_eq!((a.in_flight(), a.queued()), (0, 0));
}

fn recording(
    limit: usize,
    max_queue: usize,
    reserve: Vec<usize>,
) -> (Arc<Admission>, Arc<Mutex<Vec<BulkheadEvent>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let listeners = Listeners::new()
        .named("db")
        .on(move |e: &BulkheadEvent| s.lock().unwrap().push(e.clone()));
    let a = Admission::new(limit, max_queue, reserve.into(), None, listeners);
    (Arc::new(a), seen)
}

#[test]
fn an_out_of_range_lane_is_the_top_lane() {
    let a = Arc::new(Admission::new(
        2,
        0,
        vec![1, 0].into(),
        None,
        Listeners::new(),
    ));
    let Acquire::Granted(low) = a.acquire(0) else {
        panic!("free slot")
    };
    // Lane 0 may not take the last slot; lane 7 (clamped to 1, the top) may.
    assert!(matches!(a.acquire(0), Acquire::Full));
    let Acquire::Granted(top) = a.acquire(7) else {
        panic!("top lane")
    };
    assert_eq!(a.in_flight(), 2);
    drop((low, top));
    let one = Arc::new(Admission::new(1, 0, vec![0].into(), None, Listeners::new()));
    assert!(matches!(one.acquire(usize::MAX), Acquire::Granted(_)));
}

#[test]
fn a_higher_lane_passes_a_lower_waiter_with_the_right_count() {
    // Limit 2, lane 0 keeps 1 slot free for lane 1.
    let (a, seen) = recording(2, 4, vec![1, 0]);
    let Acquire::Granted(p) = a.acquire(0) else {
        panic!("free slot")
    };
    let Acquire::Queued(w) = a.acquire(0) else {
        panic!("lane 0 waits")
    };
    // Someone waits, so lane 1 takes the locked path, and is not behind lane 0.
    let Acquire::Granted(high) = a.acquire(1) else {
        panic!("lane 1 passes")
    };
    assert_eq!(
        *seen.lock().unwrap(),
        [
            BulkheadEvent::Admitted {
                instance: "db".into(),
                lane: 0,
                in_flight: 1
            },
            BulkheadEvent::Queued {
                instance: "db".into(),
                lane: 0,
                depth: 1
            },
            BulkheadEvent::Admitted {
                instance: "db".into(),
                lane: 1,
                in_flight: 2
            },
        ]
    );
    drop((p, high));
    assert!(w.is_granted());
    drop(a.take_grant(&w));
    assert_eq!((a.in_flight(), a.queued()), (0, 0));
}

#[test]
fn set_limit_admits_waiters_and_reports_only_changes() {
    let (a, seen) = recording(1, 4, vec![0]);
    let Acquire::Granted(p) = a.acquire(0) else {
        panic!("free slot")
    };
    let Acquire::Queued(w1) = a.acquire(0) else {
        panic!("queued")
    };
    let Acquire::Queued(w2) = a.acquire(0) else {
        panic!("queued")
    };
    seen.lock().unwrap().clear();
    a.set_limit(2);
    assert_eq!(a.limit(), 2);
    assert!(
        w1.is_granted() && !w2.is_granted(),
        "one more slot, oldest first"
    );
    a.set_limit(2);
    assert_eq!(
        *seen.lock().unwrap(),
        [BulkheadEvent::LimitChanged {
            instance: "db".into(),
            from: 1,
            to: 2
        }],
        "no event when the limit stays"
    );
    a.set_limit(usize::MAX);
    assert_eq!(a.limit(), MAX_COUNT);
    assert!(w2.is_granted());
    drop((p, a.take_grant(&w1), a.take_grant(&w2)));
    assert_eq!((a.in_flight(), a.queued()), (0, 0));
}

#[test]
fn queue_is_bounded_and_fifo_per_lane() {
    let a = Arc::new(Admission::new(1, 2, vec![0].into(), None, Listeners::new()));
    let Acquire::Granted(p) = a.acquire(0) else {
        panic!("free slot")
    };
    let Acquire::Queued(w1) = a.acquire(0) else {
        panic!("queued")
    };
    let Acquire::Queued(w2) = a.acquire(0) else {
        panic!("queued")
    };
    assert!(matches!(a.acquire(0), Acquire::Full));
    drop(p);
    assert!(w1.is_granted() && !w2.is_granted());
    assert_eq!((a.in_flight(), a.queued()), (1, 1));
    assert!(a.abandon(&w1), "a granted slot is passed on");
    assert!(w2.is_granted());
    assert!(a.abandon(&w2));
    assert_eq!((a.in_flight(), a.queued()), (0, 0));
}
