//! SPECS §6 vectors CB1–CB11: COUNT_BASED, size 10, minCalls 5, failure 50%, slow 50% @ 2 s,
//! permitted 3, wait 60 s, lazy OPEN → HALF_OPEN.
use super::*;

const S: Duration = Duration::from_secs(1);

fn specs() -> Settings {
    Settings {
        window: SlidingWindow::Count(10),
        minimum_calls: 5,
        failure_rate: 50.0,
        slow_rate: 50.0,
        slow_call: 2 * S,
        wait_in_open: 60 * S,
        wait_multiplier: 1.0,
        max_wait_in_open: 60 * S,
        permitted_in_half_open: 3,
        max_wait_in_half_open: None,
        automatic: false,
    }
}

fn call(m: &mut Machine, failed: bool, dur: Duration, now: Duration) {
    let (p, _) = m.acquire(now);
    m.record(p.expect("permitted"), Some(failed), dur, now);
}

fn open_machine() -> Machine {
    let mut m = Machine::new(specs());
    for _ in 0..5 {
        call(&mut m, true, Duration::ZERO, Duration::ZERO);
    }
    assert_eq!(m.state(), State::Open);
    m
}

#[test]
fn cb1_four_failures_stay_closed() {
    let mut m = Machine::new(specs());
    for _ in 0..4 {
        call(&mut m, true, Duration::ZERO, Duration::ZERO);
    }
    assert_eq!(m.state(), State::Closed);
}

#[test]
fn cb2_fifth_failure_opens() {
    open_machine();
}

#[test]
fn cb3_fifty_percent_opens_forty_does_not() {
    let mut m = Machine::new(specs());
    for i in 0..10 {
        call(&mut m, i % 2 == 0 && i < 10, Duration::ZERO, Duration::ZERO);
        if m.state() == State::Open {
            break;
        }
    }
    // 5 failures of 10 interleaved: at call 5 the rate is 3/5 = 60% → opens early.
    assert_eq!(m.state(), State::Open);

    // 4 failures in 10, all at the end so no prefix reaches 50% with ≥ 5 calls.
    let mut m = Machine::new(specs());
    for i in 0..10 {
        call(&mut m, i >= 6, Duration::ZERO, Duration::ZERO);
    }
    assert_eq!(m.window.totals().failed, 4);
    assert_eq!(m.state(), State::Closed);
    // And exactly 5 of 10 at the end: 50% → OPEN.
    let mut m = Machine::new(specs());
    for i in 0..10 {
        call(&mut m, i >= 5, Duration::ZERO, Duration::ZERO);
    }
    assert_eq!(m.state(), State::Open);
}

#[test]
fn cb4_slow_calls_open() {
    let mut m = Machine::new(specs());
    for i in 0..10 {
        let d = if i >= 5 { 3 * S } else { Duration::ZERO };
        call(&mut m, false, d, Duration::ZERO);
    }
    assert_eq!(m.state(), State::Open);
    // Exactly the threshold is not slow ("greater than").
    let mut m = Machine::new(specs());
    for _ in 0..10 {
        call(&mut m, false, 2 * S, Duration::ZERO);
    }
    assert_eq!(m.state(), State::Closed);
}

#[test]
fn cb5_cb6_lazy_half_open_after_wait() {
    let mut m = open_machine();
    let (r, t) = m.acquire(30 * S);
    assert_eq!(
        r,
        Err(Rejected {
            state: State::Open,
            retry_after: Some(30 * S)
        })
    );
    assert_eq!(t, None);
    let (r, t) = m.acquire(60 * S);
    assert_eq!(r, Ok(Permit::Probe(1)));
    assert_eq!(
        t,
        Some(Transition {
            from: State::Open,
            to: State::HalfOpen
        })
    );
}

fn half_open_machine() -> Machine {
    let mut m = open_machine();
    assert!(m.acquire(60 * S).0.is_ok());
    m.cancel(Permit::Probe(1));
    m
}

#[test]
fn cb7_fourth_probe_rejected() {
    let mut m = half_open_machine();
    for _ in 0..3 {
        assert!(m.acquire(61 * S).0.is_ok());
    }
    assert_eq!(m.acquire(61 * S).0.unwrap_err().state, State::HalfOpen);
}

#[test]
fn cb8_one_failure_of_three_closes_with_fresh_window() {
    let mut m = half_open_machine();
    let ps: Vec<_> = (0..3).map(|_| m.acquire(61 * S).0.unwrap()).collect();
    m.record(ps[0], Some(false), Duration::ZERO, 61 * S);
    m.record(ps[1], Some(false), Duration::ZERO, 61 * S);
    let t = m.record(ps[2], Some(true), Duration::ZERO, 61 * S);
    assert_eq!(t.unwrap().to, State::Closed);
    assert_eq!(m.window.totals(), Totals::default());
}

#[test]
fn cb9_two_failures_of_three_reopen_with_new_wait() {
    let mut m = half_open_machine();
    let ps: Vec<_> = (0..3).map(|_| m.acquire(61 * S).0.unwrap()).collect();
    m.record(ps[0], Some(false), Duration::ZERO, 61 * S);
    m.record(ps[1], Some(true), Duration::ZERO, 61 * S);
    let t = m.record(ps[2], Some(true), Duration::ZERO, 61 * S);
    assert_eq!(t.unwrap().to, State::Open);
    assert_eq!(m.open_until(), 121 * S);
}

#[test]
fn cb10_max_wait_in_half_open_reopens() {
    let mut s = specs();
    s.max_wait_in_half_open = Some(5 * S);
    let mut m = Machine::new(s);
    for _ in 0..5 {
        call(&mut m, true, Duration::ZERO, Duration::ZERO);
    }
    let p = m.acquire(60 * S).0.unwrap();
    let _stalled = m.acquire(60 * S).0.unwrap();
    m.record(p, Some(false), Duration::ZERO, 62 * S);
    assert_eq!(m.state(), State::HalfOpen);
    let (r, t) = m.acquire(65 * S);
    assert_eq!(t.unwrap().to, State::Open);
    assert_eq!(r.unwrap_err().state, State::Open);
}

#[test]
fn cb11_special_states() {
    let mut m = Machine::new(specs());
    m.force(State::ForcedOpen, Duration::ZERO);
    assert_eq!(m.acquire(1000 * S).0.unwrap_err().state, State::ForcedOpen);

    m.force(State::Disabled, Duration::ZERO);
    for _ in 0..20 {
        let p = m.acquire(S).0.unwrap();
        assert_eq!(p, Permit::Unrecorded);
        m.record(p, Some(true), Duration::ZERO, S);
    }
    assert_eq!(m.state(), State::Disabled);
    assert_eq!(m.window.totals(), Totals::default());

    m.force(State::MetricsOnly, Duration::ZERO);
    for _ in 0..10 {
        call(&mut m, true, Duration::ZERO, S);
    }
    assert_eq!(m.state(), State::MetricsOnly);
    assert_eq!(m.window.totals().failed, 10);
}

#[test]
fn exponential_wait_grows_to_the_cap_and_resets_on_close() {
    let mut s = specs();
    s.wait_multiplier = 2.0;
    s.max_wait_in_open = 150 * S;
    s.permitted_in_half_open = 1;
    let mut m = Machine::new(s);
    for _ in 0..5 {
        call(&mut m, true, Duration::ZERO, Duration::ZERO);
    }
    assert_eq!(m.open_until(), 60 * S);
    let p = m.acquire(60 * S).0.unwrap();
    m.record(p, Some(true), Duration::ZERO, 60 * S);
    assert_eq!(m.open_until(), 180 * S); // 60 + 120
    let p = m.acquire(180 * S).0.unwrap();
    m.record(p, Some(true), Duration::ZERO, 180 * S);
    assert_eq!(m.open_until(), 330 * S); // 180 + min(240, 150)
    let p = m.acquire(330 * S).0.unwrap();
    m.record(p, Some(false), Duration::ZERO, 330 * S);
    assert_eq!(m.state(), State::Closed);
    for _ in 0..5 {
        call(&mut m, true, Duration::ZERO, 331 * S);
    }
    assert_eq!(m.open_until(), 391 * S); // back to 60 s
}

/// Opens, stalls one probe past `max_wait_in_half_open` (back to OPEN), and half-opens
/// again: returns the machine (generation 2) and the stalled generation-1 probe.
fn second_half_open_with_a_stale_probe() -> (Machine, Permit) {
    let mut s = specs();
    s.max_wait_in_half_open = Some(5 * S);
    let mut m = Machine::new(s);
    for _ in 0..5 {
        call(&mut m, true, Duration::ZERO, Duration::ZERO);
    }
    let stale = m.acquire(60 * S).0.unwrap();
    assert_eq!(stale, Permit::Probe(1));
    assert_eq!(m.acquire(65 * S).0.unwrap_err().state, State::Open);
    assert_eq!(m.open_until(), 125 * S);
    assert_eq!(m.acquire(125 * S).0.unwrap(), Permit::Probe(2));
    (m, stale)
}

#[test]
fn outcomes_of_an_earlier_half_open_period_do_not_count() {
    let (mut m, stale) = second_half_open_with_a_stale_probe();
    assert_eq!(m.record(stale, Some(true), Duration::ZERO, 126 * S), None);
    assert_eq!(
        m.totals(),
        Totals::default(),
        "the old probe is not counted"
    );
    assert_eq!(m.state(), State::HalfOpen);
    // Nor does a CLOSED-era call finishing during HALF_OPEN.
    m.record(Permit::Recorded, Some(true), Duration::ZERO, 126 * S);
    assert_eq!(m.totals(), Totals::default());
    assert_eq!(
        m.window.totals().calls,
        5,
        "the window it opened on, unchanged"
    );
    // Nor an ignored stale probe: it frees no slot of this period.
    m.record(stale, None, Duration::ZERO, 126 * S);
    assert!(m.acquire(126 * S).0.is_ok());
    assert!(m.acquire(126 * S).0.is_ok());
    assert_eq!(m.acquire(126 * S).0.unwrap_err().state, State::HalfOpen);
}

#[test]
fn cancelling_a_stale_probe_frees_no_slot_of_the_new_period() {
    let (mut m, stale) = second_half_open_with_a_stale_probe();
    assert!(m.acquire(125 * S).0.is_ok());
    assert!(m.acquire(125 * S).0.is_ok());
    m.cancel(stale);
    assert_eq!(m.acquire(125 * S).0.unwrap_err().state, State::HalfOpen);
    // A current probe's cancel does free one.
    m.cancel(Permit::Probe(2));
    assert!(m.acquire(125 * S).0.is_ok());
    // Cancelling outside HALF_OPEN changes nothing.
    let mut c = Machine::new(specs());
    c.cancel(Permit::Probe(0));
    assert_eq!(c.probes_admitted, 0);
}

#[test]
fn half_open_rejections_carry_a_retry_hint() {
    let (mut m, _stale) = second_half_open_with_a_stale_probe();
    m.acquire(125 * S).0.unwrap();
    m.acquire(125 * S).0.unwrap();
    // Probe slots taken: until max_wait_in_half_open (5 s from 125 s) ends.
    let r = m.acquire(127 * S).0.unwrap_err();
    assert_eq!(r.retry_after, Some(3 * S));
    // Without the bound: wait_in_open.
    let mut m = half_open_machine();
    for _ in 0..3 {
        m.acquire(61 * S).0.unwrap();
    }
    assert_eq!(m.acquire(62 * S).0.unwrap_err().retry_after, Some(60 * S));
    m.force(State::ForcedOpen, 62 * S);
    assert_eq!(m.acquire(62 * S).0.unwrap_err().retry_after, Some(60 * S));
}

#[test]
fn forcing_closed_while_closed_starts_a_fresh_window() {
    let mut m = Machine::new(specs());
    for _ in 0..3 {
        call(&mut m, true, Duration::ZERO, Duration::ZERO);
    }
    assert_eq!(m.force(State::Closed, S), None, "no transition");
    assert_eq!(m.totals(), Totals::default());
    // Forcing another state keeps the window until the state changes it.
    for _ in 0..3 {
        call(&mut m, true, Duration::ZERO, S);
    }
    let t = m.force(State::Open, S).unwrap();
    assert_eq!((t.from, t.to), (State::Closed, State::Open));
    assert_eq!(
        m.window.totals().failed,
        3,
        "OPEN keeps the window it opened on"
    );
    assert_eq!(m.force(State::Open, 2 * S), None);
    assert_eq!(m.window.totals().failed, 3);
}

#[test]
fn states_round_trip_through_their_byte_and_have_stable_names() {
    let all = [
        (State::Closed, "closed"),
        (State::Open, "open"),
        (State::HalfOpen, "half_open"),
        (State::Disabled, "disabled"),
        (State::ForcedOpen, "forced_open"),
        (State::MetricsOnly, "metrics_only"),
    ];
    for (state, name) in all {
        assert_eq!(State::from_u8(state as u8), state);
        assert_eq!(state.as_str(), name);
        assert_eq!(state.to_string(), name);
    }
}

#[test]
fn ignored_calls_do_not_count_and_free_probe_slots() {
    let mut m = Machine::new(specs());
    for _ in 0..10 {
        let p = m.acquire(Duration::ZERO).0.unwrap();
        m.record(p, None, Duration::ZERO, Duration::ZERO);
    }
    assert_eq!(m.window.totals().calls, 0);
    let mut m = half_open_machine();
    let ps: Vec<_> = (0..3).map(|_| m.acquire(61 * S).0.unwrap()).collect();
    m.record(ps[0], None, Duration::ZERO, 61 * S);
    assert!(m.acquire(61 * S).0.is_ok(), "slot given back");
}
