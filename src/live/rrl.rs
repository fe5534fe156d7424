//! Response rate limiting for UDP answers, per source prefix, as NSD and
//! Knot do it: a UDP query's source address can be forged, so without a
//! limit the responder would reflect its (bigger) answers at whoever the
//! forger names.
//!
//! Each source prefix (an IPv4 /24 and an IPv6 /56 by default, Knot's
//! prefixes) may get `rrl_burst` answers at once and `rrl_rate` a second
//! after that: a token bucket, kept as one "theoretical arrival time" per
//! prefix (the generic cell rate algorithm). Over the limit, every
//! `rrl_slip`-th answer still goes out truncated (TC=1, no records, as
//! small as the query): a real resolver retries over TCP, where a forged
//! source cannot follow, and a victim gets no amplification. The rest are
//! dropped. TCP answers are never limited.
//!
//! The prefixes live in a fixed table of `rrl_table_size` entries, hashed
//! with a per-process random key (so a forger cannot aim collisions), in
//! shards each behind its own lock: the UDP threads share it, because the
//! kernel spreads one prefix's queries over all of them. A prefix that
//! lands on an entry held by another takes it over, as in NSD: a flood of
//! forged sources costs entries, never memory.
//!
//! Keyed by prefix alone, not by prefix and answer as BIND's RRL is: the
//! limit is on what one network receives, which is what reflection abuses.
//! It owns no DNS logic: the UDP path asks it about each answer it would
//! send.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::base::config::Serve;

/// Locks the table is split over: enough that the UDP threads rarely meet.
const SHARDS: usize = 64;

/// What to do with one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Send,
    /// Over the limit: send it truncated (TC=1, no records).
    Slip,
    /// Over the limit: send nothing.
    Drop,
}

/// A source prefix: its bits (the rest of the address cleared) and its
/// family (4 or 6; 0 in an unused entry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct Prefix {
    bits: u128,
    family: u8,
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// The prefix this entry tracks.
    prefix: Prefix,
    /// When the prefix's bucket is empty again, in ns since `epoch`.
    tat: u64,
    /// Answers over the limit so far (for the slip).
    limited: u32,
}

/// The limit and the table of one responder.
pub(crate) struct Rrl {
    rate: u32,
    burst: u32,
    /// Nanoseconds one answer costs: 1 s / rate.
    cost: u64,
    /// How far ahead of now the bucket may run: burst × cost.
    depth: u64,
    slip: u32,
    v4_mask: u32,
    v6_mask: u128,
    hasher: std::collections::hash_map::RandomState,
    epoch: Instant,
    shards: Box<[Mutex<Box<[Entry]>>]>,
}

impl Rrl {
    /// The limit configured in `serve` at `rate` answers a second.
    pub(crate) fn new(serve: &Serve, rate: u32) -> Rrl {
        let cost = 1_000_000_000 / u64::from(rate.max(1));
        let per_shard = serve.rrl_table_size.div_ceil(SHARDS).max(1);
        let prefix4 = u32::from(serve.rrl_ipv4_prefix.clamp(1, 32));
        let prefix6 = u32::from(serve.rrl_ipv6_prefix.clamp(1, 128));
        Rrl {
            rate,
            burst: serve.rrl_burst,
            cost,
            depth: cost.saturating_mul(u64::from(serve.rrl_burst.max(1))),
            slip: serve.rrl_slip,
            v4_mask: u32::MAX << (32 - prefix4),
            v6_mask: u128::MAX << (128 - prefix6),
            hasher: Default::default(),
            epoch: Instant::now(),
            shards: (0..SHARDS)
                .map(|_| Mutex::new(vec![Entry::default(); per_shard].into_boxed_slice()))
                .collect(),
        }
    }

    /// The prefix of `ip` (IPv4-mapped IPv6 addresses count as IPv4, as a
    /// dual-stack socket reports them).
    pub(crate) fn prefix(&self, ip: IpAddr) -> Prefix {
        match unmap(ip) {
            IpAddr::V4(v4) => Prefix {
                bits: u128::from(u32::from(v4) & self.v4_mask),
                family: 4,
            },
            IpAddr::V6(v6) => Prefix {
                bits: u128::from(v6) & self.v6_mask,
                family: 6,
            },
        }
    }

    /// The prefix in the form an operator reads: `192.0.2.0/24`.
    pub(crate) fn describe(&self, ip: IpAddr) -> String {
        match unmap(ip) {
            IpAddr::V4(v4) => format!(
                "{}/{}",
                std::net::Ipv4Addr::from(u32::from(v4) & self.v4_mask),
                self.v4_mask.count_ones()
            ),
            IpAddr::V6(v6) => format!(
                "{}/{}",
                std::net::Ipv6Addr::from(u128::from(v6) & self.v6_mask),
                self.v6_mask.count_ones()
            ),
        }
    }

    /// The limit in the config's words, for log lines.
    pub(crate) fn limit(&self) -> String {
        format!(
            "[serve] rrl_rate {}/s, rrl_burst {}, rrl_slip {}",
            self.rate, self.burst, self.slip
        )
    }

    /// Whether an answer to `ip` may go out now; counts it if so.
    pub(crate) fn check(&self, ip: IpAddr) -> Verdict {
        self.check_at(self.prefix(ip), || {
            u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
        })
    }

    /// `now` is read under the shard's lock: a thread that was preempted
    /// between reading the clock and taking the lock would otherwise
    /// bring a time older than the bucket's, and be limited for it.
    fn check_at(&self, prefix: Prefix, now: impl FnOnce() -> u64) -> Verdict {
        let hash = self.hasher.hash_one(prefix) as usize;
        let Some(shard) = self.shards.get(hash % SHARDS) else {
            return Verdict::Send;
        };
        let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
        let now = now();
        let slots = shard.len();
        let Some(entry) = shard.get_mut((hash / SHARDS) % slots) else {
            return Verdict::Send;
        };
        if entry.prefix != prefix {
            *entry = Entry {
                prefix,
                tat: now,
                limited: 0,
            };
        }
        // The bucket is empty again at `tat`; an answer moves it `cost`
        // further. It may run at most `depth` ahead of now.
        let tat = entry.tat.max(now);
        if tat + self.cost - now <= self.depth {
            entry.tat = tat + self.cost;
            return Verdict::Send;
        }
        entry.limited = entry.limited.wrapping_add(1);
        if self.slip > 0 && entry.limited % self.slip == 0 {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrl(rate: u32, burst: u32, slip: u32) -> Rrl {
        let serve = Serve {
            rrl_burst: burst,
            rrl_slip: slip,
            ..Serve::default()
        };
        Rrl::new(&serve, rate)
    }

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn a_prefix_gets_its_burst_then_its_rate() {
        let r = rrl(10, 5, 2);
        let p = r.prefix("192.0.2.7".parse().unwrap());
        let sent = |from: u64, to: u64, step: u64| {
            (from..to)
                .step_by(step as usize)
                .filter(|&t| r.check_at(p, || t) == Verdict::Send)
                .count()
        };
        // 1,000 asks within a millisecond: the burst.
        assert_eq!(sent(SECOND, SECOND + 1_000_000, 1000), 5);
        // Then 10 a second, asked 1,000 times a second for 3 s.
        let more = sent(SECOND + 1_000_000, 4 * SECOND, SECOND / 1000);
        assert!((29..=31).contains(&more), "{more}");
    }

    #[test]
    fn every_slip_th_answer_over_the_limit_is_truncated() {
        let r = rrl(1, 1, 3);
        let p = r.prefix("198.51.100.1".parse().unwrap());
        let verdicts: Vec<Verdict> = (0..7).map(|i| r.check_at(p, || SECOND + i)).collect();
        use Verdict::*;
        assert_eq!(verdicts, [Send, Drop, Drop, Slip, Drop, Drop, Slip]);
        let r = rrl(1, 1, 0);
        assert!((0..5).skip(1).all(|i| r.check_at(p, || SECOND + i) != Slip));
    }

    #[test]
    fn prefixes_are_slash_24_and_slash_56_and_independent() {
        let r = rrl(1, 1, 0);
        let a = |s: &str| r.prefix(s.parse().unwrap());
        assert_eq!(a("192.0.2.1"), a("192.0.2.254"));
        assert_ne!(a("192.0.2.1"), a("192.0.3.1"));
        assert_eq!(a("::ffff:192.0.2.9"), a("192.0.2.1"));
        assert_eq!(a("2001:db8:0:ff::1"), a("2001:db8:0:1::2"));
        assert_ne!(a("2001:db8:0:100::1"), a("2001:db8::1"));
        assert_ne!(a("::"), Prefix::default());
        assert_ne!(a("0.0.0.0"), a("::"));
        assert_eq!(r.describe("192.0.2.77".parse().unwrap()), "192.0.2.0/24");
        assert_eq!(
            r.describe("2001:db8:1:2ff::1".parse().unwrap()),
            "2001:db8:1:200::/56"
        );

        assert_eq!(r.check_at(a("192.0.2.1"), || SECOND), Verdict::Send);
        assert_eq!(r.check_at(a("192.0.2.2"), || SECOND), Verdict::Drop);
        assert_eq!(r.check_at(a("192.0.3.1"), || SECOND), Verdict::Send);
    }

    #[test]
    fn the_table_never_grows() {
        let serve = Serve {
            rrl_table_size: 100,
            ..Serve::default()
        };
        let r = Rrl::new(&serve, 1);
        for i in 0..100_000u32 {
            r.check_at(r.prefix(IpAddr::from(i.to_be_bytes())), || SECOND);
        }
        let entries: usize = r.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert_eq!(entries, 128); // 100 rounded up to whole shards
    }
}
