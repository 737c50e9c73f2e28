"""Least privilege, checked on the IAM policies as deployed (moto resolves the
conditions and per-cluster ARNs; null list entries from AWS::NoValue are
stripped, see conftest.py)."""

from __future__ import annotations

import ast
import fnmatch
import json
import urllib.parse
import uuid

import pytest

from conftest import ACCOUNT, BINARIES, REGION, ROLES, Resolver, create_stack, without_novalue

# Read/List actions without resource-level permissions in the Service
# Authorization Reference: the only actions allowed on Resource "*".
STAR_ALLOWED = {
    "ecs:ListClusters", "ecs:ListServices", "ecs:ListTasks", "ecs:DescribeTaskDefinition",
    "ecs:ListTaskDefinitions",
    "elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeTargetHealth",
    "application-autoscaling:DescribeScalableTargets",
    "cloudwatch:GetMetricData",
    "logs:DescribeExportTasks",
}
READ_VERBS = ("Describe", "List", "Get", "BatchGet", "Filter", "StartQuery", "Query", "ConditionCheck")
ECS_MUTATORS = {"ecs:UpdateService", "ecs:StopServiceDeployment"}
MAY_MUTATE_ECS = {"EcsEventsFunction", "AlarmResponderFunction", "RunbookFunction"}
# Writes that must never be granted on Resource "*".
NEVER_ON_STAR = ECS_MUTATORS | {"logs:CreateExportTask"}
STATE_ITEM_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                      "dynamodb:DeleteItem", "dynamodb:Query"}
# Exactly what each role grants is checked against the code's table in
# test_iam_from_code.py; here: what must never be granted, whatever the table says.
ECS_READS = {"ecs:DescribeServices", "ecs:ListTasks", "ecs:DescribeTasks", "ecs:DescribeTaskDefinition",
             "ecs:ListTaskDefinitions", "ecs:ListServiceDeployments", "ecs:DescribeServiceDeployments"}
ECS_DISCOVERY = {"ecs:ListServices", "ecs:ListClusters"}
SCALING = {"application-autoscaling:DescribeScalableTargets"}
LOG_EXPORT = {"logs:CreateExportTask", "logs:DescribeExportTasks"}
MUST_NOT = {
    "PipelineEventsFunction": ECS_MUTATORS | LOG_EXPORT | ECS_READS | ECS_DISCOVERY | SCALING,
    "ScheduledReportsFunction": ECS_MUTATORS | LOG_EXPORT,
    "EcsEventsFunction": LOG_EXPORT,
    "AlarmResponderFunction": LOG_EXPORT,
    "RunbookFunction": set(),
    # The deployment gate reads and reports; ECS rolls back, never the hook.
    "DeploymentHookFunction": ECS_MUTATORS | LOG_EXPORT | ECS_DISCOVERY | SCALING,
}


def as_list(v):
    return v if isinstance(v, list) else [v]


def is_read(action: str) -> bool:
    return action.split(":", 1)[1].startswith(READ_VERBS)


def _doc(d):
    # botocore decodes policy documents to dicts; moto hands back inline role
    # policies created by CloudFormation as the Python repr of the dict.
    if isinstance(d, str):
        d = urllib.parse.unquote(d)
        try:
            d = json.loads(d)
        except json.JSONDecodeError:
            d = ast.literal_eval(d)
    return d


def statements_of_role(aws, role_name):
    iam = aws("iam")
    out = []
    for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        doc = _doc(iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"])
        out += [(f"inline:{name}", s) for s in doc["Statement"]]
    for att in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
        pol = iam.get_policy(PolicyArn=att["PolicyArn"])["Policy"]
        doc = iam.get_policy_version(PolicyArn=att["PolicyArn"], VersionId=pol["DefaultVersionId"])
        out += [(att["PolicyName"], s) for s in _doc(doc["PolicyVersion"]["Document"])["Statement"]]
    return [(src, without_novalue(s)) for src, s in out]


@pytest.fixture(scope="module")
def grants(aws, unscoped, scoped):
    """{(stack, function logical id): [(policy, statement), ...]}"""
    out = {}
    for st in (unscoped, scoped):
        for fn in BINARIES:
            out[(st.name, fn)] = statements_of_role(aws, st.resources[ROLES[fn]])
    return out


def allowed_actions(stmts):
    return {a for _, s in stmts if s["Effect"] == "Allow" for a in as_list(s["Action"])}


def test_no_wildcard_actions(grants):
    for key, stmts in grants.items():
        for src, s in stmts:
            for a in as_list(s["Action"]):
                assert "*" not in a, (key, src, a)


def test_star_resource_only_for_reads_without_resource_level_permissions(grants):
    for key, stmts in grants.items():
        for src, s in stmts:
            if "*" in as_list(s["Resource"]):
                extra = set(as_list(s["Action"])) - STAR_ALLOWED
                assert not extra, f"{key} {src}: {extra} on Resource '*'"


def test_mutating_actions_are_resource_scoped(grants):
    checked = 0
    for key, stmts in grants.items():
        for src, s in stmts:
            writes = [a for a in as_list(s["Action"]) if not is_read(a) and a not in STAR_ALLOWED]
            if writes == ["sts:AssumeRole"]:
                # The fleet's member role: one role name in any account by
                # ARN, bound to the fleet's accounts by condition (below).
                assert as_list(s["Resource"]) == ["arn:aws:iam::*:role/ecs-autopilot-member"], (key, src, s)
                keys = set(s["Condition"]["StringEquals"])
                assert keys & {"aws:ResourceAccount", "aws:ResourceOrgID"}, (key, src, s)
                continue
            if writes:
                for r in as_list(s["Resource"]):
                    # S3 and IAM ARNs carry no region; IAM's must name this account
                    assert (r != "*" and f":{REGION}:" in r or r.startswith("arn:aws:s3:::")
                            or r.startswith(f"arn:aws:iam::{ACCOUNT}:role/")), (key, src, r)
                    checked += 1
    assert checked > 20


def test_only_three_functions_may_mutate_ecs_and_only_without_dry_run(grants, unscoped, scoped):
    for (stack_name, fn), stmts in grants.items():
        ecs_writes = {a for a in allowed_actions(stmts) if a.startswith("ecs:") and not is_read(a)}
        if stack_name == scoped.name and fn in MAY_MUTATE_ECS:
            # Only the runbook answers a paused deployment's hook (a person's answer).
            hook_answers = {"ecs:ContinueServiceDeployment"} if fn == "RunbookFunction" else set()
            assert ecs_writes == ECS_MUTATORS | hook_answers, fn
        else:
            # DryRun=true (unscoped) or a read+notify function: no ECS write at all
            assert ecs_writes == set(), (stack_name, fn, ecs_writes)
    for fn in ("PipelineEventsFunction",):
        for st in (unscoped, scoped):
            assert not any(a.startswith("ecs:") for a in allowed_actions(grants[(st.name, fn)]))


OPT_OUT = {"StringNotEqualsIgnoreCaseIfExists": {"aws:ResourceTag/autopilot:mode": ["off", "dry-run"]}}


def test_ecs_mutations_are_scoped_to_clusters_with_the_opt_out_condition(grants, scoped):
    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}"
    services = [f"{arn}:service/prod/*", f"{arn}:service/staging/*"]
    deployments = [f"{arn}:service-deployment/prod/*", f"{arn}:service-deployment/staging/*"]
    for fn in MAY_MUTATE_ECS:
        shapes = []
        for src, s in grants[(scoped.name, fn)]:
            actions = set(as_list(s["Action"]))
            if actions & ECS_MUTATORS:
                assert actions <= ECS_MUTATORS, (fn, s)
                assert s["Condition"] == OPT_OUT, (fn, s)
                shapes.append((tuple(sorted(actions)), s["Resource"]))
                # a service of another cluster is not covered
                assert not any(fnmatch.fnmatch(f"{arn}:service/dev/api", r) for r in s["Resource"])
        # UpdateService on the services; StopServiceDeployment on the services
        # AND on their deployments (it requires both resource types)
        assert sorted(shapes) == sorted([
            (("ecs:StopServiceDeployment", "ecs:UpdateService"), services),
            (("ecs:StopServiceDeployment",), deployments),
        ]), fn


def test_sensitive_writes_never_on_star(grants):
    seen = set()
    for key, stmts in grants.items():
        for src, s in stmts:
            risky = set(as_list(s["Action"])) & NEVER_ON_STAR
            if risky:
                seen |= risky
                for r in as_list(s["Resource"]):
                    assert r != "*" and "*" not in r.split(":")[:5], (key, src, r)
                    assert f":{REGION}:{ACCOUNT}:" in r, (key, src, r)
    assert seen == NEVER_ON_STAR


# ---------------------------------------------------------------------------
# The opt-out, evaluated. A deliberately small model of IAM's documented
# rules for string conditions on a single-valued key (IAM User Guide:
# condition operators; multiple values; single- vs multivalued keys):
#   - a key absent from the request: ...IfExists -> true; negated operators
#     -> true; ForAllValues -> true; ForAnyValue and the rest -> false;
#   - several policy values: OR-ed, and NOR-ed for a negated operator;
#   - IgnoreCase compares case-insensitively; tag key names are
#     case-insensitive in aws:ResourceTag/<key>.
# Enough to show what the deployed statements allow; not a policy simulator.
# ---------------------------------------------------------------------------
def _string_condition(operator: str, key: str, values, tags: dict[str, str]) -> bool:
    qualifier = ""
    if ":" in operator:
        qualifier, operator = operator.split(":", 1)
    if_exists = operator.endswith("IfExists")
    op = operator.removesuffix("IfExists")
    negated = op.startswith("StringNot")
    ignore_case = op.endswith("IgnoreCase")
    assert op.removesuffix("IgnoreCase") in ("StringEquals", "StringNotEquals"), operator
    assert key.lower().startswith("aws:resourcetag/"), key
    tag = key.split("/", 1)[1].lower()
    present = [v for k, v in tags.items() if k.lower() == tag]
    if not present:
        if if_exists or qualifier == "ForAllValues":
            return True
        if qualifier == "ForAnyValue":
            return False
        return negated

    def norm(s):
        return s.lower() if ignore_case else s

    matches = [any(norm(v) == norm(x) for x in as_list(values)) for v in present]
    results = [not m if negated else m for m in matches]
    return all(results) if qualifier == "ForAllValues" else any(results)


def _condition_holds(condition, tags) -> bool:
    return all(_string_condition(op, key, values, tags)
               for op, keys in (condition or {}).items() for key, values in keys.items())


def _allowed(stmts, action, resource, tags) -> bool:
    return any(
        s["Effect"] == "Allow" and action in as_list(s["Action"])
        and any(fnmatch.fnmatchcase(resource, r) for r in as_list(s["Resource"]))
        and _condition_holds(s.get("Condition"), tags)
        for _, s in stmts
    )


def _may(stmts, action, cluster, service, tags) -> bool:
    """Every resource the action is authorised against must be allowed:
    UpdateService -> the service; StopServiceDeployment -> the service and
    the deployment (Service Authorization Reference, ECS). Deployments carry
    no tags."""
    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}"
    resources = [(f"{arn}:service/{cluster}/{service}", tags)]
    if action == "ecs:StopServiceDeployment":
        resources.append((f"{arn}:service-deployment/{cluster}/{service}/dpl-0123", {}))
    return all(_allowed(stmts, action, r, t) for r, t in resources)


MODE_CASES = [
    ({}, True),                                   # untagged: acted on
    ({"autopilot:mode": "auto"}, True),
    ({"team": "payments"}, True),                 # other tags only
    ({"autopilot:mode": "off"}, False),
    ({"autopilot:mode": "dry-run"}, False),
    ({"autopilot:mode": "OFF"}, False),           # any letter case
    ({"Autopilot:Mode": "Dry-Run"}, False),       # tag key names compare case-insensitively
]


@pytest.mark.parametrize("tags,expected", MODE_CASES)
@pytest.mark.parametrize("action", sorted(ECS_MUTATORS))
def test_opt_out_tag_decides_per_service(grants, scoped, unscoped, action, tags, expected):
    for fn in BINARIES:
        stmts = grants[(scoped.name, fn)]
        may = fn in MAY_MUTATE_ECS and expected
        assert _may(stmts, action, "prod", "api", tags) is may, (fn, action, tags)
        # a cluster out of scope: never
        assert not _may(stmts, action, "dev", "api", tags), (fn, action, tags)
        # DryRun=true: the policy is not attached at all
        assert not _may(grants[(unscoped.name, fn)], action, "prod", "api", tags), (fn, action, tags)


def test_stop_deployment_needs_both_resources(grants, scoped):
    """Granting only the service-deployment ARN (the earlier template) would
    leave StopServiceDeployment denied on the required service resource."""
    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}"
    stmts = grants[(scoped.name, "EcsEventsFunction")]
    service, deployment = f"{arn}:service/prod/api", f"{arn}:service-deployment/prod/api/dpl-0123"
    assert _allowed(stmts, "ecs:StopServiceDeployment", service, {})
    assert _allowed(stmts, "ecs:StopServiceDeployment", deployment, {})
    assert not _allowed(stmts, "ecs:StopServiceDeployment", service, {"autopilot:mode": "off"})
    # an opted-out service's deployment resource alone would pass (no tags on
    # deployments): the service resource is what enforces the opt-out
    assert not _may(stmts, "ecs:StopServiceDeployment", "prod", "api", {"autopilot:mode": "off"})


def test_the_model_rejects_the_tempting_alternatives():
    """Why the condition is spelled as it is (the model above, documented rules)."""
    untagged, off, auto = {}, {"autopilot:mode": "off"}, {"autopilot:mode": "auto"}
    key = "aws:ResourceTag/autopilot:mode"
    # the earlier opt-in: untagged services refused
    assert not _string_condition("StringEquals", key, "auto", untagged)
    # a set operator on a single-valued key: ForAnyValue refuses untagged services
    assert not _string_condition("ForAnyValue:StringNotEquals", key, ["off", "dry-run"], untagged)
    # several values on a negated operator are NOR-ed, not OR-ed
    assert not _string_condition("StringNotEquals", key, ["off", "dry-run"], off)
    assert _string_condition("StringNotEquals", key, ["off", "dry-run"], auto)
    # case-sensitive comparison would let "OFF" through
    assert _string_condition("StringNotEqualsIfExists", key, ["off", "dry-run"], {"autopilot:mode": "OFF"})
    assert not _string_condition("StringNotEqualsIgnoreCaseIfExists", key, ["off", "dry-run"],
                                 {"autopilot:mode": "OFF"})


def test_per_function_action_lists(grants, unscoped, scoped):
    for (stack_name, fn), stmts in grants.items():
        actions = allowed_actions(stmts)
        forbidden = MUST_NOT[fn] & actions
        assert not forbidden, (stack_name, fn, forbidden)
        if stack_name == scoped.name and fn in MAY_MUTATE_ECS:
            assert ECS_MUTATORS <= actions, fn
        else:
            assert not ECS_MUTATORS & actions, (stack_name, fn)
    for st in (unscoped, scoped):
        assert "ecs:UpdateService" not in allowed_actions(grants[(st.name, "PipelineEventsFunction")])


def test_data_plane_grants_point_at_this_stacks_resources(grants, unscoped, scoped):
    for st in (unscoped, scoped):
        topic = st.outputs["NotificationTopicArn"]
        bucket = st.outputs["EvidenceBucketName"]
        table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{st.outputs['StateTableName']}"
        key = st.outputs["KeyArn"]
        for fn in BINARIES:
            seen = set()
            for src, s in grants[(st.name, fn)]:
                actions = as_list(s["Action"])
                res = as_list(s["Resource"])
                if "sns:Publish" in actions:
                    assert res == [topic]
                    seen.add("sns")
                if "s3:PutObject" in actions:
                    assert actions == ["s3:PutObject"]
                    assert res == [f"arn:aws:s3:::{bucket}/incidents/*", f"arn:aws:s3:::{bucket}/reports/*"]
                    seen.add("s3")
                if "s3:GetObject" in actions:
                    # the report links, presigned by scheduled-reports alone
                    assert (actions, res, fn) == (["s3:GetObject"], [f"arn:aws:s3:::{bucket}/reports/*"],
                                                  "ScheduledReportsFunction")
                if any(a.startswith("s3:") and a not in ("s3:PutObject", "s3:GetObject") for a in actions):
                    seen.add("other-s3")
                if any(a.startswith("dynamodb:") for a in actions):
                    # The table and its one index (open incidents), nothing else.
                    assert res == [table, f"{table}/index/open-incident-keys"]
                    assert set(actions) == STATE_ITEM_ACTIONS
                    seen.add("dynamodb")
                if any(a.startswith("kms:") for a in actions):
                    assert res == [key]
                    assert "kms:ViaService" in s["Condition"]["StringEquals"]
                    seen.add("kms")
                if "sqs:SendMessage" in actions:
                    assert res == [f"arn:aws:sqs:{REGION}:{ACCOUNT}:{st.name}-failed-invocations"]
                    seen.add("sqs")
            assert seen == {"sns", "s3", "dynamodb", "kms", "sqs"}, (st.name, fn, seen)


def test_read_policy_only_where_needed(grants, unscoped):
    for fn in BINARIES:
        actions = allowed_actions(grants[(unscoped.name, fn)])
        assert ("ecs:DescribeServices" in actions) == (fn != "PipelineEventsFunction"), fn


def test_log_export_only_for_the_runbook(grants):
    for (stack_name, fn), stmts in grants.items():
        has_export = "logs:CreateExportTask" in allowed_actions(stmts)
        assert has_export == (fn == "RunbookFunction"), (stack_name, fn)


def test_pipeline_events_reads_pipelines_and_builds(grants, unscoped):
    actions = allowed_actions(grants[(unscoped.name, "PipelineEventsFunction")])
    assert {"codepipeline:GetPipelineExecution", "codepipeline:ListActionExecutions",
            "codepipeline:GetPipelineState", "codebuild:BatchGetBuilds"} <= actions
    assert all(is_read(a) for a in actions
               if not a.startswith(("sns:", "s3:PutObject", "dynamodb:", "sqs:", "logs:CreateLogStream",
                                    "logs:PutLogEvents", "kms:", "sts:AssumeRole")))


def test_roles_trust_only_lambda(aws, unscoped):
    iam = aws("iam")
    for fn in BINARIES:
        role = iam.get_role(RoleName=unscoped.resources[ROLES[fn]])["Role"]
        principals = [s["Principal"] for s in _doc(role["AssumeRolePolicyDocument"])["Statement"]]
        assert principals == [{"Service": "lambda.amazonaws.com"}]


def test_each_function_writes_only_its_own_log_group(grants, unscoped):
    for fn, binary in BINARIES.items():
        for src, s in grants[(unscoped.name, fn)]:
            if "logs:PutLogEvents" in as_list(s["Action"]):
                (res,) = as_list(s["Resource"])
                # CloudFormation's LogGroup.Arn ends in ":*"; moto's lacks it.
                assert res.removesuffix(":*") == (
                    f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{unscoped.name}-{binary}")


# ---------------------------------------------------------------------------
# iam:PassRole: the UpdateService operation authorises it as well as
# ecs:UpdateService (Service Authorization Reference, ECS, API operations
# table), for the task role and task execution role of the task definition
# the service is updated to. The scoped stack narrows it with
# TaskRolePattern=ecs/*; the default (role/*) is checked in test_template.py.
# ---------------------------------------------------------------------------
PASSED_TO_ECS_TASKS = {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}


def _pass_role_statements(stmts):
    return [(src, s) for src, s in stmts if "iam:PassRole" in as_list(s["Action"])]


def test_pass_role_only_for_the_three_mutating_functions_without_dry_run(grants, unscoped, scoped):
    for (stack_name, fn), stmts in grants.items():
        passing = _pass_role_statements(stmts)
        if stack_name == scoped.name and fn in MAY_MUTATE_ECS:
            assert len(passing) == 1, (fn, passing)
        else:
            # DryRun=true (no UpdateService either) or a function that never mutates
            assert passing == [], (stack_name, fn, passing)
        # no other IAM action anywhere
        iam_actions = {a for a in allowed_actions(stmts) if a.lower().startswith("iam:")}
        assert iam_actions <= {"iam:PassRole"}, (stack_name, fn, iam_actions)


def test_pass_role_only_to_ecs_tasks_and_never_on_star(grants, scoped):
    for fn in MAY_MUTATE_ECS:
        ((src, s),) = _pass_role_statements(grants[(scoped.name, fn)])
        assert s["Effect"] == "Allow"
        assert as_list(s["Action"]) == ["iam:PassRole"], (fn, s)   # alone, with its own condition
        assert s["Condition"] == PASSED_TO_ECS_TASKS, (fn, s)
        assert "NotResource" not in s, (fn, s)
        for r in as_list(s["Resource"]):
            assert r != "*", (fn, r)
            assert r.startswith(f"arn:aws:iam::{ACCOUNT}:role/"), (fn, r)
        assert as_list(s["Resource"]) == [f"arn:aws:iam::{ACCOUNT}:role/{scoped.params['TaskRolePattern']}"]


def _may_pass(stmts, role_arn, to_service) -> bool:
    """PassRole allowed on role_arn to to_service? Only the condition shape
    asserted above (StringEquals on iam:PassedToService) is modelled."""
    for _, s in _pass_role_statements(stmts):
        if s["Effect"] != "Allow" or not any(fnmatch.fnmatchcase(role_arn, r) for r in as_list(s["Resource"])):
            continue
        cond = s.get("Condition") or {}
        assert set(cond) <= {"StringEquals"} and set(cond.get("StringEquals", {})) <= {"iam:PassedToService"}
        if to_service in as_list(cond.get("StringEquals", {}).get("iam:PassedToService", [to_service])):
            return True
    return False


@pytest.mark.parametrize("role,service,expected", [
    ("role/ecs/api-task", "ecs-tasks.amazonaws.com", True),        # task role under the path
    ("role/ecs/api-execution", "ecs-tasks.amazonaws.com", True),   # execution role under the path
    ("role/api-task", "ecs-tasks.amazonaws.com", False),           # outside TaskRolePattern
    ("role/ecs/api-task", "ecs.amazonaws.com", False),             # infrastructure roles: never
    ("role/ecs/api-task", "lambda.amazonaws.com", False),
    ("role/ecs/api-task", "ec2.amazonaws.com", False),
])
def test_pass_role_evaluated(grants, scoped, unscoped, role, service, expected):
    for fn in BINARIES:
        own = f"arn:aws:iam::{ACCOUNT}:{role}"
        other_account = f"arn:aws:iam::111122223333:{role}"
        assert _may_pass(grants[(scoped.name, fn)], own, service) is (expected and fn in MAY_MUTATE_ECS), fn
        assert not _may_pass(grants[(scoped.name, fn)], other_account, service), fn
        assert not _may_pass(grants[(unscoped.name, fn)], own, service), fn


# ---------------------------------------------------------------------------
# Application and build logs: only the log groups under LogGroupPrefixes
# (ecs-events, alarm-responder, runbook, scheduled-reports) and
# BuildLogGroupPrefixes (pipeline-events, scheduled-reports), never
# "log-group:*" or "*". A task definition names its log group, and anyone
# who may register one controls that name. Resource types (Service
# Authorization Reference, CloudWatch Logs): FilterLogEvents and
# CreateExportTask: log-group; GetLogEvents: log-stream;
# DescribeExportTasks: none ("*" is the only option).
# ---------------------------------------------------------------------------
OWN_LOG_WRITES = {"logs:CreateLogStream", "logs:PutLogEvents"}
LOGS_WITHOUT_RESOURCE_TYPES = {"logs:DescribeExportTasks"}
LOG_GROUP_ACTIONS = {"logs:FilterLogEvents", "logs:CreateExportTask"}
LOG_STREAM_ACTIONS = {"logs:GetLogEvents"}
READS_APP_LOGS = {"EcsEventsFunction", "AlarmResponderFunction", "RunbookFunction", "ScheduledReportsFunction",
                  "DeploymentHookFunction"}
READS_BUILD_LOGS = {"PipelineEventsFunction", "ScheduledReportsFunction"}


def log_reads_and_exports(stmts):
    """{action: set of resources} over the Allow statements, for every logs
    action except writing the function's own log group."""
    out = {}
    for _, s in stmts:
        if s["Effect"] != "Allow":
            continue
        for a in as_list(s["Action"]):
            if a.startswith("logs:") and a not in OWN_LOG_WRITES:
                out.setdefault(a, set()).update(as_list(s["Resource"]))
    return out


def prefixes_of(stack, param):
    return stack.param(param).split(",")


def test_no_log_read_or_export_on_every_log_group(grants):
    """(a) No logs read/export action of any function is granted on
    "log-group:*", on a wildcard account or region, or on "*" - except the
    actions that have no resource type at all."""
    checked = 0
    for key, stmts in grants.items():
        for action, resources in log_reads_and_exports(stmts).items():
            if action in LOGS_WITHOUT_RESOURCE_TYPES:
                assert resources == {"*"}, (key, action, resources)
                continue
            assert action in LOG_GROUP_ACTIONS | LOG_STREAM_ACTIONS, (key, action)
            for r in resources:
                checked += 1
                assert r != "*", (key, action)
                assert r.startswith(f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:"), (key, action, r)
                name = r.split(":log-group:", 1)[1]
                assert not name.startswith("*"), (key, action, r)      # log-group:* and log-group:*:log-stream:*
                assert len(name.split("*", 1)[0]) >= 2, (key, action, r)  # a real prefix, not "/"
    assert checked >= 20


@pytest.mark.parametrize("fn", sorted(BINARIES))
def test_log_groups_granted_are_exactly_the_configured_prefixes(grants, unscoped, scoped, fn):
    """(b) With the defaults (/ecs/, /aws/codebuild/) and with
    LogGroupPrefixes=/ecs/,/custom/ and BuildLogGroupPrefixes=/aws/codebuild/,/ci/builds/."""
    for st in (unscoped, scoped):
        granted = log_reads_and_exports(grants[(st.name, fn)])
        app = {f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{p}*" for p in prefixes_of(st, "LogGroupPrefixes")}
        build = {f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{p}*" for p in prefixes_of(st, "BuildLogGroupPrefixes")}
        streams = set()
        if fn in READS_APP_LOGS:
            streams |= {f"{g}:log-stream:*" for g in app}
        if fn in READS_BUILD_LOGS:
            streams |= {f"{g}:log-stream:*" for g in build}
        expected = {"logs:GetLogEvents": streams}
        if fn == "RunbookFunction":
            expected |= {"logs:CreateExportTask": app, "logs:DescribeExportTasks": {"*"}}
        if fn == "ScheduledReportsFunction":
            expected["logs:FilterLogEvents"] = app   # the daily report's error count
        assert granted == expected, (st.name, fn)


LOG_ARN = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:"


@pytest.mark.parametrize("action,resource,unscoped_ok,scoped_ok", [
    ("logs:GetLogEvents", f"{LOG_ARN}/ecs/api:log-stream:ecs/web/0123", True, True),
    ("logs:GetLogEvents", f"{LOG_ARN}/custom/worker:log-stream:x", False, True),
    ("logs:GetLogEvents", f"{LOG_ARN}/ecsother:log-stream:x", False, False),        # prefix, not substring
    ("logs:GetLogEvents", f"{LOG_ARN}/aws/lambda/anything:log-stream:x", False, False),
    ("logs:GetLogEvents", f"arn:aws:logs:{REGION}:111122223333:log-group:/ecs/api:log-stream:x", False, False),
    ("logs:GetLogEvents", f"{LOG_ARN}/secrets/vault:log-stream:x", False, False),
    ("logs:GetLogEvents", f"{LOG_ARN}/ecs/api", False, False),                      # a group is not a stream
])
def test_application_log_access_evaluated(grants, unscoped, scoped, action, resource, unscoped_ok, scoped_ok):
    for fn in READS_APP_LOGS:
        assert _allowed(grants[(unscoped.name, fn)], action, resource, {}) is unscoped_ok, (fn, action, resource)
        assert _allowed(grants[(scoped.name, fn)], action, resource, {}) is scoped_ok, (fn, action, resource)
    assert not _allowed(grants[(scoped.name, "PipelineEventsFunction")], action, resource, {}), resource


@pytest.mark.parametrize("resource,unscoped_ok,scoped_ok", [
    (f"{LOG_ARN}/ecs/api", True, True),
    (f"{LOG_ARN}/ecs/api:*", True, True),
    (f"{LOG_ARN}/custom/worker", False, True),
    (f"{LOG_ARN}/ecsother", False, False),
    (f"{LOG_ARN}/aws/codebuild/app", False, False),
    (f"arn:aws:logs:{REGION}:111122223333:log-group:/ecs/api", False, False),
])
def test_the_daily_reports_error_count_evaluated(grants, unscoped, scoped, resource, unscoped_ok, scoped_ok):
    """FilterLogEvents: scheduled-reports alone, on the application log groups."""
    for fn in BINARIES:
        mine = fn == "ScheduledReportsFunction"
        assert _allowed(grants[(unscoped.name, fn)], "logs:FilterLogEvents", resource, {}) is (
            mine and unscoped_ok), (fn, resource)
        assert _allowed(grants[(scoped.name, fn)], "logs:FilterLogEvents", resource, {}) is (
            mine and scoped_ok), (fn, resource)


@pytest.mark.parametrize("resource,unscoped_ok,scoped_ok", [
    (f"{LOG_ARN}/ecs/api", True, True),
    (f"{LOG_ARN}/custom/worker", False, True),
    (f"{LOG_ARN}/aws/lambda/autopilot-runbook", False, False),
    (f"{LOG_ARN}/aws/cloudtrail", False, False),
])
def test_log_export_evaluated(grants, unscoped, scoped, resource, unscoped_ok, scoped_ok):
    """The runbook can export only log groups under LogGroupPrefixes; nobody else exports."""
    for fn in BINARIES:
        may_export = fn == "RunbookFunction"
        assert _allowed(grants[(unscoped.name, fn)], "logs:CreateExportTask", resource, {}) is (
            may_export and unscoped_ok), fn
        assert _allowed(grants[(scoped.name, fn)], "logs:CreateExportTask", resource, {}) is (
            may_export and scoped_ok), fn


@pytest.mark.parametrize("resource,ok", [
    (f"{LOG_ARN}/aws/codebuild/app:log-stream:0123", True),
    (f"{LOG_ARN}/ci/builds/app:log-stream:0123", None),   # scoped only
    (f"{LOG_ARN}/aws/codebuild/app", False),              # a group is not a stream
    (f"{LOG_ARN}/ecs/api:log-stream:0123", False),
])
def test_build_log_access_evaluated(grants, unscoped, scoped, resource, ok):
    fn = "PipelineEventsFunction"
    assert _allowed(grants[(unscoped.name, fn)], "logs:GetLogEvents", resource, {}) is bool(ok)
    assert _allowed(grants[(scoped.name, fn)], "logs:GetLogEvents", resource, {}) is (ok is not False)
    for other in ("EcsEventsFunction", "AlarmResponderFunction", "RunbookFunction"):
        if "codebuild" in resource or "builds" in resource:
            assert not _allowed(grants[(scoped.name, other)], "logs:GetLogEvents", resource, {}), other


def test_resolver_agrees_with_moto_on_the_log_policies(grants, translated, unscoped, scoped):
    """The intrinsic-function resolver (conftest.py) that test_template.py
    and test_iam_from_code.py use gives the same log statements as moto's
    CloudFormation for both parameter sets."""
    def same(want, got):
        assert sorted(json.dumps(s, sort_keys=True) for s in got) == sorted(
            json.dumps(s, sort_keys=True) for s in want)

    for st in (unscoped, scoped):
        res = Resolver(translated, st.params, stack_name=st.name).resources()
        for policy, fn in (("ApplicationLogsReadPolicy", "EcsEventsFunction"),
                           ("PipelineReadPolicy", "PipelineEventsFunction")):
            want = [s for s in res[policy]["Properties"]["PolicyDocument"]["Statement"]
                    if "logs:GetLogEvents" in as_list(s["Action"])]
            got = [s for _, s in grants[(st.name, fn)] if s.get("Sid") in {w["Sid"] for w in want}]
            same(want, got)
        (inline,) = res["ScheduledReportsRole"]["Properties"]["Policies"]
        want = [s for s in inline["PolicyDocument"]["Statement"] if s["Sid"] == "CountApplicationLogErrors"]
        got = [s for _, s in grants[(st.name, "ScheduledReportsFunction")] if s.get("Sid") == "CountApplicationLogErrors"]
        same(want, got)


def test_a_sixth_log_group_prefix_is_refused_at_deploy(aws, translated, artifact):
    """moto's IAM refuses a Resource that is not an ARN as IAM does, so the
    guard (LogGroupPrefixesLimit) stops the stack with the parameter's name."""
    import botocore.exceptions

    params = {"LogGroupPrefixes": ",".join(f"/p{i}/" for i in range(6))}
    with pytest.raises(botocore.exceptions.ClientError) as err:
        create_stack(aws, translated, f"autopilot-six-{uuid.uuid4().hex[:6]}", params)
    assert "LogGroupPrefixes-takes-at-most-five-prefixes" in str(err.value)


# ---------------------------------------------------------------------------
# (c) Key policy: every statement for a service principal is bound to this
# account, and to this stack's source resources where the service sends
# them. moto keeps no key policy it can return, so the translated template
# is resolved for the parameter sets (conftest.Resolver; checked against
# moto above).
# ---------------------------------------------------------------------------
def key_statements(translated, params):
    res = Resolver(translated, params).resources()
    return {s["Sid"]: s for s in res["AutopilotKey"]["Properties"]["KeyPolicy"]["Statement"]}


# The parameter sets of the key policy test: defaults, and an alarm topic of
# another account (the SNS redrive statement exists only with one).
KEY_POLICY_PARAMS = [
    {},
    {"AlarmSnsTopicArn": "arn:aws:sns:us-east-1:111122223333:alarms", "LogGroupPrefixes": "/ecs/,/custom/"},
]


@pytest.mark.parametrize("params", KEY_POLICY_PARAMS)
def test_key_policy_service_statements_are_bound_to_their_source(translated, params):
    """Every key-policy statement for a service principal carries
    aws:SourceAccount (confused-deputy prevention), and the source ARN or
    encryption context of this stack's resources where the service sends
    them. The one ...IfExists: the log-group encryption flow, documented with
    the encryption context only (see the template)."""
    stmts = key_statements(translated, params)
    services = {sid: s for sid, s in stmts.items() if "Service" in s["Principal"]}
    expected = {"CloudWatchAlarmsPublishToEncryptedTopic", "EventBridgeDeadLettersToEncryptedQueue",
                "CloudWatchLogsEncryptLogGroups", "CloudWatchLogsExportToEvidenceBucket"}
    if params.get("AlarmSnsTopicArn"):
        expected.add("SnsRedriveToEncryptedQueue")
    assert set(services) == expected
    for sid, s in services.items():
        cond = s.get("Condition", {})
        operator = "StringEqualsIfExists" if sid == "CloudWatchLogsEncryptLogGroups" else "StringEquals"
        source_account = cond.get(operator, {}).get("aws:SourceAccount")
        assert source_account, (sid, cond)
        others = {op for op, keys in cond.items() if "aws:SourceAccount" in keys} - {operator}
        assert not others, (sid, cond)
        if sid == "SnsRedriveToEncryptedQueue":
            # the alarm topic's own account, and that topic only
            assert source_account == "111122223333"
            assert cond["ArnEquals"] == {"aws:SourceArn": params["AlarmSnsTopicArn"]}
        else:
            assert source_account == ACCOUNT, sid
    cw = services["CloudWatchAlarmsPublishToEncryptedTopic"]["Condition"]
    assert cw["ArnLike"] == {"aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:autopilot-*"}
    assert cw["StringEquals"]["kms:EncryptionContext:aws:sns:topicArn"] == (
        f"arn:aws:sns:{REGION}:{ACCOUNT}:autopilot-notifications")
    events = services["EventBridgeDeadLettersToEncryptedQueue"]["Condition"]
    assert events["ArnLike"] == {"aws:SourceArn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/autopilot-*"}
    logs = services["CloudWatchLogsEncryptLogGroups"]["Condition"]
    assert "kms:EncryptionContext:aws:logs:arn" in logs["ArnLike"]
