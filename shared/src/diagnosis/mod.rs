//! Diagnosis: pure decisions over plain data — why a task stopped, how bad
//! it is, what to do next. No AWS calls here.

pub mod alarm;
pub mod classify;
pub mod gate;
pub mod logs;
pub mod service_events;
pub mod severity;
