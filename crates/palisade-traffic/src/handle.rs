//! Runtime control of a [`Split`](crate::Split): weights, blue-green switch, drain, rules.

use std::sync::Arc;

use arc_swap::ArcSwap;
use http::{HeaderName, HeaderValue};
use palisade_core::event::{InstanceName, WeightGauge};
use palisade_core::{ConfigError, Listeners};

use crate::events::TrafficEvent;
use crate::rng::Rng;
use crate::route::{CompiledRule, Routing, Rule};
use crate::stats::{ArmSnapshot, ArmStats};

/// State shared by every clone of a `Split` and its handles.
#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) names: Vec<Arc<str>>,
    pub(crate) header_values: Vec<HeaderValue>,
    pub(crate) routing: ArcSwap<Routing>,
    pub(crate) stats: Vec<ArmStats>,
    pub(crate) listeners: Listeners<TrafficEvent>,
    pub(crate) rng: Rng,
    pub(crate) override_header: Option<HeaderName>,
    pub(crate) override_cookie: Option<Arc<str>>,
    pub(crate) override_access: Option<crate::access::OverrideAccess>,
    pub(crate) response_header: Option<HeaderName>,
}

impl Control {
    pub(crate) fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| &**n == name)
    }

    pub(crate) fn index_or_err(
        &self,
        field: &'static str,
        name: &str,
    ) -> Result<usize, ConfigError> {
        self.index(name).ok_or_else(|| {
            ConfigError::new(
                field,
                format!("unknown arm {name:?}; arms are {:?}", self.names),
            )
        })
    }

    pub(crate) fn compile_rules(&self, rules: &[Rule]) -> Result<Vec<CompiledRule>, ConfigError> {
        rules
            .iter()
            .map(|r| {
                Ok(CompiledRule {
                    matcher: r.matcher.clone(),
                    arm: self.index_or_err("rules", &r.arm)?,
                })
            })
            .collect()
    }
}

pub(crate) fn check_weights(
    weights: &[u32],
    drained: &[bool],
    arms: usize,
) -> Result<(), ConfigError> {
    if weights.len() != arms {
        return Err(ConfigError::new(
            "weights",
            format!(
                "expected {arms} weights (one per arm), got {}",
                weights.len()
            ),
        ));
    }
    if weights.iter().any(|&w| w > 1_000_000) {
        return Err(ConfigError::new(
            "weights",
            "each weight must be in 0..=1000000",
        ));
    }
    if !weights.iter().zip(drained).any(|(&w, &d)| w > 0 && !d) {
        return Err(ConfigError::new(
            "weights",
            "at least one non-drained arm needs a weight > 0",
        ));
    }
    Ok(())
}

/// A cloneable handle controlling a [`Split`](crate::Split) at runtime.
///
/// Every change publishes a new routing snapshot atomically (`arc-swap`); a request picks its
/// arm once, in `call`, so in-flight requests finish on the arm they started on.
#[derive(Debug, Clone)]
pub struct SplitHandle {
    pub(crate) control: Arc<Control>,
}

impl SplitHandle {
    /// Arm names, in order.
    pub fn arms(&self) -> Vec<&str> {
        self.control.names.iter().map(|n| &**n).collect()
    }

    /// Current relative weights, in arm order.
    pub fn weights(&self) -> Vec<u32> {
        self.control.routing.load().weights.clone()
    }

    /// Share of weighted traffic (0.0..=100.0) `arm` currently gets (0 for drained arms).
    pub fn share(&self, arm: &str) -> Option<f64> {
        let i = self.control.index(arm)?;
        Some(self.control.routing.load().share(i))
    }

    /// Whether `arm` is drained.
    pub fn is_drained(&self, arm: &str) -> Option<bool> {
        let i = self.control.index(arm)?;
        Some(self.control.routing.load().drained[i])
    }

    fn update(
        &self,
        f: impl Fn(&Routing) -> Result<Routing, ConfigError>,
    ) -> Result<(), ConfigError> {
        let mut err = None;
        self.control.routing.rcu(|cur| match f(cur) {
            Ok(next) => Arc::new(next),
            Err(e) => {
                err = Some(e);
                Arc::clone(cur)
            }
        });
        err.map_or(Ok(()), Err)
    }

    /// Sets the relative weights (one per arm, in arm order; any scale, e.g. percent).
    /// Drained arms keep weight 0 in effect until [`undrain`](Self::undrain).
    pub fn set_weights(&self, weights: &[u32]) -> Result<(), ConfigError> {
        self.update(|cur| {
            check_weights(weights, &cur.drained, cur.weights.len())?;
            Ok(Routing::new(
                weights.to_vec(),
                cur.drained.clone(),
                cur.rules.clone(),
            ))
        })?;
        self.control
            .listeners
            .emit_named(|instance| TrafficEvent::WeightChanged {
                instance,
                weights: weights.to_vec(),
            });
        Ok(())
    }

    /// Blue-green: sends all weighted traffic to `arm` at once (weight 100, others 0) and
    /// undrains it. Requests already in flight complete on their arm.
    pub fn switch_to(&self, arm: &str) -> Result<(), ConfigError> {
        let i = self.control.index_or_err("arm", arm)?;
        self.update(|cur| {
            let mut weights = vec![0; cur.weights.len()];
            weights[i] = 100;
            let mut drained = cur.drained.clone();
            drained[i] = false;
            Ok(Routing::new(weights, drained, cur.rules.clone()))
        })?;
        self.control
            .listeners
            .emit_named(|instance| TrafficEvent::Switched {
                instance,
                arm: self.control.names[i].clone(),
            });
        Ok(())
    }

    /// Drains `arm`: its effective weight becomes 0 and the override and rules stop sending
    /// to it (they fall through to the weights), so no new request or sticky key lands on
    /// it. Fails if it is the last arm with weight.
    pub fn drain(&self, arm: &str) -> Result<(), ConfigError> {
        let i = self.control.index_or_err("arm", arm)?;
        self.update(|cur| {
            let mut drained = cur.drained.clone();
            drained[i] = true;
            check_weights(&cur.weights, &drained, cur.weights.len())?;
            Ok(Routing::new(
                cur.weights.clone(),
                drained,
                cur.rules.clone(),
            ))
        })?;
        self.control
            .listeners
            .emit_named(|instance| TrafficEvent::Drained {
                instance,
                arm: self.control.names[i].clone(),
            });
        Ok(())
    }

    /// Undoes [`drain`](Self::drain) (its previous weight applies again).
    pub fn undrain(&self, arm: &str) -> Result<(), ConfigError> {
        let i = self.control.index_or_err("arm", arm)?;
        self.update(|cur| {
            let mut drained = cur.drained.clone();
            drained[i] = false;
            Ok(Routing::new(
                cur.weights.clone(),
                drained,
                cur.rules.clone(),
            ))
        })
    }

    /// Replaces the match rules (strangler fig: add one prefix rule per migrated route).
    pub fn set_rules(&self, rules: &[Rule]) -> Result<(), ConfigError> {
        let compiled = self.control.compile_rules(rules)?;
        self.update(|cur| {
            Ok(Routing::new(
                cur.weights.clone(),
                cur.drained.clone(),
                compiled.clone(),
            ))
        })
    }

    /// Cumulative success/failure counts and latency histogram of `arm`.
    pub fn stats(&self, arm: &str) -> Option<ArmSnapshot> {
        let i = self.control.index(arm)?;
        Some(self.control.stats[i].snapshot())
    }

    pub(crate) fn emit(&self, f: impl FnOnce(InstanceName) -> TrafficEvent) {
        self.control.listeners.emit_named(f);
    }

    /// The split's name (its builder's `name`, or `"traffic"`).
    pub fn name(&self) -> &InstanceName {
        self.control.listeners.instance()
    }
}

/// Live traffic shares for metrics exporters: each arm's [`share`](SplitHandle::share), in
/// percent (0.0..=100.0).
impl WeightGauge for SplitHandle {
    fn shares(&self) -> Vec<(Arc<str>, f64)> {
        self.control
            .names
            .iter()
            .map(|arm| (arm.clone(), self.share(arm).unwrap_or(0.0)))
            .collect()
    }
    fn instance(&self) -> InstanceName {
        self.name().clone()
    }
}

#[cfg(test)]
mod tests {
    use palisade_core::event::WeightGauge;

    #[test]
    fn gauge_shares_are_percentages() {
        let (_split, handle) = crate::Split::builder::<()>()
            .arm("stable", ())
            .arm("canary", ())
            .weights([70, 30])
            .build()
            .unwrap();
        let shares = WeightGauge::shares(&handle);
        assert!((shares[0].1 - 70.0).abs() < 1e-9, "{shares:?}");
        assert!((shares[1].1 - 30.0).abs() < 1e-9, "{shares:?}");
    }
}
