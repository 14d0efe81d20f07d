//! `synth-edge`: parse the command line, run it, print the whole error chain on failure.

use std::process::ExitCode;

fn main() -> ExitCode {
    match edge_runtime::cli::run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
