//! The manual `runbook` payload (`aws lambda invoke --payload '{…}'`).

use serde::{Deserialize, Serialize};

use super::TriggerError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunbookAction {
    Diagnose,
    HealthCheck,
    Rollback,
    Scale,
    ForceDeploy,
    ScaleToZero,
    CaptureEvidence,
    /// Record who acknowledged the service's open incident (escalation stops
    /// until its severity rises).
    Acknowledge,
    /// Answer a paused deployment's hook: CONTINUE.
    ContinueDeployment,
    /// Answer a paused deployment's hook: ROLLBACK.
    RollbackDeployment,
}

impl RunbookAction {
    /// Whether the action changes the service (and so goes through the engine).
    pub fn is_mutating(self) -> bool {
        matches!(
            self,
            Self::Rollback
                | Self::Scale
                | Self::ForceDeploy
                | Self::ScaleToZero
                | Self::ContinueDeployment
                | Self::RollbackDeployment
        )
    }

    /// Whether the action answers a paused deployment hook.
    pub fn answers_hook(self) -> bool {
        matches!(self, Self::ContinueDeployment | Self::RollbackDeployment)
    }
}

/// A validated runbook request. Unknown fields are refused so that a typo
/// (`desired_cont`) never silently falls back to a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunbookRequest {
    pub action: RunbookAction,
    pub cluster: String,
    pub service: String,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub desired_count: Option<i32>,
    #[serde(default)]
    pub task_definition: Option<String>,
    #[serde(default)]
    pub confirm: Option<String>,
    #[serde(default)]
    pub since_hours: Option<u32>,
    /// Free text recorded in the ledger and the notification.
    #[serde(default)]
    pub reason: Option<String>,
    /// Idempotency key chosen by the caller: a request with one is handled
    /// once; repeating it (a CLI retry after its read timeout) answers the
    /// first result.
    #[serde(default)]
    pub request_id: Option<String>,
    /// Who asked (free text, e.g. an e-mail), recorded in the ledger —
    /// as unverified unless the request came through the function URL.
    #[serde(default)]
    pub requested_by: Option<String>,
    /// continue-deployment / rollback-deployment: the paused hook
    /// (`hookId` of the `ECS Hook State Change` event and the approval notice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_id: Option<String>,
    /// continue-deployment / rollback-deployment: the paused service
    /// deployment; read from the approval notice's record when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_deployment_arn: Option<String>,
    /// In a fleet: the member account of the service (one of `ACCOUNTS`);
    /// absent, the function's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// In a fleet: the region of the service; absent, the function's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// acknowledge: the incident id, checked against the service's open one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    /// Who Lambda says asked: set only from a function URL's IAM
    /// authorizer, never from the payload (not part of its hash).
    #[serde(skip)]
    pub caller: super::trust::Caller,
}

/// Longest `request_id` accepted (it becomes part of a state-table key).
const REQUEST_ID_MAX: usize = 128;
/// Longest `requested_by` accepted.
const REQUESTED_BY_MAX: usize = 256;
/// Longest `hook_id` accepted (ECS's look like `ecs-pause-` and 43 more).
const HOOK_ID_MAX: usize = 256;

impl RunbookRequest {
    pub(crate) fn parse(value: &serde_json::Value) -> Result<Self, TriggerError> {
        let request: Self =
            serde_json::from_value(value.clone()).map_err(|e| TriggerError::malformed("runbook request", e))?;
        request.validate()?;
        Ok(request)
    }

    /// SHA-256 (hex) of the request as understood: a `request_id` reused
    /// for a different request is told apart by it.
    pub fn payload_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        // Serialised from the parsed request, so absent defaults and key order do not matter.
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        crate::arn::hex(&Sha256::digest(&canonical))
    }

    fn validate(&self) -> Result<(), TriggerError> {
        let what = "runbook request";
        if let Some(id) = &self.request_id
            && (id.is_empty()
                || id.len() > REQUEST_ID_MAX
                || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:/@+=".contains(c)))
        {
            return Err(TriggerError::invalid(
                what,
                "request_id",
                &format!("1 to {REQUEST_ID_MAX} letters, digits or -_.:/@+="),
                &format!("{id:?}"),
            ));
        }
        if let Some(by) = &self.requested_by
            && (by.trim().is_empty() || by.len() > REQUESTED_BY_MAX)
        {
            return Err(TriggerError::invalid(
                what,
                "requested_by",
                &format!("1 to {REQUESTED_BY_MAX} characters"),
                &format!("{} characters", by.len()),
            ));
        }
        if self.cluster.trim().is_empty() {
            return Err(TriggerError::invalid(what, "cluster", "a cluster name or ARN", "an empty string"));
        }
        if self.service.trim().is_empty() {
            return Err(TriggerError::invalid(what, "service", "a service name or ARN", "an empty string"));
        }
        if let Some(hook) = &self.hook_id
            && (hook.is_empty()
                || hook.len() > HOOK_ID_MAX
                || !hook.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)))
        {
            return Err(TriggerError::invalid(
                what,
                "hook_id",
                &format!("1 to {HOOK_ID_MAX} letters, digits, - or _"),
                &format!("{hook:?}"),
            ));
        }
        if let Some(arn) = &self.service_deployment_arn
            && !(arn.starts_with("arn:") && arn.contains(":service-deployment/"))
        {
            return Err(TriggerError::invalid(
                what,
                "service_deployment_arn",
                "arn:<partition>:ecs:<region>:<account>:service-deployment/<cluster>/<service>/<id>",
                &format!("{arn:?}"),
            ));
        }
        if self.action.answers_hook() {
            let named = if self.action == RunbookAction::ContinueDeployment {
                "runbook request (action continue-deployment)"
            } else {
                "runbook request (action rollback-deployment)"
            };
            for (field, given) in [
                ("hook_id", self.hook_id.is_some()),
                ("requested_by", self.requested_by.is_some()),
                ("request_id", self.request_id.is_some()),
            ] {
                if !given {
                    return Err(TriggerError::missing(named, field));
                }
            }
        }
        if self.action == RunbookAction::Acknowledge && self.requested_by.is_none() {
            return Err(TriggerError::missing("runbook request (action acknowledge)", "requested_by"));
        }
        match self.action {
            RunbookAction::Scale => match self.desired_count {
                None => return Err(TriggerError::missing("runbook request (action scale)", "desired_count")),
                Some(n) if n < 1 => {
                    return Err(TriggerError::invalid(
                        "runbook request (action scale)",
                        "desired_count",
                        "an integer of at least 1 (use scale-to-zero for 0)",
                        &n.to_string(),
                    ));
                }
                Some(_) => {}
            },
            RunbookAction::ScaleToZero if self.confirm.is_none() => {
                return Err(TriggerError::missing(
                    "runbook request (action scale-to-zero)",
                    "confirm (the service name, to confirm)",
                ));
            }
            RunbookAction::CaptureEvidence if self.since_hours == Some(0) => {
                return Err(TriggerError::invalid(
                    "runbook request (action capture-evidence)",
                    "since_hours",
                    "at least 1",
                    "0",
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<RunbookRequest, TriggerError> {
        RunbookRequest::parse(&v)
    }

    #[test]
    fn when_a_request_carries_request_id_and_requested_by_they_should_be_kept() {
        let r = parse(json!({"action": "rollback", "cluster": "prod", "service": "api",
            "request_id": "chg-4711", "requested_by": "alice@example.com"}))
        .unwrap();
        assert_eq!((r.request_id.as_deref(), r.requested_by.as_deref()), (Some("chg-4711"), Some("alice@example.com")));
    }

    #[test]
    fn when_request_id_or_requested_by_is_unusable_the_request_should_be_refused_naming_the_field() {
        let long = "x".repeat(129);
        for (field, value) in [
            ("request_id", json!("")),
            ("request_id", json!("has space")),
            ("request_id", json!(long)),
            ("requested_by", json!("  ")),
        ] {
            let mut v = json!({"action": "rollback", "cluster": "prod", "service": "api"});
            v[field] = value.clone();
            let err = parse(v).expect_err(field).to_string();
            assert!(err.contains(field), "{field}={value}: {err}");
        }
    }

    #[test]
    fn a_hook_answer_should_need_hook_id_requested_by_and_request_id_naming_the_missing_one() {
        let full = json!({"action": "continue-deployment", "cluster": "prod", "service": "api",
            "hook_id": "ecs-pause-e7tK9G_WRJqNF", "requested_by": "alice", "request_id": "r-1"});
        let r = parse(full.clone()).unwrap();
        assert_eq!(r.action, RunbookAction::ContinueDeployment);
        assert_eq!(r.hook_id.as_deref(), Some("ecs-pause-e7tK9G_WRJqNF"));
        for field in ["hook_id", "requested_by", "request_id"] {
            for action in ["continue-deployment", "rollback-deployment"] {
                let mut v = full.clone();
                v["action"] = json!(action);
                v.as_object_mut().unwrap().remove(field);
                let err = parse(v).expect_err(field).to_string();
                assert!(err.contains(field) && err.contains(action), "{action} without {field}: {err}");
            }
        }
        let mut bad = full.clone();
        bad["hook_id"] = json!("has space");
        assert!(parse(bad).unwrap_err().to_string().contains("hook_id"));
        let mut bad = full;
        bad["service_deployment_arn"] = json!("deployment-1");
        assert!(parse(bad).unwrap_err().to_string().contains("service_deployment_arn"));
    }

    #[test]
    fn an_acknowledgement_should_need_requested_by() {
        let v = json!({"action": "acknowledge", "cluster": "prod", "service": "api", "incident": "inc-1"});
        assert!(parse(v.clone()).unwrap_err().to_string().contains("requested_by"));
        let mut ok = v;
        ok["requested_by"] = json!("bob");
        let r = parse(ok).unwrap();
        assert_eq!((r.action, r.incident.as_deref()), (RunbookAction::Acknowledge, Some("inc-1")));
        assert!(!r.action.is_mutating(), "an acknowledgement changes no service");
    }

    #[test]
    fn the_payload_hash_should_tell_requests_apart_but_not_spellings_of_one() {
        let a = parse(json!({"action": "rollback", "cluster": "prod", "service": "api", "request_id": "r1"})).unwrap();
        let same = parse(
            json!({"service": "api", "request_id": "r1", "cluster": "prod", "action": "rollback", "dry_run": false}),
        )
        .unwrap();
        let other = parse(
            json!({"action": "rollback", "cluster": "prod", "service": "api", "request_id": "r1", "dry_run": true}),
        )
        .unwrap();
        assert_eq!(a.payload_hash(), same.payload_hash());
        assert_ne!(a.payload_hash(), other.payload_hash());
        assert_eq!(a.payload_hash().len(), 64);
    }
}
