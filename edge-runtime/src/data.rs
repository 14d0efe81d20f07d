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
/// The largest PNG read from an image folder (a 4096² RGB image at 16 bits, uncompressed, is 96 MiB).
pub const MAX_PNG_BYTES: u64 = 128 << 20;

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
    let budget = MemoryBudget::from_system();
    budget.check(
        &format!("reading {}", path.display()),
        u128::from(metadata.len()),
        "the size of the file (fewer rows)",
    )?;
    let bytes = read_bounded(path, budget.bytes, "a CSV file")?;
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

/// The bytes of the plain file at `path`, at most `max_bytes` of them. Anything else is refused
/// before it is opened (a folder, a FIFO that would block, a device such as `/dev/zero` that
/// reports no size), and so is a file over the limit, by its size and again while reading (a file
/// that grows is cut off). `what` names what the file should be, for the message.
pub fn read_bounded(path: &Path, max_bytes: u64, what: &str) -> Result<Vec<u8>> {
    let metadata = fs::metadata(path).map_err(|err| Error::io(path, err))?;
    if !metadata.is_file() {
        return Err(Error::Invalid(format!(
            "{}: is not a plain file (a folder, FIFO, device or socket); expected {what}",
            path.display()
        )));
    }
    let too_big = || {
        Error::Invalid(format!(
            "{}: is over {max_bytes} bytes; expected {what} of at most {max_bytes} bytes",
            path.display()
        ))
    };
    if metadata.len() > max_bytes {
        return Err(too_big());
    }
    let file = fs::File::open(path).map_err(|err| Error::io(path, err))?;
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|err| Error::io(path, err))?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_big());
    }
    Ok(bytes)
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_bounded_text(path: &Path, max_bytes: u64, what: &str) -> Result<String> {
    String::from_utf8(read_bounded(path, max_bytes, what)?).map_err(|_| {
        Error::Invalid(format!("{}: is not UTF-8 text; expected {what}", path.display()))
    })
}

/// The text of the schema file at `path`, `None` when there is none; refused when larger than
/// [`MAX_SCHEMA_BYTES`] (read through a bounded reader, so a file that grows is cut off too).
fn read_schema_text(path: &Path) -> Result<Option<String>> {
    match fs::metadata(path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(Error::io(path, err)),
        Ok(_) => {}
    }
    read_bounded_text(path, MAX_SCHEMA_BYTES, "a schema file of a few lines").map(Some)
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
            let bytes = read_bounded(&image, MAX_PNG_BYTES, "a PNG image")?;
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
    refuse_special(path)?;
    let file = write_temporary(path, bytes)?;
    file.persist(path).map_err(|err| Error::io(path, err.error))?;
    make_readable(path)
}

/// Writes a new file whole, as [`write_atomically`] does, but never replaces one: an existing
/// `path` is refused ([`refuse_existing`]), before writing and again by the rename itself, so a
/// file that appears meanwhile survives too. The file is left private (0600).
pub fn write_new_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    refuse_existing(path)?;
    let file = write_temporary(path, bytes)?;
    file.persist_noclobber(path).map_err(|err| {
        if err.error.kind() == std::io::ErrorKind::AlreadyExists {
            already_exists(path)
        } else {
            Error::io(path, err.error)
        }
    })?;
    Ok(())
}

/// An error when something (a file, a folder, a link) is at `path`: what
/// [`write_new_atomically`] refuses, for a caller that checks several paths before writing any.
pub fn refuse_existing(path: &Path) -> Result<()> {
    if fs::symlink_metadata(path).is_ok() { Err(already_exists(path)) } else { Ok(()) }
}

fn already_exists(path: &Path) -> Error {
    Error::Invalid(format!(
        "{}: already exists; this file is never overwritten (move it away first)",
        path.display()
    ))
}

/// `bytes` in a private temporary file next to `path`, flushed to disk.
/// An output replaces a plain file (or a link, not what it points to), never a folder, a device,
/// a FIFO or a socket: renaming over `/dev/null` as root would replace the device itself.
pub fn refuse_special(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(metadata) if !metadata.is_file() && !metadata.file_type().is_symlink() => {
            Err(Error::Invalid(format!(
                "{}: exists and is not a plain file (a folder, device, FIFO or socket); an output \
                 only ever replaces a file",
                path.display()
            )))
        }
        _ => Ok(()),
    }
}

fn write_temporary(path: &Path, bytes: &[u8]) -> Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|err| Error::io(path, err))?;
    file.write_all(bytes).map_err(|err| Error::io(path, err))?;
    file.as_file().sync_all().map_err(|err| Error::io(path, err))?;
    Ok(file)
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

    #[test]
    fn a_bounded_read_takes_only_plain_files_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        fs::write(&path, "0123456789").unwrap();
        assert_eq!(read_bounded(&path, 10, "a token").unwrap(), b"0123456789");
        let err = read_bounded(&path, 9, "a token").unwrap_err().to_string();
        assert!(err.contains("over 9 bytes") && err.contains("token"), "{err}");
        let err = read_bounded(dir.path(), 10, "a token").unwrap_err().to_string();
        assert!(err.contains("not a plain file"), "{err}");
        fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(read_bounded_text(&path, 10, "a token").unwrap_err().to_string().contains("UTF-8"));
    }

    /// A device that reports no size and never ends, and a FIFO that would block the open: both
    /// refused before they are opened.
    #[cfg(unix)]
    #[test]
    fn a_device_or_a_fifo_is_never_read_nor_replaced() {
        let err = read_bounded(Path::new("/dev/zero"), 4096, "a key").unwrap_err().to_string();
        assert!(err.contains("not a plain file"), "{err}");
        let err = refuse_special(Path::new("/dev/null")).unwrap_err().to_string();
        assert!(err.contains("not a plain file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|status| status.success()) {
            eprintln!("skipping the FIFO half: mkfifo is not available");
            return;
        }
        assert!(read_bounded(&fifo, 4096, "a key").is_err());
        let err = write_atomically(&fifo, b"rows").unwrap_err().to_string();
        assert!(err.contains("not a plain file"), "{err}");
        use std::os::unix::fs::FileTypeExt as _;
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO is kept");
        // A link is replaced itself, never what it points to.
        let target = dir.path().join("target.csv");
        fs::write(&target, "real data").unwrap();
        let link = dir.path().join("link.csv");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_atomically(&link, b"synthetic").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"real data");
        assert_eq!(fs::read(&link).unwrap(), b"synthetic");
    }

    #[test]
    fn a_new_file_is_written_whole_and_an_existing_one_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        write_new_atomically(&path, b"first").unwrap();
        for attempt in [write_new_atomically(&path, b"second"), refuse_existing(&path)] {
            let message = attempt.unwrap_err().to_string();
            assert!(message.contains("k.key: already exists"), "{message}");
        }
        assert_eq!(fs::read(&path).unwrap(), b"first");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            // A dangling link is something in the way too: it is not followed.
            let link = dir.path().join("link.key");
            std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
            assert!(write_new_atomically(&link, b"x").is_err());
            assert!(!dir.path().join("nowhere").exists());
        }
    }

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
