//! Edge cases pinned for mutation testing (see the crate docs, "Mutation testing").

mod support;

use palisade_idempotency::{IdempotencyLayer, MemoryStore};
use support::Handler;
use tower::Layer;

/// The service's `Debug` names its inner service, settings, store and scope.
#[test]
fn debug_shows_inner_settings_store_and_scope() {
    let svc = IdempotencyLayer::new(MemoryStore::new()).layer(Handler::new());
    let text = format!("{svc:?}");
    assert!(text.starts_with("Idempotency { inner: Handler("), "{text}");
    for field in ["settings: ", "store: MemoryStore {", "scope: "] {
        assert!(text.contains(field), "{field} in {text}");
    }
}
