//! Fitted, invertible transforms between parsed rows and the model's feature space.
//!
//! - numeric column → `(x − mean) / std` with the train part's mean and population standard
//!   deviation (ddof = 0); a constant column maps to 0. Decoding inverts that, clamps to the
//!   range observed in the train part and rounds to the column's decimal places, so generated values look like
//!   real ones (integers stay integers).
//! - categorical column → one-hot over the schema's categories; decoding takes the argmax.
//! - pixels → `2 · v / pixel_max − 1`, in [-1, 1]; decoding clamps and rounds to integers.
//!
//! Missing values. Under the `model` policy a column with empty cells in the train part carries a
//! missingness indicator, learnt with the rest of the row: a numeric column gains a two-way
//! one-hot block `[present, missing]` after its value (which encodes as the mean, 0, when the cell
//! is empty), a categorical column one more one-hot slot after its categories. Decoding writes an
//! empty cell where the indicator wins. Without an indicator (the `impute` policy, or a column
//! complete in the train part) a missing cell encodes as the train part's mean (numeric, 0) or
//! most frequent category. The encoded matrix is `n_rows × width`, row-major `f32`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{Error, Result, Source};
use crate::image::{ImageSet, ImageShape};
use crate::manifest::{field_error, validate_names};
use crate::table::{ColumnData, MissingPolicy, Table};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "modality", rename_all = "lowercase")]
pub enum Encoder {
    Tabular(TabularEncoder),
    Image(PixelEncoder),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TabularEncoder {
    pub columns: Vec<ColumnEncoder>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ColumnEncoder {
    Numeric {
        name: String,
        mean: f64,
        /// Population standard deviation of the train part; 0 for a constant column.
        std: f64,
        min: f64,
        max: f64,
        decimals: u32,
        /// A `[present, missing]` one-hot block follows the value (see the module text).
        #[serde(default, skip_serializing_if = "is_false")]
        missing: bool,
    },
    Categorical {
        name: String,
        categories: Vec<String>,
        /// Index of the train part's most frequent category: the value a missing cell takes
        /// when the column has no missingness slot.
        mode: u32,
        /// One more one-hot slot after the categories stands for an empty cell.
        #[serde(default, skip_serializing_if = "is_false")]
        missing: bool,
    },
}

fn is_false(flag: &bool) -> bool {
    !flag
}

/// The name of a missingness slot among encoded feature names: `column=(missing)`.
pub const MISSING_SLOT: &str = "(missing)";
/// The name of the other slot of a numeric column's indicator: `column=(present)`.
pub const PRESENT_SLOT: &str = "(present)";

impl ColumnEncoder {
    pub fn name(&self) -> &str {
        match self {
            ColumnEncoder::Numeric { name, .. } | ColumnEncoder::Categorical { name, .. } => name,
        }
    }

    pub fn width(&self) -> usize {
        match self {
            ColumnEncoder::Numeric { missing, .. } => 1 + 2 * usize::from(*missing),
            ColumnEncoder::Categorical { categories, missing, .. } => {
                categories.len() + usize::from(*missing)
            }
        }
    }

    /// Whether the column carries a missingness indicator.
    pub fn models_missing(&self) -> bool {
        match self {
            ColumnEncoder::Numeric { missing, .. } | ColumnEncoder::Categorical { missing, .. } => {
                *missing
            }
        }
    }

    fn set_models_missing(&mut self, value: bool) {
        match self {
            ColumnEncoder::Numeric { missing, .. } | ColumnEncoder::Categorical { missing, .. } => {
                *missing = value;
            }
        }
    }
}

/// One decoded table cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Number(f64),
    /// Index into the column's categories.
    Category(u32),
    /// An empty cell (a column whose missingness is modelled).
    Missing,
}

/// A contiguous block of encoded features belonging to one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub start: usize,
    pub width: usize,
    pub categorical: bool,
}

/// The most decimal places a numeric column may keep: an `f64` holds 17 significant digits.
pub const MAX_DECIMALS: u32 = 17;
/// The widest encoded row a transform may produce: three 4096 × 4096 channels.
pub const MAX_ENCODED_WIDTH: usize = 3 * 4096 * 4096;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PixelEncoder {
    pub shape: ImageShape,
    pub pixel_max: f64,
}

impl Encoder {
    /// Fits on the rows `rows` of `dataset` (the train part).
    pub fn fit(dataset: &Dataset, rows: &[usize]) -> Result<Encoder> {
        match dataset {
            Dataset::Table(table) => TabularEncoder::fit(table, rows).map(Encoder::Tabular),
            Dataset::Images(images) => Ok(Encoder::Image(PixelEncoder {
                shape: images.shape,
                pixel_max: images.pixel_max,
            })),
        }
    }

    /// Checks a transform read from the manifest `source` (at `field`): see
    /// [`TabularEncoder::validate`] and [`PixelEncoder::validate`].
    pub fn validate(&self, source: &Source, field: &str) -> Result<()> {
        match self {
            Encoder::Tabular(encoder) => encoder.validate(source, field),
            Encoder::Image(encoder) => encoder.validate(source, field),
        }
    }

    pub fn width(&self) -> usize {
        match self {
            Encoder::Tabular(encoder) => encoder.width(),
            Encoder::Image(encoder) => encoder.shape.n_values(),
        }
    }

    /// Encodes every row of `dataset` into an `n_rows × width` matrix.
    pub fn encode(&self, dataset: &Dataset) -> Result<Vec<f32>> {
        match (self, dataset) {
            (Encoder::Tabular(encoder), Dataset::Table(table)) => encoder.encode(table),
            (Encoder::Image(encoder), Dataset::Images(images)) => encoder.encode(images),
            (Encoder::Tabular(_), Dataset::Images(_)) => Err(Error::data(
                dataset.source().clone(),
                "is an image set, but the transform expects a table",
            )),
            (Encoder::Image(_), Dataset::Table(_)) => Err(Error::data(
                dataset.source().clone(),
                "is a table, but the transform expects images",
            )),
        }
    }

    /// Per encoded feature, the range the train part spans: standardised `[min, max]` for a
    /// numeric column (0 for a constant one), `[0, 1]` for one-hot entries, `[-1, 1]` for pixels.
    /// Diffusion sampling clips its predicted clean sample to these bounds.
    pub fn bounds(&self) -> Vec<(f32, f32)> {
        match self {
            Encoder::Tabular(encoder) => encoder
                .columns
                .iter()
                .flat_map(|column| match column {
                    ColumnEncoder::Numeric { mean, std, min, max, .. } => {
                        let scale = |value: f64| {
                            if *std > 0.0 { ((value - mean) / std) as f32 } else { 0.0 }
                        };
                        let mut bounds = vec![(0.0, 1.0); column.width()];
                        bounds[0] = (scale(*min), scale(*max));
                        bounds
                    }
                    ColumnEncoder::Categorical { .. } => vec![(0.0, 1.0); column.width()],
                })
                .collect(),
            Encoder::Image(encoder) => vec![(-1.0, 1.0); encoder.shape.n_values()],
        }
    }

    /// The feature blocks of the encoded space (one per column; one numeric block for pixels).
    pub fn blocks(&self) -> Vec<Block> {
        match self {
            Encoder::Tabular(encoder) => encoder.blocks(),
            Encoder::Image(encoder) => {
                vec![Block { start: 0, width: encoder.shape.n_values(), categorical: false }]
            }
        }
    }
}

impl TabularEncoder {
    /// Checks a tabular transform read from the manifest `source`: at least one column; names
    /// unique; numeric statistics finite with `std ≥ 0` (0 for a constant column), `min ≤ max`,
    /// at most [`MAX_DECIMALS`] decimals and a standardised range that fits an `f32`;
    /// categories present and unique with `mode` among them; total width at most
    /// [`MAX_ENCODED_WIDTH`].
    pub fn validate(&self, source: &Source, field: &str) -> Result<()> {
        let columns_field = format!("{field}.columns");
        if self.columns.is_empty() {
            return Err(field_error(
                source,
                &columns_field,
                "is empty; expected at least one column",
            ));
        }
        validate_names(
            source,
            &columns_field,
            self.columns.iter().map(|column| match column {
                ColumnEncoder::Numeric { name, .. } | ColumnEncoder::Categorical { name, .. } => {
                    name
                }
            }),
            MAX_ENCODED_WIDTH,
        )?;
        let mut width = 0_usize;
        for (idx, column) in self.columns.iter().enumerate() {
            let at = |name: &str| format!("{columns_field}[{idx}].{name}");
            match column {
                ColumnEncoder::Numeric { mean, std, min, max, decimals, .. } => {
                    for (name, value) in [("mean", mean), ("std", std), ("min", min), ("max", max)]
                    {
                        if !value.is_finite() {
                            return Err(field_error(
                                source,
                                &at(name),
                                format!("is {value}; expected a finite number"),
                            ));
                        }
                    }
                    if *std < 0.0 {
                        return Err(field_error(
                            source,
                            &at("std"),
                            format!("is {std}; expected ≥ 0 (0 for a constant column)"),
                        ));
                    }
                    if min > max {
                        return Err(field_error(
                            source,
                            &at("min"),
                            format!("is {min}, above max {max}; expected min ≤ max"),
                        ));
                    }
                    if *decimals > MAX_DECIMALS {
                        return Err(field_error(
                            source,
                            &at("decimals"),
                            format!("is {decimals}; expected at most {MAX_DECIMALS}"),
                        ));
                    }
                    if *std > 0.0 {
                        let span = ((min - mean) / std).abs().max(((max - mean) / std).abs());
                        if span > f64::from(f32::MAX) {
                            return Err(field_error(
                                source,
                                &at("std"),
                                format!(
                                    "is {std:e}: min and max lie {span:e} standard deviations from the mean, beyond what a 32-bit float holds"
                                ),
                            ));
                        }
                    }
                }
                ColumnEncoder::Categorical { categories, mode, .. } => {
                    if categories.is_empty() {
                        return Err(field_error(
                            source,
                            &at("categories"),
                            "is empty; expected at least one category",
                        ));
                    }
                    validate_names(
                        source,
                        &at("categories"),
                        categories.iter(),
                        MAX_ENCODED_WIDTH,
                    )?;
                    if *mode as usize >= categories.len() {
                        return Err(field_error(
                            source,
                            &at("mode"),
                            format!(
                                "is {mode}; expected the index of one of the {} categories",
                                categories.len()
                            ),
                        ));
                    }
                }
            }
            width = width.saturating_add(column.width());
        }
        if width > MAX_ENCODED_WIDTH {
            return Err(field_error(
                source,
                &columns_field,
                format!("encode {width} features; expected at most {MAX_ENCODED_WIDTH}"),
            ));
        }
        Ok(())
    }

    /// Fits on the rows `rows` of `table`; under the `model` policy a column with an empty cell
    /// among them gets a missingness indicator.
    pub fn fit(table: &Table, rows: &[usize]) -> Result<TabularEncoder> {
        let model_missing = table.missing == MissingPolicy::Model;
        let mut columns = Vec::with_capacity(table.features.len());
        for column in &table.features {
            let encoder = match &column.data {
                ColumnData::Numeric { values, decimals } => {
                    let present: Vec<f64> = rows.iter().filter_map(|&row| values[row]).collect();
                    if present.is_empty() {
                        return Err(Error::data(
                            table.source.clone(),
                            format!(
                                "column `{}` has no value in the train part; cannot fit its mean",
                                column.name
                            ),
                        ));
                    }
                    let n = present.len() as f64;
                    let mean = present.iter().sum::<f64>() / n;
                    let var = present.iter().map(|value| (value - mean).powi(2)).sum::<f64>() / n;
                    let min = present.iter().copied().fold(f64::INFINITY, f64::min);
                    let max = present.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    if !mean.is_finite() || !var.is_finite() {
                        return Err(Error::data(
                            table.source.clone(),
                            format!(
                                "column `{}`: its mean or variance overflows a 64-bit float (values span {min:e} to {max:e}); \
                                 rescale the column (e.g. to other units) so that its squared values stay below 1e308",
                                column.name
                            ),
                        ));
                    }
                    // Below this the column is constant up to rounding noise.
                    let std =
                        if var.sqrt() <= 1e-12 * mean.abs().max(1.0) { 0.0 } else { var.sqrt() };
                    ColumnEncoder::Numeric {
                        name: column.name.clone(),
                        mean,
                        std,
                        min,
                        max,
                        decimals: *decimals,
                        missing: model_missing && present.len() < rows.len(),
                    }
                }
                ColumnData::Categorical { categories, codes } => {
                    let mut counts = vec![0_usize; categories.len()];
                    for code in rows.iter().filter_map(|&row| codes[row]) {
                        counts[code as usize] += 1;
                    }
                    // Most frequent; ties go to the first category in order.
                    let mode = counts
                        .iter()
                        .enumerate()
                        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
                        .map_or(0, |(idx, _)| idx);
                    ColumnEncoder::Categorical {
                        name: column.name.clone(),
                        categories: categories.clone(),
                        mode: mode as u32,
                        missing: model_missing && counts.iter().sum::<usize>() < rows.len(),
                    }
                }
            };
            columns.push(encoder);
        }
        Ok(TabularEncoder { columns })
    }

    pub fn width(&self) -> usize {
        self.columns.iter().map(ColumnEncoder::width).sum()
    }

    /// One block per column, and a second (categorical, two wide) for a numeric column's
    /// missingness indicator.
    pub fn blocks(&self) -> Vec<Block> {
        let mut start = 0;
        let mut blocks = Vec::with_capacity(self.columns.len());
        for column in &self.columns {
            match column {
                ColumnEncoder::Numeric { missing, .. } => {
                    blocks.push(Block { start, width: 1, categorical: false });
                    if *missing {
                        blocks.push(Block { start: start + 1, width: 2, categorical: true });
                    }
                }
                ColumnEncoder::Categorical { .. } => {
                    blocks.push(Block { start, width: column.width(), categorical: true });
                }
            }
            start += column.width();
        }
        blocks
    }

    /// Gives every column in which one of `tables` has an empty cell a missingness indicator,
    /// so that evaluation encodes empty cells the same way on every side.
    pub fn with_missing_indicators(mut self, tables: &[&Table]) -> TabularEncoder {
        for (idx, column) in self.columns.iter_mut().enumerate() {
            let any_missing = tables.iter().any(|table| {
                table.features.get(idx).is_some_and(|feature| feature.missing_count() > 0)
            });
            if any_missing {
                column.set_models_missing(true);
            }
        }
        self
    }

    /// Names of the encoded features: `column` for numeric, `column=category` for one-hot.
    pub fn feature_names(&self) -> Vec<String> {
        self.columns
            .iter()
            .flat_map(|column| {
                let mut names = match column {
                    ColumnEncoder::Numeric { name, missing, .. } => {
                        let mut names = vec![name.clone()];
                        if *missing {
                            names.push(format!("{name}={PRESENT_SLOT}"));
                        }
                        names
                    }
                    ColumnEncoder::Categorical { name, categories, .. } => {
                        categories.iter().map(|category| format!("{name}={category}")).collect()
                    }
                };
                if column.models_missing() {
                    names.push(format!("{}={MISSING_SLOT}", column.name()));
                }
                names
            })
            .collect()
    }

    /// Encodes a table whose feature columns have the names of this encoder, in order.
    /// Categories are matched by name, so a table parsed from another file encodes consistently.
    pub fn encode(&self, table: &Table) -> Result<Vec<f32>> {
        let names: Vec<&str> = table.features.iter().map(|column| column.name.as_str()).collect();
        let expected: Vec<&str> = self.columns.iter().map(ColumnEncoder::name).collect();
        if names != expected {
            return Err(Error::data(
                table.source.clone(),
                format!(
                    "feature columns are [{}], expected [{}]",
                    names.join(", "),
                    expected.join(", ")
                ),
            ));
        }
        let width = self.width();
        let n_rows = table.n_rows();
        let mut out = vec![0.0_f32; n_rows * width];
        let mut offset = 0;
        for (encoder, column) in self.columns.iter().zip(&table.features) {
            match (encoder, &column.data) {
                (
                    ColumnEncoder::Numeric { mean, std, missing, .. },
                    ColumnData::Numeric { values, .. },
                ) => {
                    for (row, value) in values.iter().enumerate() {
                        let scaled = match value {
                            Some(value) if *std > 0.0 => (value - mean) / std,
                            _ => 0.0,
                        };
                        out[row * width + offset] = scaled as f32;
                        if *missing {
                            out[row * width + offset + 1 + usize::from(value.is_none())] = 1.0;
                        }
                    }
                }
                (
                    ColumnEncoder::Categorical { categories, mode, missing, .. },
                    ColumnData::Categorical { categories: table_categories, codes },
                ) => {
                    let empty = if *missing { categories.len() } else { *mode as usize };
                    let index: HashMap<&str, usize> = categories
                        .iter()
                        .enumerate()
                        .map(|(idx, name)| (name.as_str(), idx))
                        .collect();
                    let mut remap = Vec::with_capacity(table_categories.len());
                    for name in table_categories {
                        remap.push(*index.get(name.as_str()).ok_or_else(|| {
                            Error::data(
                                table.source.clone(),
                                format!(
                                    "column `{}` has category `{name}`, which the fitted schema does not know (known: {})",
                                    column.name,
                                    categories.join(", ")
                                ),
                            )
                        })?);
                    }
                    for (row, code) in codes.iter().enumerate() {
                        let category = code.map_or(empty, |code| remap[code as usize]);
                        out[row * width + offset + category] = 1.0;
                    }
                }
                (ColumnEncoder::Numeric { .. }, ColumnData::Categorical { .. }) => {
                    return Err(Error::data(
                        table.source.clone(),
                        format!("column `{}` holds categories, expected numbers", column.name),
                    ));
                }
                (ColumnEncoder::Categorical { .. }, ColumnData::Numeric { .. }) => {
                    return Err(Error::data(
                        table.source.clone(),
                        format!(
                            "column `{}` was read as numbers, expected categories",
                            column.name
                        ),
                    ));
                }
            }
            offset += encoder.width();
        }
        Ok(out)
    }

    /// Decodes an `n_rows × width` matrix: numerics un-standardised, clamped to the observed
    /// range and rounded to the column's decimals; each one-hot block by its argmax; a cell is
    /// empty where its missingness slot wins.
    pub fn decode(&self, encoded: &[f32]) -> Vec<Vec<Value>> {
        let width = self.width();
        encoded
            .chunks_exact(width)
            .map(|row| {
                let mut offset = 0;
                self.columns
                    .iter()
                    .map(|column| {
                        let cells = &row[offset..offset + column.width()];
                        let value = match column {
                            ColumnEncoder::Numeric { missing: true, .. } if cells[2] > cells[1] => {
                                Value::Missing
                            }
                            ColumnEncoder::Numeric { mean, std, min, max, decimals, .. } => {
                                let raw = f64::from(cells[0]) * std + mean;
                                Value::Number(round_to(raw.clamp(*min, *max), *decimals))
                            }
                            ColumnEncoder::Categorical { categories, .. } => match argmax(cells) {
                                code if code < categories.len() => Value::Category(code as u32),
                                _ => Value::Missing,
                            },
                        };
                        offset += column.width();
                        value
                    })
                    .collect()
            })
            .collect()
    }

    /// The text a decoded cell is written as: numbers with the column's decimals, categories by name.
    pub fn format_value(&self, column_idx: usize, value: Value) -> String {
        match (&self.columns[column_idx], value) {
            (ColumnEncoder::Numeric { decimals, .. }, Value::Number(number)) => {
                format!("{number:.prec$}", prec = (*decimals).min(MAX_DECIMALS) as usize)
            }
            (ColumnEncoder::Categorical { categories, .. }, Value::Category(code)) => {
                categories[code as usize].clone()
            }
            (_, Value::Missing) => String::new(),
            (_, Value::Number(number)) => number.to_string(),
            (_, Value::Category(code)) => code.to_string(),
        }
    }
}

impl PixelEncoder {
    /// Checks a pixel transform read from the manifest `source`: a valid [`ImageShape`] and a
    /// finite `pixel_max` in `(0, 65535]` (16-bit PNGs at most).
    pub fn validate(&self, source: &Source, field: &str) -> Result<()> {
        self.shape.validate(source, &format!("{field}.shape"))?;
        if !(self.pixel_max > 0.0 && self.pixel_max <= 65_535.0) {
            return Err(field_error(
                source,
                &format!("{field}.pixel_max"),
                format!("is {}; expected a number in (0, 65535]", self.pixel_max),
            ));
        }
        Ok(())
    }

    pub fn encode(&self, images: &ImageSet) -> Result<Vec<f32>> {
        if images.shape != self.shape {
            return Err(Error::data(
                images.source.clone(),
                format!("images are {}, expected {}", images.shape, self.shape),
            ));
        }
        let scale = (2.0 / self.pixel_max) as f32;
        Ok(images.pixels.iter().map(|&value| value * scale - 1.0).collect())
    }

    /// Raw pixel values (integers in `[0, pixel_max]`) from encoded values.
    pub fn decode(&self, encoded: &[f32]) -> Vec<f32> {
        let half = self.pixel_max / 2.0;
        encoded
            .iter()
            .map(|&x| ((f64::from(x).clamp(-1.0, 1.0) + 1.0) * half).round() as f32)
            .collect()
    }

    /// 8-bit values for a PNG from encoded values.
    pub fn decode_to_u8(&self, encoded: &[f32]) -> Vec<u8> {
        encoded
            .iter()
            .map(|&x| ((f64::from(x).clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8)
            .collect()
    }
}

/// Rounds to `decimals` places (half away from zero). A value too large to scale is returned
/// as it is: at that magnitude an `f64` has no digits after the point to round.
pub fn round_to(value: f64, decimals: u32) -> f64 {
    let scale = 10_f64.powi(decimals.min(MAX_DECIMALS) as i32);
    let scaled = value * scale;
    if scaled.is_finite() { scaled.round() / scale } else { value }
}

/// Index of the largest value; the first on ties.
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (idx, value) in values.iter().enumerate() {
        if *value > values[best] {
            best = idx;
        }
    }
    best
}

/// One-hot rows (`n × n_classes`) for class indices.
pub fn one_hot(labels: &[u32], n_classes: usize) -> Vec<f32> {
    let mut out = vec![0.0; labels.len() * n_classes];
    for (row, &label) in labels.iter().enumerate() {
        out[row * n_classes + label as usize] = 1.0;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{MissingPolicy, TableOptions};

    fn table(text: &str, missing: MissingPolicy) -> Table {
        Table::parse_csv(
            text.as_bytes(),
            "mem.csv",
            &TableOptions { missing, ..TableOptions::new("y") },
        )
        .unwrap()
    }

    #[test]
    fn worked_example() {
        // a: 1, 2, 3 → mean 2, population std sqrt(2/3); c is constant → 0.
        let table = table("a,b,c,y\n1,u,5.0,p\n2,v,5.0,q\n3,u,5.0,p\n", MissingPolicy::Refuse);
        let encoder = TabularEncoder::fit(&table, &[0, 1, 2]).unwrap();
        let encoded = encoder.encode(&table).unwrap();
        let s = (1.0_f64 / (2.0_f64 / 3.0).sqrt()) as f32;
        let expected = [-s, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, s, 1.0, 0.0, 0.0];
        assert_eq!(encoder.width(), 4);
        for (got, want) in encoded.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{encoded:?}");
        }
        assert_eq!(encoder.feature_names(), ["a", "b=u", "b=v", "c"]);
    }

    #[test]
    fn imputation_uses_train_statistics() {
        let table = table("a,b,y\n1,u,p\nNA,NA,q\n4,v,p\n6,v,q\n", MissingPolicy::Impute);
        // Fitted on rows 0 and 2 only: mean 2.5; b's mode among {u, v} ties → first (u).
        let encoder = TabularEncoder::fit(&table, &[0, 2]).unwrap();
        let decoded = encoder.decode(&encoder.encode(&table).unwrap());
        assert_eq!(decoded[1], vec![Value::Number(3.0), Value::Category(0)]); // 2.5 rounded to 0 decimals → 3
    }

    #[test]
    fn modelled_missingness_round_trips_with_its_rates_per_class() {
        // a: empty in rows 1 and 3 (both class q); b: empty in row 0 (class p).
        let text = "a,b,y\n1,,p\nNA,v,q\n4,u,p\n,v,q\n6,u,p\n";
        let modelled = table(text, MissingPolicy::Model);
        let all = [0, 1, 2, 3, 4];
        let encoder = TabularEncoder::fit(&modelled, &all).unwrap();
        assert_eq!(encoder.width(), 3 + 3);
        assert_eq!(
            encoder.feature_names(),
            ["a", "a=(present)", "a=(missing)", "b=u", "b=v", "b=(missing)"]
        );
        let blocks: Vec<(usize, usize, bool)> =
            encoder.blocks().iter().map(|b| (b.start, b.width, b.categorical)).collect();
        assert_eq!(blocks, [(0, 1, false), (1, 2, true), (3, 3, true)]);
        let encoded = encoder.encode(&modelled).unwrap();
        // Row 1: a empty → value 0 (the mean), indicator [0, 1]; b = v.
        assert_eq!(&encoded[6..12], &[0.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
        // Row 0: b empty → its missing slot.
        assert_eq!(&encoded[3..6], &[0.0, 0.0, 1.0]);
        let decoded = encoder.decode(&encoded);
        let empty: Vec<(usize, usize)> = (0..5)
            .flat_map(|row| (0..2).map(move |col| (row, col)))
            .filter(|&(row, col)| decoded[row][col] == Value::Missing)
            .collect();
        assert_eq!(empty, [(0, 1), (1, 0), (3, 0)]);
        // Rates per class survive: a is empty in 2 of 2 q rows and 0 of 3 p rows.
        let rate = |class: u32| {
            let rows: Vec<usize> = (0..5).filter(|&row| modelled.labels[row] == class).collect();
            rows.iter().filter(|&&row| decoded[row][0] == Value::Missing).count() as f64
                / rows.len() as f64
        };
        assert_eq!((rate(0), rate(1)), (0.0, 1.0));
        assert_eq!(decoded[0][0], Value::Number(1.0));
        assert_eq!(encoder.format_value(1, Value::Missing), "");
        let bounds = Encoder::Tabular(encoder.clone()).bounds();
        assert_eq!(bounds.len(), 6);
        assert_eq!(&bounds[1..], &[(0.0, 1.0); 5]);

        // `impute` keeps no indicator; a column complete in the train part gets none either.
        let imputed = TabularEncoder::fit(&table(text, MissingPolicy::Impute), &all).unwrap();
        assert_eq!(imputed.width(), 3);
        let complete = TabularEncoder::fit(&modelled, &[2, 4]).unwrap();
        assert_eq!(complete.width(), 3);
        // Evaluation widens it when another side has empty cells.
        assert_eq!(complete.with_missing_indicators(&[&modelled]).width(), 6);
    }

    #[test]
    fn decoding_clamps_rounds_and_takes_argmax() {
        let table = table("a,b,y\n1.25,u,p\n2.50,v,q\n", MissingPolicy::Refuse);
        let encoder = TabularEncoder::fit(&table, &[0, 1]).unwrap();
        // mean 1.875, std 0.625. 10 → far above max → 2.5; 0.1 → 1.9375 → 1.94.
        let decoded = encoder.decode(&[10.0, 0.2, 0.7, 0.1, 0.9, -0.3]);
        assert_eq!(
            decoded,
            vec![
                vec![Value::Number(2.5), Value::Category(1)],
                vec![Value::Number(1.94), Value::Category(0)]
            ]
        );
        assert_eq!(encoder.format_value(0, Value::Number(2.5)), "2.50");
    }

    #[test]
    fn unknown_category_is_an_error() {
        let real = table("a,b,y\n1,u,p\n2,v,q\n", MissingPolicy::Refuse);
        let synthetic = table("a,b,y\n1,w,p\n", MissingPolicy::Refuse);
        let encoder = TabularEncoder::fit(&real, &[0, 1]).unwrap();
        let err = encoder.encode(&synthetic).err().map(|err| err.to_string()).unwrap_or_default();
        assert_eq!(
            err,
            "mem.csv: column `b` has category `w`, which the fitted schema does not know (known: u, v)"
        );
    }

    #[test]
    fn statistics_that_overflow_are_refused_naming_the_column() {
        let table = table("a,big,y\n1,1e308,p\n2,1.5e308,q\n3,1e308,p\n", MissingPolicy::Refuse);
        let err = TabularEncoder::fit(&table, &[0, 1, 2]).err().map(|err| err.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "mem.csv: column `big`: its mean or variance overflows a 64-bit float (values span 1e308 to 1.5e308); \
                 rescale the column (e.g. to other units) so that its squared values stay below 1e308"
            )
        );
    }

    #[test]
    fn rounding_keeps_values_too_large_to_scale() {
        assert_eq!(round_to(1e300, 17), 1e300);
        assert_eq!(round_to(2.345, 2), 2.35);
    }
}
