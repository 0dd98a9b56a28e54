//! RFC 3339 UTC formatting of packet times (ns since the epoch) and parsing
//! of durations like `7d`, `90m`, `30s` for `--host-idle`. No time zone
//! database, no wall clock: pure arithmetic.

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
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

fn parts(ns: u64) -> (i64, u32, u32, u64, u64, u64, u64) {
    let secs = ns / 1_000_000_000;
    let frac = ns % 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    (y, m, d, rem / 3600, (rem / 60) % 60, rem % 60, frac)
}

/// Append `v` as exactly `width` (at most 20) decimal digits
/// (zero-padded, truncated to the low digits): no `fmt` machinery, which
/// costs a few thousand instructions per timestamp (issue 16: reports of
/// 10,000 hosts, events), and only divisions by the constant 10.
fn push_digits(out: &mut String, mut v: u64, width: u32) {
    let mut buf = [b'0'; 20];
    let n = (width as usize).min(buf.len());
    for d in buf.iter_mut().take(n).rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    for d in buf.iter().take(n) {
        out.push(char::from(*d));
    }
}

/// Append `v` in decimal (the digits `Display` writes).
pub fn push_u64(out: &mut String, v: u64) {
    // Its digit count: at most 20 steps.
    let width = std::iter::successors(Some(v), |x| (*x >= 10).then_some(x / 10)).count();
    push_digits(out, v, width as u32);
}

fn push_date_time(out: &mut String, ns: u64) -> u64 {
    let (y, mo, d, h, mi, s, frac) = parts(ns);
    if (0..=9999).contains(&y) {
        push_digits(out, y as u64, 4);
    } else {
        out.push_str(&format!("{y:04}"));
    }
    out.push('-');
    push_digits(out, u64::from(mo), 2);
    out.push('-');
    push_digits(out, u64::from(d), 2);
    out.push('T');
    push_digits(out, h, 2);
    out.push(':');
    push_digits(out, mi, 2);
    out.push(':');
    push_digits(out, s, 2);
    frac
}

/// `2026-03-02T09:00:00Z` (seconds).
pub fn rfc3339(ns: u64) -> String {
    let mut out = String::with_capacity(20);
    push_rfc3339(&mut out, ns);
    out
}

/// Append [`rfc3339`]'s text.
pub fn push_rfc3339(out: &mut String, ns: u64) {
    push_date_time(out, ns);
    out.push('Z');
}

/// `2026-03-02T09:00:00.123456Z` (microseconds), for events.
pub fn rfc3339_micros(ns: u64) -> String {
    let mut out = String::with_capacity(27);
    let frac = push_date_time(&mut out, ns);
    out.push('.');
    push_digits(&mut out, frac / 1000, 6);
    out.push('Z');
    out
}

/// Parse `30s`, `15m`, `12h`, `7d`, `1w` or plain seconds into nanoseconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (use e.g. 30s, 15m, 12h, 7d)"))?;
    let mult = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        "w" => 604_800_000_000_000,
        _ => {
            return Err(format!(
                "invalid duration unit in {s:?} (use ms, s, m, h, d or w)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("duration {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_digits_are_display_s() {
        let mut cases = vec![0u64, 1, 9, 10, 99, 100, 12_345, u64::MAX, u64::MAX - 1];
        cases.extend((0..64).map(|b| 1u64 << b));
        cases.extend((1..20).map(|k| 10u64.pow(k) - 1));
        for v in cases {
            let mut s = String::from("x");
            push_u64(&mut s, v);
            assert_eq!(s, format!("x{v}"));
            let mut p = String::new();
            push_digits(&mut p, v, 4);
            assert_eq!(p, format!("{:04}", v % 10_000));
        }
    }
    #[test]
    fn fast_forms_equal_format() {
        let mut rng = crate::testrng::XorShift64(0x2545_f491_4f6c_dd1d);
        let mut samples = vec![
            0,
            1,
            999_999_999,
            1_000_000_000,
            u64::MAX,
            4_102_444_799_999_999_999,
        ];
        for _ in 0..2000 {
            let x = rng.next();
            samples.push(x);
            samples.push(x % 4_102_444_800_000_000_000);
        }
        for ns in samples {
            let (y, mo, d, h, mi, s, frac) = parts(ns);
            assert_eq!(
                rfc3339(ns),
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
            );
            assert_eq!(
                rfc3339_micros(ns),
                format!(
                    "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:06}Z",
                    frac / 1000
                )
            );
        }
    }

    #[test]
    fn formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_micros(1_772_442_000_123_456_789),
            "2026-03-02T09:00:00.123456Z"
        );
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00Z");
    }
    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d").unwrap(), 7 * 86_400_000_000_000);
        assert_eq!(parse_duration("90").unwrap(), 90_000_000_000);
        assert!(parse_duration("7x").is_err());
        assert!(parse_duration("d").is_err());
    }
}
