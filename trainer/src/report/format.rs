//! How the report writes numbers and words: figures with their intervals at about three
//! significant digits, the margin between two families in words, lists as prose, an error with
//! its causes. Pure.

use crate::report::study::Figure;
use edge_runtime::metrics::MetricId;
use edge_runtime::metrics::catalogue::Direction;

/// `0.93 [0.90, 0.95]`.
pub fn with_interval(figure: &Figure) -> String {
    format!("{} {}", number(figure.value), interval(figure))
}

/// `[0.90, 0.95]`.
pub fn interval(figure: &Figure) -> String {
    format!("[{}, {}]", number(figure.low), number(figure.high))
}

/// A number with about three significant digits: `166k`, `68.6k`, `1,234`, `521.1`, `32.11`,
/// `0.957`, `1.2e-4`.
pub fn number(value: f64) -> String {
    let magnitude = value.abs();
    if !value.is_finite() {
        return value.to_string();
    }
    if magnitude == 0.0 {
        return "0".to_owned();
    }
    if magnitude >= 1e8 {
        return format!("{:.0}M", value / 1e6);
    }
    if magnitude >= 1e7 {
        return format!("{:.1}M", value / 1e6);
    }
    if magnitude >= 1e6 {
        return format!("{:.2}M", value / 1e6);
    }
    if magnitude >= 1e5 {
        return format!("{:.0}k", value / 1e3);
    }
    if magnitude >= 1e4 {
        return format!("{:.1}k", value / 1e3);
    }
    if magnitude >= 1000.0 {
        return grouped(value);
    }
    if magnitude >= 100.0 {
        return format!("{value:.1}");
    }
    if magnitude >= 1.0 {
        return format!("{value:.2}");
    }
    if magnitude >= 0.001 {
        return format!("{value:.3}");
    }
    format!("{value:.1e}")
}

/// An integer with thousands separated by commas.
fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (idx, digit) in digits.chars().enumerate() {
        if idx > 0 && (digits.len() - idx) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if value < 0.0 { format!("-{out}") } else { out }
}

/// How much better `best` is than `other`, in words.
pub fn margin(metric: MetricId, best: f64, other: f64) -> String {
    match metric.direction() {
        Direction::Higher if metric == MetricId::SamplesPerSecond && other > 0.0 => {
            format!("{:.1}× as fast", best / other)
        }
        Direction::Higher => format!("{} higher", number(best - other)),
        Direction::Lower => format!("{} lower", number(other - best)),
        Direction::Target(ideal) => {
            format!("{} closer to {ideal}", number((other - ideal).abs() - (best - ideal).abs()))
        }
        Direction::Unranked => format!("{} against {}", number(best), number(other)),
    }
}

/// `0, 1, 2`.
pub fn seeds_text(seeds: &[u64]) -> String {
    seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}

/// `a`, `a and b`, `a, b and c`.
pub fn list<T: AsRef<str>>(items: &[T]) -> String {
    match items {
        [] => String::new(),
        [only] => only.as_ref().to_owned(),
        [init @ .., last] => format!(
            "{} and {}",
            init.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(", "),
            last.as_ref()
        ),
    }
}

/// `Privacy` from `privacy`.
pub fn capitalise_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_rounded_to_their_size() {
        let check = |value: f64, expected: &str| assert_eq!(number(value), expected, "{value}");
        check(0.0, "0");
        check(165_815.48, "166k");
        check(68_620.686, "68.6k");
        check(-1_234_567.0, "-1.23M");
        check(1_234.6, "1,235");
        check(-9_999.0, "-9,999");
        check(521.081, "521.1");
        check(32.114, "32.11");
        check(0.95703125, "0.957");
        check(0.000_12, "1.2e-4");
    }

    #[test]
    fn margins_say_which_way_and_how_much() {
        assert_eq!(margin(MetricId::TstrAccuracy, 0.9, 0.75), "0.150 higher");
        assert_eq!(margin(MetricId::FrechetDistance, 2.0, 5.5), "3.50 lower");
        assert_eq!(margin(MetricId::MiaAuc, 0.52, 0.40), "0.080 closer to 0.5");
        assert_eq!(margin(MetricId::SamplesPerSecond, 70_000.0, 500.0), "140.0× as fast");
    }

    #[test]
    fn lists_read_as_prose() {
        assert_eq!(list::<&str>(&[]), "");
        assert_eq!(list(&["a"]), "a");
        assert_eq!(list(&["a", "b", "c"]), "a, b and c");
    }
}
