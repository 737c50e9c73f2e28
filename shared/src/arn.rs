//! Names inside ARNs and ids, shared by every layer.

/// An Amazon Resource Name, as AWS returns it.
pub type Arn = String;

/// The last `/`-separated segment of an ARN (a name or an id).
pub fn last_segment(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// Cluster name of a cluster ARN (`arn:…:cluster/<name>`) or a bare name.
pub fn cluster_name(cluster_arn: &str) -> &str {
    last_segment(cluster_arn)
}

/// The account of an ARN (`arn:partition:service:region:account:…`): twelve
/// digits, else `None` (a name, an ARN without an account such as an S3
/// bucket's, or something that is not an ARN).
pub fn account_of(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    if parts.next()? != "arn" {
        return None;
    }
    let account = parts.nth(3)?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
}

/// Lower-case hex of some bytes (digests in ids and keys).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_of_an_arn_is_its_fifth_field_when_it_is_twelve_digits() {
        let cases = [
            ("arn:aws:lambda:us-east-1:111122223333:function:runbook", Some("111122223333")),
            ("arn:aws-us-gov:ecs:us-gov-west-1:444455556666:service/prod/api", Some("444455556666")),
            ("arn:aws:sns:eu-west-1:123456789012:alarms", Some("123456789012")),
            ("arn:aws:s3:::evidence-bucket", None),
            ("arn:aws:iam::12345:role/x", None),
            ("api", None),
            ("", None),
            ("arn:aws:ecs", None),
        ];
        for (arn, want) in cases {
            assert_eq!(account_of(arn), want, "{arn}");
        }
    }
}
