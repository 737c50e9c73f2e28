//! Why a task stopped: one cause of the vocabulary (docs/ARCHITECTURE.md) from the Task
//! State Change event alone (`stopCode`, `stoppedReason`, and every
//! container's `reason`, `exitCode` and `name`). Pure; never panics.
//!
//! The texts matched are AWS's own ("Amazon ECS stopped tasks error
//! messages", "Stopped tasks error codes", the ResourceInitializationError
//! and CannotPullContainerError troubleshooting pages). Matching is
//! case-insensitive throughout: AWS has changed capitalisation of these texts
//! over the years and re-publishers sometimes lower-case them.
//!
//! Decision order (first rule that matches wins; the order is what settles
//! events carrying more than one signal):
//!
//! 1. **Spot** — stop code `SpotInterruption` or "Your Spot Task was
//!    interrupted." → `spot-interruption`, not a failure. ("no Spot capacity
//!    available" is a *placement* failure and goes to `capacity`.)
//! 2. **Expected** — deployment and scale-in stops ("Scaling activity
//!    initiated by (deployment ecs-svc/…)", "Deployment replaced this task"),
//!    user stops ("Task stopped by user", stop code `UserInitiated`), Fargate
//!    maintenance / task retirement ("ECS is performing maintenance on the
//!    underlying infrastructure hosting the task", "Task is being retired"),
//!    stop codes `TerminationNotice` and `InfrastructureHealth` → `expected`,
//!    not a failure. An explicit expected text wins over exit codes: a
//!    scale-in routinely ends in 143 (SIGTERM) or 137 (SIGKILL after the
//!    stop timeout) and that is not a crash.
//! 3. **Out of memory** — `OutOfMemoryError`, "killed due to memory usage",
//!    `OOMKilled` on any container or on the task → `out-of-memory`. Often
//!    only the container says so while the task says "Essential container in
//!    task exited". Exit 137 *without* such a reason is not OOM (rule 10).
//! 4. **Health checks** — "Task failed ELB health checks in (target-group …)",
//!    "Task failed container health checks" → `health-check`, although the
//!    stop code is `ServiceSchedulerInitiated`.
//! 5. **Platform mismatch** — the image was built for another CPU
//!    architecture than the task's platform: "image Manifest does not contain
//!    descriptor matching platform 'linux/arm64'", "no matching manifest for
//!    linux/amd64", "does not match the detected host platform", or the
//!    process failing with `exec format error` (a `CannotStartContainerError`
//!    or the container's reason) → `platform-mismatch`. Decided before the
//!    ResourceInitializationError split (Fargate wraps the runtime's error in
//!    one) and before image pull: the pull itself worked, the architecture is wrong. (The same text
//!    in the failing container's *log* refines an `essential-exit`: see
//!    [`refine_with_log`].)
//! 6. **ResourceInitializationError** (Fargate's "could not prepare the
//!    task" family) is decided before image pull, so that its "unable to
//!    pull secrets or registry auth" never reads as an image problem:
//!    - secrets / registry credentials ("unable to pull secrets or registry
//!      auth", "unable to retrieve secret(s) from asm|ssm", "ecr registry
//!      auth", Secrets Manager, SSM Parameter Store) → `secrets`, even when
//!      the underlying error is a timeout: the step that failed is fetching
//!      credentials, and the runbook for `secrets` covers both the execution
//!      role and the network path to Secrets Manager/SSM/ECR;
//!    - ENI / subnet / network interface, or a network symptom (timeout,
//!      `i/o timeout`, context deadline exceeded, no such host, connection
//!      refused/timed out, "signal: killed" of the helper) → `network`;
//!    - anything else — e.g. the awslogs logger ("failed to validate logger
//!      args: … The specified log group does not exist"), an EFS mount
//!      refused for a wrong path or access point — is a configuration error
//!      that matches no cause of the vocabulary → `unknown` (a failure when
//!      the task failed to start), with an explanation naming the step
//!      (logging, EFS volume). Logger and EFS errors that show a network
//!      symptom are `network` by the previous bullet, since the fix is the
//!      route (VPC endpoint, NAT, security group) to CloudWatch Logs or EFS.
//! 7. **Image pull** — `CannotPullContainerError`, `CannotPullImageManifestError`,
//!    "pull access denied", "manifest unknown", "repository does not exist",
//!    "failed to resolve ref", "image not found", registry auth failures,
//!    `toomanyrequests` → `image-pull`.
//! 8. **Capacity** — "Capacity is unavailable at this time", "RESOURCE:MEMORY"
//!    / CPU / GPU / PORTS / ENI, "No Container Instances were found in your
//!    cluster", "unable to place a task", insufficient capacity, no Spot
//!    capacity, account task/vCPU limits → `capacity` (a failure).
//! 9. **Network** — "Timeout waiting for network interface provisioning to
//!    complete.", ENI / subnet / "network interface" texts without
//!    ResourceInitializationError → `network`.
//! 10. **Container runtime errors** — `CannotStartContainerError` (the
//!     container was created but its process could not start: bad entrypoint,
//!     missing binary, …) is the application's start failing →
//!     `essential-exit`; except when it is the log driver that failed
//!     ("failed to initialize logging driver"), which follows rule 6's split
//!     (`network` on a network symptom, else `unknown`). `CannotCreateContainerError`, `DockerTimeoutError`,
//!     `CannotInspectContainerError` and friends are host/runtime problems
//!     with no cause of their own → `unknown`.
//! 11. **Essential exit** — stop code `EssentialContainerExited`, "Essential
//!     container in task exited", or (no stop code at all) a container with a
//!     non-zero exit code → `essential-exit`. Exit 137 is reported as SIGKILL
//!     (stop timeout or the kernel), never as OOM. Exit 0 of a *service* task
//!     is still an essential exit (a service's process must not end), but a
//!     *standalone* task (`group` `family:…`) whose containers all exited 0
//!     simply completed → `expected`, not a failure (a judgement call: a
//!     scheduled job finishing must not page anyone).
//! 12. **Scheduler** — stop code `ServiceSchedulerInitiated` with nothing
//!     above matching: a replacement by the scheduler → `expected`.
//! 13. Otherwise `unknown`; a failure only when the stop code is
//!     `TaskFailedToStart` or `EssentialContainerExited`.
//!
//! The container that explains the stop is, in order: the one whose reason
//! carries the matched text; for exits and health checks, the one with an
//! OOM reason, else a non-zero exit code (an application exit code beats 137,
//! which beats 143, because ECS SIGTERMs — and after the stop timeout
//! SIGKILLs — the *other* containers once the essential one is gone), else
//! one with a reason. A sidecar that exited 0 is never the culprit.

use crate::outcome::Cause;
use crate::trigger::{ContainerState, TaskStateChange};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopClassification {
    pub cause: Cause,
    pub failure: bool,
    pub container: Option<String>,
    pub explanation: String,
}

/// AWS's reason texts are quoted verbatim up to this many characters.
pub const MAX_REASON_CHARS: usize = 300;

pub fn classify_stop(task: &TaskStateChange) -> StopClassification {
    let facts = Facts::new(task);
    let stop_code = facts.stop_code.as_str();

    // 1. Spot interruption.
    if stop_code == "spotinterruption" || facts.find(is_spot_interruption).is_some() {
        let quote = facts.find(is_spot_interruption).map(|m| m.text).or(facts.task_reason);
        return facts.verdict(
            Cause::SpotInterruption,
            false,
            None,
            "the task was interrupted because Fargate Spot reclaimed its capacity (a service replaces it)",
            quote,
            None,
        );
    }

    // 2. Expected stops.
    if let Some((lead, quote)) = facts.expected_stop() {
        return facts.verdict(Cause::Expected, false, None, lead, quote, None);
    }

    // 3. Out of memory.
    if let Some(m) = facts.find(is_oom) {
        let container = m.container.or_else(|| facts.culprit());
        let lead = match container {
            Some(i) => format!("container {} was killed for exceeding its memory", facts.name(i)),
            None => "the task was killed for exceeding its memory".to_string(),
        };
        return facts.verdict(Cause::OutOfMemory, true, container, &lead, Some(m.text), container);
    }

    // 4. Health checks.
    if let Some(m) = facts.find(is_health_check_failure) {
        let container = m.container.or_else(|| facts.culprit());
        let kind = if m.lower.contains("container health") {
            "its container health check"
        } else if m.lower.contains("elb") || m.lower.contains("load balanc") || m.lower.contains("target") {
            "its load balancer (ELB target group) health checks"
        } else {
            "its health checks"
        };
        let lead = match container {
            Some(i) => format!("task failed {kind} (container {})", facts.name(i)),
            None => format!("task failed {kind}"),
        };
        return facts.verdict(Cause::HealthCheck, true, container, &lead, Some(m.text), container);
    }

    // 5. Platform mismatch (before the ResourceInitializationError split and image pull:
    // the pull worked, the architecture is wrong).
    if let Some(m) = facts.find(is_platform_mismatch) {
        let container = m.container.or_else(|| facts.container_with_reason_matching(is_platform_mismatch));
        let lead = match container {
            Some(i) => format!("the image of container {} was built for another CPU architecture", facts.name(i)),
            None => "the task's image was built for another CPU architecture".to_string(),
        };
        return facts.verdict(Cause::PlatformMismatch, true, container, &lead, Some(m.text), None);
    }

    // 6. ResourceInitializationError.
    if let Some(m) = facts.find(|l| l.contains("resourceinitializationerror")) {
        let (cause, lead) = if is_secrets_retrieval(m.lower) {
            let hint = if has_network_symptom(m.lower) {
                " (the call timed out: check the route from the subnets to Secrets Manager/SSM/ECR, then the execution role)"
            } else {
                " (check the task execution role's permissions and the secret's ARN)"
            };
            (Cause::Secrets, format!("the task could not retrieve its secrets or registry credentials{hint}"))
        } else if mentions_eni_or_subnet(m.lower) || has_network_symptom(m.lower) {
            let step = resource_step(m.lower).map(|s| format!(" while {s}")).unwrap_or_default();
            (Cause::Network, format!("the task's network could not be provisioned or reached an AWS endpoint{step}"))
        } else {
            let step = resource_step(m.lower).unwrap_or("preparing its resources");
            (Cause::Unknown, format!("the task failed while {step} (a configuration error)"))
        };
        let failure = cause != Cause::Unknown || facts.failure_stop_code() || stop_code.is_empty();
        return facts.verdict(cause, failure, m.container, &lead, Some(m.text), None);
    }

    // 7. Image pull.
    if let Some(m) = facts.find(is_image_pull_failure) {
        let container = m.container.or_else(|| facts.container_with_reason_matching(is_image_pull_failure));
        let lead = match container {
            Some(i) => format!("the image of container {} could not be pulled", facts.name(i)),
            None => "the task's image could not be pulled".to_string(),
        };
        // The task-level text is usually the complete one; quote it when it
        // says the same thing.
        let quote = facts.task_reason.filter(|r| is_image_pull_failure(&r.to_lowercase())).or(Some(m.text));
        return facts.verdict(Cause::ImagePull, true, container, &lead, quote, None);
    }

    // 8. Capacity.
    if let Some(m) = facts.find(is_capacity_failure) {
        return facts.verdict(
            Cause::Capacity,
            true,
            m.container,
            "there was no capacity to place the task",
            Some(m.text),
            None,
        );
    }

    // 9. Network.
    if let Some(m) = facts.find(is_network_failure) {
        return facts.verdict(
            Cause::Network,
            true,
            m.container,
            "the task's network interface could not be provisioned",
            Some(m.text),
            None,
        );
    }

    // 10. Container runtime errors.
    if let Some(m) = facts.find(|l| l.contains("cannotstartcontainererror")) {
        if resource_step(m.lower).is_some_and(|step| step.contains("log")) {
            // The log driver, not the application: same split as rule 6.
            let (cause, failure) = if has_network_symptom(m.lower) {
                (Cause::Network, true)
            } else {
                (Cause::Unknown, facts.failure_stop_code() || stop_code.is_empty())
            };
            let lead = "the container's log driver could not be set up (not the application)";
            return facts.verdict(cause, failure, m.container, lead, Some(m.text), None);
        }
        let lead = match m.container {
            Some(i) => format!("container {} could not start its process", facts.name(i)),
            None => "a container could not start its process".to_string(),
        };
        return facts.verdict(Cause::EssentialExit, true, m.container, &lead, Some(m.text), m.container);
    }
    if let Some(m) = facts.find(is_runtime_error) {
        let failure = facts.failure_stop_code() || stop_code.is_empty();
        return facts.verdict(
            Cause::Unknown,
            failure,
            m.container,
            "the container runtime failed on the host (not the application)",
            Some(m.text),
            m.container,
        );
    }

    // 11. Essential container exited.
    let essential_text = facts.find(|l| l.contains("essential container"));
    let nonzero_without_code =
        stop_code.is_empty() && facts.containers.iter().any(|c| matches!(c.exit, Some(e) if e != 0));
    if stop_code == "essentialcontainerexited" || essential_text.is_some() || nonzero_without_code {
        let quote = essential_text.map(|m| m.text).or(facts.task_reason);
        let container = facts.culprit().or_else(|| facts.first_exited_zero());
        let all_zero = facts.containers.iter().all(|c| matches!(c.exit, None | Some(0)));
        if facts.standalone && all_zero && facts.first_exited_zero().is_some() {
            return facts.verdict(
                Cause::Expected,
                false,
                container,
                "the standalone task ran to completion (every container exited 0)",
                quote,
                container,
            );
        }
        let lead = match container {
            Some(i) => exit_lead(facts.name(i), facts.containers[i].exit),
            None => "an essential container exited (no exit code reported)".to_string(),
        };
        return facts.verdict(Cause::EssentialExit, true, container, &lead, quote, None);
    }

    // 12. The service scheduler replaced the task for no failure we can see.
    if stop_code == "serviceschedulerinitiated" {
        return facts.verdict(
            Cause::Expected,
            false,
            None,
            "the service scheduler stopped the task (replacement or scale-in)",
            facts.task_reason,
            None,
        );
    }

    // 13. Unknown.
    let failure = facts.failure_stop_code();
    let lead = match facts.raw_stop_code {
        Some(code) => format!("the task stopped for a reason not recognised (stop code {})", one_line(code, 60)),
        None => "the task stopped for a reason not recognised (no stop code)".to_string(),
    };
    let container = facts.culprit();
    facts.verdict(
        Cause::Unknown,
        failure,
        container,
        &lead,
        facts.task_reason.or_else(|| facts.any_reason()),
        container,
    )
}

/// A reason text that matched a rule, and where it came from.
#[derive(Clone, Copy)]
struct Match<'a> {
    text: &'a str,
    lower: &'a str,
    container: Option<usize>,
}

struct Container<'a> {
    name: &'a str,
    exit: Option<i64>,
    reason: Option<&'a str>,
    reason_lower: Option<String>,
}

struct Facts<'a> {
    /// Lower-case, trimmed; empty when absent.
    stop_code: String,
    raw_stop_code: Option<&'a str>,
    task_reason: Option<&'a str>,
    task_reason_lower: Option<String>,
    containers: Vec<Container<'a>>,
    standalone: bool,
}

impl<'a> Facts<'a> {
    fn new(task: &'a TaskStateChange) -> Self {
        let raw_stop_code = non_empty(task.stop_code.as_deref());
        let task_reason = non_empty(task.stopped_reason.as_deref());
        let containers = task
            .containers
            .iter()
            .map(|c: &'a ContainerState| {
                let reason = non_empty(c.reason.as_deref());
                Container {
                    name: c.name.as_str(),
                    exit: c.exit_code,
                    reason,
                    reason_lower: reason.map(str::to_lowercase),
                }
            })
            .collect();
        Self {
            stop_code: raw_stop_code.map(str::to_lowercase).unwrap_or_default(),
            raw_stop_code,
            task_reason,
            task_reason_lower: task_reason.map(str::to_lowercase),
            containers,
            standalone: task.group.as_deref().is_some_and(|g| g.starts_with("family:")),
        }
    }

    /// The first reason (task first, then containers in order) satisfying
    /// `pred`, given the lower-cased text. When the task text matches, a
    /// container whose reason matches too is still named.
    fn find(&self, pred: impl Fn(&str) -> bool) -> Option<Match<'_>> {
        let container = self.container_with_reason_matching(&pred);
        if let (Some(text), Some(lower)) = (self.task_reason, self.task_reason_lower.as_deref())
            && pred(lower)
        {
            return Some(Match { text, lower, container });
        }
        let i = container?;
        let c = &self.containers[i];
        Some(Match { text: c.reason?, lower: c.reason_lower.as_deref()?, container: Some(i) })
    }

    fn container_with_reason_matching(&self, pred: impl Fn(&str) -> bool) -> Option<usize> {
        self.containers.iter().position(|c| c.reason_lower.as_deref().is_some_and(&pred))
    }

    fn any_reason(&self) -> Option<&'a str> {
        self.containers.iter().find_map(|c| c.reason)
    }

    fn name(&self, i: usize) -> &str {
        let name = self.containers.get(i).map(|c| c.name.trim()).unwrap_or_default();
        if name.is_empty() { "(unnamed)" } else { name }
    }

    fn failure_stop_code(&self) -> bool {
        matches!(self.stop_code.as_str(), "taskfailedtostart" | "essentialcontainerexited")
    }

    /// The container that best explains an exit (see the module doc).
    fn culprit(&self) -> Option<usize> {
        let rank = |c: &Container<'_>| -> u8 {
            if c.reason_lower.as_deref().is_some_and(is_oom) {
                5
            } else {
                match c.exit {
                    Some(0) | None if c.reason.is_some() => 1,
                    Some(0) | None => 0,
                    Some(137) => 3,
                    Some(143) => 2,
                    Some(_) => 4,
                }
            }
        };
        let mut best: Option<(usize, u8)> = None;
        for (i, c) in self.containers.iter().enumerate() {
            let r = rank(c);
            if r > 0 && best.is_none_or(|(_, b)| r > b) {
                best = Some((i, r));
            }
        }
        best.map(|(i, _)| i)
    }

    fn first_exited_zero(&self) -> Option<usize> {
        self.containers.iter().position(|c| c.exit == Some(0))
    }

    /// Rule 2: the lead of the explanation and the text to quote.
    fn expected_stop(&self) -> Option<(&'static str, Option<&'a str>)> {
        const TEXTS: &[(&str, &str)] = &[
            ("scaling activity initiated by", "the service scaled in or a deployment replaced the task"),
            ("deployment replaced this task", "a deployment replaced the task"),
            ("replaced by deployment", "a deployment replaced the task"),
            ("task stopped by user", "a user or an API call stopped the task"),
            ("stopped by user", "a user or an API call stopped the task"),
            ("performing maintenance", "AWS stopped the task for infrastructure maintenance (task retirement)"),
            ("being retired", "AWS retired the task (Fargate platform maintenance)"),
            ("task retirement", "AWS retired the task (Fargate platform maintenance)"),
            ("scheduled for retirement", "AWS retired the task (Fargate platform maintenance)"),
        ];
        let texts = self
            .task_reason
            .zip(self.task_reason_lower.as_deref())
            .into_iter()
            .chain(self.containers.iter().filter_map(|c| c.reason.zip(c.reason_lower.as_deref())));
        for (text, lower) in texts {
            if let Some((_, lead)) = TEXTS.iter().find(|(needle, _)| lower.contains(needle)) {
                return Some((lead, Some(text)));
            }
        }
        let lead = match self.stop_code.as_str() {
            "userinitiated" => "a user or an API call stopped the task",
            "terminationnotice" => "the task was stopped on a termination notice for its host (a service replaces it)",
            "infrastructurehealth" => {
                "AWS stopped the task because its infrastructure was unhealthy (a service replaces it)"
            }
            _ => return None,
        };
        Some((lead, self.task_reason))
    }

    /// Builds the result. `exit_of` names the container whose exit code is
    /// appended as "(exit N)".
    fn verdict(
        &self,
        cause: Cause,
        failure: bool,
        container: Option<usize>,
        lead: &str,
        quote: Option<&str>,
        exit_of: Option<usize>,
    ) -> StopClassification {
        let mut explanation = lead.to_string();
        match quote {
            Some(q) => {
                explanation.push_str(": ");
                explanation.push_str(&one_line(q, MAX_REASON_CHARS));
            }
            None => explanation.push_str(" (AWS gave no reason text)"),
        }
        if let Some(code) = exit_of.and_then(|i| self.containers.get(i)).and_then(|c| c.exit) {
            explanation.push_str(&format!(" (exit {code})"));
        }
        // Whether a known cause is a failed task is the catalogue's to say;
        // only `unknown` depends on the rule that reached it (the stop code).
        let failure = if cause == Cause::Unknown { failure } else { cause.info().failure };
        StopClassification { cause, failure, container: container.map(|i| self.name(i).to_string()), explanation }
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// One line, at most `max` characters (on a char boundary), "..." when cut.
fn one_line(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max + 3));
    let mut count = 0;
    let mut last_space = false;
    for ch in text.trim().chars() {
        let ch = if ch.is_control() || ch.is_whitespace() { ' ' } else { ch };
        if ch == ' ' && last_space {
            continue;
        }
        last_space = ch == ' ';
        if count == max {
            out.truncate(out.trim_end().len());
            out.push_str("...");
            return out;
        }
        out.push(ch);
        count += 1;
    }
    out
}

/// "essential container api exited with code 1 (…)" and the like.
fn exit_lead(name: &str, exit: Option<i64>) -> String {
    match exit {
        None => format!("essential container {name} stopped (no exit code reported)"),
        Some(0) => format!(
            "essential container {name} exited with code 0: the process ended on its own, and because the \
             container is essential the task stopped"
        ),
        Some(137) => format!(
            "essential container {name} was killed by SIGKILL (exit 137), e.g. by the stop timeout after SIGTERM \
             or by the kernel; no OutOfMemoryError was reported, so this is not proven to be out of memory"
        ),
        Some(143) => format!("essential container {name} exited on SIGTERM (exit 143)"),
        Some(139) => format!("essential container {name} crashed with a segmentation fault (SIGSEGV, exit 139)"),
        Some(134) => format!("essential container {name} aborted (SIGABRT, exit 134)"),
        Some(127) => format!("essential container {name} exited with code 127: command not found"),
        Some(126) => format!("essential container {name} exited with code 126: command not executable"),
        Some(code @ 129..=192) => {
            format!("essential container {name} was killed by signal {} (exit {code})", code - 128)
        }
        Some(code) => format!("essential container {name} exited with code {code}: the application failed"),
    }
}

fn is_spot_interruption(l: &str) -> bool {
    l.contains("spot task was interrupted") || l.contains("spot interruption") || l.contains("spotinterruption")
}

fn is_oom(l: &str) -> bool {
    l.contains("outofmemory")
        || l.contains("out of memory")
        || l.contains("oomkilled")
        || l.contains("oom-kill")
        || l.contains("oom killer")
        || l.contains("killed due to memory usage")
}

fn is_health_check_failure(l: &str) -> bool {
    (l.contains("health check") || l.contains("healthcheck"))
        && (l.contains("fail") || l.contains("unhealthy"))
        && !l.contains("resourceinitializationerror")
}

fn is_secrets_retrieval(l: &str) -> bool {
    l.contains("secret")
        || l.contains("registry auth")
        || l.contains("execution resource retrieval")
        || l.contains("secretsmanager")
        || l.contains("parameter store")
        || l.contains("ssm:")
        || has_word(l, "ssm")
        || has_word(l, "asm")
}

fn mentions_eni_or_subnet(l: &str) -> bool {
    has_word(l, "eni")
        || l.contains("network interface")
        || l.contains("networkinterface")
        || l.contains("subnet")
        || l.contains("awsvpc")
        || l.contains("ip address")
}

fn has_network_symptom(l: &str) -> bool {
    l.contains("timeout")
        || l.contains("timed out")
        || l.contains("i/o timeout")
        || l.contains("deadline exceeded")
        || l.contains("no such host")
        || l.contains("connection refused")
        || l.contains("connection reset")
        || l.contains("failed to resolve")
        || l.contains("network is unreachable")
        || l.contains("no route to host")
        || l.contains("signal: killed")
        || l.contains("request canceled")
}

/// Which preparation step a ResourceInitializationError names.
fn resource_step(l: &str) -> Option<&'static str> {
    if l.contains("logger") || l.contains("log group") || l.contains("log stream") || l.contains("logging driver") {
        Some("setting up its log driver (awslogs/FireLens)")
    } else if l.contains("efs") {
        Some("mounting its EFS volume")
    } else if mentions_eni_or_subnet(l) {
        Some("provisioning its network interface")
    } else if l.contains("ephemeral storage") || l.contains("volume") {
        Some("preparing its storage")
    } else {
        None
    }
}

/// The texts of an image built for another CPU architecture: containerd's
/// "does not contain descriptor matching platform", Docker's "no matching
/// manifest for", the runtime's "exec format error".
fn is_platform_mismatch(l: &str) -> bool {
    l.contains("descriptor matching platform")
        || l.contains("no matching manifest for")
        || l.contains("does not match the detected host platform")
        || l.contains("exec format error")
}

/// Refine a stop's cause with the failing container's log (pure): an
/// essential container that exited because its binary is for another CPU
/// architecture says `exec format error` only in its log.
pub fn refine_with_log(cause: Cause, log_lines: &[String]) -> Cause {
    if cause == Cause::EssentialExit && log_lines.iter().any(|l| l.to_lowercase().contains("exec format error")) {
        Cause::PlatformMismatch
    } else {
        cause
    }
}

/// Whether one stopped task already proves its revision broken in a way the
/// previous revision does not share (pure): the image it names does not
/// exist (`not found`, `manifest unknown`, a repository that does not
/// exist), it was built for another CPU architecture, or a secret or
/// parameter it references does not exist. Such a stop repeats on every
/// task of the revision, so a rollback need not wait for a crash loop.
/// Throttling, timeouts, denied access and capacity are not definite: the
/// previous revision pulls from the same registry with the same role.
pub fn definite_revision_failure(task: &TaskStateChange) -> Option<Cause> {
    let c = classify_stop(task);
    if !c.failure {
        return None;
    }
    let texts: Vec<String> = task
        .stopped_reason
        .iter()
        .chain(task.containers.iter().filter_map(|c| c.reason.as_ref()))
        .map(|t| t.to_lowercase())
        .collect();
    let any = |f: &dyn Fn(&str) -> bool| texts.iter().any(|t| f(t));
    // Not `has_network_symptom`: its "failed to resolve" (DNS) is also how
    // containerd says an image reference does not resolve — a definite one.
    let transient = |l: &str| {
        [
            "timeout",
            "timed out",
            "deadline exceeded",
            "no such host",
            "connection refused",
            "connection reset",
            "network is unreachable",
            "no route to host",
            "request canceled",
            "toomanyrequests",
            "rate limit",
            "throttl",
            "denied",
            "unauthorized",
            "forbidden",
            "not authorized",
        ]
        .iter()
        .any(|w| l.contains(w))
    };
    let missing = |l: &str| {
        l.contains("manifest unknown")
            || l.contains("image not found")
            || l.contains("does not exist")
            || l.contains("not found")
            || l.contains("notfound")
    };
    match c.cause {
        Cause::PlatformMismatch => Some(Cause::PlatformMismatch),
        Cause::ImagePull if any(&|l| missing(l) && !transient(l)) && !any(&transient) => Some(Cause::ImagePull),
        Cause::Secrets
            if any(&|l| {
                (l.contains("resourcenotfoundexception") || l.contains("parameternotfound") || missing(l))
                    && !transient(l)
            }) && !any(&transient) =>
        {
            Some(Cause::Secrets)
        }
        _ => None,
    }
}

fn is_image_pull_failure(l: &str) -> bool {
    l.contains("cannotpullcontainererror")
        || l.contains("cannotpullimagemanifesterror")
        || l.contains("pull access denied")
        || l.contains("manifest unknown")
        || l.contains("image not found")
        || l.contains("repository does not exist")
        || l.contains("failed to resolve ref")
        || l.contains("toomanyrequests")
        || l.contains("registry auth")
        || l.contains("imagepull")
        || (l.contains("manifest") && l.contains("not found"))
}

fn is_capacity_failure(l: &str) -> bool {
    l.contains("capacity is unavailable")
        || l.contains("insufficient capacity")
        || l.contains("insufficientinstancecapacity")
        || l.contains("no spot capacity")
        || l.contains("resource:memory")
        || l.contains("resource:cpu")
        || l.contains("resource:gpu")
        || l.contains("resource:ports")
        || l.contains("resource:eni")
        || l.contains("no container instances were found")
        || l.contains("no container instance met")
        || l.contains("unable to place a task")
        || l.contains("unable to place task")
        || l.contains("reached the limit on the number of")
        || l.contains("vcpu limit")
}

fn is_network_failure(l: &str) -> bool {
    l.contains("network interface provisioning") || mentions_eni_or_subnet(l)
}

fn is_runtime_error(l: &str) -> bool {
    [
        "cannotcreatecontainererror",
        "dockertimeouterror",
        "cannotinspectcontainererror",
        "cannotstopcontainererror",
        "containerruntimeerror",
        "containerruntimetimeouterror",
        "cannotcreatevolumeerror",
    ]
    .iter()
    .any(|needle| l.contains(needle))
}

/// `word` occurs in `l` with no ASCII letter or digit on either side (so
/// "eni" is found in "failed to configure ENI" but not in "denied").
fn has_word(l: &str, word: &str) -> bool {
    let bytes = l.as_bytes();
    l.match_indices(word).any(|(at, _)| {
        let before = at.checked_sub(1).and_then(|i| bytes.get(i)).is_none_or(|b| !b.is_ascii_alphanumeric());
        let after = bytes.get(at + word.len()).is_none_or(|b| !b.is_ascii_alphanumeric());
        before && after
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Containers = &'static [(&'static str, Option<i64>, Option<&'static str>)];

    fn task(stop_code: Option<&str>, reason: Option<&str>, containers: Containers) -> TaskStateChange {
        TaskStateChange {
            cluster_arn: "arn:aws:ecs:us-east-1:111122223333:cluster/prod".into(),
            task_arn: "arn:aws:ecs:us-east-1:111122223333:task/prod/0123456789abcdef0123456789abcdef".into(),
            group: Some("service:api".into()),
            last_status: Some("STOPPED".into()),
            stop_code: stop_code.map(Into::into),
            stopped_reason: reason.map(Into::into),
            containers: containers
                .iter()
                .map(|(name, exit, reason)| ContainerState {
                    name: (*name).into(),
                    exit_code: *exit,
                    reason: reason.map(Into::into),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    struct Case {
        name: &'static str,
        stop_code: Option<&'static str>,
        reason: Option<&'static str>,
        containers: Containers,
        cause: Cause,
        failure: bool,
        container: Option<&'static str>,
    }

    const FAILED_TO_START: Option<&str> = Some("TaskFailedToStart");
    const ESSENTIAL_EXITED: Option<&str> = Some("EssentialContainerExited");
    const SCHEDULER: Option<&str> = Some("ServiceSchedulerInitiated");
    const ESSENTIAL_TEXT: Option<&str> = Some("Essential container in task exited");
    const OOM_TEXT: Option<&str> = Some("OutOfMemoryError: Container killed due to memory usage");
    const ELB_TEXT: &str = "Task failed ELB health checks in (target-group \
        arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/api-tg/73e2d6bc24d8a067)";

    const CASES: &[Case] = &[
        // ---- platform-mismatch
        Case {
            name: "when_the_image_has_no_manifest_for_the_task_platform_should_be_platform_mismatch",
            stop_code: FAILED_TO_START,
            reason: Some(
                "CannotPullContainerError: pull image manifest has been retried 7 time(s): image Manifest does not contain \
                 descriptor matching platform 'linux/arm64'",
            ),
            containers: &[(
                "api",
                None,
                Some(
                    "CannotPullContainerError: pull image manifest has been retried 7 time(s): image Manifest does not \
                     contain descriptor matching platform 'linux/arm64'",
                ),
            )],
            cause: Cause::PlatformMismatch,
            failure: true,
            container: Some("api"),
        },
        Case {
            name: "when_docker_finds_no_matching_manifest_should_be_platform_mismatch",
            stop_code: FAILED_TO_START,
            reason: Some(
                "CannotPullContainerError: Error response from daemon: no matching manifest for linux/amd64 in the \
                 manifest list entries",
            ),
            containers: &[("web", None, None)],
            cause: Cause::PlatformMismatch,
            failure: true,
            container: None,
        },
        Case {
            name: "when_the_process_cannot_start_with_exec_format_error_should_be_platform_mismatch",
            stop_code: ESSENTIAL_EXITED,
            reason: ESSENTIAL_TEXT,
            containers: &[(
                "api",
                Some(1),
                Some(
                    "CannotStartContainerError: ResourceInitializationError: failed to create new container runtime task: \
                     failed to create shim task: OCI runtime create failed: runc create failed: unable to start container \
                     process: exec: \"/app/server\": exec format error: unknown",
                ),
            )],
            cause: Cause::PlatformMismatch,
            failure: true,
            container: Some("api"),
        },
        // ---- image-pull
        Case {
            name: "when_image_tag_is_not_found_should_be_image_pull",
            stop_code: FAILED_TO_START,
            reason: Some(
                "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref \
                 111122223333.dkr.ecr.us-east-1.amazonaws.com/api:v9: 111122223333.dkr.ecr.us-east-1.amazonaws.com/api:v9: not found",
            ),
            containers: &[(
                "api",
                None,
                Some("CannotPullContainerError: pull image manifest has been retried 5 time(s)"),
            )],
            cause: Cause::ImagePull,
            failure: true,
            container: Some("api"),
        },
        Case {
            name: "when_pull_access_is_denied_only_on_the_container_should_be_image_pull",
            stop_code: FAILED_TO_START,
            reason: None,
            containers: &[(
                "worker",
                None,
                Some(
                    "CannotPullContainerError: Error response from daemon: pull access denied for \
                     111122223333.dkr.ecr.us-east-1.amazonaws.com/worker, repository does not exist or may require 'docker login'",
                ),
            )],
            cause: Cause::ImagePull,
            failure: true,
            container: Some("worker"),
        },
        Case {
            name: "when_manifest_is_unknown_should_be_image_pull",
            stop_code: FAILED_TO_START,
            reason: Some(
                "CannotPullContainerError: Error response from daemon: manifest for nginx:1.99 not found: manifest unknown: manifest unknown",
            ),
            containers: &[("web", None, None)],
            cause: Cause::ImagePull,
            failure: true,
            container: None,
        },
        Case {
            name: "when_docker_hub_rate_limits_the_pull_should_be_image_pull",
            stop_code: FAILED_TO_START,
            reason: Some(
                "CannotPullContainerError: inspect image has been retried 5 time(s): httpReaderSeeker: failed open: unexpected \
                 status code https://registry-1.docker.io/v2/library/node/manifests/20: 429 Too Many Requests - Server message: \
                 toomanyrequests: You have reached your pull rate limit.",
            ),
            containers: &[],
            cause: Cause::ImagePull,
            failure: true,
            container: None,
        },
        Case {
            name: "when_image_pull_times_out_should_still_be_image_pull",
            stop_code: FAILED_TO_START,
            reason: Some(
                "CannotPullContainerError: ref pull has been retried 5 time(s): failed to copy: httpReadSeeker: failed open: \
                 failed to do request: Get \"https://prod-us-east-1-starport-layer-bucket.s3.us-east-1.amazonaws.com/x\": dial tcp \
                 52.216.0.1:443: i/o timeout",
            ),
            containers: &[("api", None, None)],
            cause: Cause::ImagePull,
            failure: true,
            container: None,
        },
        Case {
            name: "when_registry_auth_fails_without_resource_initialization_error_should_be_image_pull",
            stop_code: FAILED_TO_START,
            reason: Some(
                "CannotPullContainerError: Error response from daemon: Get https://111122223333.dkr.ecr.us-east-1.amazonaws.com/v2/: \
                 no basic auth credentials",
            ),
            containers: &[("api", None, None)],
            cause: Cause::ImagePull,
            failure: true,
            container: None,
        },
        // ---- secrets
        Case {
            name: "when_secrets_manager_denies_access_should_be_secrets",
            stop_code: FAILED_TO_START,
            reason: Some(
                "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable \
                 to retrieve secret from asm: service call has been retried 5 time(s): AccessDeniedException: User: \
                 arn:aws:sts::111122223333:assumed-role/api-execution-role/8c1e2b is not authorized to perform: \
                 secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/api/db-AbCdEf",
            ),
            containers: &[("api", None, None)],
            cause: Cause::Secrets,
            failure: true,
            container: None,
        },
        Case {
            name: "when_ssm_secret_retrieval_times_out_should_be_secrets",
            stop_code: FAILED_TO_START,
            reason: Some(
                "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable \
                 to retrieve secrets from ssm: service call has been retried 5 time(s): RequestCanceled: request context canceled \
                 caused by: context deadline exceeded",
            ),
            containers: &[("api", None, None)],
            cause: Cause::Secrets,
            failure: true,
            container: None,
        },
        Case {
            name: "when_resource_initialization_error_mentions_registry_auth_should_be_secrets_not_image_pull",
            stop_code: FAILED_TO_START,
            reason: Some(
                "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable \
                 to retrieve ecr registry auth: service call has been retried 3 time(s): AccessDeniedException: User: \
                 arn:aws:sts::111122223333:assumed-role/ecsTaskExecutionRole/abc is not authorized to perform: \
                 ecr:GetAuthorizationToken on resource: *",
            ),
            containers: &[("api", None, None)],
            cause: Cause::Secrets,
            failure: true,
            container: None,
        },
        Case {
            name: "when_secrets_pull_command_is_killed_should_be_secrets",
            stop_code: FAILED_TO_START,
            reason: Some(
                "ResourceInitializationError: unable to pull secrets or registry auth: pull command failed: : signal: killed",
            ),
            containers: &[("api", None, None)],
            cause: Cause::Secrets,
            failure: true,
            container: None,
        },
        Case {
            name: "when_secrets_text_is_lower_case_should_still_be_secrets",
            stop_code: FAILED_TO_START,
            reason: Some("resourceinitializationerror: unable to retrieve secret from asm: ResourceNotFoundException"),
            containers: &[],
            cause: Cause::Secrets,
            failure: true,
            container: None,
        },
        // ---- network
        Case {
            name: "when_eni_provisioning_times_out_should_be_network",
            stop_code: FAILED_TO_START,
            reason: Some("Timeout waiting for network interface provisioning to complete."),
            containers: &[("api", None, None)],
            cause: Cause::Network,
            failure: true,
            container: None,
        },
        Case {
            name: "when_eni_cannot_be_configured_should_be_network",
            stop_code: FAILED_TO_START,
            reason: Some(
                "ResourceInitializationError: failed to configure ENI: failed to setup regular eni: netplugin failed with no error message",
            ),
            containers: &[("api", None, None)],
            cause: Cause::Network,
            failure: true,
            container: None,
        },
        Case {
            name: "when_logger_validation_is_killed_should_be_network",
            stop_code: FAILED_TO_START,
            reason: Some("ResourceInitializationError: failed to validate logger args: : signal: killed"),
            containers: &[("api", None, None)],
            cause: Cause::Network,
            failure: true,
            container: None,
        },
        Case {
            name: "when_efs_name_cannot_be_resolved_should_be_network",
            stop_code: FAILED_TO_START,
            reason: Some(
                "ResourceInitializationError: failed to invoke EFS utils commands to set up EFS volumes: stderr: Failed to resolve \
                 \"fs-0123456789abcdef0.efs.us-east-1.amazonaws.com\" - check that your file system ID is correct. : unsuccessful \
                 EFS utils command execution; code: 1",
            ),
            containers: &[("api", None, None)],
            cause: Cause::Network,
            failure: true,
            container: None,
        },
        Case {
            name: "when_env_file_download_times_out_should_be_network",
            stop_code: FAILED_TO_START,
            reason: Some(
                "ResourceInitializationError: failed to download env files: file download command: non empty error stream: \
                 RequestCanceled: request context canceled caused by: context deadline exceeded",
            ),
            containers: &[],
            cause: Cause::Network,
            failure: true,
            container: None,
        },
        // ---- other ResourceInitializationError: configuration, unknown
        Case {
            name: "when_log_group_does_not_exist_should_be_unknown_failure",
            stop_code: FAILED_TO_START,
            reason: Some(
                "ResourceInitializationError: failed to validate logger args: create stream has been retried 1 times: failed to \
                 create Cloudwatch log stream: ResourceNotFoundException: The specified log group does not exist. : exit status 1",
            ),
            containers: &[("api", None, None)],
            cause: Cause::Unknown,
            failure: true,
            container: None,
        },
        Case {
            name: "when_efs_mount_is_refused_should_be_unknown_failure",
            stop_code: FAILED_TO_START,
            reason: Some(
                "ResourceInitializationError: failed to invoke EFS utils commands to set up EFS volumes: stderr: b'mount.nfs4: \
                 access denied by server while mounting 127.0.0.1:/data' : unsuccessful EFS utils command execution; code: 32",
            ),
            containers: &[("api", None, None)],
            cause: Cause::Unknown,
            failure: true,
            container: None,
        },
        // ---- out-of-memory
        Case {
            name: "when_oom_only_on_container_should_be_out_of_memory",
            stop_code: ESSENTIAL_EXITED,
            reason: ESSENTIAL_TEXT,
            containers: &[("api", Some(137), OOM_TEXT), ("log-router", Some(0), None)],
            cause: Cause::OutOfMemory,
            failure: true,
            container: Some("api"),
        },
        Case {
            name: "when_oom_is_on_the_task_reason_should_be_out_of_memory",
            stop_code: ESSENTIAL_EXITED,
            reason: OOM_TEXT,
            containers: &[("api", Some(137), None)],
            cause: Cause::OutOfMemory,
            failure: true,
            container: Some("api"),
        },
        Case {
            name: "when_oom_container_is_listed_after_a_sigtermed_sidecar_should_name_the_oom_container",
            stop_code: ESSENTIAL_EXITED,
            reason: ESSENTIAL_TEXT,
            containers: &[("envoy", Some(143), None), ("api", Some(137), OOM_TEXT)],
            cause: Cause::OutOfMemory,
            failure: true,
            container: Some("api"),
        },
        Case {
            name: "when_oom_reason_is_lower_case_should_be_out_of_memory",
            stop_code: ESSENTIAL_EXITED,
            reason: ESSENTIAL_TEXT,
            containers: &[("api", Some(137), Some("outofmemoryerror: container killed due to memory usage"))],
            cause: Cause::OutOfMemory,
            failure: true,
            container: Some("api"),
        },
        Case {
            name: "when_oom_coincides_with_failed_health_checks_should_be_out_of_memory",
            stop_code: SCHEDULER,
            reason: Some(ELB_TEXT),
            containers: &[("api", Some(137), OOM_TEXT)],
            cause: Cause::OutOfMemory,
            failure: true,
            container: Some("api"),
        },
        // ---- health-check
        Case {
            name: "when_task_fails_elb_health_checks_should_be_health_check",
            stop_code: SCHEDULER,
            reason: Some(ELB_TEXT),
            containers: &[("api", Some(143), None)],
            cause: Cause::HealthCheck,
            failure: true,
            container: Some("api"),
        },
        Case {
            name: "when_task_fails_container_health_checks_with_exit_137_should_be_health_check",
            stop_code: SCHEDULER,
            reason: Some("Task failed container health checks"),
            containers: &[("api", Some(137), None)],
            cause: Cause::HealthCheck,
            failure: true,
            container: Some("api"),
        },
        Case {
            name: "when_health_check_text_is_lower_case_without_containers_should_be_health_check",
            stop_code: SCHEDULER,
            reason: Some(
                "task failed elb health checks in (target-group arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/x/1)",
            ),
            containers: &[],
            cause: Cause::HealthCheck,
            failure: true,
            container: None,
        },
        Case {
            name: "when_health_check_fails_with_sidecar_exiting_zero_should_name_the_app",
            stop_code: SCHEDULER,
            reason: Some(ELB_TEXT),
            containers: &[("xray", Some(0), None), ("api", Some(143), None)],
            cause: Cause::HealthCheck,
            failure: true,
            container: Some("api"),
        },
        // ---- essential-exit
        Case {
            name: "when_app_exits_with_code_1_should_be_essential_exit",
            stop_code: ESSENTIAL_EXITED,
            reason: ESSENTIAL_TEXT,
            containers: &[("api", Some(1), None)],
            cause: Cause::EssentialExit,
            failure: true,
            container: Some("api"),
        },
        Case {
            name: "when_exit_137_has_no_oom_reason_should_be_essential_exit",
            stop_code: ESSENTIAL_EXITED,
            reason: ESSENTIAL_TEXT,
            containers: &[("api", Some(137), None)],
            cause: Cause::EssentialExit,
            failure: true,
            container: Some("api"),
        },
        Case {
            name: "when_sidecar_exits_zero_before_the_crashing_app_should_name_the_app",
            stop_code: ESSENTIAL_EXITED,
            reason: ESSENTIAL_TEXT,
            containers: &[("log-router", Some(0), None), ("api", Some(1), None)],
            cause: Cause::EssentialExit,
            failure: true,
            container: Some("api"),
        },
        Case {
            name: "when_app_exit_code_and_sigkilled_sidecar_coexist_should_name_the_app",
            stop_code: ESSENTIAL_EXITED,
            reason: ESSENTIAL_TEXT,
            containers: &[("datadog-agent", Some(137), None), ("api", Some(3), None)],
            cause: Cause::EssentialExit,
            failure: true,
            container: Some("api"),
        },
        Case {
            name: "when_service_app_exits_zero_should_be_essential_exit",
            stop_code: ESSENTIAL_EXITED,
            reason: ESSENTIAL_TEXT,
            containers: &[("api", Some(0), None)],
            cause: Cause::EssentialExit,
            failure: true,
            container: Some("api"),
        },
        Case {
            name: "when_no_stop_code_and_a_container_exits_non_zero_should_be_essential_exit",
            stop_code: None,
            reason: None,
            containers: &[("api", Some(3), None)],
            cause: Cause::EssentialExit,
            failure: true,
            container: Some("api"),
        },
        Case {
            name: "when_exit_code_is_negative_should_be_essential_exit",
            stop_code: ESSENTIAL_EXITED,
            reason: ESSENTIAL_TEXT,
            containers: &[("api", Some(-1), None)],
            cause: Cause::EssentialExit,
            failure: true,
            container: Some("api"),
        },
        Case {
            name: "when_app_segfaults_should_be_essential_exit",
            stop_code: ESSENTIAL_EXITED,
            reason: Some("essential container in task exited"),
            containers: &[("api", Some(139), None)],
            cause: Cause::EssentialExit,
            failure: true,
            container: Some("api"),
        },
        Case {
            name: "when_container_process_cannot_start_should_be_essential_exit",
            stop_code: FAILED_TO_START,
            reason: Some("Essential container in task exited"),
            containers: &[(
                "api",
                None,
                Some(
                    "CannotStartContainerError: Error response from daemon: failed to create shim task: OCI runtime create failed: \
                     runc create failed: unable to start container process: exec: \"/app/server\": stat /app/server: no such file \
                     or directory: unknown",
                ),
            )],
            cause: Cause::EssentialExit,
            failure: true,
            container: Some("api"),
        },
        Case {
            name: "when_container_cannot_start_because_its_log_group_is_missing_should_be_unknown_failure",
            stop_code: FAILED_TO_START,
            reason: None,
            containers: &[(
                "api",
                None,
                Some(
                    "CannotStartContainerError: Error response from daemon: failed to initialize logging driver: failed to \
                     create Cloudwatch log stream: ResourceNotFoundException: The specified log group does not exist.",
                ),
            )],
            cause: Cause::Unknown,
            failure: true,
            container: Some("api"),
        },
        Case {
            name: "when_essential_container_exited_without_containers_should_be_essential_exit",
            stop_code: ESSENTIAL_EXITED,
            reason: ESSENTIAL_TEXT,
            containers: &[],
            cause: Cause::EssentialExit,
            failure: true,
            container: None,
        },
        // ---- expected
        Case {
            name: "when_scale_in_sigkills_the_app_should_be_expected",
            stop_code: SCHEDULER,
            reason: Some("Scaling activity initiated by (deployment ecs-svc/4476358862378401234)"),
            containers: &[("api", Some(137), None)],
            cause: Cause::Expected,
            failure: false,
            container: None,
        },
        Case {
            name: "when_deployment_replaced_the_task_should_be_expected",
            stop_code: SCHEDULER,
            reason: Some("Deployment replaced this task"),
            containers: &[("api", Some(0), None)],
            cause: Cause::Expected,
            failure: false,
            container: None,
        },
        Case {
            name: "when_user_stopped_the_task_should_be_expected",
            stop_code: Some("UserInitiated"),
            reason: Some("Task stopped by user"),
            containers: &[("api", Some(143), None)],
            cause: Cause::Expected,
            failure: false,
            container: None,
        },
        Case {
            name: "when_user_initiated_with_a_custom_reason_should_be_expected",
            stop_code: Some("UserInitiated"),
            reason: Some("ops: restarting to pick up rotated certificate"),
            containers: &[("api", Some(137), None)],
            cause: Cause::Expected,
            failure: false,
            container: None,
        },
        Case {
            name: "when_fargate_performs_maintenance_should_be_expected",
            stop_code: SCHEDULER,
            reason: Some("ECS is performing maintenance on the underlying infrastructure hosting the task"),
            containers: &[("api", Some(143), None)],
            cause: Cause::Expected,
            failure: false,
            container: None,
        },
        Case {
            name: "when_task_is_being_retired_should_be_expected",
            stop_code: Some("TerminationNotice"),
            reason: Some("Task is being retired"),
            containers: &[("api", Some(143), None)],
            cause: Cause::Expected,
            failure: false,
            container: None,
        },
        Case {
            name: "when_scheduler_stops_a_task_without_failure_signals_should_be_expected",
            stop_code: SCHEDULER,
            reason: None,
            containers: &[("api", Some(143), None)],
            cause: Cause::Expected,
            failure: false,
            container: None,
        },
        Case {
            name: "when_standalone_task_completes_with_exit_zero_should_be_expected",
            stop_code: ESSENTIAL_EXITED,
            reason: ESSENTIAL_TEXT,
            containers: &[("migrate", Some(0), None)],
            cause: Cause::Expected,
            failure: false,
            container: Some("migrate"),
        },
        // ---- spot-interruption
        Case {
            name: "when_spot_task_is_interrupted_should_be_spot_interruption",
            stop_code: Some("SpotInterruption"),
            reason: Some("Your Spot Task was interrupted."),
            containers: &[("api", Some(143), None)],
            cause: Cause::SpotInterruption,
            failure: false,
            container: None,
        },
        Case {
            name: "when_only_the_text_says_spot_interrupted_should_be_spot_interruption",
            stop_code: None,
            reason: Some("your spot task was interrupted."),
            containers: &[("api", Some(137), None)],
            cause: Cause::SpotInterruption,
            failure: false,
            container: None,
        },
        Case {
            name: "when_termination_notice_is_a_spot_interruption_should_be_spot_interruption",
            stop_code: Some("TerminationNotice"),
            reason: Some("Your Spot Task was interrupted."),
            containers: &[],
            cause: Cause::SpotInterruption,
            failure: false,
            container: None,
        },
        // ---- capacity
        Case {
            name: "when_fargate_capacity_is_unavailable_should_be_capacity",
            stop_code: FAILED_TO_START,
            reason: Some(
                "Capacity is unavailable at this time. Please try again later or in a different availability zone",
            ),
            containers: &[("api", None, None)],
            cause: Cause::Capacity,
            failure: true,
            container: None,
        },
        Case {
            name: "when_placement_lacks_memory_should_be_capacity",
            stop_code: FAILED_TO_START,
            reason: Some(
                "Unable to place a task because no container instance met all of its requirements. Reasons: [RESOURCE:MEMORY]",
            ),
            containers: &[],
            cause: Cause::Capacity,
            failure: true,
            container: None,
        },
        Case {
            name: "when_cluster_has_no_container_instances_should_be_capacity",
            stop_code: None,
            reason: Some("No Container Instances were found in your cluster."),
            containers: &[],
            cause: Cause::Capacity,
            failure: true,
            container: None,
        },
        Case {
            name: "when_there_is_no_spot_capacity_should_be_capacity_not_spot",
            stop_code: FAILED_TO_START,
            reason: Some("There is no Spot capacity available that matches your request."),
            containers: &[],
            cause: Cause::Capacity,
            failure: true,
            container: None,
        },
        Case {
            name: "when_account_vcpu_limit_is_reached_should_be_capacity",
            stop_code: FAILED_TO_START,
            reason: Some("You've reached the limit on the number of vCPUs you can run concurrently"),
            containers: &[],
            cause: Cause::Capacity,
            failure: true,
            container: None,
        },
        // ---- unknown
        Case {
            name: "when_task_failed_to_start_without_any_reason_should_be_unknown_failure",
            stop_code: FAILED_TO_START,
            reason: None,
            containers: &[],
            cause: Cause::Unknown,
            failure: true,
            container: None,
        },
        Case {
            name: "when_nothing_is_known_should_be_unknown_without_failure",
            stop_code: None,
            reason: None,
            containers: &[],
            cause: Cause::Unknown,
            failure: false,
            container: None,
        },
        Case {
            name: "when_host_cannot_create_the_container_should_be_unknown_failure",
            stop_code: FAILED_TO_START,
            reason: Some(
                "CannotCreateContainerError: Error response from daemon: devmapper: Thin Pool has 4026 free data blocks which is \
                 less than minimum required 4096 free data blocks",
            ),
            containers: &[("api", None, None)],
            cause: Cause::Unknown,
            failure: true,
            container: None,
        },
        Case {
            name: "when_docker_times_out_starting_should_be_unknown_failure",
            stop_code: FAILED_TO_START,
            reason: None,
            containers: &[(
                "api",
                None,
                Some("DockerTimeoutError: Could not transition to started; timed out after waiting 3m0s"),
            )],
            cause: Cause::Unknown,
            failure: true,
            container: Some("api"),
        },
        Case {
            name: "when_stop_code_is_new_to_us_and_nothing_else_is_known_should_be_unknown_without_failure",
            stop_code: Some("SomethingAwsAddsLater"),
            reason: Some("A reason we have never seen"),
            containers: &[("api", Some(0), None)],
            cause: Cause::Unknown,
            failure: false,
            container: None,
        },
    ];

    #[test]
    fn every_table_case_should_be_classified_as_expected() {
        assert!(CASES.len() >= 35, "the table must keep at least 35 cases");
        let mut failures = Vec::new();
        for case in CASES {
            let mut t = task(case.stop_code, case.reason, case.containers);
            if case.name.contains("standalone") {
                t.group = Some("family:db-migrate".into());
            }
            let got = classify_stop(&t);
            let want = (case.cause, case.failure, case.container.map(String::from));
            if (got.cause, got.failure, got.container.clone()) != want {
                failures.push(format!("{}: want {want:?}, got {got:?}", case.name));
            }
            assert!(!got.explanation.is_empty() && !got.explanation.contains('\n'), "{}", case.name);
        }
        assert!(failures.is_empty(), "{} case(s) wrong:\n{}", failures.len(), failures.join("\n"));
    }

    #[test]
    fn table_case_names_should_be_unique() {
        let mut names: Vec<_> = CASES.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CASES.len());
    }

    #[test]
    fn when_oom_only_on_container_should_explain_with_container_reason_and_exit_code() {
        let got = classify_stop(&task(ESSENTIAL_EXITED, ESSENTIAL_TEXT, &[("api", Some(137), OOM_TEXT)]));
        assert_eq!(
            got.explanation,
            "container api was killed for exceeding its memory: OutOfMemoryError: Container killed due to memory usage (exit 137)"
        );
    }

    #[test]
    fn when_exit_137_alone_should_explain_sigkill_and_not_claim_oom() {
        let got = classify_stop(&task(ESSENTIAL_EXITED, ESSENTIAL_TEXT, &[("api", Some(137), None)]));
        assert_eq!(got.cause, Cause::EssentialExit);
        assert!(got.explanation.contains("SIGKILL"), "{}", got.explanation);
        assert!(got.explanation.contains("stop timeout"), "{}", got.explanation);
        assert!(got.explanation.contains("not proven to be out of memory"), "{}", got.explanation);
        assert!(got.explanation.contains("api"), "{}", got.explanation);
    }

    #[test]
    fn when_app_crashes_should_name_container_exit_code_and_aws_reason() {
        let got = classify_stop(&task(ESSENTIAL_EXITED, ESSENTIAL_TEXT, &[("api", Some(1), None)]));
        assert_eq!(
            got.explanation,
            "essential container api exited with code 1: the application failed: Essential container in task exited"
        );
    }

    #[test]
    fn when_secrets_fail_should_quote_aws_reason_verbatim() {
        let reason = "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval \
                      failed: unable to retrieve secret from asm: AccessDeniedException";
        let got = classify_stop(&task(FAILED_TO_START, Some(reason), &[]));
        assert!(got.explanation.ends_with(reason), "{}", got.explanation);
        assert!(got.explanation.contains("execution role"), "{}", got.explanation);
    }

    #[test]
    fn when_image_pull_fails_should_name_the_container_and_quote_the_task_reason() {
        let reason = "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref \
                      111122223333.dkr.ecr.us-east-1.amazonaws.com/api:v2: not found";
        let got =
            classify_stop(&task(FAILED_TO_START, Some(reason), &[("api", None, Some("CannotPullContainerError: x"))]));
        assert_eq!(got.explanation, format!("the image of container api could not be pulled: {reason}"));
    }

    #[test]
    fn when_reason_is_huge_should_truncate_it_to_about_300_characters() {
        let reason = format!("CannotPullContainerError: {}", "é".repeat(5_000));
        let got = classify_stop(&task(FAILED_TO_START, Some(&reason), &[]));
        assert_eq!(got.cause, Cause::ImagePull);
        let quoted = got.explanation.split_once(": ").map(|(_, q)| q).unwrap_or_default();
        assert!(quoted.ends_with("..."), "{quoted}");
        assert!(quoted.chars().count() <= MAX_REASON_CHARS + 3, "{}", quoted.chars().count());
    }

    #[test]
    fn when_reason_spans_lines_should_explain_on_one_line() {
        let got = classify_stop(&task(
            ESSENTIAL_EXITED,
            Some("Essential container\r\nin task\texited"),
            &[("api", Some(2), None)],
        ));
        assert!(got.explanation.ends_with("Essential container in task exited"), "{}", got.explanation);
    }

    #[test]
    fn when_no_reason_is_given_should_say_so() {
        let got = classify_stop(&task(FAILED_TO_START, None, &[]));
        assert!(got.explanation.contains("no reason text"), "{}", got.explanation);
        assert!(got.explanation.contains("TaskFailedToStart"), "{}", got.explanation);
    }

    #[test]
    fn when_health_check_is_elb_should_say_load_balancer() {
        let got = classify_stop(&task(SCHEDULER, Some(ELB_TEXT), &[("api", Some(143), None)]));
        assert!(got.explanation.contains("load balancer"), "{}", got.explanation);
        assert!(got.explanation.contains("targetgroup/api-tg"), "{}", got.explanation);
        let got =
            classify_stop(&task(SCHEDULER, Some("Task failed container health checks"), &[("api", Some(137), None)]));
        assert!(got.explanation.contains("container health check"), "{}", got.explanation);
    }

    #[test]
    fn when_word_eni_is_only_inside_another_word_should_not_be_network() {
        // "denied" contains "eni": must not read as an ENI failure.
        let got = classify_stop(&task(FAILED_TO_START, Some("Access denied while starting"), &[]));
        assert_eq!(got.cause, Cause::Unknown);
        assert!(has_word("failed to configure eni: x", "eni"));
        assert!(!has_word("access denied", "eni"));
    }

    // ---- property-style: no input panics, every output is well formed.

    const ODD_TEXTS: &[&str] = &[
        "",
        " ",
        "\n\t\r",
        "é",
        "💥 OutOfMemoryError 💥",
        "ResourceInitializationError",
        "ResourceInitializationError: ",
        "CannotPullContainerError:",
        "Essential container in task exited",
        "Task failed ELB health checks in (",
        "Scaling activity initiated by (",
        "Your Spot Task was interrupted.",
        "Capacity is unavailable at this time",
        "Timeout waiting for network interface provisioning to complete.",
        "ENI",
        "eni",
        "\u{0}\u{1}\u{7f}",
        "Задача остановлена пользователем",
        "任务失败",
        "CannotStartContainerError",
        "DockerTimeoutError",
    ];

    const ODD_STOP_CODES: &[Option<&str>] = &[
        None,
        Some(""),
        Some("  "),
        Some("TaskFailedToStart"),
        Some("taskfailedtostart"),
        Some("EssentialContainerExited"),
        Some("UserInitiated"),
        Some("ServiceSchedulerInitiated"),
        Some("SpotInterruption"),
        Some("TerminationNotice"),
        Some("InfrastructureHealth"),
        Some("🙃"),
    ];

    const ODD_EXITS: &[Option<i64>] =
        &[None, Some(0), Some(1), Some(137), Some(143), Some(-1), Some(i64::MIN), Some(i64::MAX), Some(255)];

    fn check_well_formed(t: &TaskStateChange) {
        let got = classify_stop(t);
        assert!(!got.explanation.is_empty(), "{t:?}");
        assert!(!got.explanation.contains('\n') && !got.explanation.contains('\r'), "{t:?}");
        assert!(got.explanation.chars().count() < MAX_REASON_CHARS + 400, "{}", got.explanation);
        if matches!(got.cause, Cause::Expected | Cause::SpotInterruption) {
            assert!(!got.failure, "{t:?}");
        }
        assert!(
            matches!(
                got.cause,
                Cause::ImagePull
                    | Cause::OutOfMemory
                    | Cause::Secrets
                    | Cause::Network
                    | Cause::HealthCheck
                    | Cause::EssentialExit
                    | Cause::Capacity
                    | Cause::SpotInterruption
                    | Cause::Expected
                    | Cause::Unknown
            ),
            "{got:?}"
        );
        if let Some(name) = &got.container {
            assert!(t.containers.iter().any(|c| c.name.trim() == name) || name == "(unnamed)", "{got:?}");
        }
    }

    #[test]
    fn no_combination_of_odd_inputs_should_panic() {
        for stop_code in ODD_STOP_CODES {
            for reason in ODD_TEXTS.iter().map(|r| Some(*r)).chain([None]) {
                for exit in ODD_EXITS {
                    for container_reason in [None, Some(""), Some("OutOfMemoryError"), Some("💥")] {
                        let mut t = task(*stop_code, reason, &[]);
                        t.containers = vec![
                            ContainerState {
                                name: String::new(),
                                exit_code: *exit,
                                reason: container_reason.map(Into::into),
                                ..Default::default()
                            },
                            ContainerState { name: "sidecar".into(), exit_code: Some(0), ..Default::default() },
                        ];
                        check_well_formed(&t);
                        t.containers.clear();
                        check_well_formed(&t);
                        t.group = Some("family:job".into());
                        check_well_formed(&t);
                    }
                }
            }
        }
    }

    #[test]
    fn pseudo_random_reason_texts_should_never_panic() {
        // xorshift: deterministic, no dependency.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2_000 {
            let pieces = (next() % 6) as usize;
            let mut reason = String::new();
            for _ in 0..pieces {
                reason.push_str(ODD_TEXTS[(next() % ODD_TEXTS.len() as u64) as usize]);
                reason.push_str([" ", ": ", "", "é", "\n"][(next() % 5) as usize]);
            }
            let stop_code = ODD_STOP_CODES[(next() % ODD_STOP_CODES.len() as u64) as usize];
            let mut t = task(stop_code, Some(&reason), &[]);
            for i in 0..(next() % 4) {
                t.containers.push(ContainerState {
                    name: format!("c{i}"),
                    exit_code: ODD_EXITS[(next() % ODD_EXITS.len() as u64) as usize],
                    reason: (next() % 2 == 0).then(|| reason.chars().rev().collect()),
                    ..Default::default()
                });
            }
            check_well_formed(&t);
        }
    }

    #[test]
    fn huge_texts_everywhere_should_not_panic() {
        let huge = "ResourceInitializationError: ✓ ".repeat(20_000);
        let mut t = task(Some(&huge), Some(&huge), &[]);
        t.containers = vec![ContainerState {
            name: huge.clone(),
            exit_code: Some(137),
            reason: Some(huge.clone()),
            ..Default::default()
        }];
        let got = classify_stop(&t);
        assert!(got.explanation.chars().count() < 2 * MAX_REASON_CHARS + 100_000);
    }

    #[test]
    fn an_essential_exit_whose_log_says_exec_format_error_is_a_platform_mismatch() {
        let log = vec!["2026-11-20T14:02:01Z exec /usr/local/bin/server: exec format error".to_string()];
        assert_eq!(refine_with_log(Cause::EssentialExit, &log), Cause::PlatformMismatch);
        assert_eq!(refine_with_log(Cause::OutOfMemory, &log), Cause::OutOfMemory, "only an exit is refined");
        assert_eq!(refine_with_log(Cause::EssentialExit, &["panic: boom".to_string()]), Cause::EssentialExit);
    }

    // ---- the recorded event fixtures

    fn expected_cause_for_fixture(file: &str) -> Option<Cause> {
        let stem = file.strip_prefix("task-stopped-")?.strip_suffix(".json")?;
        Some(match stem {
            "image-pull" => Cause::ImagePull,
            "oom-on-container" | "numbers-as-strings" => Cause::OutOfMemory,
            "secrets" => Cause::Secrets,
            "network-eni" => Cause::Network,
            "elb-health-check" | "container-health-check" => Cause::HealthCheck,
            "app-crash" | "sigkill-137" | "standalone" => Cause::EssentialExit,
            "scale-in" | "deployment-replaced" | "user" => Cause::Expected,
            "spot" => Cause::SpotInterruption,
            "capacity" => Cause::Capacity,
            "platform-mismatch-manifest" | "platform-mismatch-exec-format" => Cause::PlatformMismatch,
            "null-containers" => Cause::Unknown,
            "secret-not-found" => Cause::Secrets,
            _ => return None,
        })
    }

    #[test]
    fn every_task_stopped_fixture_should_get_the_cause_its_name_says() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/ecs");
        let mut seen = 0;
        let mut wrong = Vec::new();
        let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            let file = path.file_name().unwrap().to_string_lossy().to_string();
            if !file.starts_with("task-stopped-") {
                continue;
            }
            let want = expected_cause_for_fixture(&file).unwrap_or_else(|| panic!("no expectation for fixture {file}"));
            let event: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let detail: TaskStateChange =
                serde_json::from_value(event["detail"].clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
            let got = classify_stop(&detail);
            if got.cause != want {
                wrong.push(format!("{file}: want {want}, got {} ({})", got.cause, got.explanation));
            }
            let alerts = !matches!(want, Cause::Expected | Cause::SpotInterruption);
            assert_eq!(got.failure, alerts, "{file}: {got:?}");
            seen += 1;
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        assert!(seen >= 18, "expected at least 18 task-stopped fixtures, found {seen}");
    }

    #[test]
    fn fixture_details_should_name_the_culprit_container() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/ecs");
        let load = |name: &str| -> TaskStateChange {
            let event: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap();
            serde_json::from_value(event["detail"].clone()).unwrap()
        };
        let oom = classify_stop(&load("task-stopped-oom-on-container.json"));
        assert_eq!(oom.container.as_deref(), Some("api"));
        let standalone = classify_stop(&load("task-stopped-standalone.json"));
        assert_eq!(standalone.container.as_deref(), Some("migrate"));
        assert!(standalone.explanation.contains("code 2"), "{}", standalone.explanation);
        let sigkill = classify_stop(&load("task-stopped-sigkill-137.json"));
        assert!(sigkill.explanation.contains("SIGKILL"), "{}", sigkill.explanation);
    }

    #[test]
    fn only_stops_that_prove_the_revision_broken_are_definite() {
        let cases: &[(&str, Option<&str>, Containers, Option<Cause>)] = &[
            (
                "an image tag that does not exist",
                Some(
                    "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref 111122223333.dkr.ecr.us-east-1.amazonaws.com/api:v9: 111122223333.dkr.ecr.us-east-1.amazonaws.com/api:v9: not found",
                ),
                &[],
                Some(Cause::ImagePull),
            ),
            (
                "a manifest unknown",
                Some(
                    "CannotPullContainerError: Error response from daemon: manifest for nginx:1.99 not found: manifest unknown: manifest unknown",
                ),
                &[],
                Some(Cause::ImagePull),
            ),
            (
                "Docker Hub throttling",
                Some("CannotPullContainerError: toomanyrequests: You have reached your pull rate limit"),
                &[],
                None,
            ),
            (
                "a pull that timed out",
                Some(
                    "CannotPullContainerError: ref pull has been retried 1 time(s): failed to copy: httpReadSeeker: failed open: failed to do request: Get https://registry/v2/: dial tcp 10.0.0.1:443: i/o timeout",
                ),
                &[],
                None,
            ),
            (
                "an image for another architecture",
                Some(
                    "CannotPullContainerError: pull image manifest has been retried 1 time(s): image Manifest does not contain descriptor matching platform 'linux/arm64'",
                ),
                &[],
                Some(Cause::PlatformMismatch),
            ),
            (
                "a secret that does not exist",
                Some(
                    "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secret from asm: service call has been retried 1 time(s): failed to fetch secret arn:aws:secretsmanager:us-east-1:111122223333:secret:db-pass from secrets manager: ResourceNotFoundException: Secrets Manager can't find the specified secret.",
                ),
                &[],
                Some(Cause::Secrets),
            ),
            (
                "a secret the role may not read",
                Some(
                    "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secret from asm: AccessDeniedException: User is not authorized to perform: secretsmanager:GetSecretValue",
                ),
                &[],
                None,
            ),
            (
                "a secrets endpoint that timed out",
                Some(
                    "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secret from asm: there is a connection issue between the task and AWS Secrets Manager. Check your task network configuration. failed to fetch secret: RequestError: send request failed caused by: Post https://secretsmanager.us-east-1.amazonaws.com/: dial tcp 10.0.1.2:443: i/o timeout",
                ),
                &[],
                None,
            ),
            ("an application crash", Some("Essential container in task exited"), &[("app", Some(1), None)], None),
            ("a scale-in", Some("Scaling activity initiated by (deployment ecs-svc/123)"), &[], None),
        ];
        for (name, reason, containers, want) in cases {
            let t = task(Some("TaskFailedToStart"), *reason, containers);
            assert_eq!(definite_revision_failure(&t), *want, "{name}");
        }
    }
}
