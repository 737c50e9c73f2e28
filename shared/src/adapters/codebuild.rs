//! CodeBuild (reads only): a build's phases with their context messages and
//! where its log is.

use super::{AwsError, Clients, aws_error};
use crate::pipeline::{BuildFacts, BuildPhase};

pub async fn build(clients: &Clients, build_id: &str) -> Result<Option<BuildFacts>, AwsError> {
    let resp = clients
        .codebuild()
        .batch_get_builds()
        .ids(build_id)
        .send()
        .await
        .map_err(|e| aws_error("codebuild", "BatchGetBuilds", build_id, &e))?;
    Ok(resp.builds().first().map(|b| {
        let logs = b.logs();
        BuildFacts {
            id: b.id().unwrap_or(build_id).to_string(),
            project: b
                .project_name()
                .map(str::to_string)
                .or_else(|| crate::pipeline::build_project(build_id).map(str::to_string))
                .unwrap_or_default(),
            status: b.build_status().map(|s| s.as_str().to_string()),
            phases: b
                .phases()
                .iter()
                .map(|p| BuildPhase {
                    phase: p.phase_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
                    status: p.phase_status().map(|s| s.as_str().to_string()),
                    contexts: p
                        .contexts()
                        .iter()
                        .filter_map(|c| match (c.status_code(), c.message()) {
                            (Some(code), Some(m)) if !m.is_empty() => Some(format!("{code}: {m}")),
                            (Some(code), _) if !code.is_empty() => Some(code.to_string()),
                            (None, Some(m)) if !m.is_empty() => Some(m.to_string()),
                            _ => None,
                        })
                        .collect(),
                })
                .collect(),
            log_group: logs.and_then(|l| l.group_name()).map(str::to_string),
            log_stream: logs.and_then(|l| l.stream_name()).map(str::to_string),
            log_link: logs.and_then(|l| l.deep_link()).map(str::to_string),
        }
    }))
}
