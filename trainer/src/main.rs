//! `synth-train`: parse the command line, run it, print the whole error chain on failure.

use std::process::ExitCode;

fn main() -> ExitCode {
    match trainer::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
