//! `[serve]`: the embedded responder's addresses and the limits that bound
//! what a network peer can make it do.

use super::de::*;
use crate::base::server;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The embedded responder: where it listens, who may transfer zones, and
/// the limits that bound what a network peer can make it do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Serve {
    /// IP addresses, port 53 unless given.
    #[serde(deserialize_with = "server::listen")]
    pub listen: Vec<SocketAddr>,
    pub allow_axfr: Vec<IpAddr>,
    /// TCP connections open at once, in total (clamped to what the
    /// descriptor limit leaves after a reserve for the builder).
    pub tcp_max: usize,
    /// TCP connections open at once from one IPv4 address or IPv6 /64.
    pub tcp_max_per_source: usize,
    /// A TCP connection that sends no query for this long is closed.
    #[serde(deserialize_with = "duration")]
    pub tcp_idle: Duration,
    /// No query is read on a TCP connection older than this.
    #[serde(deserialize_with = "duration")]
    pub tcp_lifetime: Duration,
    /// Queries answered on one TCP connection before it is closed.
    pub tcp_max_queries: usize,
    /// Refused, malformed and rate-limited queries and refused connections
    /// are logged one line for the first, then one summary per interval.
    #[serde(deserialize_with = "duration")]
    pub log_interval: Duration,
    /// UDP answers per second to one source prefix (response rate
    /// limiting); 0 turns it off. Unset: on (at [`RRL_RATE`]) for listen
    /// addresses that are not loopback, off on loopback.
    pub rrl_rate: Option<u32>,
    /// Answers a prefix may get at once before the rate applies.
    pub rrl_burst: u32,
    /// Every n-th answer over the rate goes out truncated (TC=1, so a real
    /// client retries over TCP); the rest are dropped. 0: drop them all.
    pub rrl_slip: u32,
    pub rrl_ipv4_prefix: u8,
    pub rrl_ipv6_prefix: u8,
    /// Prefixes tracked at once (a fixed table: a flood of spoofed sources
    /// costs entries, never memory).
    pub rrl_table_size: usize,
}

/// The response rate limit a non-loopback listen address gets by default:
/// Knot's per-prefix default (its `rate-limit`), far above what ACME
/// validation asks of one network.
pub const RRL_RATE: u32 = 20;

impl Default for Serve {
    fn default() -> Self {
        Serve {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 5353))],
            allow_axfr: Vec::new(),
            tcp_max: 256,
            tcp_max_per_source: 16,
            tcp_idle: Duration::from_secs(10),
            tcp_lifetime: Duration::from_secs(60),
            tcp_max_queries: 1000,
            log_interval: Duration::from_secs(60),
            rrl_rate: None,
            rrl_burst: 50,
            rrl_slip: 2,
            rrl_ipv4_prefix: 24,
            rrl_ipv6_prefix: 56,
            rrl_table_size: 65_536,
        }
    }
}

impl Serve {
    /// The response rate limit (answers per second per prefix) for a UDP
    /// socket on `addr`; `None`: off.
    pub fn rrl_rate_on(&self, addr: SocketAddr) -> Option<u32> {
        match self.rrl_rate {
            Some(0) => None,
            Some(rate) => Some(rate),
            None if addr.ip().is_loopback() => None,
            None => Some(RRL_RATE),
        }
    }

    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        let at_least_one = [
            ("serve.tcp_max", self.tcp_max),
            ("serve.tcp_max_per_source", self.tcp_max_per_source),
            ("serve.tcp_max_queries", self.tcp_max_queries),
            ("serve.rrl_burst", self.rrl_burst as usize),
            ("serve.rrl_table_size", self.rrl_table_size),
        ];
        for (key, value) in at_least_one {
            if value == 0 {
                return Err((key, "must be at least 1".into()));
            }
        }
        if self.rrl_table_size > 1 << 24 {
            return Err((
                "serve.rrl_table_size",
                format!("{} is more than 16777216 prefixes", self.rrl_table_size),
            ));
        }
        let at_least_a_second = [
            ("serve.tcp_idle", self.tcp_idle),
            ("serve.tcp_lifetime", self.tcp_lifetime),
            ("serve.log_interval", self.log_interval),
        ];
        for (key, value) in at_least_a_second {
            if value < Duration::from_secs(1) {
                return Err((key, "must be at least 1s".into()));
            }
        }
        if !(1..=32).contains(&self.rrl_ipv4_prefix) {
            return Err((
                "serve.rrl_ipv4_prefix",
                format!(
                    "/{} is not an IPv4 prefix length (1 to 32)",
                    self.rrl_ipv4_prefix
                ),
            ));
        }
        if !(1..=128).contains(&self.rrl_ipv6_prefix) {
            return Err((
                "serve.rrl_ipv6_prefix",
                format!(
                    "/{} is not an IPv6 prefix length (1 to 128)",
                    self.rrl_ipv6_prefix
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        })
    }
}
