"""Self-alarms must reach the pager.

CloudWatch publishes the automation's own alarms (<stack>-*-needs-person,
-throttles, -not-empty) to the notification topic without message
attributes; the functions' notifications carry `severity` (and cluster,
service, cause, kind). A pager subscription filtered on
{"severity": ["SEV1", "SEV2"]} alone therefore drops "the automation itself
is broken". The documented pager filter policy (infra/pager-filter-policy.json,
shown verbatim in infra/README.md, used by the template's PagerEmail
subscription) also passes every message that has no severity attribute.

Proven against moto's SNS -> SQS delivery, whose filter-policy matcher is
faithful (TESTBED.md), including `$or` and `exists`.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest

from conftest import ACCOUNT, INFRA, REGION

POLICY_FILE = INFRA / "pager-filter-policy.json"
README = INFRA / "README.md"
MARKER = "<!-- pager-filter-policy: infra/pager-filter-policy.json -->"
# The policy README.md showed before: drops every self-alarm.
SEVERITY_ONLY = {"severity": ["SEV1", "SEV2"]}


def policy_text() -> str:
    return POLICY_FILE.read_text()


def readme_policy_block() -> str:
    text = README.read_text()
    assert text.count(MARKER) == 1, f"README.md must show the pager policy once, after {MARKER}"
    m = re.search(re.escape(MARKER) + r"\s*```json\n(.*?)```", text, re.S)
    assert m, "the marker must be followed by a ```json block"
    return m.group(1)


def test_readme_shows_the_pager_filter_policy_verbatim():
    assert readme_policy_block().strip() == policy_text().strip()
    # and it is the policy, not something that merely parses
    assert json.loads(policy_text()) == {
        "$or": [{"severity": ["SEV1", "SEV2"]}, {"severity": [{"exists": False}]}]}


def test_the_pager_subscription_of_the_template_uses_it(translated):
    sub = translated["Resources"]["PagerEmailSubscription"]
    assert sub["Type"] == "AWS::SNS::Subscription"
    assert sub["Condition"] == "HasPagerEmail"
    p = sub["Properties"]
    assert p["TopicArn"] == {"Ref": "NotificationTopic"}
    assert p["Protocol"] == "email" and p["Endpoint"] == {"Ref": "PagerEmail"}
    assert p["FilterPolicyScope"] == "MessageAttributes"
    assert p["FilterPolicy"] == json.loads(policy_text())
    # the self-alarms publish to the topic this subscription listens on
    for logical, r in translated["Resources"].items():
        if r["Type"] == "AWS::CloudWatch::Alarm":
            assert r["Properties"]["AlarmActions"] == [{"Ref": "NotificationTopic"}], logical


def attrs(**values: str) -> dict:
    return {k: {"DataType": "String", "StringValue": v} for k, v in values.items()}


def self_alarm(stack: str) -> tuple[str, str]:
    """Subject and body as CloudWatch publishes an alarm to SNS (no attributes)."""
    name = f"{stack}-ecs-events-needs-person"
    body = {
        "AlarmName": name,
        "AlarmDescription": "ecs-autopilot ecs-events: an invocation failed in a way that needs a person "
                            "(configuration, or AWS refusing a call for good); see its log group (decision=error)",
        "AWSAccountId": ACCOUNT,
        "AlarmConfigurationUpdatedTimestamp": "2026-11-20T09:00:00.000+0000",
        "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed: 1 datapoint [2.0 (20/11/26 14:00:00)] was greater than the "
                          "threshold (0.0).",
        "StateChangeTime": "2026-11-20T14:05:05.551+0000",
        "Region": "US East (N. Virginia)",
        "AlarmArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}",
        "OldStateValue": "OK",
        "OKActions": [f"arn:aws:sns:{REGION}:{ACCOUNT}:{stack}-notifications"],
        "AlarmActions": [f"arn:aws:sns:{REGION}:{ACCOUNT}:{stack}-notifications"],
        "InsufficientDataActions": [],
        "Trigger": {"MetricName": "NeedsPerson", "Namespace": "EcsAutopilot", "StatisticType": "Statistic",
                    "Statistic": "SUM", "Unit": None,
                    "Dimensions": [{"value": stack, "name": "Stack"}, {"value": "ecs-events", "name": "Function"}],
                    "Period": 300, "EvaluationPeriods": 1, "ComparisonOperator": "GreaterThanThreshold",
                    "Threshold": 0.0, "TreatMissingData": "notBreaching", "EvaluateLowSampleCountPercentile": ""},
    }
    return f'ALARM: "{name}" in US East (N. Virginia)', json.dumps(body)


def drain(sqs, url) -> list[dict]:
    out = []
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not msgs:
            return out
        for m in msgs:
            out.append(json.loads(m["Body"]))   # the SNS envelope (raw delivery off)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def subscribe_queue(aws, topic_arn: str, filter_policy: str) -> str:
    sqs = aws("sqs")
    url = sqs.create_queue(QueueName=f"pager-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn,
                         Attributes={"FilterPolicy": filter_policy, "FilterPolicyScope": "MessageAttributes"})
    return url


@pytest.fixture(scope="module")
def deliveries(aws):
    """Publish the same five messages to a topic with two subscribed queues:
    the documented pager policy, and severity-only. Returns the subjects each
    received."""
    sns, sqs = aws("sns"), aws("sqs")
    stack = f"autopilot-{uuid.uuid4().hex[:6]}"
    topic = sns.create_topic(Name=f"{stack}-notifications")["TopicArn"]
    pager = subscribe_queue(aws, topic, policy_text())
    severity_only = subscribe_queue(aws, topic, json.dumps(SEVERITY_ONLY))

    common = dict(cluster="prod", service="api", kind="alarm")
    sns.publish(TopicArn=topic, Subject="[SEV3] prod/api: CPU above 70% - high-cpu", Message="warning",
                MessageAttributes=attrs(severity="SEV3", cause="high-cpu", **common))
    sns.publish(TopicArn=topic, Subject="[SEV1] prod/api: service down - unhealthy-targets", Message="down",
                MessageAttributes=attrs(severity="SEV1", cause="unhealthy-targets", **common))
    sns.publish(TopicArn=topic, Subject="[SEV2] prod/api: deployment failed - image pull error",
                Message="degraded", MessageAttributes=attrs(severity="SEV2", cause="image-pull", **common))
    sns.publish(TopicArn=topic, Subject="[INFO] daily health check", Message="report",
                MessageAttributes=attrs(severity="INFO", kind="report"))
    subject, body = self_alarm(stack)
    sns.publish(TopicArn=topic, Subject=subject, Message=body)   # as CloudWatch does: no attributes

    return {name: {m["Subject"] for m in drain(sqs, url)}
            for name, url in (("pager", pager), ("severity-only", severity_only))}, subject


def test_pager_policy_drops_sev3_and_info(deliveries):
    got, _ = deliveries
    assert not any(s.startswith(("[SEV3]", "[INFO]")) for s in got["pager"]), got["pager"]


def test_pager_policy_delivers_sev1_and_sev2(deliveries):
    got, _ = deliveries
    assert "[SEV1] prod/api: service down - unhealthy-targets" in got["pager"]
    assert "[SEV2] prod/api: deployment failed - image pull error" in got["pager"]


def test_pager_policy_delivers_the_self_alarm(deliveries):
    got, alarm_subject = deliveries
    assert alarm_subject in got["pager"]
    assert len(got["pager"]) == 3, got["pager"]


def test_severity_only_policy_silently_drops_the_self_alarm(deliveries):
    """Why the documented policy has the second branch: the obvious filter
    loses exactly the alarms that say the automation is broken."""
    got, alarm_subject = deliveries
    assert alarm_subject not in got["severity-only"]
    assert {s[:6] for s in got["severity-only"]} == {"[SEV1]", "[SEV2]"}
