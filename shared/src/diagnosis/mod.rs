//! Diagnosis: pure decisions over plain data — why a task stopped, how bad
//! it is, what the service looks like. No AWS calls here.

pub mod classify;
