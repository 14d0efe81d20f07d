//! Memory: the resident set of this process, from `/proc/self/status` (Linux; `None`
//! elsewhere), and the budget that tensor sizes are checked against before anything allocates
//! them, so a large request is an error that says what to lower rather than an abort.

use crate::error::{Error, Result};

/// The budget when the available memory cannot be read (not Linux): 2 GiB.
const FALLBACK_BUDGET_BYTES: u64 = 2 << 30;

/// The most bytes of tensors one generation may hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    pub bytes: u64,
}

impl MemoryBudget {
    /// Half the memory the system reports available (`MemAvailable` in `/proc/meminfo`), or
    /// 2 GiB where that cannot be read.
    pub fn from_system() -> MemoryBudget {
        let available = meminfo_kib("MemAvailable:").map(|kib| kib.saturating_mul(1024));
        MemoryBudget { bytes: available.map_or(FALLBACK_BUDGET_BYTES, |bytes| bytes / 2) }
    }

    /// Refuses `bytes` (in `u128`, so that the product of sizes cannot overflow) above the
    /// budget: `what` says what needs them and `lower` what to reduce.
    pub fn check(&self, what: &str, bytes: u128, lower: &str) -> Result<()> {
        if bytes <= u128::from(self.bytes) {
            return Ok(());
        }
        let mib = |bytes: u128| bytes.div_ceil(1 << 20);
        Err(Error::Invalid(format!(
            "{what} needs {} MiB, more than the memory budget of {} MiB (half the memory available); lower {lower}",
            mib(bytes),
            mib(u128::from(self.bytes))
        )))
    }
}

/// Peak resident set size (`VmHWM`) in MiB.
pub fn peak_rss_mb() -> Option<f64> {
    status_kib("VmHWM:").map(|kib| kib as f64 / 1024.0)
}

/// Current resident set size (`VmRSS`) in MiB.
pub fn rss_mb() -> Option<f64> {
    status_kib("VmRSS:").map(|kib| kib as f64 / 1024.0)
}

fn status_kib(field: &str) -> Option<u64> {
    kib_field("/proc/self/status", field)
}

fn meminfo_kib(field: &str) -> Option<u64> {
    kib_field("/proc/meminfo", field)
}

fn kib_field(path: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_refuses_only_what_exceeds_it() {
        let budget = MemoryBudget { bytes: 10 << 20 };
        assert!(budget.check("x", 10 << 20, "y").is_ok());
        let err = budget.check("the samples", (10 << 20) + 1, "the number of samples");
        assert_eq!(
            err.err().map(|err| err.to_string()).as_deref(),
            Some(
                "the samples needs 11 MiB, more than the memory budget of 10 MiB (half the memory available); lower the number of samples"
            )
        );
        assert!(MemoryBudget::from_system().bytes > 0);
    }
}
