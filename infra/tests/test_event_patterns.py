"""Every EventBridge rule pattern, as CloudFormation resolved it in the two
deployed stacks, against real-shaped sample events: matched or not, as
intended.

Matching engine: moto's EventBridge implementation. moto's TestEventPattern
API is not implemented (it raises NotImplementedError), so the patterns are
evaluated (1) with moto's own pattern engine, `moto.events.models.EventPattern`
(the code moto's PutEvents uses to route events to targets), and (2) end to end
through the running moto server: the same patterns as rules on a probe event
bus with one SQS queue per rule, the events sent with PutEvents, the queues
read back. test_moto_engine_semantics pins down the operators the template
relies on (prefix, anything-but/prefix, $or, arrays) to EventBridge's
documented behaviour, so a moto change that breaks them fails here first.

Events:
  infra/tests/events/**.json   AWS-documented shapes written for these tests,
                               with the intended routing in EXPECTED below;
  tests/fixtures/**.json       the Rust side's real payloads, when present.
                               Those are checked against `intent()`, which
                               states in plain terms what each function is for.
Only EventBridge envelopes (objects with "source" and "detail-type") are
routed by rules; other fixtures (SNS-wrapped alarms, Lambda alarm-action
payloads, runbook payloads, malformed input) are not rule traffic and are
skipped.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from pathlib import Path

import pytest
from moto.events.models import EventPattern

from conftest import ACCOUNT, OWN_EVENTS, REGION, RULES, SHARED_FIXTURES, without_novalue

T, SA, D = "EcsTaskStoppedRule", "EcsServiceActionRule", "EcsDeploymentRule"
H = "EcsHookRule"
AL = "AlarmStateChangeRule"
PE, PS, PA = "PipelineExecutionRule", "PipelineStageRule", "PipelineActionRule"

# file -> (rules matched in the unscoped stack, rules matched in the scoped stack
#          [Clusters=prod,staging, AlarmNamePrefix=prod-])
EXPECTED = {
    "ecs/task-stopped-service-essential-exit.json": ({T}, {T}),
    "ecs/task-stopped-service-image-pull.json": ({T}, {T}),
    "ecs/task-stopped-service-elb-health-check.json": ({T}, {T}),
    "ecs/task-stopped-staging-oom.json": ({T}, {T}),
    "ecs/task-stopped-dev-cluster.json": ({T}, set()),
    "ecs/task-running-service.json": (set(), set()),
    "ecs/task-deprovisioning-service.json": (set(), set()),
    "ecs/task-stopped-standalone.json": (set(), set()),
    "ecs/container-instance-state-change.json": (set(), set()),
    "ecs/service-action-steady-state.json": ({SA}, {SA}),
    "ecs/service-action-task-start-impaired.json": ({SA}, {SA}),
    "ecs/service-action-placement-failure.json": ({SA}, {SA}),
    "ecs/service-action-configuration-failure.json": ({SA}, {SA}),
    "ecs/service-action-desired-count-updated.json": (set(), set()),
    "ecs/service-action-capacity-provider-steady-state.json": (set(), set()),
    "ecs/service-action-operation-throttled.json": (set(), set()),
    "ecs/service-action-steady-state-dev-cluster.json": ({SA}, set()),
    "ecs/deployment-in-progress.json": ({D}, {D}),
    "ecs/deployment-rollback-in-progress.json": ({D}, {D}),
    "ecs/deployment-completed.json": ({D}, {D}),
    "ecs/deployment-failed.json": ({D}, {D}),
    "ecs/deployment-failed-dev-cluster.json": ({D}, set()),
    "ecs/deployment-failed-prod-like-cluster.json": ({D}, set()),
    "ecs/hook-awaiting-action.json": ({H}, {H}),
    "ecs/hook-awaiting-action-dev-cluster.json": ({H}, set()),
    "ecs/hook-succeeded.json": (set(), set()),
    "alarm/metric-alarm-alarm.json": ({AL}, {AL}),
    "alarm/metric-alarm-ok.json": ({AL}, {AL}),
    "alarm/metric-alarm-insufficient-data.json": (set(), set()),
    "alarm/composite-alarm-alarm.json": ({AL}, {AL}),
    "alarm/other-team-alarm.json": ({AL}, set()),
    "pipeline/execution-failed.json": ({PE}, {PE}),
    "pipeline/execution-succeeded.json": ({PE}, {PE}),
    "pipeline/execution-started.json": (set(), set()),
    "pipeline/execution-superseded.json": (set(), set()),
    "pipeline/stage-failed.json": ({PS}, {PS}),
    "pipeline/stage-succeeded.json": (set(), set()),
    "pipeline/action-build-failed.json": ({PA}, {PA}),
    "pipeline/action-build-started.json": (set(), set()),
    "pipeline/action-approval-started.json": ({PA}, {PA}),
    "pipeline/action-approval-succeeded.json": (set(), set()),
    "other/ec2-instance-state-change.json": (set(), set()),
}

ECS_SERVICE_ACTIONS_HANDLED = {
    "SERVICE_STEADY_STATE", "SERVICE_TASK_START_IMPAIRED", "SERVICE_TASK_PLACEMENT_FAILURE",
    "SERVICE_TASK_CONFIGURATION_FAILURE", "SERVICE_DISCOVERY_INSTANCE_UNHEALTHY",
    "VPC_LATTICE_TARGET_UNHEALTHY", "SERVICE_HEALTH_UNKNOWN",
}
DEPLOYMENT_EVENTS = {"SERVICE_DEPLOYMENT_IN_PROGRESS", "SERVICE_DEPLOYMENT_COMPLETED", "SERVICE_DEPLOYMENT_FAILED"}


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def moto_matches(pattern: dict, event: dict) -> bool:
    """moto's EventBridge pattern engine (what its PutEvents routes with)."""
    return EventPattern.load(json.dumps(pattern)).matches_event(event)


_ARN = re.compile(r"arn:aws:(ecs|cloudwatch|codepipeline):[a-z0-9-]+:\d{12}:")


def localize(event):
    """Events recorded in another account/region, as if they came from the
    account and region the stacks are deployed in (moto's): the envelope's
    `account` (every rule requires this account) and the ARNs (the cluster
    filters)."""
    out = json.loads(_ARN.sub(rf"arn:aws:\1:{REGION}:{ACCOUNT}:", json.dumps(event)))
    if isinstance(out, dict) and "account" in out:
        out["account"] = ACCOUNT
    return out


OTHER_ACCOUNT = "210987654321"


def from_another_account(event):
    """The same event as another account's EventBridge would forward it:
    its `account` and every ARN in it name that account (only cluster,
    service and alarm names stay equal to ours)."""
    text = json.dumps(event).replace(ACCOUNT, OTHER_ACCOUNT)
    out = json.loads(re.sub(r"(arn:aws:[a-z0-9-]+:[a-z0-9-]*:)\d{12}:", rf"\g<1>{OTHER_ACCOUNT}:", text))
    out["account"] = OTHER_ACCOUNT
    return out


def is_envelope(event) -> bool:
    return isinstance(event, dict) and "source" in event and "detail-type" in event


def matched_rules(patterns: dict, event: dict) -> set[str]:
    return {rule for rule, pattern in patterns.items() if moto_matches(pattern, event)}


def intent(event, stack) -> set[str]:
    """Which rule should route this event, in the terms of docs/ARCHITECTURE.md: ecs-events
    wants STOPPED tasks started by a service, the service actions and the
    deployment state changes it acts on and deployments paused at a hook; alarm-responder wants alarms in scope
    entering ALARM or OK (never this stack's own); pipeline-events wants failed
    or succeeded executions, failed stages, failed actions and approvals that
    started waiting. With Clusters set, only events of those clusters. Never
    an event of another account."""
    src, dtype, d = event.get("source"), event.get("detail-type"), event.get("detail")
    if not isinstance(d, dict) or event.get("account") != ACCOUNT:
        return set()   # only this account's events, whatever they say

    def cluster_in_scope(arn, kind):
        if stack.clusters is None:
            return True
        m = re.fullmatch(rf"arn:aws:ecs:{REGION}:{ACCOUNT}:{kind}/([^/]+)(/.*)?", str(arn))
        return bool(m) and m.group(1) in stack.clusters and (kind == "cluster" or bool(m.group(2)))

    if src == "aws.ecs":
        if dtype == "ECS Task State Change":
            group = d.get("group")
            ok = d.get("lastStatus") == "STOPPED" and isinstance(group, str) and group.startswith("service:")
            return {T} if ok and cluster_in_scope(d.get("clusterArn"), "cluster") else set()
        if dtype == "ECS Service Action":
            ok = d.get("eventName") in ECS_SERVICE_ACTIONS_HANDLED
            return {SA} if ok and cluster_in_scope(d.get("clusterArn"), "cluster") else set()
        if dtype == "ECS Deployment State Change":
            resources = event.get("resources") or []
            ok = d.get("eventName") in DEPLOYMENT_EVENTS
            scoped = stack.clusters is None or any(cluster_in_scope(r, "service") for r in resources)
            return {D} if ok and scoped else set()
        if dtype == "ECS Hook State Change":
            # A deployment paused at a PAUSE hook waits for a person; the other hook states ask nothing.
            resources = event.get("resources") or []
            ok = d.get("eventName") == "HOOK_AWAITING_ACTION"
            scoped = stack.clusters is None or any(cluster_in_scope(r, "service-deployment") for r in resources)
            return {H} if ok and scoped else set()
        return set()
    if src == "aws.cloudwatch" and dtype == "CloudWatch Alarm State Change":
        name, state = d.get("alarmName"), (d.get("state") or {}).get("value")
        if state not in ("ALARM", "OK") or not isinstance(name, str):
            return set()
        if stack.alarm_prefix:
            return {AL} if name.startswith(stack.alarm_prefix) else set()
        return set() if name.startswith(stack.name + "-") else {AL}
    if src == "aws.codepipeline":
        state = d.get("state")
        if dtype == "CodePipeline Pipeline Execution State Change":
            return {PE} if state in ("FAILED", "SUCCEEDED") else set()
        if dtype == "CodePipeline Stage Execution State Change":
            return {PS} if state == "FAILED" else set()
        if dtype == "CodePipeline Action Execution State Change":
            category = (d.get("type") or {}).get("category")
            return {PA} if state == "FAILED" or (state == "STARTED" and category == "Approval") else set()
    return set()


def load(path: Path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def patterns(aws, unscoped, scoped):
    """{stack name: {rule logical id: pattern as deployed}}"""
    events = aws("events")
    out = {}
    for st in (unscoped, scoped):
        out[st.name] = {
            logical: without_novalue(json.loads(events.describe_rule(Name=f"{st.name}-{suffix}")["EventPattern"]))
            for logical, suffix in RULES.items()
        }
    return out


# ---------------------------------------------------------------------------
# moto's engine behaves like EventBridge for the operators used here
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("pattern,event,expected", [
    # prefix (EventBridge: string starts with)
    ({"detail": {"group": [{"prefix": "service:"}]}}, {"detail": {"group": "service:api"}}, True),
    ({"detail": {"group": [{"prefix": "service:"}]}}, {"detail": {"group": "family:api"}}, False),
    ({"detail": {"group": [{"prefix": "service:"}]}}, {"detail": {}}, False),
    ({"detail": {"group": [{"prefix": "service:"}]}}, {"detail": {"group": "SERVICE:api"}}, False),
    # anything-but with prefix: matches other values, not the prefix, not a missing field
    ({"detail": {"n": [{"anything-but": {"prefix": "stk-"}}]}}, {"detail": {"n": "prod-cpu"}}, True),
    ({"detail": {"n": [{"anything-but": {"prefix": "stk-"}}]}}, {"detail": {"n": "stk-errors"}}, False),
    ({"detail": {"n": [{"anything-but": {"prefix": "stk-"}}]}}, {"detail": {}}, False),
    # values in a list are OR-ed, fields AND-ed, nesting follows the event
    ({"source": ["a"], "detail": {"s": {"v": ["ALARM", "OK"]}}}, {"source": "a", "detail": {"s": {"v": "OK"}}}, True),
    ({"source": ["a"], "detail": {"s": {"v": ["ALARM", "OK"]}}}, {"source": "b", "detail": {"s": {"v": "OK"}}}, False),
    ({"detail": {"s": {"v": ["ALARM"]}}}, {"detail": {"s": {"v": "INSUFFICIENT_DATA"}}}, False),
    # $or inside detail
    ({"detail": {"$or": [{"state": ["FAILED"]}, {"state": ["STARTED"], "type": {"category": ["Approval"]}}]}},
     {"detail": {"state": "STARTED", "type": {"category": "Approval"}}}, True),
    ({"detail": {"$or": [{"state": ["FAILED"]}, {"state": ["STARTED"], "type": {"category": ["Approval"]}}]}},
     {"detail": {"state": "STARTED", "type": {"category": "Build"}}}, False),
    ({"detail": {"$or": [{"state": ["FAILED"]}, {"state": ["STARTED"], "type": {"category": ["Approval"]}}]}},
     {"detail": {"state": "FAILED", "type": {"category": "Build"}}}, True),
    # an array in the event matches if any element matches (resources)
    ({"resources": [{"prefix": "arn:x:service/prod/"}]}, {"resources": ["arn:y", "arn:x:service/prod/api"]}, True),
    ({"resources": [{"prefix": "arn:x:service/prod/"}]}, {"resources": ["arn:x:service/production/api"]}, False),
    # exact strings are case-sensitive
    ({"detail": {"lastStatus": ["STOPPED"]}}, {"detail": {"lastStatus": "stopped"}}, False),
])
def test_moto_engine_semantics(pattern, event, expected):
    assert moto_matches(pattern, event) is expected


# ---------------------------------------------------------------------------
# own sample events, explicit expectations
# ---------------------------------------------------------------------------
def test_every_own_event_has_an_expectation():
    files = {str(p.relative_to(OWN_EVENTS)) for p in OWN_EVENTS.rglob("*.json")}
    assert files == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_own_events(name, patterns, unscoped, scoped):
    event = load(OWN_EVENTS / name)
    for st, expected in zip((unscoped, scoped), EXPECTED[name]):
        got = matched_rules(patterns[st.name], event)
        assert got == expected, f"{st.name}: {name} matched {got or 'nothing'}, intended {expected or 'nothing'}"
        # and the plain-words intent agrees with the table
        assert intent(event, st) == expected


def test_own_self_alarms_never_reach_the_alarm_responder(patterns, unscoped, scoped):
    for st in (unscoped, scoped):
        event = load(OWN_EVENTS / "alarm/metric-alarm-alarm.json")
        name = f"{st.name}-ecs-events-needs-person"
        event["detail"]["alarmName"] = name
        event["resources"] = [f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"]
        assert matched_rules(patterns[st.name], event) == set()


@pytest.mark.parametrize("name", sorted(n for n, (u, sc) in EXPECTED.items() if u or sc))
def test_the_same_event_from_another_account_matches_no_rule(name, patterns, unscoped, scoped):
    """Every event a rule routes, forwarded from another account (its
    `account` and ARNs that account's, names equal to ours), reaches no
    function of either stack."""
    event = from_another_account(load(OWN_EVENTS / name))
    assert event["account"] == OTHER_ACCOUNT and ACCOUNT not in json.dumps(event)
    for st in (unscoped, scoped):
        assert matched_rules(patterns[st.name], event) == set(), (st.name, name)
        assert intent(event, st) == set()


def test_every_rule_pattern_requires_this_account(patterns):
    for stack_patterns in patterns.values():
        for rule, pattern in stack_patterns.items():
            assert pattern["account"] == [ACCOUNT], rule


def test_each_rule_is_exercised_by_a_match_and_a_near_miss():
    """Guard against a vacuous table: every rule has at least one event it
    matches and one same-source event it must not."""
    for rule in RULES:
        hits = [n for n, (u, _) in EXPECTED.items() if rule in u]
        assert hits, rule
    assert len([n for n, (u, _) in EXPECTED.items() if not u]) >= 12


# ---------------------------------------------------------------------------
# the Rust side's fixtures (tests/fixtures), when present
# ---------------------------------------------------------------------------
SHARED = sorted(SHARED_FIXTURES.rglob("*.json")) if SHARED_FIXTURES.is_dir() else []
SHARED_ENVELOPES = []
for _p in SHARED:
    try:
        _ev = load(_p)
    except (ValueError, UnicodeDecodeError):
        continue
    if is_envelope(_ev):
        SHARED_ENVELOPES.append(_p)


@pytest.mark.parametrize("path", SHARED_ENVELOPES, ids=lambda p: str(p.relative_to(SHARED_FIXTURES)))
def test_shared_fixture(path, patterns, unscoped, scoped):
    event = localize(load(path))
    for st in (unscoped, scoped):
        got = matched_rules(patterns[st.name], event)
        want = intent(event, st)
        assert got == want, f"{st.name}: {path.name} matched {got or 'nothing'}, intended {want or 'nothing'}"
    foreign = from_another_account(load(path))
    for st in (unscoped, scoped):
        assert matched_rules(patterns[st.name], foreign) == set(), f"{st.name}: {path.name} of another account"


# ---------------------------------------------------------------------------
# end to end through the moto server: PutEvents -> rule -> SQS
# ---------------------------------------------------------------------------
def _key(event) -> str:
    return json.dumps([event["source"], event["detail-type"], event.get("resources", []), event["detail"]],
                      sort_keys=True)


@pytest.mark.parametrize("which", ["unscoped", "scoped"])
def test_routing_through_the_moto_server(which, request, aws, patterns):
    st = request.getfixturevalue(which)
    events, sqs = aws("events"), aws("sqs")
    bus = f"probe-{uuid.uuid4().hex[:8]}"
    events.create_event_bus(Name=bus)
    queues = {}
    for rule, pattern in patterns[st.name].items():
        url = sqs.create_queue(QueueName=f"{bus}-{rule}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(pattern))
        events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "probe", "Arn": arn}])
        queues[rule] = url

    samples = {name: load(OWN_EVENTS / name) for name in EXPECTED}
    keys = {_key(ev): name for name, ev in samples.items()}
    assert len(keys) == len(samples), "sample events must differ in source/detail-type/resources/detail"
    for name, ev in samples.items():
        # (AWS refuses "aws.*" sources in PutEvents; moto accepts them, which is
        # what lets the service events be replayed here.)
        resp = events.put_events(Entries=[{
            "EventBusName": bus, "Source": ev["source"], "DetailType": ev["detail-type"],
            "Resources": ev.get("resources", []), "Detail": json.dumps(ev["detail"])}])
        assert resp["FailedEntryCount"] == 0, resp

    routed = {name: set() for name in samples}
    for rule, url in queues.items():
        while True:
            msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not msgs:
                break
            for m in msgs:
                routed[keys[_key(json.loads(m["Body"]))]].add(rule)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    column = 0 if which == "unscoped" else 1
    assert routed == {name: EXPECTED[name][column] for name in samples}
