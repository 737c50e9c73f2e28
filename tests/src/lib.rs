//! Test support: a Lambda Runtime API driver that runs the real function
//! binaries, and a test bed of per-test resources on the local AWS server.
//! The adversity suite's harness: a recording fault proxy in front of the
//! server (`fault_proxy`), the invariants (`adversity`), the race bench
//! (`race_bench`) and the fault and kill bench (`fault_bench`).

pub mod adversity;
pub mod fault_bench;
pub mod fault_proxy;
pub mod race_bench;
pub mod runtime_api;
pub mod seed;
pub mod testbed;

pub use runtime_api::{InvokeResult, LambdaProcess};
pub use seed::{LedgerSeed, PLANTED_SECRET, SeededService};
pub use testbed::{TestBed, binary, fixture, fixtures_in};
