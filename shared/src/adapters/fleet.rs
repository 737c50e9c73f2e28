//! Credentials in a member account of the fleet: STS `AssumeRole` of the
//! member role (`MEMBER_ROLE_NAME`, with `MEMBER_EXTERNAL_ID` when set),
//! through aws-config's assume-role provider, cached per warm instance until
//! shortly before they expire ([`crate::fleet::still_fresh`]).
//!
//! A member's [`Clients`] read and act in the member account and region
//! with those credentials; the topic, the evidence bucket and the state
//! table stay the central ones (home's clients).

use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, error::CredentialsError, future};
use std::sync::{Arc, Mutex};

use super::{AwsError, Clients};
use crate::fleet::Place;

/// Renew this long before the credentials expire.
const RENEW_BEFORE_SECONDS: i64 = 5 * 60;

/// How the member role is named and assumed (from the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRole {
    pub name: String,
    pub external_id: Option<String>,
    /// The session name CloudTrail shows in the member account.
    pub session_name: String,
}

impl MemberRole {
    pub fn arn(&self, account: &str, partition: &str) -> String {
        format!("arn:{partition}:iam::{account}:role/{}", self.name)
    }
}

/// The assume-role provider, with its last credentials kept until shortly
/// before they expire: one `AssumeRole` per member per warm instance and hour.
#[derive(Debug)]
struct CachedAssumeRole {
    role_arn: String,
    provider: AssumeRoleProvider,
    cached: Mutex<Option<Credentials>>,
}

impl CachedAssumeRole {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        let now = crate::time::now();
        let fresh = |c: &Credentials| {
            let expiry = c.expiry().and_then(|e| e.duration_since(std::time::UNIX_EPOCH).ok());
            crate::fleet::still_fresh(expiry.map(|d| d.as_secs() as i64), now, RENEW_BEFORE_SECONDS)
        };
        if let Some(c) = self.cached.lock().ok().and_then(|c| c.clone()).filter(fresh) {
            return Ok(c);
        }
        let c = ProvideCredentials::provide_credentials(&self.provider).await?;
        if let Ok(mut slot) = self.cached.lock() {
            *slot = Some(c.clone());
        }
        Ok(c)
    }
}

/// Credentials of a member, shared by its clients and the probe.
#[derive(Debug, Clone)]
pub struct MemberCredentials(Arc<CachedAssumeRole>);

impl ProvideCredentials for MemberCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.0.credentials())
    }
}

impl MemberCredentials {
    /// Assume the role now (or take the cached credentials): an account whose
    /// role cannot be assumed is known before anything is read there, and
    /// said with the reason.
    pub async fn check(&self) -> Result<(), AwsError> {
        self.0.credentials().await.map(|_| ()).map_err(|e| {
            use std::error::Error as _;
            let mut message = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                message = format!("{message}: {s}");
                source = s.source();
            }
            AwsError {
                service: "sts",
                operation: "AssumeRole",
                resource: self.0.role_arn.clone(),
                code: None,
                retryable: matches!(e, CredentialsError::ProviderTimedOut(_) | CredentialsError::ProviderError(_)),
                message,
            }
        })
    }
}

/// The clients of a member: the home configuration with the member's
/// region and assumed-role credentials, the central topic, bucket and table
/// of `home`, and `home`'s call counter.
pub async fn member_clients(
    home: &Clients,
    place: &Place,
    role: &MemberRole,
    assume: bool,
) -> (Clients, Option<MemberCredentials>) {
    let region = aws_config::Region::new(place.region.clone());
    let mut builder = home.config.to_builder();
    builder.set_region(Some(region.clone()));
    let credentials = if assume {
        let partition = if place.region.starts_with("cn-") {
            "aws-cn"
        } else if place.region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        };
        let role_arn = role.arn(&place.account, partition);
        let mut provider = AssumeRoleProvider::builder(role_arn.clone())
            .session_name(role.session_name.clone())
            .region(region)
            .configure(&home.config);
        if let Some(id) = &role.external_id {
            provider = provider.external_id(id.clone());
        }
        let cached = MemberCredentials(Arc::new(CachedAssumeRole {
            role_arn,
            provider: provider.build().await,
            cached: Mutex::new(None),
        }));
        builder.set_credentials_provider(Some(aws_credential_types::provider::SharedCredentialsProvider::new(
            cached.clone(),
        )));
        Some(cached)
    } else {
        None
    };
    (home.for_member(&builder.build(), place), credentials)
}
