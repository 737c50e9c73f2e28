"""The fleet (GitHub issue 23): infra/member.yaml, the StackSet every member
account and region deploys, and the central side of infra/template.yaml
(fleet bus, its rules, the member-role grant).

  - forwarding: the member rules' patterns against the sample events of
    infra/tests/events/ (moto's EventBridge engine, as test_event_patterns.py
    uses it), as the member's own events and as another account's; then the
    forwarded events against the central fleet rules as moto deployed them;
  - the member role's permissions against infra/iam-actions.json: exactly the
    five functions' calls on the member's own resources, no "*" action,
    mutations only on ECS services and their deployments under the opt-out;
  - the member role's TRUST policy, rendered for a parameter set and
    evaluated by a small model of IAM's rules (below) against requests: the
    five central function roles are allowed, every other principal refused;
    deliberately broken copies of the policy are caught;
  - member.yaml deployed into moto's CloudFormation, and its role's trust
    policy as moto resolved it evaluated the same way.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import uuid
from pathlib import Path

import pytest
from moto.events.models import EventPattern

from conftest import (ACCOUNT, FLEET_PARAMS, FLEET_RULE_TARGET, FLEET_RULES, INFRA, OWN_EVENTS, REGION, ROLES,
                      Resolver, wait_created, without_novalue)
from test_event_patterns import EXPECTED  # the sample events and their central routing

MEMBER_TEMPLATE = INFRA / "member.yaml"
TABLE = json.loads((INFRA / "iam-actions.json").read_text())

CENTRAL = "999999999999"       # the central account of the rendered member policies
MEMBER = "111111111111"        # a member account (first of FLEET_PARAMS' MemberAccounts)
STRANGER = "333333333333"      # an account that is not in the fleet
MEMBER_REGION = "eu-west-1"
CENTRAL_STACK = "autopilot"
EXTERNAL_ID = "fleet-external-id-0001"

# The five functions that assume the member role, by role logical id, and
# their central function binaries.
FLEET_ROLES = {"EcsEventsRole": "ecs-events", "AlarmResponderRole": "alarm-responder",
               "PipelineEventsRole": "pipeline-events", "ScheduledReportsRole": "scheduled-reports",
               "RunbookRole": "runbook"}
assert set(FLEET_ROLES) == {ROLES[f] for f in ROLES if f != "DeploymentHookFunction"}

# member rule -> the central default-bus rule whose pattern it copies
FORWARDS = {
    "ForwardEcsTaskStoppedRule": "EcsTaskStoppedRule",
    "ForwardEcsServiceActionRule": "EcsServiceActionRule",
    "ForwardEcsDeploymentRule": "EcsDeploymentRule",
    "ForwardEcsHookRule": "EcsHookRule",
    "ForwardAlarmStateChangeRule": "AlarmStateChangeRule",
    "ForwardPipelineExecutionRule": "PipelineExecutionRule",
    "ForwardPipelineStageRule": "PipelineStageRule",
    "ForwardPipelineActionRule": "PipelineActionRule",
}
CENTRAL_OF = {v: k for k, v in FORWARDS.items()}


def load_member() -> dict:
    from cfnlint.decode import cfn_yaml

    return json.loads(json.dumps(cfn_yaml.load(str(MEMBER_TEMPLATE))))


@pytest.fixture(scope="module")
def member_template() -> dict:
    return load_member()


MEMBER_PARAMS = {"CentralAccountId": CENTRAL, "CentralRegion": "us-east-1", "CentralStackName": CENTRAL_STACK,
                 "ExternalId": EXTERNAL_ID}


def render(template: dict, params: dict, region: str = "us-east-1", account: str = MEMBER) -> dict:
    """member.yaml's resources as CloudFormation resolves them for `params`
    in `account`/`region` (conftest's resolver, with the member's pseudo
    parameters)."""
    r = Resolver(template, params)
    r.values.update({"AWS::AccountId": account, "AWS::Region": region})
    return r.resources()


def as_list(v):
    return v if isinstance(v, list) else [v]


# ---------------------------------------------------------------------------
# Forwarding: the member rules
# ---------------------------------------------------------------------------
_ARN = re.compile(r"arn:aws:(ecs|cloudwatch|codepipeline):[a-z0-9-]+:\d{12}:")


def as_from(event: dict, account: str, region: str = MEMBER_REGION) -> dict:
    """A sample event as `account`'s EventBridge in `region` emits it."""
    out = json.loads(_ARN.sub(rf"arn:aws:\1:{region}:{account}:", json.dumps(event)))
    out["account"] = account
    out["region"] = region
    return out


def moto_matches(pattern: dict, event: dict) -> bool:
    return EventPattern.load(json.dumps(pattern)).matches_event(event)


def member_patterns(template: dict, params: dict | None = None) -> dict[str, dict]:
    res = render(template, params or MEMBER_PARAMS)
    return {k: v["Properties"]["EventPattern"] for k, v in res.items() if v["Type"] == "AWS::Events::Rule"}


def test_member_rules_copy_the_central_default_bus_patterns(member_template, sam_template):
    """Same source, detail-type and detail as the central rule (whose cluster
    and alarm-name scope the central fleet rules apply), for the member's own
    account."""
    central = Resolver(sam_template, {}).resources()
    member = member_patterns(member_template)
    assert set(member) == set(FORWARDS)
    for fwd, rule in FORWARDS.items():
        want = copy.deepcopy(central[rule]["Properties"]["EventPattern"])
        want["account"] = [MEMBER]
        want["detail"].pop("clusterArn", None)
        want["detail"].pop("alarmName", None)
        want.pop("resources", None)
        assert member[fwd] == want, fwd


def test_pipelines_are_forwarded_only_when_asked(member_template):
    off = member_patterns(member_template, {**MEMBER_PARAMS, "ForwardPipelineEvents": "false"})
    assert set(off) == {f for f in FORWARDS if "Pipeline" not in f}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_member_forwards_exactly_what_the_central_functions_take(name, member_template):
    """Unscoped central expectations (test_event_patterns.EXPECTED), with the
    alarm-name exclusion of the central stack's self-alarms moved to the
    central fleet rule: a member account has none of them."""
    event = as_from(json.loads((OWN_EVENTS / name).read_text()), MEMBER)
    patterns = member_patterns(member_template)
    got = {fwd for fwd, p in patterns.items() if moto_matches(p, event)}
    assert got == {CENTRAL_OF[r] for r in EXPECTED[name][0]}, name
    # the same event of another account (a default bus receiving forwarded
    # events) is not this member's to forward
    other = as_from(json.loads((OWN_EVENTS / name).read_text()), STRANGER)
    assert not {fwd for fwd, p in patterns.items() if moto_matches(p, other)}, name


def test_every_member_rule_targets_the_central_fleet_bus(member_template):
    for region in ("us-east-1", MEMBER_REGION):    # same region as the central stack, and another
        res = render(member_template, MEMBER_PARAMS, region=region)
        for fwd in FORWARDS:
            (target,) = res[fwd]["Properties"]["Targets"]
            assert target["Arn"] == f"arn:aws:events:us-east-1:{CENTRAL}:event-bus/{CENTRAL_STACK}-fleet"
            assert target["RoleArn"] == "<GetAtt ForwardRole.Arn>"
            assert target["DeadLetterConfig"] == {"Arn": "<GetAtt ForwardDeadLetterQueue.Arn>"}
            assert target["RetryPolicy"] == {"MaximumRetryAttempts": 24, "MaximumEventAgeInSeconds": 3600}
        named = render(member_template, {**MEMBER_PARAMS, "CentralBusName": "custom-bus"}, region=region)
        assert named["ForwardEcsHookRule"]["Properties"]["Targets"][0]["Arn"].endswith(":event-bus/custom-bus")


def test_the_forward_role_may_only_put_events_on_that_bus(member_template):
    res = render(member_template, MEMBER_PARAMS, region=MEMBER_REGION)
    role = res["ForwardRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": MEMBER}}
    stmts = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert stmts == [{"Sid": "PutEventsOnTheCentralFleetBus", "Effect": "Allow", "Action": "events:PutEvents",
                      "Resource": f"arn:aws:events:us-east-1:{CENTRAL}:event-bus/{CENTRAL_STACK}-fleet"}]


def test_the_forward_dead_letter_queue_admits_only_the_forward_rules(member_template):
    res = render(member_template, MEMBER_PARAMS)
    stmts = res["ForwardDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (allow,) = [s for s in stmts if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "events.amazonaws.com"}
    assert sorted(allow["Condition"]["ArnEquals"]["aws:SourceArn"]) == sorted(f"<GetAtt {f}.Arn>" for f in FORWARDS)
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in stmts)
    assert res["ForwardDeadLetterQueue"]["Properties"]["SqsManagedSseEnabled"] is True


# ---------------------------------------------------------------------------
# The central side: fleet bus and fleet rules
# ---------------------------------------------------------------------------
def test_no_fleet_resources_without_fleet_parameters(translated):
    r = Resolver(translated, {})
    assert not r.condition("FleetEnabled")
    fleet_only = {k for k, v in translated["Resources"].items() if v.get("Condition") == "FleetEnabled"}
    assert fleet_only == {"FleetEventBus"} | set(FLEET_RULES) | {f"{k}Permission" for k in FLEET_RULES}
    assert not fleet_only & set(r.resources())


@pytest.mark.parametrize("params,principal,condition", [
    ({"MemberAccounts": "111111111111,222222222222"}, {"AWS": ["111111111111", "222222222222"]}, None),
    ({"OrganizationId": "o-abcdefghij"}, "*", {"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}}),
    ({"OrganizationId": "o-abcdefghij", "MemberAccounts": "111111111111"}, "*",
     {"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}}),
])
def test_fleet_bus_policy(translated, params, principal, condition):
    """moto keeps no bus policy: evaluated on the template for each parameter set."""
    res = Resolver(translated, params).resources()
    bus = res["FleetEventBus"]["Properties"]
    assert bus["Name"] == "autopilot-fleet"
    (stmt,) = bus["Policy"]["Statement"]
    assert stmt["Principal"] == principal
    assert stmt["Action"] == "events:PutEvents"
    assert stmt["Resource"] == f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/autopilot-fleet"
    assert stmt.get("Condition") == condition


@pytest.mark.parametrize("params,condition", [
    ({}, {"aws:ResourceAccount": [ACCOUNT]}),
    ({"MemberAccounts": "111111111111,222222222222"}, {"aws:ResourceAccount": ["111111111111", "222222222222"]}),
    ({"OrganizationId": "o-abcdefghij"}, {"aws:ResourceOrgID": "o-abcdefghij"}),
    ({"OrganizationId": "o-abcdefghij", "MemberAccounts": "111111111111"},
     {"aws:ResourceAccount": ["111111111111"], "aws:ResourceOrgID": "o-abcdefghij"}),
])
def test_central_functions_may_assume_only_the_member_role_of_the_fleet(translated, params, condition):
    res = Resolver(translated, {**params, "MemberRoleName": "autopilot-member"}).resources()
    (stmt,) = res["FleetMemberAccessPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert stmt["Action"] == "sts:AssumeRole"
    assert stmt["Resource"] == "arn:aws:iam::*:role/autopilot-member"
    assert stmt["Condition"] == {"StringEquals": condition}
    attached = {k for k, v in res.items() if v["Type"] == "AWS::IAM::Role"
                and "<Ref FleetMemberAccessPolicy>" in v["Properties"].get("ManagedPolicyArns", [])}
    assert attached == set(FLEET_ROLES)


@pytest.fixture(scope="module")
def fleet_patterns(aws, fleet):
    events = aws("events")
    bus = f"{fleet.name}-fleet"
    return {logical: without_novalue(json.loads(
        events.describe_rule(Name=f"{fleet.name}-{suffix}", EventBusName=bus)["EventPattern"]))
        for logical, suffix in FLEET_RULES.items()}


def test_fleet_rules_deployed_on_the_fleet_bus(aws, fleet):
    events = aws("events")
    bus = f"{fleet.name}-fleet"
    assert fleet.outputs["FleetEventBusArn"] == f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{bus}"
    dlq = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{fleet.name}-trigger-dlq"
    lam = aws("lambda")
    for logical, suffix in FLEET_RULES.items():
        (target,) = events.list_targets_by_rule(Rule=f"{fleet.name}-{suffix}", EventBusName=bus)["Targets"]
        fn = f"{fleet.name}-" + {"EcsEventsFunction": "ecs-events", "AlarmResponderFunction": "alarm-responder",
                                 "PipelineEventsFunction": "pipeline-events"}[FLEET_RULE_TARGET[logical]]
        assert target["Arn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{fn}"
        assert target["DeadLetterConfig"] == {"Arn": dlq}
        assert target["RetryPolicy"] == {"MaximumRetryAttempts": 24, "MaximumEventAgeInSeconds": 3600}
        policy = json.loads(lam.get_policy(FunctionName=fn)["Policy"])
        rule_arn = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{bus}/{fleet.name}-{suffix}"
        assert [s for s in policy["Statement"] if s["Condition"]["ArnLike"]["AWS:SourceArn"] == rule_arn], logical


def test_the_unscoped_stack_has_no_fleet_bus(aws, unscoped):
    names = {b["Name"] for b in aws("events").list_event_buses()["EventBuses"]}
    assert f"{unscoped.name}-fleet" not in names
    assert "FleetEventBus" not in unscoped.resources


# The operators the fleet rules add to those test_event_patterns.py pins
# (suffix, wildcard), against EventBridge's documented behaviour.
@pytest.mark.parametrize("pattern,event,expected", [
    ({"c": [{"suffix": ":cluster/prod"}]}, {"c": "arn:aws:ecs:eu-west-1:111111111111:cluster/prod"}, True),
    ({"c": [{"suffix": ":cluster/prod"}]}, {"c": "arn:aws:ecs:eu-west-1:111111111111:cluster/my-prod"}, False),
    ({"c": [{"suffix": ":cluster/prod"}]}, {"c": "arn:aws:ecs:eu-west-1:111111111111:cluster/prod2"}, False),
    ({"r": [{"wildcard": "arn:aws:ecs:*:*:service/prod/*"}]},
     {"r": ["arn:aws:ecs:eu-west-1:111111111111:service/prod/api"]}, True),
    ({"r": [{"wildcard": "arn:aws:ecs:*:*:service/prod/*"}]},
     {"r": ["arn:aws:ecs:eu-west-1:111111111111:service/production/api"]}, False),
    ({"r": [{"wildcard": "arn:aws:ecs:*:*:service/prod/*"}]},
     {"r": ["arn:aws:ecs:eu-west-1:111111111111:service/preprod/api"]}, False),
    ({"account": ["111111111111", "222222222222"]}, {"account": "222222222222"}, True),
    ({"account": ["111111111111", "222222222222"]}, {"account": "333333333333"}, False),
])
def test_moto_engine_semantics_of_the_fleet_operators(pattern, event, expected):
    assert moto_matches(pattern, event) is expected


def central_expectation(name: str) -> set[str]:
    """The scoped stack's expectation (Clusters=prod,staging,
    AlarmNamePrefix=prod-: FLEET_PARAMS has the same scope) as fleet rules."""
    assert FLEET_PARAMS["Clusters"] == "prod,staging" and FLEET_PARAMS["AlarmNamePrefix"] == "prod-"
    return {f"Fleet{r}" for r in EXPECTED[name][1]}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_forwarded_events_reach_the_central_functions(name, member_template, fleet_patterns):
    """Member rule, then (the event unchanged, as EventBridge forwards it)
    the central fleet rules as moto deployed them: a member's event in
    another region reaches the function the central stack's own event would
    (cluster and alarm scope by name); an account outside MemberAccounts
    reaches nothing even if its event got onto the bus."""
    raw = json.loads((OWN_EVENTS / name).read_text())
    for account, region in ((MEMBER, MEMBER_REGION), ("222222222222", "us-east-1")):
        event = as_from(raw, account, region)
        forwarded = any(moto_matches(p, event) for p in member_patterns(member_template).values()) \
            if account == MEMBER else True
        got = {r for r, p in fleet_patterns.items() if moto_matches(p, event)} if forwarded else set()
        assert got == central_expectation(name), (name, account)
    stranger = as_from(raw, STRANGER, MEMBER_REGION)
    assert not {r for r, p in fleet_patterns.items() if moto_matches(p, stranger)}, name


# ---------------------------------------------------------------------------
# The member role's permissions
# ---------------------------------------------------------------------------
# What the central functions do on the central stack's own resources, not in
# a member account: the topic, evidence bucket, state table, failed-
# invocations queue, stack key and their own log groups; and the AssumeRole
# that gets them here.
CENTRAL_ONLY_PREFIXES = ("sns:", "s3:", "dynamodb:", "sqs:", "kms:")
CENTRAL_ONLY = {"sts:AssumeRole", "logs:CreateLogStream", "logs:PutLogEvents"}
# Not granted in members on purpose: the runbook's log export writes into the
# central evidence bucket, whose bucket and key policies admit only exports of
# the central account's log groups (infra/README.md, "Fleet").
NOT_IN_MEMBERS = {"logs:CreateExportTask", "logs:DescribeExportTasks"}
STAR_ALLOWED = {"ecs:ListClusters", "ecs:ListServices", "ecs:ListTasks", "ecs:DescribeTaskDefinition",
                "ecs:ListTaskDefinitions", "elasticloadbalancing:DescribeTargetGroups",
                "elasticloadbalancing:DescribeTargetHealth", "application-autoscaling:DescribeScalableTargets",
                "cloudwatch:GetMetricData"}


def member_side(actions) -> set[str]:
    return {a for a in actions if not a.startswith(CENTRAL_ONLY_PREFIXES) and a not in CENTRAL_ONLY | NOT_IN_MEMBERS}


def expected_member_actions(mutations: bool) -> set[str]:
    rows = [TABLE["functions"][b] for b in FLEET_ROLES.values()]
    return member_side({a for r in rows for a in r["always"] + (r["mutations_allowed"] if mutations else [])})


MUTATIONS = member_side({a for b in FLEET_ROLES.values() for a in TABLE["functions"][b]["mutations_allowed"]})


def member_role_statements(template: dict, params: dict) -> list[dict]:
    res = render(template, params)
    return [s for p in res["MemberRole"]["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


@pytest.mark.parametrize("mutations", [True, False])
def test_member_role_grants_exactly_the_member_side_of_the_five_functions(member_template, mutations):
    stmts = member_role_statements(member_template, {**MEMBER_PARAMS, "AllowMutations": str(mutations).lower()})
    granted = {a for s in stmts if s["Effect"] == "Allow" for a in as_list(s["Action"])}
    want = expected_member_actions(mutations)
    assert granted - want == set(), f"granted, not needed by the five functions in a member: {granted - want}"
    assert want - granted == set(), f"needed, not granted: {want - granted}"
    assert MUTATIONS == {"ecs:UpdateService", "ecs:StopServiceDeployment", "ecs:ContinueServiceDeployment",
                         "iam:PassRole"}


def test_member_role_no_wildcard_action_and_star_only_for_reads(member_template):
    for s in member_role_statements(member_template, MEMBER_PARAMS):
        for a in as_list(s["Action"]):
            assert "*" not in a, s
        if "*" in as_list(s["Resource"]):
            assert set(as_list(s["Action"])) <= STAR_ALLOWED, s
        for r in as_list(s["Resource"]):
            if r != "*":   # every ARN names the member account (regions: any)
                assert f":{MEMBER}:" in r, (s["Sid"], r)


def test_member_mutations_only_on_ecs_services_under_the_opt_out(member_template, sam_template):
    central_optout = Resolver(sam_template, {"DryRun": "false"}).resources()[
        "EcsBoundedActionsPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]["Condition"]
    for s in member_role_statements(member_template, MEMBER_PARAMS):
        acts = set(as_list(s["Action"]))
        if not acts & MUTATIONS:
            continue
        if acts == {"iam:PassRole"}:
            assert s["Resource"] == f"arn:aws:iam::{MEMBER}:role/*"
            assert s["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
            continue
        assert acts <= MUTATIONS - {"iam:PassRole"}, s
        for r in as_list(s["Resource"]):
            assert re.fullmatch(rf"arn:aws:ecs:\*:{MEMBER}:(service/\*/\*|service-deployment/\*/\*/\*)", r), r
        assert s["Condition"] == central_optout
    narrowed = member_role_statements(member_template, {**MEMBER_PARAMS, "TaskRolePattern": "ecs/*"})
    assert [s["Resource"] for s in narrowed if s["Action"] == "iam:PassRole"] == [f"arn:aws:iam::{MEMBER}:role/ecs/*"]


def test_member_log_reads_are_the_configured_prefixes(member_template):
    stmts = {s["Sid"]: s for s in member_role_statements(
        member_template, {**MEMBER_PARAMS, "LogGroupPrefixes": "/ecs/,/app/"})}
    base = f"arn:aws:logs:*:{MEMBER}:log-group:"
    assert stmts["ReadApplicationLogStreams"]["Resource"] == [f"{base}/ecs/*:log-stream:*", f"{base}/app/*:log-stream:*"]
    assert stmts["CountApplicationLogErrors"]["Resource"] == [f"{base}/ecs/*", f"{base}/app/*"]
    assert stmts["BuildLogStreams"]["Resource"] == [f"{base}/aws/codebuild/*:log-stream:*"]
    res = render(member_template, {**MEMBER_PARAMS, "LogGroupPrefixes": "/a/,/b/,/c/,/d/,/e/,/f/"})
    assert "LogGroupPrefixesLimit" in res   # a sixth prefix stops the deployment


def test_the_member_role_exists_in_one_region_only(member_template):
    assert "MemberRole" in render(member_template, MEMBER_PARAMS, region="us-east-1")
    assert "MemberRole" not in render(member_template, MEMBER_PARAMS, region=MEMBER_REGION)
    moved = {**MEMBER_PARAMS, "RoleRegion": MEMBER_REGION}
    assert "MemberRole" in render(member_template, moved, region=MEMBER_REGION)
    assert "MemberRole" not in render(member_template, moved, region="us-east-1")
    # the forwarding exists everywhere
    for region in ("us-east-1", MEMBER_REGION):
        assert set(FORWARDS) <= set(render(member_template, MEMBER_PARAMS, region=region))


def test_central_stack_name_fits_the_generated_role_names(member_template, sam_template):
    """The trust patterns hold only if CloudFormation does not truncate the
    central roles' generated names (<stack>-<LogicalId>-<suffix of up to 13>,
    64 at most): the longest allowed stack name with the longest of the five
    logical ids still fits."""
    pattern = member_template["Parameters"]["CentralStackName"]["AllowedPattern"]
    longest = max(FLEET_ROLES, key=len)
    assert re.fullmatch(pattern, "a" * 29) and not re.fullmatch(pattern, "a" * 30)
    assert 29 + 1 + len(longest) + 1 + 13 <= 64
    for logical in FLEET_ROLES:   # the logical ids the patterns name exist, as roles without RoleName
        role = sam_template["Resources"][logical]
        assert role["Type"] == "AWS::IAM::Role" and "RoleName" not in role["Properties"] and "Path" not in role["Properties"]


# ---------------------------------------------------------------------------
# The member role's trust policy, evaluated
# ---------------------------------------------------------------------------
# A small model of IAM's evaluation of a role trust policy for
# sts:AssumeRole, limited to the elements member.yaml uses and refusing
# anything else (so a policy that grows an unmodelled element fails here
# instead of being misjudged):
#   - Principal {"AWS": ...}: "*", an account ("123456789012" or
#     "arn:aws:iam::123456789012:root" = any principal of that account), or
#     an exact principal ARN; {"Service": ...} never matches an IAM role;
#   - Action: exact or with * / ? wildcards (case-insensitive);
#   - Condition: every operator AND-ed, every key of an operator AND-ed,
#     the values of a key OR-ed; StringEquals / StringNotEquals /
#     StringLike (case-sensitive), ArnEquals / ArnLike (each of the six
#     colon-separated parts matched on its own, * and ? not crossing a
#     colon), Bool; ...IfExists = true when the key is absent; a key absent
#     from the request makes any other operator false (and a negated one
#     true);
#   - an explicit Deny wins over any Allow; no Allow = implicit deny.
# (IAM User Guide: policy evaluation logic, condition operators, ARN
# condition operators.)
_OPERATORS = {"StringEquals", "StringNotEquals", "StringLike", "ArnEquals", "ArnLike", "Bool"}


def _glob(pattern: str, value: str) -> bool:
    return re.fullmatch("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern),
                        value, re.S) is not None


def _arn_like(pattern: str, value: str) -> bool:
    p, v = pattern.split(":", 5), value.split(":", 5)
    return len(p) == len(v) == 6 and all(_glob(a, b) for a, b in zip(p, v))


def _test(op: str, pattern: str, value: str) -> bool:
    if op in ("StringEquals", "StringNotEquals"):
        return pattern == value
    if op == "StringLike":
        return _glob(pattern, value)
    if op == "ArnEquals":
        return pattern == value
    if op == "ArnLike":
        return _arn_like(pattern, value)
    if op == "Bool":
        return pattern.lower() == value.lower()
    raise AssertionError(op)


def _condition_holds(condition: dict, context: dict) -> bool:
    for op_full, keys in condition.items():
        op, if_exists = (op_full[:-8], True) if op_full.endswith("IfExists") else (op_full, False)
        assert op in _OPERATORS, f"operator {op_full} is not modelled"
        negated = op.startswith("StringNot")
        for key, values in keys.items():
            if key not in context:
                if if_exists or negated:
                    continue
                return False
            hit = any(_test(op, str(v), context[key]) for v in as_list(values))
            if hit == negated:
                return False
    return True


def _principal_matches(principal, request: dict) -> bool:
    if principal == "*":
        return True
    assert isinstance(principal, dict) and set(principal) <= {"AWS", "Service"}, principal
    for p in as_list(principal.get("AWS", [])):
        if p == "*":
            return True
        m = re.fullmatch(r"(?:arn:aws:iam::)?(\d{12})(?::root)?", p)
        if m and request["account"] == m.group(1):
            return True
        if p == request["principal_arn"]:
            return True
    return False


def _statement_applies(s: dict, request: dict) -> bool:
    assert set(s) <= {"Sid", "Effect", "Principal", "Action", "Condition"}, f"unmodelled element in {s}"
    if not _principal_matches(s["Principal"], request):
        return False
    if not any(_glob(a.lower(), "sts:assumerole") for a in as_list(s["Action"])):
        return False
    return _condition_holds(s.get("Condition", {}), request["context"])


def may_assume(policy: dict, principal_arn: str, external_id: str | None = None) -> bool:
    """Does the trust policy let this principal call sts:AssumeRole (with
    this external id)? The request context is what STS sets:
    aws:PrincipalArn (for a role session, the role's ARN), aws:PrincipalAccount,
    and sts:ExternalId only when the caller sends one."""
    account = principal_arn.split(":")[4]
    context = {"aws:PrincipalArn": principal_arn, "aws:PrincipalAccount": account}
    if external_id is not None:
        context["sts:ExternalId"] = external_id
    request = {"principal_arn": principal_arn, "account": account, "context": context}
    stmts = as_list(policy["Statement"])
    if any(s["Effect"] == "Deny" and _statement_applies(s, request) for s in stmts):
        return False
    return any(s["Effect"] == "Allow" and _statement_applies(s, request) for s in stmts)


def role(account: str, name: str) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


def trust_cases(central: str, stack: str, external_id: str | None,
                names: dict[str, str] | None = None) -> list[tuple[str, str, str | None, bool]]:
    """(what, principal ARN, external id sent, expected) for a central stack
    `stack` in account `central`. `names`: the physical names of the
    central roles by logical id (AWS-style generated names by default)."""
    names = names or {lg: f"{stack}-{lg}-1AbCdEfGhIjK" for lg in
                      list(FLEET_ROLES) + ["DeploymentHookRole", "SchedulerRole", "DeploymentHookInvokeRole"]}
    cases = []
    for logical in FLEET_ROLES:
        arn = role(central, names[logical])
        cases.append((f"central {logical}", arn, external_id, True))
        if external_id is not None:
            cases.append((f"central {logical} without the external id", arn, None, False))
            cases.append((f"central {logical} with a wrong external id", arn, external_id + "-x", False))
    for logical in ("DeploymentHookRole", "SchedulerRole", "DeploymentHookInvokeRole"):
        cases.append((f"central {logical} (same stack, not a fleet function)", role(central, names[logical]),
                      external_id, False))
    cases += [
        ("EcsEventsRole of another central stack", role(central, f"{stack}-staging-EcsEventsRole-1AbCdEfGhIjK"),
         external_id, False),
        ("EcsEventsRole of a stack whose name ends like it", role(central, f"x{stack}-EcsEventsRole-1AbCdEfGhIjK"),
         external_id, False),
        ("a role of the same name in another account", role(STRANGER, names["EcsEventsRole"]), external_id, False),
        ("a role of the same name in the member account", role(MEMBER, names["RunbookRole"]), external_id, False),
        ("an IAM user named like the role", f"arn:aws:iam::{central}:user/{names['EcsEventsRole']}",
         external_id, False),
        ("the central account root", f"arn:aws:iam::{central}:root", external_id, False),
        ("a role on a path that ends like the name", role(central, f"x/{names['EcsEventsRole']}"), external_id, False),
    ]
    return cases


def trust_violations(policy: dict, cases) -> list[str]:
    return [f"{what}: {'allowed' if not want else 'refused'}" for what, arn, ext, want in cases
            if may_assume(policy, arn, ext) != want]


def member_trust(template: dict, params: dict) -> dict:
    return render(template, params)["MemberRole"]["Properties"]["AssumeRolePolicyDocument"]


# The evaluator's own semantics, pinned on small policies.
def _allow(**condition):
    return {"Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{CENTRAL}:root"},
                           "Action": "sts:AssumeRole", **({"Condition": condition} if condition else {})}]}


@pytest.mark.parametrize("policy,arn,ext,expected", [
    (_allow(), role(CENTRAL, "anything"), None, True),                      # account principal = any principal of it
    (_allow(), role(STRANGER, "anything"), None, False),
    (_allow(ArnLike={"aws:PrincipalArn": role(CENTRAL, "a-*")}), role(CENTRAL, "a-b"), None, True),
    (_allow(ArnLike={"aws:PrincipalArn": role(CENTRAL, "a-*")}), role(CENTRAL, "b-a-b"), None, False),
    # the Principal binds the account even when the ARN pattern does not
    (_allow(ArnLike={"aws:PrincipalArn": "arn:aws:iam::*:role/a"}), role(STRANGER, "a"), None, False),
    (_allow(ArnLike={"aws:PrincipalArn": "arn:aws:iam::*:role/a"}), role(CENTRAL, "a"), None, True),
    # * does not cross the colons of an ARN
    (_allow(ArnLike={"aws:PrincipalArn": f"arn:aws:iam::{CENTRAL}*"}), role(CENTRAL, "a"), None, False),
    (_allow(StringEquals={"sts:ExternalId": "e"}), role(CENTRAL, "a"), None, False),   # key absent: false
    (_allow(StringEquals={"sts:ExternalId": "e"}), role(CENTRAL, "a"), "E", False),    # case-sensitive
    (_allow(StringEqualsIfExists={"sts:ExternalId": "e"}), role(CENTRAL, "a"), None, True),
    (_allow(StringNotEquals={"sts:ExternalId": "e"}), role(CENTRAL, "a"), None, True),
    # Deny wins
    ({"Statement": _allow()["Statement"] + [{"Effect": "Deny", "Principal": "*", "Action": "sts:*"}]},
     role(CENTRAL, "a"), None, False),
])
def test_the_trust_evaluator_follows_iam(policy, arn, ext, expected):
    assert may_assume(policy, arn, ext) is expected


def test_the_trust_evaluator_refuses_unmodelled_elements():
    with pytest.raises(AssertionError):
        may_assume(_allow(DateGreaterThan={"aws:CurrentTime": "2020-01-01T00:00:00Z"}), role(CENTRAL, "a"))
    with pytest.raises(AssertionError):
        may_assume({"Statement": [{"Effect": "Allow", "NotPrincipal": {"AWS": "x"}, "Principal": "*",
                                   "Action": "sts:AssumeRole"}]}, role(CENTRAL, "a"))


def test_trust_admits_exactly_the_five_central_function_roles_with_the_external_id(member_template):
    policy = member_trust(member_template, MEMBER_PARAMS)
    cases = trust_cases(CENTRAL, CENTRAL_STACK, EXTERNAL_ID)
    assert len([c for c in cases if c[3]]) == 5
    assert trust_violations(policy, cases) == []


def test_trust_without_an_external_id(member_template):
    params = {k: v for k, v in MEMBER_PARAMS.items() if k != "ExternalId"}
    policy = member_trust(member_template, params)
    assert "StringEquals" not in policy["Statement"][0]["Condition"]
    assert trust_violations(policy, trust_cases(CENTRAL, CENTRAL_STACK, None)) == []


def test_trust_names_the_real_central_role_logical_ids(member_template, fleet, aws):
    """The member policy rendered for the central stack moto deployed (its
    name, moto's account) against the central roles as moto named them."""
    params = {**MEMBER_PARAMS, "CentralAccountId": ACCOUNT, "CentralStackName": fleet.name,
              "ExternalId": FLEET_PARAMS["MemberExternalId"]}
    policy = member_trust(member_template, params)
    names = {lg: fleet.resources[lg] for lg in
             list(FLEET_ROLES) + ["DeploymentHookRole", "SchedulerRole", "DeploymentHookInvokeRole"]}
    for lg, name in names.items():
        assert name.startswith(f"{fleet.name}-{lg}-"), (lg, name)   # moto names roles as CloudFormation does
    assert trust_violations(policy, trust_cases(ACCOUNT, fleet.name, FLEET_PARAMS["MemberExternalId"], names)) == []


@pytest.mark.parametrize("breakage,caught", [
    ("no principal-ARN condition", {"central SchedulerRole (same stack, not a fleet function): allowed",
                                    "the central account root: allowed"}),
    ("no external-id condition", {"central EcsEventsRole without the external id: allowed"}),
    ("pattern without the stack name", {"EcsEventsRole of another central stack: allowed"}),
    ("principal any account", {"a role of the same name in another account: allowed"}),
])
def test_a_broken_trust_policy_is_caught(member_template, breakage, caught):
    policy = copy.deepcopy(member_trust(member_template, MEMBER_PARAMS))
    (s,) = policy["Statement"]
    if breakage == "no principal-ARN condition":
        del s["Condition"]["ArnLike"]
    elif breakage == "no external-id condition":
        del s["Condition"]["StringEquals"]
    elif breakage == "pattern without the stack name":
        s["Condition"]["ArnLike"]["aws:PrincipalArn"] = [
            p.replace(f"role/{CENTRAL_STACK}-", "role/*") for p in s["Condition"]["ArnLike"]["aws:PrincipalArn"]]
    elif breakage == "principal any account":
        s["Principal"] = {"AWS": "*"}
        s["Condition"]["ArnLike"]["aws:PrincipalArn"] = [
            p.replace(f"iam::{CENTRAL}:", "iam::*:") for p in s["Condition"]["ArnLike"]["aws:PrincipalArn"]]
    violations = set(trust_violations(policy, trust_cases(CENTRAL, CENTRAL_STACK, EXTERNAL_ID)))
    assert caught <= violations, violations


# ---------------------------------------------------------------------------
# member.yaml deployed into moto's CloudFormation (the member = moto's
# default account; AWS::SQS::QueuePolicy is skipped by moto, see conftest)
# ---------------------------------------------------------------------------
def _deploy_member(aws, params: dict) -> dict:
    cfn = aws("cloudformation")
    name = f"member-{uuid.uuid4().hex[:6]}"
    cfn.create_stack(StackName=name, TemplateBody=MEMBER_TEMPLATE.read_text(),
                     Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
                     Capabilities=["CAPABILITY_NAMED_IAM"])
    desc = wait_created(cfn, name)
    resources = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                 for r in cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]}
    outputs = {o["OutputKey"]: o["OutputValue"] for o in desc.get("Outputs", [])}
    return {"name": name, "resources": resources, "outputs": outputs}


@pytest.fixture(scope="module")
def member_in_moto(aws, artifact):
    # moto's region is the role region here; the central stack in another
    # region and account (cross-region, cross-account forwarding).
    params = {"CentralAccountId": CENTRAL, "CentralRegion": MEMBER_REGION, "CentralStackName": CENTRAL_STACK,
              "RoleRegion": REGION, "ExternalId": EXTERNAL_ID,
              "MemberRoleName": f"autopilot-member-{uuid.uuid4().hex[:6]}",
              "LogGroupPrefixes": "/ecs/", "BuildLogGroupPrefixes": "/aws/codebuild/"}
    return params, _deploy_member(aws, params)


def test_member_deploys_into_moto(aws, member_in_moto):
    params, st = member_in_moto
    assert set(FORWARDS) <= set(st["resources"])
    assert st["outputs"]["MemberRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/{params['MemberRoleName']}"
    bus = f"arn:aws:events:{MEMBER_REGION}:{CENTRAL}:event-bus/{CENTRAL_STACK}-fleet"
    assert st["outputs"]["CentralBusArn"] == bus
    events = aws("events")
    for fwd in FORWARDS:
        rule_name = st["resources"][fwd]
        (target,) = events.list_targets_by_rule(Rule=rule_name)["Targets"]
        assert target["Arn"] == bus
        assert target["RoleArn"].split("/")[-1] == st["resources"]["ForwardRole"]
        assert target["RetryPolicy"] == {"MaximumRetryAttempts": 24, "MaximumEventAgeInSeconds": 3600}
        pattern = json.loads(events.describe_rule(Name=rule_name)["EventPattern"])
        assert pattern["account"] == [ACCOUNT]
        assert st["outputs"][f"{fwd}Arn"] == events.describe_rule(Name=rule_name)["Arn"]


def test_member_role_as_moto_resolved_it(aws, member_in_moto):
    from test_iam import _doc

    params, st = member_in_moto
    iam = aws("iam")
    r = iam.get_role(RoleName=params["MemberRoleName"])["Role"]
    trust = _doc(r["AssumeRolePolicyDocument"])
    assert trust_violations(trust, trust_cases(CENTRAL, CENTRAL_STACK, EXTERNAL_ID)) == []
    granted = set()
    for name in iam.list_role_policies(RoleName=params["MemberRoleName"])["PolicyNames"]:
        doc = _doc(iam.get_role_policy(RoleName=params["MemberRoleName"], PolicyName=name)["PolicyDocument"])
        granted |= {a for s in doc["Statement"] for a in as_list(s["Action"])}
    assert granted == expected_member_actions(True)


def test_without_the_role_region_no_member_role(aws, artifact):
    params = {"CentralAccountId": CENTRAL, "CentralRegion": MEMBER_REGION, "CentralStackName": CENTRAL_STACK,
              "MemberRoleName": f"autopilot-member-{uuid.uuid4().hex[:6]}", "ForwardPipelineEvents": "false",
              "LogGroupPrefixes": "/ecs/", "BuildLogGroupPrefixes": "/aws/codebuild/"}
    st = _deploy_member(aws, params)
    assert "MemberRole" not in st["resources"] and "MemberRoleArn" not in st["outputs"]
    assert {f for f in FORWARDS if f in st["resources"]} == {f for f in FORWARDS if "Pipeline" not in f}


def test_the_fleet_rules_may_dead_letter_into_the_encrypted_queue(translated):
    """The trigger DLQ is encrypted with the stack key; the key policy admits
    EventBridge for rules named "<stack>-*", which covers the fleet rules'
    ARNs (rule/<bus>/<rule> on a custom bus)."""
    res = Resolver(translated, FLEET_PARAMS).resources()
    (stmt,) = [s for s in res["AutopilotKey"]["Properties"]["KeyPolicy"]["Statement"]
               if s.get("Sid") == "EventBridgeDeadLettersToEncryptedQueue"]
    pattern = stmt["Condition"]["ArnLike"]["aws:SourceArn"]
    for suffix in FLEET_RULES.values():
        arn = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/autopilot-fleet/autopilot-{suffix}"
        assert _arn_like(pattern, arn), arn
    assert not _arn_like(pattern, f"arn:aws:events:{REGION}:{ACCOUNT}:rule/other-fleet/other-x")
