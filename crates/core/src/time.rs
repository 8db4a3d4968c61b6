//! Calendar arithmetic and RFC 3339 text for timestamps (proleptic Gregorian, days counted from
//! 1970-01-01), after Howard Hinnant's `days_from_civil` / `civil_from_days`: templates, Avro's
//! logical types and `?since=` query parameters share one implementation.

use std::time::SystemTime;

/// Formats a time as RFC 3339 UTC with milliseconds (`2026-12-01T12:00:00.000Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60,
        d.subsec_millis()
    )
}

/// Milliseconds since the Unix epoch, now (0 for a clock before 1970).
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Milliseconds since the epoch of an RFC 3339 timestamp (an offset is required).
pub fn parse_rfc3339_millis(t: &str) -> Option<i64> {
    let has_offset = t.ends_with(['Z', 'z'])
        || t.rfind(['+', '-'])
            .is_some_and(|i| i > t.find(['T', 't', ' ']).unwrap_or(usize::MAX));
    if !has_offset {
        return None;
    }
    i64::try_from(parse_timestamp(t)?.div_euclid(1_000_000)).ok()
}

/// Year, month and day of a day counted from 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a year, month (1-12) and day.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01.
pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `HH:MM:SS[.fraction]` of nanoseconds since midnight (trailing zeros of the fraction dropped).
pub fn format_time(nanos_of_day: i64) -> String {
    let secs = nanos_of_day.div_euclid(1_000_000_000);
    let frac = nanos_of_day.rem_euclid(1_000_000_000);
    let (h, mi, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = format!("{h:02}:{mi:02}:{s:02}");
    if frac != 0 {
        let f = format!("{frac:09}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out
}

/// RFC 3339 of nanoseconds since the epoch, with `Z` when `utc` (else no offset: a local time).
pub fn format_timestamp(nanos: i128, utc: bool) -> String {
    let days = nanos.div_euclid(86_400 * 1_000_000_000) as i64;
    let rest = nanos.rem_euclid(86_400 * 1_000_000_000) as i64;
    format!(
        "{}T{}{}",
        format_date(days),
        format_time(rest),
        if utc { "Z" } else { "" }
    )
}

/// Days since 1970-01-01 of `YYYY-MM-DD`.
pub fn parse_date(t: &str) -> Option<i64> {
    let mut it = t.splitn(3, '-');
    let (y, m, d) = (it.next()?, it.next()?, it.next()?);
    let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then(|| days_from_civil(y, m, d))
}

/// Nanoseconds since midnight of `HH:MM:SS[.fraction]`.
pub fn parse_time(t: &str) -> Option<i64> {
    let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
    let mut it = hms.splitn(3, ':');
    let (h, m, s): (i64, i64, i64) = (
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    );
    if h > 23 || m > 59 || s > 60 || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_ns: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    Some(((h * 60 + m) * 60 + s) * 1_000_000_000 + frac_ns)
}

/// RFC 3339 (`Z`, `±HH:MM`, or no offset for local timestamps) → nanoseconds since the epoch.
pub fn parse_timestamp(t: &str) -> Option<i128> {
    let (date, rest) = t.split_once(['T', 't', ' '])?;
    let days = parse_date(date)?;
    let (time, offset_secs) = if let Some(x) = rest.strip_suffix(['Z', 'z']) {
        (x, 0)
    } else if let Some(i) = rest.rfind(['+', '-']).filter(|i| *i >= 8) {
        let (x, off) = rest.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        (
            x,
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60),
        )
    } else {
        (rest, 0)
    };
    let ns = parse_time(time)?;
    Some(
        i128::from(days) * 86_400_000_000_000 + i128::from(ns)
            - i128::from(offset_secs) * 1_000_000_000,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_days_and_instants() {
        // Values from `date -u -d @...` (GNU coreutils).
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_590_400_123)),
            "2025-12-01T12:00:00.123Z"
        );
        assert_eq!(
            parse_rfc3339_millis("2025-12-01T13:00:00.123+01:00"),
            Some(1_764_590_400_123)
        );
        assert_eq!(
            parse_rfc3339_millis("2025-12-01T12:00:00"),
            None,
            "no offset"
        );
    }
}
