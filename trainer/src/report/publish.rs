//! Writing a built report: every file into a staging folder beside `out`, the HTML last, then
//! swapped in for the earlier report. A folder holding anything a report does not write is never
//! replaced.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use edge_runtime::data::{make_readable, write_atomically};

use crate::error::{Error, Result};
use crate::report::content::{PLOTS_DIR, SAMPLES_DIR};
use crate::report::{HTML_FILE, MARKDOWN_FILE};

/// What a report folder holds; a folder with anything else is not replaced.
const REPORT_ENTRIES: [&str; 4] = [HTML_FILE, MARKDOWN_FILE, PLOTS_DIR, SAMPLES_DIR];

/// Refuses an `out` that exists and is not a report folder.
pub fn check_replaceable(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        return Err(Error::Report {
            path: out.to_owned(),
            message: "exists and is not a folder; expected a new folder or an earlier report's"
                .to_owned(),
        });
    }
    for entry in fs::read_dir(out).map_err(|err| Error::io(out, err))? {
        let name = entry.map_err(|err| Error::io(out, err))?.file_name();
        if !REPORT_ENTRIES.iter().any(|known| name == *known) {
            return Err(Error::Report {
                path: out.to_owned(),
                message: format!(
                    "holds `{}`, which a report does not write; refusing to replace the folder. Expected a new folder or an earlier report's (only {})",
                    name.to_string_lossy(),
                    REPORT_ENTRIES.join(", ")
                ),
            });
        }
    }
    Ok(())
}

/// Writes everything into a staging folder beside `out`, the HTML last, then swaps it in.
pub fn publish(
    out: &Path,
    files: &BTreeMap<String, Vec<u8>>,
    markdown: &str,
    html: &str,
) -> Result<()> {
    let parent = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name =
        out.file_name().map(|name| name.to_string_lossy().into_owned()).ok_or_else(|| {
            Error::Report {
                path: out.to_owned(),
                message: "is not a folder name; expected a path such as study/report".to_owned(),
            }
        })?;
    fs::create_dir_all(parent).map_err(|err| Error::io(parent, err))?;
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.staging-"))
        .tempdir_in(parent)
        .map_err(|err| Error::io(parent, err))?;
    for dir in [PLOTS_DIR, SAMPLES_DIR] {
        let path = staging.path().join(dir);
        fs::create_dir(&path).map_err(|err| Error::io(&path, err))?;
        make_readable(&path)?;
    }
    for (relative, bytes) in files {
        write_atomically(&staging.path().join(relative), bytes)?;
    }
    write_atomically(&staging.path().join(MARKDOWN_FILE), markdown.as_bytes())?;
    write_atomically(&staging.path().join(HTML_FILE), html.as_bytes())?;
    make_readable(staging.path())?;

    if !out.exists() {
        let staged = staging.keep();
        return fs::rename(&staged, out).map_err(|err| {
            let _ = fs::remove_dir_all(&staged);
            Error::io(out, err)
        });
    }
    // Move the old report aside, put the new one in its place, then delete the old one (with
    // the folder `old` is in, when it goes out of scope).
    let old = tempfile::Builder::new()
        .prefix(&format!(".{name}.old-"))
        .tempdir_in(parent)
        .map_err(|err| Error::io(parent, err))?;
    let old_report = old.path().join(&name);
    fs::rename(out, &old_report).map_err(|err| Error::io(out, err))?;
    if let Err(err) = fs::rename(staging.path(), out) {
        let _ = fs::rename(&old_report, out);
        return Err(Error::io(out, err));
    }
    // The staging folder is now `out`; keep its guard from deleting it.
    let _ = staging.keep();
    Ok(())
}
