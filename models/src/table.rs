//! Tabular data: a CSV with a header, one named label column, numeric and categorical features.
//!
//! Column kinds are inferred (a column whose every value parses as a finite number is numeric,
//! unless it holds only a few distinct integer codes, which usually name categories) or given by a
//! small TOML schema beside the file. Missing values (empty, `NA`, `NaN`, `?`, `N/A`) are kept as
//! missing under [`MissingPolicy::Model`] (the default: the generator learns where cells are
//! empty) and [`MissingPolicy::Impute`] (filled later with the train part's statistics), or
//! refused with the column and line under [`MissingPolicy::Refuse`]. Nothing is dropped.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, Source};
use crate::manifest::MAX_NAME_BYTES;

/// Cell texts read as a missing value (compared after trimming, case-insensitively).
pub const MISSING_TOKENS: [&str; 5] = ["", "na", "nan", "?", "n/a"];

/// An integer-valued column with at most this many distinct values is inferred categorical.
pub const MAX_INFERRED_CODES: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    Numeric,
    Categorical,
}

/// What to do with a missing value in a feature column. Labels are never imputed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingPolicy {
    /// Keep the value as missing and model it: each column with empty cells in the train part
    /// gets a missingness indicator, learnt with the rest of the row, and generated cells are
    /// empty at the learnt rate (see `transform`).
    #[default]
    Model,
    /// Stop with an error naming the column and line of the first missing value.
    Refuse,
    /// Keep the value as missing; the fitted transform fills it with the train part's mean
    /// (numeric) or most frequent category (categorical).
    Impute,
}

impl MissingPolicy {
    /// The name in flags and schema files.
    pub fn as_str(self) -> &'static str {
        match self {
            MissingPolicy::Model => "model",
            MissingPolicy::Refuse => "refuse",
            MissingPolicy::Impute => "impute",
        }
    }
}

impl std::str::FromStr for MissingPolicy {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "model" => Ok(MissingPolicy::Model),
            "refuse" => Ok(MissingPolicy::Refuse),
            "impute" => Ok(MissingPolicy::Impute),
            other => Err(Error::parameter(
                "missing-value policy",
                other,
                "`model`, `impute` or `refuse`",
            )),
        }
    }
}

/// The optional schema file beside a CSV (`<stem>.schema.toml`):
///
/// ```toml
/// label = "gen"
/// missing = "impute"
/// # image_shape = "8x8"   (a pixel CSV)
/// [columns]
/// trt = "categorical"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaFile {
    pub label: Option<String>,
    pub missing: Option<MissingPolicy>,
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnKind>,
    /// For pixel CSVs: the value that maps to full brightness (otherwise the largest value seen).
    pub pixel_max: Option<f64>,
    /// Read the CSV as flattened images of this shape (`HxW` or `HxWxC`), like `--image-shape`.
    pub image_shape: Option<String>,
}

impl SchemaFile {
    pub fn parse(text: &str, source: impl Into<Source>) -> Result<Self> {
        let source = source.into();
        let schema: SchemaFile = toml::from_str(text)
            .map_err(|err| Error::parse(source.clone(), "not a valid schema file", err))?;
        if let Some(shape) = &schema.image_shape {
            shape
                .parse::<crate::image::ImageShape>()
                .map_err(|err| Error::parse(source, "image_shape", err))?;
        }
        Ok(schema)
    }

    /// The image shape, when the schema declares one (validated by [`SchemaFile::parse`]).
    pub fn image_shape(&self) -> Option<crate::image::ImageShape> {
        self.image_shape.as_ref().and_then(|shape| shape.parse().ok())
    }
}

/// How to read a CSV: which column is the label, what to do with missing values, and any column
/// kinds fixed in advance (from a schema file, or from the real data when reading synthetic rows).
#[derive(Debug, Clone, Default)]
pub struct TableOptions {
    pub label: String,
    pub missing: MissingPolicy,
    pub kinds: BTreeMap<String, ColumnKind>,
    /// When set, the header must be exactly these names in this order.
    pub expect_header: Option<Vec<String>>,
}

impl TableOptions {
    pub fn new(label: impl Into<String>) -> Self {
        TableOptions { label: label.into(), ..TableOptions::default() }
    }

    /// Applies a schema file: its kinds and policy; its label unless one was given already.
    pub fn with_schema(mut self, schema: &SchemaFile) -> Self {
        if self.label.is_empty()
            && let Some(label) = &schema.label
        {
            self.label = label.clone();
        }
        if let Some(missing) = schema.missing {
            self.missing = missing;
        }
        self.kinds.extend(schema.columns.iter().map(|(name, kind)| (name.clone(), *kind)));
        self
    }
}

/// One feature column as parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub data: ColumnData,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    /// Values with `None` for missing; `decimals` is the precision of the values: the fewest
    /// decimal places (at most as many as the file writes) that hold every value exactly, so a
    /// column of whole numbers written `6.0` has 0 and is generated whole.
    Numeric { values: Vec<Option<f64>>, decimals: u32 },
    /// Codes into `categories` (sorted), `None` for missing.
    Categorical { categories: Vec<String>, codes: Vec<Option<u32>> },
}

impl Column {
    pub fn kind(&self) -> ColumnKind {
        match self.data {
            ColumnData::Numeric { .. } => ColumnKind::Numeric,
            ColumnData::Categorical { .. } => ColumnKind::Categorical,
        }
    }

    /// Per row, whether the cell is empty.
    pub fn missing_mask(&self) -> Vec<bool> {
        match &self.data {
            ColumnData::Numeric { values, .. } => values.iter().map(Option::is_none).collect(),
            ColumnData::Categorical { codes, .. } => codes.iter().map(Option::is_none).collect(),
        }
    }

    /// How many cells are empty.
    pub fn missing_count(&self) -> usize {
        self.missing_mask().iter().filter(|&&empty| empty).count()
    }

    fn select(&self, rows: &[usize]) -> Column {
        let data = match &self.data {
            ColumnData::Numeric { values, decimals } => ColumnData::Numeric {
                values: rows.iter().map(|&row| values[row]).collect(),
                decimals: *decimals,
            },
            ColumnData::Categorical { categories, codes } => ColumnData::Categorical {
                categories: categories.clone(),
                codes: rows.iter().map(|&row| codes[row]).collect(),
            },
        };
        Column { name: self.name.clone(), data }
    }
}

/// A parsed table: features in header order (label excluded), labels as class indices.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub source: Source,
    /// The original header, label included, in file order.
    pub header: Vec<String>,
    /// Position of the label column in `header`.
    pub label_position: usize,
    pub features: Vec<Column>,
    pub labels: Vec<u32>,
    pub classes: Vec<String>,
    pub missing: MissingPolicy,
    /// SHA-256 of the parsed content (header and trimmed cells), hex.
    pub fingerprint: String,
}

impl Table {
    pub fn label_name(&self) -> &str {
        &self.header[self.label_position]
    }

    pub fn n_rows(&self) -> usize {
        self.labels.len()
    }

    /// The rows at `rows`, in that order, with the same schema.
    pub fn select(&self, rows: &[usize]) -> Table {
        Table {
            source: self.source.clone(),
            header: self.header.clone(),
            label_position: self.label_position,
            features: self.features.iter().map(|column| column.select(rows)).collect(),
            labels: rows.iter().map(|&row| self.labels[row]).collect(),
            classes: self.classes.clone(),
            missing: self.missing,
            fingerprint: self.fingerprint.clone(),
        }
    }

    /// Parses CSV bytes. `source` names the file in every error message.
    pub fn parse_csv(
        bytes: &[u8],
        source: impl Into<Source>,
        options: &TableOptions,
    ) -> Result<Table> {
        let source = source.into();
        let raw = RawCsv::read(bytes, &source)?;
        if let Some(expected) = &options.expect_header
            && &raw.header != expected
        {
            return Err(Error::data(
                source,
                format!(
                    "header is [{}], expected the columns [{}]",
                    raw.header.join(", "),
                    expected.join(", ")
                ),
            ));
        }
        let label_position =
            raw.header.iter().position(|name| *name == options.label).ok_or_else(|| {
                Error::data(
                    source.clone(),
                    format!(
                        "has no label column `{}`; the columns are: {}",
                        options.label,
                        raw.header.join(", ")
                    ),
                )
            })?;
        for name in options.kinds.keys() {
            if !raw.header.contains(name) {
                return Err(Error::data(
                    source.clone(),
                    format!("the schema names a column `{name}` that the header does not have"),
                ));
            }
        }

        let label_cells: Vec<&str> =
            raw.rows.iter().map(|row| row[label_position].as_str()).collect();
        for (row_idx, cell) in label_cells.iter().enumerate() {
            if is_missing(cell) {
                return Err(Error::data(
                    source.clone(),
                    format!(
                        "line {}: the label column `{}` is missing a value; labels cannot be imputed",
                        row_idx + 2,
                        options.label
                    ),
                ));
            }
        }
        let (classes, labels) = categorical_codes(&label_cells);
        let labels = labels.into_iter().map(|code| code.unwrap_or_default()).collect();

        let mut features = Vec::with_capacity(raw.header.len() - 1);
        for (col_idx, name) in raw.header.iter().enumerate() {
            if col_idx == label_position {
                continue;
            }
            let cells: Vec<&str> = raw.rows.iter().map(|row| row[col_idx].as_str()).collect();
            features.push(parse_column(
                name,
                &cells,
                options.kinds.get(name).copied(),
                options.missing,
                &source,
            )?);
        }

        Ok(Table {
            source,
            fingerprint: raw.fingerprint(),
            header: raw.header,
            label_position,
            features,
            labels,
            classes,
            missing: options.missing,
        })
    }
}

/// The header and trimmed cells of a CSV, checked for shape.
pub(crate) struct RawCsv {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl RawCsv {
    pub(crate) fn read(bytes: &[u8], source: &Source) -> Result<RawCsv> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::data(
                source.clone(),
                "the file is empty; expected a header line and at least one data row",
            ));
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(bytes);
        let header: Vec<String> = reader
            .headers()
            .map_err(|err| Error::parse(source.clone(), "cannot read the header", err))?
            .iter()
            .map(str::to_owned)
            .collect();
        let mut seen = HashSet::new();
        for (idx, name) in header.iter().enumerate() {
            if name.is_empty() {
                return Err(Error::data(
                    source.clone(),
                    format!("header field {} is empty; every column needs a name", idx + 1),
                ));
            }
            if !seen.insert(name) {
                return Err(Error::data(
                    source.clone(),
                    format!("the header names column `{name}` twice"),
                ));
            }
            if name.len() > MAX_NAME_BYTES {
                return Err(Error::data(
                    source.clone(),
                    format!(
                        "header field {} is {} bytes long; a column name may have at most {MAX_NAME_BYTES}",
                        idx + 1,
                        name.len()
                    ),
                ));
            }
        }
        let mut rows = Vec::new();
        for record in reader.records() {
            let record =
                record.map_err(|err| Error::parse(source.clone(), "cannot read CSV", err))?;
            let line = record.position().map_or(rows.len() + 2, |pos| pos.line() as usize);
            if record.len() == 1 && record.get(0) == Some("") {
                continue; // a blank line
            }
            if record.len() != header.len() {
                return Err(Error::data(
                    source.clone(),
                    format!(
                        "line {line} has {} fields, expected {} as in the header",
                        record.len(),
                        header.len()
                    ),
                ));
            }
            if let Some((idx, cell)) =
                record.iter().enumerate().find(|(_, cell)| cell.len() > MAX_NAME_BYTES)
            {
                return Err(Error::data(
                    source.clone(),
                    format!(
                        "column `{}`, line {line}: the value is {} bytes long; a value (a category or label) may have at most {MAX_NAME_BYTES}",
                        header.get(idx).map_or("?", String::as_str),
                        cell.len()
                    ),
                ));
            }
            rows.push(record.iter().map(str::to_owned).collect());
        }
        if rows.is_empty() {
            return Err(Error::data(
                source.clone(),
                "the file has a header but no data rows; expected at least one",
            ));
        }
        Ok(RawCsv { header, rows })
    }

    /// SHA-256 over the header and every trimmed cell, each length-prefixed, row by row.
    pub(crate) fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        let mut feed = |text: &str| {
            hasher.update((text.len() as u64).to_le_bytes());
            hasher.update(text.as_bytes());
        };
        feed("fieldsynth-csv-v1");
        for name in &self.header {
            feed(name);
        }
        for row in &self.rows {
            for cell in row {
                feed(cell);
            }
        }
        hex::encode(hasher.finalize())
    }
}

pub fn is_missing(cell: &str) -> bool {
    MISSING_TOKENS.iter().any(|token| cell.eq_ignore_ascii_case(token))
}

/// Parses a finite number; `None` for anything else (including `inf`).
fn parse_number(cell: &str) -> Option<f64> {
    cell.parse::<f64>().ok().filter(|value| value.is_finite())
}

/// Decimal places written in a numeric cell: `0.07871` has 5, `1001.0` has 1, `1e-05` has 5.
fn decimals_of(cell: &str) -> u32 {
    let (mantissa, exponent) = match cell.find(['e', 'E']) {
        Some(pos) => (&cell[..pos], cell[pos + 1..].parse::<i64>().unwrap_or(0)),
        None => (cell, 0),
    };
    let fraction_digits = mantissa.find('.').map_or(0, |pos| mantissa.len() - pos - 1) as i64;
    (fraction_digits - exponent).clamp(0, 12) as u32
}

/// The fewest decimal places, at most `written`, at which every value is exactly what it was
/// written as: 0 for whole numbers however they are written (`6.0`, `1e3`), 2 for `1.50, 2.25`.
fn precision_of(values: impl Iterator<Item = f64> + Clone, written: u32) -> u32 {
    (0..written)
        .find(|&decimals| {
            values.clone().all(|value| {
                let rounded = crate::transform::round_to(value, decimals);
                (value - rounded).abs() <= 1e-12 * value.abs().max(1.0)
            })
        })
        .unwrap_or(written)
}

/// Sorts category names naturally: numerically when all parse as numbers, else as text.
pub fn sort_categories(categories: &mut [String]) {
    if categories.iter().all(|name| parse_number(name).is_some()) {
        categories.sort_by(|a, b| {
            let (x, y) = (parse_number(a).unwrap_or_default(), parse_number(b).unwrap_or_default());
            x.total_cmp(&y).then_with(|| a.cmp(b))
        });
    } else {
        categories.sort();
    }
}

/// Distinct non-missing values (naturally sorted) and each cell's code.
fn categorical_codes(cells: &[&str]) -> (Vec<String>, Vec<Option<u32>>) {
    let mut categories: Vec<String> = cells
        .iter()
        .filter(|cell| !is_missing(cell))
        .map(|cell| (*cell).to_owned())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    sort_categories(&mut categories);
    let index: HashMap<&str, u32> =
        categories.iter().enumerate().map(|(idx, name)| (name.as_str(), idx as u32)).collect();
    let codes = cells.iter().map(|cell| index.get(cell).copied()).collect();
    (categories, codes)
}

/// Infers a column's kind from its non-missing cells.
pub fn infer_kind(cells: &[&str]) -> ColumnKind {
    let present: Vec<&str> = cells.iter().copied().filter(|cell| !is_missing(cell)).collect();
    let numbers: Option<Vec<f64>> = present.iter().map(|cell| cell.parse::<f64>().ok()).collect();
    let Some(numbers) = numbers else {
        return ColumnKind::Categorical;
    };
    let all_integer_codes = present.iter().all(|cell| !cell.contains(['.', 'e', 'E']));
    let distinct: HashSet<u64> = numbers.iter().map(|value| value.to_bits()).collect();
    if all_integer_codes
        && distinct.len() <= MAX_INFERRED_CODES
        && distinct.len() * 2 <= present.len()
    {
        ColumnKind::Categorical
    } else {
        ColumnKind::Numeric
    }
}

fn parse_column(
    name: &str,
    cells: &[&str],
    kind: Option<ColumnKind>,
    missing: MissingPolicy,
    source: &Source,
) -> Result<Column> {
    if missing == MissingPolicy::Refuse
        && let Some(row_idx) = cells.iter().position(|cell| is_missing(cell))
    {
        let shown = if cells[row_idx].is_empty() {
            "an empty cell".to_owned()
        } else {
            format!("`{}`", cells[row_idx])
        };
        return Err(Error::data(
            source.clone(),
            format!(
                "column `{name}`, line {}: missing value ({shown}) and the missing-value policy is `refuse`; \
                 fix the data, or choose the `model` policy (generate empty cells at the learnt rate) or `impute` (train-part mean or most frequent category)",
                row_idx + 2
            ),
        ));
    }
    if cells.iter().all(|cell| is_missing(cell)) {
        return Err(Error::data(
            source.clone(),
            format!("column `{name}` has no values at all; expected at least one"),
        ));
    }
    let kind = kind.unwrap_or_else(|| infer_kind(cells));
    let data = match kind {
        ColumnKind::Categorical => {
            let (categories, codes) = categorical_codes(cells);
            ColumnData::Categorical { categories, codes }
        }
        ColumnKind::Numeric => {
            let mut values = Vec::with_capacity(cells.len());
            let mut decimals = 0;
            for (row_idx, cell) in cells.iter().enumerate() {
                if is_missing(cell) {
                    values.push(None);
                    continue;
                }
                let value = parse_number(cell).ok_or_else(|| {
                    Error::data(
                        source.clone(),
                        format!("column `{name}`, line {}: `{cell}` is not a finite number; the column is numeric", row_idx + 2),
                    )
                })?;
                decimals = decimals.max(decimals_of(cell));
                values.push(Some(value));
            }
            let decimals = precision_of(values.iter().flatten().copied(), decimals);
            ColumnData::Numeric { values, decimals }
        }
    };
    Ok(Column { name: name.to_owned(), data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, label: &str) -> Result<Table> {
        Table::parse_csv(text.as_bytes(), "mem.csv", &TableOptions::new(label))
    }

    #[test]
    fn names_and_values_longer_than_a_manifest_allows_are_refused() {
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        let err = |text: String| parse(&text, "y").err().map(|err| err.to_string());
        assert_eq!(
            err(format!("a,{long},y\n1,2,p\n")),
            Some(
                "mem.csv: header field 2 is 1025 bytes long; a column name may have at most 1024"
                    .to_owned()
            )
        );
        assert_eq!(
            err(format!("a,y\n1,p\n2,{long}\n")),
            Some("mem.csv: column `y`, line 3: the value is 1025 bytes long; a value (a category or label) may have at most 1024".to_owned())
        );
        assert!(parse(&format!("a,y\n1,p\n2,{}\n", &long[1..]), "y").is_ok());
    }

    #[test]
    fn precision_comes_from_the_values() {
        let precision = |cells: &[&str]| {
            let values: Vec<f64> = cells.iter().filter_map(|cell| parse_number(cell)).collect();
            let written = cells.iter().map(|cell| decimals_of(cell)).max().unwrap_or(0);
            precision_of(values.into_iter(), written)
        };
        assert_eq!(precision(&["6.0", "127.0", "1065.00"]), 0, "whole numbers written N.0");
        assert_eq!(precision(&["1e3", "2.0E2", "-4.000"]), 0);
        assert_eq!(precision(&["1.50", "2.25", "3.0"]), 2);
        assert_eq!(precision(&["0.10", "0.20"]), 1);
        assert_eq!(precision(&["0.07871", "1.0"]), 5);
        assert_eq!(precision(&["1e-05", "3"]), 5);
        assert_eq!(precision(&["12", "7"]), 0);
        assert_eq!(precision(&["0.1234567890123"]), 12, "the written cap holds");
    }

    #[test]
    fn decimals_follow_the_written_form() {
        for (cell, expected) in
            [("0.07871", 5), ("1001.0", 1), ("64", 0), ("1e-05", 5), ("2.5E2", 0), ("-3.25", 2)]
        {
            assert_eq!(decimals_of(cell), expected, "{cell}");
        }
    }

    #[test]
    fn few_integer_codes_are_categorical() {
        let codes: Vec<&str> = ["1", "2", "3", "1", "2", "3", "1", "2"].to_vec();
        assert_eq!(infer_kind(&codes), ColumnKind::Categorical);
        let measured: Vec<&str> = ["1.5", "2", "3", "1", "2", "3", "1", "2"].to_vec();
        assert_eq!(infer_kind(&measured), ColumnKind::Numeric);
        let spread: Vec<String> = (0..40).map(|value| value.to_string()).collect();
        let spread: Vec<&str> = spread.iter().map(String::as_str).collect();
        assert_eq!(infer_kind(&spread), ColumnKind::Numeric);
    }

    #[test]
    fn natural_category_order() {
        let mut names: Vec<String> = ["10", "9", "1"].iter().map(|s| (*s).to_owned()).collect();
        sort_categories(&mut names);
        assert_eq!(names, ["1", "9", "10"]);
    }

    #[test]
    fn impute_keeps_missing_cells() {
        let table = Table::parse_csv(
            b"a,b,y\n1.5,x,p\nNA,?,q\n2.5,y,p\n",
            "mem.csv",
            &TableOptions { missing: MissingPolicy::Impute, ..TableOptions::new("y") },
        )
        .unwrap();
        assert_eq!(
            table.features[0].data,
            ColumnData::Numeric { values: vec![Some(1.5), None, Some(2.5)], decimals: 1 }
        );
        assert_eq!(
            table.features[1].data,
            ColumnData::Categorical {
                categories: vec!["x".into(), "y".into()],
                codes: vec![Some(0), None, Some(1)]
            }
        );
    }

    #[test]
    fn blank_label_is_refused_even_when_imputing() {
        let err = Table::parse_csv(
            b"a,y\n1,p\n2,\n",
            "mem.csv",
            &TableOptions { missing: MissingPolicy::Impute, ..TableOptions::new("y") },
        )
        .err()
        .map(|err| err.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "mem.csv: line 3: the label column `y` is missing a value; labels cannot be imputed"
            )
        );
    }

    #[test]
    fn fingerprint_ignores_whitespace_and_line_endings_but_not_values() {
        let a = parse("a,y\n1,p\n2,q\n", "y").map(|t| t.fingerprint).ok();
        let b = parse("a , y\r\n1, p\r\n2 ,q\r\n", "y").map(|t| t.fingerprint).ok();
        let c = parse("a,y\n1,p\n3,q\n", "y").map(|t| t.fingerprint).ok();
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
