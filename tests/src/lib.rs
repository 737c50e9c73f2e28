//! Test support: a Lambda Runtime API driver that runs the real function
//! binaries, and a test bed of per-test resources on the local AWS server.

pub mod adversity;
pub mod fault_proxy;
pub mod runtime_api;
pub mod seed;
pub mod testbed;

pub use runtime_api::{InvokeResult, LambdaProcess};
pub use seed::{LedgerSeed, PLANTED_SECRET, SeededService};
pub use testbed::{TestBed, binary, fixture, fixtures_in};
