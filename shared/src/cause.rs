//! The cause vocabulary (docs/ARCHITECTURE.md, "Causes") and its one
//! catalogue: every fact the code knows about a cause — its word, the
//! headline people read, the runbook's next steps, whether a stop with this
//! cause is a failed task, whether rolling back cures it — lives in
//! [`Cause::info`]. The match there is exhaustive, so a new cause cannot be
//! added without saying all of it; nothing else matches over causes to
//! decide these things.

use serde::{Deserialize, Serialize};

/// The cause vocabulary. One word each; nothing else is emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    ImagePull,
    OutOfMemory,
    Secrets,
    Network,
    HealthCheck,
    EssentialExit,
    PlatformMismatch,
    Capacity,
    SpotInterruption,
    Expected,
    Unknown,
    HighCpu,
    HighMemory,
    UnhealthyTargets,
    #[serde(rename = "http-5xx")]
    Http5xx,
    Latency,
    TaskCountLow,
    OtherAlarm,
    PipelineFailed,
    ApprovalWaiting,
}

/// Which signals a cause explains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Stopped tasks and failed deployments.
    Stop,
    Alarm,
    Pipeline,
}

/// Everything known about one cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CauseInfo {
    /// The vocabulary word (also its serde form).
    pub word: &'static str,
    /// The words a person reads in a subject line.
    pub headline: &'static str,
    pub family: Family,
    /// A stop with this cause is a failed task: it counts towards a crash
    /// loop and pages. (`unknown` is decided by the stop code instead.)
    pub failure: bool,
    /// The new revision itself is broken, so going back to the previous one
    /// cures it. Capacity, network and Spot problems are not fixed that way.
    pub rollback_cures: bool,
    /// The runbook's next steps: what a person does next. A step that
    /// advises an action autopilot can take names it, so that a message
    /// whose record shows that action decided says what was done instead
    /// (`notify::steps`).
    pub next_steps: &'static [Step],
}

/// One step of a runbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub text: &'static str,
    /// The action this step advises, when it advises one.
    pub remedy: Option<Remedy>,
}

/// An action a runbook step advises that autopilot's engine also takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    Rollback,
    ScaleOut,
}

/// A step that looks, checks or fixes: no action of autopilot's. (Macros,
/// not `const fn`s: a struct literal in the catalogue's `&[…]` is promoted
/// to a static, a call is not.)
macro_rules! look {
    ($text:expr) => {
        Step { text: $text, remedy: None }
    };
}

/// A step that advises an action autopilot's engine takes too.
macro_rules! act {
    ($remedy:ident, $text:expr) => {
        Step { text: $text, remedy: Some(Remedy::$remedy) }
    };
}

impl Cause {
    /// Every cause, in the order of the vocabulary.
    pub const ALL: [Cause; 20] = [
        Cause::ImagePull,
        Cause::OutOfMemory,
        Cause::Secrets,
        Cause::Network,
        Cause::HealthCheck,
        Cause::EssentialExit,
        Cause::PlatformMismatch,
        Cause::Capacity,
        Cause::SpotInterruption,
        Cause::Expected,
        Cause::Unknown,
        Cause::HighCpu,
        Cause::HighMemory,
        Cause::UnhealthyTargets,
        Cause::Http5xx,
        Cause::Latency,
        Cause::TaskCountLow,
        Cause::OtherAlarm,
        Cause::PipelineFailed,
        Cause::ApprovalWaiting,
    ];

    /// The catalogue entry of this cause.
    pub const fn info(self) -> CauseInfo {
        match self {
            Self::ImagePull => CauseInfo {
                word: "image-pull",
                headline: "image pull error",
                family: Family::Stop,
                failure: true,
                rollback_cures: true,
                next_steps: &[
                    look!(
                        "Check that the image tag exists in the registry (aws ecr describe-images --repository-name <repo> --image-ids imageTag=<tag>)."
                    ),
                    look!(
                        "Check the execution role can pull (ecr:GetAuthorizationToken, ecr:BatchGetImage) and that private subnets have a route to ECR (NAT or VPC endpoints)."
                    ),
                    act!(Rollback, "Roll back to the last known-good task definition if the tag was never published."),
                ],
            },
            Self::OutOfMemory => CauseInfo {
                word: "out-of-memory",
                headline: "out of memory",
                family: Family::Stop,
                failure: true,
                rollback_cures: true,
                next_steps: &[
                    look!("Compare memory use with the task and container limits (metrics in the evidence bundle)."),
                    look!(
                        "Raise the container/task memory in a new task definition revision if the service needs more."
                    ),
                    act!(Rollback, "Roll back if a release introduced the leak."),
                    look!("Look for a memory leak or unbounded cache in the log excerpt and recent deploys."),
                ],
            },
            Self::Secrets => CauseInfo {
                word: "secrets",
                headline: "secrets or registry credentials not accessible",
                family: Family::Stop,
                failure: true,
                rollback_cures: true,
                next_steps: &[
                    look!(
                        "Check the execution role policy allows secretsmanager:GetSecretValue / ssm:GetParameters (and kms:Decrypt) on the referenced secrets."
                    ),
                    look!("Check the secret ARNs in the task definition exist in this region and account."),
                    look!("Check private subnets reach Secrets Manager / SSM (NAT or VPC endpoints)."),
                ],
            },
            Self::Network => CauseInfo {
                word: "network",
                headline: "network error while provisioning",
                family: Family::Stop,
                failure: true,
                rollback_cures: false,
                next_steps: &[
                    look!("Check the subnets have free IP addresses and the ENI limit is not reached."),
                    look!(
                        "Check the security groups and route tables (NAT, VPC endpoints) of the service's awsvpc configuration."
                    ),
                    look!("Retry: provisioning timeouts are often transient; escalate if they persist."),
                ],
            },
            Self::HealthCheck => CauseInfo {
                word: "health-check",
                headline: "health checks failing",
                family: Family::Stop,
                failure: true,
                rollback_cures: true,
                next_steps: &[
                    look!("Check target health reasons (evidence) and the health-check path, port and grace period."),
                    look!("Read the log excerpt for startup errors; compare with the last known-good revision."),
                    act!(Rollback, "If a deploy caused it, roll back."),
                    look!("If the app only starts slowly, raise healthCheckGracePeriodSeconds."),
                ],
            },
            Self::EssentialExit => CauseInfo {
                word: "essential-exit",
                headline: "application crashed",
                family: Family::Stop,
                failure: true,
                rollback_cures: true,
                next_steps: &[
                    look!("Read the log excerpt of the failing container for the crash (stack trace, missing config)."),
                    look!(
                        "Compare the failing task definition with the last known-good one (image, environment, secrets)."
                    ),
                    act!(Rollback, "Roll back if the crash started with a deployment."),
                ],
            },
            Self::PlatformMismatch => CauseInfo {
                word: "platform-mismatch",
                headline: "image built for another CPU architecture",
                family: Family::Stop,
                failure: true,
                rollback_cures: true,
                next_steps: &[
                    look!(
                        "Rebuild the image for the task's CPU architecture (docker buildx build --platform linux/amd64,linux/arm64 …), or set the task definition's runtimePlatform.cpuArchitecture to the architecture the image was built for."
                    ),
                    look!(
                        "Check which platforms the image provides: docker manifest inspect <image> (or aws ecr batch-get-image … --accepted-media-types application/vnd.oci.image.index.v1+json)."
                    ),
                    act!(Rollback, "Roll back to the last known-good task definition while the image is rebuilt."),
                ],
            },
            Self::Capacity => CauseInfo {
                word: "capacity",
                headline: "no capacity to place tasks",
                family: Family::Stop,
                failure: true,
                rollback_cures: false,
                next_steps: &[
                    look!(
                        "Check Fargate/Fargate Spot capacity in the affected AZs; add subnets in more AZs or a FARGATE fallback capacity provider."
                    ),
                    look!("Check service quotas (Fargate vCPU) and placement constraints."),
                ],
            },
            Self::SpotInterruption => CauseInfo {
                word: "spot-interruption",
                headline: "Spot interruption",
                family: Family::Stop,
                failure: false,
                rollback_cures: false,
                next_steps: &[look!(
                    "Spot capacity was reclaimed; ECS replaces the task. Consider a FARGATE base in the capacity provider strategy for critical services."
                )],
            },
            Self::Expected => CauseInfo {
                word: "expected",
                headline: "expected stop",
                family: Family::Stop,
                failure: false,
                rollback_cures: false,
                next_steps: &[look!("No action: the stop was expected (deployment, scale-in or a person).")],
            },
            Self::Unknown => CauseInfo {
                word: "unknown",
                headline: "unknown cause",
                family: Family::Stop,
                failure: false,
                rollback_cures: true,
                next_steps: &[
                    look!("Read the stopped reason and the service events in the evidence bundle."),
                    look!(
                        "Run the runbook function's diagnose action for a fresh look: aws lambda invoke --function-name <stack>-runbook --cli-binary-format raw-in-base64-out --cli-read-timeout 330 --payload '{\"action\":\"diagnose\",\"cluster\":\"…\",\"service\":\"…\"}' out.json"
                    ),
                ],
            },
            Self::HighCpu => CauseInfo {
                word: "high-cpu",
                headline: "high CPU",
                family: Family::Alarm,
                failure: false,
                rollback_cures: false,
                next_steps: &[
                    look!("Check CPU per task and request rate."),
                    act!(ScaleOut, "Scale out within bounds if the load is real."),
                    act!(Rollback, "Roll back a regressing release."),
                ],
            },
            Self::HighMemory => CauseInfo {
                word: "high-memory",
                headline: "high memory",
                family: Family::Alarm,
                failure: false,
                rollback_cures: false,
                next_steps: &[
                    look!("Check memory per task for a leak."),
                    act!(ScaleOut, "Scale out while it is investigated."),
                    look!("Raise memory in a new revision if the service needs more."),
                ],
            },
            Self::UnhealthyTargets => CauseInfo {
                word: "unhealthy-targets",
                headline: "unhealthy targets",
                family: Family::Alarm,
                failure: false,
                rollback_cures: false,
                next_steps: &[
                    look!("Check target health reasons and the failing tasks' logs."),
                    act!(Rollback, "Roll back if a deploy caused it."),
                ],
            },
            Self::Http5xx => CauseInfo {
                word: "http-5xx",
                headline: "HTTP 5xx errors",
                family: Family::Alarm,
                failure: false,
                rollback_cures: false,
                next_steps: &[
                    look!("Check the application logs for errors and the dependencies they call."),
                    act!(Rollback, "Roll back a regressing release."),
                ],
            },
            Self::Latency => CauseInfo {
                word: "latency",
                headline: "high latency",
                family: Family::Alarm,
                failure: false,
                rollback_cures: false,
                next_steps: &[
                    look!("Check downstream dependencies and CPU saturation."),
                    act!(ScaleOut, "Scale out if CPU-bound."),
                ],
            },
            Self::TaskCountLow => CauseInfo {
                word: "task-count-low",
                headline: "running task count low",
                family: Family::Alarm,
                failure: false,
                rollback_cures: false,
                next_steps: &[look!(
                    "Check why tasks stop (stopped tasks, service events) and whether capacity is available."
                )],
            },
            Self::OtherAlarm => CauseInfo {
                word: "other-alarm",
                headline: "alarm",
                family: Family::Alarm,
                failure: false,
                rollback_cures: false,
                next_steps: &[look!("Read the alarm's description and metric; follow its owner's runbook.")],
            },
            Self::PipelineFailed => CauseInfo {
                word: "pipeline-failed",
                headline: "pipeline failed",
                family: Family::Pipeline,
                failure: false,
                rollback_cures: false,
                next_steps: &[look!(
                    "Open the failed action's execution details and build log; fix and retry the stage."
                )],
            },
            Self::ApprovalWaiting => CauseInfo {
                word: "approval-waiting",
                headline: "approval waiting",
                family: Family::Pipeline,
                failure: false,
                rollback_cures: false,
                next_steps: &[look!("Review the change and approve or reject it in the pipeline console.")],
            },
        }
    }

    pub const fn as_str(self) -> &'static str {
        self.info().word
    }

    pub const fn headline(self) -> &'static str {
        self.info().headline
    }

    /// The runbook's steps, each with the action it advises (if any).
    pub const fn steps(self) -> &'static [Step] {
        self.info().next_steps
    }

    /// The runbook's next steps as text, whatever was done; a message that
    /// shows what was done uses `notify::steps::next_steps`.
    pub fn next_steps(self) -> Vec<&'static str> {
        self.steps().iter().map(|s| s.text).collect()
    }

    pub const fn rollback_cures(self) -> bool {
        self.info().rollback_cures
    }

    /// The cause a stored word names; `None` for a word outside the vocabulary.
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == word)
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_serialises_as_its_catalogue_word_and_parses_back() {
        for c in Cause::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str(), "{c:?}");
            assert_eq!(Cause::parse(c.as_str()), Some(c));
            assert_eq!(serde_json::from_value::<Cause>(c.as_str().into()).unwrap(), c);
        }
    }

    #[test]
    fn every_cause_has_a_headline_and_next_steps() {
        for c in Cause::ALL {
            let info = c.info();
            assert!(!info.headline.is_empty() && !info.next_steps.is_empty(), "{c:?}");
            assert!(info.headline.is_ascii(), "subject lines are ASCII: {c:?}");
        }
    }

    #[test]
    fn a_step_names_the_action_it_advises_and_only_that_one() {
        for c in Cause::ALL {
            for step in c.steps() {
                let text = step.text.to_lowercase();
                let rolls_back = text.contains("roll back");
                let scales_out = text.contains("scale out");
                assert!(
                    !(rolls_back && scales_out),
                    "one action per step, so either can be answered alone: {c:?} {text}"
                );
                let said = if rolls_back {
                    Some(Remedy::Rollback)
                } else if scales_out {
                    Some(Remedy::ScaleOut)
                } else {
                    None
                };
                assert_eq!(step.remedy, said, "{c:?}: {}", step.text);
            }
        }
    }

    #[test]
    fn all_lists_each_cause_once() {
        let mut words: Vec<_> = Cause::ALL.iter().map(|c| c.as_str()).collect();
        words.sort_unstable();
        words.dedup();
        assert_eq!(words.len(), Cause::ALL.len());
    }

    #[test]
    fn only_stop_causes_are_failures_or_cured_by_rollback() {
        for c in Cause::ALL {
            let i = c.info();
            if i.family != Family::Stop {
                assert!(!i.failure && !i.rollback_cures, "{c:?}");
            }
        }
        assert!(Cause::PlatformMismatch.rollback_cures() && Cause::PlatformMismatch.info().failure);
        assert!(!Cause::Capacity.rollback_cures() && !Cause::Network.rollback_cures());
    }
}
