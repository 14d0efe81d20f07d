//! Decoding generated samples with the manifest's transform and writing them out.
//!
//! - tables → CSV with the original header, categories and labels by name, numbers with each
//!   column's decimals (clamped to the observed range);
//! - images → one PNG per sample in class folders plus `grid.png` (a row of samples per class),
//!   or a pixel CSV like `digits.csv` when the output path ends in `.csv`. Folder names are made
//!   from class names by [`class_folder_names`]: a class name never becomes a path.
//!
//! Files appear whole or not at all: a CSV through a temporary file and a rename, a folder
//! through a staging folder and a rename.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Component, Path, PathBuf};

use models::manifest::{Manifest, SchemaKind};
use models::table::ColumnKind;
use models::transform::{Encoder, PixelEncoder};
use models::{Dataset, ImageSet, ImageShape, Table, TableOptions};
use sha2::{Digest, Sha256};

use crate::data::write_atomically;
use crate::error::{Error, Result};
use crate::memory::MemoryBudget;
use crate::sampler::Samples;

/// The samples as the CSV a user gets.
pub fn csv_bytes(manifest: &Manifest, samples: &Samples) -> Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let csv_error =
        |err: csv::Error| Error::Encode { what: "the samples as CSV", source: Box::new(err) };
    match &manifest.transform {
        Encoder::Tabular(encoder) => {
            writer
                .write_record(manifest.schema.columns.iter().map(|column| column.name.as_str()))
                .map_err(csv_error)?;
            let decoded = encoder.decode(&samples.x);
            for (row, label) in decoded.iter().zip(&samples.labels) {
                let mut features =
                    row.iter().enumerate().map(|(col, &value)| encoder.format_value(col, value));
                let record: Vec<String> = manifest
                    .schema
                    .columns
                    .iter()
                    .map(|column| match column.kind {
                        SchemaKind::Label => manifest.schema.classes[*label as usize].clone(),
                        _ => features.next().unwrap_or_default(),
                    })
                    .collect();
                writer.write_record(&record).map_err(csv_error)?;
            }
        }
        Encoder::Image(encoder) => {
            let header = pixel_header(manifest, encoder.shape);
            writer.write_record(&header).map_err(csv_error)?;
            let label_position = header
                .iter()
                .position(|name| *name == manifest.schema.label)
                .unwrap_or(header.len() - 1);
            for (pixels, label) in samples.x.chunks_exact(samples.width).zip(&samples.labels) {
                let mut values = encoder.decode(pixels).into_iter().map(|value| format!("{value}"));
                let record: Vec<String> = (0..header.len())
                    .map(|col| {
                        if col == label_position {
                            manifest.schema.classes[*label as usize].clone()
                        } else {
                            values.next().unwrap_or_default()
                        }
                    })
                    .collect();
                writer.write_record(&record).map_err(csv_error)?;
            }
        }
    }
    writer.into_inner().map_err(|err| Error::Encode {
        what: "the samples as CSV",
        source: Box::new(err.into_error()),
    })
}

/// The header of a pixel CSV: the training CSV's, or `px_ROW_COL` (`px_C_ROW_COL` for RGB) and
/// the label for an image folder.
fn pixel_header(manifest: &Manifest, shape: ImageShape) -> Vec<String> {
    if !manifest.schema.columns.is_empty() {
        return manifest.schema.columns.iter().map(|column| column.name.clone()).collect();
    }
    let mut header = Vec::with_capacity(shape.n_values() + 1);
    for channel in 0..shape.channels {
        for row in 0..shape.height {
            for col in 0..shape.width {
                header.push(if shape.channels == 1 {
                    format!("px_{row}_{col}")
                } else {
                    format!("px_{channel}_{row}_{col}")
                });
            }
        }
    }
    header.push(manifest.schema.label.clone());
    header
}

/// The samples as a dataset, decoded exactly as a written file would be: this is what
/// evaluation and the privacy gate look at.
pub fn synthetic_dataset(manifest: &Manifest, samples: &Samples) -> Result<Dataset> {
    match &manifest.transform {
        Encoder::Tabular(_) => {
            let bytes = csv_bytes(manifest, samples)?;
            let options = TableOptions {
                label: manifest.schema.label.clone(),
                kinds: manifest
                    .schema
                    .columns
                    .iter()
                    .filter_map(|column| match column.kind {
                        SchemaKind::Numeric => Some((column.name.clone(), ColumnKind::Numeric)),
                        SchemaKind::Categorical => {
                            Some((column.name.clone(), ColumnKind::Categorical))
                        }
                        SchemaKind::Label => None,
                    })
                    .collect(),
                ..TableOptions::default()
            };
            let mut table = Table::parse_csv(&bytes, "generated samples", &options)?;
            align_classes(
                &mut table.labels,
                &mut table.classes,
                &manifest.schema.classes,
                "generated samples",
            )?;
            Ok(Dataset::Table(table))
        }
        Encoder::Image(encoder) => Ok(Dataset::Images(ImageSet {
            source: "generated samples".into(),
            shape: encoder.shape,
            pixel_max: encoder.pixel_max,
            pixels: encoder.decode(&samples.x),
            labels: samples.labels.clone(),
            classes: manifest.schema.classes.clone(),
            label_name: manifest.schema.label.clone(),
            header: None,
            fingerprint: String::new(),
        })),
    }
}

/// Re-indexes labels from `classes` (what one file happened to contain) to `reference`; a class
/// outside `reference` is an error naming `source`.
pub fn align_classes(
    labels: &mut [u32],
    classes: &mut Vec<String>,
    reference: &[String],
    source: &str,
) -> Result<()> {
    let mut map = Vec::with_capacity(classes.len());
    for name in classes.iter() {
        let idx = reference.iter().position(|known| known == name).ok_or_else(|| {
            Error::Invalid(format!(
                "{source}: label `{name}` is not a class of the real data (known: {})",
                reference.join(", ")
            ))
        })?;
        map.push(idx as u32);
    }
    for label in labels.iter_mut() {
        *label = map[*label as usize];
    }
    *classes = reference.to_vec();
    Ok(())
}

/// Writes the samples to `out`: a CSV file, or for images a folder of PNGs (or a pixel CSV).
pub fn write_samples(manifest: &Manifest, samples: &Samples, out: &Path) -> Result<()> {
    let is_csv = out.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("csv"));
    match &manifest.transform {
        Encoder::Image(encoder) if !is_csv => write_image_folder(manifest, encoder, samples, out),
        _ => write_atomically(out, &csv_bytes(manifest, samples)?),
    }
}

fn write_image_folder(
    manifest: &Manifest,
    encoder: &PixelEncoder,
    samples: &Samples,
    out: &Path,
) -> Result<()> {
    if out.exists() && fs::read_dir(out).map_err(|err| Error::io(out, err))?.next().is_some() {
        return Err(Error::Invalid(format!(
            "{}: already exists and is not empty; choose another output folder",
            out.display()
        )));
    }
    let parent = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let staging = tempfile::Builder::new()
        .prefix(".samples-staging-")
        .tempdir_in(parent)
        .map_err(|err| Error::io(out, err))?;
    let shape = encoder.shape;
    let folders = class_folder_names(&manifest.schema.classes)?;
    let mut per_class: Vec<Vec<usize>> = vec![Vec::new(); manifest.n_classes()];
    for (idx, (pixels, &label)) in
        samples.x.chunks_exact(samples.width).zip(&samples.labels).enumerate()
    {
        let folder = folders.get(label as usize).ok_or_else(|| {
            Error::Invalid(format!(
                "sample {idx} has class index {label}, but the model has {} classes",
                folders.len()
            ))
        })?;
        let class_dir = child_path(staging.path(), folder)?;
        fs::create_dir_all(&class_dir).map_err(|err| Error::io(&class_dir, err))?;
        let path = class_dir.join(format!("{idx:06}.png"));
        let png = encode_png(shape, &encoder.decode_to_u8(pixels), 1)?;
        fs::write(&path, png).map_err(|err| Error::io(&path, err))?;
        per_class[label as usize].push(idx);
    }
    let grid = grid_png(shape, encoder, samples, &per_class, 10)?;
    let grid_path = staging.path().join("grid.png");
    fs::write(&grid_path, grid).map_err(|err| Error::io(&grid_path, err))?;
    if out.exists() {
        fs::remove_dir(out).map_err(|err| Error::io(out, err))?;
    }
    let staged = staging.keep();
    crate::data::make_readable(&staged)?;
    fs::rename(&staged, out).map_err(|err| Error::io(out, err))?;
    Ok(())
}

/// The longest folder name made from a class name, before its hash suffix.
const MAX_FOLDER_NAME: usize = 64;

/// One folder name per class: class names are data, never paths. A name is kept when it is
/// made only of `[A-Za-z0-9._-]`, is at most 64 bytes, does not start with a dot and is not
/// `grid.png`; otherwise every other character becomes `_`, it is cut to 64 bytes and
/// `-` and 8 hex digits of its SHA-256 are appended. Names that would meet (`a b` and `a_b`,
/// or `Cat` and `cat` on a case-insensitive file system) all get the suffix, so no two classes
/// share a folder.
pub fn class_folder_names(classes: &[String]) -> Result<Vec<String>> {
    let suffixed = |class: &str, base: &str| {
        let digest = hex::encode(Sha256::digest(class.as_bytes()));
        format!("{base}-{}", digest.get(..8).unwrap_or_default())
    };
    let bases: Vec<(String, bool)> = classes
        .iter()
        .map(|class| {
            let mut base: String = class
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }
                })
                .take(MAX_FOLDER_NAME)
                .collect();
            let kept =
                base == *class && !base.starts_with('.') && !base.eq_ignore_ascii_case("grid.png");
            if base.starts_with('.') || base.is_empty() {
                base.insert(0, '_');
            }
            (base, kept)
        })
        .collect();
    let mut lowercase_count: HashMap<String, usize> = HashMap::new();
    for (base, _) in &bases {
        *lowercase_count.entry(base.to_ascii_lowercase()).or_default() += 1;
    }
    let names: Vec<String> = classes
        .iter()
        .zip(bases)
        .map(|(class, (base, kept))| {
            let unique = lowercase_count.get(&base.to_ascii_lowercase()) == Some(&1);
            if kept && unique { base } else { suffixed(class, &base) }
        })
        .collect();
    let mut seen = HashSet::new();
    for (class, name) in classes.iter().zip(&names) {
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(Error::Invalid(format!(
                "class `{class}` would be written to the folder `{name}`, which another class already takes"
            )));
        }
    }
    Ok(names)
}

/// `dir/name`, refused unless `name` is one plain path component, so the path stays in `dir`.
fn child_path(dir: &Path, name: &str) -> Result<PathBuf> {
    let mut components = Path::new(name).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(part)), None) if part == name => Ok(dir.join(part)),
        _ => Err(Error::Invalid(format!(
            "`{name}` is not a plain file name; refusing to write outside {}",
            dir.display()
        ))),
    }
}

/// A PNG of one image given channel-major 8-bit values, each pixel repeated `scale` times.
pub fn encode_png(shape: ImageShape, values: &[u8], scale: usize) -> Result<Vec<u8>> {
    let (height, width) = (shape.height * scale, shape.width * scale);
    let mut interleaved = vec![0_u8; height * width * shape.channels];
    for y in 0..height {
        for x in 0..width {
            for channel in 0..shape.channels {
                interleaved[(y * width + x) * shape.channels + channel] =
                    values[(channel * shape.height + y / scale) * shape.width + x / scale];
            }
        }
    }
    png_bytes(width, height, shape.channels, &interleaved)
}

/// Encodes interleaved 8-bit rows as a PNG.
pub fn png_bytes(
    width: usize,
    height: usize,
    channels: usize,
    interleaved: &[u8],
) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width as u32, height as u32);
    encoder.set_color(if channels == 3 { png::ColorType::Rgb } else { png::ColorType::Grayscale });
    encoder.set_depth(png::BitDepth::Eight);
    let png_error =
        |err: png::EncodingError| Error::Encode { what: "a PNG image", source: Box::new(err) };
    let mut writer = encoder.write_header().map_err(png_error)?;
    writer.write_image_data(interleaved).map_err(png_error)?;
    writer.finish().map_err(png_error)?;
    Ok(bytes)
}

/// Up to `per_row` samples of each class side by side, one row per class, on a mid-grey
/// background, scaled so that a tile is at least 32 pixels high.
pub fn grid_png(
    shape: ImageShape,
    encoder: &PixelEncoder,
    samples: &Samples,
    per_class: &[Vec<usize>],
    per_row: usize,
) -> Result<Vec<u8>> {
    let scale = (32 / shape.height.max(1)).max(1);
    let (tile_h, tile_w, gap) = (shape.height * scale, shape.width * scale, 2);
    let rows = per_class.len().max(1);
    let (height, width) = (rows * (tile_h + gap) + gap, per_row * (tile_w + gap) + gap);
    let channels = shape.channels;
    MemoryBudget::from_system().check(
        &format!("the preview grid of {rows} classes × {per_row} images of {shape}"),
        height as u128 * width as u128 * channels as u128,
        "the number of classes or the image size, or write a pixel CSV instead",
    )?;
    let mut canvas = vec![128_u8; height * width * channels];
    for (row, members) in per_class.iter().enumerate() {
        for (col, &idx) in members.iter().take(per_row).enumerate() {
            let values =
                encoder.decode_to_u8(&samples.x[idx * samples.width..(idx + 1) * samples.width]);
            let (top, left) = (gap + row * (tile_h + gap), gap + col * (tile_w + gap));
            for y in 0..tile_h {
                for x in 0..tile_w {
                    for channel in 0..channels {
                        canvas[((top + y) * width + left + x) * channels + channel] =
                            values[(channel * shape.height + y / scale) * shape.width + x / scale];
                    }
                }
            }
        }
    }
    png_bytes(width, height, channels, &canvas)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folders(classes: &[&str]) -> Vec<String> {
        let classes: Vec<String> = classes.iter().map(|&class| class.to_owned()).collect();
        class_folder_names(&classes).unwrap()
    }

    #[test]
    fn plain_class_names_are_kept() {
        assert_eq!(folders(&["0", "cat", "Mindum-2.b_x"]), ["0", "cat", "Mindum-2.b_x"]);
    }

    #[test]
    fn other_class_names_become_one_safe_component_with_a_hash() {
        let hash = |text: &str| hex::encode(Sha256::digest(text.as_bytes()))[..8].to_owned();
        let names =
            folders(&["../../x", "/etc/x", "..", ".", "a b", "a_b", "grid.png", "Cat", "cat"]);
        assert_eq!(
            names,
            [
                format!("_.._.._x-{}", hash("../../x")),
                format!("_etc_x-{}", hash("/etc/x")),
                format!("_..-{}", hash("..")),
                format!("_.-{}", hash(".")),
                format!("a_b-{}", hash("a b")),
                format!("a_b-{}", hash("a_b")),
                format!("grid.png-{}", hash("grid.png")),
                format!("Cat-{}", hash("Cat")),
                format!("cat-{}", hash("cat")),
            ]
        );
        for name in &names {
            assert!(child_path(Path::new("/out"), name).unwrap().starts_with("/out"));
        }
        assert!(child_path(Path::new("/out"), "../x").is_err());
        assert!(child_path(Path::new("/out"), "/etc").is_err());
        assert!(child_path(Path::new("/out"), "..").is_err());
    }

    #[test]
    fn long_class_names_are_cut() {
        let names = folders(&[&"x".repeat(300)]);
        assert_eq!(names[0].len(), MAX_FOLDER_NAME + 9);
    }
}
