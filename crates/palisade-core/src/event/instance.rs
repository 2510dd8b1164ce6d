//! [`InstanceName`]: the name a layer instance was given in code or config.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// The name of one layer instance (`"payments"`, `"db"`), given with a layer's `.name(..)`
/// setter or its config's `name` field, and carried by every event it emits, so listeners
/// (metrics, logs) can tell two bulkheads or two retry layers apart.
///
/// Cheap to clone: a `&'static str` is copied, a name from config is an `Arc<str>` whose
/// count is bumped; emitting an event never allocates a name. Compares, hashes and prints
/// as the string it holds.
///
/// ```
/// use palisade_core::event::InstanceName;
///
/// let from_code = InstanceName::from("payments");
/// let from_config = InstanceName::from(String::from("payments"));
/// assert_eq!(from_code, from_config);
/// assert_eq!(from_code, "payments");
/// assert_eq!(from_config.as_str(), "payments");
/// ```
#[derive(Clone)]
pub struct InstanceName(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
}

impl InstanceName {
    /// A name fixed in code, usable in `const` items.
    pub const fn new_static(name: &'static str) -> Self {
        Self(Repr::Static(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Shared(s) => s,
        }
    }

    /// The name as `&'static str` if it was given as one (a name fixed in code), so a
    /// listener can use it without copying.
    pub fn as_static(&self) -> Option<&'static str> {
        match &self.0 {
            Repr::Static(s) => Some(s),
            Repr::Shared(_) => None,
        }
    }

    /// The name as an `Arc<str>` (copied once if it was a `&'static str`).
    pub fn to_arc(&self) -> Arc<str> {
        match &self.0 {
            Repr::Static(s) => Arc::from(*s),
            Repr::Shared(s) => s.clone(),
        }
    }
}

impl Default for InstanceName {
    /// The empty name: an instance nobody named (a layer's builder replaces it with the
    /// layer's own name, e.g. `"bulkhead"`).
    fn default() -> Self {
        Self::new_static("")
    }
}

impl Deref for InstanceName {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for InstanceName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for InstanceName {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&'static str> for InstanceName {
    fn from(name: &'static str) -> Self {
        Self::new_static(name)
    }
}

impl From<String> for InstanceName {
    fn from(name: String) -> Self {
        Self(Repr::Shared(name.into()))
    }
}

impl From<&String> for InstanceName {
    fn from(name: &String) -> Self {
        Self(Repr::Shared(name.as_str().into()))
    }
}

impl From<Arc<str>> for InstanceName {
    fn from(name: Arc<str>) -> Self {
        Self(Repr::Shared(name))
    }
}

impl PartialEq for InstanceName {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for InstanceName {}

impl PartialEq<str> for InstanceName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for InstanceName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialOrd for InstanceName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InstanceName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for InstanceName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn static_and_shared_names_are_one_value() {
        let a = InstanceName::from("db");
        let b = InstanceName::from(String::from("db"));
        assert_eq!(a, b);
        assert_eq!(a.as_static(), Some("db"));
        assert_eq!(b.as_static(), None);
        assert_eq!(&*b.to_arc(), "db");
        let set: HashSet<InstanceName> = [a, b].into_iter().collect();
        assert_eq!(set.len(), 1);
        assert!(set.contains("db"));
        assert_eq!(format!("{:?}", InstanceName::default()), "\"\"");
    }
}
