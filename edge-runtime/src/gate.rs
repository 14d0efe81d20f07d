//! The release gate: a site's policy, written as bounds on assessment figures, decides whether a
//! generated batch may leave `generate`.
//!
//! A policy is a TOML file of `max_<metric> = value` and `min_<metric> = value` lines, e.g.
//!
//! ```toml
//! max_exact_copy_rate = 0.0
//! max_mia_auc = 0.6
//! min_dcr_train_p05 = 0.05
//! max_closer_to_train_share = 0.6
//! ```
//!
//! Only the axes the policy names are computed. A bound compares the figure's value (not its
//! interval): `max_x = v` passes when `x ≤ v`, `min_x = v` when `x ≥ v`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::metrics::{Assessment, Axis};

/// Every figure a policy may bound, with its axis.
pub const GATEABLE: [(&str, Axis); 20] = [
    ("precision", Axis::Fidelity),
    ("density", Axis::Fidelity),
    ("frechet_distance", Axis::Fidelity),
    ("column_shape_similarity", Axis::Fidelity),
    ("correlation_difference", Axis::Fidelity),
    ("detection_auc", Axis::Fidelity),
    ("recall", Axis::Diversity),
    ("coverage", Axis::Diversity),
    ("class_balance_tv", Axis::Diversity),
    ("tstr_accuracy", Axis::Utility),
    ("tstr_trtr_ratio", Axis::Utility),
    ("tstr_macro_f1", Axis::Utility),
    ("dcr_train_median", Axis::Privacy),
    ("dcr_holdout_median", Axis::Privacy),
    ("dcr_train_p05", Axis::Privacy),
    ("closer_to_train_share", Axis::Privacy),
    ("nndr_mean", Axis::Privacy),
    ("exact_copy_rate", Axis::Privacy),
    ("mia_auc", Axis::Privacy),
    ("tstr_perturbed_accuracy_ratio", Axis::Robustness),
];

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Max(f64),
    Min(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub rules: BTreeMap<String, Bound>,
}

impl Policy {
    pub fn parse(text: &str, source: &Path) -> Result<Policy> {
        let invalid = |message: String| Error::Invalid(format!("{}: {message}", source.display()));
        let table: toml::Table =
            toml::from_str(text).map_err(|err| invalid(format!("not a valid policy: {err}")))?;
        if table.is_empty() {
            return Err(invalid(
                "the policy has no rules; expected lines such as `max_mia_auc = 0.6`".to_owned(),
            ));
        }
        let mut rules = BTreeMap::new();
        for (key, value) in table {
            let bound_value = value
                .as_float()
                .or_else(|| value.as_integer().map(|integer| integer as f64))
                .filter(|number| number.is_finite())
                .ok_or_else(|| invalid(format!("`{key}` must be a number, found {value}")))?;
            let (metric, bound) = if let Some(metric) = key.strip_prefix("max_") {
                (metric, Bound::Max(bound_value))
            } else if let Some(metric) = key.strip_prefix("min_") {
                (metric, Bound::Min(bound_value))
            } else {
                return Err(invalid(format!("`{key}` must start with `max_` or `min_`")));
            };
            if !GATEABLE.iter().any(|(name, _)| *name == metric) {
                let known: Vec<&str> = GATEABLE.iter().map(|(name, _)| *name).collect();
                return Err(invalid(format!(
                    "`{key}` bounds an unknown figure `{metric}`; known: {}",
                    known.join(", ")
                )));
            }
            rules.insert(metric.to_owned(), bound);
        }
        Ok(Policy { rules })
    }

    pub fn read(path: &Path) -> Result<Policy> {
        let text = std::fs::read_to_string(path).map_err(|err| Error::io(path, err))?;
        Policy::parse(&text, path)
    }

    /// The axes the policy's figures live on.
    pub fn axes(&self) -> Vec<Axis> {
        let mut axes: Vec<Axis> = self
            .rules
            .keys()
            .filter_map(|metric| {
                GATEABLE.iter().find(|(name, _)| name == metric).map(|(_, axis)| *axis)
            })
            .collect();
        axes.sort();
        axes.dedup();
        axes
    }

    /// Checks every rule; a figure that could not be computed fails its rule.
    pub fn judge(&self, assessment: &Assessment) -> Verdict {
        let mut verdict = Verdict::default();
        for (metric, bound) in &self.rules {
            let line = match (assessment.get(metric), bound) {
                (Some(figure), Bound::Max(limit)) => (
                    figure.value <= *limit,
                    format!("{metric} = {:.4} (must be ≤ {limit})", figure.value),
                ),
                (Some(figure), Bound::Min(limit)) => (
                    figure.value >= *limit,
                    format!("{metric} = {:.4} (must be ≥ {limit})", figure.value),
                ),
                (None, _) => (false, format!("{metric} could not be computed")),
            };
            if line.0 { verdict.passed.push(line.1) } else { verdict.failed.push(line.1) }
        }
        verdict
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    pub passed: Vec<String>,
    pub failed: Vec<String>,
}

impl Verdict {
    pub fn allows_release(&self) -> bool {
        self.failed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metric;

    #[test]
    fn policy_rules_and_verdicts() {
        let policy = Policy::parse(
            "max_exact_copy_rate = 0\nmax_mia_auc = 0.6\nmin_dcr_train_p05 = 0.1\n",
            Path::new("p.toml"),
        )
        .unwrap();
        assert_eq!(policy.axes(), vec![Axis::Privacy]);
        let assessment = Assessment {
            metrics: vec![
                Metric::new(Axis::Privacy, "exact_copy_rate", 0.0, 0.0, 0.1, 10),
                Metric::new(Axis::Privacy, "mia_auc", 0.71, 0.6, 0.8, 10),
                Metric::new(Axis::Privacy, "dcr_train_p05", 0.1, 0.05, 0.2, 10),
            ],
            skipped: vec![],
        };
        let verdict = policy.judge(&assessment);
        assert_eq!(verdict.failed, vec!["mia_auc = 0.7100 (must be ≤ 0.6)".to_owned()]);
        assert_eq!(verdict.passed.len(), 2);
    }

    #[test]
    fn bad_policies_are_refused() {
        for (text, expected) in [
            ("", "has no rules"),
            ("mia_auc = 0.6", "must start with `max_` or `min_`"),
            ("max_mia = 0.6", "unknown figure `mia`"),
            ("max_mia_auc = \"high\"", "must be a number"),
            ("max_mia_auc = ", "not a valid policy"),
        ] {
            let message = Policy::parse(text, Path::new("policy.toml"))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                message.starts_with("policy.toml: ") && message.contains(expected),
                "{text}: {message}"
            );
        }
    }
}
