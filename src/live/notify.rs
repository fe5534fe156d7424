//! DNS NOTIFY (RFC 1996): telling secondaries that a zone changed, so they
//! ask for the new SOA and transfer the zone now instead of at the next
//! refresh.
//!
//! The message is built by hand because hickory's client `notify` leaves AA
//! clear, and RFC 1996 §3.7 has the master set it. This module sends and
//! checks the acknowledgement; which zones changed and when to notify is
//! the builder's business.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use crate::base::config::Config;
use crate::base::server::Server;
use crate::live::exchange;
use crate::live::serve;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, RrKey};
use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;

/// How long to wait for each acknowledgement.
pub const TIMEOUT: Duration = Duration::from_secs(1);
/// How many times a NOTIFY is sent before giving up on a secondary.
pub const TRIES: u32 = 3;

#[derive(Debug, Error)]
pub enum NotifyError {
    #[error("NOTIFY {zone} to {target}: {reason}")]
    Target {
        zone: String,
        target: SocketAddr,
        reason: String,
    },
    #[error("NOTIFY {zone}: {source}")]
    Zone {
        zone: String,
        source: Box<serve::ServeError>,
    },
    #[error("NOTIFY {zone} to {server}: cannot find its address: {reason}")]
    Resolve {
        zone: String,
        server: String,
        reason: String,
    },
    #[error("NOTIFY: `{0}` is not a domain name")]
    Name(String),
    #[error("NOTIFY: cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// The NOTIFY request for `zone`: RFC 1996 §3.7 "A NOTIFY request has
/// QDCOUNT>0, ANCOUNT>=0, AUCOUNT>=0, ADCOUNT>=0. [...] the message is
/// sent with QTYPE=SOA" and §3.7 "the AA bit [...] set"; §3.7 also allows
/// the new SOA in the answer section as a hint.
pub fn message(zone: &Name, soa: Option<&Record>) -> Message {
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Notify);
    m.metadata.authoritative = true;
    m.metadata.recursion_desired = false;
    let mut q = Query::query(zone.clone(), RecordType::SOA);
    q.set_query_class(DNSClass::IN);
    m.add_query(q);
    if let Some(soa) = soa {
        m.add_answer(soa.clone());
    }
    m
}

fn rand_id() -> u16 {
    // Message::query() draws a random ID; borrow it.
    Message::query().metadata.id
}

/// Send one NOTIFY to `target`, retrying (RFC 1996 §3.6: "the master
/// should periodically resend") until an acknowledgement comes or
/// `tries` are used. The acknowledgement must carry NOERROR.
pub async fn notify_one(
    zone: &Name,
    soa: Option<&Record>,
    target: SocketAddr,
    timeout: Duration,
    tries: u32,
) -> Result<(), NotifyError> {
    let fail = |reason: String| NotifyError::Target {
        zone: zone.to_string(),
        target,
        reason,
    };
    let request = message(zone, soa);
    let mut last = String::from("not sent");
    for _ in 0..tries.max(1) {
        match exchange::udp(target, &request, timeout).await {
            Ok(response) if response.metadata.response_code == ResponseCode::NoError => {
                return Ok(())
            }
            Ok(response) => {
                return Err(fail(format!(
                    "answered {} (is it configured as a secondary of this zone, allowing NOTIFY from here?)",
                    response.metadata.response_code
                )))
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(fail(format!(
        "{last} after {} tries of {} ms",
        tries.max(1),
        timeout.as_millis()
    )))
}

/// NOTIFY `targets` about `zone` concurrently; one error per target that
/// did not acknowledge.
pub async fn notify_all(
    zone: &Name,
    soa: Option<&Record>,
    targets: &[SocketAddr],
) -> Vec<NotifyError> {
    let mut set = tokio::task::JoinSet::new();
    for &target in targets {
        let (zone, soa) = (zone.clone(), soa.cloned());
        set.spawn(async move { notify_one(&zone, soa.as_ref(), target, TIMEOUT, TRIES).await });
    }
    let mut errors = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(NotifyError::Target {
                zone: zone.to_string(),
                target: SocketAddr::from(([0, 0, 0, 0], 0)),
                reason: e.to_string(),
            }),
        }
    }
    errors
}

/// The SOA of a published zone, for the answer section of a NOTIFY.
pub fn published_soa(config: &Config, zone: &str) -> Result<Record, NotifyError> {
    let name = Name::from_ascii(zone).map_err(|_| NotifyError::Name(zone.to_string()))?;
    let file = config.published_path(zone);
    let zone_err = |source| NotifyError::Zone {
        zone: zone.to_string(),
        source: Box::new(source),
    };
    let records = serve::read_zone(&file, zone).map_err(zone_err)?;
    records
        .get(&RrKey::new(name.into(), RecordType::SOA))
        .and_then(|set| set.records_without_rrsigs().next().cloned())
        .filter(|r| matches!(r.data, RData::SOA(_)))
        .ok_or_else(|| {
            zone_err(serve::ServeError::Load {
                file,
                zone: zone.to_string(),
                message: "no SOA record at the apex".into(),
            })
        })
}

/// Blocking: NOTIFY `targets` (default: `[build] notify`) that `zone`
/// changed, with its published SOA; a host name is resolved now, and each
/// of its addresses is notified. One error per target that did not
/// acknowledge or whose name did not resolve; an error reading the zone
/// stops before anything is sent.
pub fn notify_zone(
    config: &Config,
    zone: &str,
    targets: &[Server],
) -> Result<Vec<NotifyError>, NotifyError> {
    let targets = if targets.is_empty() {
        &config.build.notify[..]
    } else {
        targets
    };
    let soa = published_soa(config, zone)?;
    let mut failed = Vec::new();
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for t in targets {
        match t.resolve() {
            Ok(found) if !found.is_empty() => addrs.extend(found),
            Ok(_) => failed.push(resolve_error(zone, t, "no address".into())),
            Err(e) => failed.push(resolve_error(zone, t, e.to_string())),
        }
    }
    addrs.sort();
    addrs.dedup();
    let name = soa.name.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(NotifyError::Runtime)?;
    failed.extend(runtime.block_on(notify_all(&name, Some(&soa), &addrs)));
    Ok(failed)
}

fn resolve_error(zone: &str, server: &Server, reason: String) -> NotifyError {
    NotifyError::Resolve {
        zone: zone.to_string(),
        server: server.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_sets_aa_and_asks_for_the_soa() {
        let zone = Name::from_ascii("example.test.").unwrap();
        let m = message(&zone, None);
        assert_eq!(m.metadata.op_code, OpCode::Notify);
        assert!(m.metadata.authoritative);
        assert!(!m.metadata.recursion_desired);
        assert_eq!(m.queries.len(), 1);
        assert_eq!(m.queries[0].query_type(), RecordType::SOA);
        // and it encodes
        let bytes = m.to_vec().unwrap();
        let back = Message::from_vec(&bytes).unwrap();
        assert!(back.metadata.authoritative);
    }
}
