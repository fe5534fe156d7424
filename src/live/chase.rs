//! Following a CNAME out of one served zone into another, as an
//! authoritative server does for its own data (RFC 1034 §4.3.2 step 3a:
//! "change QNAME to the canonical name in the CNAME RR, and go back to
//! step 1"; BIND and NSD do so across the zones they serve). hickory's
//! in-memory zones follow a chain only inside their own zone, and a
//! challenge alias (`_acme-challenge.www.example.test. CNAME
//! _acme-challenge.www.example.net.`) always leaves it: without this, the
//! responder answers the CNAME alone and the asker needs a second query.
//!
//! [`Cnames`] holds every CNAME of the served zones, rebuilt at each swap;
//! [`answer`] composes the whole answer for a question whose name holds a
//! CNAME leading into another served zone, and leaves every other
//! question to the catalog.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use hickory_server::proto::op::{Edns, Metadata, ResponseCode};
use hickory_server::proto::rr::{LowerName, RData, Record, RecordType};
use hickory_server::server::{Request, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{Catalog, LookupOptions, MessageResponseBuilder};
use std::collections::HashMap;

/// How many CNAMEs one answer follows (hickory's own limit inside a zone).
const MAX_HOPS: usize = 8;

/// Every CNAME record of the served zones, by owner, with the zone it is in.
#[derive(Default)]
pub(crate) struct Cnames(HashMap<LowerName, (LowerName, Record)>);

impl Cnames {
    /// The CNAMEs of each served zone: `(zone origin, its CNAME records)`.
    pub(crate) fn new<'a>(zones: impl Iterator<Item = (&'a LowerName, &'a [Record])>) -> Cnames {
        let mut map = HashMap::new();
        for (zone, records) in zones {
            for r in records {
                map.insert(LowerName::from(&r.name), (zone.clone(), r.clone()));
            }
        }
        Cnames(map)
    }

    /// Whether `name` holds a CNAME whose target lies in another served
    /// zone than its own (the case the catalog answers with the CNAME only).
    fn leaves_its_zone(&self, catalog: &Catalog, name: &LowerName) -> Option<()> {
        let (zone, record) = self.0.get(name)?;
        let RData::CNAME(target) = &record.data else {
            return None;
        };
        let other = catalog.find(&LowerName::from(&target.0))?;
        (other.first()?.origin() != zone).then_some(())
    }
}

/// Answer `request` when its one question (not for CNAME, ANY or a
/// transfer) names a CNAME that leads into another served zone: the chain
/// of CNAMEs (up to [`MAX_HOPS`]) and what the last name holds, with the
/// rcode and SOA of that last name (RFC 6604 §3), AA set (we are the
/// authority for the name asked). `None`: the catalog answers.
pub(crate) async fn answer<R: ResponseHandler>(
    catalog: &Catalog,
    cnames: &Cnames,
    request: &Request,
    handle: &mut R,
) -> Option<ResponseInfo> {
    let [query] = request.queries.queries() else {
        return None;
    };
    let qtype = query.query_type();
    if matches!(
        qtype,
        RecordType::CNAME | RecordType::ANY | RecordType::AXFR | RecordType::IXFR
    ) {
        return None;
    }
    let mut name = query.name().clone();
    cnames.leaves_its_zone(catalog, &name)?;
    let mut answers: Vec<Record> = Vec::new();
    for _ in 0..MAX_HOPS {
        match cnames.0.get(&name) {
            Some((_, record)) => {
                let RData::CNAME(target) = &record.data else {
                    break;
                };
                answers.push(record.clone());
                name = LowerName::from(&target.0);
            }
            None => break,
        }
    }
    let mut rcode = ResponseCode::NoError;
    let mut authorities: Vec<Record> = Vec::new();
    // The chain may end outside our zones (the asker goes on from there)
    // or loop past MAX_HOPS (the asker sees where it stopped).
    if let Some(handler) = catalog.find(&name).and_then(|h| h.first()) {
        let options = LookupOptions::from_edns(request.edns.as_ref());
        match handler
            .lookup(&name, qtype, None, options)
            .await
            .map_result()
        {
            Some(Ok(found)) => answers.extend(found.iter().cloned()),
            Some(Err(e)) => {
                if e.is_nx_domain() {
                    rcode = ResponseCode::NXDomain;
                }
                let soa = handler
                    .lookup(handler.origin(), RecordType::SOA, None, options)
                    .await
                    .map_result();
                // RFC 2308 §3: the SOA of a negative answer lives no
                // longer than its MINIMUM field.
                if let Some(Ok(soa)) = soa {
                    authorities.extend(soa.iter().map(|r| {
                        let mut r = r.clone();
                        if let RData::SOA(data) = &r.data {
                            r.ttl = r.ttl.min(data.minimum);
                        }
                        r
                    }));
                }
            }
            None => {}
        }
    }
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = rcode;
    metadata.authoritative = true;
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    let edns = request.edns.as_ref().map(|_| &edns);
    let response = MessageResponseBuilder::new(&request.queries, edns).build(
        metadata,
        answers.iter(),
        authorities.iter(),
        std::iter::empty(),
        std::iter::empty(),
    );
    Some(crate::live::serve::sent(
        request,
        handle.send_response(response).await,
    ))
}
