"""Shared fixtures for the infrastructure tests.

The SAM template is translated with samtranslator (the library `sam` itself
uses) and the resulting plain CloudFormation template is deployed into moto's
CloudFormation, twice:

  unscoped  defaults: DryRun=true, all clusters, all alarms, no e-mail
  scoped    Clusters=prod,staging, DryRun=false, AlarmNamePrefix=prod-,
            e-mail, Object Lock, an existing alarm topic, concurrency 5,
            UpdateIntervalMinutes=30, TaskRolePattern=ecs/*

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
  - `!If [cond, x, !Ref AWS::NoValue]` inside a list leaves a null element
    where CloudFormation removes the element: `without_novalue` strips them;
  - AWS::IAM::Role.ManagedPolicyArns is ignored: `for_moto` re-expresses each
    attachment as the equivalent AWS::IAM::ManagedPolicy.Roles entry (which
    moto does apply) before deploying. The template keeps ManagedPolicyArns so
    that, in AWS, a role has its policies before any function using it exists.
"""

from __future__ import annotations

import io
import json
import os
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
}
ROLES = {
    "EcsEventsFunction": "EcsEventsRole",
    "AlarmResponderFunction": "AlarmResponderRole",
    "PipelineEventsFunction": "PipelineEventsRole",
    "ScheduledReportsFunction": "ScheduledReportsRole",
    "RunbookFunction": "RunbookRole",
}
RULES = {
    "EcsTaskStoppedRule": "ecs-task-stopped",
    "EcsServiceActionRule": "ecs-service-action",
    "EcsDeploymentRule": "ecs-deployment",
    "AlarmStateChangeRule": "alarm-state-change",
    "PipelineExecutionRule": "pipeline-execution",
    "PipelineStageRule": "pipeline-stage",
    "PipelineActionRule": "pipeline-action",
}
RULE_TARGET = {
    "EcsTaskStoppedRule": "EcsEventsFunction",
    "EcsServiceActionRule": "EcsEventsFunction",
    "EcsDeploymentRule": "EcsEventsFunction",
    "AlarmStateChangeRule": "AlarmResponderFunction",
    "PipelineExecutionRule": "PipelineEventsFunction",
    "PipelineStageRule": "PipelineEventsFunction",
    "PipelineActionRule": "PipelineEventsFunction",
}

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
    """Move Role.ManagedPolicyArns attachments onto ManagedPolicy.Roles."""
    t = json.loads(json.dumps(template))
    res = t["Resources"]
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


def without_novalue(value: Any) -> Any:
    """Drop the null list elements moto leaves for AWS::NoValue."""
    if isinstance(value, list):
        return [without_novalue(v) for v in value if v is not None]
    if isinstance(value, dict):
        return {k: without_novalue(v) for k, v in value.items()}
    return value


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
    params: dict[str, str]
    resources: dict[str, str] = field(default_factory=dict)  # logical id -> physical id
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def clusters(self) -> set[str] | None:
        c = self.params.get("Clusters", "")
        return set(c.split(",")) if c else None

    @property
    def alarm_prefix(self) -> str | None:
        return self.params.get("AlarmNamePrefix") or None


def _deploy(aws, translated: dict[str, Any], name: str, params: dict[str, str]) -> Stack:
    cfn = aws("cloudformation")
    cfn.create_stack(
        StackName=name,
        TemplateBody=json.dumps(for_moto(translated)),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    deadline = time.monotonic() + 60
    while True:
        desc = cfn.describe_stacks(StackName=name)["Stacks"][0]
        if not desc["StackStatus"].endswith("IN_PROGRESS") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert desc["StackStatus"] == "CREATE_COMPLETE", (desc["StackStatus"], desc.get("StackStatusReason"))
    stack = Stack(name=name, params=params)
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
    }
    return _deploy(aws, translated, f"autopilot-scoped-{uuid.uuid4().hex[:6]}", params)


@pytest.fixture(scope="session", params=["unscoped", "scoped"])
def stack(request) -> Stack:
    return request.getfixturevalue(request.param)
