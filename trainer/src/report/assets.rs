//! Every file a report shows besides the logbook, read once before the document is built: the
//! sample grid (PNG) of each image dataset's cells, and for each table dataset its real data and
//! each family's synthetic rows (CSV) for the marginals. Building the report then reads nothing;
//! a file that could not be read is kept as missing with the reason, which the report shows in
//! its place, and never fails the report.
//!
//! **Which files are read.** A samples path comes from a run's params, so from the logbook, and
//! the report copies what it reads into its folder and embeds it in a page that may be mailed on.
//! It is read only when it stays inside the study folder (the folder holding the logbook): it must
//! be relative, must have no `..` component, and the file it resolves to (symbolic links
//! followed) must lie inside the study folder as resolved; anything else is not read, so never
//! copied. The real data is where the study found it, relative to the folder the study ran from
//! and usually outside the study folder (`fixtures/…` beside `study/`): it is looked for as the
//! study recorded it (from the current folder), then from the study folder and each folder above
//! it, and read only when the recorded path and the file it resolves to both end in `.csv`, with
//! the schema file beside it as the study read it. Only its marginals reach the report, never the
//! file.

use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use edge_runtime::data::{DataOptions, read_dataset};
use models::manifest::Family;
use models::{Dataset, Modality, Table};

use crate::report::study::{DatasetResults, Study};

/// The files of every dataset, in the study's dataset order.
#[derive(Debug, Clone)]
pub struct Assets {
    pub datasets: Vec<DatasetAssets>,
}

/// The files one dataset's section shows.
#[derive(Debug, Clone)]
pub enum DatasetAssets {
    /// An image set: the sample grid of the first seed of each family × fraction, families in
    /// report order, then fractions increasing.
    Grids(Vec<Grid>),
    /// A table: the real data and the synthetic rows of each family at the largest fraction
    /// (first seed), in report order; the samples are read only when the real data was.
    Marginals { real: RealData, samples: Vec<(Family, SampleFile)> },
}

/// The sample grid of one family × fraction.
#[derive(Debug, Clone)]
pub struct Grid {
    pub family: Family,
    pub fraction: f64,
    pub seed: u64,
    pub file: SampleFile,
}

/// A samples file named by a run's params.
#[derive(Debug, Clone)]
pub struct SampleFile {
    /// As the run recorded it: relative to the study folder.
    pub recorded: String,
    /// The study folder joined with `recorded`, as messages name it.
    pub path: PathBuf,
    pub contents: Contents,
}

#[derive(Debug, Clone)]
pub enum Contents {
    Read(Vec<u8>),
    /// No file there: the error, naming the path.
    NotFound(String),
    /// Not read (outside the study folder, not a file) or unreadable, and why.
    NotRead(String),
}

/// A table dataset's real data.
#[derive(Debug, Clone)]
pub enum RealData {
    Table(Table),
    /// The file holds images, not a table: no marginals to draw.
    Images,
    /// Not found as recorded, nor from the study folder or a folder above it.
    NotFound,
    /// Not read, and why (not the CSV file a study records).
    NotRead(String),
    /// Found, but reading or parsing it failed.
    Unreadable(String),
}

impl Assets {
    /// Reads the files `study`'s report shows; `study_dir` is the folder holding the logbook.
    pub fn load(study: &Study, study_dir: &Path) -> Assets {
        let study_root = study_dir.canonicalize().map_err(|err| {
            format!("the study folder {} cannot be resolved: {err}", study_dir.display())
        });
        let datasets = study
            .datasets
            .iter()
            .map(|dataset| match dataset.modality {
                Modality::Image => DatasetAssets::Grids(grids(dataset, study_dir, &study_root)),
                Modality::Tabular => marginal_assets(dataset, study_dir, &study_root),
            })
            .collect();
        Assets { datasets }
    }
}

fn grids(
    dataset: &DatasetResults,
    study_dir: &Path,
    study_root: &Result<PathBuf, String>,
) -> Vec<Grid> {
    let mut grids = Vec::new();
    for &family in &dataset.families {
        for &fraction in &dataset.fractions {
            let Some(group) = dataset.group(family, fraction) else {
                continue;
            };
            let (Some(&seed), Some(recorded)) = (group.seeds.first(), group.samples.first()) else {
                continue;
            };
            let file = sample_file(study_dir, study_root, recorded);
            grids.push(Grid { family, fraction, seed, file });
        }
    }
    grids
}

fn marginal_assets(
    dataset: &DatasetResults,
    study_dir: &Path,
    study_root: &Result<PathBuf, String>,
) -> DatasetAssets {
    let real = real_data(&dataset.data_path, &dataset.label, study_dir);
    let samples = match (&real, dataset.fractions.last()) {
        (RealData::Table(_), Some(&largest)) => dataset
            .families
            .iter()
            .filter_map(|&family| {
                let recorded = dataset.group(family, largest)?.samples.first()?;
                Some((family, sample_file(study_dir, study_root, recorded)))
            })
            .collect(),
        _ => Vec::new(),
    };
    DatasetAssets::Marginals { real, samples }
}

/// Reads the samples file `recorded` if it lies inside the study folder (see the module docs).
fn sample_file(
    study_dir: &Path,
    study_root: &Result<PathBuf, String>,
    recorded: &str,
) -> SampleFile {
    let path = study_dir.join(recorded);
    let contents = match study_root {
        Ok(root) => match inside_study(root, study_dir, recorded) {
            Ok(resolved) => match std::fs::read(&resolved) {
                Ok(bytes) => Contents::Read(bytes),
                Err(err) if err.kind() == ErrorKind::NotFound => {
                    Contents::NotFound(format!("{}: {err}", path.display()))
                }
                Err(err) => Contents::NotRead(format!("{}: {err}", path.display())),
            },
            Err(contents) => contents,
        },
        Err(reason) => Contents::NotRead(format!("{recorded}: not read, as {reason}")),
    };
    SampleFile { recorded: recorded.to_owned(), path, contents }
}

/// The file `recorded` (relative to `study_dir`, whose resolved form is `root`) resolves to, when
/// it is a file inside the study folder; otherwise why it is not read.
fn inside_study(root: &Path, study_dir: &Path, recorded: &str) -> Result<PathBuf, Contents> {
    let refuse = |why: &str| {
        Contents::NotRead(format!(
            "{recorded}: {why}; the report reads only files inside the study folder ({})",
            study_dir.display()
        ))
    };
    for component in Path::new(recorded).components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(refuse("leads out of the study folder with `..`")),
            Component::RootDir | Component::Prefix(_) => return Err(refuse("is an absolute path")),
        }
    }
    let path = study_dir.join(recorded);
    let resolved = match path.canonicalize() {
        Ok(resolved) => resolved,
        Err(err) if err.kind() == ErrorKind::NotFound => {
            return Err(Contents::NotFound(format!("{}: {err}", path.display())));
        }
        Err(err) => return Err(Contents::NotRead(format!("{}: {err}", path.display()))),
    };
    if !resolved.starts_with(root) {
        return Err(refuse(&format!(
            "resolves to {}, outside the study folder (through a symbolic link)",
            resolved.display()
        )));
    }
    if !resolved.is_file() {
        return Err(refuse("is not a file"));
    }
    Ok(resolved)
}

/// Reads a table dataset's real data if it is the CSV file the study recorded (see the module
/// docs).
fn real_data(data_path: &str, label: &str, study_dir: &Path) -> RealData {
    let is_csv = |path: &Path| path.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("csv"));
    if !is_csv(Path::new(data_path)) {
        return RealData::NotRead(format!(
            "{data_path} is not a .csv file; the report reads the real data only from the CSV a study recorded"
        ));
    }
    let Some(found) = find_real_data(data_path, study_dir) else {
        return RealData::NotFound;
    };
    match found.canonicalize() {
        Ok(resolved) if is_csv(&resolved) && resolved.is_file() => {}
        Ok(resolved) => {
            return RealData::NotRead(format!(
                "{data_path} resolves to {}, which is not a .csv file; the report reads the real data only from the CSV a study recorded",
                resolved.display()
            ));
        }
        Err(err) => return RealData::Unreadable(format!("{}: {err}", found.display())),
    }
    let options = DataOptions { label: Some(label.to_owned()), ..DataOptions::default() };
    match read_dataset(&found, &options) {
        Ok(Dataset::Table(table)) => RealData::Table(table),
        Ok(Dataset::Images(_)) => RealData::Images,
        Err(err) => RealData::Unreadable(edge_runtime::error::chain(&err)),
    }
}

/// Where the real data of a study probably is: `data_path` as given (relative to the folder the
/// study ran from, normally the current one), else relative to the study folder or one of its
/// ancestors.
fn find_real_data(data_path: &str, study_dir: &Path) -> Option<PathBuf> {
    let given = Path::new(data_path);
    if given.exists() {
        return Some(given.to_owned());
    }
    if given.is_absolute() {
        return None;
    }
    let study_dir = study_dir.canonicalize().ok()?;
    study_dir.ancestors().map(|dir| dir.join(given)).find(|candidate| candidate.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the loader makes of the samples path `recorded` in a study folder holding
    /// `samples/in.png` (bytes `in`), `samples/link.png` (a link to `../outside.png` beside the
    /// study folder, bytes `out`) and the folder `samples/`.
    fn check(recorded: &str, expected: &str) {
        let dir = tempfile::tempdir().unwrap();
        let study_dir = dir.path().join("study");
        std::fs::create_dir_all(study_dir.join("samples")).unwrap();
        std::fs::write(study_dir.join("samples/in.png"), b"in").unwrap();
        std::fs::write(dir.path().join("outside.png"), b"out").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("../../outside.png", study_dir.join("samples/link.png"))
            .unwrap();
        let root = study_dir.canonicalize().map_err(|err| err.to_string());
        let got = match sample_file(&study_dir, &root, recorded).contents {
            Contents::Read(bytes) => format!("read {}", String::from_utf8_lossy(&bytes)),
            Contents::NotFound(_) => "not found".to_owned(),
            Contents::NotRead(reason) => format!("not read: {reason}"),
        };
        assert!(got.starts_with(expected), "{recorded}: got `{got}`, expected `{expected}…`");
        assert!(!got.contains("read out"), "{recorded}: the file outside was read");
    }

    #[test]
    fn only_files_inside_the_study_folder_are_read() {
        check("samples/in.png", "read in");
        check("./samples/in.png", "read in");
        check("samples/missing.png", "not found");
        check("/etc/passwd", "not read: /etc/passwd: is an absolute path");
        check("../outside.png", "not read: ../outside.png: leads out of the study folder");
        check("samples/../samples/in.png", "not read: samples/../samples/in.png: leads out");
        check("samples", "not read: samples: is not a file");
        #[cfg(unix)]
        check("samples/link.png", "not read: samples/link.png: resolves to");
    }

    #[test]
    fn real_data_is_read_only_from_a_csv_file() {
        let dir = tempfile::tempdir().unwrap();
        let study_dir = dir.path().join("study");
        std::fs::create_dir_all(&study_dir).unwrap();
        std::fs::write(dir.path().join("real.csv"), b"x,y\n1,a\n2,b\n").unwrap();
        std::fs::write(dir.path().join("secret.txt"), b"x,y\n1,a\n").unwrap();
        let check = |data_path: &str, expected: &str| {
            let got = match real_data(data_path, "y", &study_dir) {
                RealData::Table(table) => format!("table of {} rows", table.n_rows()),
                RealData::Images => "images".to_owned(),
                RealData::NotFound => "not found".to_owned(),
                RealData::NotRead(reason) => format!("not read: {reason}"),
                RealData::Unreadable(reason) => format!("unreadable: {reason}"),
            };
            assert!(got.starts_with(expected), "{data_path}: got `{got}`, expected `{expected}…`");
        };
        // Relative paths are looked for from the study folder and the folders above it.
        check("real.csv", "table of 2 rows");
        check(&dir.path().join("real.csv").display().to_string(), "table of 2 rows");
        check("nowhere.csv", "not found");
        check(&dir.path().join("secret.txt").display().to_string(), "not read: ");
        check("/etc/passwd", "not read: /etc/passwd is not a .csv file");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("secret.txt"), dir.path().join("link.csv"))
                .unwrap();
            check("link.csv", "not read: link.csv resolves to");
        }
    }
}
