//! Next steps that know what was done (issue 24). A message's next steps
//! are a pure function of the cause and of what the message shows: the
//! action decisions it renders (executed, planned, skipped with the
//! engine's reason, failed), whether the service is held after a failed
//! action, and whether the incident is resolved. An executed rollback is
//! never advised again: the step becomes "confirm the service is healthy on
//! the target; the failing revision was …"; a skipped or failed action says
//! what a person does instead (with the exact command); a held service says
//! how the hold is cleared; a resolution points at its report and at what
//! to verify. Alerts, updates, escalations, resolutions, the incident
//! report's checklist and the chat notification's `nextSteps` all take this
//! one list, most important first.
//!
//! The engine's reasons are read from the records' `detail` (the words
//! `actions::engine` writes: "mode off", "budget exhausted", "cooldown",
//! "held since", "deploymentController CODE_DEPLOY", …); a reason this
//! module does not know still gets the generic step for its status.

use crate::cause::Remedy;
use crate::outcome::{ActionRecord, ActionStatus, Cause};

/// What a message shows, as its next steps read it.
#[derive(Debug, Clone, Copy)]
pub struct Situation<'a> {
    pub cause: Cause,
    pub cluster: &'a str,
    pub service: &'a str,
    /// The action decisions the message renders, oldest first (whether the
    /// service is held is read from them: [`held`]).
    pub actions: &'a [ActionRecord],
    /// Set for a resolution (and the incident report).
    pub resolved: Option<Resolved<'a>>,
}

/// What a resolution adds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Resolved<'a> {
    /// `s3://…/report.md`, when it was stored.
    pub report: Option<&'a str>,
}

/// The runbook function, as a person invokes it (the read timeout is above
/// the function's 300 s; `scripts/cli-manual-path.sh` checks it).
const INVOKE: &str = "aws lambda invoke --function-name <stack>-runbook --cli-binary-format raw-in-base64-out --cli-read-timeout 310 --payload";

/// The next steps of `s`, most important first.
pub fn next_steps(s: &Situation<'_>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(r) = s.resolved {
        out.push(match r.report {
            Some(uri) => {
                format!("Review and complete the incident report: {uri} (timeline, root cause, follow-up checklist).")
            }
            None => "Write the incident report: the evidence bundle holds the timeline and the state before acting."
                .to_string(),
        });
    }
    out.extend(follow_ups(s));
    out
}

/// [`next_steps`] without the pointer to the incident report: the report's
/// own follow-up checklist.
pub fn follow_ups(s: &Situation<'_>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |line: String| {
        if !out.contains(&line) {
            out.push(line);
        }
    };
    let decided = |status| s.actions.iter().filter(move |a| a.status == status);
    let executed_any = s.actions.iter().any(|a| a.status == ActionStatus::Executed);
    if s.resolved.is_some() && !executed_any {
        push(format!(
            "Verify {} is steady: running count equals desired, targets healthy, no new stopped tasks. It recovered \
             without an automatic action, so find what changed (the timeline).",
            label(s)
        ));
    }
    // Failures first (they page), then what was done, planned and refused.
    for status in [ActionStatus::Failed, ActionStatus::Executed, ActionStatus::Planned, ActionStatus::Skipped] {
        for a in decided(status) {
            for line in action_steps(s, a) {
                push(line);
            }
        }
        if status == ActionStatus::Failed && held(s.actions) {
            for line in hold_steps(s) {
                push(line);
            }
        }
    }
    // The runbook's own steps: one that advises an action the record has
    // decided on is answered above; after a resolution, none is advised.
    let answered = |r: Remedy| s.actions.iter().any(|a| remedy_of(a) == Some(r));
    for step in s.cause.steps() {
        match step.remedy {
            Some(r) if s.resolved.is_some() || answered(r) => {}
            _ => push(step.text.to_string()),
        }
    }
    out
}

/// Whether the records show the service held: a failed call that set the
/// hold, or an action refused because of it — and no person's rollback or
/// forced deployment executed since (only those clear it, and only a
/// person's action runs while the service is held).
pub fn held(actions: &[ActionRecord]) -> bool {
    let mut held = false;
    for a in actions {
        let d = a.detail.as_str();
        match a.status {
            ActionStatus::Failed if d.contains("are now held") => held = true,
            ActionStatus::Skipped if d.contains("are held since") => held = true,
            ActionStatus::Executed if matches!(a.action.as_str(), "rollback" | "force-deploy") => held = false,
            _ => {}
        }
    }
    held
}

/// The remedy an action record decides on (a rollback, a scale-out).
fn remedy_of(a: &ActionRecord) -> Option<Remedy> {
    match a.action.as_str() {
        "rollback" => Some(Remedy::Rollback),
        "scale" => Some(Remedy::ScaleOut),
        _ => None,
    }
}

fn label(s: &Situation<'_>) -> String {
    format!("{}/{}", s.cluster, s.service)
}

/// `X -> Y` after `marker` in a detail: the revisions of a rollback, the
/// counts of a scale.
fn endpoints<'d>(detail: &'d str, marker: &str) -> Option<(&'d str, &'d str)> {
    let rest = &detail[detail.find(marker)? + marker.len()..];
    let (from, to) = rest.split_once(" -> ")?;
    let from = from.rsplit(' ').next()?;
    let to = to.split([' ', ';', ',', ')', '(']).next()?;
    (!from.is_empty() && !to.is_empty()).then_some((from, to))
}

/// The runbook function's request for this service, as a command.
fn runbook(s: &Situation<'_>, action: &str, extra: &str, dry_run: bool) -> String {
    let json = |v: &str| serde_json::Value::from(v).to_string();
    format!(
        "{INVOKE} '{{\"action\":\"{action}\",\"cluster\":{},\"service\":{}{extra},\"dry_run\":{dry_run}}}' out.json",
        json(s.cluster),
        json(s.service)
    )
}

fn rollback_command(s: &Situation<'_>, to: Option<&str>, dry_run: bool) -> String {
    let extra = to.map(|t| format!(",\"task_definition\":{}", serde_json::Value::from(t))).unwrap_or_default();
    runbook(s, "rollback", &extra, dry_run)
}

fn scale_command(s: &Situation<'_>, count: &str, dry_run: bool) -> String {
    let extra = if count.chars().all(|c| c.is_ascii_digit()) && !count.is_empty() {
        format!(",\"desired_count\":{count}")
    } else {
        ",\"desired_count\":<count>".to_string()
    };
    runbook(s, "scale", &extra, dry_run)
}

/// Why the engine refused, from the words it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    ModeOff,
    Held,
    Budget,
    Cooldown,
    Locked,
    CodeDeploy,
    External,
    OtherController,
    EcsRollingBack,
    Stale,
    NoTarget,
    Bounds,
    Unreadable,
    NotDesignated,
    Other,
}

fn refusal(detail: &str) -> Refusal {
    let d = detail;
    let has = |w: &str| d.contains(w);
    if has("mode off") {
        Refusal::ModeOff
    } else if has("are held since") {
        Refusal::Held
    } else if has("budget exhausted") {
        Refusal::Budget
    } else if has("cooldown:") {
        Refusal::Cooldown
    } else if has("holds the lock") {
        Refusal::Locked
    } else if has("CODE_DEPLOY") {
        Refusal::CodeDeploy
    } else if has("EXTERNAL deployment controller") {
        Refusal::External
    } else if has("uses deployment controller") {
        Refusal::OtherController
    } else if has("following ECS") {
        Refusal::EcsRollingBack
    } else if has("not designated") {
        Refusal::NotDesignated
    } else if has("unreadable") || has("not writable") || has("not known") {
        Refusal::Unreadable
    } else if has("rollback target") || has("a person must decide") || has("twice in a row") {
        Refusal::NoTarget
    } else if has("already at") || has("exceed the bounds") || has("never scales in") {
        Refusal::Bounds
    } else if has("nothing to do") || has("no longer") {
        Refusal::Stale
    } else {
        Refusal::Other
    }
}

/// What a person does about one action decision.
fn action_steps(s: &Situation<'_>, a: &ActionRecord) -> Vec<String> {
    match a.action.as_str() {
        "rollback" => rollback_steps(s, a),
        "scale" => scale_steps(s, a),
        other => other_steps(s, a, other),
    }
}

fn rollback_steps(s: &Situation<'_>, a: &ActionRecord) -> Vec<String> {
    let d = a.detail.as_str();
    let ends = endpoints(d, "roll back ");
    let (from, to) = (ends.map(|e| e.0), ends.map(|e| e.1));
    let what = ends.map(|(f, t)| format!(" {f} -> {t}")).unwrap_or_default();
    let by_hand = |why: String, to: Option<&str>| {
        vec![why, format!("Roll back by hand (plan, then \"dry_run\":false): {}", rollback_command(s, to, true))]
    };
    match a.status {
        ActionStatus::Executed => {
            let failing = from.map(|f| format!(" The failing revision was {f}: fix it before deploying it again.")).unwrap_or_else(
                || " Fix the failing revision before deploying it again.".to_string(),
            );
            let target = to.map(str::to_string).unwrap_or_else(|| "the revision the rollback went to".into());
            vec![if s.resolved.is_some() {
                format!("Verify {} still runs {target} and stays healthy.{failing}", label(s))
            } else {
                format!(
                    "Confirm {} is healthy on {target}: running count back to desired, targets healthy, no new stopped tasks.{failing}",
                    label(s)
                )
            }]
        }
        ActionStatus::Failed if d.contains("outcome UNKNOWN") => vec![format!(
            "Check now whether the rollback{what} took effect: aws ecs describe-services --cluster {} --services {} --query \
             'services[0].[taskDefinition,runningCount,desiredCount]'. It counts as executed until the next action verifies it; \
             nothing is held.",
            s.cluster, s.service
        )],
        ActionStatus::Failed if d.contains("hold NOT recorded") => by_hand(
            format!(
                "The automatic rollback{what} failed and its hold was NOT recorded, so automatic actions may try again: \
                 look at {} now.",
                label(s)
            ),
            to,
        ),
        ActionStatus::Failed if d.contains("FAILED") => by_hand(
            format!(
                "The automatic rollback{what} failed (see Actions taken): fix what refused it (permissions, the target \
                 revision), then roll back by hand; a successful manual rollback also clears the hold."
            ),
            to,
        ),
        ActionStatus::Failed => by_hand(
            "The automatic rollback was not decided (see Actions taken): nothing was changed.".to_string(),
            to,
        ),
        ActionStatus::Planned => vec![format!(
            "Nothing was rolled back (dry run); the plan was{what}. To roll back, send it for real: {}",
            rollback_command(s, to, false)
        )],
        ActionStatus::Skipped => match refusal(d) {
            Refusal::ModeOff => by_hand(
                format!("Automatic actions are off for {} (mode off): nothing was rolled back.", label(s)),
                None,
            ),
            Refusal::Held => by_hand(
                "The automatic rollback was not tried: the service is held after an earlier failed action.".into(),
                None,
            ),
            Refusal::Budget => by_hand(
                "The automatic rollback was refused by the budget: an earlier automatic rollback ran within the limit. \
                 Check whether it helped before rolling back again."
                    .into(),
                None,
            ),
            Refusal::Cooldown => by_hand(
                "The automatic rollback waited out the cooldown (an action ran minutes ago): let that settle, then roll \
                 back by hand if the service still fails."
                    .into(),
                None,
            ),
            Refusal::Locked => vec![format!(
                "Another invocation was acting on {} at the same moment: its decision comes in the next update; do not \
                 act twice.",
                label(s)
            )],
            Refusal::CodeDeploy => vec![format!(
                "Roll {} back through CodeDeploy, which deploys it: aws deploy stop-deployment --deployment-id <id> \
                 --auto-rollback-enabled (the id: aws deploy list-deployments --application-name <app> \
                 --deployment-group-name <group> --include-only-statuses InProgress).",
                label(s)
            )],
            Refusal::External => vec![format!(
                "Roll {} back with the tool that owns its deployments (EXTERNAL controller: it makes the previous task \
                 set primary again, aws ecs update-service-primary-task-set); autopilot does not.",
                label(s)
            )],
            Refusal::OtherController => vec![format!(
                "Roll {} back with the tool that owns its deployments; autopilot does not deploy it.",
                label(s)
            )],
            Refusal::EcsRollingBack => vec![format!(
                "ECS's circuit breaker is rolling {} back itself: confirm its rollback deployment completes (Deployments \
                 link); do not roll back on top of it.",
                label(s)
            )],
            Refusal::Stale => vec![format!(
                "Nothing was rolled back: the failing deployment no longer describes the service (see Actions taken). \
                 Confirm {} is healthy on the revision it runs now.",
                label(s)
            )],
            Refusal::NoTarget => by_hand(
                "No safe automatic rollback target (see Actions taken): choose a known-good revision (aws ecs \
                 list-task-definitions --family-prefix <family> --sort DESC) and name it as task_definition."
                    .into(),
                Some("<family>:<revision>"),
            ),
            Refusal::Unreadable => by_hand(
                "The automatic rollback did not act on a guess: a safety record could not be read (see Actions taken)."
                    .into(),
                None,
            ),
            Refusal::NotDesignated => by_hand(
                "No automatic rollback for this alarm (it is not designated for actions): roll back by hand if a \
                 release caused it."
                    .into(),
                None,
            ),
            Refusal::Bounds | Refusal::Other => by_hand(
                "The automatic rollback was skipped (see Actions taken for why): roll back by hand if a release caused it."
                    .into(),
                None,
            ),
        },
    }
}

fn scale_steps(s: &Situation<'_>, a: &ActionRecord) -> Vec<String> {
    let d = a.detail.as_str();
    let ends = endpoints(d, "desired count ");
    let what = ends.map(|(f, t)| format!(" {f} -> {t}")).unwrap_or_default();
    let wanted = ends.map(|e| e.1).unwrap_or("<count>");
    let by_hand = |why: String| {
        vec![why, format!("Scale by hand (plan, then \"dry_run\":false): {}", scale_command(s, wanted, true))]
    };
    match a.status {
        ActionStatus::Executed => vec![match (ends, s.resolved.is_some()) {
            (Some((from, to)), true) => format!(
                "Scale {} back from {to} to {from} tasks once the load allows (autopilot never scales in; autoscaling \
                 does where it is set up): {}",
                label(s),
                scale_command(s, from, true)
            ),
            (Some((from, to)), false) => format!(
                "Confirm the scale-out helps: {} runs {to} tasks (was {from}) and CPU, memory and latency per task fall.",
                label(s)
            ),
            (None, _) => format!("Confirm the scale-out of {} had the intended effect (see Actions taken).", label(s)),
        }],
        ActionStatus::Failed if d.contains("outcome UNKNOWN") => vec![format!(
            "Check now whether the scale{what} took effect: aws ecs describe-services --cluster {} --services {} --query \
             'services[0].[desiredCount,runningCount]'. Nothing is held.",
            s.cluster, s.service
        )],
        ActionStatus::Failed if d.contains("FAILED") => by_hand(format!(
            "The automatic scale-out{what} failed (see Actions taken): fix what refused it, then scale by hand; a \
             manual scale does not clear the hold."
        )),
        ActionStatus::Failed => by_hand("The automatic scale-out was not decided (see Actions taken): nothing was changed.".into()),
        ActionStatus::Planned => vec![format!(
            "Nothing was scaled (dry run); the plan was{what}. To scale, send it for real: {}",
            scale_command(s, wanted, false)
        )],
        ActionStatus::Skipped => match refusal(d) {
            Refusal::ModeOff => by_hand(format!("Automatic actions are off for {} (mode off): nothing was scaled.", label(s))),
            Refusal::Held => {
                by_hand("The automatic scale-out was not tried: the service is held after an earlier failed action.".into())
            }
            Refusal::Budget | Refusal::Cooldown => by_hand(
                "The automatic scale-out was refused by the budget or the cooldown: an earlier action ran minutes ago. \
                 Check whether it helped before scaling further."
                    .into(),
            ),
            Refusal::Bounds => by_hand(
                "Automatic scaling stopped at its bounds (see Actions taken): raise the autoscaling maximum or the \
                 autopilot:max-tasks tag if the service needs more tasks."
                    .into(),
            ),
            Refusal::Locked => vec![format!(
                "Another invocation was acting on {} at the same moment: its decision comes in the next update; do not \
                 act twice.",
                label(s)
            )],
            Refusal::NotDesignated => by_hand(
                "No automatic scale-out for this alarm (it is not designated for actions): scale by hand if the load is real."
                    .into(),
            ),
            _ => by_hand("The automatic scale-out was skipped (see Actions taken for why): scale by hand if the load is real.".into()),
        },
    }
}

/// Actions only a person starts (force-deploy, scale-to-zero): what to check.
fn other_steps(s: &Situation<'_>, a: &ActionRecord, action: &str) -> Vec<String> {
    let line = match (action, a.status) {
        ("force-deploy", ActionStatus::Executed) => {
            format!("Confirm the forced deployment of {} completes and its new tasks stay healthy.", label(s))
        }
        ("scale-to-zero", ActionStatus::Executed) => format!(
            "{} was scaled to zero by a person: scale it back up when it should serve again: {}",
            label(s),
            scale_command(s, "<count>", true)
        ),
        (_, ActionStatus::Executed) => return Vec::new(),
        (_, status) => {
            format!("The {action} was {} (see Actions taken): decide whether it is still needed.", status.as_str())
        }
    };
    vec![line]
}

/// The hold, and how to clear it: only a person's successful rollback or
/// forced deployment clears it (`actions::engine`), or deleting the item.
fn hold_steps(s: &Situation<'_>) -> Vec<String> {
    let key = serde_json::json!({"pk": {"S": format!("service#{}", label(s))}, "sk": {"S": "hold"}});
    vec![
        format!(
            "Automatic actions on {} are held after a failed action: autopilot takes no automatic action on it until \
             a person clears the hold. A successful rollback or force-deploy through the runbook function clears it.",
            label(s)
        ),
        format!(
            "To clear the hold without acting, once the service is checked: aws dynamodb delete-item --table-name \
             <stack>-state --key '{key}'"
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(action: &str, status: ActionStatus, detail: &str) -> ActionRecord {
        ActionRecord { action: action.into(), status, detail: detail.into() }
    }

    const ROLLED_BACK: &str = "roll back api:42 -> api:41 (KnownGood) via UpdateService; pre-action state s3://ev/x";
    const ROLLBACK_FAILED: &str = "roll back api:42 -> api:41 (KnownGood) via UpdateService FAILED: AccessDeniedException; \
                                   automatic actions on this service are now held";

    fn situation<'a>(cause: Cause, actions: &'a [ActionRecord], resolved: Option<Resolved<'a>>) -> Situation<'a> {
        Situation { cause, cluster: "prod", service: "api", actions, resolved }
    }

    /// No step advises an action the record shows was taken: after an
    /// executed rollback nothing says "roll back"; after an executed
    /// scale-out nothing says "scale out".
    fn advises(steps: &[String], words: &str) -> bool {
        steps.iter().any(|s| s.to_lowercase().contains(words))
    }

    #[test]
    fn next_steps_follow_the_cause_and_the_record() {
        use ActionStatus::*;
        struct Row {
            name: &'static str,
            cause: Cause,
            actions: Vec<ActionRecord>,
            resolved: Option<Resolved<'static>>,
            first: &'static str,
            has: &'static [&'static str],
            never: &'static [&'static str],
        }
        let report = Some(Resolved { report: Some("s3://ev/incidents/prod/api/inc-1/report.md") });
        let rows = vec![
            Row {
                name: "nothing decided: the runbook as written",
                cause: Cause::EssentialExit,
                actions: vec![],
                resolved: None,
                first: "Read the log excerpt",
                has: &["Roll back if the crash started with a deployment."],
                never: &["Confirm prod/api is healthy"],
            },
            Row {
                name: "executed rollback: confirm the target, name the failing revision",
                cause: Cause::EssentialExit,
                actions: vec![rec("rollback", Executed, ROLLED_BACK)],
                resolved: None,
                first: "Confirm prod/api is healthy on api:41",
                has: &["The failing revision was api:42", "Read the log excerpt"],
                never: &["roll back"],
            },
            Row {
                name: "executed rollback of an out-of-memory crash: raising memory stays",
                cause: Cause::OutOfMemory,
                actions: vec![rec("rollback", Executed, ROLLED_BACK)],
                resolved: None,
                first: "Confirm prod/api is healthy on api:41",
                has: &["Raise the container/task memory"],
                never: &["roll back"],
            },
            Row {
                name: "failed rollback and a hold: by hand, and how the hold clears",
                cause: Cause::ImagePull,
                actions: vec![rec("rollback", Failed, ROLLBACK_FAILED)],
                resolved: None,
                first: "The automatic rollback api:42 -> api:41 failed",
                has: &[
                    "\"task_definition\":\"api:41\",\"dry_run\":true",
                    "are held after a failed action",
                    "aws dynamodb delete-item --table-name <stack>-state --key '{\"pk\":{\"S\":\"service#prod/api\"},\"sk\":{\"S\":\"hold\"}}'",
                    "Check that the image tag exists",
                ],
                never: &["Confirm prod/api is healthy", "Roll back to the last known-good task definition if"],
            },
            Row {
                name: "failed with the outcome unknown: check, nothing held",
                cause: Cause::ImagePull,
                actions: vec![rec(
                    "rollback",
                    Failed,
                    "roll back api:42 -> api:41 (KnownGood) via UpdateService: outcome UNKNOWN - its answer was lost",
                )],
                resolved: None,
                first: "Check now whether the rollback api:42 -> api:41 took effect",
                has: &["aws ecs describe-services --cluster prod --services api"],
                never: &["held after", "Roll back by hand"],
            },
            Row {
                name: "skipped, mode off: by hand",
                cause: Cause::EssentialExit,
                actions: vec![rec("rollback", Skipped, "mode off: service tag autopilot:mode=off")],
                resolved: None,
                first: "Automatic actions are off for prod/api (mode off)",
                has: &[
                    "--function-name <stack>-runbook --cli-binary-format",
                    "\"action\":\"rollback\",\"cluster\":\"prod\",\"service\":\"api\",\"dry_run\":true",
                ],
                never: &["Roll back if the crash started", "Confirm prod/api is healthy"],
            },
            Row {
                name: "skipped, budget: check the earlier one first",
                cause: Cause::EssentialExit,
                actions: vec![rec(
                    "rollback",
                    Skipped,
                    "budget exhausted: 1 automatic rollback in the last 30 minutes (limit 1)",
                )],
                resolved: None,
                first: "The automatic rollback was refused by the budget",
                has: &["Check whether it helped"],
                never: &["Roll back if the crash started"],
            },
            Row {
                name: "skipped, cooldown",
                cause: Cause::EssentialExit,
                actions: vec![rec("rollback", Skipped, "cooldown: an action was executed 60s ago (cooldown 300s)")],
                resolved: None,
                first: "The automatic rollback waited out the cooldown",
                has: &[],
                never: &["Roll back if the crash started"],
            },
            Row {
                name: "skipped because held: the hold, and by hand",
                cause: Cause::EssentialExit,
                actions: vec![rec(
                    "rollback",
                    Skipped,
                    "automatic actions on this service are held since 2026-11-20T14:00:00Z (x); a person must clear the hold",
                )],
                resolved: None,
                first: "Automatic actions on prod/api are held after a failed action",
                has: &["aws dynamodb delete-item", "The automatic rollback was not tried: the service is held"],
                never: &["Roll back if the crash started"],
            },
            Row {
                name: "skipped, CodeDeploy: through CodeDeploy",
                cause: Cause::EssentialExit,
                actions: vec![rec(
                    "rollback",
                    Skipped,
                    "not acting: prod/api is deployed by CodeDeploy (deploymentController CODE_DEPLOY); …",
                )],
                resolved: None,
                first: "Roll prod/api back through CodeDeploy",
                has: &["aws deploy stop-deployment --deployment-id <id> --auto-rollback-enabled"],
                never: &["aws lambda invoke", "Roll back if the crash started"],
            },
            Row {
                name: "skipped, EXTERNAL: the owning tool",
                cause: Cause::HealthCheck,
                actions: vec![rec(
                    "rollback",
                    Skipped,
                    "not acting: prod/api uses the EXTERNAL deployment controller; its task sets belong to …",
                )],
                resolved: None,
                first: "Roll prod/api back with the tool that owns its deployments",
                has: &["If the app only starts slowly"],
                never: &["aws lambda invoke", "If a deploy caused it, roll back."],
            },
            Row {
                name: "skipped, ECS rolls back: follow it",
                cause: Cause::ImagePull,
                actions: vec![rec(
                    "rollback",
                    Skipped,
                    "not acting: ECS circuit breaker is rolling back; following ECS's rollback",
                )],
                resolved: None,
                first: "ECS's circuit breaker is rolling prod/api back itself",
                has: &["do not roll back on top of it"],
                never: &["Roll back to the last known-good", "aws lambda invoke"],
            },
            Row {
                name: "skipped, no target: choose one",
                cause: Cause::ImagePull,
                actions: vec![rec(
                    "rollback",
                    Skipped,
                    "no rollback target: no known-good revision, no previous deployment and no earlier ACTIVE revision than api:1",
                )],
                resolved: None,
                first: "No safe automatic rollback target",
                has: &["\"task_definition\":\"<family>:<revision>\""],
                never: &["Roll back to the last known-good task definition if"],
            },
            Row {
                name: "skipped, alarm not designated",
                cause: Cause::Http5xx,
                actions: vec![rec(
                    "rollback",
                    Skipped,
                    "no automatic action considered: the alarm is not designated (no prefix, no tag)",
                )],
                resolved: None,
                first: "No automatic rollback for this alarm",
                has: &["Check the application logs"],
                never: &["Roll back a regressing release."],
            },
            Row {
                name: "planned (dry run): the same request for real",
                cause: Cause::EssentialExit,
                actions: vec![rec(
                    "rollback",
                    Planned,
                    "dry-run (DRY_RUN=true): would roll back api:42 -> api:41 (KnownGood) via UpdateService",
                )],
                resolved: None,
                first: "Nothing was rolled back (dry run); the plan was api:42 -> api:41",
                has: &["\"task_definition\":\"api:41\",\"dry_run\":false"],
                never: &["Roll back if the crash started"],
            },
            Row {
                name: "executed scale-out: confirm it helps; rolling back still advised",
                cause: Cause::HighCpu,
                actions: vec![rec("scale", Executed, "scale api desired count 2 -> 4; pre-action state s3://ev/x")],
                resolved: None,
                first: "Confirm the scale-out helps: prod/api runs 4 tasks (was 2)",
                has: &["Roll back a regressing release.", "Check CPU per task"],
                never: &["scale out"],
            },
            Row {
                name: "scale-out at its bounds",
                cause: Cause::HighCpu,
                actions: vec![rec("scale", Skipped, "already at 10 tasks (autoscaling maximum 10)")],
                resolved: None,
                first: "Automatic scaling stopped at its bounds",
                has: &["\"action\":\"scale\"", "autopilot:max-tasks"],
                never: &["Scale out within bounds if the load is real."],
            },
            Row {
                name: "resolved after a rollback: the report, then verify the target",
                cause: Cause::EssentialExit,
                actions: vec![rec("rollback", Executed, ROLLED_BACK)],
                resolved: report,
                first: "Review and complete the incident report: s3://ev/incidents/prod/api/inc-1/report.md",
                has: &[
                    "Verify prod/api still runs api:41 and stays healthy",
                    "The failing revision was api:42",
                    "Read the log excerpt",
                ],
                never: &["roll back", "Confirm prod/api is healthy on"],
            },
            Row {
                name: "resolved on its own: the report, verify, find what changed",
                cause: Cause::EssentialExit,
                actions: vec![],
                resolved: report,
                first: "Review and complete the incident report",
                has: &["Verify prod/api is steady", "recovered without an automatic action"],
                never: &["roll back"],
            },
            Row {
                name: "resolved after a scale-out: scale back in",
                cause: Cause::HighCpu,
                actions: vec![rec("scale", Executed, "scale api desired count 2 -> 4")],
                resolved: Some(Resolved { report: None }),
                first: "Write the incident report",
                has: &["Scale prod/api back from 4 to 2 tasks", "\"desired_count\":2"],
                never: &["scale out", "Roll back a regressing release."],
            },
            Row {
                name: "resolved while still held: the hold stays to be cleared",
                cause: Cause::ImagePull,
                actions: vec![rec("rollback", Failed, ROLLBACK_FAILED)],
                resolved: report,
                first: "Review and complete the incident report",
                has: &["are held after a failed action", "aws dynamodb delete-item"],
                never: &["Roll back to the last known-good task definition if"],
            },
        ];
        for row in rows {
            let s = situation(row.cause, &row.actions, row.resolved);
            let steps = next_steps(&s);
            assert!(steps[0].starts_with(row.first), "{}: first step {:?}\n{steps:#?}", row.name, steps[0]);
            for want in row.has {
                assert!(steps.iter().any(|l| l.contains(want)), "{}: lacks {want:?}\n{steps:#?}", row.name);
            }
            for not in row.never {
                assert!(
                    !steps.iter().any(|l| l.to_lowercase().contains(&not.to_lowercase())),
                    "{}: says {not:?}\n{steps:#?}",
                    row.name
                );
            }
            let unique: std::collections::HashSet<&String> = steps.iter().collect();
            assert_eq!(unique.len(), steps.len(), "{}: no step twice", row.name);
        }
    }

    #[test]
    fn no_cause_advises_again_an_action_its_record_shows_taken() {
        for cause in Cause::ALL {
            let rolled = [rec("rollback", ActionStatus::Executed, ROLLED_BACK)];
            let scaled = [rec("scale", ActionStatus::Executed, "scale api desired count 2 -> 4")];
            for resolved in [None, Some(Resolved::default())] {
                assert!(!advises(&next_steps(&situation(cause, &rolled, resolved)), "roll back"), "{cause:?}");
                assert!(!advises(&next_steps(&situation(cause, &scaled, resolved)), "scale out"), "{cause:?}");
            }
        }
    }

    #[test]
    fn without_a_record_the_steps_are_the_runbooks() {
        for cause in Cause::ALL {
            let steps = next_steps(&situation(cause, &[], None));
            assert_eq!(steps, cause.next_steps(), "{cause:?}");
        }
    }

    #[test]
    fn the_hold_is_read_from_the_records_and_a_persons_rollback_clears_it() {
        use ActionStatus::*;
        assert!(!held(&[]));
        assert!(held(&[rec("rollback", Failed, ROLLBACK_FAILED)]));
        assert!(held(&[rec(
            "scale",
            Skipped,
            "automatic actions on this service are held since t (x); a person must clear the hold"
        )]));
        assert!(!held(&[rec(
            "rollback",
            Failed,
            "… FAILED: 503; hold NOT recorded (x): automatic actions on this service are NOT held - a person must look now"
        )]));
        assert!(!held(&[rec("rollback", Failed, "cannot read the service before acting: timeout")]));
        assert!(!held(&[rec("rollback", Failed, ROLLBACK_FAILED), rec("rollback", Executed, ROLLED_BACK)]), "cleared");
        assert!(held(&[
            rec("rollback", Failed, ROLLBACK_FAILED),
            rec("scale", Executed, "scale api desired count 2 -> 3")
        ]));
    }

    #[test]
    fn revisions_and_counts_are_read_from_the_details() {
        assert_eq!(endpoints(ROLLED_BACK, "roll back "), Some(("api:42", "api:41")));
        assert_eq!(
            endpoints(
                "dry-run (dry_run requested): would roll back web:7 -> web:5 (PreviousDeployment, UNVERIFIED: x) via StopServiceDeployment(ROLLBACK)",
                "roll back "
            ),
            Some(("web:7", "web:5"))
        );
        assert_eq!(
            endpoints("scale api desired count 2 -> 4 (limited by step limit)", "desired count "),
            Some(("2", "4"))
        );
        assert_eq!(endpoints("mode off: x", "roll back "), None);
    }

    #[test]
    fn commands_survive_the_redactor_and_fit_a_chat_step() {
        let redactor = crate::redact::Redactor::new();
        let failed = [rec("rollback", ActionStatus::Failed, ROLLBACK_FAILED)];
        let s = Situation {
            cluster: "production-eu",
            service: "checkout-api",
            ..situation(Cause::ImagePull, &failed, None)
        };
        for step in next_steps(&s) {
            assert_eq!(redactor.text(&step), step, "a command must come through the redactor whole");
            if step.contains("aws ") {
                assert!(
                    step.chars().count() <= crate::notify::chat::limits::NEXT_STEP_CHARS,
                    "{} chars: {step}",
                    step.len()
                );
            }
        }
    }
}
