//! siembox-exporter as a library: the binary, the tests and the benchmarks all drive the same
//! `App` in-process.

pub mod alloc;
pub mod app;
pub mod audit;
pub mod cli;
pub mod config;
pub mod history;
pub mod limits;
pub mod metrics;
pub mod probe;
pub mod report;
pub mod schedule;
pub mod server;

pub use app::{App, AppOptions, Reloaded};
pub use config::Config;
