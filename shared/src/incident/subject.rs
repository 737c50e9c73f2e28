//! What an incident is about: its subject. One open incident per subject;
//! everything the state table keeps about a subject lives under its key.
//! A new subject kind is one variant here, its key, and its trigger.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What an incident is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// An ECS service.
    Service { cluster: String, service: String },
    /// One execution of a CodePipeline pipeline: its stage and action
    /// failures join one incident; a later successful execution of the
    /// pipeline resolves it.
    Pipeline { pipeline: String, execution: String },
}

impl Subject {
    pub fn service(cluster: impl Into<String>, service: impl Into<String>) -> Self {
        Self::Service { cluster: cluster.into(), service: service.into() }
    }

    pub fn pipeline(pipeline: impl Into<String>, execution: impl Into<String>) -> Self {
        Self::Pipeline { pipeline: pipeline.into(), execution: execution.into() }
    }

    /// The state table's partition key for everything about this subject.
    pub fn key(&self) -> String {
        match self {
            Self::Service { cluster, service } => format!("service#{cluster}/{service}"),
            // Pipeline names never hold '/': [A-Za-z0-9.@_-]+.
            Self::Pipeline { pipeline, execution } => format!("pipeline#{pipeline}/{execution}"),
        }
    }

    /// The subject of a partition key written by [`Subject::key`].
    pub fn parse(key: &str) -> Option<Self> {
        if let Some(rest) = key.strip_prefix("service#") {
            let (cluster, service) = rest.split_once('/')?;
            return (!cluster.is_empty() && !service.is_empty()).then(|| Self::service(cluster, service));
        }
        let (pipeline, execution) = key.strip_prefix("pipeline#")?.split_once('/')?;
        (!pipeline.is_empty() && !execution.is_empty()).then(|| Self::pipeline(pipeline, execution))
    }

    /// `cluster/service` or `pipeline <name> execution <id>`, for messages.
    pub fn label(&self) -> String {
        match self {
            Self::Service { cluster, service } => format!("{cluster}/{service}"),
            Self::Pipeline { pipeline, execution } => format!("pipeline {pipeline} execution {execution}"),
        }
    }

    /// `(cluster, service)` of a service subject.
    pub fn as_service(&self) -> Option<(&str, &str)> {
        match self {
            Self::Service { cluster, service } => Some((cluster, service)),
            Self::Pipeline { .. } => None,
        }
    }

    /// `(pipeline, execution)` of a pipeline subject.
    pub fn as_pipeline(&self) -> Option<(&str, &str)> {
        match self {
            Self::Pipeline { pipeline, execution } => Some((pipeline, execution)),
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
        assert!(serde_json::from_str::<Subject>("\"event#x\"").is_err());
    }
}
