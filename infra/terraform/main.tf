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
  description = "ECS cluster names in scope (at most 10); empty = all clusters."
  type        = list(string)
  default     = []
}

variable "dry_run" {
  description = "true = plan and report only, no mutating call (start here)."
  type        = bool
  default     = true
}

variable "alarm_name_prefix" {
  description = "Only alarms whose name starts with this reach the alarm-responder; empty = all."
  type        = string
  default     = ""
}

variable "notification_email" {
  description = "Optional e-mail subscribed to the notification topic."
  type        = string
  default     = ""
}

variable "time_zone" {
  description = "IANA time zone of the report schedules."
  type        = string
  default     = "UTC"
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

  parameters = {
    Clusters          = join(",", var.clusters)
    DryRun            = tostring(var.dry_run)
    AlarmNamePrefix   = var.alarm_name_prefix
    NotificationEmail = var.notification_email
    TimeZone          = var.time_zone
  }

  notification_arns = var.stack_events_topic_arns

  tags = {
    "app" = "ecs-autopilot"
  }
}

output "notification_topic_arn" {
  value = aws_cloudformation_stack.autopilot.outputs["NotificationTopicArn"]
}

output "evidence_bucket" {
  value = aws_cloudformation_stack.autopilot.outputs["EvidenceBucketName"]
}

output "state_table" {
  value = aws_cloudformation_stack.autopilot.outputs["StateTableName"]
}

output "runbook_function" {
  value = aws_cloudformation_stack.autopilot.outputs["RunbookFunctionName"]
}
