//! Reading datasets from disk — the I/O half of `models`' parsers — and writing files safely.
//!
//! A path is read as an image folder (`root/<class>/*.png`) when it is a directory, as a pixel
//! CSV when an image shape is given, and as a table otherwise. A schema file beside a CSV
//! (`<stem>.schema.toml`) fixes the label, column kinds, missing-value policy or pixel range.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use models::table::SchemaFile;
use models::{
    ColumnKind, Dataset, ImageFile, ImageSet, ImageShape, MissingPolicy, Table, TableOptions,
};

use crate::error::{Error, Result};
use crate::memory::MemoryBudget;

/// The largest schema file read: a few lines of TOML, with room to spare.
pub const MAX_SCHEMA_BYTES: u64 = 1 << 20;

/// How to read a dataset; `None` fields fall back to the schema file, then to defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DataOptions {
    pub label: Option<String>,
    pub image_shape: Option<ImageShape>,
    pub missing: Option<MissingPolicy>,
    /// Column kinds fixed in advance (overriding inference and the schema file).
    pub kinds: BTreeMap<String, ColumnKind>,
    /// When set, a CSV's header must be exactly this.
    pub expect_header: Option<Vec<String>>,
}

impl DataOptions {
    /// Options that read another file exactly like `table`: same header, same column kinds.
    pub fn like_table(table: &Table, missing: MissingPolicy) -> DataOptions {
        DataOptions {
            label: Some(table.label_name().to_owned()),
            image_shape: None,
            missing: Some(missing),
            kinds: table
                .features
                .iter()
                .map(|column| (column.name.clone(), column.kind()))
                .collect(),
            expect_header: Some(table.header.clone()),
        }
    }
}

/// The schema file that belongs beside `path`: `data.csv` → `data.schema.toml`.
pub fn schema_path(path: &Path) -> PathBuf {
    path.with_extension("schema.toml")
}

/// Reads a dataset: an image folder, or a CSV (a table, or flattened images) with its optional
/// schema file beside it. A CSV is read whole, so its size is checked against the memory budget
/// first; a schema file is at most [`MAX_SCHEMA_BYTES`].
pub fn read_dataset(path: &Path, options: &DataOptions) -> Result<Dataset> {
    let metadata = fs::metadata(path).map_err(|err| Error::io(path, err))?;
    if metadata.is_dir() {
        return read_image_folder(path).map(Dataset::Images);
    }
    let schema_file = schema_path(path);
    let schema = match read_schema_text(&schema_file)? {
        Some(text) => SchemaFile::parse(&text, schema_file.as_path())?,
        None => SchemaFile::default(),
    };
    let label = options.label.clone().or_else(|| schema.label.clone()).ok_or_else(|| {
        Error::Invalid(format!(
            "{}: no label column given; expected one from the command or `label = \"COLUMN\"` \
             in {}",
            path.display(),
            schema_file.display()
        ))
    })?;
    MemoryBudget::from_system().check(
        &format!("reading {}", path.display()),
        u128::from(metadata.len()),
        "the size of the file (fewer rows)",
    )?;
    let bytes = fs::read(path).map_err(|err| Error::io(path, err))?;
    if let Some(shape) = options.image_shape.or_else(|| schema.image_shape()) {
        return Ok(Dataset::Images(ImageSet::parse_pixel_csv(
            &bytes,
            path,
            &label,
            shape,
            schema.pixel_max,
        )?));
    }
    let mut table_options = TableOptions::new(label).with_schema(&schema);
    if let Some(missing) = options.missing {
        table_options.missing = missing;
    }
    table_options.kinds.extend(options.kinds.iter().map(|(name, kind)| (name.clone(), *kind)));
    table_options.expect_header = options.expect_header.clone();
    Ok(Dataset::Table(Table::parse_csv(&bytes, path, &table_options)?))
}

/// The text of the schema file at `path`, `None` when there is none; refused when larger than
/// [`MAX_SCHEMA_BYTES`] (read through a bounded reader, so a file that grows is cut off too).
fn read_schema_text(path: &Path) -> Result<Option<String>> {
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(Error::io(path, err)),
    };
    let mut text = String::new();
    file.take(MAX_SCHEMA_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|err| Error::io(path, err))?;
    if text.len() as u64 > MAX_SCHEMA_BYTES {
        return Err(Error::Invalid(format!(
            "{}: is over {MAX_SCHEMA_BYTES} bytes; expected a schema file of a few lines",
            path.display()
        )));
    }
    Ok(Some(text))
}

/// Reads `root/<class>/*.png`; hidden entries and files at the top level are skipped; anything
/// but a PNG inside a class folder is refused.
pub fn read_image_folder(root: &Path) -> Result<ImageSet> {
    let mut files = Vec::new();
    for class_dir in sorted_entries(root)? {
        // Files beside the class folders (a README, the grid.png that `generate` writes) are
        // not samples.
        if !class_dir.is_dir() {
            continue;
        }
        let class = file_name(&class_dir);
        let before = files.len();
        for image in sorted_entries(&class_dir)? {
            let is_png = image.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("png"));
            if !is_png || !image.is_file() {
                return Err(Error::bundle(
                    &image,
                    "is not a .png file; expected only PNG images in a class folder",
                ));
            }
            let bytes = fs::read(&image).map_err(|err| Error::io(&image, err))?;
            files.push(ImageFile { class: class.clone(), name: file_name(&image), bytes });
        }
        if files.len() == before {
            return Err(Error::bundle(&class_dir, "class folder holds no PNG images"));
        }
    }
    Ok(ImageSet::from_png_files(files, root)?)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(|err| Error::io(dir, err))? {
        let path = entry.map_err(|err| Error::io(dir, err))?.path();
        if !file_name(&path).starts_with('.') {
            entries.push(path);
        }
    }
    entries.sort();
    Ok(entries)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Writes `bytes` to `path` through a temporary file in the same folder, then renames it into
/// place: a reader sees the old file or the whole new one, never half of it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|err| Error::io(path, err))?;
    file.write_all(bytes).map_err(|err| Error::io(path, err))?;
    file.as_file().sync_all().map_err(|err| Error::io(path, err))?;
    file.persist(path).map_err(|err| Error::io(path, err.error))?;
    make_readable(path)
}

/// Temporary files are created private (0600) and folders 0700; a finished output gets the usual
/// modes, 0644 for files and 0755 for folders.
pub fn make_readable(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if path.is_dir() { 0o755 } else { 0o644 };
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|err| Error::io(path, err))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_error(csv: &str, schema: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.csv");
        fs::write(&path, csv).unwrap();
        fs::write(schema_path(&path), schema).unwrap();
        crate::error::chain(&read_dataset(&path, &DataOptions::default()).unwrap_err())
    }

    #[test]
    fn an_oversized_schema_file_is_refused_by_name_before_it_is_parsed() {
        let mut schema = b"label = \"y\"\n".to_vec();
        schema.resize(MAX_SCHEMA_BYTES as usize + 1, b'#');
        let message = read_error("x,y\n1,a\n", &schema);
        assert!(message.contains("data.schema.toml: is over 1048576 bytes"), "{message}");
    }

    #[test]
    fn a_missing_label_is_named_with_the_schema_file_and_no_flag() {
        let message = read_error("x,y\n1,a\n", b"missing = \"impute\"\n");
        assert!(message.contains("data.csv: no label column given"), "{message}");
        assert!(message.contains("data.schema.toml"), "{message}");
        assert!(!message.contains("--"), "{message}");
    }
}
