"""Least privilege, checked on the IAM policies as deployed (moto resolves the
conditions and per-cluster ARNs; null list entries from AWS::NoValue are
stripped, see conftest.py)."""

from __future__ import annotations

import ast
import fnmatch
import json
import urllib.parse

import pytest

from conftest import ACCOUNT, BINARIES, REGION, ROLES, without_novalue

# Read/List actions without resource-level permissions in the Service
# Authorization Reference: the only actions allowed on Resource "*".
STAR_ALLOWED = {
    "ecs:ListClusters", "ecs:ListServices", "ecs:ListTasks", "ecs:DescribeTaskDefinition",
    "ecs:ListTaskDefinitions", "ecs:ListTaskDefinitionFamilies",
    "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeRules", "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "application-autoscaling:DescribeScalableTargets", "application-autoscaling:DescribeScalingPolicies",
    "application-autoscaling:DescribeScalingActivities",
    "cloudwatch:GetMetricData", "cloudwatch:GetMetricStatistics", "cloudwatch:ListMetrics",
    "logs:StopQuery", "logs:DescribeExportTasks",
}
READ_VERBS = ("Describe", "List", "Get", "BatchGet", "Filter", "StartQuery", "Query", "ConditionCheck")
ECS_MUTATORS = {"ecs:UpdateService", "ecs:StopServiceDeployment"}
MAY_MUTATE_ECS = {"EcsEventsFunction", "AlarmResponderFunction", "RunbookFunction"}


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
            if writes:
                for r in as_list(s["Resource"]):
                    assert r != "*" and f":{REGION}:" in r or r.startswith("arn:aws:s3:::"), (key, src, r)
                    checked += 1
    assert checked > 20


def test_only_three_functions_may_mutate_ecs_and_only_without_dry_run(grants, unscoped, scoped):
    for (stack_name, fn), stmts in grants.items():
        ecs_writes = {a for a in allowed_actions(stmts) if a.startswith("ecs:") and not is_read(a)}
        if stack_name == scoped.name and fn in MAY_MUTATE_ECS:
            assert ecs_writes == ECS_MUTATORS, fn
        else:
            # DryRun=true (unscoped) or a read+notify function: no ECS write at all
            assert ecs_writes == set(), (stack_name, fn, ecs_writes)
    for fn in ("PipelineEventsFunction",):
        for st in (unscoped, scoped):
            assert not any(a.startswith("ecs:") for a in allowed_actions(grants[(st.name, fn)]))


def test_ecs_mutations_need_the_opt_in_tag_and_a_cluster_in_scope(grants, scoped):
    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}"
    expected = {
        "ecs:UpdateService": [f"{arn}:service/prod/*", f"{arn}:service/staging/*"],
        "ecs:StopServiceDeployment": [f"{arn}:service-deployment/prod/*", f"{arn}:service-deployment/staging/*"],
    }
    for fn in MAY_MUTATE_ECS:
        for src, s in grants[(scoped.name, fn)]:
            actions = set(as_list(s["Action"]))
            if actions & ECS_MUTATORS:
                (action,) = actions
                assert s["Resource"] == expected[action], (fn, s)
                assert s["Condition"] == {"StringEquals": {"aws:ResourceTag/autopilot:mode": "auto"}}
                # a service of another cluster is not covered
                assert not any(fnmatch.fnmatch(f"{arn}:service/dev/api", r) for r in s["Resource"])


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
                if {"s3:PutObject", "s3:GetObject"} & set(actions):
                    assert res == [f"arn:aws:s3:::{bucket}/*"]
                    seen.add("s3")
                if any(a.startswith("dynamodb:") for a in actions):
                    assert res == [table]
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
                                    "logs:PutLogEvents", "kms:")))


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
