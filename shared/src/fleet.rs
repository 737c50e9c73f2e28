//! The fleet: which account and region an input belongs to, and how that
//! place shows in keys, labels and evidence (pure).
//!
//! A central deployment watches its own account and region (home) and the
//! member accounts of `ACCOUNTS` in the regions they forward from. Home keeps
//! every key, label and prefix as a single-account deployment always wrote
//! them, so a stack from before the fleet upgrades in place; a member's are
//! the same, prefixed with its account and region.

/// An account and region of the fleet other than home.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Place {
    pub account: String,
    pub region: String,
}

impl Place {
    /// `<account>/<region>/`: what a member's state keys start with.
    pub fn account_region_prefix(&self) -> String {
        format!("{}/{}/", self.account, self.region)
    }
}

/// Where a subject lives: home (the function's own account and region), or
/// elsewhere in the fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    #[default]
    Home,
    Member(Place),
}

impl Scope {
    pub fn member(account: impl Into<String>, region: impl Into<String>) -> Self {
        Self::Member(Place { account: account.into(), region: region.into() })
    }

    pub fn place(&self) -> Option<&Place> {
        match self {
            Self::Home => None,
            Self::Member(p) => Some(p),
        }
    }

    /// What a state-table key of this scope starts with: nothing at home
    /// (the keys of a single-account deployment), `<account>/<region>/` for a
    /// member. Old keys start with a letter, member keys with a digit.
    pub fn key_prefix(&self) -> String {
        match self {
            Self::Home => String::new(),
            Self::Member(p) => p.account_region_prefix(),
        }
    }

    /// The scope of a key written with [`Scope::key_prefix`], and the rest.
    pub fn split_key(key: &str) -> Option<(Self, &str)> {
        if !key.starts_with(|c: char| c.is_ascii_digit()) {
            return Some((Self::Home, key));
        }
        let (account, rest) = key.split_once('/')?;
        let (region, rest) = rest.split_once('/')?;
        (is_account(account) && is_region(region)).then(|| (Self::member(account, region), rest))
    }

    /// How a label of this scope starts in messages and reports: nothing at
    /// home, `<account> <region> ` for a member.
    pub fn label_prefix(&self) -> String {
        match self {
            Self::Home => String::new(),
            Self::Member(p) => format!("{} {} ", p.account, p.region),
        }
    }

    /// Of evidence keys under `incidents/`: nothing at home,
    /// `<account>/<region>/` for a member.
    pub fn evidence_prefix(&self) -> String {
        self.key_prefix()
    }
}

/// What a function knows of home and the fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fleet {
    /// The function's own account (from its ARN), when known.
    pub home_account: Option<String>,
    /// The function's own region.
    pub home_region: String,
    /// Member accounts (`ACCOUNTS`).
    pub members: Vec<String>,
}

impl Fleet {
    /// Where an input from `account` and `region` (either may be unsaid)
    /// belongs. Home unless it names a member account other than home, or
    /// another region than home's: an unsaid account or region is home's,
    /// and with no members listed every account is home (a single-account
    /// deployment, where the trust check admits only its own account).
    pub fn scope_of(&self, account: Option<&str>, region: Option<&str>) -> Scope {
        let account = account.map(str::trim).filter(|a| !a.is_empty());
        let region = region.map(str::trim).filter(|r| !r.is_empty() && is_region(r));
        let home_region = region.is_none_or(|r| r == self.home_region);
        let home_account = match account {
            None => true,
            Some(a) => self.home_account.as_deref() == Some(a) || !self.members.iter().any(|m| m == a),
        };
        if home_account && home_region {
            return Scope::Home;
        }
        let account = match (home_account, account, &self.home_account) {
            (false, Some(a), _) => a.to_string(),
            // Home's account in another region.
            (_, _, Some(h)) => h.clone(),
            (_, Some(a), None) => a.to_string(),
            // Another region of an account nobody named: it cannot be placed,
            // and home is what a single-account deployment always assumed.
            (_, None, None) => return Scope::Home,
        };
        Scope::member(account, region.unwrap_or(&self.home_region))
    }

    /// Whether credentials for `scope` are assumed (another account) rather
    /// than the function's own (home, or home's account in another region).
    pub fn assumes(&self, scope: &Scope) -> bool {
        match scope {
            Scope::Home => false,
            Scope::Member(p) => self.home_account.as_deref() != Some(p.account.as_str()),
        }
    }

    /// Every scope a fleet-wide job covers: home, then each member account in
    /// each region of `regions` (home's region when none is listed), and home's
    /// account in the other regions.
    pub fn scopes(&self, regions: &[String]) -> Vec<Scope> {
        let regions: Vec<&str> = if regions.is_empty() {
            vec![self.home_region.as_str()]
        } else {
            regions.iter().map(String::as_str).collect()
        };
        let mut out = vec![Scope::Home];
        let home = self.home_account.clone();
        let accounts = home.iter().chain(self.members.iter().filter(|m| Some(*m) != home.as_ref()));
        for account in accounts {
            for region in &regions {
                let scope = self.scope_of(Some(account), Some(region));
                if !out.contains(&scope) {
                    out.push(scope);
                }
            }
        }
        out
    }
}

/// Whether credentials expiring at `expiry` (epoch seconds) may still be
/// handed out at `now`: not within `margin` seconds of their end, so no
/// call starts with credentials about to lapse.
pub fn still_fresh(expiry: Option<i64>, now: i64, margin: i64) -> bool {
    expiry.is_none_or(|e| e - margin > now)
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`.
fn is_region(s: &str) -> bool {
    let mut parts = s.split('-');
    let first = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    first.len() == 2
        && first.bytes().all(|b| b.is_ascii_lowercase())
        && rest.len() >= 2
        && rest.last().is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        && rest[..rest.len() - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> Fleet {
        Fleet {
            home_account: Some("111122223333".into()),
            home_region: "us-east-1".into(),
            members: vec!["444455556666".into(), "777788889999".into()],
        }
    }

    #[test]
    fn an_input_is_home_unless_it_names_a_member_or_another_region() {
        let f = fleet();
        let cases = [
            (None, None, Scope::Home),
            (Some("111122223333"), Some("us-east-1"), Scope::Home),
            (Some(""), Some(""), Scope::Home),
            (Some("444455556666"), Some("us-east-1"), Scope::member("444455556666", "us-east-1")),
            (Some("444455556666"), None, Scope::member("444455556666", "us-east-1")),
            (Some("777788889999"), Some("eu-west-1"), Scope::member("777788889999", "eu-west-1")),
            (Some("111122223333"), Some("eu-west-1"), Scope::member("111122223333", "eu-west-1")),
            // Not a member (the trust check refuses it before): home, never a guess.
            (Some("999999999999"), Some("us-east-1"), Scope::Home),
            // A region that is not one is not believed.
            (Some("444455556666"), Some("US East (N. Virginia)"), Scope::member("444455556666", "us-east-1")),
        ];
        for (account, region, want) in cases {
            assert_eq!(f.scope_of(account, region), want, "{account:?} {region:?}");
        }
    }

    #[test]
    fn a_single_account_deployment_is_all_home() {
        let f = Fleet { home_account: None, home_region: "us-east-1".into(), members: vec![] };
        assert_eq!(f.scope_of(Some("444455556666"), Some("us-east-1")), Scope::Home);
        assert_eq!(f.scopes(&[]), vec![Scope::Home]);
    }

    #[test]
    fn only_another_account_is_assumed() {
        let f = fleet();
        assert!(!f.assumes(&Scope::Home));
        assert!(!f.assumes(&Scope::member("111122223333", "eu-west-1")));
        assert!(f.assumes(&Scope::member("444455556666", "us-east-1")));
    }

    #[test]
    fn keys_of_home_are_unchanged_and_member_keys_parse_back() {
        assert_eq!(Scope::Home.key_prefix(), "");
        assert_eq!(Scope::split_key("service#prod/api"), Some((Scope::Home, "service#prod/api")));
        let m = Scope::member("444455556666", "eu-west-1");
        let key = format!("{}service#prod/api", m.key_prefix());
        assert_eq!(key, "444455556666/eu-west-1/service#prod/api");
        assert_eq!(Scope::split_key(&key), Some((m.clone(), "service#prod/api")));
        assert_eq!(Scope::split_key("4444/eu-west-1/service#prod/api"), None);
        assert_eq!(Scope::split_key("444455556666/nowhere/service#prod/api"), None);
        assert_eq!(m.label_prefix(), "444455556666 eu-west-1 ");
    }

    #[test]
    fn the_fleet_jobs_cover_home_then_every_member_in_every_region() {
        let regions = vec!["us-east-1".to_string(), "eu-west-1".to_string()];
        let scopes = fleet().scopes(&regions);
        assert_eq!(
            scopes,
            vec![
                Scope::Home,
                Scope::member("111122223333", "eu-west-1"),
                Scope::member("444455556666", "us-east-1"),
                Scope::member("444455556666", "eu-west-1"),
                Scope::member("777788889999", "us-east-1"),
                Scope::member("777788889999", "eu-west-1"),
            ]
        );
    }

    #[test]
    fn credentials_are_renewed_before_they_lapse() {
        assert!(still_fresh(Some(1000), 0, 300));
        assert!(!still_fresh(Some(1000), 700, 300));
        assert!(!still_fresh(Some(1000), 1200, 300));
        assert!(still_fresh(None, 1200, 300));
    }
}
