//! ECS Service Action event names, mapped to what the runbooks do with them.

use crate::outcome::Cause;

/// What a Service Action means for incidents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceActionMeaning {
    /// The service is healthy again: resolves the open incident.
    Resolves,
    /// A problem: open or update an incident with this cause (refined by diagnosis when `None`).
    Problem(Option<Cause>),
    /// Worth recording, not paging.
    Record,
}

/// Map an event name (and its type and reason) to its meaning. Unknown names
/// take a default path by `eventType`: ERROR is a problem, WARN and INFO are recorded.
pub fn meaning(event_name: &str, event_type: Option<&str>, reason: Option<&str>) -> ServiceActionMeaning {
    use ServiceActionMeaning::*;
    match event_name {
        "SERVICE_STEADY_STATE" => Resolves,
        "SERVICE_TASK_START_IMPAIRED" => Problem(None),
        "SERVICE_TASK_PLACEMENT_FAILURE" | "SERVICE_DAEMON_PLACEMENT_CONSTRAINT_VIOLATED" => {
            Problem(Some(Cause::Capacity))
        }
        "SERVICE_TASK_CONFIGURATION_FAILURE" => Problem(Some(configuration_cause(reason.unwrap_or_default()))),
        "SERVICE_HEALTH_UNKNOWN" | "SERVICE_DISCOVERY_INSTANCE_UNHEALTHY" => Problem(Some(Cause::HealthCheck)),
        "ECS_OPERATION_THROTTLED" | "SERVICE_DISCOVERY_OPERATION_THROTTLED" | "SERVICE_TASK_START_DELAYED" => Record,
        _ => match event_type.map(str::to_ascii_uppercase).as_deref() {
            Some("ERROR") => Problem(None),
            _ => Record,
        },
    }
}

fn configuration_cause(reason: &str) -> Cause {
    let r = reason.to_ascii_lowercase();
    if r.contains("secret") || r.contains("ssm") || r.contains("parameter") {
        Cause::Secrets
    } else if r.contains("subnet") || r.contains("security group") || r.contains("eni") {
        Cause::Network
    } else if r.contains("image") || r.contains("repository") {
        Cause::ImagePull
    } else {
        Cause::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::ServiceActionMeaning::*;
    use super::*;

    #[test]
    fn each_service_action_resolves_opens_a_problem_or_is_recorded() {
        let cases = [
            ("SERVICE_STEADY_STATE", Some("INFO"), None, Resolves),
            ("SERVICE_TASK_START_IMPAIRED", Some("WARN"), None, Problem(None)),
            ("SERVICE_TASK_PLACEMENT_FAILURE", Some("ERROR"), Some("RESOURCE:FARGATE"), Problem(Some(Cause::Capacity))),
            (
                "SERVICE_TASK_CONFIGURATION_FAILURE",
                Some("ERROR"),
                Some("ACCESS_DENIED: cannot read secret arn:aws:secretsmanager:…"),
                Problem(Some(Cause::Secrets)),
            ),
            (
                "SERVICE_TASK_CONFIGURATION_FAILURE",
                Some("ERROR"),
                Some("subnet not found"),
                Problem(Some(Cause::Network)),
            ),
            ("SERVICE_TASK_CONFIGURATION_FAILURE", Some("ERROR"), None, Problem(Some(Cause::Unknown))),
            ("SERVICE_HEALTH_UNKNOWN", Some("WARN"), None, Problem(Some(Cause::HealthCheck))),
            ("ECS_OPERATION_THROTTLED", Some("WARN"), None, Record),
            ("SERVICE_SOMETHING_NEW", Some("WARN"), None, Record),
            ("SERVICE_SOMETHING_NEW", Some("ERROR"), None, Problem(None)),
            ("SERVICE_SOMETHING_NEW", None, None, Record),
        ];
        for (name, t, reason, expected) in cases {
            assert_eq!(meaning(name, t, reason), expected, "{name} {reason:?}");
        }
    }
}
