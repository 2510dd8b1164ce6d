//! Evaluation: OpenFeature and flagd reference vectors, operators, reasons, errors, rollout distribution/stickiness.

use palisade_toggle::{
    AttrValue, CmpOp, Condition, ErrorCode, EvaluationContext, Flag, FlagSet, FlagState, FlagValue,
    Fractional, Reason, TargetingRule,
};
use rand::{Rng, SeedableRng, rngs::SmallRng};

fn colors(fr: Fractional) -> Flag {
    Flag::new(
        [
            ("red", FlagValue::String("red".into())),
            ("blue", FlagValue::String("blue".into())),
            ("green", FlagValue::String("green".into())),
        ],
        "red",
    )
    .rule(TargetingRule::fractional(Condition::Always, fr))
}

fn rgb() -> Fractional {
    Fractional::new([("red", 50), ("blue", 20), ("green", 30)])
}

fn user(key: &str) -> EvaluationContext {
    EvaluationContext::new().with_targeting_key(key)
}

#[test]
fn specs_fractional_vectors_flag_key_plus_targeting_key() {
    let set = FlagSet::new()
        .with("headerColor", colors(rgb()))
        .with("my-flag", colors(rgb()));
    for (flag, key, want) in [
        ("headerColor", "user-1", "blue"),
        ("headerColor", "user-2", "green"),
        ("headerColor", "foo@bar.com", "green"),
        ("my-flag", "user-123", "red"),
    ] {
        let d = set.evaluate(flag, String::from("default"), &user(key));
        assert_eq!(d.value, want, "{flag}+{key}");
        assert_eq!(d.variant, Some(want));
        assert_eq!(d.reason, Reason::Split);
        assert_eq!(d.error_code, None);
        assert_eq!(d.flag_key, flag);
    }
}

#[test]
fn specs_fractional_vectors_bucketing_attribute() {
    let set = FlagSet::new().with("f", colors(rgb().by("email")));
    for email in ["foo@bar.com", "foo@test.com"] {
        let ctx = EvaluationContext::new().with("email", email);
        let d = set.evaluate("f", String::new(), &ctx);
        assert_eq!(
            (d.value.as_str(), d.reason),
            ("red", Reason::Split),
            "{email}"
        );
    }
}

#[test]
fn no_bucketing_value_falls_back_to_default_variant() {
    let mut flag = colors(Fractional::new([("blue", 1)]));
    flag.default_variant = "green".into();
    let set = FlagSet::new().with("f", flag);
    let d = set.evaluate("f", String::from("x"), &EvaluationContext::new());
    assert_eq!(
        (d.value.as_str(), d.variant, d.reason),
        ("green", Some("green"), Reason::Default)
    );
    assert_eq!(d.error_code, None);
}

#[test]
fn specs_error_vectors() {
    let set = FlagSet::new().with("bool", Flag::boolean(true));
    let d = set.evaluate("missing", false, &EvaluationContext::new());
    assert!(!d.value);
    assert_eq!(d.flag_key, "missing");
    assert_eq!(
        (d.reason, d.error_code),
        (Reason::Error, Some(ErrorCode::FlagNotFound))
    );
    assert_eq!(d.variant, None);

    let d = set.evaluate("bool", String::from("x"), &EvaluationContext::new());
    assert_eq!(d.value, "x");
    assert_eq!(
        (d.reason, d.error_code),
        (Reason::Error, Some(ErrorCode::TypeMismatch))
    );

    let d = set.evaluate("bool", 1.5_f64, &EvaluationContext::new());
    assert!((d.value - 1.5).abs() < f64::EPSILON);
    assert_eq!(d.error_code, Some(ErrorCode::TypeMismatch));
    assert_eq!(ErrorCode::TypeMismatch.as_str(), "TYPE_MISMATCH");
    assert_eq!(Reason::TargetingMatch.to_string(), "TARGETING_MATCH");
}

#[test]
fn static_disabled_and_typed_values() {
    let set = FlagSet::new()
        .with("on", Flag::boolean(true))
        .with("off", Flag::boolean(true).state(FlagState::Disabled))
        .with("n", Flag::new([("a", FlagValue::Number(2.5))], "a"))
        .with(
            "j",
            Flag::new(
                [("a", FlagValue::Json(serde_json::json!({"x": [1, 2]})))],
                "a",
            ),
        );
    let ctx = EvaluationContext::new();
    let d = set.evaluate("on", false, &ctx);
    assert_eq!(
        (d.value, d.variant, d.reason),
        (true, Some("on"), Reason::Static)
    );
    let d = set.evaluate("off", false, &ctx);
    assert_eq!(
        (d.value, d.variant, d.reason, d.error_code),
        (false, None, Reason::Disabled, None)
    );
    assert!((set.evaluate("n", 0.0, &ctx).value - 2.5).abs() < f64::EPSILON);
    assert_eq!(
        set.evaluate("j", serde_json::Value::Null, &ctx).value,
        serde_json::json!({"x": [1, 2]})
    );
}

#[allow(clippy::needless_pass_by_value)]
fn holds(cond: Condition, ctx: &EvaluationContext) -> bool {
    cond.matches(ctx)
}

#[test]
fn each_operator() {
    let ctx = EvaluationContext::new()
        .with_targeting_key("user-7")
        .with("country", "FR")
        .with("email", "ann@acme.io")
        .with("age", 30_i64)
        .with("beta", true)
        .with("app", "2.10.1");
    let s = |x: &str| x.to_owned();
    // equals, including the targeting key, numbers and booleans; type must match.
    assert!(holds(Condition::Equals(s("country"), "FR".into()), &ctx));
    assert!(!holds(Condition::Equals(s("country"), "DE".into()), &ctx));
    assert!(holds(
        Condition::Equals(s("targetingKey"), "user-7".into()),
        &ctx
    ));
    assert!(holds(
        Condition::Equals(s("age"), AttrValue::Number(30.0)),
        &ctx
    ));
    assert!(holds(Condition::Equals(s("beta"), true.into()), &ctx));
    assert!(!holds(Condition::Equals(s("age"), "30".into()), &ctx));
    assert!(!holds(Condition::Equals(s("absent"), "FR".into()), &ctx));
    // in
    assert!(holds(
        Condition::In(s("country"), vec!["DE".into(), "FR".into()]),
        &ctx
    ));
    assert!(!holds(Condition::In(s("country"), vec!["DE".into()]), &ctx));
    assert!(!holds(Condition::In(s("country"), vec![]), &ctx));
    // starts_with / ends_with (strings only)
    assert!(holds(Condition::StartsWith(s("email"), s("ann@")), &ctx));
    assert!(!holds(Condition::StartsWith(s("email"), s("bob@")), &ctx));
    assert!(holds(Condition::EndsWith(s("email"), s("@acme.io")), &ctx));
    assert!(!holds(
        Condition::EndsWith(s("email"), s("@acme.com")),
        &ctx
    ));
    assert!(!holds(Condition::StartsWith(s("age"), s("3")), &ctx));
    // semver: 2.10.1 vs 2.9.0 compares numerically, not lexically.
    for (op, v, want) in [
        (CmpOp::Gt, "2.9.0", true),
        (CmpOp::Ge, "2.10.1", true),
        (CmpOp::Eq, "v2.10.1", true),
        (CmpOp::Ne, "2.10.1", false),
        (CmpOp::Lt, "2.10.1", false),
        (CmpOp::Le, "2.10.1-rc.1", false),
        (CmpOp::Lt, "3.0.0-alpha", true),
    ] {
        assert_eq!(
            holds(Condition::Semver(s("app"), op, s(v)), &ctx),
            want,
            "{op:?} {v}"
        );
    }
    assert!(!holds(
        Condition::Semver(s("country"), CmpOp::Ne, s("1.0.0")),
        &ctx
    ));
    assert!(!holds(
        Condition::Semver(s("app"), CmpOp::Ne, s("bad")),
        &ctx
    ));
    // numeric compare
    for (op, n, want) in [
        (CmpOp::Lt, 31.0, true),
        (CmpOp::Lt, 30.0, false),
        (CmpOp::Le, 30.0, true),
        (CmpOp::Gt, 29.5, true),
        (CmpOp::Gt, 30.0, false),
        (CmpOp::Ge, 30.0, true),
        (CmpOp::Eq, 30.0, true),
        (CmpOp::Ne, 30.0, false),
    ] {
        assert_eq!(
            holds(Condition::Compare(s("age"), op, n), &ctx),
            want,
            "{op:?} {n}"
        );
    }
    assert!(!holds(
        Condition::Compare(s("country"), CmpOp::Ne, 1.0),
        &ctx
    ));
    // and / or / not
    let yes = || Condition::Equals(s("country"), "FR".into());
    let no = || Condition::Equals(s("country"), "DE".into());
    assert!(holds(Condition::And(vec![yes(), yes()]), &ctx));
    assert!(!holds(Condition::And(vec![yes(), no()]), &ctx));
    assert!(holds(Condition::And(vec![]), &ctx));
    assert!(holds(Condition::Or(vec![no(), yes()]), &ctx));
    assert!(!holds(Condition::Or(vec![no(), no()]), &ctx));
    assert!(!holds(Condition::Or(vec![]), &ctx));
    assert!(holds(Condition::Not(Box::new(no())), &ctx));
    assert!(!holds(Condition::Not(Box::new(yes())), &ctx));
}

#[test]
fn rules_apply_in_order_and_json_form_parses() {
    let set = FlagSet::from_json(
        r#"{"flags": {
            "banner": {
                "state": "ENABLED",
                "variants": {"big": "BIG", "small": "small", "none": ""},
                "defaultVariant": "none",
                "targeting": [
                    {"when": {"and": [{"equals": ["country", "FR"]}, {"not": {"in": ["plan", ["free"]]}}]}, "variant": "big"},
                    {"when": {"or": [{"semver": ["app", ">=", "2.0.0"]}, {"compare": ["age", "<", 18]}]}, "variant": "small"},
                    {"when": {"starts_with": ["email", "qa"]}, "fractional": {"split": [["big", 1], ["small", 1]]}},
                    {"when": {"ends_with": ["email", "@x.io"]}, "fractional": {"by": "email", "split": [["small", 1]]}}
                ]
            },
            "dark": {"variants": {"on": true, "off": false}, "defaultVariant": "on"},
            "off": {"state": "DISABLED", "variants": {"on": true}, "defaultVariant": "on"}
        }}"#,
    )
    .unwrap();
    assert_eq!(set.len(), 3);
    let eval = |ctx: EvaluationContext| {
        let d = set.evaluate("banner", String::from("?"), &ctx);
        (d.value, d.reason)
    };
    let fr = EvaluationContext::new().with("country", "FR");
    assert_eq!(
        eval(fr.clone().with("plan", "pro")),
        ("BIG".into(), Reason::TargetingMatch)
    );
    assert_eq!(
        eval(fr.with("plan", "free")),
        (String::new(), Reason::Default)
    );
    assert_eq!(
        eval(EvaluationContext::new().with("app", "2.0.0")),
        ("small".into(), Reason::TargetingMatch)
    );
    assert_eq!(
        eval(EvaluationContext::new().with("age", 17_i64)),
        ("small".into(), Reason::TargetingMatch)
    );
    assert_eq!(
        eval(EvaluationContext::new().with("email", "a@x.io")),
        ("small".into(), Reason::Split)
    );
    // A fractional rule without a targeting key yields nothing; later rules still apply.
    assert_eq!(
        eval(EvaluationContext::new().with("email", "qa@x.io")),
        ("small".into(), Reason::Split)
    );
    let d = set.evaluate("banner", String::new(), &user("u").with("email", "qa@y.io"));
    assert_eq!(d.reason, Reason::Split);
    assert!(d.value == "BIG" || d.value == "small");
    assert!(set.evaluate("dark", false, &EvaluationContext::new()).value);
    assert_eq!(
        set.evaluate("off", false, &EvaluationContext::new()).reason,
        Reason::Disabled
    );
}

#[test]
fn invalid_flags_are_rejected_naming_the_field() {
    for (json, field) in [
        (
            r#"{"flags": {"a": {"variants": {"on": true}, "defaultVariant": "x"}}}"#,
            "flags.a.defaultVariant",
        ),
        (
            r#"{"flags": {"a": {"variants": {"on": true, "n": 1}, "defaultVariant": "on"}}}"#,
            "flags.a.variants",
        ),
        (
            r#"{"flags": {"a": {"variants": {"on": true}, "defaultVariant": "on", "targeting": [{"variant": "nope"}]}}}"#,
            "flags.a.targeting[0]",
        ),
        (
            r#"{"flags": {"a": {"variants": {"on": true}, "defaultVariant": "on", "targeting": [{"fractional": {"split": [["on", 0]]}}]}}}"#,
            "flags.a.targeting[0]",
        ),
        (
            r#"{"flags": {"a": {"variants": {"on": true}, "defaultVariant": "on", "bogus": 1}}}"#,
            "flags",
        ),
        ("not json", "flags"),
    ] {
        let err = FlagSet::from_json(json).unwrap_err();
        assert_eq!(err.field(), field, "{json}: {err}");
    }
}

fn canary(weight: u32) -> FlagSet {
    FlagSet::new().with(
        "rollout",
        Flag::boolean(false).rule(TargetingRule::fractional(
            Condition::Always,
            Fractional::new([("on", weight), ("off", 100 - weight)]),
        )),
    )
}

#[test]
fn rollout_is_sticky_while_the_percentage_grows() {
    let keys: Vec<String> = (0..1000).map(|i| format!("user-{i}")).collect();
    let mut on_before = vec![false; keys.len()];
    let mut last_count = 0;
    for weight in (0..=100).step_by(5) {
        let set = canary(weight);
        let mut count = 0;
        for (i, k) in keys.iter().enumerate() {
            let on = set.evaluate("rollout", false, &user(k)).value;
            assert!(!on_before[i] || on, "{k} moved back at weight {weight}");
            on_before[i] = on;
            count += usize::from(on);
        }
        assert!(count >= last_count);
        last_count = count;
        assert!(
            (count as f64 / 10.0 - f64::from(weight)).abs() < 5.0,
            "weight {weight}: {count}"
        );
    }
    assert_eq!(last_count, 1000);
}

#[test]
fn split_shares_within_one_percent_over_100k_random_keys() {
    let set = FlagSet::new().with("headerColor", colors(rgb()));
    let mut rng = SmallRng::seed_from_u64(7);
    let mut counts = [0u32; 3];
    let n = 100_000;
    for _ in 0..n {
        let key = format!("{:016x}", rng.random::<u64>());
        let d = set.evaluate("headerColor", String::new(), &user(&key));
        let i = ["red", "blue", "green"]
            .iter()
            .position(|c| *c == d.value)
            .unwrap();
        counts[i] += 1;
    }
    for (count, want) in counts.iter().zip([0.50, 0.20, 0.30]) {
        let share = f64::from(*count) / f64::from(n);
        assert!((share - want).abs() < 0.01, "{counts:?}");
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any split picks a variant with a positive weight, for any key, and never panics.
        #[test]
        fn split_picks_a_weighted_variant(
            weights in proptest::collection::vec(0u32..1000, 1..6),
            key in ".{0,40}",
        ) {
            prop_assume!(weights.iter().sum::<u32>() > 0);
            let names: Vec<String> = (0..weights.len()).map(|i| format!("v{i}")).collect();
            let flag = Flag::new(
                names.iter().map(|n| (n.clone(), FlagValue::String(n.clone()))),
                "v0",
            )
            .rule(TargetingRule::fractional(
                Condition::Always,
                Fractional::new(names.iter().cloned().zip(weights.iter().copied())),
            ));
            let set = FlagSet::new().with("f", flag);
            let d = set.evaluate("f", String::new(), &user(&key));
            prop_assert_eq!(d.reason, Reason::Split);
            let i = names.iter().position(|n| *n == d.value).unwrap();
            prop_assert!(weights[i] > 0);
        }

        /// Growing one variant's weight (others fixed, it listed first) never moves a key
        /// out of it.
        #[test]
        fn growing_first_weight_is_sticky(key in ".{0,40}", w1 in 0u32..100, extra in 1u32..100) {
            let split = |w: u32| Fractional::new([("on", w), ("off", 100)]);
            let mk = |w| FlagSet::new().with("f", Flag::boolean(false).rule(TargetingRule::fractional(Condition::Always, split(w))));
            let before = mk(w1).evaluate("f", false, &user(&key)).value;
            let after = mk(w1 + extra).evaluate("f", false, &user(&key)).value;
            prop_assert!(!before || after);
        }

        /// A valid flag file cut short or with one byte changed (nearly valid JSON reaches
        /// deeper into the parser than random text) never panics, nor does evaluating it.
        #[test]
        fn mutated_flag_files_never_panic(cut in 0usize..400, at in 0usize..400, byte in proptest::prelude::any::<u8>(), key in ".{0,12}") {
            let base = r#"{"flags": {"banner": {"state": "ENABLED", "variants": {"big": "BIG", "small": 1.5, "n": null},
                "defaultVariant": "big", "targeting": [
                {"when": {"and": [{"equals": ["country", "FR"]}, {"not": {"in": ["plan", ["free"]]}}]}, "variant": "small"},
                {"when": {"or": [{"semver": ["app", ">=", "2.0.0"]}, {"compare": ["age", "<", 18]}]}, "fractional": {"by": "email", "split": [["big", 1], ["small", 0]]}}]}}}"#;
            let mut bytes = base.as_bytes().to_vec();
            bytes.truncate(cut.max(1).min(bytes.len()));
            let i = at % bytes.len();
            bytes[i] = byte;
            if let Ok(text) = std::str::from_utf8(&bytes)
                && let Ok(set) = FlagSet::from_json(text)
            {
                let ctx = user(&key).with("country", "FR").with("age", 17_i64).with("app", "2.1.0");
                let _ = set.evaluate("banner", String::new(), &ctx);
            }
        }

        /// Arbitrary JSON never panics the parser; valid sets never panic evaluation.
        #[test]
        fn arbitrary_input_never_panics(json in ".{0,200}", attr in ".{0,10}") {
            if let Ok(set) = FlagSet::from_json(&json) {
                let _ = set.evaluate("f", false, &EvaluationContext::new().with(attr, 1_i64));
            }
        }
    }
}
