//! CodePipeline (reads only): an execution's source revisions, its action
//! executions with their configuration and errors, the pipeline's stage
//! states (approvals) and its tags.

use super::{AwsError, Clients, aws_error};
use crate::pipeline::{ActionFacts, ExecutionFacts, SourceRevision, StageFacts};

/// Pages of `ListActionExecutions` read at most (100 action executions each).
const ACTION_PAGES: usize = 5;

fn secs(t: Option<&aws_sdk_codepipeline::primitives::DateTime>) -> Option<i64> {
    t.map(|t| t.secs())
}

pub async fn execution(clients: &Clients, pipeline: &str, execution_id: &str) -> Result<ExecutionFacts, AwsError> {
    let resp = clients
        .codepipeline()
        .get_pipeline_execution()
        .pipeline_name(pipeline)
        .pipeline_execution_id(execution_id)
        .send()
        .await
        .map_err(|e| aws_error("codepipeline", "GetPipelineExecution", format!("{pipeline} {execution_id}"), &e))?;
    let Some(x) = resp.pipeline_execution() else {
        return Ok(ExecutionFacts { execution_id: execution_id.into(), ..Default::default() });
    };
    Ok(ExecutionFacts {
        execution_id: x.pipeline_execution_id().unwrap_or(execution_id).to_string(),
        status: x.status().map(|s| s.as_str().to_string()),
        status_summary: x.status_summary().map(str::to_string),
        revisions: x
            .artifact_revisions()
            .iter()
            .map(|r| SourceRevision {
                artifact: r.name().unwrap_or_default().to_string(),
                revision_id: r.revision_id().map(str::to_string),
                summary: r.revision_summary().map(str::to_string),
                url: r.revision_url().map(str::to_string),
                created_at: secs(r.created()),
            })
            .collect(),
        trigger: x.trigger().map(|t| {
            let kind = t.trigger_type().map(|k| k.as_str().to_string()).unwrap_or_default();
            match t.trigger_detail() {
                Some(d) => format!("{kind} ({d})"),
                None => kind,
            }
        }),
    })
}

/// The action executions of one pipeline execution, newest first.
pub async fn action_executions(
    clients: &Clients,
    pipeline: &str,
    execution_id: &str,
) -> Result<Vec<ActionFacts>, AwsError> {
    use aws_sdk_codepipeline::types::ActionExecutionFilter;
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..ACTION_PAGES {
        let resp = clients
            .codepipeline()
            .list_action_executions()
            .pipeline_name(pipeline)
            .filter(ActionExecutionFilter::builder().pipeline_execution_id(execution_id).build())
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| aws_error("codepipeline", "ListActionExecutions", format!("{pipeline} {execution_id}"), &e))?;
        for d in resp.action_execution_details() {
            let input = d.input();
            let type_id = input.and_then(|i| i.action_type_id());
            // Resolved values (variables substituted) over the declared ones.
            let mut configuration: Vec<(String, String)> = input
                .and_then(|i| i.resolved_configuration().or(i.configuration()))
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            configuration.sort();
            let result = d.output().and_then(|o| o.execution_result());
            let error = result.and_then(|r| r.error_details());
            out.push(ActionFacts {
                stage: d.stage_name().unwrap_or_default().to_string(),
                action: d.action_name().unwrap_or_default().to_string(),
                status: d.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                category: type_id.map(|t| t.category().as_str().to_string()),
                provider: type_id.map(|t| t.provider().to_string()),
                external_id: result.and_then(|r| r.external_execution_id()).map(str::to_string),
                external_url: result.and_then(|r| r.external_execution_url()).map(str::to_string),
                summary: result.and_then(|r| r.external_execution_summary()).map(str::to_string),
                error_code: error.and_then(|e| e.code()).map(str::to_string),
                error_message: error.and_then(|e| e.message()).map(str::to_string),
                configuration,
                started_at: secs(d.start_time()),
                updated_at: secs(d.last_update_time()),
            });
        }
        match resp.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(out)
}

/// The latest state of every stage, in pipeline order.
pub async fn stages(clients: &Clients, pipeline: &str) -> Result<Vec<StageFacts>, AwsError> {
    let resp = clients
        .codepipeline()
        .get_pipeline_state()
        .name(pipeline)
        .send()
        .await
        .map_err(|e| aws_error("codepipeline", "GetPipelineState", pipeline, &e))?;
    Ok(resp
        .stage_states()
        .iter()
        .map(|s| StageFacts {
            name: s.stage_name().unwrap_or_default().to_string(),
            execution_id: s.latest_execution().map(|l| l.pipeline_execution_id().to_string()),
            status: s.latest_execution().map(|l| l.status().as_str().to_string()),
            actions: s
                .action_states()
                .iter()
                .map(|a| {
                    let latest = a.latest_execution();
                    (
                        a.action_name().unwrap_or_default().to_string(),
                        latest.and_then(|l| l.status()).map(|st| st.as_str().to_string()),
                        latest.and_then(|l| l.token()).map(str::to_string),
                    )
                })
                .collect(),
        })
        .collect())
}

/// The pipeline's tags (`autopilot:env`, `autopilot:team`).
pub async fn tags(clients: &Clients, pipeline_arn: &str) -> Result<Vec<(String, String)>, AwsError> {
    let resp = clients
        .codepipeline()
        .list_tags_for_resource()
        .resource_arn(pipeline_arn)
        .send()
        .await
        .map_err(|e| aws_error("codepipeline", "ListTagsForResource", pipeline_arn, &e))?;
    Ok(resp.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect())
}
