//! The fleet of one report run (pure): which scopes (account and region) a
//! run covers, how each shows in the report, and where a shard's report is
//! kept.
//!
//! A run covers home and every member account of `ACCOUNTS` in every region
//! of `REGIONS` ([`Fleet::scopes`]), or the part of them its job input names
//! (`{"job":"daily","accounts":[…],"regions":[…]}`, a [`Shard`]): one
//! EventBridge Scheduler schedule per group of accounts splits a fleet too
//! large for one run's timeout. A shard's report is stored under
//! `reports/<kind>/<date or week>/shard-<accounts and regions>/` so that shards
//! never overwrite each other or the whole fleet's report.

use serde::Serialize;

use crate::error::TriggerError;
use crate::fleet::{Fleet, Scope};
use crate::trigger::Shard;

/// One scope of a run and how it went: its account and region as the
/// report labels them, and what failed there for the whole scope (the role
/// that could not be assumed, the clusters or services that could not be
/// listed). Services read before a failure are still reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScopeRun {
    /// The account; unknown only at home when the function's own account is not known.
    pub account: Option<String>,
    pub region: String,
    /// The function's own account and region.
    pub home: bool,
    /// What failed for the whole scope, named; `None` when all of it was read.
    pub failure: Option<String>,
    /// Clusters of `CLUSTERS` that do not exist there (not a failure: a
    /// fleet's accounts need not all run every cluster).
    pub clusters_absent: Vec<String>,
}

impl ScopeRun {
    pub fn of(fleet: &Fleet, scope: &Scope) -> Self {
        let (account, region) = account_region(fleet, scope);
        Self { account, region, home: *scope == Scope::Home, ..Default::default() }
    }

    /// `444455556666 us-east-1`; home says so: `home 111122223333 us-east-1`.
    pub fn label(&self) -> String {
        label(self.account.as_deref(), &self.region, self.home)
    }

    /// Whether `account` and `region` (of a service) belong to this scope.
    pub fn holds(&self, account: Option<&str>, region: &str) -> bool {
        self.account.as_deref() == account && self.region == region
    }

    /// The head of this scope's section in a report.
    pub fn section(&self) -> AccountScope {
        AccountScope {
            label: self.label(),
            account: self.account.clone(),
            region: self.region.clone(),
            home: self.home,
            failure: self.failure.clone(),
            clusters_absent: self.clusters_absent.clone(),
        }
    }

    /// Name a failure of this scope (several are joined).
    pub fn fail(&mut self, why: impl Into<String>) {
        let why = why.into();
        self.failure = Some(match self.failure.take() {
            Some(before) => format!("{before}; {why}"),
            None => why,
        });
    }
}

/// The head of an account and region's section in a report (daily and
/// weekly alike): which account and region, and what failed there. Its
/// fields are the section's own in the stored JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AccountScope {
    pub account: Option<String>,
    pub region: String,
    pub home: bool,
    /// `444455556666 us-east-1`, `home 111122223333 us-east-1`.
    pub label: String,
    /// What failed for the whole account and region (its role could not be
    /// assumed, its clusters or services could not be listed), named.
    pub failure: Option<String>,
    /// Clusters of `CLUSTERS` that do not exist there.
    pub clusters_absent: Vec<String>,
}

impl AccountScope {
    /// `<label>: <why>` of every section that could not be read.
    pub fn failures<'a>(sections: impl Iterator<Item = &'a AccountScope>) -> Vec<String> {
        sections.filter_map(|a| a.failure.as_ref().map(|why| format!("{}: {why}", a.label))).collect()
    }
}

/// How an account and region read in reports.
pub fn label(account: Option<&str>, region: &str, home: bool) -> String {
    match (home, account) {
        (true, Some(a)) => format!("home {a} {region}"),
        (true, None) => format!("home {region}"),
        (false, a) => format!("{} {region}", a.unwrap_or("?")),
    }
}

/// The account and region of a scope: home's are the function's own.
pub fn account_region(fleet: &Fleet, scope: &Scope) -> (Option<String>, String) {
    match scope {
        Scope::Home => (fleet.home_account.clone(), fleet.home_region.clone()),
        Scope::Member(p) => (Some(p.account.clone()), p.region.clone()),
    }
}

/// The scopes one run covers: the fleet's ([`Fleet::scopes`], home first),
/// restricted to the accounts and regions `shard` names. An account that is
/// neither home's nor in `ACCOUNTS`, or a region outside `REGIONS` (home's
/// region when unset), is refused, naming it and what the fleet holds:
/// nothing is read anywhere.
pub fn run_scopes(fleet: &Fleet, regions: &[String], shard: &Shard) -> Result<Vec<Scope>, TriggerError> {
    let known_accounts: Vec<&str> = fleet.home_account.iter().chain(fleet.members.iter()).map(String::as_str).collect();
    if let Some(bad) = shard.accounts.iter().find(|a| !known_accounts.contains(&a.as_str())) {
        return Err(TriggerError::invalid(
            "schedule input",
            "accounts",
            &format!(
                "accounts of the fleet (home{} or ACCOUNTS: {})",
                fleet.home_account.as_deref().map(|h| format!(" {h}")).unwrap_or_default(),
                if fleet.members.is_empty() { "none".to_string() } else { fleet.members.join(", ") }
            ),
            &format!("{bad} (not in the fleet)"),
        ));
    }
    let fleet_regions: Vec<&str> = if regions.is_empty() {
        vec![fleet.home_region.as_str()]
    } else {
        regions.iter().map(String::as_str).collect()
    };
    if let Some(bad) = shard.regions.iter().find(|r| !fleet_regions.contains(&r.as_str())) {
        return Err(TriggerError::invalid(
            "schedule input",
            "regions",
            &format!("regions of the fleet (REGIONS: {})", fleet_regions.join(", ")),
            &format!("{bad} (not in the fleet)"),
        ));
    }
    Ok(fleet
        .scopes(regions)
        .into_iter()
        .filter(|scope| {
            let (account, region) = account_region(fleet, scope);
            (shard.accounts.is_empty() || account.is_some_and(|a| shard.accounts.contains(&a)))
                && (shard.regions.is_empty() || shard.regions.contains(&region))
        })
        .collect())
}

/// Longest readable shard name; a longer one is shortened with a digest.
const SHARD_NAME_MAX: usize = 100;

/// Where a shard's report goes under the report's prefix: nothing for the
/// whole fleet (`reports/daily/<date>/`, as a single account always had
/// it), `shard-<accounts>[-<regions>]/` for a shard, e.g.
/// `shard-444455556666_777788889999/` or
/// `shard-444455556666-eu-west-1/`. Accounts and regions are sorted (the
/// same shard, the same key). A name longer than 100 characters keeps the
/// first and last account, the count and a digest of the whole list:
/// `shard-444455556666-to-777788889999-40-accounts-<12 hex>/`.
pub fn shard_suffix(shard: &Shard) -> String {
    if shard.is_whole_fleet() {
        return String::new();
    }
    let mut accounts = shard.accounts.clone();
    accounts.sort();
    accounts.dedup();
    let mut regions = shard.regions.clone();
    regions.sort();
    regions.dedup();
    let parts: Vec<String> = [accounts.join("_"), regions.join("_")].into_iter().filter(|p| !p.is_empty()).collect();
    let name = parts.join("-");
    if name.len() <= SHARD_NAME_MAX {
        return format!("shard-{name}/");
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(name.as_bytes());
    let (first, last) = (accounts.first().cloned().unwrap_or_default(), accounts.last().cloned().unwrap_or_default());
    format!("shard-{first}-to-{last}-{}-accounts-{}/", accounts.len(), crate::arn::hex(&digest[..6]))
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

    fn shard(accounts: &[&str], regions: &[&str]) -> Shard {
        Shard {
            accounts: accounts.iter().map(|s| s.to_string()).collect(),
            regions: regions.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_whole_run_covers_the_fleet_and_a_shard_only_its_accounts_and_regions() {
        let f = fleet();
        let regions = vec!["us-east-1".to_string(), "eu-west-1".to_string()];
        assert_eq!(run_scopes(&f, &regions, &Shard::default()).unwrap(), f.scopes(&regions));
        assert_eq!(
            run_scopes(&f, &regions, &shard(&["444455556666"], &[])).unwrap(),
            vec![Scope::member("444455556666", "us-east-1"), Scope::member("444455556666", "eu-west-1")]
        );
        assert_eq!(
            run_scopes(&f, &regions, &shard(&["111122223333", "777788889999"], &["us-east-1"])).unwrap(),
            vec![Scope::Home, Scope::member("777788889999", "us-east-1")]
        );
        // A single-account deployment: home alone, as before.
        let single = Fleet { home_account: None, home_region: "us-east-1".into(), members: vec![] };
        assert_eq!(run_scopes(&single, &[], &Shard::default()).unwrap(), vec![Scope::Home]);
    }

    #[test]
    fn an_account_or_region_outside_the_fleet_is_refused_by_name() {
        let f = fleet();
        let e = run_scopes(&f, &[], &shard(&["444455556666", "999988887777"], &[])).unwrap_err().to_string();
        for want in ["accounts", "999988887777 (not in the fleet)", "444455556666, 777788889999", "home 111122223333"] {
            assert!(e.contains(want), "{want} in {e}");
        }
        let e = run_scopes(&f, &[], &shard(&[], &["eu-west-1"])).unwrap_err().to_string();
        assert!(e.contains("regions") && e.contains("eu-west-1 (not in the fleet)") && e.contains("us-east-1"), "{e}");
    }

    #[test]
    fn each_shard_has_a_key_of_its_own_and_the_whole_fleet_the_old_one() {
        assert_eq!(shard_suffix(&Shard::default()), "");
        assert_eq!(
            shard_suffix(&shard(&["777788889999", "444455556666"], &[])),
            "shard-444455556666_777788889999/",
            "sorted: the same shard, the same key"
        );
        assert_eq!(shard_suffix(&shard(&["444455556666"], &["eu-west-1"])), "shard-444455556666-eu-west-1/");
        assert_eq!(shard_suffix(&shard(&[], &["eu-west-1", "us-east-1"])), "shard-eu-west-1_us-east-1/");
        let many: Vec<String> = (0..40).map(|i| format!("{:012}", 100_000_000_000u64 + i)).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let long = shard_suffix(&shard(&refs, &[]));
        assert!(long.starts_with("shard-100000000000-to-100000000039-40-accounts-") && long.len() < 80, "{long}");
        let mut other = refs.clone();
        other[5] = "222233334444";
        assert_ne!(shard_suffix(&shard(&other, &[])), long, "another list, another key");
    }

    #[test]
    fn scopes_are_labelled_by_account_and_region_home_saying_so() {
        let f = fleet();
        let home = ScopeRun::of(&f, &Scope::Home);
        assert_eq!(home.label(), "home 111122223333 us-east-1");
        let m = ScopeRun::of(&f, &Scope::member("444455556666", "eu-west-1"));
        assert_eq!(m.label(), "444455556666 eu-west-1");
        assert!(m.holds(Some("444455556666"), "eu-west-1") && !m.holds(Some("444455556666"), "us-east-1"));
        let mut failed = m.clone();
        failed.fail("a");
        failed.fail("b");
        assert_eq!(failed.failure.as_deref(), Some("a; b"));
    }
}
