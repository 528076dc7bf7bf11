//! The few date conversions verification needs, without a date library.

#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

#[cfg_attr(not(feature = "dcap"), allow(dead_code))]
/// Parses an RFC 3339 UTC timestamp of the form `YYYY-MM-DDTHH:MM:SS[.fff]Z` (as Intel
/// collateral writes them) into Unix seconds. Returns `None` for anything else.
pub(crate) fn parse_rfc3339_utc(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || b.get(10) != Some(&b'T')
    {
        return None;
    }
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') || b.last() != Some(&b'Z') {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let digits = s.get(from..to)?;
        digits
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    // Optional fractional seconds between the seconds and the `Z`.
    let fraction = s.get(19..s.len() - 1)?;
    if !(fraction.is_empty()
        || (fraction.starts_with('.')
            && fraction.len() > 1
            && fraction.bytes().skip(1).all(|c| c.is_ascii_digit())))
    {
        return None;
    }
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    u64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second).ok()
}

#[cfg_attr(not(feature = "dcap"), allow(dead_code))]
/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds as an RFC 3339 UTC timestamp, for messages.
pub(crate) fn format_rfc3339_utc(secs: u64) -> String {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Inverse of days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_intel_timestamps() {
        assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_utc("2025-06-19T10:56:11Z"),
            Some(1_750_330_571)
        );
        assert_eq!(
            parse_rfc3339_utc("2025-06-19T10:56:11.123Z"),
            Some(1_750_330_571)
        );
        assert_eq!(parse_rfc3339_utc("2000-02-29T23:59:59Z"), Some(951_868_799));
        for bad in [
            "",
            "2025-06-19",
            "2025-06-19T10:56:11",
            "2025-13-01T00:00:00Z",
            "2025-06-19T10:56:11+01:00",
            "2025-06-19T10:56:11.Z",
            "+025-06-19T10:56:11Z",
        ] {
            assert_eq!(parse_rfc3339_utc(bad), None, "{bad}");
        }
        for t in [0, 951_868_799, 1_750_330_571, 4_102_444_800] {
            assert_eq!(parse_rfc3339_utc(&format_rfc3339_utc(t)), Some(t));
        }
        assert_eq!(format_rfc3339_utc(1_750_330_571), "2025-06-19T10:56:11Z");
    }
}
