//! Reports of a study logbook: report.html (offline, plots embedded) and report.md.

use std::path::Path;

use crate::error::Result;

/// Writes the report of the study logbook `db` into `out`.
pub fn write_report(db: &Path, out: &Path) -> Result<()> {
    let _ = (db, out);
    Ok(())
}
