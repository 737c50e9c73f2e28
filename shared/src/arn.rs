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

/// Lower-case hex of some bytes (digests in ids and keys).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
