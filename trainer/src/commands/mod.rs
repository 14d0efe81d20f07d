//! One module per subcommand: turn parsed arguments into settings, run, report.

pub mod fit;
pub mod report;
pub mod study;
