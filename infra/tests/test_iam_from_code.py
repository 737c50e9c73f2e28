"""Each function's role grants exactly what its code calls.

The table is Rust code (shared/src/iam.rs: every SDK operation an adapter
sends, its IAM actions and the functions whose flows reach it, plus the
grants no call explains, each with its reason), exported as
infra/iam-actions.json (a Rust test keeps the file equal to the table).

`drift()` reads a role's actions from the translated template for a
parameter set (inline policies and attached managed policies, with their
conditions, as CloudFormation resolves them) and reports every action the
table lists that no statement grants ("missing") and every granted action
the table does not list ("unused"). It runs on the template for both stacks
of conftest.py (DryRun=true: the table without the mutations; DryRun=false:
with them), on moto's deployed roles (so the static reading is the one AWS
gets), and on copies of the template with a grant planted or removed, to
show it catches both.
"""

from __future__ import annotations

import copy
import json

import pytest

from conftest import BINARIES, INFRA, ROLES, Resolver

TABLE = json.loads((INFRA / "iam-actions.json").read_text())
FUNCTION_OF_BINARY = {b: f for f, b in BINARIES.items()}
SCOPED = {"Clusters": "prod,staging", "DryRun": "false", "TaskRolePattern": "ecs/*",
          "LogGroupPrefixes": "/ecs/,/custom/", "BuildLogGroupPrefixes": "/aws/codebuild/,/ci/builds/"}
PARAMETER_SETS = {"defaults (DryRun=true)": {}, "scoped (DryRun=false)": SCOPED}


def as_list(v):
    return v if isinstance(v, list) else [v]


def expected(binary: str, mutations: bool) -> set[str]:
    row = TABLE["functions"][binary]
    return set(row["always"]) | (set(row["mutations_allowed"]) if mutations else set())


def role_statements(template: dict, params: dict[str, str], role: str) -> list[dict]:
    res = Resolver(template, params).resources()
    r = res[role]["Properties"]
    out = [s for p in r.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    for ref in r.get("ManagedPolicyArns", []):
        assert ref.startswith("<Ref "), ref
        policy = ref[len("<Ref "):-1]
        out += res[policy]["Properties"]["PolicyDocument"]["Statement"]
    return out


def granted(statements: list[dict]) -> set[str]:
    return {a for s in statements if s["Effect"] == "Allow" for a in as_list(s["Action"])}


def drift(template: dict, params: dict[str, str]) -> list[str]:
    """Every difference between the roles and the table, as sentences."""
    mutations = params.get("DryRun", "true") == "false"
    problems = []
    for fn, binary in BINARIES.items():
        want = expected(binary, mutations)
        got = granted(role_statements(template, params, ROLES[fn]))
        problems += [f"{binary}: missing {a} (the table lists it; no statement of {ROLES[fn]} grants it)"
                     for a in sorted(want - got)]
        problems += [f"{binary}: unused {a} (granted to {ROLES[fn]}; no call in shared/src/iam.rs needs it, "
                     f"and it is not listed there with a reason)" for a in sorted(got - want)]
    return problems


@pytest.mark.parametrize("params", PARAMETER_SETS.values(), ids=PARAMETER_SETS.keys())
def test_every_role_grants_exactly_what_its_code_calls(translated, params):
    assert drift(translated, params) == []


def test_the_static_reading_is_what_moto_deployed(aws, unscoped, scoped):
    """The roles as moto's CloudFormation created them hold the same actions
    (so `drift` reads the template as AWS would)."""
    from test_iam import allowed_actions, statements_of_role

    for st in (unscoped, scoped):
        mutations = st.param("DryRun") == "false"
        for fn, binary in BINARIES.items():
            got = allowed_actions(statements_of_role(aws, st.resources[ROLES[fn]]))
            assert got == expected(binary, mutations), (st.name, binary)


def test_the_scheduled_reports_role_may_count_errors_in_the_application_logs(translated):
    """The daily report's FilterLogEvents, on exactly the LogGroupPrefixes groups."""
    for params, prefixes in (({}, ["/ecs/"]), (SCOPED, ["/ecs/", "/custom/"])):
        stmts = role_statements(translated, params, ROLES["ScheduledReportsFunction"])
        resources = sorted(r for s in stmts if "logs:FilterLogEvents" in as_list(s["Action"])
                           for r in as_list(s["Resource"]))
        assert resources == sorted(f"arn:aws:logs:us-east-1:123456789012:log-group:{p}*" for p in prefixes)


def _statement(template: dict, resource: str, sid: str) -> dict:
    props = template["Resources"][resource]["Properties"]
    docs = [props["PolicyDocument"]] if "PolicyDocument" in props else [p["PolicyDocument"] for p in props["Policies"]]
    (s,) = [s for d in docs for s in d["Statement"] if s.get("Sid") == sid]
    return s


def test_drift_reports_a_planted_missing_grant(translated):
    t = copy.deepcopy(translated)
    s = _statement(t, "ScheduledReportsRole", "CountApplicationLogErrors")
    s["Action"] = "logs:GetLogEvents"  # the daily report's FilterLogEvents taken away
    assert drift(t, {}) == [
        "scheduled-reports: missing logs:FilterLogEvents (the table lists it; no statement of ScheduledReportsRole grants it)"]
    t = copy.deepcopy(translated)
    _statement(t, "EngineReadPolicy", "RevisionsWithoutResourceLevelPermissions")["Action"] = "ecs:ListServices"
    problems = drift(t, {})
    assert {p.split(" (")[0] for p in problems} == {
        f"{b}: missing ecs:ListTaskDefinitions" for b in ("ecs-events", "alarm-responder", "runbook")} | {
        f"{b}: unused ecs:ListServices" for b in ("ecs-events", "runbook")}, problems


def test_drift_reports_a_planted_unused_grant(translated):
    t = copy.deepcopy(translated)
    s = _statement(t, "AlarmReadPolicy", "AlarmsRead")
    s["Action"] = ["cloudwatch:DescribeAlarms", "cloudwatch:DescribeAlarmHistory"]
    assert sorted(drift(t, {})) == sorted(
        f"{b}: unused cloudwatch:DescribeAlarmHistory (granted to {r}; no call in shared/src/iam.rs needs it, "
        "and it is not listed there with a reason)"
        for b, r in (("ecs-events", "EcsEventsRole"), ("alarm-responder", "AlarmResponderRole"),
                     ("scheduled-reports", "ScheduledReportsRole"), ("deployment-hook", "DeploymentHookRole")))


def test_drift_reports_a_policy_attached_to_a_role_whose_code_does_not_need_it(translated):
    t = copy.deepcopy(translated)
    t["Resources"]["RunbookRole"]["Properties"]["ManagedPolicyArns"].append({"Ref": "AlarmReadPolicy"})
    assert [p.split(" (")[0] for p in drift(t, {})] == ["runbook: unused cloudwatch:DescribeAlarms"]


def test_drift_sees_the_mutations_only_where_dry_run_is_off(translated):
    """A mutating grant left attached in dry-run is reported too."""
    t = copy.deepcopy(translated)
    t["Resources"]["EcsBoundedActionsPolicy"].pop("Condition")
    roles = t["Resources"]["EcsEventsRole"]["Properties"]["ManagedPolicyArns"]
    roles[:] = [{"Ref": "EcsBoundedActionsPolicy"} if isinstance(r, dict) and "Fn::If" in r else r for r in roles]
    assert sorted(p.split(" (")[0] for p in drift(t, {})) == [
        "ecs-events: unused ecs:StopServiceDeployment", "ecs-events: unused ecs:UpdateService",
        "ecs-events: unused iam:PassRole"]
    assert drift(t, SCOPED) == []


def test_every_grant_without_a_call_says_why():
    for g in TABLE["grants"]:
        assert len(g["reason"]) > 20, g
    called = {a for c in TABLE["calls"] for a in c["actions"]}
    assert not {g["action"] for g in TABLE["grants"]} & called, "a grant with a reason is also called: drop the reason"
