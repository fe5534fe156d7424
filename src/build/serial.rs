//! SOA serials: the policies (`keep`, `increment`, `date`, `unixtime`) and
//! RFC 1982 serial-number arithmetic.

use crate::base::config::SerialPolicy;

/// RFC 1982 §3.2: `a` is greater than `b` when
/// `(a < b and b - a > 2^31) or (a > b and a - b < 2^31)`.
pub fn greater(a: u32, b: u32) -> bool {
    (a < b && b - a > (1 << 31)) || (a > b && a - b < (1 << 31))
}

/// RFC 1982 §3.1: addition of a number up to 2^31 - 1, modulo 2^32.
pub fn add(s: u32, n: u32) -> u32 {
    debug_assert!(n < (1 << 31));
    s.wrapping_add(n)
}

/// `YYYYMMDD00` for the UTC day of `unix_seconds`.
pub fn date_serial(unix_seconds: i64) -> u32 {
    let date = time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .date();
    (date.year() as u32 * 10_000 + u8::from(date.month()) as u32 * 100 + date.day() as u32) * 100
}

/// The serial for a zone whose content changed.
///
/// `previous` is the last published serial (None on the first build),
/// `written` the serial in soa/, `now` the time in seconds since the epoch.
pub fn next(policy: SerialPolicy, previous: Option<u32>, written: u32, now: i64) -> u32 {
    if policy == SerialPolicy::Keep {
        return written;
    }
    // On the first build the written serial is the starting point.
    let prev = previous.unwrap_or(written.wrapping_sub(1));
    let bumped = add(prev, 1);
    let at_least = |candidate: u32| {
        if greater(candidate, prev) {
            candidate
        } else {
            bumped
        }
    };
    match policy {
        SerialPolicy::Keep => written,
        SerialPolicy::Increment => bumped,
        // YYYYMMDDnn; once nn would overflow the day (or the serial is
        // already ahead of today), it simply counts on.
        SerialPolicy::Date => at_least(date_serial(now)),
        SerialPolicy::Unixtime => at_least(now.clamp(0, u32::MAX as i64) as u32),
    }
}

/// Whether a `date` serial just ran out of its day: `previous` was at most
/// today's last (`YYYYMMDD99`) and `new` is past it, so the serial now runs
/// ahead of the date. Said once, when it happens: the next serials are
/// ahead already and say nothing.
pub fn date_ran_out(policy: SerialPolicy, previous: Option<u32>, new: u32, now: i64) -> bool {
    let last = date_serial(now).wrapping_add(99);
    policy == SerialPolicy::Date
        && previous.is_some_and(|p| !greater(p, last))
        && greater(new, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use SerialPolicy::*;

    // 2026-11-24T12:00:00Z
    const NOW: i64 = 1_795_521_600;

    #[test]
    fn rfc1982_comparison() {
        assert!(greater(2, 1));
        assert!(!greater(1, 2));
        assert!(greater(0, u32::MAX));
        assert!(greater(5, u32::MAX - 5));
        assert!(!greater(7, 7));
        // Exactly 2^31 apart is undefined: neither is greater.
        assert!(!greater(0, 1 << 31) && !greater(1 << 31, 0));
    }

    #[test]
    fn policies() {
        assert_eq!(date_serial(NOW), 2026112400);
        assert_eq!(next(Increment, Some(41), 1, NOW), 42);
        assert_eq!(next(Increment, None, 7, NOW), 7);
        assert_eq!(next(Increment, Some(u32::MAX), 1, NOW), 0);
        assert_eq!(next(Keep, Some(41), 9, NOW), 9);
        assert_eq!(next(Date, Some(2026112000), 1, NOW), 2026112400);
        assert_eq!(next(Date, Some(2026112400), 1, NOW), 2026112401);
        assert_eq!(next(Date, Some(2026112499), 1, NOW), 2026112500);
        assert_eq!(next(Date, None, 1, NOW), 2026112400);
        assert_eq!(next(Unixtime, Some(5), 1, NOW), NOW as u32);
        assert!(!date_ran_out(Date, Some(2026112498), 2026112499, NOW));
        assert!(date_ran_out(Date, Some(2026112499), 2026112500, NOW));
        assert!(!date_ran_out(Date, Some(2026112500), 2026112501, NOW));
        assert!(!date_ran_out(Increment, Some(2026112499), 2026112500, NOW));
        assert_eq!(
            next(Unixtime, Some(NOW as u32 + 10), 1, NOW),
            NOW as u32 + 11
        );
    }
}
