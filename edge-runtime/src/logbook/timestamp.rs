//! Timestamps as RFC 3339 UTC text with milliseconds (`2025-03-07T14:05:09.123Z`): fixed width,
//! so text order is time order and SQLite can sort and compare them as strings.
//!
//! Written here from the civil-from-days algorithm (Howard Hinnant's `chrono`-compatible
//! formulation) rather than with a date crate: formatting is all the logbook needs.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time as RFC 3339 UTC text.
pub fn now() -> String {
    rfc3339_utc(SystemTime::now())
}

/// `time` as RFC 3339 UTC with milliseconds; times before 1970 are clamped to the epoch.
pub fn rfc3339_utc(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let days = (seconds / 86_400) as i64;
    let second_of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
        since_epoch.subsec_millis()
    )
}

/// Year, month (1-12) and day (1-31) of the proleptic Gregorian calendar, `days` after
/// 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn check(seconds_since_epoch: u64, millis: u64, expected: &str) {
        let time =
            UNIX_EPOCH + Duration::from_secs(seconds_since_epoch) + Duration::from_millis(millis);
        assert_eq!(rfc3339_utc(time), expected, "{seconds_since_epoch} s");
    }

    /// Reference values from `date -u -d @SECONDS +%Y-%m-%dT%H:%M:%S`.
    #[test]
    fn formats_known_instants() {
        check(0, 0, "1970-01-01T00:00:00.000Z");
        check(951_782_400, 5, "2000-02-29T00:00:00.005Z");
        check(951_868_799, 999, "2000-02-29T23:59:59.999Z");
        check(1_709_164_800, 0, "2024-02-29T00:00:00.000Z");
        check(1_735_689_599, 250, "2024-12-31T23:59:59.250Z");
        check(4_107_542_400, 0, "2100-03-01T00:00:00.000Z");
    }
}
