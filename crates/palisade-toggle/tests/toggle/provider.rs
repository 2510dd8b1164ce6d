//! Providers: file hot reload keeps the last good flags, events, status; dynamic swaps.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use palisade_core::Listeners;
use palisade_test::EventRecorder;
use palisade_toggle::{
    DynamicProvider, EvaluationContext, FileProvider, Flag, FlagSet, Flags, Provider,
    ProviderStatus, Reason, ToggleEvent,
};

fn temp_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "palisade-toggle-{name}-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("flags.json")
}

fn write(path: &PathBuf, json: &str, mtime_secs: u64) {
    std::fs::write(path, json).unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime_secs))
        .unwrap();
}

const V1: &str =
    r#"{"flags": {"dark": {"variants": {"on": true, "off": false}, "defaultVariant": "on"}}}"#;
const V2: &str = r#"{"flags": {"dark": {"variants": {"on": true, "off": false}, "defaultVariant": "off"}, "extra": {"variants": {"a": "x"}, "defaultVariant": "a"}}}"#;
const BROKEN: &str = r#"{"flags": {"dark": {"variants": {"on": true}, "defaultVariant": "#;

fn dark(p: &impl Provider) -> bool {
    Flags::without_context(p).boolean("dark", false)
}

#[test]
fn bad_file_keeps_last_good_flags_and_emits_reload_failed() {
    let path = temp_file("reload");
    write(&path, V1, 1_000);
    let log = EventRecorder::new();
    let listeners = Listeners::new().on(log.on::<ToggleEvent>());
    let provider = FileProvider::open_with(&path, listeners).unwrap();
    assert!(dark(&provider));
    assert_eq!(provider.status(), ProviderStatus::Ready);

    write(&path, BROKEN, 2_000);
    let err = provider.reload().unwrap_err();
    assert_eq!(err.field(), "flags");
    assert!(dark(&provider), "last good flags must stay");
    assert_eq!(provider.status(), ProviderStatus::Stale);
    // A stale provider still serves: no error code.
    let flags = Flags::without_context(&provider);
    let d = flags.details("dark", false);
    assert_eq!(
        (d.value, d.reason, d.error_code),
        (true, Reason::Static, None)
    );

    write(&path, V2, 3_000);
    provider.reload().unwrap();
    assert!(!dark(&provider));
    assert_eq!(provider.status(), ProviderStatus::Ready);
    assert_eq!(provider.snapshot().len(), 2);

    let events = log.events::<ToggleEvent>();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        matches!(&events[0], ToggleEvent::ReloadFailed { error, .. } if error.contains("invalid JSON"))
    );
    assert!(matches!(&events[1], ToggleEvent::Reloaded { flags: 2, .. }));
}

#[test]
fn first_load_must_succeed() {
    let path = temp_file("first");
    write(&path, BROKEN, 1_000);
    assert!(FileProvider::open(&path).is_err());
    assert!(FileProvider::open(path.with_file_name("absent.json")).is_err());
}

#[test]
fn reload_if_changed_follows_mtime() {
    let path = temp_file("mtime");
    write(&path, V1, 1_000);
    let provider = FileProvider::open(&path).unwrap();
    assert!(!provider.reload_if_changed().unwrap());
    write(&path, V2, 1_500);
    assert!(provider.reload_if_changed().unwrap());
    assert!(!dark(&provider));
    assert!(!provider.reload_if_changed().unwrap());
    // A broken file is tried once, then ignored until it changes again.
    write(&path, BROKEN, 1_600);
    assert!(provider.reload_if_changed().is_err());
    assert!(!provider.reload_if_changed().unwrap());
    assert!(!dark(&provider));
}

#[tokio::test(start_paused = true)]
async fn watch_task_reloads_on_interval() {
    let path = temp_file("watch");
    write(&path, V1, 1_000);
    let provider = FileProvider::open(&path).unwrap();
    let task = provider.watch(Duration::from_secs(5)).unwrap();
    tokio::task::yield_now().await;
    write(&path, V2, 2_000);
    assert!(dark(&provider), "no reload before the next tick");
    tokio::time::advance(Duration::from_secs(5)).await;
    tokio::task::yield_now().await;
    assert!(!dark(&provider));
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn watch_refuses_a_zero_or_unbounded_interval() {
    // `tokio::time::interval(ZERO)` panics inside the spawned task: refused up front.
    let path = temp_file("watch-zero");
    write(&path, V1, 1_000);
    let provider = FileProvider::open(&path).unwrap();
    for bad in [
        Duration::ZERO,
        Duration::from_millis(99),
        Duration::from_secs(3601),
    ] {
        let err = provider.watch(bad).unwrap_err();
        assert_eq!(err.field(), "poll_interval", "{bad:?}");
    }
    assert_eq!(
        provider.watch(Duration::ZERO).unwrap_err().to_string(),
        "invalid configuration `poll_interval`: must be between 100ms and 3600s (got 0ns)"
    );
    provider.watch(Duration::from_millis(100)).unwrap().abort();
}

#[test]
fn dynamic_provider_swaps_snapshots_and_handles_keep_theirs() {
    let provider = DynamicProvider::new(FlagSet::new().with("dark", Flag::boolean(true)));
    let before = Flags::new(&provider, EvaluationContext::new());
    provider.set(FlagSet::new().with("dark", Flag::boolean(false)));
    assert!(before.is_enabled("dark"), "a handle keeps its snapshot");
    assert!(!Flags::without_context(&provider).is_enabled("dark"));
}

#[test]
fn evaluated_events_carry_variant_and_reason() {
    let provider = DynamicProvider::new(FlagSet::new().with("dark", Flag::boolean(true)));
    let log = EventRecorder::new();
    let listeners = Listeners::new().on(log.on::<ToggleEvent>());
    let flags = Flags::without_context(&provider).listeners(listeners);
    assert!(flags.is_enabled("dark"));
    assert!(!flags.is_enabled("nope"));
    assert_eq!(flags.string("dark", "d"), "d");
    let events = log.events::<ToggleEvent>();
    assert_eq!(
        events,
        vec![
            ToggleEvent::Evaluated {
                instance: "toggle".into(),
                flag_key: "dark".into(),
                variant: Some("on".into()),
                reason: Reason::Static,
                error_code: None
            },
            ToggleEvent::Evaluated {
                instance: "toggle".into(),
                flag_key: "nope".into(),
                variant: None,
                reason: Reason::Error,
                error_code: Some(palisade_toggle::ErrorCode::FlagNotFound)
            },
            ToggleEvent::Evaluated {
                instance: "toggle".into(),
                flag_key: "dark".into(),
                variant: None,
                reason: Reason::Error,
                error_code: Some(palisade_toggle::ErrorCode::TypeMismatch)
            },
        ]
    );
}

struct NotReady;
impl Provider for NotReady {
    fn snapshot(&self) -> Arc<FlagSet> {
        Arc::new(FlagSet::new().with("dark", Flag::boolean(true)))
    }
    fn status(&self) -> ProviderStatus {
        ProviderStatus::NotReady
    }
}

#[test]
fn not_ready_provider_returns_default_with_error_code() {
    let flags = Flags::without_context(&NotReady);
    let d = flags.details("dark", false);
    assert!(!d.value);
    assert_eq!(
        d.error_code,
        Some(palisade_toggle::ErrorCode::ProviderNotReady)
    );
    assert_eq!(d.reason, Reason::Error);
}

#[cfg(feature = "toml")]
#[test]
fn toml_file_loads_and_reloads() {
    let path = temp_file("toml").with_extension("toml");
    write(
        &path,
        r#"
[flags.dark]
defaultVariant = "on"
variants = { on = true, off = false }
targeting = [{ when = { equals = ["country", "FR"] }, variant = "off" }]

[flags.limits]
defaultVariant = "a"
variants = { a = { max = 3 } }
"#,
        1_000,
    );
    let provider = FileProvider::open(&path).unwrap();
    assert!(dark(&provider));
    let fr = Flags::new(&provider, EvaluationContext::new().with("country", "FR"));
    assert!(!fr.is_enabled("dark"));
    assert_eq!(
        fr.json("limits", serde_json::Value::Null),
        serde_json::json!({"max": 3})
    );
    write(&path, "[flags.dark\n", 2_000);
    assert!(
        provider
            .reload()
            .unwrap_err()
            .problem()
            .contains("invalid TOML")
    );
    assert!(dark(&provider));
}
