//! A boolean flag evaluated through a `Flags` handle with a cached context allocates nothing
//! (static, targeting and fractional), as long as nobody observes the events.

use std::hint::black_box;
use std::sync::Arc;

use palisade_toggle::{
    Condition, EvaluationContext, Flag, FlagSet, Flags, Fractional, StaticProvider, TargetingRule,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

#[test]
fn boolean_evaluation_with_cached_context_does_not_allocate() {
    let provider = StaticProvider::new(
        FlagSet::new()
            .with("plain", Flag::boolean(true))
            .with(
                "targeted",
                Flag::boolean(false).rule(TargetingRule::variant(
                    Condition::Semver("app".into(), palisade_toggle::CmpOp::Ge, "2.0.0".into()),
                    "on",
                )),
            )
            .with(
                "rollout",
                Flag::boolean(false).rule(TargetingRule::fractional(
                    Condition::Always,
                    Fractional::new([("on", 100), ("off", 0)]),
                )),
            ),
    );
    let ctx = Arc::new(
        EvaluationContext::new()
            .with_targeting_key("user-1")
            .with("app", "2.3.0"),
    );
    let flags = Flags::with_context(&provider, ctx);
    // Warm up lazies.
    assert!(flags.is_enabled("plain"));
    // The allocator is process-wide: the test harness may allocate on another thread while
    // we measure, so take the quietest of several rounds.
    let mut fewest = usize::MAX;
    for _ in 0..5 {
        let region = Region::new(GLOBAL);
        let mut on = 0;
        for _ in 0..1000 {
            on += usize::from(black_box(&flags).is_enabled(black_box("plain")));
            on += usize::from(black_box(&flags).is_enabled(black_box("targeted")));
            on += usize::from(black_box(&flags).is_enabled(black_box("rollout")));
            on += usize::from(black_box(&flags).is_enabled(black_box("missing")));
            let handle = black_box(Flags::with_context(
                &provider,
                Arc::new(EvaluationContext::new()),
            ));
            drop(handle);
        }
        let stats = region.change();
        assert_eq!(on, 3000);
        fewest = fewest.min(stats.allocations);
    }
    // Only the per-iteration `Arc::new(context)` allocates (HashMap::new does not).
    assert_eq!(fewest, 1000);
}
