//! One module per subcommand: turn parsed arguments into settings, run, report.

pub mod bench;
pub mod evaluate;
pub mod generate;
