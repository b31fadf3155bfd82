//! Customer analytics as pure LazyFrame transforms over the store's events: purchase occasions, RFM
//! scores and segments, repeat purchase and cohorts, weekly KPIs. Nothing here reads or writes files;
//! the `analyze` command does. Definitions follow ../shared/reference/analytics-methods.md.

pub mod forecast;
pub mod inputs;
pub mod kpis;
pub mod occasions;
pub mod restock;
pub mod retention;
pub mod rfm;
pub mod segments;
pub mod transitions;
pub mod velocity;

#[cfg(test)]
pub(crate) mod testing;
