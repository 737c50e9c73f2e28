"""Shared fixtures for the infrastructure tests.

The SAM template is translated with samtranslator (the library `sam` itself
uses) and the resulting plain CloudFormation template is deployed into moto's
CloudFormation, twice:

  unscoped  defaults: DryRun=true, all clusters, all alarms, no e-mail,
            LogGroupPrefixes=/ecs/, BuildLogGroupPrefixes=/aws/codebuild/
  scoped    Clusters=prod,staging, DryRun=false, AlarmNamePrefix=prod-,
            e-mail and pager e-mail, Object Lock, an existing alarm topic,
            concurrency 5, TaskRolePattern=ecs/*, LogGroupPrefixes=/ecs/,/custom/,
            BuildLogGroupPrefixes=/aws/codebuild/,/ci/builds/ and every
            tunable (windows, budgets, caps, namespace) off its default

moto is reached at $AWS_ENDPOINT_URL when it is set (scripts/check-infra.sh
starts one on a free loopback port); otherwise this file starts its own
`moto_server` on 127.0.0.1 and stops it at the end of the session.

What moto's CloudFormation does NOT create or keep (so those properties are
asserted on the translated template instead, in test_template.py):
  - AWS::CloudWatch::Alarm, AWS::Scheduler::Schedule, AWS::SNS::Subscription,
    AWS::SNS::TopicPolicy, AWS::S3::BucketPolicy, AWS::SQS::QueuePolicy,
    AWS::Lambda::EventInvokeConfig: skipped with a warning;
  - AWS::S3::Bucket: only BucketEncryption and Tags are applied (versioning,
    public access block, ownership, lifecycle and Object Lock are dropped);
  - AWS::DynamoDB::Table: TimeToLiveSpecification and
    PointInTimeRecoverySpecification are dropped;
  - AWS::Lambda::Function: Architectures is ignored (always x86_64) and
    LoggingConfig is not reported;
  - a Number parameter left at its default reaches a function's environment
    as a number, not a string (test_deploy.py compares strings);
  - a CommaDelimitedList parameter left at its default is not split into a
    list (Fn::Join then joins its characters): `_deploy` passes those
    defaults explicitly, as CloudFormation would resolve them;
  - `!If [cond, x, !Ref AWS::NoValue]` inside a list leaves a null element
    where CloudFormation removes the element: `without_novalue` strips them;
  - AWS::Lambda::Url is not supported at all (the stack fails): `for_moto`
    removes the runbook's function URL and its output;
  - AWS::IAM::Role.ManagedPolicyArns is ignored: `for_moto` re-expresses each
    attachment as the equivalent AWS::IAM::ManagedPolicy.Roles entry (which
    moto does apply) before deploying. The template keeps ManagedPolicyArns so
    that, in AWS, a role has its policies before any function using it exists.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

INFRA = Path(__file__).resolve().parents[1]
REPO = INFRA.parent
TEMPLATE = INFRA / "template.yaml"
OWN_EVENTS = INFRA / "tests" / "events"
SHARED_FIXTURES = REPO / "tests" / "fixtures"

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
# unique per session: the endpoint may be shared ($AWS_ENDPOINT_URL) and reused
ARTIFACT_BUCKET = f"autopilot-test-artifacts-{uuid.uuid4().hex[:8]}"
ARTIFACT_KEY = "bootstrap.zip"

BINARIES = {
    "EcsEventsFunction": "ecs-events",
    "AlarmResponderFunction": "alarm-responder",
    "PipelineEventsFunction": "pipeline-events",
    "ScheduledReportsFunction": "scheduled-reports",
    "RunbookFunction": "runbook",
    "DeploymentHookFunction": "deployment-hook",
}
ROLES = {
    "EcsEventsFunction": "EcsEventsRole",
    "AlarmResponderFunction": "AlarmResponderRole",
    "PipelineEventsFunction": "PipelineEventsRole",
    "ScheduledReportsFunction": "ScheduledReportsRole",
    "RunbookFunction": "RunbookRole",
    "DeploymentHookFunction": "DeploymentHookRole",
}
RULES = {
    "EcsTaskStoppedRule": "ecs-task-stopped",
    "EcsServiceActionRule": "ecs-service-action",
    "EcsDeploymentRule": "ecs-deployment",
    "EcsHookRule": "ecs-hook",
    "AlarmStateChangeRule": "alarm-state-change",
    "PipelineExecutionRule": "pipeline-execution",
    "PipelineStageRule": "pipeline-stage",
    "PipelineActionRule": "pipeline-action",
}
RULE_TARGET = {
    "EcsTaskStoppedRule": "EcsEventsFunction",
    "EcsServiceActionRule": "EcsEventsFunction",
    "EcsDeploymentRule": "EcsEventsFunction",
    "EcsHookRule": "EcsEventsFunction",
    "AlarmStateChangeRule": "AlarmResponderFunction",
    "PipelineExecutionRule": "PipelineEventsFunction",
    "PipelineStageRule": "PipelineEventsFunction",
    "PipelineActionRule": "PipelineEventsFunction",
}

# The fleet (infra/member.yaml forwards to the central fleet bus): the same
# eight rules on that bus, created only with MemberAccounts or OrganizationId.
FLEET_RULES = {f"Fleet{k}": f"fleet-{v}" for k, v in RULES.items()}
FLEET_RULE_TARGET = {f"Fleet{k}": v for k, v in RULE_TARGET.items()}
# The functions that act in member accounts (sts:AssumeRole on the member
# role) and get the fleet's variables; the deployment hook does neither.
FLEET_FUNCTIONS = {"EcsEventsFunction", "AlarmResponderFunction", "PipelineEventsFunction",
                   "ScheduledReportsFunction", "RunbookFunction"}
FLEET_ENV_PARAMETERS = {
    "ACCOUNTS": "MemberAccounts",
    "REGIONS": "FleetRegions",
    "MEMBER_ROLE_NAME": "MemberRoleName",
    "MEMBER_EXTERNAL_ID": "MemberExternalId",
}

# The environment contract: variable <- template parameter. The Rust side
# reads these names (shared/src/config.rs); every function gets all of them
# from Globals. Variables that name the stack's own resources are separate.
ENV_PARAMETERS = {
    "DRY_RUN": "DryRun",
    "CLUSTERS": "Clusters",
    "INCIDENT_WINDOW_MINUTES": "IncidentWindowMinutes",
    "UPDATE_INTERVAL_MINUTES": "UpdateIntervalMinutes",
    "CRASH_LOOP_THRESHOLD": "CrashLoopThreshold",
    "LOG_LINES": "LogLines",
    "ESCALATE_AFTER_MINUTES": "EscalateAfterMinutes",
    "ROLLBACK_MAX_PER_30M": "RollbackMaxPer30m",
    "ROLLBACK_MAX_PER_DAY": "RollbackMaxPerDay",
    "SCALE_MAX_PER_30M": "ScaleMaxPer30m",
    "SCALE_MAX_PER_DAY": "ScaleMaxPerDay",
    "ACTION_COOLDOWN_MINUTES": "ActionCooldownMinutes",
    "ROLLBACK_WINDOW_MINUTES": "RollbackWindowMinutes",
    "MAX_TASKS": "MaxTasks",
    "ALARM_NAME_PREFIX": "AlarmNamePrefix",
    "METRICS_NAMESPACE": "MetricsNamespace",
    "LOG_GROUP_PREFIXES": "LogGroupPrefixes",
    "BUILD_LOG_GROUP_PREFIXES": "BuildLogGroupPrefixes",
    "PRODUCTION_PIPELINES": "ProductionPipelines",
    "ALARM_TOPIC_ARNS": "AlarmSnsTopicArn",
    "RUNBOOK_CALLERS": "RunbookCallers",
    "HOOK_BAKE_SECONDS": "HookBakeSeconds",
    "HOOK_ON_READ_FAILURE": "HookOnReadFailure",
}
ENV_RESOURCES = {"NOTIFY_TOPIC_ARN", "EVIDENCE_BUCKET", "STATE_TABLE", "EVIDENCE_KMS_KEY_ID", "STACK_NAME"}
ENV_CONTRACT = ENV_RESOURCES | set(ENV_PARAMETERS)


def env_contract(logical: str) -> set[str]:
    """The variables a function gets: the Globals contract, plus the fleet's
    for the five functions that act in member accounts."""
    return ENV_CONTRACT | (set(FLEET_ENV_PARAMETERS) if logical in FLEET_FUNCTIONS else set())

os.environ.setdefault("AWS_DEFAULT_REGION", REGION)  # samtranslator needs a region


# ---------------------------------------------------------------------------
# Template loading and translation
# ---------------------------------------------------------------------------
def load_template() -> dict[str, Any]:
    """The SAM template as plain JSON types (short-form tags become Fn:: dicts)."""
    from cfnlint.decode import cfn_yaml

    return json.loads(json.dumps(cfn_yaml.load(str(TEMPLATE))))


class _NoManagedPolicies:
    """samtranslator asks for AWS managed policies only when a function uses
    `Policies:`; every function here has its own Role, so nothing is looked up
    (and nothing may be: the test runs offline)."""

    def load(self) -> dict[str, str]:
        return {}


def translate(template: dict[str, Any]) -> dict[str, Any]:
    from samtranslator.translator.transform import transform

    sam = json.loads(json.dumps(template))
    # `sam build` replaces CodeUri with the built artifact; here it points to a
    # dummy zip uploaded to moto's S3.
    sam["Globals"]["Function"]["CodeUri"] = f"s3://{ARTIFACT_BUCKET}/{ARTIFACT_KEY}"
    return transform(sam, {}, _NoManagedPolicies())


def for_moto(template: dict[str, Any]) -> dict[str, Any]:
    """Move Role.ManagedPolicyArns attachments onto ManagedPolicy.Roles, and
    leave out what moto's CloudFormation cannot create (AWS::Lambda::Url and
    the outputs reading it)."""
    t = json.loads(json.dumps(template))
    res = t["Resources"]
    for logical in [k for k, r in res.items() if r["Type"] in UNSUPPORTED_BY_MOTO]:
        del res[logical]
        for name in [n for n, o in t.get("Outputs", {}).items() if logical in json.dumps(o["Value"])]:
            del t["Outputs"][name]
    for logical, r in res.items():
        if r["Type"] != "AWS::IAM::Role":
            continue
        for entry in r["Properties"].pop("ManagedPolicyArns", []):
            if "Fn::If" in entry:
                cond, then, other = entry["Fn::If"]
                assert other == {"Ref": "AWS::NoValue"}, entry
                policy = then["Ref"]
                assert res[policy].get("Condition") == cond, (policy, cond)
            else:
                policy = entry["Ref"]
            assert res[policy]["Type"] == "AWS::IAM::ManagedPolicy", policy
            res[policy]["Properties"].setdefault("Roles", []).append({"Ref": logical})
    return t


# Resource types moto's CloudFormation refuses ("No Moto CloudFormation
# support"): removed before deploying, asserted on the translated template.
UNSUPPORTED_BY_MOTO = {"AWS::Lambda::Url"}


def without_novalue(value: Any) -> Any:
    """Drop the null list elements moto leaves for AWS::NoValue."""
    if isinstance(value, list):
        return [without_novalue(v) for v in value if v is not None]
    if isinstance(value, dict):
        return {k: without_novalue(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------------------
# A small resolver of CloudFormation's intrinsic functions, for what moto's
# CloudFormation does not keep or report (key, bucket and topic policies,
# subscriptions): the translated template evaluated for a parameter set the
# way CloudFormation would. Refs and GetAtts of resources stay symbolic
# ("<Ref Logical>", "<GetAtt Logical.Attr>"). test_iam.py checks it against
# moto's resolution of the same IAM statements.
# ---------------------------------------------------------------------------
NO_VALUE = object()


class Resolver:
    def __init__(self, template: dict[str, Any], params: dict[str, str], stack_name: str = "autopilot"):
        self.t = template
        self.values: dict[str, Any] = {}
        for name, p in template["Parameters"].items():
            v = params.get(name, p.get("Default"))
            assert v is not None, f"parameter {name} has no value"
            v = str(v)
            self.values[name] = [s.strip() for s in v.split(",")] if p["Type"] == "CommaDelimitedList" else v
        self.values.update({"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
                            "AWS::StackName": stack_name, "AWS::URLSuffix": "amazonaws.com"})
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self(self.t["Conditions"][name]))
        return self._conditions[name]

    def _sub(self, text: str, extra: dict[str, Any]) -> str:
        def one(m):
            key = m.group(1)
            if key.startswith("!"):
                return "${" + key[1:] + "}"
            if key in extra:
                return str(extra[key])
            if key in self.values:
                v = self.values[key]
                assert not isinstance(v, list), f"${{{key}}} of a list parameter"
                return v
            if "." in key:
                return f"<GetAtt {key}>"
            return f"<Ref {key}>"
        return re.sub(r"\$\{([^}]+)\}", one, text)

    def __call__(self, node: Any) -> Any:
        if isinstance(node, list):
            out = [self(v) for v in node]
            return [v for v in out if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (fn, arg), = node.items()
            if fn == "Ref":
                if arg == "AWS::NoValue":
                    return NO_VALUE
                return self.values.get(arg, f"<Ref {arg}>")
            if fn == "Fn::GetAtt":
                return f"<GetAtt {arg[0]}.{arg[1]}>"
            if fn == "Fn::If":
                cond, then, other = arg
                return self(then if self.condition(cond) else other)
            if fn == "Condition":
                return self.condition(arg)
            if fn == "Fn::Equals":
                a, b = (self(v) for v in arg)
                return str(a) == str(b)
            if fn == "Fn::Not":
                return not self(arg[0])
            if fn == "Fn::And":
                return all(self(v) for v in arg)
            if fn == "Fn::Or":
                return any(self(v) for v in arg)
            if fn == "Fn::Sub":
                if isinstance(arg, str):
                    return self._sub(arg, {})
                text, variables = arg
                return self._sub(text, {k: self(v) for k, v in variables.items()})
            if fn == "Fn::Join":
                delim, items = arg
                return delim.join(str(v) for v in self(items))
            if fn == "Fn::Split":
                delim, text = arg
                return self(text).split(delim)
            if fn == "Fn::Select":
                index, items = arg
                return self(items)[int(self(index))]
        out = {k: self(v) for k, v in node.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}

    def resources(self) -> dict[str, Any]:
        """The resources that exist for these parameters, resolved."""
        return {k: self(v) for k, v in self.t["Resources"].items()
                if "Condition" not in v or self.condition(v["Condition"])}


@pytest.fixture(scope="session")
def sam_template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="session")
def translated(sam_template) -> dict[str, Any]:
    return translate(sam_template)


# ---------------------------------------------------------------------------
# moto
# ---------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/moto-api/", timeout=1):
                return
        except Exception:
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto server at {url} did not become ready")
            time.sleep(0.1)


@pytest.fixture(scope="session")
def endpoint():
    url = os.environ.get("AWS_ENDPOINT_URL")
    if url:
        yield url
        return
    port = _free_port()
    moto_server = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(moto_server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def aws(endpoint):
    def client(service: str):
        return boto3.client(
            service,
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    return client


# ---------------------------------------------------------------------------
# Deployed stacks
# ---------------------------------------------------------------------------
@dataclass
class Stack:
    name: str
    params: dict[str, str]  # as passed (see _deploy for list defaults)
    defaults: dict[str, str] = field(default_factory=dict)  # template defaults, as strings
    resources: dict[str, str] = field(default_factory=dict)  # logical id -> physical id
    outputs: dict[str, str] = field(default_factory=dict)

    def param(self, name: str) -> str:
        """The value CloudFormation resolves: passed, else the default."""
        return self.params.get(name, self.defaults.get(name, ""))

    @property
    def clusters(self) -> set[str] | None:
        c = self.params.get("Clusters", "")
        return set(c.split(",")) if c else None

    @property
    def alarm_prefix(self) -> str | None:
        return self.params.get("AlarmNamePrefix") or None


def parameter_defaults(template: dict[str, Any]) -> dict[str, str]:
    return {k: str(v["Default"]) for k, v in template["Parameters"].items() if "Default" in v}


def moto_parameters(template: dict[str, Any], params: dict[str, str]) -> dict[str, str]:
    """`params` plus the defaults of list parameters, which moto does not split."""
    out = dict(params)
    for k, v in template["Parameters"].items():
        if v["Type"] == "CommaDelimitedList" and k not in out:
            out[k] = v["Default"]
    return out


def create_stack(aws, translated: dict[str, Any], name: str, params: dict[str, str]) -> None:
    aws("cloudformation").create_stack(
        StackName=name,
        TemplateBody=json.dumps(for_moto(translated)),
        Parameters=[{"ParameterKey": k, "ParameterValue": v}
                    for k, v in moto_parameters(translated, params).items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )


def wait_created(cfn, name: str) -> dict:
    """The stack's description once its creation has ended (60 s at most); it must have succeeded."""
    deadline = time.monotonic() + 60
    while True:
        desc = cfn.describe_stacks(StackName=name)["Stacks"][0]
        if not desc["StackStatus"].endswith("IN_PROGRESS") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert desc["StackStatus"] == "CREATE_COMPLETE", (desc["StackStatus"], desc.get("StackStatusReason"))
    return desc


def _deploy(aws, translated: dict[str, Any], name: str, params: dict[str, str]) -> Stack:
    cfn = aws("cloudformation")
    create_stack(aws, translated, name, params)
    desc = wait_created(cfn, name)
    stack = Stack(name=name, params=params, defaults=parameter_defaults(translated))
    paginator = cfn.get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=name):
        for r in page["StackResourceSummaries"]:
            if r.get("LogicalResourceId"):
                stack.resources[r["LogicalResourceId"]] = r.get("PhysicalResourceId", "")
    stack.outputs = {o["OutputKey"]: o["OutputValue"] for o in desc.get("Outputs", [])}
    return stack


@pytest.fixture(scope="session")
def artifact(aws):
    s3 = aws("s3")
    s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\nexit 0\n")
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=ARTIFACT_KEY, Body=buf.getvalue())


@pytest.fixture(scope="session")
def unscoped(aws, translated, artifact) -> Stack:
    return _deploy(aws, translated, f"autopilot-{uuid.uuid4().hex[:6]}", {})


# Every tunable off its default in the scoped stack, so that a parameter
# wired to the wrong variable shows.
SCOPED_TUNABLES = {
    "IncidentWindowMinutes": "45",
    "CrashLoopThreshold": "5",
    "LogLines": "40",
    "EscalateAfterMinutes": "30",
    "RollbackMaxPer30m": "2",
    "RollbackMaxPerDay": "4",
    "ScaleMaxPer30m": "5",
    "ScaleMaxPerDay": "12",
    "ActionCooldownMinutes": "7",
    "RollbackWindowMinutes": "90",
    "MaxTasks": "20",
    "MetricsNamespace": "Custom/Autopilot",
}


@pytest.fixture(scope="session")
def existing_alarm_topic(aws) -> str:
    return aws("sns").create_topic(Name=f"existing-alarms-{uuid.uuid4().hex[:6]}")["TopicArn"]


@pytest.fixture(scope="session")
def scoped(aws, translated, artifact, existing_alarm_topic) -> Stack:
    params = {
        "Clusters": "prod,staging",
        "DryRun": "false",
        "AlarmNamePrefix": "prod-",
        "NotificationEmail": "oncall@example.com",
        "EnableObjectLock": "true",
        "AlarmSnsTopicArn": existing_alarm_topic,
        "FunctionConcurrencyLimit": "5",
        "TimeZone": "Europe/Berlin",
        "LogRetentionDays": "90",
        "UpdateIntervalMinutes": "30",
        "TaskRolePattern": "ecs/*",
        "LogGroupPrefixes": "/ecs/,/custom/",
        "BuildLogGroupPrefixes": "/aws/codebuild/,/ci/builds/",
        "PagerEmail": "pager@example.com",
        **SCOPED_TUNABLES,
    }
    return _deploy(aws, translated, f"autopilot-scoped-{uuid.uuid4().hex[:6]}", params)


# The central stack of a fleet: two member accounts, two regions, an
# external id, a custom member role name, clusters and an alarm prefix (so
# the fleet rules' cluster and alarm filters are resolved too).
FLEET_PARAMS = {
    "MemberAccounts": "111111111111,222222222222",
    "FleetRegions": "eu-west-1,us-east-1",
    "MemberRoleName": "autopilot-member",
    "MemberExternalId": "fleet-external-id-0001",
    "Clusters": "prod,staging",
    "AlarmNamePrefix": "prod-",
}


@pytest.fixture(scope="session")
def fleet(aws, translated, artifact) -> Stack:
    return _deploy(aws, translated, f"autopilot-fleet-{uuid.uuid4().hex[:6]}", FLEET_PARAMS)


@pytest.fixture(scope="session", params=["unscoped", "scoped", "fleet"])
def stack(request) -> Stack:
    return request.getfixturevalue(request.param)
