//! Wall-clock helpers: RFC 3339 timestamps and sortable build ids, without a date crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO)
}

pub fn now_ms() -> u128 {
    now().as_millis()
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
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

fn parts(t: Duration) -> (i64, u32, u32, u64, u64, u64, u32) {
    let secs = t.as_secs();
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    (y, mo, d, rem / 3600, rem % 3600 / 60, rem % 60, t.subsec_millis())
}

/// `2026-11-28T00:40:15Z`
pub fn rfc3339(t: Duration) -> String {
    let (y, mo, d, h, mi, s, _) = parts(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `20261128-004015-123`: sorts by time, safe in a file name.
pub fn compact(t: Duration) -> String {
    let (y, mo, d, h, mi, s, ms) = parts(t);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}-{ms:03}")
}

/// Parses what `rfc3339` writes, back to seconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // days_from_civil, the inverse of civil_from_days
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if mo > 2 { mo - 3 } else { mo + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + se).ok()
}

/// `1m05s`, `12.3s`: for people reading `status`.
pub fn human_duration(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let s = secs.round() as u64;
        if s < 3600 {
            format!("{}m{:02}s", s / 60, s % 60)
        } else {
            format!("{}h{:02}m", s / 3600, s % 3600 / 60)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        let t = Duration::from_millis(1_576_754_827_988);
        assert_eq!(rfc3339(t), "2019-12-19T11:27:07Z");
        assert_eq!(compact(t), "20191219-112707-988");
        assert_eq!(rfc3339(Duration::ZERO), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn parse_inverts_format() {
        for secs in [0u64, 951_782_400, 1_576_754_827, 1_795_000_000, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&rfc3339(Duration::from_secs(secs))), Some(secs));
        }
        assert_eq!(parse_rfc3339("2019-12-19 11:27:07Z"), None);
        assert_eq!(parse_rfc3339(""), None);
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(3.25), "3.2s");
        assert_eq!(human_duration(65.0), "1m05s");
        assert_eq!(human_duration(7300.0), "2h01m");
    }
}
