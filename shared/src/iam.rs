//! What each function may do in AWS, from what its code calls: the one table
//! the deployed IAM roles are checked against.
//!
//! [`CALLS`] lists every SDK operation the adapters send (each row names the
//! adapter function that sends it, so a test finds the call in its body, and
//! a scan of `adapters/` finds no operation without a row), the IAM actions AWS
//! authorises it with (Service Authorization Reference), and the functions
//! whose flows reach it. [`GRANTS`] lists what a role needs although no
//! adapter sends it (the Lambda service acting with the function's role, KMS
//! behind encrypted resources), each with its reason. A function's role
//! grants exactly the union of both (see [`actions_of`]); anything else in
//! the template is drift.
//!
//! Which function reaches which adapter was traced through the flows, and
//! is cross-checked by `scripts/iam-reach.sh` against the adapter functions
//! linked into each binary: every function a row names must link the row's
//! adapter function (linking is an upper bound: generic code links paths a
//! function never takes — scheduled-reports links the engine's reads and
//! mutations through the incident shell's acting port, pipeline-events the
//! alarm reads — and the script lists those for review).
//! The non-obvious paths:
//!
//! - `scheduled-reports`' escalation drives every open incident through the
//!   incident shell: taking over the opening alert of a sender that died runs
//!   the subject's full diagnosis (a service incident gathers ECS, metrics,
//!   targets and the failing task's log; a pipeline incident reads the
//!   execution, its actions and tags, the failed build, its log and the
//!   CodeDeploy group), and an incident whose only open problems are alarms
//!   reads those alarms. It never acts: a tick yields no `Act` effect.
//! - The daily report counts each service's error lines with
//!   `FilterLogEvents` on the application log groups.
//! - `runbook` never reads alarms (it does not drive the incident shell).
//! - `deployment-hook` reads the service, its stopped tasks, target health,
//!   its open incident and its alarms (`DescribeAlarms`) for the verdict; a
//!   `FAILED` drives the service's incident through the shell (the full
//!   diagnosis, evidence, the alert) with no action of its own: it never
//!   runs the engine (ECS rolls back on the hook's answer).
//! - `pipeline-events` drives pipeline incidents only, which have no alarm
//!   problems: no `DescribeAlarms`.
//! - `ContinueServiceDeployment` is linked into every function that links
//!   the engine, but only the runbook's continue-deployment and
//!   rollback-deployment build its action kinds: the runbook alone reaches
//!   it (scripts/iam-reach.sh lists the others for review).
//!
//! `infra/iam-actions.json` is this table exported (a test keeps it equal;
//! `UPDATE_IAM_ACTIONS=1 cargo test -p autopilot-shared --lib iam` rewrites
//! it); `infra/tests/test_iam.py` checks the template against it.

use std::collections::BTreeSet;

pub const ECS_EVENTS: &str = "ecs-events";
pub const ALARM_RESPONDER: &str = "alarm-responder";
pub const PIPELINE_EVENTS: &str = "pipeline-events";
pub const SCHEDULED_REPORTS: &str = "scheduled-reports";
pub const RUNBOOK: &str = "runbook";
pub const DEPLOYMENT_HOOK: &str = "deployment-hook";

/// The six functions, as their binaries are named.
pub const FUNCTIONS: [&str; 6] =
    [ECS_EVENTS, ALARM_RESPONDER, PIPELINE_EVENTS, SCHEDULED_REPORTS, RUNBOOK, DEPLOYMENT_HOOK];

const ALL: &[&str] = &FUNCTIONS;
/// The functions that run the bounded-action engine (planning even in dry-run).
const ACTING: &[&str] = &[ECS_EVENTS, ALARM_RESPONDER, RUNBOOK];
/// The functions that gather a service's state (runbooks and the escalation's takeover).
const GATHERING: &[&str] = &[ECS_EVENTS, ALARM_RESPONDER, SCHEDULED_REPORTS, RUNBOOK, DEPLOYMENT_HOOK];
/// The functions that drive service incidents through the shell (alarm problems).
const SERVICE_INCIDENTS: &[&str] = &[ECS_EVENTS, ALARM_RESPONDER, SCHEDULED_REPORTS, DEPLOYMENT_HOOK];
/// The functions that handle events or requests of member accounts (the
/// deployment hook is invoked by ECS in its own account only).
const FLEET: &[&str] = &[ECS_EVENTS, ALARM_RESPONDER, PIPELINE_EVENTS, SCHEDULED_REPORTS, RUNBOOK];
/// The functions that diagnose pipeline incidents.
const PIPELINE_INCIDENTS: &[&str] = &[PIPELINE_EVENTS, SCHEDULED_REPORTS];

/// When a role holds the grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Always,
    /// Only with `DryRun=false` (the mutating calls and what they pass).
    MutationsAllowed,
}

impl When {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::MutationsAllowed => "mutations-allowed",
        }
    }
}

/// One SDK operation an adapter sends.
#[derive(Debug)]
pub struct Call {
    /// `module::function` under `adapters/` whose body sends it.
    pub adapter: &'static str,
    /// The SDK's fluent method (`filter_log_events`).
    pub sdk: &'static str,
    /// The IAM actions AWS authorises the operation with.
    pub actions: &'static [&'static str],
    pub functions: &'static [&'static str],
    pub when: When,
    /// On which resources (documentation; the template's statements scope them).
    pub on: &'static str,
}

/// A grant no adapter call explains, and why the role holds it anyway.
#[derive(Debug)]
pub struct Grant {
    pub action: &'static str,
    pub functions: &'static [&'static str],
    pub when: When,
    pub reason: &'static str,
}

const fn call(
    adapter: &'static str,
    sdk: &'static str,
    actions: &'static [&'static str],
    functions: &'static [&'static str],
    on: &'static str,
) -> Call {
    Call { adapter, sdk, actions, functions, when: When::Always, on }
}

pub const CALLS: &[Call] = &[
    // ECS
    call(
        "ecs::describe_service",
        "describe_services",
        &["ecs:DescribeServices"],
        GATHERING,
        "services of this account",
    ),
    call(
        "ecs::describe_services",
        "describe_services",
        &["ecs:DescribeServices"],
        &[SCHEDULED_REPORTS],
        "services of this account (reports, ten at a time)",
    ),
    call(
        "ecs::service_target_groups",
        "describe_services",
        &["ecs:DescribeServices"],
        &[ALARM_RESPONDER],
        "services of this account (alarm mapping by target group)",
    ),
    call("ecs::service_tasks", "list_tasks", &["ecs:ListTasks"], GATHERING, "*"),
    call("ecs::service_tasks", "describe_tasks", &["ecs:DescribeTasks"], GATHERING, "tasks of this account"),
    call("ecs::describe_task_definition", "describe_task_definition", &["ecs:DescribeTaskDefinition"], GATHERING, "*"),
    call("ecs::active_revisions", "list_task_definitions", &["ecs:ListTaskDefinitions"], ACTING, "*"),
    call(
        "ecs::unfinished_service_deployments",
        "list_service_deployments",
        &["ecs:ListServiceDeployments"],
        ACTING,
        "services of this account",
    ),
    call(
        "ecs::describe_service_deployment",
        "describe_service_deployments",
        &["ecs:DescribeServiceDeployments"],
        ACTING,
        "service deployments of this account",
    ),
    call(
        "ecs::service_revision_task_definition",
        "describe_service_revisions",
        &["ecs:DescribeServiceRevisions"],
        &[DEPLOYMENT_HOOK],
        "service revisions of this account (the hook's target revision)",
    ),
    call("ecs::list_clusters", "list_clusters", &["ecs:ListClusters"], &[ALARM_RESPONDER, SCHEDULED_REPORTS], "*"),
    call("ecs::list_services", "list_services", &["ecs:ListServices"], &[ALARM_RESPONDER, SCHEDULED_REPORTS], "*"),
    Call {
        adapter: "ecs::update_service",
        sdk: "update_service",
        // UpdateService also authorises iam:PassRole for the task definition's roles.
        actions: &["ecs:UpdateService", "iam:PassRole"],
        functions: ACTING,
        when: When::MutationsAllowed,
        on: "services of the clusters in scope not opted out; roles matching TaskRolePattern",
    },
    Call {
        adapter: "ecs::rollback_service_deployment",
        sdk: "stop_service_deployment",
        actions: &["ecs:StopServiceDeployment"],
        functions: ACTING,
        when: When::MutationsAllowed,
        on: "services and service deployments of the clusters in scope not opted out",
    },
    Call {
        adapter: "ecs::continue_service_deployment",
        sdk: "continue_service_deployment",
        actions: &["ecs:ContinueServiceDeployment"],
        // Only a person answers a paused deployment: the runbook's
        // continue-deployment and rollback-deployment (chat buttons included).
        functions: &[RUNBOOK],
        when: When::MutationsAllowed,
        on: "service deployments of the clusters in scope",
    },
    // Load balancing, metrics, alarms, scaling
    call(
        "elb::target_health",
        "describe_target_health",
        &["elasticloadbalancing:DescribeTargetHealth"],
        GATHERING,
        "*",
    ),
    call(
        "elb::target_group_load_balancers",
        "describe_target_groups",
        &["elasticloadbalancing:DescribeTargetGroups"],
        &[SCHEDULED_REPORTS],
        "*",
    ),
    call("cloudwatch::service_metrics", "get_metric_data", &["cloudwatch:GetMetricData"], GATHERING, "*"),
    call("cloudwatch::metric_data", "get_metric_data", &["cloudwatch:GetMetricData"], &[SCHEDULED_REPORTS], "*"),
    call(
        "cloudwatch::alarm_states",
        "describe_alarms",
        &["cloudwatch:DescribeAlarms"],
        SERVICE_INCIDENTS,
        "alarms of this account",
    ),
    call(
        "cloudwatch::alarms_in_alarm",
        "describe_alarms",
        &["cloudwatch:DescribeAlarms"],
        &[SCHEDULED_REPORTS, DEPLOYMENT_HOOK],
        "alarms of this account",
    ),
    call(
        "cloudwatch::alarm_tags",
        "list_tags_for_resource",
        &["cloudwatch:ListTagsForResource"],
        &[ALARM_RESPONDER],
        "alarms of this account",
    ),
    call(
        "autoscaling::max_capacity",
        "describe_scalable_targets",
        &["application-autoscaling:DescribeScalableTargets"],
        ACTING,
        "*",
    ),
    call(
        "autoscaling::scalable_targets",
        "describe_scalable_targets",
        &["application-autoscaling:DescribeScalableTargets"],
        &[SCHEDULED_REPORTS],
        "*",
    ),
    // Logs
    call(
        "logs::tail_excerpt",
        "get_log_events",
        &["logs:GetLogEvents"],
        &[ECS_EVENTS, ALARM_RESPONDER, PIPELINE_EVENTS, SCHEDULED_REPORTS, RUNBOOK, DEPLOYMENT_HOOK],
        "streams of the application log groups (LogGroupPrefixes; not pipeline-events) and of the build log groups (BuildLogGroupPrefixes; pipeline-events, scheduled-reports)",
    ),
    call(
        "logs::error_lines_since",
        "get_log_events",
        &["logs:GetLogEvents"],
        &[DEPLOYMENT_HOOK],
        "streams of the application log groups (LogGroupPrefixes): the revisions' error lines",
    ),
    call(
        "logs::count_error_lines",
        "filter_log_events",
        &["logs:FilterLogEvents"],
        &[SCHEDULED_REPORTS],
        "the application log groups (LogGroupPrefixes): the daily report's error count",
    ),
    call(
        "logs::export_log_group",
        "create_export_task",
        &["logs:CreateExportTask"],
        &[RUNBOOK],
        "the application log groups (LogGroupPrefixes)",
    ),
    call("logs::active_export", "describe_export_tasks", &["logs:DescribeExportTasks"], &[RUNBOOK], "*"),
    // Pipelines
    call(
        "codepipeline::execution",
        "get_pipeline_execution",
        &["codepipeline:GetPipelineExecution"],
        PIPELINE_INCIDENTS,
        "pipelines of this account",
    ),
    call(
        "codepipeline::action_executions",
        "list_action_executions",
        &["codepipeline:ListActionExecutions"],
        PIPELINE_INCIDENTS,
        "pipelines of this account",
    ),
    call(
        "codepipeline::stages",
        "get_pipeline_state",
        &["codepipeline:GetPipelineState"],
        &[PIPELINE_EVENTS],
        "pipelines of this account",
    ),
    call(
        "codepipeline::tags",
        "list_tags_for_resource",
        &["codepipeline:ListTagsForResource"],
        PIPELINE_INCIDENTS,
        "pipelines of this account",
    ),
    call(
        "codebuild::build",
        "batch_get_builds",
        &["codebuild:BatchGetBuilds"],
        PIPELINE_INCIDENTS,
        "projects of this account",
    ),
    call(
        "codedeploy::ecs_services",
        "get_deployment_group",
        &["codedeploy:GetDeploymentGroup"],
        PIPELINE_INCIDENTS,
        "deployment groups of this account",
    ),
    // Notifications and evidence
    call("sns::publish", "publish", &["sns:Publish"], ALL, "the notification topic"),
    call("s3::put", "put_object", &["s3:PutObject"], ALL, "incidents/* and reports/* of the evidence bucket"),
    call(
        "s3::presigned_get",
        "get_object",
        &["s3:GetObject"],
        &[SCHEDULED_REPORTS],
        "reports/* (the report links are presigned with the role's credentials)",
    ),
    // The state table (every store)
    call(
        "state::actions",
        "get_item",
        &["dynamodb:GetItem"],
        &[ECS_EVENTS, ALARM_RESPONDER, SCHEDULED_REPORTS, RUNBOOK],
        "the state table",
    ),
    call(
        "state::actions",
        "put_item",
        &["dynamodb:PutItem"],
        &[ECS_EVENTS, ALARM_RESPONDER, SCHEDULED_REPORTS, RUNBOOK],
        "the state table",
    ),
    call(
        "state::actions",
        "update_item",
        &["dynamodb:UpdateItem"],
        &[ECS_EVENTS, ALARM_RESPONDER, SCHEDULED_REPORTS, RUNBOOK],
        "the state table",
    ),
    call(
        "state::actions",
        "delete_item",
        &["dynamodb:DeleteItem"],
        &[ECS_EVENTS, ALARM_RESPONDER, SCHEDULED_REPORTS, RUNBOOK],
        "the state table",
    ),
    call(
        "state::actions",
        "query",
        &["dynamodb:Query"],
        &[ECS_EVENTS, ALARM_RESPONDER, SCHEDULED_REPORTS, RUNBOOK, DEPLOYMENT_HOOK],
        "the state table",
    ),
    call(
        "state::claims",
        "put_item",
        &["dynamodb:PutItem"],
        &[ECS_EVENTS, ALARM_RESPONDER, PIPELINE_EVENTS, RUNBOOK, DEPLOYMENT_HOOK],
        "the state table",
    ),
    call(
        "state::claims",
        "update_item",
        &["dynamodb:UpdateItem"],
        &[ECS_EVENTS, ALARM_RESPONDER, PIPELINE_EVENTS, RUNBOOK, DEPLOYMENT_HOOK],
        "the state table",
    ),
    call(
        "state::claims",
        "delete_item",
        &["dynamodb:DeleteItem"],
        &[ECS_EVENTS, ALARM_RESPONDER, PIPELINE_EVENTS, RUNBOOK, DEPLOYMENT_HOOK],
        "the state table",
    ),
    call("state::hooks", "put_item", &["dynamodb:PutItem"], &[ECS_EVENTS], "the state table"),
    call("state::hooks", "get_item", &["dynamodb:GetItem"], &[RUNBOOK], "the state table"),
    call(
        "state::incidents",
        "get_item",
        &["dynamodb:GetItem"],
        &[ECS_EVENTS, ALARM_RESPONDER, PIPELINE_EVENTS, SCHEDULED_REPORTS, DEPLOYMENT_HOOK],
        "the state table",
    ),
    call(
        "state::incidents",
        "put_item",
        &["dynamodb:PutItem"],
        &[ECS_EVENTS, ALARM_RESPONDER, PIPELINE_EVENTS, SCHEDULED_REPORTS, DEPLOYMENT_HOOK],
        "the state table",
    ),
    call(
        "state::incidents",
        "transact_write_items",
        &["dynamodb:PutItem", "dynamodb:UpdateItem"],
        &[ECS_EVENTS, ALARM_RESPONDER],
        "the state table (an incident's last write and its event's claim, together)",
    ),
    call(
        "state::incidents",
        "query",
        &["dynamodb:Query"],
        &[ECS_EVENTS, ALARM_RESPONDER, PIPELINE_EVENTS, SCHEDULED_REPORTS, DEPLOYMENT_HOOK],
        "the state table and its open-incident-keys index",
    ),
    call(
        "state::deployments",
        "update_item",
        &["dynamodb:UpdateItem"],
        &[ECS_EVENTS, ALARM_RESPONDER, SCHEDULED_REPORTS, RUNBOOK, DEPLOYMENT_HOOK],
        "the state table",
    ),
    call(
        "state::deployments",
        "query",
        &["dynamodb:Query"],
        &[ECS_EVENTS, ALARM_RESPONDER, SCHEDULED_REPORTS, RUNBOOK, DEPLOYMENT_HOOK],
        "the state table",
    ),
    call(
        "state::pipelines",
        "update_item",
        &["dynamodb:UpdateItem"],
        &[PIPELINE_EVENTS, SCHEDULED_REPORTS],
        "the state table",
    ),
    call(
        "state::pipelines",
        "query",
        &["dynamodb:Query"],
        &[ECS_EVENTS, ALARM_RESPONDER, PIPELINE_EVENTS, SCHEDULED_REPORTS, DEPLOYMENT_HOOK],
        "the state table",
    ),
    call(
        "state::facts",
        "query",
        &["dynamodb:Query"],
        &[ECS_EVENTS, ALARM_RESPONDER, SCHEDULED_REPORTS, RUNBOOK, DEPLOYMENT_HOOK],
        "the state table",
    ),
    call("state::weekly", "query", &["dynamodb:Query"], &[SCHEDULED_REPORTS], "the state table"),
    call("state::gates", "update_item", &["dynamodb:UpdateItem"], &[DEPLOYMENT_HOOK], "the state table (gate records)"),
];

pub const GRANTS: &[Grant] = &[
    Grant {
        action: "logs:CreateLogStream",
        functions: ALL,
        when: When::Always,
        reason: "Lambda writes the function's own log (its own log group only)",
    },
    Grant {
        action: "logs:PutLogEvents",
        functions: ALL,
        when: When::Always,
        reason: "Lambda writes the function's own log (its own log group only)",
    },
    Grant {
        action: "sqs:SendMessage",
        functions: ALL,
        when: When::Always,
        reason: "Lambda sends a failed asynchronous invocation to the on-failure destination (the failed-invocations queue) with the function's role",
    },
    Grant {
        action: "kms:GenerateDataKey",
        functions: ALL,
        when: When::Always,
        reason: "the topic, evidence objects, state table and failed-invocations queue are encrypted with the stack's key: writes need a data key (only via those services)",
    },
    Grant {
        action: "kms:Decrypt",
        functions: ALL,
        when: When::Always,
        reason: "reading the KMS-encrypted state table and report objects, and SNS/SQS with a customer managed key, decrypt with the stack's key (only via those services)",
    },
    Grant {
        action: "ecs:ListTagsForResource",
        functions: GATHERING,
        when: When::Always,
        reason: "DescribeServices is sent with include=TAGS (the autopilot:mode opt-out and tuning tags); AWS does not document whether returning tags is authorised by DescribeServices alone, and a missing tag must never read as 'no opt-out'",
    },
    Grant {
        action: "sts:AssumeRole",
        functions: FLEET,
        when: When::Always,
        reason: "credentials in a member account of the fleet (ACCOUNTS, REGIONS): aws-config's assume-role provider sends it for the member role (MEMBER_ROLE_NAME) only",
    },
];

/// Every IAM action `function`'s role must hold, and nothing else: with
/// `mutations` (`DryRun=false`) or without.
pub fn actions_of(function: &str, mutations: bool) -> BTreeSet<&'static str> {
    let held = |when: When| when == When::Always || mutations;
    let calls = CALLS
        .iter()
        .filter(|c| c.functions.contains(&function) && held(c.when))
        .flat_map(|c| c.actions.iter().copied());
    let grants = GRANTS.iter().filter(|g| g.functions.contains(&function) && held(g.when)).map(|g| g.action);
    calls.chain(grants).collect()
}

/// The table as JSON (`infra/iam-actions.json`).
pub fn to_json() -> serde_json::Value {
    let functions: serde_json::Map<String, serde_json::Value> = FUNCTIONS
        .iter()
        .map(|f| {
            let always = actions_of(f, false);
            let with_mutations: Vec<&str> = actions_of(f, true).difference(&always).copied().collect();
            (
                f.to_string(),
                serde_json::json!({"always": always.into_iter().collect::<Vec<_>>(), "mutations_allowed": with_mutations}),
            )
        })
        .collect();
    let calls: Vec<serde_json::Value> = CALLS
        .iter()
        .map(|c| {
            serde_json::json!({"adapter": c.adapter, "sdk": c.sdk, "actions": c.actions, "functions": c.functions,
                "when": c.when.as_str(), "on": c.on})
        })
        .collect();
    let grants: Vec<serde_json::Value> = GRANTS
        .iter()
        .map(|g| serde_json::json!({"action": g.action, "functions": g.functions, "when": g.when.as_str(), "reason": g.reason}))
        .collect();
    serde_json::json!({
        "about": "Generated from shared/src/iam.rs (UPDATE_IAM_ACTIONS=1 cargo test -p autopilot-shared --lib iam); checked against infra/template.yaml by infra/tests/test_iam.py",
        "functions": functions,
        "calls": calls,
        "grants": grants,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
    }

    fn adapter_sources() -> Vec<(String, String)> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, String)>) {
            for entry in std::fs::read_dir(dir).expect("adapters dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    walk(&path, base, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let rel = path.strip_prefix(base).expect("under adapters").with_extension("");
                    let mut module = rel.to_string_lossy().replace('/', "::");
                    if let Some(m) = module.strip_suffix("::mod") {
                        module = m.to_string();
                    }
                    out.push((module, std::fs::read_to_string(&path).expect("source")));
                }
            }
        }
        let base = repo().join("shared/src/adapters");
        let mut out = Vec::new();
        walk(&base, &base, &mut out);
        out
    }

    /// The source up to its first top-level `#[cfg(test)]` module.
    fn production(src: &str) -> &str {
        src.find("\n#[cfg(test)]\nmod ").map_or(src, |i| &src[..i])
    }

    /// The SDK operations a source sends: fluent calls with no arguments whose
    /// name is an operation verb (accessors of answers, e.g. `stop_code()`,
    /// excluded), and the operations it sends or presigns without a
    /// generated client (`adapters::s3`: `.operation_name("PutObject")`,
    /// `"GetObject (presign)"`).
    fn sdk_operations(src: &str) -> BTreeSet<String> {
        let snake = |camel: &str| {
            let mut out = String::new();
            for (i, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_lowercase());
            }
            out
        };
        let mut out = fluent_operations(src);
        for (i, _) in src.match_indices(".operation_name(\"") {
            let rest = &src[i + ".operation_name(\"".len()..];
            if let Some(end) = rest.find('"') {
                out.insert(snake(&rest[..end]));
            }
        }
        for (i, _) in src.match_indices(" (presign)\"") {
            let head = &src[..i];
            if let Some(start) = head.rfind('"') {
                out.insert(snake(&head[start + 1..]));
            }
        }
        out
    }

    fn fluent_operations(src: &str) -> BTreeSet<String> {
        const VERBS: [&str; 16] = [
            "describe_",
            "list_",
            "get_",
            "put_",
            "update_",
            "delete_",
            "query",
            "scan",
            "batch_",
            "filter_",
            "create_",
            "stop_",
            "start_",
            "publish",
            "transact_",
            "continue_",
        ];
        const ACCESSORS: [&str; 3] = ["stop_code", "start_time", "get_mut"];
        let mut out = BTreeSet::new();
        for (i, _) in src.match_indices("()") {
            let head = &src[..i];
            let start = head.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(0, |p| p + 1);
            if start == 0 || head.as_bytes()[start - 1] != b'.' {
                continue;
            }
            let name = &head[start..];
            if VERBS.iter().any(|v| name.starts_with(v)) && !ACCESSORS.contains(&name) {
                out.insert(name.to_string());
            }
        }
        out
    }

    /// The body of `fn name` (or of the whole module for a store: `state::claims`).
    fn body<'s>(src: &'s str, name: Option<&str>) -> Option<&'s str> {
        let Some(name) = name else { return Some(src) };
        let at = src.find(&format!("fn {name}("))?;
        let rest = &src[at + 3..];
        let end = rest.find("\nfn ").into_iter().chain(rest.find("\npub ")).chain(rest.find("\n    pub ")).min();
        Some(&rest[..end.unwrap_or(rest.len())])
    }

    #[test]
    fn every_row_names_an_adapter_function_that_sends_its_operation() {
        let sources = adapter_sources();
        for c in CALLS {
            let (module, function) = match c.adapter.rsplit_once("::") {
                Some((m, f)) if !c.adapter.starts_with("state::") => (m, Some(f)),
                _ => (c.adapter, None),
            };
            let src = sources
                .iter()
                .find(|(m, _)| m == module)
                .map(|(_, s)| production(s))
                .unwrap_or_else(|| panic!("{}: no adapter module {module}", c.adapter));
            let b = body(src, function).unwrap_or_else(|| panic!("{}: no such function", c.adapter));
            assert!(sdk_operations(b).contains(c.sdk), "{} does not send {}", c.adapter, c.sdk);
        }
    }

    #[test]
    fn every_operation_the_adapters_send_has_a_row() {
        let mut missing = Vec::new();
        for (module, src) in adapter_sources() {
            for op in sdk_operations(production(&src)) {
                let covered = CALLS.iter().any(|c| {
                    c.sdk == op
                        && (c.adapter == module || c.adapter.rsplit_once("::").is_some_and(|(m, _)| m == module))
                });
                if !covered {
                    missing.push(format!("adapters::{module} sends {op}"));
                }
            }
        }
        assert!(missing.is_empty(), "add a row to iam::CALLS (actions, functions) for: {missing:?}");
    }

    #[test]
    fn the_scan_finds_a_planted_call_and_ignores_answer_accessors() {
        let planted = "async fn f(c: &Clients) { c.logs()\n    .start_query()\n    .send().await; t.stop_code(); }";
        assert_eq!(sdk_operations(planted), BTreeSet::from(["start_query".to_string()]));
    }

    #[test]
    fn every_action_is_service_colon_action_and_every_function_is_known() {
        for (actions, functions) in CALLS
            .iter()
            .map(|c| (c.actions.to_vec(), c.functions))
            .chain(GRANTS.iter().map(|g| (vec![g.action], g.functions)))
        {
            for a in actions {
                let (service, name) = a.split_once(':').expect("service:Action");
                assert!(!service.is_empty() && name.chars().next().is_some_and(|c| c.is_ascii_uppercase()), "{a}");
                assert!(!a.contains('*'), "{a}");
            }
            assert!(functions.iter().all(|f| FUNCTIONS.contains(f)), "{functions:?}");
        }
    }

    #[test]
    fn the_daily_report_may_count_application_log_errors_and_only_the_acting_functions_mutate() {
        assert!(actions_of(SCHEDULED_REPORTS, false).contains("logs:FilterLogEvents"));
        for f in FUNCTIONS {
            let dry = actions_of(f, false);
            let live = actions_of(f, true);
            assert!(!dry.contains("ecs:UpdateService") && !dry.contains("iam:PassRole"), "{f}");
            assert_eq!(live.contains("ecs:UpdateService"), ACTING.contains(&f), "{f}");
        }
        assert!(!actions_of(PIPELINE_EVENTS, true).iter().any(|a| a.starts_with("ecs:")));
        assert!(!actions_of(RUNBOOK, true).contains("cloudwatch:DescribeAlarms"));
    }

    #[test]
    fn infra_iam_actions_json_is_the_table_exported() {
        let path = repo().join("infra/iam-actions.json");
        let text = serde_json::to_string_pretty(&to_json()).expect("json") + "\n";
        if std::env::var_os("UPDATE_IAM_ACTIONS").is_some() {
            std::fs::write(&path, &text).expect("write infra/iam-actions.json");
        }
        // Compared as JSON, not as text: a workspace build turns on serde_json's
        // `preserve_order`, which changes the order keys are written in.
        let committed: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_default()).unwrap_or_default();
        assert!(
            committed == to_json(),
            "infra/iam-actions.json is not shared/src/iam.rs exported: run UPDATE_IAM_ACTIONS=1 cargo test -p autopilot-shared --lib iam"
        );
    }
}
