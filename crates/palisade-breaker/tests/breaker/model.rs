//! A proptest model: random sequences of successes, failures, slow calls and clock advances
//! go through the real service and through a plain reference state machine written here
//! (the reference settings of `service.rs`); admitted calls and states must match after every step. `Burst` starts
//! several calls at once (all admitted or rejected before any finishes), which exercises the
//! exact half-open probe count and outcomes of calls admitted before a transition.

use std::collections::VecDeque;
use std::time::Duration;

use palisade_breaker::{CircuitBreakerLayer, SlidingWindow, State};
use palisade_core::{BoxError, CircuitOpen, ErrorsAsFailures};
use proptest::prelude::*;
use tower::{Layer, Service, ServiceExt, service_fn};

#[derive(Debug, Clone, Copy)]
enum Op {
    Call {
        fail: bool,
        slow: bool,
    },
    Advance(u64),
    /// `n` concurrent instant calls; bit `i` of `fails` makes call `i` fail.
    Burst {
        n: usize,
        fails: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), prop::bool::weighted(0.2)).prop_map(|(fail, slow)| Op::Call { fail, slow }),
        1 => (0u64..90).prop_map(Op::Advance),
        1 => (1usize..8, any::<u8>()).prop_map(|(n, fails)| Op::Burst { n, fails }),
    ]
}

/// The reference: COUNT 10, minCalls 5, failure 50%, slow 50% (> 2 s), permitted 3, wait 60 s.
#[derive(Debug)]
struct Reference {
    state: State,
    window: VecDeque<(bool, bool)>,
    probes: Vec<(bool, bool)>,
    open_until: u64,
}

impl Reference {
    fn trips(calls: &[(bool, bool)]) -> bool {
        let n = calls.len() as f64;
        let failed = calls.iter().filter(|c| c.0).count() as f64;
        let slow = calls.iter().filter(|c| c.1).count() as f64;
        failed * 100.0 / n >= 50.0 || slow * 100.0 / n >= 50.0
    }

    /// A call starting at `now` (seconds) and ending at `end`; returns whether it was admitted.
    fn call(&mut self, now: u64, end: u64, fail: bool, slow: bool) -> bool {
        if self.state == State::Open && now >= self.open_until {
            self.state = State::HalfOpen;
            self.probes.clear();
        }
        match self.state {
            State::Open => false,
            State::Closed => {
                if self.window.len() == 10 {
                    self.window.pop_front();
                }
                self.window.push_back((fail, slow));
                let calls: Vec<_> = self.window.iter().copied().collect();
                if calls.len() >= 5 && Self::trips(&calls) {
                    self.state = State::Open;
                    self.open_until = end + 60;
                }
                true
            }
            State::HalfOpen => {
                self.probes.push((fail, slow));
                if self.probes.len() == 3 {
                    if Self::trips(&self.probes) {
                        self.state = State::Open;
                        self.open_until = end + 60;
                    } else {
                        self.state = State::Closed;
                        self.window.clear();
                    }
                }
                true
            }
            _ => unreachable!(),
        }
    }

    /// `fails.len()` calls admitted together at `now`, then finishing in order at `now`.
    fn burst(&mut self, now: u64, fails: &[bool]) -> Vec<bool> {
        if self.state == State::Open && now >= self.open_until {
            self.state = State::HalfOpen;
            self.probes.clear();
        }
        let admitted_in = self.state;
        let admitted: Vec<bool> = match admitted_in {
            State::Open => vec![false; fails.len()],
            State::Closed => vec![true; fails.len()],
            State::HalfOpen => {
                let free = 3 - self.probes.len();
                (0..fails.len()).map(|i| i < free).collect()
            }
            _ => unreachable!(),
        };
        for (&fail, _) in fails.iter().zip(&admitted).filter(|(_, a)| **a) {
            // Outcomes of calls admitted in another state than the current one are dropped.
            if self.state == admitted_in && self.state != State::Open {
                self.call(now, now, fail, false);
            }
        }
        admitted
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn service_matches_reference(ops in prop::collection::vec(op(), 1..120)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        rt.block_on(async {
            let layer = CircuitBreakerLayer::builder()
                .window(SlidingWindow::Count(10))
                .minimum_calls(5)
                .failure_rate_threshold(50.0)
                .slow_calls(50.0, Duration::from_secs(2))
                .wait_in_open(Duration::from_secs(60))
                .permitted_in_half_open(3)
                .classifier(ErrorsAsFailures)
                .build()
                .unwrap();
            let handle = layer.handle();
            let svc = layer.layer(service_fn(|(fail, slow): (bool, bool)| async move {
                if slow {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                if fail { Err::<(), BoxError>("boom".into()) } else { Ok(()) }
            }));
            let start = tokio::time::Instant::now();
            let mut reference = Reference { state: State::Closed, window: VecDeque::new(), probes: Vec::new(), open_until: 0 };
            for (i, op) in ops.iter().enumerate() {
                match *op {
                    Op::Advance(s) => tokio::time::advance(Duration::from_secs(s)).await,
                    Op::Burst { n, fails } => {
                        let fails: Vec<bool> = (0..n).map(|i| fails & (1 << i) != 0).collect();
                        let now = start.elapsed().as_secs();
                        let mut futures = Vec::new();
                        for &fail in &fails {
                            let mut s = svc.clone();
                            s.ready().await.unwrap();
                            futures.push(s.call((fail, false)));
                        }
                        let mut admitted = Vec::new();
                        for f in futures {
                            let res = f.await;
                            admitted.push(!matches!(&res, Err(e) if e.is::<CircuitOpen>()));
                        }
                        let want = reference.burst(now, &fails);
                        prop_assert_eq!(admitted, want, "step {} {:?}: admitted", i, op);
                    }
                    Op::Call { fail, slow } => {
                        let now = start.elapsed().as_secs();
                        let res = svc.clone().oneshot((fail, slow)).await;
                        let admitted = !matches!(&res, Err(e) if e.is::<CircuitOpen>());
                        // A rejected call takes no time; an admitted slow one takes 3 s.
                        let end = start.elapsed().as_secs();
                        let want = reference.call(now, end, fail, slow);
                        prop_assert_eq!(admitted, want, "step {} {:?}: admitted", i, op);
                    }
                }
                // The handle shows OPEN until a call moves it on (lazy transition).
                prop_assert_eq!(handle.state(), reference.state, "step {} {:?}: state", i, op);
            }
            Ok(())
        })?;
    }
}
