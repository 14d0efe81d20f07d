//! Recording a command in the logbook named by `--db`: the bundle is registered and a `running`
//! run committed before the work starts, then the run is finished with its metrics in one
//! transaction, or marked failed with the error.

use std::path::Path;

use crate::bundle::Bundle;
use crate::error;
use crate::logbook::Logbook;
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
    let run_id = logbook.start_run(
        kind,
        bundle.map(|bundle| bundle.manifest.model_sha256.as_str()),
        params,
    )?;
    match work() {
        Ok((result, metrics)) => {
            logbook.finish_run(&run_id, &metrics)?;
            eprintln!("logged run {run_id} with {} metric(s) in {}", metrics.len(), db.display());
            Ok(result)
        }
        Err(err) => {
            if let Err(log_err) = logbook.fail_run(&run_id, &format!("{err:#}")) {
                let log_err = error::chain(&log_err);
                eprintln!("warning: could not mark run {run_id} failed: {log_err}");
            }
            Err(err)
        }
    }
}
