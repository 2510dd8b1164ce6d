//! Route names are the instance names of the routes' layers, so two routes' limiters (or
//! bulkheads, breakers) are two series in the events and metrics.

use std::sync::LazyLock;

use palisade_test::EventRecorder;

use crate::support::Server;

/// Every event of this process since the listener was set.
static SEEN: LazyLock<EventRecorder> = LazyLock::new(EventRecorder::new);

/// `(layer, event)` of the events of `instance`.
fn seen(instance: &str) -> Vec<(&'static str, &'static str)> {
    SEEN.all()
        .iter()
        .filter(|r| r.instance == instance)
        .map(|r| (r.layer, r.name))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn each_route_names_its_layers_unless_a_section_names_itself() {
    let record = SEEN.listener();
    let set = palisade_core::event::set_global_listener(move |e: &dyn palisade_core::Event| {
        record.on_event(e);
    });
    assert!(set, "the only global listener of this test binary");
    let s = Server::toml(
        r#"
        [defaults]
        rate_limit = { quotas = [{ limit = 1, window = "1h" }], response_headers = false }
        [[routes]]
        name = "instance-orders-a"
        match = { prefix = "/instance/a" }
        [[routes]]
        name = "instance-orders-b"
        match = { prefix = "/instance/b" }
        [[routes]]
        match = { path = "/instance/{x}" }
        [[routes]]
        name = "instance-orders-d"
        match = { prefix = "/instance-d" }
        rate_limit = { name = "instance-own-name" }
        [fallback]
        rate_limit = false
        "#,
    );
    for path in ["/instance/a", "/instance/b", "/instance/c", "/instance-d"] {
        assert_eq!(s.status(path).await, 200, "{path}");
        assert_eq!(s.status(path).await, 429, "{path}");
    }
    let two = [("ratelimit", "allowed"), ("ratelimit", "limited")];
    assert_eq!(seen("instance-orders-a"), two);
    assert_eq!(seen("instance-orders-b"), two);
    // An unnamed route is named by its matcher, spaces made `_`.
    assert_eq!(seen("path_/instance/{x}"), two);
    // A section's own `name` wins over the route's.
    assert_eq!(seen("instance-own-name"), two);
    assert_eq!(seen("instance-orders-d"), []);
}
