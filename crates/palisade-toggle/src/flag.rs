//! The flag model: variants, a default variant, state and targeting rules.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use palisade_core::ConfigError;
use serde::Deserialize;

use crate::context::{AttrRef, AttrValue, EvaluationContext};
use crate::murmur;
use crate::semver;

/// A variant's value.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum FlagValue {
    /// A boolean flag value.
    Bool(bool),
    /// A number flag value.
    Number(f64),
    /// A string flag value.
    String(String),
    /// A structured (JSON object or array) flag value.
    Json(serde_json::Value),
}

impl FlagValue {
    /// The type name, as used in TYPE_MISMATCH messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Bool(_) => "boolean",
            Self::Number(_) => "number",
            Self::String(_) => "string",
            Self::Json(_) => "object",
        }
    }
}

/// Whether a flag is evaluated at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum FlagState {
    /// Evaluated normally.
    #[default]
    Enabled,
    /// Evaluation returns the caller's default with reason `DISABLED`.
    Disabled,
}

/// A comparison operator for [`Condition::Semver`] and [`Condition::Compare`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum CmpOp {
    /// Equal.
    #[serde(rename = "=")]
    Eq,
    /// Not equal.
    #[serde(rename = "!=")]
    Ne,
    /// Less than.
    #[serde(rename = "<")]
    Lt,
    /// Less than or equal.
    #[serde(rename = "<=")]
    Le,
    /// Greater than.
    #[serde(rename = ">")]
    Gt,
    /// Greater than or equal.
    #[serde(rename = ">=")]
    Ge,
}

impl CmpOp {
    fn holds(self, o: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match self {
            Self::Eq => o == Equal,
            Self::Ne => o != Equal,
            Self::Lt => o == Less,
            Self::Le => o != Greater,
            Self::Gt => o == Greater,
            Self::Ge => o != Less,
        }
    }
}

/// A targeting condition over the [`EvaluationContext`]. An absent attribute (or one of the
/// wrong type) makes every leaf condition false.
///
/// JSON form: `{"equals": ["country", "FR"]}`, `{"in": ["plan", ["pro", "team"]]}`,
/// `{"starts_with": ["email", "admin@"]}`, `{"ends_with": ["email", "@acme.io"]}`,
/// `{"semver": ["app_version", ">=", "2.1.0"]}`, `{"compare": ["age", ">=", 18]}`,
/// `{"and": [..]}`, `{"or": [..]}`, `{"not": {..}}`, `"always"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Always true.
    Always,
    /// The attribute equals the value (same type).
    Equals(String, AttrValue),
    /// The attribute equals one of the values.
    In(String, Vec<AttrValue>),
    /// The string attribute starts with the prefix.
    StartsWith(String, String),
    /// The string attribute ends with the suffix.
    EndsWith(String, String),
    /// The string attribute, parsed as a semantic version, compares to the version.
    Semver(String, CmpOp, String),
    /// The number attribute compares to the number.
    Compare(String, CmpOp, f64),
    /// All hold (true when empty).
    And(Vec<Condition>),
    /// One holds (false when empty).
    Or(Vec<Condition>),
    /// Negation.
    Not(Box<Condition>),
}

impl Condition {
    /// Whether the condition holds for `ctx`.
    pub fn matches(&self, ctx: &EvaluationContext) -> bool {
        match self {
            Self::Always => true,
            Self::Equals(a, v) => ctx.lookup(a).is_some_and(|x| x.matches(v)),
            Self::In(a, vs) => ctx
                .lookup(a)
                .is_some_and(|x| vs.iter().any(|v| x.matches(v))),
            Self::StartsWith(a, p) => {
                matches!(ctx.lookup(a), Some(AttrRef::String(s)) if s.starts_with(p.as_str()))
            }
            Self::EndsWith(a, p) => {
                matches!(ctx.lookup(a), Some(AttrRef::String(s)) if s.ends_with(p.as_str()))
            }
            Self::Semver(a, op, v) => match (ctx.lookup(a), semver::parse(v)) {
                (Some(AttrRef::String(s)), Some(want)) => {
                    semver::parse(s).is_some_and(|have| op.holds(have.cmp(&want)))
                }
                _ => false,
            },
            Self::Compare(a, op, n) => match ctx.lookup(a) {
                Some(AttrRef::Number(x)) => x.partial_cmp(n).is_some_and(|o| op.holds(o)),
                _ => false,
            },
            Self::And(cs) => cs.iter().all(|c| c.matches(ctx)),
            Self::Or(cs) => cs.iter().any(|c| c.matches(ctx)),
            Self::Not(c) => !c.matches(ctx),
        }
    }
}

/// A fractional (percentage) split, flagd-compatible: the bucketing value (the `by`
/// attribute, else `flagKey + targetingKey` with no separator) is hashed with murmur3 x86_32,
/// seed 0, as a `u32` `h`; `bucket = (h × total_weight) >> 32` in 64-bit arithmetic, and the
/// first variant whose cumulative weight exceeds the bucket wins. Without a bucketing value
/// the rule yields nothing and the flag's default variant applies.
///
/// JSON form: `{"by": "email"?, "split": [["red", 50], ["blue", 20], ["green", 30]]}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fractional {
    /// The attribute whose string value buckets the subject, used as is; when absent,
    /// `flagKey + targetingKey` (no separator).
    #[serde(default)]
    pub by: Option<String>,
    /// `(variant, weight)` pairs, in order; weights are non-negative integers.
    pub split: Vec<(String, u32)>,
}

impl Fractional {
    /// A split over `flagKey + targetingKey`.
    pub fn new<S: Into<String>>(split: impl IntoIterator<Item = (S, u32)>) -> Self {
        Self {
            by: None,
            split: split.into_iter().map(|(v, w)| (v.into(), w)).collect(),
        }
    }

    /// Buckets by an attribute instead of `flagKey + targetingKey`.
    #[must_use]
    pub fn by(mut self, attribute: impl Into<String>) -> Self {
        self.by = Some(attribute.into());
        self
    }

    fn total(&self) -> u64 {
        self.split.iter().map(|(_, w)| u64::from(*w)).sum()
    }

    /// The variant for `ctx`, or `None` when there is no bucketing value.
    pub fn pick(&self, flag_key: &str, ctx: &EvaluationContext) -> Option<&str> {
        let hash = match &self.by {
            Some(attr) => match ctx.lookup(attr) {
                Some(AttrRef::String(s)) => murmur::murmur3_x86_32(s.as_bytes(), 0),
                _ => return None,
            },
            None => murmur::murmur3_concat(flag_key.as_bytes(), ctx.targeting_key()?.as_bytes()),
        };
        let total = self.total() as u32;
        let bucket = murmur::bucket(hash, total);
        let mut acc: u32 = 0;
        for (variant, w) in &self.split {
            acc += *w;
            if acc > bucket {
                return Some(variant);
            }
        }
        None
    }
}

/// What a matching rule resolves to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Then {
    /// A fixed variant (reason `TARGETING_MATCH`).
    Variant(String),
    /// A fractional split (reason `SPLIT`).
    Fractional(Fractional),
}

/// One targeting rule: when the condition holds, resolve to `then`. Rules are tried in order.
///
/// JSON form: `{"when": <condition>, "variant": "on"}` or `{"when": .., "fractional": {..}}`
/// (`when` defaults to `"always"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TargetingRule {
    /// The condition.
    #[serde(default = "always")]
    pub when: Condition,
    /// The outcome.
    #[serde(flatten)]
    pub then: Then,
}

fn always() -> Condition {
    Condition::Always
}

impl TargetingRule {
    /// A rule resolving to a fixed variant.
    pub fn variant(when: Condition, variant: impl Into<String>) -> Self {
        Self {
            when,
            then: Then::Variant(variant.into()),
        }
    }
    /// A rule resolving through a fractional split.
    pub fn fractional(when: Condition, fractional: Fractional) -> Self {
        Self {
            when,
            then: Then::Fractional(fractional),
        }
    }
}

/// A feature flag.
///
/// JSON form (flagd-like): `{"state": "ENABLED", "variants": {"on": true, "off": false},
/// "defaultVariant": "off", "targeting": [<rule>, ..]}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Flag {
    /// Enabled or disabled.
    #[serde(default)]
    pub state: FlagState,
    /// The variants by name; all of one type.
    pub variants: BTreeMap<String, FlagValue>,
    /// The variant used when no rule matches.
    pub default_variant: String,
    /// Targeting rules, in order.
    #[serde(default)]
    pub targeting: Vec<TargetingRule>,
}

impl Flag {
    /// A flag with these variants and default variant, enabled, without targeting.
    pub fn new<S: Into<String>>(
        variants: impl IntoIterator<Item = (S, FlagValue)>,
        default_variant: impl Into<String>,
    ) -> Self {
        Self {
            state: FlagState::Enabled,
            variants: variants.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            default_variant: default_variant.into(),
            targeting: Vec::new(),
        }
    }

    /// A boolean flag with variants `on`/`off`, defaulting to `on` when `on` is true.
    pub fn boolean(on: bool) -> Self {
        Self::new(
            [
                ("on", FlagValue::Bool(true)),
                ("off", FlagValue::Bool(false)),
            ],
            if on { "on" } else { "off" },
        )
    }

    /// Adds a targeting rule.
    #[must_use]
    pub fn rule(mut self, rule: TargetingRule) -> Self {
        self.targeting.push(rule);
        self
    }

    /// Sets the state.
    #[must_use]
    pub fn state(mut self, state: FlagState) -> Self {
        self.state = state;
        self
    }

    /// Checks the flag: the default variant and every rule's variants exist, variants share a
    /// type, split weights sum to 1..=2^31−1.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.variants.contains_key(&self.default_variant) {
            return Err(ConfigError::new(
                "defaultVariant",
                format!("`{}` is not one of the variants", self.default_variant),
            ));
        }
        let mut types = self.variants.values().map(FlagValue::type_name);
        if let Some(first) = types.next()
            && types.any(|t| t != first)
        {
            return Err(ConfigError::new(
                "variants",
                "all variants must have the same type",
            ));
        }
        for (i, rule) in self.targeting.iter().enumerate() {
            let field = format!("targeting[{i}]");
            match &rule.then {
                Then::Variant(v) => {
                    if !self.variants.contains_key(v) {
                        return Err(ConfigError::new(field, format!("unknown variant `{v}`")));
                    }
                }
                Then::Fractional(f) => {
                    if let Some((v, _)) =
                        f.split.iter().find(|(v, _)| !self.variants.contains_key(v))
                    {
                        return Err(ConfigError::new(field, format!("unknown variant `{v}`")));
                    }
                    let total = f.total();
                    if total == 0 || total > i32::MAX as u64 {
                        return Err(ConfigError::new(
                            field,
                            "split weights must sum to 1..=2147483647",
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Resolves the variant for `ctx` (ignores the state): `(variant, reason)`.
    pub(crate) fn resolve<'a>(
        &'a self,
        key: &str,
        ctx: &EvaluationContext,
    ) -> (&'a str, crate::Reason) {
        use crate::Reason;
        for rule in &self.targeting {
            if !rule.when.matches(ctx) {
                continue;
            }
            match &rule.then {
                Then::Variant(v) => return (v, Reason::TargetingMatch),
                Then::Fractional(f) => {
                    if let Some(v) = f.pick(key, ctx) {
                        return (v, Reason::Split);
                    }
                }
            }
        }
        let reason = if self.targeting.is_empty() {
            Reason::Static
        } else {
            Reason::Default
        };
        (&self.default_variant, reason)
    }
}

/// A validated set of flags by key: what providers hand out as immutable snapshots.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlagSet {
    flags: HashMap<String, Arc<Flag>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlagFile {
    flags: HashMap<String, Flag>,
}

impl FlagSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a flag after validating it.
    pub fn insert(&mut self, key: impl Into<String>, flag: Flag) -> Result<(), ConfigError> {
        let key = key.into();
        flag.validate()
            .map_err(|e| e.within(&format!("flags.{key}")))?;
        self.flags.insert(key, Arc::new(flag));
        Ok(())
    }

    /// Adds a flag (builder form); panics on an invalid flag — use [`Self::insert`] for input.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, flag: Flag) -> Self {
        if let Err(e) = self.insert(key, flag) {
            panic!("invalid flag: {e}");
        }
        self
    }

    /// Parses a flagd-like JSON document `{"flags": {"key": {..}}}` and validates every flag.
    pub fn from_json(json: &str) -> Result<Self, ConfigError> {
        let file: FlagFile = serde_json::from_str(json)
            .map_err(|e| ConfigError::new("flags", format!("invalid JSON: {e}")))?;
        let mut set = Self::new();
        for (k, f) in file.flags {
            set.insert(k, f)?;
        }
        Ok(set)
    }

    /// Parses the TOML form of [`Self::from_json`]'s document (`[flags.key]` tables).
    #[cfg(feature = "toml")]
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let file: FlagFile = toml::from_str(text)
            .map_err(|e| ConfigError::new("flags", format!("invalid TOML: {e}")))?;
        let mut set = Self::new();
        for (k, f) in file.flags {
            set.insert(k, f)?;
        }
        Ok(set)
    }

    /// A flag by key.
    pub fn get(&self, key: &str) -> Option<&Flag> {
        self.flags.get(key).map(|f| &**f)
    }

    /// Number of flags.
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }
}
