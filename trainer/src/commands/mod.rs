//! One module per subcommand: turn parsed arguments into settings, run, report.

pub mod fit;
pub mod keygen;
pub mod report;
pub mod seal;
pub mod study;
