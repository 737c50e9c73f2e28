# Deploy ecs-autopilot's SAM template (../template.yaml) as a CloudFormation
# stack from Terraform.
#
# The template uses the AWS::Serverless transform and local code, so it is
# built and packaged by SAM first; Terraform then uploads the packaged template
# and creates the stack from it (the template is larger than the 51,200 bytes
# CloudFormation accepts inline, hence template_url):
#
#   sam build -t infra/template.yaml
#   sam package --s3-bucket <artifact-bucket> --output-template-file infra/terraform/packaged.yaml
#   terraform -chdir=infra/terraform init
#   terraform -chdir=infra/terraform apply -var artifact_bucket=<artifact-bucket>
#
# Re-run the three commands after a code change: the packaged template then
# points at new code objects, its hash changes, and so does the stack.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 7.0"
    }
  }
}

provider "aws" {
  region = var.region
}

variable "region" {
  description = "Region to deploy to (the artifact bucket must be in it)."
  type        = string
  default     = "eu-west-1"
}

variable "stack_name" {
  description = "CloudFormation stack name; prefixes every function, topic, table and alarm."
  type        = string
  default     = "ecs-autopilot"

  validation {
    condition     = length(var.stack_name) <= 40
    error_message = "At most 40 characters: the name prefixes function, rule and alarm names."
  }
}

variable "artifact_bucket" {
  description = "Existing, encrypted S3 bucket that `sam package` uploaded the function code to."
  type        = string
}

variable "packaged_template" {
  description = "Template written by `sam package --output-template-file`."
  type        = string
  default     = "packaged.yaml"
}

variable "clusters" {
  description = "Clusters: ECS cluster names in scope (at most 10); empty = all clusters."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.clusters) <= 10
    error_message = "At most ten clusters (the template's Cluster0..9 slots)."
  }
}

variable "dry_run" {
  description = "DryRun: true = plan and report only, no mutating call (start here)."
  type        = bool
  default     = true
}

variable "task_role_pattern" {
  description = "TaskRolePattern: roles (after role/) the mutating functions may pass to ECS tasks."
  type        = string
  default     = "*"
}

variable "alarm_name_prefix" {
  description = "AlarmNamePrefix: only alarms whose name starts with this reach the alarm-responder; empty = all (ALARM_NAME_PREFIX)."
  type        = string
  default     = ""
}

variable "alarm_sns_topic_arn" {
  description = "AlarmSnsTopicArn: existing SNS topic your alarms notify; the alarm-responder is subscribed to it and takes SNS-wrapped alarms only from it (ALARM_TOPIC_ARNS)."
  type        = string
  default     = ""
}

variable "runbook_callers" {
  description = "RunbookCallers: JSON object mapping a runbook action (or \"*\") to the IAM ARN patterns that may call it through the function URL (RUNBOOK_CALLERS); empty = none."
  type        = string
  default     = ""
}

variable "hook_bake_seconds" {
  description = "HookBakeSeconds: seconds a target revision must stay clean at a stage before the deployment hook answers SUCCEEDED (HOOK_BAKE_SECONDS)."
  type        = number
  default     = 300
}

variable "hook_on_read_failure" {
  description = "HookOnReadFailure: what an unreadable service means to the deployment hook, fail (FAILED, ECS rolls back) or pass (HOOK_ON_READ_FAILURE)."
  type        = string
  default     = "fail"
}

variable "log_group_prefixes" {
  description = "LogGroupPrefixes: application log groups the functions may read and export (LOG_GROUP_PREFIXES)."
  type        = list(string)
  default     = ["/ecs/"]

  validation {
    condition     = length(var.log_group_prefixes) >= 1 && length(var.log_group_prefixes) <= 5
    error_message = "One to five log group name prefixes."
  }
}

variable "production_pipelines" {
  description = "ProductionPipelines: name patterns of the pipelines whose failures are SEV2 (PRODUCTION_PIPELINES); the autopilot:env tag wins."
  type        = list(string)
  default     = ["*-prod", "*-production", "*prod/*"]
}

variable "build_log_group_prefixes" {
  description = "BuildLogGroupPrefixes: CodeBuild log groups pipeline-events may read (BUILD_LOG_GROUP_PREFIXES)."
  type        = list(string)
  default     = ["/aws/codebuild/"]

  validation {
    condition     = length(var.build_log_group_prefixes) >= 1 && length(var.build_log_group_prefixes) <= 5
    error_message = "One to five log group name prefixes."
  }
}

variable "time_zone" {
  description = "TimeZone: IANA time zone of the report schedules."
  type        = string
  default     = "UTC"
}

variable "function_concurrency_limit" {
  description = "FunctionConcurrencyLimit: reserved concurrency per function; 0 = none."
  type        = number
  default     = 0
}

variable "incident_window_minutes" {
  description = "IncidentWindowMinutes (INCIDENT_WINDOW_MINUTES)."
  type        = number
  default     = 60
}

variable "update_interval_minutes" {
  description = "UpdateIntervalMinutes (UPDATE_INTERVAL_MINUTES)."
  type        = number
  default     = 15
}

variable "crash_loop_threshold" {
  description = "CrashLoopThreshold (CRASH_LOOP_THRESHOLD)."
  type        = number
  default     = 3
}

variable "log_lines" {
  description = "LogLines (LOG_LINES)."
  type        = number
  default     = 20
}

variable "escalate_after_minutes" {
  description = "EscalateAfterMinutes (ESCALATE_AFTER_MINUTES)."
  type        = number
  default     = 15
}

variable "rollback_max_per_30m" {
  description = "RollbackMaxPer30m (ROLLBACK_MAX_PER_30M)."
  type        = number
  default     = 1
}

variable "rollback_max_per_day" {
  description = "RollbackMaxPerDay (ROLLBACK_MAX_PER_DAY)."
  type        = number
  default     = 3
}

variable "scale_max_per_30m" {
  description = "ScaleMaxPer30m (SCALE_MAX_PER_30M)."
  type        = number
  default     = 3
}

variable "scale_max_per_day" {
  description = "ScaleMaxPerDay (SCALE_MAX_PER_DAY)."
  type        = number
  default     = 10
}

variable "action_cooldown_minutes" {
  description = "ActionCooldownMinutes (ACTION_COOLDOWN_MINUTES)."
  type        = number
  default     = 5
}

variable "rollback_window_minutes" {
  description = "RollbackWindowMinutes (ROLLBACK_WINDOW_MINUTES)."
  type        = number
  default     = 60
}

variable "max_tasks" {
  description = "MaxTasks (MAX_TASKS)."
  type        = number
  default     = 50
}

variable "notification_email" {
  description = "NotificationEmail: optional e-mail subscribed to the notification topic."
  type        = string
  default     = ""
}

variable "pager_email" {
  description = "PagerEmail: optional pager e-mail, subscribed with the pager filter policy (SEV1, SEV2, self-alarms)."
  type        = string
  default     = ""
}

variable "metrics_namespace" {
  description = "MetricsNamespace (METRICS_NAMESPACE)."
  type        = string
  default     = "EcsAutopilot"
}

variable "log_retention_days" {
  description = "LogRetentionDays: retention of the functions' log groups."
  type        = number
  default     = 30
}

variable "evidence_retention_days" {
  description = "EvidenceRetentionDays: expiry of evidence and reports (at least 91)."
  type        = number
  default     = 400
}

variable "enable_object_lock" {
  description = "EnableObjectLock: create the evidence bucket with Object Lock (decide at creation)."
  type        = bool
  default     = false
}

variable "object_lock_retention_days" {
  description = "ObjectLockRetentionDays: default retention when Object Lock is on."
  type        = number
  default     = 30
}

variable "stack_events_topic_arns" {
  description = "SNS topics that receive the stack's CloudFormation events (e.g. your ops topic)."
  type        = list(string)
  default     = []
}

resource "aws_s3_object" "packaged_template" {
  bucket                 = var.artifact_bucket
  key                    = "${var.stack_name}/templates/${filemd5(var.packaged_template)}.yaml"
  source                 = var.packaged_template
  server_side_encryption = "aws:kms"
}

resource "aws_cloudformation_stack" "autopilot" {
  # checkov:skip=CKV_AWS_124:Stack events go to var.stack_events_topic_arns, empty by default because the notification topic is created by this very stack; set it to your ops topic.
  name         = var.stack_name
  template_url = "https://${var.artifact_bucket}.s3.${var.region}.amazonaws.com/${aws_s3_object.packaged_template.key}"
  capabilities = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]

  # Every template parameter, with the template's defaults (test_packaging.py
  # keeps the two in step).
  parameters = {
    Clusters                 = join(",", var.clusters)
    DryRun                   = tostring(var.dry_run)
    TaskRolePattern          = var.task_role_pattern
    RunbookCallers           = var.runbook_callers
    AlarmNamePrefix          = var.alarm_name_prefix
    AlarmSnsTopicArn         = var.alarm_sns_topic_arn
    LogGroupPrefixes         = join(",", var.log_group_prefixes)
    BuildLogGroupPrefixes    = join(",", var.build_log_group_prefixes)
    ProductionPipelines      = join(",", var.production_pipelines)
    TimeZone                 = var.time_zone
    FunctionConcurrencyLimit = tostring(var.function_concurrency_limit)
    IncidentWindowMinutes    = tostring(var.incident_window_minutes)
    UpdateIntervalMinutes    = tostring(var.update_interval_minutes)
    CrashLoopThreshold       = tostring(var.crash_loop_threshold)
    LogLines                 = tostring(var.log_lines)
    EscalateAfterMinutes     = tostring(var.escalate_after_minutes)
    RollbackMaxPer30m        = tostring(var.rollback_max_per_30m)
    RollbackMaxPerDay        = tostring(var.rollback_max_per_day)
    ScaleMaxPer30m           = tostring(var.scale_max_per_30m)
    ScaleMaxPerDay           = tostring(var.scale_max_per_day)
    ActionCooldownMinutes    = tostring(var.action_cooldown_minutes)
    RollbackWindowMinutes    = tostring(var.rollback_window_minutes)
    MaxTasks                 = tostring(var.max_tasks)
    NotificationEmail        = var.notification_email
    PagerEmail               = var.pager_email
    MetricsNamespace         = var.metrics_namespace
    LogRetentionDays         = tostring(var.log_retention_days)
    EvidenceRetentionDays    = tostring(var.evidence_retention_days)
    EnableObjectLock         = tostring(var.enable_object_lock)
    ObjectLockRetentionDays  = tostring(var.object_lock_retention_days)
    HookBakeSeconds          = tostring(var.hook_bake_seconds)
    HookOnReadFailure        = var.hook_on_read_failure
  }

  notification_arns = var.stack_events_topic_arns

  tags = {
    "app" = "ecs-autopilot"
  }
}

# Every stack output (the first four keep their earlier names).
output "notification_topic_arn" {
  description = "NotificationTopicArn: SNS topic for every notification (NOTIFY_TOPIC_ARN)."
  value       = aws_cloudformation_stack.autopilot.outputs["NotificationTopicArn"]
}

output "evidence_bucket" {
  description = "EvidenceBucketName: evidence and report bucket (EVIDENCE_BUCKET)."
  value       = aws_cloudformation_stack.autopilot.outputs["EvidenceBucketName"]
}

output "state_table" {
  description = "StateTableName: state table (STATE_TABLE)."
  value       = aws_cloudformation_stack.autopilot.outputs["StateTableName"]
}

output "runbook_function" {
  description = "RunbookFunctionName: aws lambda invoke --function-name <this>."
  value       = aws_cloudformation_stack.autopilot.outputs["RunbookFunctionName"]
}

output "runbook_function_url" {
  description = "RunbookFunctionUrl: IAM-authenticated URL of the runbook (SigV4); callers checked against RunbookCallers."
  value       = aws_cloudformation_stack.autopilot.outputs["RunbookFunctionUrl"]
}

output "trigger_dead_letter_queue_url" {
  description = "TriggerDeadLetterQueueUrl: events EventBridge, Scheduler or SNS could not deliver."
  value       = aws_cloudformation_stack.autopilot.outputs["TriggerDeadLetterQueueUrl"]
}

output "failed_invocations_queue_url" {
  description = "FailedInvocationsQueueUrl: asynchronous invocations that failed after Lambda's retries."
  value       = aws_cloudformation_stack.autopilot.outputs["FailedInvocationsQueueUrl"]
}

output "key_arn" {
  description = "KeyArn: KMS key of the topic, bucket, table, queues and logs."
  value       = aws_cloudformation_stack.autopilot.outputs["KeyArn"]
}

output "ecs_events_function_arn" {
  description = "EcsEventsFunctionArn."
  value       = aws_cloudformation_stack.autopilot.outputs["EcsEventsFunctionArn"]
}

output "alarm_responder_function_arn" {
  description = "AlarmResponderFunctionArn."
  value       = aws_cloudformation_stack.autopilot.outputs["AlarmResponderFunctionArn"]
}

output "pipeline_events_function_arn" {
  description = "PipelineEventsFunctionArn."
  value       = aws_cloudformation_stack.autopilot.outputs["PipelineEventsFunctionArn"]
}

output "scheduled_reports_function_arn" {
  description = "ScheduledReportsFunctionArn."
  value       = aws_cloudformation_stack.autopilot.outputs["ScheduledReportsFunctionArn"]
}

output "runbook_function_arn" {
  description = "RunbookFunctionArn."
  value       = aws_cloudformation_stack.autopilot.outputs["RunbookFunctionArn"]
}

output "deployment_hook_function_arn" {
  description = "DeploymentHookFunctionArn: HookTargetArn of a service's deployment lifecycle hook."
  value       = aws_cloudformation_stack.autopilot.outputs["DeploymentHookFunctionArn"]
}

output "deployment_hook_invoke_role_arn" {
  description = "DeploymentHookInvokeRoleArn: RoleArn of a service's deployment lifecycle hook (ECS assumes it to invoke the hook)."
  value       = aws_cloudformation_stack.autopilot.outputs["DeploymentHookInvokeRoleArn"]
}
