//! The evaluation context: who is asking (targeting key) and what we know about them.

use std::collections::HashMap;

use serde::Deserialize;

/// One attribute value of an [`EvaluationContext`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum AttrValue {
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(f64),
    /// A string.
    String(String),
}

impl From<bool> for AttrValue {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}
impl From<f64> for AttrValue {
    fn from(v: f64) -> Self {
        Self::Number(v)
    }
}
impl From<i64> for AttrValue {
    fn from(v: i64) -> Self {
        Self::Number(v as f64)
    }
}
impl From<&str> for AttrValue {
    fn from(v: &str) -> Self {
        Self::String(v.to_owned())
    }
}
impl From<String> for AttrValue {
    fn from(v: String) -> Self {
        Self::String(v)
    }
}

/// The OpenFeature evaluation context: an optional targeting key plus attributes.
///
/// Rules name attributes by key; the name `targetingKey` reads the targeting key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvaluationContext {
    targeting_key: Option<String>,
    attributes: HashMap<String, AttrValue>,
}

/// The attribute name that reads the targeting key in rules.
pub const TARGETING_KEY: &str = "targetingKey";

impl EvaluationContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the targeting key (the subject, e.g. a user id).
    #[must_use]
    pub fn with_targeting_key(mut self, key: impl Into<String>) -> Self {
        self.targeting_key = Some(key.into());
        self
    }

    /// Adds an attribute.
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<AttrValue>) -> Self {
        self.attributes.insert(name.into(), value.into());
        self
    }

    /// Sets an attribute in place.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<AttrValue>) {
        self.attributes.insert(name.into(), value.into());
    }

    /// Sets the targeting key in place.
    pub fn set_targeting_key(&mut self, key: impl Into<String>) {
        self.targeting_key = Some(key.into());
    }

    /// The targeting key, if any.
    pub fn targeting_key(&self) -> Option<&str> {
        self.targeting_key.as_deref()
    }

    /// An attribute by name (the targeting key is not an attribute; see [`Self::targeting_key`]).
    pub fn attribute(&self, name: &str) -> Option<&AttrValue> {
        self.attributes.get(name)
    }

    /// A value as rules see it: `targetingKey` or an attribute, as a borrowed view.
    pub(crate) fn lookup(&self, name: &str) -> Option<AttrRef<'_>> {
        if name == TARGETING_KEY {
            return self.targeting_key.as_deref().map(AttrRef::String);
        }
        self.attributes.get(name).map(|v| match v {
            AttrValue::Bool(b) => AttrRef::Bool(*b),
            AttrValue::Number(n) => AttrRef::Number(*n),
            AttrValue::String(s) => AttrRef::String(s),
        })
    }
}

/// A borrowed attribute value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum AttrRef<'a> {
    Bool(bool),
    Number(f64),
    String(&'a str),
}

impl AttrRef<'_> {
    pub(crate) fn matches(self, v: &AttrValue) -> bool {
        match (self, v) {
            (Self::Bool(a), AttrValue::Bool(b)) => a == *b,
            (Self::Number(a), AttrValue::Number(b)) => {
                a.partial_cmp(b) == Some(std::cmp::Ordering::Equal)
            }
            (Self::String(a), AttrValue::String(b)) => a == b,
            _ => false,
        }
    }
}
