//! Calendar dates in UTC without a time-zone database: days since the epoch to and from a
//! proleptic Gregorian date, strict `YYYY-MM-DD` parsing and RFC 3339 text of unix seconds.
//!
//! This module owns the arithmetic the command line (`voxguard records --from/--to`, its
//! tables) and the security console (date fields, times on pages) share, so both read and show
//! a date the same way. It must not read a clock or know any local time zone: every instant is
//! UTC.

/// Seconds in a day.
pub const DAY_SECS: u64 = 24 * 60 * 60;

/// Days since 1970-01-01 of the proleptic Gregorian date `year-month-day` (Howard Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = i64::from((month + 9) % 12); // March = 0
    let day_of_year = (153 * month_index + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date (year, month, day) of `days` since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = u32::try_from(day_of_year - (153 * month_index + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    })
    .unwrap_or(1);
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The number of days in `month` (1–12) of `year`.
pub fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// `secs` (unix seconds) as RFC 3339 UTC: `2024-03-12T09:30:00Z`.
///
/// ```
/// assert_eq!(voxguard_guard::utc::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
/// ```
pub fn rfc3339(secs: u64) -> String {
    let days = i64::try_from(secs / DAY_SECS).unwrap_or(i64::MAX / 2);
    let rest = secs % DAY_SECS;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The unix seconds of 00:00:00 UTC on the date `text`, which must be exactly `YYYY-MM-DD`
/// (what an HTML `<input type="date">` sends) from 1970 on; `None` for anything else.
///
/// ```
/// use voxguard_guard::utc::date_start;
/// assert_eq!(date_start("2023-11-14"), Some(1_699_920_000));
/// assert_eq!(date_start("2023-02-29"), None);
/// assert_eq!(date_start("14/11/2023"), None);
/// ```
pub fn date_start(text: &str) -> Option<u64> {
    let number = |part: &str, len: usize| -> Option<u32> {
        (part.len() == len && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<u32>().ok())
            .flatten()
    };
    let mut parts = text.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let (year, month, day) = (number(y, 4)?, number(m, 2)?, number(d, 2)?);
    if year < 1970 || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = u64::try_from(days_from_civil(i64::from(year), month, day)).ok()?;
    Some(days * DAY_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for days in [0i64, 1, 59, 365, 10_957, 19_675, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_825_600), "2000-02-29T12:00:00Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(date_start("1970-01-01"), Some(0));
        assert_eq!(date_start("2000-02-29"), Some(951_782_400));
        for bad in [
            "",
            "1969-12-31",
            "2024-13-01",
            "2024-1-01",
            "2024-01-01T00:00",
            "2024-04-31",
            "+024-01-01",
        ] {
            assert_eq!(date_start(bad), None, "{bad}");
        }
    }
}
