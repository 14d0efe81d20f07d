//! One module per subcommand: turn parsed arguments into settings, run, report.

pub mod bench;
pub mod evaluate;
pub mod generate;
pub mod hub;
pub mod log;
pub mod metrics;
pub mod record;
pub mod sync;
