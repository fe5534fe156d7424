//! "Wait until visible": ask each authoritative server for the challenge
//! TXT until all of them serve the value, so an ACME client does not ask
//! its CA to validate before the record is out.
//!
//! The servers are the ones given, else `[hook] servers`, else the NS of
//! the closest configured zone as written in its published file (port 53).
//! A server known by name (an NS host, or a name given) is looked up at
//! every round until it resolves: first in the published files of the
//! managed zones (the zone's own glue, or another managed zone's A/AAAA,
//! there before any resolver has them), then by the system resolver; a
//! name that does not resolve yet is asked again, not an error.
//! Queries go without recursion desired (RFC 1035 §4.1.1: we ask the
//! authorities themselves, not a resolver's cache), follow a CNAME at the
//! challenge name (the "challenge alias" pattern), and retry over TCP when
//! a UDP answer is truncated. This module only looks; it never writes.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use crate::base::config::Config;
use crate::base::name;
use crate::base::server::{self, Host, Server};
use crate::live::exchange;
use crate::live::serve;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordSet, RecordType, RrKey};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use thiserror::Error;

/// How often the servers that do not serve the value yet are asked again.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// The first pause between two rounds of questions; it doubles up to the
/// interval.
pub const FIRST_PAUSE: Duration = Duration::from_millis(25);

/// How long `zonedrop wait` waits when neither `--timeout` nor `[hook] wait`
/// says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// How many CNAMEs are followed from the challenge name.
const MAX_CNAMES: usize = 8;

#[derive(Debug, Error)]
pub enum WaitError {
    #[error("{owner} TXT \"{value}\" is not visible after {waited} on {}", .missing.join(", "))]
    NotVisible {
        owner: String,
        value: String,
        waited: String,
        /// `server (why)` for each server that did not serve the value.
        missing: Vec<String>,
    },
    #[error("{0}")]
    Name(#[from] name::NameError),
    #[error("`{0}` is not a domain name")]
    BadName(String),
    #[error("no server to ask about {0}: give --server ADDR, set [hook] servers, or configure its zone and publish it with NS records")]
    NoServers(String),
    #[error("{owner}: {source}")]
    Zone {
        owner: String,
        source: Box<serve::ServeError>,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// What one server said about the challenge, as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Visible,
    /// It answered, without the value; the text says what it answered.
    Missing(String),
    /// No usable answer: timeout, refused connection, error code.
    Failed(String),
}

/// Blocking: wait up to `timeout` until every server serves TXT `value` at
/// `owner`, asking soon, then every [`INTERVAL`]. `servers` empty: the defaults
/// described at the top of this module.
pub fn wait_visible(
    config: &Config,
    owner: &str,
    value: &str,
    servers: &[Server],
    timeout: Duration,
) -> Result<(), WaitError> {
    wait_visible_every(config, owner, value, servers, timeout, INTERVAL)
}

/// The servers to ask about `owner`: `given`, else `[hook] servers`, else
/// the zone's NS ([`zone_servers`]). Host names among them are resolved
/// by [`wait`], at each round until they resolve.
pub fn servers_for(
    config: &Config,
    owner: &str,
    given: &[Server],
) -> Result<Vec<Server>, WaitError> {
    if !given.is_empty() {
        Ok(given.to_vec())
    } else if !config.hook.servers.is_empty() {
        Ok(config.hook.servers.clone())
    } else {
        zone_servers(config, owner)
    }
}

/// [`wait_visible`] with the polling interval as a parameter (tests use
/// 100 ms).
pub fn wait_visible_every(
    config: &Config,
    owner: &str,
    value: &str,
    servers: &[Server],
    timeout: Duration,
    interval: Duration,
) -> Result<(), WaitError> {
    let owner = name::parse_fqdn(owner)?;
    let servers = servers_for(config, &owner, servers)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(WaitError::Runtime)?;
    runtime.block_on(wait(config, &owner, value, &servers, timeout, interval))
}

/// One server being waited for: an address asked, or a name not resolved yet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Pending {
    Addr(SocketAddr),
    Name(Server),
}

impl std::fmt::Display for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pending::Addr(a) => a.fmt(f),
            Pending::Name(s) => s.fmt(f),
        }
    }
}

/// Ask `servers` (soon, then every `interval`) until each serves TXT `value` at `owner`
/// (absolute, lowercase), or `timeout` passes. A server given by name is
/// looked up at each round until it resolves (an NS host whose address is
/// not out yet), first in the published zones of `config` (their glue),
/// then by the system resolver; each of its addresses must then serve the
/// value.
pub async fn wait(
    config: &Config,
    owner: &str,
    value: &str,
    servers: &[Server],
    timeout: Duration,
    interval: Duration,
) -> Result<(), WaitError> {
    let qname = Name::from_ascii(owner).map_err(|_| WaitError::BadName(owner.to_string()))?;
    let start = Instant::now();
    let deadline = start + timeout;
    let mut pending: BTreeMap<Pending, Seen> = servers
        .iter()
        .map(|s| match s.host {
            Host::Ip(ip) => Pending::Addr(SocketAddr::new(ip, s.port)),
            Host::Name(_) => Pending::Name(s.clone()),
        })
        .map(|p| (p, Seen::Failed("not asked".into())))
        .collect();
    let mut visible: Vec<SocketAddr> = Vec::new();
    // A hook asks right after writing, while the builder is still at work
    // (tens of milliseconds with `zonedrop run`): ask again soon, then
    // back off to `interval`, so the client is not held for a whole
    // interval by a record that was out a moment later.
    let mut pause = FIRST_PAUSE;
    loop {
        resolve_names(config, &mut pending, &visible).await;
        // Each query may take at most what is left, and at least a moment.
        let left = deadline.saturating_duration_since(Instant::now());
        let per_query = left.clamp(Duration::from_millis(100), Duration::from_secs(2));
        let mut set = tokio::task::JoinSet::new();
        for p in pending.keys() {
            if let Pending::Addr(server) = *p {
                let (qname, value) = (qname.clone(), value.to_string());
                set.spawn(async move { (server, look(&qname, &value, server, per_query).await) });
            }
        }
        while let Some(joined) = set.join_next().await {
            if let Ok((server, seen)) = joined {
                if seen == Seen::Visible {
                    pending.remove(&Pending::Addr(server));
                    visible.push(server);
                } else {
                    pending.insert(Pending::Addr(server), seen);
                }
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        tokio::time::sleep(pause.min(interval).min(left)).await;
        pause = pause.saturating_mul(2);
    }
    Err(WaitError::NotVisible {
        owner: owner.to_string(),
        value: value.to_string(),
        waited: humantime::format_duration(Duration::from_secs(timeout.as_secs().max(1)))
            .to_string(),
        missing: pending
            .iter()
            .map(|(server, seen)| match seen {
                Seen::Visible => server.to_string(),
                Seen::Missing(why) | Seen::Failed(why) => format!("{server} ({why})"),
            })
            .collect(),
    })
}

/// Replace each name in `pending` that resolves now by its addresses (but
/// those already `visible`); a name that does not stays, saying why.
async fn resolve_names(
    config: &Config,
    pending: &mut BTreeMap<Pending, Seen>,
    visible: &[SocketAddr],
) {
    let names: Vec<Server> = pending
        .keys()
        .filter_map(|p| match p {
            Pending::Name(s) => Some(s.clone()),
            Pending::Addr(_) => None,
        })
        .collect();
    for server in names {
        let Host::Name(host) = &server.host else {
            continue;
        };
        let mut addrs = glue(config, host, server.port);
        let why = if addrs.is_empty() {
            match tokio::net::lookup_host((host.as_str(), server.port)).await {
                Ok(found) => {
                    addrs.extend(found);
                    "no address".to_string()
                }
                Err(e) => e.to_string(),
            }
        } else {
            String::new()
        };
        let key = Pending::Name(server.clone());
        if addrs.is_empty() {
            pending.insert(
                key,
                Seen::Failed(format!("its address is not found yet: {why}")),
            );
            continue;
        }
        pending.remove(&key);
        for a in addrs.into_iter().filter(|a| !visible.contains(a)) {
            pending
                .entry(Pending::Addr(a))
                .or_insert(Seen::Failed("not asked".into()));
        }
    }
}

/// The A and AAAA records of `host` (absolute or not) in the published
/// file of the configured zone that holds it: glue zonedrop itself
/// publishes, there before any resolver has it.
fn glue(config: &Config, host: &str, port: u16) -> Vec<SocketAddr> {
    let Ok(fqdn) = name::parse_fqdn(host) else {
        return Vec::new();
    };
    let Some(zone) = config.zone_of(&fqdn) else {
        return Vec::new();
    };
    let (Ok(records), Ok(name)) = (
        serve::read_zone(&config.published_path(&zone.name), &zone.name),
        Name::from_ascii(&fqdn),
    ) else {
        return Vec::new();
    };
    addresses(&records, &name, port)
}

/// The A and AAAA data at `name` in `records`, with `port`.
fn addresses(records: &BTreeMap<RrKey, RecordSet>, name: &Name, port: u16) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = records
        .values()
        .flat_map(|set| set.records_without_rrsigs())
        .filter(|r| r.name == *name)
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(SocketAddr::from((a.0, port))),
            RData::AAAA(a) => Some(SocketAddr::from((a.0, port))),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

/// Ask one server once, following CNAMEs from `owner`.
pub async fn look(owner: &Name, value: &str, server: SocketAddr, timeout: Duration) -> Seen {
    let mut qname = owner.clone();
    for _ in 0..=MAX_CNAMES {
        let response = match exchange::exchange(server, &query(&qname), timeout).await {
            Ok(r) => r,
            Err(e) => return Seen::Failed(e.to_string()),
        };
        let rcode = response.metadata.response_code;
        if rcode != ResponseCode::NoError && rcode != ResponseCode::NXDomain {
            return Seen::Failed(format!("answered {rcode}"));
        }
        // Walk the chain the server gave, then look for the TXT at its end.
        let mut name = qname.clone();
        for _ in 0..=MAX_CNAMES {
            let next = response.answers.iter().find_map(|r| match &r.data {
                RData::CNAME(c) if r.name == name => Some(c.0.clone()),
                _ => None,
            });
            match next {
                Some(target) => name = target,
                None => break,
            }
        }
        let txts: Vec<Vec<u8>> = response
            .answers
            .iter()
            .filter(|r| r.name == name)
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(t.txt_data.concat()),
                _ => None,
            })
            .collect();
        if txts.iter().any(|t| t == value.as_bytes()) {
            return Seen::Visible;
        }
        if txts.is_empty() && name != qname {
            // The CNAME points where this server's answer stops: ask for
            // the target itself.
            qname = name;
            continue;
        }
        return Seen::Missing(match (rcode, txts.len()) {
            (ResponseCode::NXDomain, _) => format!("NXDOMAIN for {name}"),
            (_, 0) => format!("no TXT at {name}"),
            (_, n) => format!("{n} other TXT at {name}"),
        });
    }
    Seen::Missing(format!("more than {MAX_CNAMES} CNAMEs from {owner}"))
}

/// A TXT query with RD clear and EDNS, so big TXT sets fit without TCP.
fn query(qname: &Name) -> Message {
    let mut m = Message::query();
    m.metadata.message_type = MessageType::Query;
    m.metadata.op_code = OpCode::Query;
    m.metadata.recursion_desired = false;
    m.add_query(Query::query(qname.clone(), RecordType::TXT));
    let mut edns = Edns::new();
    edns.set_max_payload(exchange::EDNS_PAYLOAD);
    m.set_edns(edns);
    m
}

/// The authoritative servers of the closest configured zone of `owner`:
/// the apex NS of its published file, each host with its A/AAAA from that
/// file when it has them (port 53), else by name (looked up by [`wait`],
/// in the glue of the other managed zones or by the system resolver).
pub fn zone_servers(config: &Config, owner: &str) -> Result<Vec<Server>, WaitError> {
    let zone = config
        .zone_of(owner)
        .ok_or_else(|| WaitError::NoServers(owner.to_string()))?;
    let file = config.published_path(&zone.name);
    let records = serve::read_zone(&file, &zone.name).map_err(|e| WaitError::Zone {
        owner: owner.to_string(),
        source: Box::new(e),
    })?;
    let apex = Name::from_ascii(&zone.name).map_err(|_| WaitError::NoServers(owner.to_string()))?;
    let hosts: Vec<Name> = records
        .values()
        .flat_map(|set| set.records_without_rrsigs())
        .filter(|r| r.name == apex)
        .filter_map(|r| match &r.data {
            RData::NS(ns) => Some(ns.0.clone()),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for host in hosts {
        let glue = addresses(&records, &host, server::PORT);
        if glue.is_empty() {
            let name = host.to_ascii().trim_end_matches('.').to_ascii_lowercase();
            out.push(Server {
                host: Host::Name(name),
                port: server::PORT,
            });
        } else {
            out.extend(glue.into_iter().map(Server::ip));
        }
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err(WaitError::NoServers(owner.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_servers_come_from_the_published_ns_and_glue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zonedrop.toml");
        std::fs::write(&path, "[[zone]]\nname = \"example.test\"\n").unwrap();
        std::fs::create_dir(dir.path().join("unsigned")).unwrap();
        std::fs::write(
            dir.path().join("unsigned/example.test"),
            "$ORIGIN example.test.\n$TTL 60\n@ IN SOA ns1 h 1 3600 600 86400 60\n\
             @ IN NS ns1\n@ IN NS ns2\nns1 IN A 192.0.2.1\nns2 IN AAAA 2001:db8::2\n\
             ns2 IN A 192.0.2.2\n",
        )
        .unwrap();
        let config = Config::load(&path).unwrap();
        let servers = zone_servers(&config, "_acme-challenge.www.example.test.").unwrap();
        let want: Vec<Server> = ["192.0.2.1:53", "192.0.2.2:53", "[2001:db8::2]:53"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(servers, want);
        let e = zone_servers(&config, "_acme-challenge.example.org.").unwrap_err();
        assert!(matches!(e, WaitError::NoServers(_)), "{e}");
    }
}
