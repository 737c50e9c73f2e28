"""The translated template deployed into moto's CloudFormation (both stacks,
see conftest.py), then inspected through the service APIs with boto3.

What moto's CloudFormation skips or drops is listed in conftest.py and checked
on the translated template in test_template.py.
"""

from __future__ import annotations

import json

from conftest import (ACCOUNT, BINARIES, ENV_PARAMETERS, FLEET_ENV_PARAMETERS, FLEET_FUNCTIONS, REGION, ROLES,
                      RULE_TARGET, RULES, without_novalue)


def function_name(stack, logical):
    return f"{stack.name}-{BINARIES[logical]}"


def test_stack_outputs(stack, aws):
    out = stack.outputs
    assert out["NotificationTopicArn"] == f"arn:aws:sns:{REGION}:{ACCOUNT}:{stack.name}-notifications"
    assert out["StateTableName"] == f"{stack.name}-state"
    assert out["EvidenceBucketName"] == stack.resources["EvidenceBucket"]
    for logical in BINARIES:
        assert out[f"{logical}Arn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name(stack, logical)}"


def test_functions(stack, aws):
    lam = aws("lambda")
    roles = set()
    for logical in BINARIES:
        fn = lam.get_function(FunctionName=function_name(stack, logical))
        cfg = fn["Configuration"]
        assert cfg["Runtime"] == "provided.al2023"
        assert cfg["Handler"] == "bootstrap"
        # Architectures: moto ignores the property (reports x86_64); the
        # translated template is checked for arm64 in test_template.py.
        # moto keeps a Number parameter's default as a number; CloudFormation
        # (and Lambda) pass strings
        env = {k: str(v) for k, v in cfg["Environment"]["Variables"].items()}
        assert env == {
            "NOTIFY_TOPIC_ARN": stack.outputs["NotificationTopicArn"],
            "EVIDENCE_BUCKET": stack.outputs["EvidenceBucketName"],
            "STATE_TABLE": stack.outputs["StateTableName"],
            "EVIDENCE_KMS_KEY_ID": stack.outputs["KeyArn"],
            "STACK_NAME": stack.name,
            # every tunable, as passed or defaulted (list parameters joined by ",")
            **{var: stack.param(param) for var, param in ENV_PARAMETERS.items()},
            # the fleet's, on the five functions that act in member accounts
            **({var: stack.param(param) for var, param in FLEET_ENV_PARAMETERS.items()}
               if logical in FLEET_FUNCTIONS else {}),
        }
        assert cfg["Role"].split("/")[-1] == stack.resources[ROLES[logical]]
        roles.add(cfg["Role"])
        expected_timeout = {"PipelineEventsFunction": 30, "ScheduledReportsFunction": 300,
                            "RunbookFunction": 300, "DeploymentHookFunction": 60}.get(logical, 90)
        assert cfg["Timeout"] == expected_timeout
        assert cfg["MemorySize"] == (512 if logical == "ScheduledReportsFunction" else 256)
        concurrency = fn.get("Concurrency", {}).get("ReservedConcurrentExecutions")
        if stack.params.get("FunctionConcurrencyLimit"):
            assert concurrency == int(stack.params["FunctionConcurrencyLimit"])
        else:
            assert concurrency is None
    assert len(roles) == len(BINARIES), "every function must have its own role"


def test_rules_target_their_function_with_retry_and_dlq(stack, aws):
    events = aws("events")
    dlq_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{stack.name}-trigger-dlq"
    for logical, suffix in RULES.items():
        name = f"{stack.name}-{suffix}"
        rule = events.describe_rule(Name=name)
        assert rule["State"] == "ENABLED"
        (target,) = events.list_targets_by_rule(Rule=name)["Targets"]
        fn = function_name(stack, RULE_TARGET[logical])
        assert target["Arn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{fn}"
        assert target["DeadLetterConfig"] == {"Arn": dlq_arn}
        assert target["RetryPolicy"] == {"MaximumRetryAttempts": 24, "MaximumEventAgeInSeconds": 3600}


def test_rule_patterns_resolved(stack, aws):
    """The patterns as CloudFormation resolves them for each parameter set
    (conditions, per-cluster ARNs, alarm prefix)."""
    events = aws("events")

    def pattern(suffix):
        return without_novalue(json.loads(events.describe_rule(Name=f"{stack.name}-{suffix}")["EventPattern"]))

    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}"
    task = pattern("ecs-task-stopped")
    assert task["source"] == ["aws.ecs"]
    assert task["detail-type"] == ["ECS Task State Change"]
    assert task["detail"]["lastStatus"] == ["STOPPED"]
    assert task["detail"]["group"] == [{"prefix": "service:"}]
    action = pattern("ecs-service-action")
    assert "SERVICE_STEADY_STATE" in action["detail"]["eventName"]
    assert "SERVICE_DESIRED_COUNT_UPDATED" not in action["detail"]["eventName"]
    deployment = pattern("ecs-deployment")
    assert deployment["detail"]["eventName"] == [
        "SERVICE_DEPLOYMENT_IN_PROGRESS", "SERVICE_DEPLOYMENT_COMPLETED", "SERVICE_DEPLOYMENT_FAILED"]
    alarm = pattern("alarm-state-change")
    assert alarm["detail"]["state"] == {"value": ["ALARM", "OK"]}
    if stack.clusters:
        clusters = [f"{arn}:cluster/{c}" for c in ("prod", "staging")]
        assert task["detail"]["clusterArn"] == clusters
        assert action["detail"]["clusterArn"] == clusters
        assert deployment["resources"] == [{"prefix": f"{arn}:service/{c}/"} for c in ("prod", "staging")]
        assert alarm["detail"]["alarmName"] == [{"prefix": "prod-"}]
    else:
        assert "clusterArn" not in task["detail"]
        assert "clusterArn" not in action["detail"]
        assert "resources" not in deployment
        assert alarm["detail"]["alarmName"] == [{"anything-but": {"prefix": f"{stack.name}-"}}]


def test_rules_may_invoke_their_function(stack, aws):
    lam = aws("lambda")
    for logical, suffix in RULES.items():
        policy = json.loads(lam.get_policy(FunctionName=function_name(stack, RULE_TARGET[logical]))["Policy"])
        rule_arn = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{stack.name}-{suffix}"
        matching = [
            s for s in policy["Statement"]
            if s["Principal"] == {"Service": "events.amazonaws.com"}
            and s["Condition"]["ArnLike"]["AWS:SourceArn"] == rule_arn
        ]
        assert len(matching) == 1, (suffix, policy)
        assert matching[0]["Action"] == "lambda:InvokeFunction"


def test_topic_is_kms_encrypted(stack, aws):
    key_arn = stack.outputs["KeyArn"]
    assert key_arn == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{stack.resources['AutopilotKey']}"
    attrs = aws("sns").get_topic_attributes(TopicArn=stack.outputs["NotificationTopicArn"])["Attributes"]
    assert attrs["KmsMasterKeyId"] == key_arn
    # The key itself (rotation, key policy) is checked on the template: a key
    # created through moto's CloudFormation keeps its policy as a dict and
    # moto's DescribeKey/GetKeyPolicy then fail with a 500.


def test_bucket_is_kms_encrypted(stack, aws):
    enc = aws("s3").get_bucket_encryption(Bucket=stack.outputs["EvidenceBucketName"])
    (rule,) = enc["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": stack.outputs["KeyArn"]}
    # BucketKeyEnabled (moto's CloudFormation maps it to False), versioning,
    # public access block, TLS-only policy, lifecycle and Object Lock are not
    # applied by moto's CloudFormation: see test_template.py.


def test_table(stack, aws):
    t = aws("dynamodb").describe_table(TableName=stack.outputs["StateTableName"])["Table"]
    assert t["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"},
                              {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert sorted((a["AttributeName"], a["AttributeType"]) for a in t["AttributeDefinitions"]) == [
        ("open_index", "S"), ("open_since", "N"), ("pk", "S"), ("sk", "S")]
    # The sparse index of open incidents (shared/src/adapters/state/incidents.rs).
    (index,) = t["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "open-incident-keys"
    assert index["KeySchema"] == [{"AttributeName": "open_index", "KeyType": "HASH"},
                                  {"AttributeName": "open_since", "KeyType": "RANGE"}]
    assert index["Projection"]["ProjectionType"] == "KEYS_ONLY"
    assert t["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    # SSE (moto reads the API's "Enabled" key, not CloudFormation's
    # "SSEEnabled"), TTL and point-in-time recovery are not applied by moto's
    # CloudFormation: see test_template.py.


def test_queues_are_encrypted_and_keep_messages_for_14_days(stack, aws):
    sqs = aws("sqs")
    for suffix in ("trigger-dlq", "failed-invocations"):
        url = sqs.get_queue_url(QueueName=f"{stack.name}-{suffix}")["QueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attrs["KmsMasterKeyId"] == stack.outputs["KeyArn"]
        assert attrs["MessageRetentionPeriod"] == "1209600"


def test_log_groups(stack, aws):
    logs = aws("logs")
    retention = int(stack.params.get("LogRetentionDays", "30"))
    for logical in BINARIES:
        name = f"/aws/lambda/{function_name(stack, logical)}"
        (group,) = [g for g in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
                    if g["logGroupName"] == name]
        assert group["retentionInDays"] == retention
        # KmsKeyId is not passed on by moto's CloudFormation: see test_template.py.
