"""Static checks of infra/template.yaml (SAM source) and of its samtranslator
output. These cover what moto's CloudFormation skips or drops (see
conftest.py): alarms, schedules, subscriptions, bucket/queue/topic policies,
EventInvokeConfig, bucket versioning/public-access/lifecycle/Object Lock and
table TTL/PITR.
"""

from __future__ import annotations

import json
import re

import pytest

from conftest import (ACCOUNT, BINARIES, ENV_CONTRACT, ENV_PARAMETERS, FLEET_ENV_PARAMETERS, FLEET_FUNCTIONS,
                      FLEET_RULES, REGION, ROLES, RULES, TEMPLATE, Resolver, env_contract)

LOGS_PRINCIPAL = {"Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}}
RESOLVED_LOGS_PRINCIPAL = {"Service": f"logs.{REGION}.amazonaws.com"}


def of_type(template, type_):
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def ref(logical):
    return {"Ref": logical}


def getatt(logical, attr):
    return {"Fn::GetAtt": [logical, attr]}


def env_value(template, param):
    """How a parameter is passed into the environment: as is, or a list joined by ","."""
    if template["Parameters"][param]["Type"] == "CommaDelimitedList":
        return {"Fn::Join": [",", ref(param)]}
    return ref(param)


# ---------------------------------------------------------------------------
# SAM source
# ---------------------------------------------------------------------------
def test_transform_and_globals(sam_template):
    assert sam_template["Transform"] == "AWS::Serverless-2016-10-31"
    g = sam_template["Globals"]["Function"]
    assert g["CodeUri"] == ".."  # workspace root, relative to infra/
    assert g["Runtime"] == "provided.al2023"
    assert g["Architectures"] == ["arm64"]
    assert g["Handler"] == "bootstrap"
    assert set(g["Environment"]["Variables"]) == ENV_CONTRACT
    assert g["Environment"]["Variables"] == {
        "NOTIFY_TOPIC_ARN": ref("NotificationTopic"),
        "EVIDENCE_BUCKET": ref("EvidenceBucket"),
        "STATE_TABLE": ref("StateTable"),
        "EVIDENCE_KMS_KEY_ID": getatt("AutopilotKey", "Arn"),
        "STACK_NAME": ref("AWS::StackName"),
        **{var: env_value(sam_template, param) for var, param in ENV_PARAMETERS.items()},
    }


@pytest.mark.parametrize("logical,binary", sorted(BINARIES.items()))
def test_function_build_and_identity(sam_template, logical, binary):
    fn = sam_template["Resources"][logical]
    assert fn["Type"] == "AWS::Serverless::Function"
    assert fn["Metadata"]["BuildMethod"] == "rust-cargolambda"
    assert fn["Metadata"]["BuildProperties"] == {"Binary": binary}
    props = fn["Properties"]
    assert props["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-" + binary}
    assert props["Role"] == getatt(ROLES[logical], "Arn")
    # No per-function environment but the fleet's variables on the five
    # functions that act in member accounts: the contract comes from Globals.
    if logical in FLEET_FUNCTIONS:
        assert props["Environment"] == {"Variables": {
            var: env_value(sam_template, param) for var, param in FLEET_ENV_PARAMETERS.items()}}
    else:
        assert "Environment" not in props
    assert props["LoggingConfig"]["LogFormat"] == "JSON"
    assert props["LoggingConfig"]["LogGroup"] == ref(logical.replace("Function", "LogGroup"))
    for key in ("CodeUri", "Runtime", "Architectures", "Handler"):
        assert key not in props, f"{logical} overrides {key} from Globals"


def test_parameters(sam_template):
    p = sam_template["Parameters"]
    for name in ("Clusters", "DryRun", "AlarmNamePrefix", "NotificationEmail", "TimeZone",
                 "EnableObjectLock", "LogRetentionDays"):
        assert name in p, name
    assert p["DryRun"]["AllowedValues"] == ["true", "false"]
    assert p["DryRun"]["Default"] == "true"  # global opt-in stays the default
    assert p["UpdateIntervalMinutes"]["Default"] == 15
    assert p["IncidentWindowMinutes"]["Default"] == 60
    for name in ("UpdateIntervalMinutes", "IncidentWindowMinutes"):
        assert p[name]["Type"] == "Number" and p[name]["MinValue"] >= 1, name
    # Clusters: up to ten names, which is what the Cluster0..9 conditions cover.
    pattern = re.compile(p["Clusters"]["AllowedPattern"])
    assert pattern.fullmatch("")
    assert pattern.fullmatch("prod")
    assert pattern.fullmatch(",".join(f"c{i}" for i in range(10)))
    assert not pattern.fullmatch(",".join(f"c{i}" for i in range(11)))
    assert not pattern.fullmatch("prod, staging")


# The environment contract's defaults (the Rust side's defaults; docs/ARCHITECTURE.md
# and the issue that made every setting a parameter). A template default
# that drifts from the code's makes a deployed stack behave differently from
# the README.
CONTRACT_DEFAULTS = {
    "DRY_RUN": "true",   # infra's default: start in dry-run (the code's unset default is false)
    "CLUSTERS": "",
    "INCIDENT_WINDOW_MINUTES": "60",
    "UPDATE_INTERVAL_MINUTES": "15",
    "CRASH_LOOP_THRESHOLD": "3",
    "LOG_LINES": "20",
    "ROLLBACK_MAX_PER_30M": "1",
    "ROLLBACK_MAX_PER_DAY": "3",
    "SCALE_MAX_PER_30M": "3",
    "SCALE_MAX_PER_DAY": "10",
    "ACTION_COOLDOWN_MINUTES": "5",
    "ROLLBACK_WINDOW_MINUTES": "60",
    "MAX_TASKS": "50",
    "ESCALATE_AFTER_MINUTES": "15",
    "LOG_GROUP_PREFIXES": "/ecs/",
    "BUILD_LOG_GROUP_PREFIXES": "/aws/codebuild/",
    "PRODUCTION_PIPELINES": "*-prod,*-production,*prod/*",
    "ALARM_NAME_PREFIX": "",
    "METRICS_NAMESPACE": "EcsAutopilot",
    "ALARM_TOPIC_ARNS": "",
    "RUNBOOK_CALLERS": "",
    "HOOK_BAKE_SECONDS": "300",
    "HOOK_ON_READ_FAILURE": "fail",
}
# (MinValue, MaxValue) of each Number tunable: counts and thresholds that
# must be at least 1, budgets and cooldowns that may be 0 (= off).
NUMBER_BOUNDS = {
    "IncidentWindowMinutes": (1, 1440), "UpdateIntervalMinutes": (1, 1440),
    "CrashLoopThreshold": (1, 100), "LogLines": (0, 500), "EscalateAfterMinutes": (1, 1440),
    "RollbackMaxPer30m": (0, 10), "RollbackMaxPerDay": (0, 48),
    "ScaleMaxPer30m": (0, 30), "ScaleMaxPerDay": (0, 240),
    "ActionCooldownMinutes": (0, 1440), "RollbackWindowMinutes": (1, 1440), "MaxTasks": (1, 5000),
    "HookBakeSeconds": (0, 3600),
}


def test_every_setting_is_a_parameter_with_the_contract_default(sam_template):
    params = sam_template["Parameters"]
    assert set(ENV_PARAMETERS) == set(CONTRACT_DEFAULTS)
    for var, name in ENV_PARAMETERS.items():
        p = params[name]
        assert str(p["Default"]) == CONTRACT_DEFAULTS[var], (name, p["Default"])
        assert var in p["Description"] or name in ("DryRun", "Clusters"), f"{name}: description should name {var}"
    for name, (low, high) in NUMBER_BOUNDS.items():
        p = params[name]
        assert p["Type"] == "Number", name
        assert (p["MinValue"], p["MaxValue"]) == (low, high), name
        assert low <= p["Default"] <= high, name
    # every Number parameter that reaches the environment has bounds
    numbers = {n for n in ENV_PARAMETERS.values() if params[n]["Type"] == "Number"}
    assert numbers == set(NUMBER_BOUNDS)


@pytest.mark.parametrize("logical", sorted(BINARIES))
def test_every_parameter_reaches_every_function(translated, logical):
    """After translation, each function's environment carries every variable
    of the contract, each from its parameter."""
    env = translated["Resources"][logical]["Properties"]["Environment"]["Variables"]
    assert set(env) == env_contract(logical)
    for var, name in ENV_PARAMETERS.items():
        assert env[var] == env_value(translated, name), (logical, var)
    if logical in FLEET_FUNCTIONS:
        for var, name in FLEET_ENV_PARAMETERS.items():
            assert env[var] == env_value(translated, name), (logical, var)
    assert env["STACK_NAME"] == ref("AWS::StackName")


def test_parameter_groups_cover_every_parameter_once(sam_template):
    groups = sam_template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    listed = [p for g in groups for p in g["Parameters"]]
    assert sorted(listed) == sorted(sam_template["Parameters"]), "each parameter in exactly one group"
    by_label = {g["Label"]["default"]: set(g["Parameters"]) for g in groups}
    assert {"LogGroupPrefixes", "BuildLogGroupPrefixes", "AlarmNamePrefix"} <= by_label["Scope"]
    assert {"RollbackMaxPer30m", "RollbackMaxPerDay", "ScaleMaxPer30m", "ScaleMaxPerDay",
            "ActionCooldownMinutes", "RollbackWindowMinutes", "MaxTasks"} == by_label["Bounded actions"]
    assert {"IncidentWindowMinutes", "UpdateIntervalMinutes", "CrashLoopThreshold", "LogLines",
            "EscalateAfterMinutes"} == by_label["Incidents"]


def test_environment_skip_comments_list_every_variable(sam_template):
    """The CKV_AWS_173 justification names what the environment holds."""
    for logical in BINARIES:
        (skip,) = [s for s in sam_template["Resources"][logical]["Metadata"]["checkov"]["skip"]
                   if s["id"] == "CKV_AWS_173"]
        named = set(re.findall(r"\b[A-Z][A-Z0-9_]*[A-Z0-9]\b", skip["comment"])) & ENV_CONTRACT
        assert named == ENV_CONTRACT, (logical, ENV_CONTRACT - named)


def test_prefix_and_namespace_patterns(sam_template):
    params = sam_template["Parameters"]
    for name in ("LogGroupPrefixes", "BuildLogGroupPrefixes"):
        p = params[name]
        assert p["Type"] == "CommaDelimitedList", name
        # CloudFormation applies a list parameter's pattern to each element
        pattern = re.compile(p["AllowedPattern"])
        for ok in ("/ecs/", "/aws/codebuild/", "app-", "/ecs/payments.api#1_x"):
            assert pattern.fullmatch(ok), (name, ok)
        # no empty entry (",," or ""), no wildcard, nothing that leaves the
        # log-group ARN, no single character (a bare "/" is every log group)
        for bad in ("", "/", "*", "/ecs/*", "/ecs/?", "a b", "/ecs/:log-stream:x", "arn:aws:logs:x"):
            assert not pattern.fullmatch(bad), (name, bad)
    ns = re.compile(params["MetricsNamespace"]["AllowedPattern"])
    assert ns.fullmatch("EcsAutopilot") and ns.fullmatch("Custom/Autopilot")
    assert not ns.fullmatch("AWS/Lambda") and not ns.fullmatch("")


def test_log_prefix_slots_are_consistent():
    """Each per-prefix entry i uses condition <Slot><i> and element i of its
    own padded list; five slots per list (plus the guard on element 5)."""
    text = TEMPLATE.read_text()
    entries = re.findall(r"!If \[(Build)?LogPrefix(\d), .*?!Select \[(\d), .*?!Ref (\w+)\]", text)
    assert entries, "no per-prefix entries found"
    for build, cond_i, sel_i, param in entries:
        assert cond_i == sel_i, (build, cond_i, sel_i)
        assert param == ("BuildLogGroupPrefixes" if build else "LogGroupPrefixes"), (build, param)
    # app logs: the stream-read list, the daily report's FilterLogEvents list,
    # the export list, the key policy and two bucket policy lists; build logs:
    # the stream-read list
    assert sum(1 for e in entries if not e[0]) == 6 * 5
    assert sum(1 for e in entries if e[0]) == 1 * 5
    conds = TEMPLATE.read_text()
    for i in range(6):
        for param in ("LogGroupPrefixes", "BuildLogGroupPrefixes"):
            assert f'!Select [{i}, !Split [",", !Sub ["${{L}},,,,,", {{L: !Join [",", !Ref {param}]}}]]]' in conds


@pytest.mark.parametrize("param", ["LogGroupPrefixes", "BuildLogGroupPrefixes"])
def test_a_sixth_prefix_stops_the_deployment(translated, param):
    five = ",".join(f"/p{i}/" for i in range(5))
    assert "LogGroupPrefixesLimit" not in Resolver(translated, {param: five}).resources()
    res = Resolver(translated, {param: five + ",/p5/"}).resources()
    (stmt,) = res["LogGroupPrefixesLimit"]["Properties"]["PolicyDocument"]["Statement"]
    # not an ARN: IAM refuses the policy and names the parameter
    assert stmt["Resource"] == [f"{param}-takes-at-most-five-prefixes"]
    # attached to nothing
    for r in res.values():
        if r["Type"] == "AWS::IAM::Role":
            assert "<Ref LogGroupPrefixesLimit>" not in json.dumps(r)


def test_cluster_conditions_are_consistent(sam_template):
    """The per-cluster blocks are spelled out ten times; each entry i must use
    condition Cluster<i> and element i of the padded list."""
    conds = sam_template["Conditions"]
    for i in range(10):
        sel = conds[f"Cluster{i}"]["Fn::Not"][0]["Fn::Equals"][0]["Fn::Select"]
        assert sel[0] == i
    text = TEMPLATE.read_text()
    entries = re.findall(r"!If \[Cluster(\d+), .*?!Select \[(\d+),", text)
    assert entries, "no per-cluster entries found"
    assert all(a == b for a, b in entries), [e for e in entries if e[0] != e[1]]
    # eight lists (2 rule clusterArn lists, the deployment and the hook prefix
    # lists, 2 IAM lists of the bounded actions, 2 of the hook answers), and
    # the fleet rules' four (2 clusterArn suffix lists, 2 resources wildcards)
    assert len(entries) == 120


# ---------------------------------------------------------------------------
# Translated template
# ---------------------------------------------------------------------------
def test_translation_produces_plain_lambda_functions(translated):
    fns = of_type(translated, "AWS::Lambda::Function")
    assert set(fns) == set(BINARIES)
    for logical, fn in fns.items():
        p = fn["Properties"]
        assert p["Runtime"] == "provided.al2023"
        assert p["Architectures"] == ["arm64"]
        assert p["Handler"] == "bootstrap"
        assert set(p["Environment"]["Variables"]) == env_contract(logical)
        assert 128 <= p["MemorySize"] <= 1024
        assert 10 <= p["Timeout"] <= 300
        assert p["ReservedConcurrentExecutions"]["Fn::If"][0] == "HasConcurrencyLimit"
    # only scheduled-reports gets more memory
    assert fns["ScheduledReportsFunction"]["Properties"]["MemorySize"] == 512


@pytest.mark.parametrize("logical", sorted(BINARIES))
def test_every_function_has_an_on_failure_destination(translated, logical):
    configs = [
        r for r in of_type(translated, "AWS::Lambda::EventInvokeConfig").values()
        if r["Properties"]["FunctionName"] == ref(logical)
    ]
    assert len(configs) == 1
    p = configs[0]["Properties"]
    assert p["DestinationConfig"]["OnFailure"]["Destination"] == getatt("FailedInvocationsQueue", "Arn")
    assert p["MaximumRetryAttempts"] == 2
    assert p["MaximumEventAgeInSeconds"] == 3600


def test_rule_targets_have_retry_and_dead_letter(translated):
    rules = of_type(translated, "AWS::Events::Rule")
    assert set(rules) == set(RULES) | set(FLEET_RULES)
    for logical, rule in rules.items():
        (target,) = rule["Properties"]["Targets"]
        assert target["DeadLetterConfig"] == {"Arn": getatt("TriggerDeadLetterQueue", "Arn")}, logical
        assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 3600
        assert rule["Properties"]["State"] == "ENABLED"


def test_each_rule_may_invoke_only_its_function(translated):
    perms = of_type(translated, "AWS::Lambda::Permission")
    by_rule = {
        p["Properties"]["SourceArn"]["Fn::GetAtt"][0]: p["Properties"]
        for p in perms.values()
        if p["Properties"]["Principal"] == "events.amazonaws.com"
    }
    assert set(by_rule) == set(RULES) | set(FLEET_RULES)
    for rule, props in by_rule.items():
        target = translated["Resources"][rule]["Properties"]["Targets"][0]["Arn"]["Fn::GetAtt"][0]
        assert props["FunctionName"] == ref(target)
    # SNS and CloudWatch alarm actions are limited by source too
    others = {p["Properties"]["Principal"]: p for p in perms.values()
              if p["Properties"]["Principal"] != "events.amazonaws.com"}
    assert set(others) == {"sns.amazonaws.com", "lambda.alarms.cloudwatch.amazonaws.com", "ecs.amazonaws.com"}
    # ECS may invoke the deployment hook alone, for services of this account.
    hook_perm = others["ecs.amazonaws.com"]["Properties"]
    assert (hook_perm["FunctionName"], hook_perm["SourceAccount"]) == (ref("DeploymentHookFunction"), ref("AWS::AccountId"))
    assert others["sns.amazonaws.com"]["Condition"] == "HasAlarmSnsTopic"
    assert others["sns.amazonaws.com"]["Properties"]["SourceArn"] == ref("AlarmSnsTopicArn")
    alarm_perm = others["lambda.alarms.cloudwatch.amazonaws.com"]["Properties"]
    assert alarm_perm["SourceAccount"] == ref("AWS::AccountId")
    assert alarm_perm["SourceArn"]["Fn::Sub"].endswith(":alarm:${AlarmNamePrefix}*")


SCHEDULES = {
    "DailyReportSchedule": ("cron(0 9 * * ? *)", {"job": "daily"}),
    "WeeklyReportSchedule": ("cron(0 14 ? * FRI *)", {"job": "weekly"}),
    "EscalationSchedule": ("rate(5 minutes)", {"job": "escalate"}),
}


@pytest.mark.parametrize("logical", sorted(SCHEDULES))
def test_schedules(translated, logical):
    # moto's CloudFormation skips AWS::Scheduler::Schedule: checked here.
    expression, payload = SCHEDULES[logical]
    s = translated["Resources"][logical]
    assert s["Type"] == "AWS::Scheduler::Schedule"
    p = s["Properties"]
    assert p["ScheduleExpression"] == expression
    assert p["ScheduleExpressionTimezone"] == ref("TimeZone")
    assert p["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert p["State"] == "ENABLED"
    t = p["Target"]
    assert t["Arn"] == getatt("ScheduledReportsFunction", "Arn")
    assert t["RoleArn"] == getatt("SchedulerRole", "Arn")
    assert json.loads(t["Input"]) == payload
    assert t["DeadLetterConfig"] == {"Arn": getatt("TriggerDeadLetterQueue", "Arn")}
    assert t["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert t["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 3600
    assert len(of_type(translated, "AWS::Scheduler::Schedule")) == 3


def test_scheduler_role_invokes_only_scheduled_reports(translated):
    role = translated["Resources"]["SchedulerRole"]["Properties"]
    trust = role["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "scheduler.amazonaws.com"}]
    assert trust[0]["Condition"] == {"StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")}}
    stmts = role["Policies"][0]["PolicyDocument"]["Statement"]
    invoke = [s for s in stmts if s["Action"] == "lambda:InvokeFunction"]
    assert invoke[0]["Resource"][0] == getatt("ScheduledReportsFunction", "Arn")
    sqs = [s for s in stmts if s["Action"] == "sqs:SendMessage"]
    assert sqs[0]["Resource"] == getatt("TriggerDeadLetterQueue", "Arn")


def test_self_alarms(translated):
    # moto's CloudFormation skips AWS::CloudWatch::Alarm: checked here.
    alarms = of_type(translated, "AWS::CloudWatch::Alarm")
    seen = set()
    for a in alarms.values():
        p = a["Properties"]
        assert p["AlarmActions"] == [ref("NotificationTopic")]
        assert p["OKActions"] == [ref("NotificationTopic")]
        assert p["ComparisonOperator"] == "GreaterThanThreshold"
        assert p["Threshold"] == 0
        assert p["TreatMissingData"] == "notBreaching"
        assert p["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-")
        if p["Namespace"] == {"Ref": "MetricsNamespace"}:
            # the EMF metric as shared::telemetry emits it: Stack and Function
            stack, function = p["Dimensions"]
            assert (stack["Name"], stack["Value"]) == ("Stack", {"Ref": "AWS::StackName"})
            assert function["Name"] == "Function"
            assert p["Statistic"] == "Sum"
            logical = {b: f for f, b in BINARIES.items()}[function["Value"]]
            seen.add((logical, p["MetricName"]))
            continue
        (dim,) = p["Dimensions"]
        if p["Namespace"] == "AWS/Lambda":
            assert p["Statistic"] == "Sum"
            seen.add((dim["Value"]["Ref"], p["MetricName"]))
        else:
            assert p["Namespace"] == "AWS/SQS"
            assert p["MetricName"] == "ApproximateNumberOfMessagesVisible"
            assert p["Statistic"] == "Maximum"
            seen.add((dim["Value"]["Fn::GetAtt"][0], p["MetricName"]))
    # Pages on what needs a person (never Lambda's Errors, which counts the
    # InProgress of a redelivered event and refused inputs), throttles, and
    # the dead letters as backstop.
    expected = {(f, m) for f in BINARIES for m in ("NeedsPerson", "Throttles")}
    expected |= {(q, "ApproximateNumberOfMessagesVisible")
                 for q in ("TriggerDeadLetterQueue", "FailedInvocationsQueue")}
    assert seen == expected
    assert len(alarms) == len(expected)


def test_the_self_alarms_read_the_metric_the_code_emits():
    """The metric name is shared::error::ErrorClass::NeedsPerson's, and it is
    the class that pages (the Rust unit tests map every error to a class)."""
    error_rs = (TEMPLATE.parent.parent / "shared/src/error.rs").read_text()
    assert 'Self::NeedsPerson => "NeedsPerson"' in error_rs
    assert "self == Self::NeedsPerson" in error_rs
    telemetry_rs = (TEMPLATE.parent.parent / "shared/src/telemetry.rs").read_text()
    assert 'base.push("Stack")' in telemetry_rs and 'base.push("Function")' in telemetry_rs


def test_evidence_bucket(translated):
    # moto applies only BucketEncryption: the rest is checked here.
    b = translated["Resources"]["EvidenceBucket"]["Properties"]
    sse = b["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert sse["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": getatt("AutopilotKey", "Arn")}
    assert sse["BucketKeyEnabled"] is True
    assert b["VersioningConfiguration"] == {"Status": "Enabled"}
    assert b["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True,
        "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    assert b["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    rules = {r["Id"]: r for r in b["LifecycleConfiguration"]["Rules"]}
    main = rules["evidence-tiering-and-expiry"]
    assert main["Status"] == "Enabled"
    assert main["ExpirationInDays"] == ref("EvidenceRetentionDays")
    assert [t["StorageClass"] for t in main["Transitions"]] == ["STANDARD_IA", "GLACIER_IR"]
    assert main["NoncurrentVersionExpiration"]["NoncurrentDays"] > 0
    assert main["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] > 0
    assert rules["remove-expired-delete-markers"]["ExpiredObjectDeleteMarker"] is True
    # Object Lock only when asked for, in GOVERNANCE mode
    assert b["ObjectLockEnabled"] == {"Fn::If": ["ObjectLockOn", True, ref("AWS::NoValue")]}
    cond, lock, off = b["ObjectLockConfiguration"]["Fn::If"]
    assert cond == "ObjectLockOn" and off == ref("AWS::NoValue")
    assert lock["Rule"]["DefaultRetention"] == {"Mode": "GOVERNANCE", "Days": ref("ObjectLockRetentionDays")}


def test_evidence_bucket_policy_is_tls_only(translated):
    pol = translated["Resources"]["EvidenceBucketPolicy"]["Properties"]
    assert pol["Bucket"] == ref("EvidenceBucket")
    stmts = {s["Sid"]: s for s in pol["PolicyDocument"]["Statement"]}
    tls = stmts["DenyInsecureTransport"]
    assert tls["Effect"] == "Deny" and tls["Principal"] == "*" and tls["Action"] == "s3:*"
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert tls["Resource"] == [getatt("EvidenceBucket", "Arn"), {"Fn::Sub": "${EvidenceBucket.Arn}/*"}]
    assert stmts["DenyOutdatedTls"]["Condition"] == {"NumericLessThan": {"s3:TlsVersion": "1.2"}}
    # the only Allow statements are for CloudWatch Logs exports, account-bound
    allows = [s for s in pol["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert {s["Sid"] for s in allows} == {"CloudWatchLogsExportAclCheck", "CloudWatchLogsExportWrite"}
    for s in allows:
        assert s["Principal"] == LOGS_PRINCIPAL
        assert s["Condition"]["StringEquals"]["aws:SourceAccount"] == ref("AWS::AccountId")
        assert set(s["Condition"]["ArnLike"]) == {"aws:SourceArn"}   # values: test_log_export_bucket_policy


PREFIX_SETS = [
    ({}, ["/ecs/"], ["/aws/codebuild/"]),
    ({"LogGroupPrefixes": "/ecs/,/custom/", "BuildLogGroupPrefixes": "/aws/codebuild/,/ci/builds/"},
     ["/ecs/", "/custom/"], ["/aws/codebuild/", "/ci/builds/"]),
    ({"LogGroupPrefixes": "/a/,/b/,/c/,/d/,/e/"}, ["/a/", "/b/", "/c/", "/d/", "/e/"], ["/aws/codebuild/"]),
]


def log_group_arns(prefixes, suffix=""):
    return [f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{p}*{suffix}" for p in prefixes]


@pytest.mark.parametrize("params,prefixes,_build", PREFIX_SETS)
def test_log_export_bucket_policy(translated, params, prefixes, _build):
    """Same-account statements of "Export log data to Amazon S3 using the AWS
    CLI": the logs service principal may read the bucket ACL and put objects
    under incidents/ only, with bucket-owner-full-control, only for export
    tasks of this account's log groups under LogGroupPrefixes."""
    res = Resolver(translated, params).resources()
    stmts = {s["Sid"]: s for s in res["EvidenceBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]}
    acl = stmts["CloudWatchLogsExportAclCheck"]
    assert acl["Principal"] == RESOLVED_LOGS_PRINCIPAL
    assert acl["Action"] == "s3:GetBucketAcl"
    assert acl["Resource"] == "<GetAtt EvidenceBucket.Arn>"
    assert acl["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": log_group_arns(prefixes)},
    }
    put = stmts["CloudWatchLogsExportWrite"]
    assert put["Action"] == "s3:PutObject"
    assert put["Resource"] == "<GetAtt EvidenceBucket.Arn>/incidents/*"
    assert put["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT, "s3:x-amz-acl": "bucket-owner-full-control"},
        "ArnLike": {"aws:SourceArn": log_group_arns(prefixes)},
    }
    # the ACL condition only works because the bucket accepts that one ACL
    # under BucketOwnerEnforced; exports to an encrypted bucket need the key
    bucket = translated["Resources"]["EvidenceBucket"]["Properties"]
    assert bucket["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"


def key_statements(translated, params):
    res = Resolver(translated, params).resources()
    return {s["Sid"]: s for s in res["AutopilotKey"]["Properties"]["KeyPolicy"]["Statement"]}


@pytest.mark.parametrize("params,prefixes,_build", PREFIX_SETS)
def test_key_policy_lets_log_exports_use_the_bucket_key(translated, params, prefixes, _build):
    stmts = key_statements(translated, params)
    export = stmts["CloudWatchLogsExportToEvidenceBucket"]
    assert export["Principal"] == RESOLVED_LOGS_PRINCIPAL
    assert sorted(export["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert export["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": log_group_arns(prefixes)},
    }
    # the log-group encryption statement is bound to this stack's log groups'
    # encryption context and does not cover S3 (its context is aws:s3:arn)
    groups = stmts["CloudWatchLogsEncryptLogGroups"]
    assert groups["Condition"]["ArnLike"] == {
        "kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/autopilot-*"}


def test_key_policy_names_match_the_resources_it_protects(translated):
    """The key policy spells the topic, rule and alarm names out (a Ref would
    be a dependency cycle: they are encrypted with the key); the names must
    be the ones those resources get."""
    res = translated["Resources"]
    assert res["NotificationTopic"]["Properties"]["TopicName"] == {"Fn::Sub": "${AWS::StackName}-notifications"}
    for logical in RULES:
        assert res[logical]["Properties"]["Name"]["Fn::Sub"].startswith("${AWS::StackName}-")
    for logical, r in res.items():
        if r["Type"] == "AWS::CloudWatch::Alarm":
            assert r["Properties"]["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-"), logical
    for logical, r in res.items():
        if r["Type"] == "AWS::Logs::LogGroup":
            assert r["Properties"]["LogGroupName"]["Fn::Sub"].startswith("/aws/lambda/${AWS::StackName}-"), logical


OPT_OUT = {"StringNotEqualsIgnoreCaseIfExists": {"aws:ResourceTag/autopilot:mode": ["off", "dry-run"]}}


def test_bounded_actions_are_an_opt_out_by_tag(sam_template):
    """The condition shape on both ECS write statements, in the SAM source:
    a negated operator with IfExists (untagged services pass), both blocking
    values (NOR-ed by IAM), and no set operator on the single-valued tag key.
    Their evaluation is exercised in test_iam.py."""
    pol = sam_template["Resources"]["EcsBoundedActionsPolicy"]
    assert pol["Condition"] == "MutationsAllowed"
    stmts = {s["Sid"]: s for s in pol["Properties"]["PolicyDocument"]["Statement"]}
    assert set(stmts) == {"MutateServicesInScopeUnlessOptedOut", "StopDeploymentsOfServicesInScope",
                          "PassTaskRolesToEcsTasks"}
    # the PassRole statement is checked in test_pass_role_is_only_for_ecs_tasks_in_this_account
    for sid in ("MutateServicesInScopeUnlessOptedOut", "StopDeploymentsOfServicesInScope"):
        s = stmts[sid]
        assert s["Effect"] == "Allow"
        assert s["Condition"] == OPT_OUT, s["Sid"]
        # YAML 1.1 would read an unquoted off as false
        assert all(isinstance(v, str) for v in s["Condition"]["StringNotEqualsIgnoreCaseIfExists"][
            "aws:ResourceTag/autopilot:mode"])
    services = stmts["MutateServicesInScopeUnlessOptedOut"]
    assert sorted(services["Action"]) == ["ecs:StopServiceDeployment", "ecs:UpdateService"]
    deployments = stmts["StopDeploymentsOfServicesInScope"]
    assert deployments["Action"] == "ecs:StopServiceDeployment"
    # without Clusters: every service / deployment of this account and region, never "*"
    assert services["Resource"]["Fn::If"][2] == {
        "Fn::Sub": "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:service/*/*"}
    assert deployments["Resource"]["Fn::If"][2] == {
        "Fn::Sub": "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:service-deployment/*/*/*"}
    # with Clusters: one entry per cluster slot, per resource type
    assert len(services["Resource"]["Fn::If"][1]) == 10
    assert len(deployments["Resource"]["Fn::If"][1]) == 10
    # the policy reaches only the three functions that may act, and only with DryRun=false
    attached = {logical for logical, r in sam_template["Resources"].items()
                if r["Type"] == "AWS::IAM::Role"
                and {"Fn::If": ["MutationsAllowed", ref("EcsBoundedActionsPolicy"), ref("AWS::NoValue")]}
                in r["Properties"].get("ManagedPolicyArns", [])}
    assert attached == {"EcsEventsRole", "AlarmResponderRole", "RunbookRole"}
    assert sam_template["Conditions"]["MutationsAllowed"] == {"Fn::Equals": [ref("DryRun"), "false"]}


def _statements(node, path=()):
    """Every IAM policy statement in the template: (resource path, statement)."""
    if isinstance(node, dict):
        if "Effect" in node and ("Action" in node or "NotAction" in node):
            yield path, node
        for k, v in node.items():
            yield from _statements(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _statements(v, path + (i,))


def test_pass_role_is_only_for_ecs_tasks_in_this_account(sam_template):
    """ecs:UpdateService also authorises iam:PassRole (Service Authorization
    Reference, ECS, API operations table). One statement in the whole
    template grants it: in the bounded-actions policy (attached only to
    ecs-events, alarm-responder and runbook, only with DryRun=false; see the
    test above), only to ecs-tasks.amazonaws.com, on roles of this account
    matching TaskRolePattern, never on "*"."""
    found = []
    for path, s in _statements(sam_template["Resources"]):
        actions = s.get("Action", [])
        actions = actions if isinstance(actions, list) else [actions]
        assert "NotAction" not in s, path
        if any(a.lower().startswith("iam:") for a in actions):
            found.append((path, s))
    assert [path[0] for path, _ in found] == ["EcsBoundedActionsPolicy"], [p for p, _ in found]
    ((_, s),) = found
    assert s["Sid"] == "PassTaskRolesToEcsTasks"
    assert s["Effect"] == "Allow"
    assert s["Action"] == "iam:PassRole"
    assert s["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    assert s["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${TaskRolePattern}"}


def test_task_role_pattern_parameter(sam_template):
    p = sam_template["Parameters"]["TaskRolePattern"]
    assert p["Type"] == "String" and p["Default"] == "*"
    pattern = re.compile(p["AllowedPattern"])
    for ok in ("*", "ecs/*", "app-*", "ecs/app-*-task", "ecsTaskExecutionRole", "a.b@c+d=e_f"):
        assert pattern.fullmatch(ok), ok
    # empty, a leading slash (the ARN has none after role/), lists, whitespace,
    # anything that could leave the role/ prefix or this account
    for bad in ("", "/ecs/*", "a,b", "a b", "arn:aws:iam::111122223333:role/x", "x:y", "?"):
        assert not pattern.fullmatch(bad), bad
    groups = sam_template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    assert any("TaskRolePattern" in g["Parameters"] for g in groups)


def test_no_set_operator_on_resource_tags(sam_template):
    """aws:ResourceTag/<key> is single-valued: no set operator may qualify a
    condition on it (IAM User Guide, single-valued vs. multivalued keys:
    ForAnyValue is false when the key is absent, ForAllValues true, and set
    operators on single-valued keys can be overly permissive)."""
    def conditions(node):
        if isinstance(node, dict):
            if "Condition" in node and isinstance(node["Condition"], dict):
                yield node["Condition"]
            for v in node.values():
                yield from conditions(v)
        elif isinstance(node, list):
            for v in node:
                yield from conditions(v)

    found = 0
    for cond in conditions(sam_template["Resources"]):
        for operator, keys in cond.items():
            if not isinstance(keys, dict):
                continue
            for key in keys:
                if key.lower().startswith(("aws:resourcetag/", "ecs:resourcetag/")):
                    found += 1
                    assert not operator.startswith(("ForAnyValue:", "ForAllValues:")), (operator, key)
    # the bounded actions' two statements and the hook answers' one
    assert found == 3


def test_the_runbook_has_an_iam_authenticated_url_and_nothing_else_does(translated):
    """moto cannot create AWS::Lambda::Url (conftest.for_moto drops it): checked here."""
    urls = of_type(translated, "AWS::Lambda::Url")
    assert urls == {"RunbookFunctionUrl": {"Type": "AWS::Lambda::Url", "Properties": {
        "TargetFunctionArn": ref("RunbookFunction"), "AuthType": "AWS_IAM"}}}
    # No resource-based permission opens it: callers need their own
    # lambda:InvokeFunctionUrl (same account), and never an anonymous one.
    for name, perm in of_type(translated, "AWS::Lambda::Permission").items():
        p = perm["Properties"]
        assert p["Action"] != "lambda:InvokeFunctionUrl" and "FunctionUrlAuthType" not in p, name
    assert translated["Outputs"]["RunbookFunctionUrl"]["Value"] == getatt("RunbookFunctionUrl", "FunctionUrl")


def test_the_alarm_topic_and_the_runbook_callers_reach_the_functions(translated):
    for logical in BINARIES:
        env = translated["Resources"][logical]["Properties"]["Environment"]["Variables"]
        assert env["ALARM_TOPIC_ARNS"] == ref("AlarmSnsTopicArn")
        assert env["RUNBOOK_CALLERS"] == ref("RunbookCallers")
    p = translated["Parameters"]["RunbookCallers"]
    assert (p["Type"], p["Default"]) == ("String", "")


def test_the_key_and_the_state_table_outlive_the_stack(translated):
    """Deleting (or replacing) the stack keeps the action ledger and the key
    the evidence is encrypted with; the table also refuses a plain delete."""
    res = translated["Resources"]
    for logical in ("AutopilotKey", "StateTable"):
        assert (res[logical].get("DeletionPolicy"), res[logical].get("UpdateReplacePolicy")) == ("Retain", "Retain"), logical
    assert res["StateTable"]["Properties"]["DeletionProtectionEnabled"] is True


def test_tear_down_says_how_to_remove_the_retained_key_and_table_on_purpose():
    readme = (TEMPLATE.parent / "README.md").read_text()
    tear_down = readme.split("## Tear down", 1)[1].split("\n## ", 1)[0]
    for needed in ("aws dynamodb update-table", "--no-deletion-protection-enabled", "aws dynamodb delete-table",
                   "aws kms schedule-key-deletion", "--pending-window-in-days", "aws kms cancel-key-deletion"):
        assert needed in tear_down, needed


def test_state_table(translated):
    t = translated["Resources"]["StateTable"]["Properties"]
    assert t["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"},
                              {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert t["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"},
                                         {"AttributeName": "sk", "AttributeType": "S"},
                                         {"AttributeName": "open_index", "AttributeType": "S"},
                                         {"AttributeName": "open_since", "AttributeType": "N"}]
    assert t["GlobalSecondaryIndexes"] == [{
        "IndexName": "open-incident-keys",
        "KeySchema": [{"AttributeName": "open_index", "KeyType": "HASH"},
                      {"AttributeName": "open_since", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }]
    assert t["BillingMode"] == "PAY_PER_REQUEST"
    # moto drops these two: checked here.
    assert t["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert t["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert t["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS",
                                     "KMSMasterKeyId": getatt("AutopilotKey", "Arn")}


def test_topic_policy_and_subscriptions(translated):
    res = translated["Resources"]
    stmts = {s["Sid"]: s for s in res["NotificationTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]}
    assert stmts["DenyInsecureTransport"]["Effect"] == "Deny"
    cw = stmts["CloudWatchAlarmsOfThisAccount"]
    assert cw["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and cw["Action"] == "sns:Publish"
    email = res["NotificationEmailSubscription"]
    assert email["Condition"] == "HasNotificationEmail"
    assert email["Properties"] == {"TopicArn": ref("NotificationTopic"), "Protocol": "email",
                                   "Endpoint": ref("NotificationEmail")}
    alarm_sub = res["AlarmTopicSubscription"]
    assert alarm_sub["Condition"] == "HasAlarmSnsTopic"
    assert alarm_sub["Properties"]["Endpoint"] == getatt("AlarmResponderFunction", "Arn")
    assert alarm_sub["Properties"]["RedrivePolicy"] == {
        "deadLetterTargetArn": getatt("TriggerDeadLetterQueue", "Arn")}


def test_dead_letter_queue_policy_admits_exactly_the_rules(translated):
    stmts = translated["Resources"]["TriggerDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    events = [s for s in stmts if isinstance(s, dict) and s.get("Sid") == "EventBridgeRulesOfThisStack"][0]
    assert events["Principal"] == {"Service": "events.amazonaws.com"}
    assert events["Action"] == "sqs:SendMessage"
    arns = events["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert sorted(a["Fn::GetAtt"][0] for a in arns) == sorted(RULES)
    # the fleet bus's rules, in a statement of their own that exists with them
    (fleet,) = [s["Fn::If"] for s in stmts if isinstance(s, dict) and "Fn::If" in s
                and s["Fn::If"][0] == "FleetEnabled"]
    assert fleet[2] == {"Ref": "AWS::NoValue"}
    assert fleet[1]["Principal"] == {"Service": "events.amazonaws.com"}
    assert fleet[1]["Action"] == "sqs:SendMessage"
    assert sorted(a["Fn::GetAtt"][0] for a in fleet[1]["Condition"]["ArnEquals"]["aws:SourceArn"]) == sorted(FLEET_RULES)
    for queue in ("TriggerDeadLetterQueuePolicy", "FailedInvocationsQueuePolicy"):
        deny = [s for s in translated["Resources"][queue]["Properties"]["PolicyDocument"]["Statement"]
                if isinstance(s, dict) and s.get("Sid") == "DenyInsecureTransport"]
        assert deny and deny[0]["Effect"] == "Deny"


def test_key_policy_grants_services_not_everyone(translated):
    key = translated["Resources"]["AutopilotKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    principals = [s["Principal"] for s in Resolver(translated, {}).resources()["AutopilotKey"]["Properties"][
        "KeyPolicy"]["Statement"]]
    assert "*" not in principals
    services = {json.dumps(p["Service"]) for p in principals if "Service" in p}
    for needed in ("cloudwatch.amazonaws.com", "events.amazonaws.com"):
        assert json.dumps(needed) in services, needed


def test_every_log_group_is_encrypted_with_retention(translated):
    groups = of_type(translated, "AWS::Logs::LogGroup")
    assert len(groups) == len(BINARIES)
    for g in groups.values():
        assert g["Properties"]["RetentionInDays"] == ref("LogRetentionDays")
        assert g["Properties"]["KmsKeyId"] == getatt("AutopilotKey", "Arn")


def test_outputs(translated):
    outs = translated["Outputs"]
    for name in ("NotificationTopicArn", "EvidenceBucketName", "StateTableName",
                 "EcsEventsFunctionArn", "AlarmResponderFunctionArn", "PipelineEventsFunctionArn",
                 "ScheduledReportsFunctionArn", "RunbookFunctionArn"):
        assert name in outs, name


def test_no_yaml_aliases():
    """CloudFormation rejects YAML anchors/aliases; sam would silently expand them."""
    for n, line in enumerate(TEMPLATE.read_text().splitlines(), 1):
        code = line.split(" #", 1)[0]
        assert not re.search(r"(^|\s)[&*][A-Za-z]", code), f"line {n}: {line}"


def test_readme_documents_every_parameter_and_variable(sam_template):
    readme = (TEMPLATE.parent / "README.md").read_text()
    params = readme.split("## Parameters", 1)[1].split("\n## ", 1)[0]
    for name in sam_template["Parameters"]:
        assert f"`{name}`" in params, f"README.md, Parameters: {name} missing"
    env = readme.split("## Environment", 1)[1].split("\n## ", 1)[0]
    for var in ENV_CONTRACT | set(FLEET_ENV_PARAMETERS):
        assert f"| `{var}` |" in env, f"README.md, Environment: {var} missing"
    for var, default in CONTRACT_DEFAULTS.items():
        shown = f"`{default}`" if default else "empty"
        assert re.search(rf"\| `{var}` \| [^|]+ \| {re.escape(shown)} \|", env), (var, shown)
