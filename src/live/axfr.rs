//! Outgoing zone transfers (AXFR, RFC 5936) in as many messages as the zone
//! needs.
//!
//! hickory-server's catalog puts a whole transfer into one message, and a
//! DNS message over TCP holds at most 65,535 octets: a zone bigger than that
//! failed to transfer (the secondary read a cut-off message and gave up).
//! Here the zone's records go out in messages of at most [`MESSAGE_BUDGET`]
//! octets of uncompressed records each, the first starting and the last
//! ending with the SOA (§2.2), each with the request's ID; the question is
//! copied into the first only (§2.2.1 allows the others to leave it out, as
//! BIND does).
//!
//! Who may transfer is not decided here but in `serve.rs`'s `Front`, which
//! calls [`transfer`] for an allowed AXFR over TCP. Nothing from the network
//! may panic here.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, ResponseCode};
use hickory_server::proto::rr::Record;
use hickory_server::proto::serialize::binary::{BinDecoder, BinEncodable, BinEncoder};
use hickory_server::server::{Request, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{
    Catalog, LookupError, LookupOptions, MessageResponseBuilder, Queries,
};
use std::iter;

/// Octets of records (counted uncompressed) per message: room for the
/// header, the question and an OPT record below the 65,535 a TCP message
/// may hold. Compression only makes a message smaller.
pub(crate) const MESSAGE_BUDGET: usize = 60_000;

/// Send the zone `request` asks for, in as many messages as it takes.
pub(crate) async fn transfer<R: ResponseHandler, T: Time>(
    catalog: &Catalog,
    request: &Request,
    mut handle: R,
) -> ResponseInfo {
    let mut edns = Edns::new();
    let edns = request.edns.as_ref().map(|asked| {
        edns.set_max_payload(asked.max_payload().max(512));
        &edns
    });
    let Ok(info) = request.request_info() else {
        return refuse(request, ResponseCode::FormErr, edns, handle).await;
    };
    let Some(handler) = catalog
        .find(info.query.name())
        .and_then(|handlers| handlers.first())
    else {
        return refuse(request, ResponseCode::Refused, edns, handle).await;
    };
    // RFC 5936 §2.2.1: a name that is not a zone apex we serve is not
    // ours to transfer.
    if handler.origin() != info.query.name() {
        return refuse(request, ResponseCode::NotAuth, edns, handle).await;
    }
    let options = LookupOptions::from_edns(request.edns.as_ref());
    let zone = match handler
        .zone_transfer(request, options, T::current_time())
        .await
    {
        Some((Ok(zone), _)) => zone,
        Some((Err(LookupError::ResponseCode(code)), _)) => {
            return refuse(request, code, edns, handle).await
        }
        Some((Err(_), _)) | None => {
            return refuse(request, ResponseCode::ServFail, edns, handle).await
        }
    };
    let records: Vec<&Record> = zone.iter().collect();
    let no_question = Queries::read(&mut BinDecoder::new(&[]), 0);
    let mut sent = None;
    for (n, chunk) in chunks(&records, MESSAGE_BUDGET).into_iter().enumerate() {
        let queries = match (n, &no_question) {
            (0, _) => &request.queries,
            (_, Ok(empty)) => empty,
            (_, Err(_)) => &request.queries,
        };
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        let message = MessageResponseBuilder::new(queries, edns).build(
            metadata,
            chunk.iter().copied(),
            iter::empty(),
            iter::empty(),
            iter::empty(),
        );
        match handle.send_response(message).await {
            Ok(info) => sent = sent.or(Some(info)),
            // The connection is gone: the rest has nowhere to go.
            Err(_) => return failed(request),
        }
    }
    sent.unwrap_or_else(|| failed(request))
}

/// Split `records` into runs whose encoded size (uncompressed) stays within
/// `budget`; a record bigger than that goes alone.
fn chunks<'r, 'a>(records: &'r [&'a Record], budget: usize) -> Vec<&'r [&'a Record]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut used = 0;
    let mut scratch = Vec::with_capacity(512);
    for (i, record) in records.iter().enumerate() {
        scratch.clear();
        let size = match record.emit(&mut BinEncoder::new(&mut scratch)) {
            Ok(()) => scratch.len(),
            Err(_) => budget, // cannot be sized: alone (it fails there)
        };
        if used + size > budget && i > start {
            out.push(&records[start..i]);
            start = i;
            used = 0;
        }
        used += size;
    }
    if start < records.len() {
        out.push(&records[start..]);
    }
    out
}

/// A transfer that does not happen: `code`, no records.
async fn refuse<R: ResponseHandler>(
    request: &Request,
    code: ResponseCode,
    edns: Option<&Edns>,
    mut handle: R,
) -> ResponseInfo {
    let message =
        MessageResponseBuilder::new(&request.queries, edns).error_msg(&request.metadata, code);
    handle
        .send_response(message)
        .await
        .unwrap_or_else(|_| failed(request))
}

/// What the handler reports when nothing could be sent.
fn failed(request: &Request) -> ResponseInfo {
    let mut metadata = Metadata::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_server::proto::rr::rdata::TXT;
    use hickory_server::proto::rr::{Name, RData};

    #[test]
    fn chunks_stay_within_the_budget_and_keep_the_order() {
        let name = Name::from_ascii("h.example.test.").unwrap();
        let records: Vec<Record> = (0..1000)
            .map(|i| {
                Record::from_rdata(
                    name.clone(),
                    60,
                    RData::TXT(TXT::new(vec![format!("{i:0>100}")])),
                )
            })
            .collect();
        let refs: Vec<&Record> = records.iter().collect();
        let parts = chunks(&refs, 10_000);
        assert!(parts.len() > 10, "{} chunks", parts.len());
        let mut joined = Vec::new();
        for part in &parts {
            let mut bytes = Vec::new();
            let mut encoder = BinEncoder::new(&mut bytes);
            for r in *part {
                r.emit(&mut encoder).unwrap();
            }
            assert!(bytes.len() <= 10_000);
            joined.extend_from_slice(part);
        }
        assert_eq!(joined.len(), refs.len());
        assert!(joined.iter().zip(&refs).all(|(a, b)| std::ptr::eq(*a, *b)));
        assert_eq!(chunks(&refs[..1], 10).len(), 1);
        assert!(chunks(&[], 10).is_empty());
    }
}
