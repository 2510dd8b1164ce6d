//! `grpc.health.v1` fed by the registry, through tonic-health.

use std::fmt;
use std::time::Duration;

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::check::Status;
use crate::registry::HealthRegistry;

/// Maps the registry's status to gRPC `ServingStatus` per service name and pushes changes
/// to a tonic-health [`HealthReporter`] (so `Check` answers and `Watch` streams update).
///
/// A service is NOT_SERVING when the registry is draining or one of its critical checks
/// fails, SERVING otherwise. The whole server (`""`) follows all checks.
///
/// ```
/// use tonic_health::ServingStatus;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let registry = palisade_health::HealthRegistry::new();
/// let (reporter, health_server) = tonic_health::server::health_reporter();
/// let grpc = palisade_health::GrpcHealth::new(registry.clone())
///     .service("echo.Echo", ["db:responseTime"]);
/// registry.set_draining(true);
/// assert_eq!(grpc.statuses().await, [
///     (String::new(), ServingStatus::NotServing),
///     ("echo.Echo".to_owned(), ServingStatus::NotServing),
/// ]);
/// let _task = grpc.spawn(reporter);
/// // tonic::transport::Server::builder().add_service(health_server) ...
/// # drop(health_server);
/// # }
/// ```
pub struct GrpcHealth {
    registry: HealthRegistry,
    services: Vec<(String, Vec<String>)>,
    poll: Duration,
}

impl fmt::Debug for GrpcHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcHealth")
            .field("services", &self.services)
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

impl GrpcHealth {
    /// Reports the whole server (`""`) from every check of `registry`.
    pub fn new(registry: HealthRegistry) -> Self {
        Self {
            registry,
            services: vec![(String::new(), Vec::new())],
            poll: Duration::from_secs(1),
        }
    }

    /// Adds a service name (e.g. `"echo.Echo"`) whose status follows the named checks
    /// (all checks when empty).
    #[must_use]
    pub fn service<I, S>(mut self, name: impl Into<String>, checks: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.services
            .push((name.into(), checks.into_iter().map(Into::into).collect()));
        self
    }

    /// How often the registry is re-read when nothing signals a change (default 1 s);
    /// needed when checks run on demand rather than in the background. Kept within 10 ms
    /// to 1 h (a zero interval would be a busy loop).
    #[must_use]
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll.clamp(Duration::from_millis(10), Duration::from_secs(3600));
        self
    }

    /// The current status of every configured service.
    pub async fn statuses(&self) -> Vec<(String, ServingStatus)> {
        let report = self.registry.report().await;
        self.services
            .iter()
            .map(|(name, checks)| {
                let names: Vec<&str> = checks.iter().map(String::as_str).collect();
                let status = if report.status_of(&names) == Status::Fail {
                    ServingStatus::NotServing
                } else {
                    ServingStatus::Serving
                };
                (name.clone(), status)
            })
            .collect()
    }

    /// Pushes the current statuses to `reporter`, then every change, until the returned
    /// task is aborted.
    pub fn spawn(self, reporter: HealthReporter) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut changes = self.registry.subscribe();
            let mut last: Vec<Option<ServingStatus>> = vec![None; self.services.len()];
            loop {
                changes.borrow_and_update();
                for (i, (name, status)) in self.statuses().await.into_iter().enumerate() {
                    if last[i] != Some(status) {
                        reporter.set_service_status(&name, status).await;
                        last[i] = Some(status);
                    }
                }
                tokio::select! {
                    res = changes.changed() => if res.is_err() { return },
                    () = tokio::time::sleep(self.poll) => {}
                }
            }
        })
    }
}
