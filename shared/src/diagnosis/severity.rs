//! Severity after the runbooks (docs/ARCHITECTURE.md, "Causes"): SEV1 service down, SEV2 degraded,
//! SEV3 warning. Pure; the reasons are shown to people.

use crate::outcome::Severity;

/// What kind of signal is being graded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A service task stopped for a failure.
    TaskFailed,
    /// ECS reported the deployment FAILED (or its circuit breaker rolled back).
    DeploymentFailed,
    /// A Service Action warning or error (start impaired, placement failure, …).
    ServiceWarning,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeverityInput {
    pub signal: Signal,
    /// `(running, desired)` from the service description, when it was read.
    pub tasks: Option<(i32, i32)>,
    /// `(healthy, total)` over the service's target groups, when read.
    pub targets: Option<(usize, usize)>,
    /// Failed tasks of this service within the incident window.
    pub recent_failures: u32,
    pub crash_loop_threshold: u32,
}

/// The severity and the facts that set it.
pub fn grade(input: &SeverityInput) -> (Severity, Vec<String>) {
    let mut reasons = Vec::new();
    if let Some((running, desired)) = input.tasks
        && desired > 0
        && running == 0
    {
        reasons.push(format!("service down: 0 of {desired} tasks running"));
    }
    if let Some((healthy, total)) = input.targets
        && total > 0
        && healthy == 0
    {
        reasons.push(format!("no healthy target: 0 of {total} targets healthy"));
    }
    if !reasons.is_empty() {
        return (Severity::Sev1, reasons);
    }
    if input.signal == Signal::DeploymentFailed {
        return (Severity::Sev2, vec!["deployment failed".into()]);
    }
    if input.recent_failures >= input.crash_loop_threshold.max(1) {
        return (
            Severity::Sev2,
            vec![format!("crash loop: {} tasks failed within the incident window", input.recent_failures)],
        );
    }
    let why = match input.signal {
        Signal::TaskFailed => {
            format!("{} task failure(s), below the crash-loop threshold", input.recent_failures.max(1))
        }
        _ => "service reported a warning".into(),
    };
    (Severity::Sev3, vec![why])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(
        signal: Signal,
        tasks: Option<(i32, i32)>,
        targets: Option<(usize, usize)>,
        failures: u32,
    ) -> SeverityInput {
        SeverityInput { signal, tasks, targets, recent_failures: failures, crash_loop_threshold: 3 }
    }

    #[test]
    fn severity_follows_the_runbooks_down_degraded_and_warning_thresholds() {
        use Severity::*;
        use Signal::*;
        let cases = [
            (input(TaskFailed, Some((0, 3)), None, 1), Sev1, "nothing running"),
            (input(TaskFailed, Some((2, 3)), Some((0, 2)), 1), Sev1, "no healthy target"),
            (input(ServiceWarning, Some((0, 2)), Some((0, 0)), 0), Sev1, "down, no targets registered"),
            (input(DeploymentFailed, Some((3, 3)), Some((3, 3)), 0), Sev2, "failed deployment"),
            (input(TaskFailed, Some((2, 3)), Some((2, 2)), 3), Sev2, "crash loop at threshold"),
            (input(TaskFailed, Some((2, 3)), None, 50), Sev2, "storm"),
            (input(TaskFailed, Some((2, 3)), Some((2, 2)), 1), Sev3, "single failure"),
            (input(ServiceWarning, Some((3, 3)), None, 0), Sev3, "start impaired, still running"),
            (input(TaskFailed, None, None, 1), Sev3, "nothing known"),
            (input(TaskFailed, Some((0, 0)), None, 1), Sev3, "scaled to zero is not down"),
            (input(TaskFailed, Some((1, 3)), Some((0, 0)), 2), Sev3, "no targets registered is not all unhealthy"),
        ];
        for (i, expected, why) in cases {
            assert_eq!(grade(&i).0, expected, "{why}: {i:?}");
        }
    }

    #[test]
    fn sev1_should_name_every_reason() {
        let (s, reasons) = grade(&input(Signal::TaskFailed, Some((0, 4)), Some((0, 4)), 9));
        assert_eq!(s, Severity::Sev1);
        assert_eq!(reasons.len(), 2, "{reasons:?}");
    }
}
