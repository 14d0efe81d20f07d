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
use crate::metrics::catalogue::{self, MetricId};
use crate::metrics::{Assessment, Axis};

/// The largest policy file read: a bound per gateable figure is a few dozen bytes.
const MAX_POLICY_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Max(f64),
    Min(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// By figure; only [gateable](crate::metrics::MetricSpec::gateable) figures.
    pub rules: BTreeMap<MetricId, Bound>,
}

impl Policy {
    pub fn parse(text: &str, source: &Path) -> Result<Policy> {
        let invalid = |message: String| Error::Invalid(format!("{}: {message}", source.display()));
        let table: toml::Table = toml::from_str(text)
            .map_err(|err| Error::PolicyUnreadable { path: source.to_owned(), source: err })?;
        if table.is_empty() {
            return Err(invalid(format!(
                "the policy has no rules; expected lines such as `max_{} = 0.6`",
                MetricId::MiaAuc
            )));
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
            let Some(id) =
                catalogue::gateable().find(|spec| spec.name == metric).map(|spec| spec.id)
            else {
                let mut known: Vec<&str> = catalogue::gateable().map(|spec| spec.name).collect();
                known.sort_unstable();
                return Err(invalid(format!(
                    "`{key}` bounds an unknown figure `{metric}`; known: {}",
                    known.join(", ")
                )));
            };
            rules.insert(id, bound);
        }
        Ok(Policy { rules })
    }

    pub fn read(path: &Path) -> Result<Policy> {
        let text = crate::data::read_bounded_text(path, MAX_POLICY_BYTES, "a release policy")?;
        Policy::parse(&text, path)
    }

    /// The axes the policy's figures live on.
    pub fn axes(&self) -> Vec<Axis> {
        let mut axes: Vec<Axis> = self.rules.keys().map(|id| id.axis()).collect();
        axes.sort();
        axes.dedup();
        axes
    }

    /// Checks every rule, in the order of the figures' names; a figure that could not be
    /// computed fails its rule.
    pub fn judge(&self, assessment: &Assessment) -> Verdict {
        let mut verdict = Verdict::default();
        let mut rules: Vec<(&MetricId, &Bound)> = self.rules.iter().collect();
        rules.sort_by_key(|(metric, _)| metric.name());
        for (metric, bound) in rules {
            let line = match (assessment.get(metric.name()), bound) {
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
        let (copies, mia, dcr) = (MetricId::ExactCopyRate, MetricId::MiaAuc, MetricId::DcrTrainP05);
        let text = format!("max_{copies} = 0\nmax_{mia} = 0.6\nmin_{dcr} = 0.1\n");
        let policy = Policy::parse(&text, Path::new("p.toml")).unwrap();
        assert_eq!(policy.axes(), vec![Axis::Privacy]);
        let assessment = Assessment {
            metrics: vec![
                Metric::new(copies, 0.0, 0.0, 0.1, 10),
                Metric::new(mia, 0.71, 0.6, 0.8, 10),
                Metric::new(dcr, 0.1, 0.05, 0.2, 10),
            ],
            skipped: vec![],
        };
        let verdict = policy.judge(&assessment);
        assert_eq!(verdict.failed, vec![format!("{mia} = 0.7100 (must be ≤ 0.6)")]);
        assert_eq!(verdict.passed.len(), 2);
    }

    #[test]
    fn every_gateable_figure_can_be_bounded_and_no_other() {
        for spec in catalogue::CATALOGUE {
            let parsed = Policy::parse(&format!("max_{} = 1", spec.name), Path::new("p.toml"));
            assert_eq!(parsed.is_ok(), spec.gateable, "{}", spec.name);
        }
    }

    #[test]
    fn bad_policies_are_refused() {
        for (text, expected) in [
            ("", "has no rules"),
            ("{mia} = 0.6", "must start with `max_` or `min_`"),
            ("max_mia = 0.6", "unknown figure `mia`"),
            ("max_{mia} = \"high\"", "must be a number"),
            ("max_{mia} = ", "not a valid policy"),
        ] {
            let text = text.replace("{mia}", MetricId::MiaAuc.name());
            let message = Policy::parse(&text, Path::new("policy.toml"))
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
