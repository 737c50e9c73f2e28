//! The payload ECS sends a Lambda deployment lifecycle hook.
//!
//! Documented by AWS ("Lifecycle hooks for Amazon ECS service deployments",
//! <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-lifecycle-hooks.html>,
//! and "Lambda hooks for Amazon ECS service deployments",
//! <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/lambda-lifecycle-hooks.html>):
//! every stage's payload carries `serviceArn`, `targetServiceRevisionArn`,
//! `testTrafficWeights` and `productionTrafficWeights` (maps of service
//! revision ARN to a percentage); the invocation wraps them in
//! `executionDetails` beside `lifecycleStage`, `executionId`, `resourceArn`
//! (the service deployment) and `hookDetails` — the hook configuration's
//! `hookDetails`, or what the previous `IN_PROGRESS` answer returned.
//!
//! Parsing is lenient: the common fields are read from `executionDetails`
//! and, failing that, from the top level (the per-stage examples of the
//! developer guide show them there); unknown fields are ignored; the
//! weights may be numbers or strings; `hookDetails` may be an object or a
//! JSON string (CloudFormation's `HookDetails` is "a JSON object as a
//! string"). A payload without a service ARN is refused naming the field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::TriggerError;
use super::ecs;

/// The documented lifecycle stages a Lambda hook can be attached to
/// (`DeploymentLifecycleHook.lifecycleStages`).
pub const STAGES: &[&str] = &[
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
];

/// One invocation of the deployment hook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookInvocation {
    pub service_arn: String,
    pub cluster: String,
    pub service: String,
    /// The service revision being deployed (green).
    pub target_revision_arn: Option<String>,
    /// `lifecycleStage`, as sent (`None` when the payload names none).
    pub stage: Option<String>,
    /// Service revision ARN → percentage of test traffic.
    pub test_weights: BTreeMap<String, f64>,
    /// Service revision ARN → percentage of production traffic.
    pub production_weights: BTreeMap<String, f64>,
    /// `hookDetails` as received (an object; `{}` when absent).
    pub hook_details: Value,
    pub execution_id: Option<String>,
    /// The service deployment ARN (`resourceArn`), when sent.
    pub deployment_arn: Option<String>,
}

const WHAT: &str = "ECS deployment lifecycle hook payload";

impl HookInvocation {
    /// Whether `obj` has the shape of a hook payload (used by `Trigger::parse`).
    pub fn recognised(obj: &serde_json::Map<String, Value>) -> bool {
        obj.contains_key("executionDetails")
            || obj.contains_key("targetServiceRevisionArn")
            || obj.contains_key("lifecycleStage")
            || (obj.contains_key("serviceArn") && obj.contains_key("hookDetails"))
    }

    pub fn parse(input: &Value) -> Result<Self, TriggerError> {
        let details = input.get("executionDetails").filter(|v| v.is_object());
        // A field from executionDetails, else from the top level.
        let field = |name: &str| details.and_then(|d| d.get(name)).or_else(|| input.get(name));
        let text = |name: &str| field(name).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let service_arn = text("serviceArn").ok_or_else(|| {
            TriggerError::missing(
                WHAT,
                "executionDetails.serviceArn (the service's ARN; nothing can be judged without it)",
            )
        })?;
        let (cluster, service) = ecs::service_from_arn(service_arn, "").ok_or_else(|| {
            TriggerError::invalid(
                WHAT,
                "executionDetails.serviceArn",
                "a long-format service ARN (arn:aws:ecs:<region>:<account>:service/<cluster>/<service>)",
                service_arn,
            )
        })?;
        let hook_details = match input.get("hookDetails") {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    return Err(TriggerError::invalid(
                        WHAT,
                        "hookDetails",
                        "a JSON object",
                        "a string that is not one",
                    ));
                }
            },
            Some(v @ Value::Object(_)) => v.clone(),
            Some(_) => return Err(TriggerError::invalid(WHAT, "hookDetails", "a JSON object", "another JSON type")),
        };
        let stage = input
            .get("lifecycleStage")
            .or_else(|| details.and_then(|d| d.get("lifecycleStage")))
            .and_then(Value::as_str)
            .map(|s| s.trim().to_ascii_uppercase())
            .filter(|s| !s.is_empty());
        Ok(Self {
            service_arn: service_arn.to_string(),
            cluster: cluster.to_string(),
            service: service.to_string(),
            target_revision_arn: text("targetServiceRevisionArn").map(str::to_string),
            stage,
            test_weights: weights(field("testTrafficWeights")),
            production_weights: weights(field("productionTrafficWeights")),
            hook_details,
            execution_id: input.get("executionId").and_then(Value::as_str).map(str::to_string),
            deployment_arn: input.get("resourceArn").and_then(Value::as_str).map(str::to_string),
        })
    }

    /// The target revision's short id (last segment of its ARN), or "unknown".
    pub fn target_revision_id(&self) -> &str {
        self.target_revision_arn.as_deref().map(ecs::last_segment).unwrap_or("unknown")
    }

    /// The stage, or "UNKNOWN_STAGE" when the payload names none.
    pub fn stage_name(&self) -> &str {
        self.stage.as_deref().unwrap_or("UNKNOWN_STAGE")
    }

    /// The key of this call: the same for ECS's repeated calls of one stage
    /// of one target revision and for Lambda's retries of them.
    pub fn key(&self) -> String {
        format!("hook/{}/{}/{}", self.service_arn, self.target_revision_id(), self.stage_name())
    }

    /// Percentage of production traffic on the target revision (0 when not listed).
    pub fn target_production_weight(&self) -> f64 {
        self.target_revision_arn.as_ref().and_then(|t| self.production_weights.get(t)).copied().unwrap_or(0.0)
    }
}

/// A weight map, leniently: numbers or numeric strings; anything else skipped.
fn weights(v: Option<&Value>) -> BTreeMap<String, f64> {
    let Some(Value::Object(map)) = v else { return BTreeMap::new() };
    map.iter()
        .filter_map(|(k, v)| {
            let w = match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }?;
            Some((k.clone(), w))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SVC: &str = "arn:aws:ecs:us-west-2:111122223333:service/prod/api";
    const GREEN: &str = "arn:aws:ecs:us-west-2:111122223333:service-revision/prod/api/02";
    const BLUE: &str = "arn:aws:ecs:us-west-2:111122223333:service-revision/prod/api/01";

    #[test]
    fn the_wrapped_shape_should_parse() {
        let p = json!({
            "executionDetails": {
                "serviceArn": SVC, "targetServiceRevisionArn": GREEN,
                "testTrafficWeights": {GREEN: 100, BLUE: 0},
                "productionTrafficWeights": {BLUE: "90", GREEN: "10"}
            },
            "executionId": "x-1", "lifecycleStage": "production_traffic_shift",
            "resourceArn": "arn:aws:ecs:us-west-2:111122223333:service-deployment/prod/api/abc",
            "hookDetails": {"team": "payments"}, "somethingNew": true
        });
        let h = HookInvocation::parse(&p).unwrap();
        assert_eq!((h.cluster.as_str(), h.service.as_str()), ("prod", "api"));
        assert_eq!(h.stage.as_deref(), Some("PRODUCTION_TRAFFIC_SHIFT"));
        assert_eq!(h.target_production_weight(), 10.0);
        assert_eq!(h.test_weights.get(GREEN), Some(&100.0));
        assert_eq!(h.target_revision_id(), "02");
        assert_eq!(h.hook_details["team"], "payments");
    }

    #[test]
    fn the_flat_shape_and_a_string_hook_details_should_parse() {
        let p = json!({"serviceArn": SVC, "targetServiceRevisionArn": GREEN,
            "testTrafficWeights": {}, "productionTrafficWeights": {BLUE: 100},
            "hookDetails": "{\"bake\": 60}"});
        let h = HookInvocation::parse(&p).unwrap();
        assert_eq!(h.stage, None);
        assert_eq!(h.stage_name(), "UNKNOWN_STAGE");
        assert_eq!(h.hook_details["bake"], 60);
        assert_eq!(h.target_production_weight(), 0.0);
    }

    #[test]
    fn a_payload_without_a_service_arn_should_be_refused_naming_the_field() {
        for p in [
            json!({"executionDetails": {"targetServiceRevisionArn": GREEN}, "lifecycleStage": "POST_SCALE_UP"}),
            json!({"executionDetails": {"serviceArn": "  "}, "lifecycleStage": "POST_SCALE_UP"}),
        ] {
            let e = HookInvocation::parse(&p).unwrap_err().to_string();
            assert!(e.contains("serviceArn"), "{e}");
        }
        let e = HookInvocation::parse(&json!({"executionDetails": {"serviceArn": "api"}})).unwrap_err().to_string();
        assert!(e.contains("long-format service ARN"), "{e}");
        let e = HookInvocation::parse(&json!({"executionDetails": {"serviceArn": SVC}, "hookDetails": [1]}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("hookDetails"), "{e}");
    }

    #[test]
    fn the_key_should_be_the_same_for_repeated_calls_and_differ_by_stage() {
        let a = json!({"executionDetails": {"serviceArn": SVC, "targetServiceRevisionArn": GREEN}, "lifecycleStage": "POST_SCALE_UP"});
        let mut b = a.clone();
        b["hookDetails"] = json!({"autopilot": {"since": 5}});
        let mut c = a.clone();
        c["lifecycleStage"] = json!("POST_TEST_TRAFFIC_SHIFT");
        let key = |v: &Value| HookInvocation::parse(v).unwrap().key();
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
    }
}
