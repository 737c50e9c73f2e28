//! What an incident is about: its subject. One open incident per subject;
//! everything the state table keeps about a subject lives under its key.
//! A new subject kind is one variant here, its key, and its trigger.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::fleet::Scope;

/// What an incident is about. In a fleet, the subject carries its account
/// and region (its [`Scope`]); at home it is as a single-account deployment
/// always wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// An ECS service.
    Service { scope: Scope, cluster: String, service: String },
    /// One execution of a CodePipeline pipeline: its stage and action
    /// failures join one incident; a later successful execution of the
    /// pipeline resolves it.
    Pipeline { scope: Scope, pipeline: String, execution: String },
}

impl Subject {
    /// A service at home; [`Subject::at`] places it elsewhere.
    pub fn service(cluster: impl Into<String>, service: impl Into<String>) -> Self {
        Self::Service { scope: Scope::Home, cluster: cluster.into(), service: service.into() }
    }

    /// A pipeline execution at home; [`Subject::at`] places it elsewhere.
    pub fn pipeline(pipeline: impl Into<String>, execution: impl Into<String>) -> Self {
        Self::Pipeline { scope: Scope::Home, pipeline: pipeline.into(), execution: execution.into() }
    }

    /// The same subject in `scope`.
    pub fn at(mut self, to: &Scope) -> Self {
        match &mut self {
            Self::Service { scope, .. } | Self::Pipeline { scope, .. } => *scope = to.clone(),
        }
        self
    }

    pub fn scope(&self) -> &Scope {
        match self {
            Self::Service { scope, .. } | Self::Pipeline { scope, .. } => scope,
        }
    }

    /// The state table's partition key for everything about this subject:
    /// its scope's prefix (none at home), then the kind and names.
    pub fn key(&self) -> String {
        match self {
            Self::Service { scope, cluster, service } => format!("{}service#{cluster}/{service}", scope.key_prefix()),
            // Pipeline names never hold '/': [A-Za-z0-9.@_-]+.
            Self::Pipeline { scope, pipeline, execution } => {
                format!("{}pipeline#{pipeline}/{execution}", scope.key_prefix())
            }
        }
    }

    /// The subject of a partition key written by [`Subject::key`].
    pub fn parse(key: &str) -> Option<Self> {
        let (scope, key) = Scope::split_key(key)?;
        if let Some(rest) = key.strip_prefix("service#") {
            let (cluster, service) = rest.split_once('/')?;
            return (!cluster.is_empty() && !service.is_empty()).then(|| Self::service(cluster, service).at(&scope));
        }
        let (pipeline, execution) = key.strip_prefix("pipeline#")?.split_once('/')?;
        (!pipeline.is_empty() && !execution.is_empty()).then(|| Self::pipeline(pipeline, execution).at(&scope))
    }

    /// `cluster/service` or `pipeline <name> execution <id>`, for messages;
    /// a member's starts with its account and region.
    pub fn label(&self) -> String {
        match self {
            Self::Service { scope, cluster, service } => format!("{}{cluster}/{service}", scope.label_prefix()),
            Self::Pipeline { scope, pipeline, execution } => {
                format!("{}pipeline {pipeline} execution {execution}", scope.label_prefix())
            }
        }
    }

    /// `(cluster, service)` of a service subject.
    pub fn as_service(&self) -> Option<(&str, &str)> {
        match self {
            Self::Service { cluster, service, .. } => Some((cluster, service)),
            Self::Pipeline { .. } => None,
        }
    }

    /// `(pipeline, execution)` of a pipeline subject.
    pub fn as_pipeline(&self) -> Option<(&str, &str)> {
        match self {
            Self::Pipeline { pipeline, execution, .. } => Some((pipeline, execution)),
            Self::Service { .. } => None,
        }
    }
}

// Stored as its key: one spelling of a subject everywhere.
impl Serialize for Subject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.key())
    }
}

impl<'de> Deserialize<'de> for Subject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let key = String::deserialize(d)?;
        Self::parse(&key).ok_or_else(|| serde::de::Error::custom(format!("not a subject key: {key}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_have_one_key_each_and_parse_back() {
        for s in [Subject::service("prod", "api"), Subject::pipeline("api-prod", "8f1d2c3b-4a5e")] {
            assert_eq!(Subject::parse(&s.key()), Some(s.clone()));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<Subject>(&json).unwrap(), s);
        }
        assert_eq!(Subject::service("prod", "api").key(), "service#prod/api", "the existing layout is kept");
        assert_eq!(Subject::parse("service#prod"), None);
        assert_eq!(Subject::parse("pipeline#api-prod"), None, "a pipeline subject is one execution");
        assert_eq!(Subject::parse("event#x"), None);
        let member = Subject::service("prod", "api").at(&Scope::member("444455556666", "eu-west-1"));
        assert_eq!(member.key(), "444455556666/eu-west-1/service#prod/api");
        assert_eq!(Subject::parse(&member.key()), Some(member.clone()));
        assert_eq!(member.label(), "444455556666 eu-west-1 prod/api");
        assert_ne!(member, Subject::service("prod", "api"), "one name in two accounts is two subjects");
        let pipe = Subject::pipeline("api-prod", "x-1").at(&Scope::member("444455556666", "us-east-1"));
        assert_eq!(Subject::parse(&pipe.key()), Some(pipe));
        assert!(serde_json::from_str::<Subject>("\"event#x\"").is_err());
    }
}
