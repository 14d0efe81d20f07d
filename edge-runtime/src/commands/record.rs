//! Recording a command in the logbook named by `--db`: the bundle is registered and a `running`
//! run committed before the work starts, then the run is finished with its metrics in one
//! transaction, or marked failed with the error, the panic or the signal that ended it.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::Path;

use crate::bundle::Bundle;
use crate::error;
use crate::logbook::{Logbook, settle_runs_on_signals};
use crate::metrics::Metric;

/// Runs `work`, recording it as a run of `kind` (on `bundle`, when there is one) when `db` is
/// given. `work` returns its result and the metrics to store.
pub fn run_recorded<T>(
    db: Option<&Path>,
    kind: &str,
    bundle: Option<&Bundle>,
    params: &serde_json::Value,
    work: impl FnOnce() -> anyhow::Result<(T, Vec<Metric>)>,
) -> anyhow::Result<T> {
    let Some(db) = db else {
        return work().map(|(result, _)| result);
    };
    let logbook = Logbook::open(db)?;
    if let Some(bundle) = bundle {
        logbook.register_model(
            &bundle.manifest.model_sha256,
            &serde_json::to_string(&bundle.manifest)?,
        )?;
    }
    settle_runs_on_signals()?;
    let run = logbook.begin_run(
        kind,
        bundle.map(|bundle| bundle.manifest.model_sha256.as_str()),
        params,
    )?;
    let run_id = run.id().to_owned();
    let outcome = match catch_unwind(AssertUnwindSafe(work)) {
        Ok(outcome) => outcome,
        Err(panic) => {
            let what = panic_text(panic.as_ref());
            if let Err(log_err) = run.fail(&format!("the program panicked: {what}")) {
                let log_err = error::chain(&log_err);
                eprintln!("warning: could not mark run {run_id} failed: {log_err}");
            }
            resume_unwind(panic);
        }
    };
    match outcome {
        Ok((result, metrics)) => {
            run.finish(&metrics)?;
            eprintln!("logged run {run_id} with {} metric(s) in {}", metrics.len(), db.display());
            Ok(result)
        }
        Err(err) => {
            if let Err(log_err) = run.fail(&format!("{err:#}")) {
                let log_err = error::chain(&log_err);
                eprintln!("warning: could not mark run {run_id} failed: {log_err}");
            }
            Err(err)
        }
    }
}

/// The message of a panic payload (`panic!` gives a `&str` or a `String`).
fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}
