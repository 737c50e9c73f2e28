//! The environment contract (docs/ARCHITECTURE.md), read once at start. A missing
//! required variable fails the start with a message naming it.

use crate::error::AutopilotError;
use std::time::Duration;

/// Limits on automatic actions (README, "Bounded actions").
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub rollback_per_30m: usize,
    pub rollback_per_day: usize,
    pub scale_per_30m: usize,
    pub scale_per_day: usize,
    /// After any executed action on a service, automatic actions wait this long.
    pub cooldown_seconds: i64,
    /// A crash loop triggers a rollback only on a revision deployed this recently.
    pub rollback_window_seconds: i64,
    /// Global cap on desired count for any scale.
    pub max_tasks: i32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            rollback_per_30m: 1,
            rollback_per_day: 3,
            scale_per_30m: 3,
            scale_per_day: 10,
            cooldown_seconds: 5 * 60,
            rollback_window_seconds: 60 * 60,
            max_tasks: 50,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub notify_topic_arn: String,
    pub evidence_bucket: String,
    pub state_table: String,
    /// `DRY_RUN=true`: no mutating call anywhere.
    pub dry_run: bool,
    /// `CLUSTERS`: names in scope; empty means all.
    pub clusters: Vec<String>,
    /// `EVIDENCE_KMS_KEY_ID`: SSE-KMS key for evidence; SSE-S3 when unset.
    pub evidence_kms_key: Option<String>,
    /// `LOG_GROUP_PREFIXES` (`/ecs/`): the only log groups read or exported
    /// (IAM grants the same). A task definition naming another group is refused.
    pub log_group_prefixes: Vec<String>,
    /// `ALARM_NAME_PREFIX`: alarms whose name starts with it may trigger
    /// automatic actions (as may alarms tagged `autopilot:actions=on`).
    pub alarm_name_prefix: Option<String>,
    /// `PRODUCTION_PIPELINES`: name patterns (`*` matches any run) of the
    /// pipelines whose failures are SEV2; a pipeline's `autopilot:env` tag wins.
    pub production_pipelines: Vec<String>,
    /// `BUILD_LOG_GROUP_PREFIXES` (`/aws/codebuild/`): the only build log
    /// groups pipeline-events reads (IAM grants the same).
    pub build_log_group_prefixes: Vec<String>,
    /// `ACCOUNTS`: accounts whose events are in scope besides the function's
    /// own (a comma list of twelve-digit ids; empty: only its own).
    pub accounts: Vec<String>,
    /// `REGIONS`: the regions of the fleet the scheduled jobs cover (a comma
    /// list; empty: the function's own region).
    pub regions: Vec<String>,
    /// `MEMBER_ROLE_NAME` (`ecs-autopilot-member`): the role assumed in each
    /// member account of `ACCOUNTS` (`infra/member.yaml`).
    pub member_role_name: String,
    /// `MEMBER_EXTERNAL_ID`: sent with every `AssumeRole` when set.
    pub member_external_id: Option<String>,
    /// `ALARM_TOPIC_ARNS`: the SNS topics whose messages are taken (a comma
    /// list); an SNS-wrapped input from any other topic is refused.
    pub alarm_topic_arns: Vec<String>,
    /// `RUNBOOK_CALLERS`: for function URL requests, the IAM caller ARN
    /// patterns (`*` wildcards) allowed per action or `*` — a JSON object
    /// such as `{"rollback": ["arn:aws:sts::111122223333:assumed-role/oncall/*"]}`.
    /// Empty: every caller IAM lets through.
    pub runbook_callers: CallerPatterns,
    pub settings: Settings,
}

/// The role `infra/member.yaml` creates in each member account by default.
pub const DEFAULT_MEMBER_ROLE_NAME: &str = "ecs-autopilot-member";

/// Production pipelines by default: a name ending in `-prod` or
/// `-production`, or containing `prod/`.
pub const DEFAULT_PRODUCTION_PIPELINES: &[&str] = &["*-prod", "*-production", "*prod/*"];

/// The settings a team tunes per service, from the service's tags
/// (`autopilot:crash-loop-threshold`, `autopilot:rollback-window-minutes`)
/// over the stack's defaults; `autopilot:mode` and `autopilot:max-tasks` are
/// read by the engine. A tag that does not parse keeps the default and says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTuning {
    pub crash_loop_threshold: u32,
    pub rollback_window_seconds: i64,
    /// `autopilot:team`: the team that owns the service; its incidents'
    /// messages carry it as the SNS message attribute `team`.
    pub team: Option<String>,
    /// Tags that were ignored, and why.
    pub notes: Vec<String>,
}

impl ServiceTuning {
    pub fn from_tags(settings: &Settings, tags: &[(String, String)]) -> Self {
        let mut notes = Vec::new();
        let tag = |k: &str| tags.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)).map(|(_, v)| v.trim());
        let mut crash_loop_threshold = settings.crash_loop_threshold;
        if let Some(v) = tag("autopilot:crash-loop-threshold") {
            match v.parse::<u32>() {
                Ok(n) if n >= 1 => crash_loop_threshold = n,
                _ => notes.push(format!(
                    "tag autopilot:crash-loop-threshold={v:?} is not a whole number of at least 1; using {crash_loop_threshold}"
                )),
            }
        }
        let mut rollback_window_seconds = settings.limits.rollback_window_seconds;
        if let Some(v) = tag("autopilot:rollback-window-minutes") {
            match v.parse::<u32>() {
                Ok(m) => rollback_window_seconds = i64::from(m) * 60,
                _ => notes.push(format!(
                    "tag autopilot:rollback-window-minutes={v:?} is not a whole number of minutes; using {}",
                    rollback_window_seconds / 60
                )),
            }
        }
        let team = tag("autopilot:team").filter(|v| !v.is_empty()).map(str::to_string);
        Self { crash_loop_threshold, rollback_window_seconds, team, notes }
    }
}

/// Tunables with defaults; each may be overridden by the env variable named
/// in its comment (README, "Configuration").
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `INCIDENT_WINDOW_MINUTES` (60): stops of one service and cause within
    /// this window of the incident's last event join the same incident.
    pub incident_window: Duration,
    /// `UPDATE_INTERVAL_MINUTES` (15): at most one update per open incident
    /// per interval, unless the severity changes.
    pub update_interval: Duration,
    /// `ESCALATE_AFTER_MINUTES` (15): an incident open longer than this gets
    /// one escalation (a SEV1 one every 30 minutes while open).
    pub escalate_after: Duration,
    /// `CRASH_LOOP_THRESHOLD` (3): this many failed tasks in the window make a crash loop.
    pub crash_loop_threshold: u32,
    /// `LOG_LINES` (20): error lines kept from the failing container's log.
    pub log_lines: usize,
    /// `CONSOLE_REGION`: region used in console links when the event has none.
    pub console_region: String,
    /// Budgets, cooldown and caps of the action engine.
    pub limits: Limits,
    /// `FUNCTION_TIMEOUT_SECONDS` (300): how long an invocation may run, for
    /// its leases when Lambda's deadline is unknown (it is known under Lambda).
    pub function_timeout_seconds: i64,
    /// Time bounds of every AWS call.
    pub sdk_timeouts: SdkTimeouts,
    /// `RUNBOOK_REPEAT_WINDOW_SECONDS` (600): a runbook mutation without a
    /// `request_id` gets one derived from its payload for this long after its
    /// first run, so that a retry of the same invoke answers the first result.
    pub runbook_repeat_window_seconds: i64,
}

/// Every SDK operation is bounded: a hanging endpoint fails the call (as a
/// retryable timeout) instead of holding the function until Lambda kills it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdkTimeouts {
    /// `SDK_ATTEMPT_TIMEOUT_SECONDS` (10): one attempt of a call.
    pub attempt: Duration,
    /// `SDK_OPERATION_TIMEOUT_SECONDS` (25): a call with all its retries.
    pub operation: Duration,
}

impl Default for SdkTimeouts {
    fn default() -> Self {
        Self { attempt: Duration::from_secs(10), operation: Duration::from_secs(25) }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            incident_window: Duration::from_secs(60 * 60),
            update_interval: Duration::from_secs(15 * 60),
            escalate_after: Duration::from_secs(15 * 60),
            crash_loop_threshold: 3,
            log_lines: 20,
            console_region: "us-east-1".into(),
            limits: Limits::default(),
            function_timeout_seconds: 300,
            sdk_timeouts: SdkTimeouts::default(),
            runbook_repeat_window_seconds: 600,
        }
    }
}

impl Config {
    pub fn from_env() -> Result<Self, AutopilotError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Read through `lookup` so that tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AutopilotError> {
        let required = |name: &str| -> Result<String, AutopilotError> {
            match lookup(name) {
                Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
                _ => Err(AutopilotError::Config(format!("environment variable {name} is required and not set"))),
            }
        };
        let notify_topic_arn = required("NOTIFY_TOPIC_ARN")?;
        if !notify_topic_arn.starts_with("arn:") {
            return Err(AutopilotError::Config(format!(
                "NOTIFY_TOPIC_ARN must be an SNS topic ARN (arn:aws:sns:…), got {notify_topic_arn:?}"
            )));
        }
        let evidence_bucket = required("EVIDENCE_BUCKET")?;
        let state_table = required("STATE_TABLE")?;
        let dry_run = parse_bool("DRY_RUN", lookup("DRY_RUN").as_deref())?;
        let clusters = lookup("CLUSTERS")
            .unwrap_or_default()
            .split(',')
            .map(|c| crate::arn::cluster_name(c.trim()).to_string())
            .filter(|c| !c.is_empty())
            .collect();
        let defaults = Settings::default();
        let minutes = |name: &str, default: Duration| -> Result<Duration, AutopilotError> {
            Ok(parse_u64(name, lookup(name).as_deref())?.map(|m| Duration::from_secs(m * 60)).unwrap_or(default))
        };
        let count = |name: &str, default: usize| -> Result<usize, AutopilotError> {
            Ok(parse_u64(name, lookup(name).as_deref())?.map(|n| n as usize).unwrap_or(default))
        };
        let dl = Limits::default();
        let limits = Limits {
            rollback_per_30m: count("ROLLBACK_MAX_PER_30M", dl.rollback_per_30m)?,
            rollback_per_day: count("ROLLBACK_MAX_PER_DAY", dl.rollback_per_day)?,
            scale_per_30m: count("SCALE_MAX_PER_30M", dl.scale_per_30m)?,
            scale_per_day: count("SCALE_MAX_PER_DAY", dl.scale_per_day)?,
            cooldown_seconds: count("ACTION_COOLDOWN_MINUTES", (dl.cooldown_seconds / 60) as usize)? as i64 * 60,
            rollback_window_seconds: count("ROLLBACK_WINDOW_MINUTES", (dl.rollback_window_seconds / 60) as usize)?
                as i64
                * 60,
            max_tasks: max_tasks(lookup("MAX_TASKS").as_deref(), dl.max_tasks)?,
        };
        let seconds = |name: &str, default: Duration| -> Result<Duration, AutopilotError> {
            match parse_u64(name, lookup(name).as_deref())? {
                None => Ok(default),
                Some(0) => Err(AutopilotError::Config(format!("{name} must be at least 1 second, got 0"))),
                Some(n) => Ok(Duration::from_secs(n)),
            }
        };
        let ds = SdkTimeouts::default();
        let sdk_timeouts = SdkTimeouts {
            attempt: seconds("SDK_ATTEMPT_TIMEOUT_SECONDS", ds.attempt)?,
            operation: seconds("SDK_OPERATION_TIMEOUT_SECONDS", ds.operation)?,
        };
        let function_timeout =
            seconds("FUNCTION_TIMEOUT_SECONDS", Duration::from_secs(defaults.function_timeout_seconds as u64))?;
        let settings = Settings {
            limits,
            incident_window: minutes("INCIDENT_WINDOW_MINUTES", defaults.incident_window)?,
            update_interval: minutes("UPDATE_INTERVAL_MINUTES", defaults.update_interval)?,
            escalate_after: minutes("ESCALATE_AFTER_MINUTES", defaults.escalate_after)?,
            crash_loop_threshold: parse_u64("CRASH_LOOP_THRESHOLD", lookup("CRASH_LOOP_THRESHOLD").as_deref())?
                .map(|n| n.max(1) as u32)
                .unwrap_or(defaults.crash_loop_threshold),
            log_lines: parse_u64("LOG_LINES", lookup("LOG_LINES").as_deref())?
                .map(|n| n as usize)
                .unwrap_or(defaults.log_lines),
            console_region: lookup("AWS_REGION")
                .or_else(|| lookup("CONSOLE_REGION"))
                .filter(|r| !r.is_empty())
                .unwrap_or(defaults.console_region),
            function_timeout_seconds: i64::try_from(function_timeout.as_secs()).unwrap_or(i64::MAX),
            sdk_timeouts,
            runbook_repeat_window_seconds: i64::try_from(
                seconds(
                    "RUNBOOK_REPEAT_WINDOW_SECONDS",
                    Duration::from_secs(defaults.runbook_repeat_window_seconds as u64),
                )?
                .as_secs(),
            )
            .unwrap_or(i64::MAX),
        };
        let evidence_kms_key = lookup("EVIDENCE_KMS_KEY_ID").map(|k| k.trim().to_string()).filter(|k| !k.is_empty());
        let log_group_prefixes = match lookup("LOG_GROUP_PREFIXES") {
            None => vec!["/ecs/".to_string()],
            Some(list) => list.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect(),
        };
        if log_group_prefixes.iter().any(|p| !p.starts_with('/') && !p.starts_with("aws")) {
            return Err(AutopilotError::Config(format!(
                "LOG_GROUP_PREFIXES must be log-group name prefixes such as /ecs/, got {log_group_prefixes:?}"
            )));
        }
        let alarm_name_prefix = lookup("ALARM_NAME_PREFIX").map(|p| p.trim().to_string()).filter(|p| !p.is_empty());
        let list = |name: &str, default: &[&str]| -> Vec<String> {
            match lookup(name) {
                None => default.iter().map(|p| p.to_string()).collect(),
                Some(v) => v.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect(),
            }
        };
        let production_pipelines = list("PRODUCTION_PIPELINES", DEFAULT_PRODUCTION_PIPELINES);
        let build_log_group_prefixes = list("BUILD_LOG_GROUP_PREFIXES", &["/aws/codebuild/"]);
        let accounts = list("ACCOUNTS", &[]);
        if let Some(bad) = accounts.iter().find(|a| a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit())) {
            return Err(AutopilotError::Config(format!(
                "ACCOUNTS must be twelve-digit account ids separated by commas, got {bad:?}"
            )));
        }
        let regions = list("REGIONS", &[]);
        if let Some(bad) =
            regions.iter().find(|r| !r.contains('-') || r.bytes().any(|b| b.is_ascii_uppercase() || b == b' '))
        {
            return Err(AutopilotError::Config(format!(
                "REGIONS must be region codes separated by commas, got {bad:?}"
            )));
        }
        let member_role_name = lookup("MEMBER_ROLE_NAME")
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| DEFAULT_MEMBER_ROLE_NAME.to_string());
        let member_external_id = lookup("MEMBER_EXTERNAL_ID").map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
        let alarm_topic_arns = list("ALARM_TOPIC_ARNS", &[]);
        if let Some(bad) = alarm_topic_arns.iter().find(|t| !t.starts_with("arn:") || !t.contains(":sns:")) {
            return Err(AutopilotError::Config(format!(
                "ALARM_TOPIC_ARNS must be SNS topic ARNs separated by commas, got {bad:?}"
            )));
        }
        let runbook_callers = runbook_callers(lookup("RUNBOOK_CALLERS").as_deref())?;
        Ok(Self {
            notify_topic_arn,
            evidence_bucket,
            state_table,
            dry_run,
            clusters,
            evidence_kms_key,
            log_group_prefixes,
            alarm_name_prefix,
            production_pipelines,
            build_log_group_prefixes,
            accounts,
            regions,
            member_role_name,
            member_external_id,
            alarm_topic_arns,
            runbook_callers,
            settings,
        })
    }

    /// Whether a log group may be read or exported (`LOG_GROUP_PREFIXES`).
    pub fn log_group_allowed(&self, group: &str) -> bool {
        self.log_group_prefixes.iter().any(|p| group.starts_with(p.as_str()))
    }

    /// Whether a cluster is in scope (`CLUSTERS` empty means every cluster).
    pub fn in_scope(&self, cluster: &str) -> bool {
        self.clusters.is_empty() || self.clusters.iter().any(|c| c == crate::arn::cluster_name(cluster))
    }
}

/// Action (or `*`) → the IAM ARN patterns allowed to run it.
pub type CallerPatterns = Vec<(String, Vec<String>)>;

/// `RUNBOOK_CALLERS`: a JSON object of action (or `*`) → list of ARN patterns.
fn runbook_callers(value: Option<&str>) -> Result<CallerPatterns, AutopilotError> {
    let refuse = |why: String| {
        AutopilotError::Config(format!(
            "RUNBOOK_CALLERS must be a JSON object mapping an action or \"*\" to a list of IAM ARN patterns, \
             e.g. {{\"rollback\": [\"arn:aws:sts::111122223333:assumed-role/oncall/*\"]}}: {why}"
        ))
    };
    let Some(text) = value.map(str::trim).filter(|v| !v.is_empty()) else { return Ok(Vec::new()) };
    let parsed: std::collections::BTreeMap<String, Vec<String>> =
        serde_json::from_str(text).map_err(|e| refuse(e.to_string()))?;
    for (action, patterns) in &parsed {
        if let Some(p) = patterns.iter().find(|p| !p.starts_with("arn:") && p.as_str() != "*") {
            return Err(refuse(format!("pattern {p:?} under {action:?} is not an ARN pattern")));
        }
    }
    Ok(parsed.into_iter().collect())
}

fn parse_bool(name: &str, value: Option<&str>) -> Result<bool, AutopilotError> {
    match value.map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) => match v.as_str() {
            "" | "false" | "0" | "no" | "off" => Ok(false),
            "true" | "1" | "yes" | "on" => Ok(true),
            _ => Err(AutopilotError::Config(format!("{name} must be true or false, got {v:?}"))),
        },
    }
}

/// `MAX_TASKS`: a cap below one would turn every scale into a scale to zero.
fn max_tasks(value: Option<&str>, default: i32) -> Result<i32, AutopilotError> {
    let refuse = |v: &str| {
        AutopilotError::Config(format!(
            "MAX_TASKS must be a whole number from 1 to {} (a scale never sets fewer than one task), got {v:?}",
            i32::MAX
        ))
    };
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => match v.parse::<i32>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(refuse(v)),
        },
    }
}

fn parse_u64(name: &str, value: Option<&str>) -> Result<Option<u64>, AutopilotError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => {
            v.parse().map(Some).map_err(|_| AutopilotError::Config(format!("{name} must be a whole number, got {v:?}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_service_tags_tune_the_crash_loop_threshold_and_rollback_window_and_bad_ones_say_so() {
        let settings = Settings::default();
        let t = |pairs: &[(&str, &str)]| {
            let tags: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            ServiceTuning::from_tags(&settings, &tags)
        };
        let default = t(&[]);
        assert_eq!((default.crash_loop_threshold, default.rollback_window_seconds), (3, 3600));
        let tuned = t(&[("autopilot:crash-loop-threshold", "5"), ("autopilot:rollback-window-minutes", "20")]);
        assert_eq!((tuned.crash_loop_threshold, tuned.rollback_window_seconds), (5, 1200));
        assert!(tuned.notes.is_empty());
        let bad = t(&[("autopilot:crash-loop-threshold", "0"), ("autopilot:rollback-window-minutes", "soon")]);
        assert_eq!((bad.crash_loop_threshold, bad.rollback_window_seconds), (3, 3600));
        assert_eq!(bad.notes.len(), 2, "{:?}", bad.notes);
        assert_eq!(default.team, None);
        assert_eq!(t(&[("autopilot:team", " payments ")]).team.as_deref(), Some("payments"));
        assert_eq!(t(&[("Autopilot:Team", "")]).team, None, "an empty tag names no team");
    }
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    const BASE: [(&str, &str); 3] = [
        ("NOTIFY_TOPIC_ARN", "arn:aws:sns:us-east-1:111122223333:autopilot"),
        ("EVIDENCE_BUCKET", "evidence"),
        ("STATE_TABLE", "state"),
    ];

    #[test]
    fn when_a_required_variable_is_missing_should_name_it() {
        for missing in ["NOTIFY_TOPIC_ARN", "EVIDENCE_BUCKET", "STATE_TABLE"] {
            let pairs: Vec<_> = BASE.iter().copied().filter(|(k, _)| *k != missing).collect();
            let err = Config::from_lookup(env(&pairs)).unwrap_err().to_string();
            assert!(err.contains(missing), "{err}");
        }
    }

    #[test]
    fn should_read_dry_run_and_cluster_scope() {
        let mut pairs = BASE.to_vec();
        pairs.push(("DRY_RUN", "TRUE"));
        pairs.push(("CLUSTERS", " prod , arn:aws:ecs:us-east-1:1:cluster/staging,,"));
        let c = Config::from_lookup(env(&pairs)).unwrap();
        assert!(c.dry_run);
        assert_eq!(c.clusters, vec!["prod", "staging"]);
        assert!(c.in_scope("arn:aws:ecs:us-east-1:1:cluster/prod"));
        assert!(!c.in_scope("dev"));
    }

    #[test]
    fn when_dry_run_is_not_a_boolean_should_refuse_to_start() {
        let mut pairs = BASE.to_vec();
        pairs.push(("DRY_RUN", "maybe"));
        let err = Config::from_lookup(env(&pairs)).unwrap_err().to_string();
        assert!(err.contains("DRY_RUN") && err.contains("maybe"), "{err}");
    }

    #[test]
    fn log_groups_outside_the_prefixes_are_not_allowed() {
        let c = Config::from_lookup(env(&BASE)).unwrap();
        assert!(c.log_group_allowed("/ecs/prod/api"));
        assert!(!c.log_group_allowed("/aws/lambda/payments"), "default is /ecs/ only");
        let mut pairs = BASE.to_vec();
        pairs.push(("LOG_GROUP_PREFIXES", "/ecs/, /custom/"));
        let c = Config::from_lookup(env(&pairs)).unwrap();
        assert!(c.log_group_allowed("/custom/x") && !c.log_group_allowed("/secret/x"));
        let mut pairs = BASE.to_vec();
        pairs.push(("LOG_GROUP_PREFIXES", "ecs"));
        assert!(Config::from_lookup(env(&pairs)).unwrap_err().to_string().contains("LOG_GROUP_PREFIXES"));
    }

    #[test]
    fn when_max_tasks_is_below_one_should_refuse_to_start_naming_it() {
        for value in ["0", "-1"] {
            let mut pairs = BASE.to_vec();
            pairs.push(("MAX_TASKS", value));
            let err = Config::from_lookup(env(&pairs)).expect_err(value).to_string();
            assert!(err.contains("MAX_TASKS") && err.contains(value), "{err}");
        }
        let mut pairs = BASE.to_vec();
        pairs.push(("MAX_TASKS", "1"));
        assert_eq!(Config::from_lookup(env(&pairs)).unwrap().settings.limits.max_tasks, 1);
    }

    #[test]
    fn when_timeouts_are_set_should_read_them_and_refuse_zero() {
        let c = Config::from_lookup(env(&BASE)).unwrap();
        assert_eq!(c.settings.function_timeout_seconds, 300);
        assert_eq!(c.settings.sdk_timeouts, SdkTimeouts::default());
        let mut pairs = BASE.to_vec();
        pairs.extend([
            ("FUNCTION_TIMEOUT_SECONDS", "90"),
            ("SDK_ATTEMPT_TIMEOUT_SECONDS", "2"),
            ("SDK_OPERATION_TIMEOUT_SECONDS", "5"),
        ]);
        let c = Config::from_lookup(env(&pairs)).unwrap();
        assert_eq!(c.settings.function_timeout_seconds, 90);
        assert_eq!(
            c.settings.sdk_timeouts,
            SdkTimeouts { attempt: Duration::from_secs(2), operation: Duration::from_secs(5) }
        );
        for name in ["FUNCTION_TIMEOUT_SECONDS", "SDK_ATTEMPT_TIMEOUT_SECONDS", "SDK_OPERATION_TIMEOUT_SECONDS"] {
            let mut pairs = BASE.to_vec();
            pairs.push((name, "0"));
            let err = Config::from_lookup(env(&pairs)).expect_err(name).to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn defaults_apply_when_settings_are_absent() {
        let c = Config::from_lookup(env(&BASE)).unwrap();
        assert!(!c.dry_run);
        assert!(c.clusters.is_empty() && c.in_scope("anything"));
        assert_eq!(c.settings.update_interval, Duration::from_secs(900));
    }

    #[test]
    fn the_trusted_sources_are_read_and_a_bad_one_is_named() {
        let mut pairs = BASE.to_vec();
        pairs.push(("ACCOUNTS", "444455556666, 777788889999"));
        pairs.push(("ALARM_TOPIC_ARNS", "arn:aws:sns:us-east-1:111122223333:alarms"));
        pairs.push((
            "RUNBOOK_CALLERS",
            r#"{"rollback": ["arn:aws:sts::111122223333:assumed-role/oncall/*"], "*": ["*"]}"#,
        ));
        let c = Config::from_lookup(env(&pairs)).unwrap();
        assert_eq!(c.accounts, ["444455556666", "777788889999"]);
        assert_eq!(c.alarm_topic_arns, ["arn:aws:sns:us-east-1:111122223333:alarms"]);
        assert_eq!(c.runbook_callers.len(), 2);
        let c = Config::from_lookup(env(&BASE)).unwrap();
        assert!(c.accounts.is_empty() && c.alarm_topic_arns.is_empty() && c.runbook_callers.is_empty());
        for (name, value) in [
            ("ACCOUNTS", "4444-5555-6666"),
            ("ALARM_TOPIC_ARNS", "alarms"),
            ("RUNBOOK_CALLERS", "rollback=oncall"),
            ("RUNBOOK_CALLERS", r#"{"rollback": ["oncall"]}"#),
        ] {
            let mut pairs = BASE.to_vec();
            pairs.push((name, value));
            let err = Config::from_lookup(env(&pairs)).unwrap_err().to_string();
            assert!(err.contains(name), "{name}={value}: {err}");
        }
    }
}
