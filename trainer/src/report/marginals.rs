//! Real-against-synthetic marginals for a few columns of a table: the share of rows in each bin
//! (numeric columns, equal-width bins over the range of all values shown) or each category.
//! Pure: tables (or a samples file's bytes, see [`synthetic_table`]) in, shares out; the files
//! are read beforehand by `assets`.

use models::manifest::Family;
use models::{ColumnData, Table, TableOptions};

/// Columns shown per dataset: numeric ones first, in file order, then categorical ones.
pub const MAX_COLUMNS: usize = 4;
const BINS: usize = 12;
/// Categorical columns with more categories than this are not drawn (the bars get unreadable).
const MAX_CATEGORIES: usize = 12;

/// One column's distribution in the real data and in each family's samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Marginal {
    pub column: String,
    /// Bin centres or category names, in order.
    pub labels: Vec<String>,
    /// Shares of rows (each sums to 1 over the labels, missing values left out).
    pub real: Vec<f64>,
    pub synthetic: Vec<(Family, Vec<f64>)>,
}

/// The marginals of the first [`MAX_COLUMNS`] suitable columns; `synthetic` is (family, table
/// read like the real one).
pub fn marginals(
    real: &Table,
    synthetic: &[(Family, Table)],
    label_of: impl Fn(f64) -> String,
) -> Vec<Marginal> {
    let numeric =
        real.features.iter().filter(|column| matches!(column.data, ColumnData::Numeric { .. }));
    let categorical = real
        .features
        .iter()
        .filter(|column| matches!(&column.data, ColumnData::Categorical { categories, .. } if categories.len() <= MAX_CATEGORIES));
    let mut shown = Vec::new();
    for column in numeric.chain(categorical).take(MAX_COLUMNS) {
        let columns_of = |table: &Table| {
            table
                .features
                .iter()
                .find(|other| other.name == column.name)
                .map(|other| other.data.clone())
        };
        let others: Vec<(Family, Option<ColumnData>)> =
            synthetic.iter().map(|(family, table)| (*family, columns_of(table))).collect();
        let marginal = match &column.data {
            ColumnData::Numeric { values, .. } => {
                let numbers = |data: &Option<ColumnData>| match data {
                    Some(ColumnData::Numeric { values, .. }) => {
                        values.iter().flatten().copied().filter(|value| value.is_finite()).collect()
                    }
                    _ => Vec::new(),
                };
                let real_values: Vec<f64> =
                    values.iter().flatten().copied().filter(|value| value.is_finite()).collect();
                let synthetic_values: Vec<(Family, Vec<f64>)> =
                    others.iter().map(|(family, data)| (*family, numbers(data))).collect();
                let all = real_values
                    .iter()
                    .chain(synthetic_values.iter().flat_map(|(_, values)| values.iter()));
                let (low, high) = all
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), value| {
                        (low.min(*value), high.max(*value))
                    });
                if !low.is_finite() {
                    continue;
                }
                let width = if high > low { (high - low) / BINS as f64 } else { 1.0 };
                let edges_low = if high > low { low } else { low - 0.5 * width * BINS as f64 };
                Marginal {
                    column: column.name.clone(),
                    labels: (0..BINS)
                        .map(|bin| label_of(edges_low + (bin as f64 + 0.5) * width))
                        .collect(),
                    real: histogram(&real_values, edges_low, width),
                    synthetic: synthetic_values
                        .iter()
                        .map(|(family, values)| (*family, histogram(values, edges_low, width)))
                        .collect(),
                }
            }
            ColumnData::Categorical { categories, codes } => {
                let shares = |data: &Option<ColumnData>| match data {
                    Some(ColumnData::Categorical { categories: theirs, codes }) => {
                        let names: Vec<&str> = codes
                            .iter()
                            .flatten()
                            .filter_map(|code| theirs.get(*code as usize))
                            .map(String::as_str)
                            .collect();
                        category_shares(categories, &names)
                    }
                    _ => vec![0.0; categories.len()],
                };
                let real_names: Vec<&str> = codes
                    .iter()
                    .flatten()
                    .filter_map(|code| categories.get(*code as usize))
                    .map(String::as_str)
                    .collect();
                Marginal {
                    column: column.name.clone(),
                    labels: categories.clone(),
                    real: category_shares(categories, &real_names),
                    synthetic: others
                        .iter()
                        .map(|(family, data)| (*family, shares(data)))
                        .collect(),
                }
            }
        };
        shown.push(marginal);
    }
    shown
}

/// Shares of `values` in `BINS` bins of `width` from `low` (the last bin includes its right edge).
fn histogram(values: &[f64], low: f64, width: f64) -> Vec<f64> {
    let mut counts = vec![0usize; BINS];
    for value in values {
        let bin = ((value - low) / width).floor();
        let bin = if bin < 0.0 { 0 } else { (bin as usize).min(BINS - 1) };
        counts[bin] += 1;
    }
    let total = values.len().max(1) as f64;
    counts.into_iter().map(|count| count as f64 / total).collect()
}

/// Shares of each of `categories` among `names` (names outside the list are not counted).
fn category_shares(categories: &[String], names: &[&str]) -> Vec<f64> {
    let total = names.len().max(1) as f64;
    categories
        .iter()
        .map(|category| names.iter().filter(|name| **name == category).count() as f64 / total)
        .collect()
}

/// Parses a family's synthetic rows exactly like the real table: the same header, label, column
/// kinds and missing-value policy. `source` names the file in errors.
pub fn synthetic_table(real: &Table, bytes: &[u8], source: &str) -> models::Result<Table> {
    let options = TableOptions {
        label: real.label_name().to_owned(),
        missing: real.missing,
        kinds: real.features.iter().map(|column| (column.name.clone(), column.kind())).collect(),
        expect_header: Some(real.header.clone()),
    };
    Table::parse_csv(bytes, source, &options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(csv: &str) -> Table {
        Table::parse_csv(csv.as_bytes(), "test.csv", &models::TableOptions::new("y")).unwrap()
    }

    #[test]
    fn shares_are_counted_per_bin_and_per_category() {
        // x spans 0..12 over all tables: 12 bins of width 1. Real: 0, 0, 11, 12 → bins 0, 0, 11,
        // 11 (the top edge belongs to the last bin). c has categories a, b.
        let real = table("x,c,y\n0,a,p\n0,a,q\n11,b,p\n12,a,q\n");
        let synthetic = table("x,c,y\n6,b,p\n6.5,b,q\n");
        let shown = marginals(&real, &[(Family::Gan, synthetic)], |value| format!("{value}"));
        assert_eq!(
            shown.iter().map(|marginal| marginal.column.as_str()).collect::<Vec<_>>(),
            ["x", "c"]
        );
        let x = &shown[0];
        assert_eq!(x.labels.first().map(String::as_str), Some("0.5"));
        assert_eq!(x.real[0], 0.5);
        assert_eq!(x.real[11], 0.5);
        assert_eq!(x.synthetic[0].1[6], 1.0);
        let c = &shown[1];
        assert_eq!(c.labels, ["a", "b"]);
        assert_eq!(c.real, [0.75, 0.25]);
        assert_eq!(c.synthetic, [(Family::Gan, vec![0.0, 1.0])]);
    }

    #[test]
    fn synthetic_rows_are_read_like_the_real_table() {
        let real = table("x,c,y\n0,a,p\n1,b,q\n");
        // On its own `c` would read as numbers; like the real table it is a category.
        let synthetic = synthetic_table(&real, b"x,c,y\n2,1,p\n3,2,q\n", "gan.csv").unwrap();
        let kinds: Vec<_> = synthetic.features.iter().map(|column| column.kind()).collect();
        assert_eq!(kinds, [models::ColumnKind::Numeric, models::ColumnKind::Categorical]);
        let err = synthetic_table(&real, b"c,x,y\na,2,p\n", "gan.csv").unwrap_err().to_string();
        assert!(err.contains("gan.csv") && err.contains("header"), "{err}");
    }
}
