//! Image data: the image-folder layout (`root/<class>/*.png`, grayscale or RGB, one size) and
//! flattened-pixel CSVs such as `digits.csv` (`px_ROW_COL` columns, shape given by the caller).
//!
//! Pixels are stored raw (as in the file) in `pixels`, one image after another, each image
//! channel-major: `(channels, height, width)`, i.e. an `n × (c·h·w)` row-major matrix.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, Source};
use crate::manifest::field_error;
use crate::table::{RawCsv, is_missing, sort_categories};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

/// The longest side an image may have, in pixels.
pub const MAX_IMAGE_SIDE: usize = 4096;

impl ImageShape {
    pub fn n_values(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Checks a shape read from the manifest `source` (at `field`): 1 (grayscale) or 3 (RGB)
    /// channels, each side from 1 to [`MAX_IMAGE_SIDE`] pixels.
    pub fn validate(&self, source: &Source, field: &str) -> Result<()> {
        if self.channels != 1 && self.channels != 3 {
            return Err(field_error(
                source,
                &format!("{field}.channels"),
                format!("is {}; expected 1 (grayscale) or 3 (RGB)", self.channels),
            ));
        }
        for (name, side) in [("height", self.height), ("width", self.width)] {
            if !(1..=MAX_IMAGE_SIDE).contains(&side) {
                return Err(field_error(
                    source,
                    &format!("{field}.{name}"),
                    format!("is {side}; expected 1 to {MAX_IMAGE_SIDE} pixels"),
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for ImageShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let colour = match self.channels {
            1 => "grayscale".to_owned(),
            3 => "RGB".to_owned(),
            n => format!("{n}-channel"),
        };
        write!(f, "{}×{} {colour}", self.height, self.width)
    }
}

impl std::str::FromStr for ImageShape {
    type Err = Error;

    /// `HxW` (grayscale) or `HxWxC`.
    fn from_str(text: &str) -> Result<Self> {
        let expected = format!(
            "HxW or HxWxC, each side 1 to {MAX_IMAGE_SIDE} pixels and 1 or 3 channels, e.g. 8x8"
        );
        let side = |side: usize| (1..=MAX_IMAGE_SIDE).contains(&side);
        let parts: Option<Vec<usize>> =
            text.split(['x', 'X', '×']).map(|part| part.trim().parse().ok()).collect();
        match parts.as_deref() {
            Some(&[height, width]) if side(height) && side(width) => {
                Ok(ImageShape { channels: 1, height, width })
            }
            Some(&[height, width, channels])
                if side(height) && side(width) && (channels == 1 || channels == 3) =>
            {
                Ok(ImageShape { channels, height, width })
            }
            _ => Err(Error::parameter("image shape", text, expected)),
        }
    }
}

/// One PNG of an image folder, as read by the caller.
#[derive(Debug, Clone)]
pub struct ImageFile {
    pub class: String,
    pub name: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    pub source: Source,
    pub shape: ImageShape,
    /// The raw value of full brightness: 255 for 8-bit PNGs, 65535 for 16-bit, 16 for `digits.csv`.
    pub pixel_max: f64,
    /// `n × shape.n_values()` raw pixel values.
    pub pixels: Vec<f32>,
    pub labels: Vec<u32>,
    pub classes: Vec<String>,
    /// The label's name: the CSV's label column, or `class` for an image folder.
    pub label_name: String,
    /// For a pixel CSV, its header (so synthetic images can be written back in the same form).
    pub header: Option<Vec<String>>,
    pub fingerprint: String,
}

impl ImageSet {
    pub fn n_images(&self) -> usize {
        self.labels.len()
    }

    pub fn image(&self, idx: usize) -> &[f32] {
        let n_values = self.shape.n_values();
        &self.pixels[idx * n_values..(idx + 1) * n_values]
    }

    pub fn select(&self, rows: &[usize]) -> ImageSet {
        let mut pixels = Vec::with_capacity(rows.len() * self.shape.n_values());
        for &row in rows {
            pixels.extend_from_slice(self.image(row));
        }
        ImageSet {
            pixels,
            labels: rows.iter().map(|&row| self.labels[row]).collect(),
            source: self.source.clone(),
            shape: self.shape,
            pixel_max: self.pixel_max,
            classes: self.classes.clone(),
            label_name: self.label_name.clone(),
            header: self.header.clone(),
            fingerprint: self.fingerprint.clone(),
        }
    }

    /// Decodes an image folder's PNGs. Every image must have the shape and bit depth of the first.
    pub fn from_png_files(
        mut files: Vec<ImageFile>,
        source: impl Into<Source>,
    ) -> Result<ImageSet> {
        let source = source.into();
        if files.is_empty() {
            return Err(Error::data(
                source,
                "no PNG images found; expected the layout root/<class>/*.png",
            ));
        }
        files.sort_by(|a, b| (&a.class, &a.name).cmp(&(&b.class, &b.name)));
        let mut classes: Vec<String> = files
            .iter()
            .map(|file| file.class.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        sort_categories(&mut classes);
        let class_index: BTreeMap<&str, u32> =
            classes.iter().enumerate().map(|(idx, name)| (name.as_str(), idx as u32)).collect();

        let mut hasher = Sha256::new();
        hasher.update(b"fieldsynth-images-v1");
        let mut first: Option<(ImageShape, u32, String)> = None;
        let mut pixels = Vec::new();
        let mut labels = Vec::with_capacity(files.len());
        for file in &files {
            let path = format!("{}/{}/{}", source, file.class, file.name);
            let (shape, bit_depth, values) = decode_png(&file.bytes, &path)?;
            match &first {
                None => first = Some((shape, bit_depth, path.clone())),
                Some((first_shape, first_depth, first_path)) => {
                    if shape != *first_shape || bit_depth != *first_depth {
                        return Err(Error::data(
                            path,
                            format!(
                                "is {shape} at {bit_depth} bits; expected {first_shape} at {first_depth} bits like {first_path} (all images must have one size)"
                            ),
                        ));
                    }
                }
            }
            for text in [&file.class, &file.name] {
                hasher.update((text.len() as u64).to_le_bytes());
                hasher.update(text.as_bytes());
            }
            for value in &values {
                hasher.update(value.to_le_bytes());
            }
            pixels.extend(values.iter().map(|&value| value as f32));
            labels.push(class_index[file.class.as_str()]);
        }
        let Some((shape, bit_depth, _)) = first else {
            return Err(Error::data(source, "no PNG images found"));
        };
        Ok(ImageSet {
            source,
            shape,
            pixel_max: f64::from((1u32 << bit_depth) - 1),
            pixels,
            labels,
            classes,
            label_name: "class".to_owned(),
            header: None,
            fingerprint: hex::encode(hasher.finalize()),
        })
    }

    /// Parses a pixel CSV: the label column plus exactly `shape.n_values()` pixel columns in
    /// row-major (channel-major for RGB) order. `pixel_max` defaults to the largest value present.
    pub fn parse_pixel_csv(
        bytes: &[u8],
        source: impl Into<Source>,
        label: &str,
        shape: ImageShape,
        pixel_max: Option<f64>,
    ) -> Result<ImageSet> {
        let source = source.into();
        let raw = RawCsv::read(bytes, &source)?;
        let label_position = raw.header.iter().position(|name| name == label).ok_or_else(|| {
            Error::data(
                source.clone(),
                format!(
                    "has no label column `{label}`; the columns are: {}",
                    raw.header.join(", ")
                ),
            )
        })?;
        let n_pixels = raw.header.len() - 1;
        if n_pixels != shape.n_values() {
            return Err(Error::data(
                source,
                format!(
                    "has {n_pixels} pixel columns, expected {} for images of {shape}",
                    shape.n_values()
                ),
            ));
        }
        let mut pixels = Vec::with_capacity(raw.rows.len() * n_pixels);
        let mut label_cells = Vec::with_capacity(raw.rows.len());
        let mut largest = 0.0_f64;
        for (row_idx, row) in raw.rows.iter().enumerate() {
            for (col_idx, cell) in row.iter().enumerate() {
                if col_idx == label_position {
                    if is_missing(cell) {
                        return Err(Error::data(
                            source,
                            format!("line {}: the label `{label}` is missing", row_idx + 2),
                        ));
                    }
                    label_cells.push(cell.as_str());
                    continue;
                }
                let value = cell.parse::<f64>().ok().filter(|value| value.is_finite() && *value >= 0.0).ok_or_else(|| {
                    Error::data(
                        source.clone(),
                        format!(
                            "column `{}`, line {}: `{cell}` is not a pixel value; expected a finite number ≥ 0",
                            raw.header[col_idx],
                            row_idx + 2
                        ),
                    )
                })?;
                largest = largest.max(value);
                pixels.push(value as f32);
            }
        }
        let pixel_max = match pixel_max {
            Some(max) if max > 0.0 && max >= largest => max,
            Some(max) => {
                return Err(Error::data(
                    source,
                    format!("pixel_max {max} is below the largest pixel value {largest}"),
                ));
            }
            None if largest > 0.0 => largest,
            None => {
                return Err(Error::data(source, "every pixel is 0; expected some non-zero values"));
            }
        };
        let mut classes: Vec<String> = label_cells
            .iter()
            .map(|cell| (*cell).to_owned())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        sort_categories(&mut classes);
        let labels = label_cells
            .iter()
            .map(|cell| classes.iter().position(|name| name == cell).unwrap_or_default() as u32)
            .collect();
        Ok(ImageSet {
            fingerprint: raw.fingerprint(),
            source,
            shape,
            pixel_max,
            pixels,
            labels,
            classes,
            label_name: label.to_owned(),
            header: Some(raw.header),
        })
    }
}

/// Decodes one PNG into its shape, bit depth and channel-major values. Palette images are
/// expanded; an alpha channel is refused (it has no place in the model's input).
fn decode_png(bytes: &[u8], path: &str) -> Result<(ImageShape, u32, Vec<u16>)> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader =
        decoder.read_info().map_err(|err| Error::parse(path, "not a readable PNG", err))?;
    let buffer_size =
        reader.output_buffer_size().ok_or_else(|| Error::data(path, "PNG is too large"))?;
    let mut buffer = vec![0; buffer_size];
    let info = reader
        .next_frame(&mut buffer)
        .map_err(|err| Error::parse(path, "not a readable PNG", err))?;
    let channels = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::Rgb => 3,
        other => {
            return Err(Error::data(
                path,
                format!("has colour type {other:?}; expected grayscale or RGB without alpha"),
            ));
        }
    };
    let bit_depth = match info.bit_depth {
        png::BitDepth::Eight => 8,
        png::BitDepth::Sixteen => 16,
        other => {
            return Err(Error::data(
                path,
                format!("has bit depth {other:?}; expected 8 or 16 bits"),
            ));
        }
    };
    let (height, width) = (info.height as usize, info.width as usize);
    let bytes = &buffer[..info.buffer_size()];
    let interleaved: Vec<u16> = if bit_depth == 16 {
        bytes.chunks_exact(2).map(|pair| u16::from_be_bytes([pair[0], pair[1]])).collect()
    } else {
        bytes.iter().map(|&byte| u16::from(byte)).collect()
    };
    // Interleaved HWC → channel-major CHW.
    let mut values = vec![0; interleaved.len()];
    for pixel in 0..height * width {
        for channel in 0..channels {
            values[channel * height * width + pixel] = interleaved[pixel * channels + channel];
        }
    }
    Ok((ImageShape { channels, height, width }, bit_depth, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_shape_parses() {
        let parsed: Vec<Option<ImageShape>> =
            ["8x8", "32X32", "4x6x3", "0x8", "8", "8x8x2"].iter().map(|t| t.parse().ok()).collect();
        assert_eq!(
            parsed,
            vec![
                Some(ImageShape { channels: 1, height: 8, width: 8 }),
                Some(ImageShape { channels: 1, height: 32, width: 32 }),
                Some(ImageShape { channels: 3, height: 4, width: 6 }),
                None,
                None,
                None
            ]
        );
    }
}
