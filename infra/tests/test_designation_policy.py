"""The statements that make "designated alarms" enforceable
(infra/designated-alarms-scp.json, shown in the README): evaluated for the
requests a principal other than the platform role could use to designate an
alarm and fire it, and for what must stay possible.

The model is IAM's documented evaluation of an explicit Deny: every
condition of a statement must hold; ArnNotLike on aws:PrincipalArn;
ForAnyValue:StringEqualsIgnoreCase on the multivalued aws:TagKeys (true when
any request tag key is in the list, false when there is none);
StringEqualsIgnoreCase on aws:ResourceTag/<key> (false when the resource has
no such tag; tag keys compare case-insensitively)."""

from __future__ import annotations

import fnmatch
import json
import re

import pytest

from conftest import INFRA, REPO

POLICY = json.loads((INFRA / "designated-alarms-scp.json").read_text())
PLATFORM = "arn:aws:iam::123456789012:role/platform/alarm-admin"
DEV = "arn:aws:iam::123456789012:role/dev-team"
ALARM = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:"


def as_list(v):
    return v if isinstance(v, list) else [v]


def condition_holds(op: str, key: str, values, req: dict) -> bool:
    values = as_list(values)
    if op == "ArnNotLike" and key == "aws:PrincipalArn":
        return not any(fnmatch.fnmatchcase(req["principal"], v) for v in values)
    if op == "ForAnyValue:StringEqualsIgnoreCase" and key == "aws:TagKeys":
        return any(k.lower() in {v.lower() for v in values} for k in req.get("tag_keys", []))
    if op == "StringEqualsIgnoreCase" and key.startswith("aws:ResourceTag/"):
        wanted = key.split("/", 1)[1].lower()
        have = {k.lower(): v for k, v in req.get("resource_tags", {}).items()}
        return wanted in have and have[wanted].lower() in {v.lower() for v in values}
    raise AssertionError(f"the model does not know {op} {key}")


def denied(req: dict) -> bool:
    for s in POLICY["Statement"]:
        assert s["Effect"] == "Deny"
        if req["action"] not in s["Action"]:
            continue
        if not any(fnmatch.fnmatchcase(req["resource"], r) for r in as_list(s["Resource"])):
            continue
        if all(condition_holds(op, k, v, req) for op, kv in s.get("Condition", {}).items() for k, v in kv.items()):
            return True
    return False


CASES = [
    # (what, request, denied?)
    ("name an alarm with the prefix", dict(action="cloudwatch:PutMetricAlarm", resource=ALARM + "prod-api-5xx"), True),
    ("fire a prefixed alarm by hand", dict(action="cloudwatch:SetAlarmState", resource=ALARM + "prod-api-5xx"), True),
    ("create an alarm with the tag", dict(action="cloudwatch:PutMetricAlarm", resource=ALARM + "team-cpu",
                                          tag_keys=["autopilot:actions"]), True),
    ("tag an alarm (other letter case)", dict(action="cloudwatch:TagResource", resource=ALARM + "team-cpu",
                                               tag_keys=["Autopilot:Actions"]), True),
    ("composite alarm with the tag", dict(action="cloudwatch:PutCompositeAlarm", resource=ALARM + "team-all",
                                          tag_keys=["team", "autopilot:actions"]), True),
    ("fire a tagged alarm by hand", dict(action="cloudwatch:SetAlarmState", resource=ALARM + "team-cpu",
                                         resource_tags={"autopilot:actions": "on"}), True),
    ("retune a tagged alarm", dict(action="cloudwatch:PutMetricAlarm", resource=ALARM + "team-cpu",
                                   resource_tags={"Autopilot:Actions": "ON"}), True),
    ("untag a tagged alarm", dict(action="cloudwatch:UntagResource", resource=ALARM + "team-cpu",
                                  tag_keys=["autopilot:actions"], resource_tags={"autopilot:actions": "on"}), True),
    # what other teams keep
    ("their own alarm", dict(action="cloudwatch:PutMetricAlarm", resource=ALARM + "team-cpu"), False),
    ("their own tags", dict(action="cloudwatch:TagResource", resource=ALARM + "team-cpu", tag_keys=["team"]), False),
    ("test their own alarm", dict(action="cloudwatch:SetAlarmState", resource=ALARM + "team-cpu",
                                  resource_tags={"team": "payments"}), False),
    ("a name that only contains the prefix", dict(action="cloudwatch:PutMetricAlarm", resource=ALARM + "preprod-x"),
     False),
]


@pytest.mark.parametrize("what,req,expected", CASES, ids=[c[0] for c in CASES])
def test_only_the_platform_role_can_designate_or_fire_a_designated_alarm(what, req, expected):
    assert denied({**req, "principal": DEV}) is expected, what
    assert denied({**req, "principal": PLATFORM}) is False, what


def test_the_policy_speaks_of_the_codes_designation():
    """The tag key the code reads, and no set operator on a single-valued key."""
    code = "".join(p.read_text() for p in (REPO / "shared/src").rglob("*.rs"))
    assert 'eq_ignore_ascii_case("autopilot:actions")' in code
    for s in POLICY["Statement"]:
        for op, kv in s.get("Condition", {}).items():
            for key in kv:
                multivalued = key == "aws:TagKeys"
                assert op.startswith(("ForAnyValue:", "ForAllValues:")) is multivalued, (op, key)


def test_the_readme_shows_the_policy_file():
    readme = (REPO / "README.md").read_text()
    m = re.search(r"<!-- designated-alarms-scp: infra/designated-alarms-scp.json -->\n```json\n(.*?)```", readme, re.S)
    assert m and json.loads(m.group(1)) == POLICY
