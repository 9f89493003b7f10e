//! siembox-exporter as a library: the binary, the tests and the benchmarks all drive the same
//! `App` in-process.

pub mod app;
pub mod cli;
pub mod config;
pub mod history;
pub mod metrics;
pub mod probe;
pub mod server;

pub use app::{App, AppOptions};
pub use config::Config;
