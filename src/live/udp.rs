//! The responder's UDP path: one thread per socket (the sockets share the
//! port through SO_REUSEPORT, one per core), each answering a question it
//! has answered before from its own cache of encoded answers, and every
//! other datagram through the same request handler TCP uses.
//!
//! Why not hickory-server's UDP loop: it reads each socket from one task,
//! spawns a task per datagram, parses the whole message and encodes the
//! answer afresh, which held the responder below half of NSD's rate under
//! dnsperf. A DNS answer is a function of the question's bytes (RFC 1035
//! §4.1: the ID is only copied back) up to the case of the name (RFC 4343:
//! names compare without regard to case), so the cache key is the datagram
//! without its ID, with the question's name in lower case: same flags, same
//! EDNS options (a client cookie, RFC 7873, is part of the key: a resolver
//! keeps its cookie per server, so its repeated questions still hit;
//! hickory answers no cookie, rotates no RRset), any spelling. Resolvers
//! that randomise the case of each question (0x20, as Unbound's
//! `use-caps-for-id`) check that their spelling comes back, so a cached
//! answer gets the asker's question bytes copied over its own, as NSD
//! does; names in the answer compressed to point into the question follow
//! that spelling, which is the same name. The cache is dropped whenever
//! the responder swaps in a new catalog (the `generation` counter), so a
//! reload is answered at once. What depends on more than the question is
//! never cached: zone transfers (allowed by source address), NOTIFY (it
//! triggers a reload), anything signed (TSIG, SIG(0)), anything but a plain
//! one-question QUERY, and SERVFAIL.
//!
//! Every answer, from the cache or not, passes the response rate limit
//! (`rrl.rs`) of its socket before it is sent, and what the path refuses or
//! drops is counted in the responder's [`Tally`], never logged per packet.
//! It owns no DNS logic: the answers are the handler's. Nothing from the
//! network may panic here.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::proto::op::{Header, MessageType, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::{Record, RecordType};
use hickory_server::proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder,
};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::live::rrl::{Rrl, Verdict};
use crate::live::tally::{Event, Tally};

/// How long a thread waits for a datagram before it looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// Bytes of questions and answers one thread keeps; when full it starts
/// over (a flood of distinct questions, or of big answers asked with a big
/// EDNS buffer, costs the cache, never memory).
const CACHE_BYTES: usize = 8 << 20;

/// Questions longer than this are answered but not cached: real queries
/// are a few dozen bytes, EDNS options included.
const CACHE_QUERY_BYTES: usize = 512;

/// The largest datagram read (RFC 6891 §6.2.5 allows payloads up to 64 KiB).
const DATAGRAM: usize = 65_535;

/// The running UDP threads of one responder.
pub(crate) struct UdpPath {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl UdpPath {
    /// Answer on every socket, each from a thread of its own, with
    /// `handler` for what is not cached and the socket's response rate
    /// limit, if any. `generation` changes whenever the handler's answers
    /// may have; `runtime` runs the handler; `tally` counts what is refused.
    pub(crate) fn start<H: RequestHandler>(
        sockets: Vec<(UdpSocket, Option<Arc<Rrl>>)>,
        handler: Arc<H>,
        generation: Arc<AtomicU64>,
        runtime: tokio::runtime::Handle,
        tally: Arc<Tally>,
    ) -> std::io::Result<UdpPath> {
        crate::live::tally::quiet_packet_panics();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(sockets.len());
        for (n, (socket, rrl)) in sockets.into_iter().enumerate() {
            socket.set_nonblocking(false)?;
            socket.set_read_timeout(Some(STOP_CHECK))?;
            let answerer = Answerer {
                socket,
                handler: handler.clone(),
                generation: generation.clone(),
                runtime: runtime.clone(),
                stop: stop.clone(),
                cache: Cache::default(),
                key: Vec::with_capacity(CACHE_QUERY_BYTES),
                rrl,
                tally: tally.clone(),
            };
            threads.push(
                std::thread::Builder::new()
                    .name(format!("udp-{n}"))
                    .spawn(move || answerer.run())?,
            );
        }
        Ok(UdpPath { stop, threads })
    }

    /// Stop every thread and wait for them (at most [`STOP_CHECK`]).
    pub(crate) fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for UdpPath {
    /// A responder dropped without [`UdpPath::stop`] (its future cancelled)
    /// still stops answering.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Encoded answers by question, valid for one generation of the catalog.
#[derive(Default)]
struct Cache {
    generation: u64,
    /// The query without its two ID bytes, its question's name in lower
    /// case ([`cache_key`]) → the whole answer to the first asker.
    answers: HashMap<Box<[u8]>, Box<[u8]>>,
    /// Bytes of keys and answers held.
    bytes: usize,
}

impl Cache {
    fn insert(&mut self, key: &[u8], answer: Vec<u8>) {
        let size = key.len() + answer.len();
        if self.bytes + size > CACHE_BYTES {
            self.clear();
        }
        self.bytes += size;
        self.answers.insert(key.into(), answer.into());
    }

    fn clear(&mut self) {
        self.answers.clear();
        self.bytes = 0;
    }
}

struct Answerer<H> {
    socket: UdpSocket,
    handler: Arc<H>,
    generation: Arc<AtomicU64>,
    runtime: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
    cache: Cache,
    /// The cache key of the datagram at hand (kept to reuse its memory).
    key: Vec<u8>,
    rrl: Option<Arc<Rrl>>,
    tally: Arc<Tally>,
}

impl<H: RequestHandler> Answerer<H> {
    fn run(mut self) {
        let mut buf = vec![0u8; DATAGRAM];
        let mut out = Vec::with_capacity(512);
        while !self.stop.load(Ordering::Acquire) {
            let (len, src) = match self.socket.recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ICMP errors surface here (ECONNREFUSED from an earlier
                    // send): not the socket's end.
                    log::debug!("UDP receive: {e}");
                    continue;
                }
            };
            let Some(query) = buf.get(..len) else {
                continue;
            };
            // A panic in the DNS library on some datagram must not end the
            // thread: its socket would go on taking a share of the queries
            // and answer none of them.
            let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                crate::live::tally::quietly(|| self.answer(query, src, &mut out))
            }));
            match answered {
                Ok(true) => self.send(&mut out, src),
                Ok(false) => {}
                Err(_) => {
                    let message = crate::live::tally::last_panic();
                    self.tally.note(Event::Panic, || {
                        format!(
                            "a datagram from {} made the responder panic ({message}); it is dropped",
                            src.ip()
                        )
                    });
                    self.cache.clear();
                }
            }
        }
    }

    /// Send `out` to `src` as the response rate limit allows: whole,
    /// truncated, or not at all.
    fn send(&self, out: &mut Vec<u8>, src: SocketAddr) {
        if let Some(rrl) = &self.rrl {
            match rrl.check(src.ip()) {
                Verdict::Send => {}
                Verdict::Slip => {
                    self.tally.note(Event::RateSlipped, || {
                        format!(
                            "answers to {} sent truncated (TC) over the rate limit ({})",
                            rrl.describe(src.ip()),
                            rrl.limit()
                        )
                    });
                    truncate(out);
                }
                Verdict::Drop => {
                    self.tally.note(Event::RateDropped, || {
                        format!(
                            "answers to {} dropped over the rate limit ({})",
                            rrl.describe(src.ip()),
                            rrl.limit()
                        )
                    });
                    return;
                }
            }
        }
        if let Err(e) = self.socket.send_to(out, src) {
            log::debug!("cannot answer {src}: {e}");
        }
    }

    /// Put the answer to `query` from `src` in `out`; false when the
    /// datagram gets no answer at all.
    fn answer(&mut self, query: &[u8], src: SocketAddr, out: &mut Vec<u8>) -> bool {
        // Nothing can be sent back to port 0 or to an unspecified or
        // broadcast address (forged sources); shorter than a header is not
        // DNS; a datagram with QR set is a response, and answering it would
        // let anyone bounce traffic off us.
        let unanswerable = match src.ip() {
            IpAddr::V4(ip) => ip.is_unspecified() || ip.is_broadcast(),
            IpAddr::V6(ip) => ip.is_unspecified(),
        };
        if unanswerable || src.port() == 0 {
            return false;
        }
        if query.len() < 12 || query[2] & 0x80 != 0 {
            self.tally.note(Event::Malformed, || {
                format!(
                    "a datagram from {} that is no DNS query ignored ({} octets{})",
                    src.ip(),
                    query.len(),
                    if query.len() < 12 { "" } else { ", QR set" }
                )
            });
            return false;
        }
        let generation = self.generation.load(Ordering::Acquire);
        if self.cache.generation != generation {
            self.cache.clear();
            self.cache.generation = generation;
        }
        let name_end = match query.len() <= CACHE_QUERY_BYTES {
            true => cache_key(query, &mut self.key),
            false => None,
        };
        if let Some(end) = name_end {
            if let Some(answer) = self.cache.answers.get(self.key.as_slice()) {
                out.clear();
                out.extend_from_slice(answer);
                // The asker's ID and spelling; the cached answer's question
                // is the same name (checked when it was cached).
                if let (Some(to), Some(from)) = (out.get_mut(..2), query.get(..2)) {
                    to.copy_from_slice(from);
                }
                if let (Some(to), Some(from)) = (out.get_mut(12..end), query.get(12..end)) {
                    to.copy_from_slice(from);
                }
                owners_as_asked(out);
                return true;
            }
        }
        let Some((answer, cacheable)) = self.ask_handler(query, src) else {
            return false;
        };
        out.clear();
        out.extend_from_slice(&answer);
        owners_as_asked(out);
        if let Some(end) = name_end.filter(|_| cacheable) {
            // Only an answer that echoes the question where the query has
            // it can take another asker's spelling.
            let echoed = answer.get(4..6) == Some(&[0, 1])
                && answer
                    .get(12..end)
                    .zip(query.get(12..end))
                    .is_some_and(|(a, q)| a.eq_ignore_ascii_case(q));
            if echoed {
                self.cache.insert(&self.key, answer);
            }
        }
        true
    }

    /// The handler's answer, and whether the same bytes would always get it.
    fn ask_handler(&self, query: &[u8], src: SocketAddr) -> Option<(Vec<u8>, bool)> {
        let request = match Request::from_bytes(query.to_vec(), src, Protocol::Udp) {
            Ok(request) => request,
            Err(_) => {
                self.tally.note(Event::Malformed, || {
                    format!("malformed query from {} answered FORMERR", src.ip())
                });
                return format_error(query).map(|a| (a, false));
            }
        };
        if request.metadata.message_type == MessageType::Response {
            return None;
        }
        let capture = Capture::default();
        self.runtime.block_on(
            self.handler
                .handle_request::<Capture, TokioTime>(&request, capture.clone()),
        );
        let (rcode, answer) = capture.take()?;
        let queries = request.queries.queries();
        let cacheable = request.metadata.op_code == OpCode::Query
            && request.signature.is_none()
            && queries.len() == 1
            && !queries
                .iter()
                .any(|q| matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR))
            && rcode != ResponseCode::ServFail;
        Some((answer, cacheable))
    }
}

/// Where the name of the first question ends (the offset after its root
/// label), if the message has exactly one question whose name is written
/// out in labels within the message.
fn question_name_end(message: &[u8]) -> Option<usize> {
    if message.get(4..6) != Some(&[0, 1]) {
        return None;
    }
    let mut at = 12;
    loop {
        match usize::from(*message.get(at)?) {
            0 => return Some(at + 1),
            // A compression pointer or a reserved label type: no question
            // of a query has one.
            len if len > 63 => return None,
            len => at += 1 + len,
        }
    }
}

/// Write every owner name of the answer and authority sections that is
/// the question's name (in another case: the zone's) in the question's
/// spelling, as NSD does (it points back at the question): a resolver
/// that randomises case (0x20) sees its own spelling throughout. Owners
/// given as a pointer, or that are other names, are left as they are; a
/// message that does not walk cleanly is left alone.
fn owners_as_asked(message: &mut [u8]) {
    let Some(end) = question_name_end(message) else {
        return;
    };
    let count = |at: usize| {
        message
            .get(at..at + 2)
            .map_or(0, |c| usize::from(u16::from_be_bytes([c[0], c[1]])))
    };
    let records = count(6) + count(8);
    let mut at = end + 4;
    for _ in 0..records {
        // The owner: labels, ended by a zero octet or a pointer.
        let start = at;
        let pointer = loop {
            match message.get(at).copied() {
                Some(0) => {
                    at += 1;
                    break false;
                }
                Some(len) if len & 0xc0 == 0xc0 => {
                    at += 2;
                    break true;
                }
                Some(len) if len <= 63 => at += 1 + usize::from(len),
                _ => return,
            }
        };
        if !pointer && at - start == end - 12 {
            let (head, tail) = message.split_at_mut(start);
            if let (Some(asked), Some(owner)) = (head.get(12..end), tail.get_mut(..end - 12)) {
                if owner.eq_ignore_ascii_case(asked) {
                    owner.copy_from_slice(asked);
                }
            }
        }
        // Type, class, TTL, then the data's length and the data.
        let Some(len) = message.get(at + 8..at + 10) else {
            return;
        };
        at += 10 + usize::from(u16::from_be_bytes([len[0], len[1]]));
    }
}

/// Put the cache key of `query` in `key` (the query without its ID, the
/// question's name in lower case); where the name ends in `query`. None:
/// not a query the cache can hold.
fn cache_key(query: &[u8], key: &mut Vec<u8>) -> Option<usize> {
    let end = question_name_end(query)?;
    key.clear();
    key.extend_from_slice(query.get(2..)?);
    // Length octets are at most 63, below b'A': lowering every octet of the
    // name only touches its letters.
    key.get_mut(10..end - 2)?.make_ascii_lowercase();
    Some(end)
}

/// Cut an answer down to a truncated one (RFC 1035 §4.1.1 TC, RFC 7766
/// §5: the client retries over TCP): its header and question only, TC set,
/// the record counts zero. What the response rate limit sends in place of
/// an answer: no bigger than the query.
fn truncate(answer: &mut Vec<u8>) {
    let end = question_name_end(answer).map_or(12, |name| name + 4);
    answer.truncate(end);
    if answer.len() < 12 {
        answer.clear();
        return;
    }
    answer[2] |= 0x02;
    let counts = if end == 12 { 4..12 } else { 6..12 };
    answer[counts].fill(0);
}

/// FORMERR for a datagram whose header reads but whose body does not
/// (RFC 1035 §4.1.1: "Format error - The name server was unable to
/// interpret the query"), the question left out as hickory-server does.
pub(crate) fn format_error(query: &[u8]) -> Option<Vec<u8>> {
    let header = Header::read(&mut BinDecoder::new(query)).ok()?;
    if header.metadata.message_type == MessageType::Response {
        return None;
    }
    let queries = Queries::read(&mut BinDecoder::new(&[]), 0).ok()?;
    let response = MessageResponseBuilder::new(&queries, None)
        .error_msg(&header.metadata, ResponseCode::FormErr);
    let mut bytes = Vec::with_capacity(12);
    response
        .destructive_emit(&mut BinEncoder::new(&mut bytes))
        .ok()?;
    Some(bytes)
}

/// An encoded answer and its response code.
pub(crate) type Encoded = (ResponseCode, Vec<u8>);

/// A response handler that keeps the encoded answer instead of sending it.
#[derive(Clone, Default)]
pub(crate) struct Capture(Arc<Mutex<Option<Encoded>>>);

impl Capture {
    pub(crate) fn take(&self) -> Option<Encoded> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let id = response.metadata().id;
        let op_code = response.metadata().op_code;
        // At most the requester's EDNS payload size, or 512 octets without
        // EDNS (RFC 1035 §4.2.1, RFC 6891 §6.2.3); what does not fit is left
        // out and TC set.
        let max = response
            .edns()
            .map_or(512, |edns| edns.max_payload().max(512));
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(max);
        let (info, bytes) = match response.destructive_emit(&mut encoder) {
            Ok(info) => (info, bytes),
            Err(e) => {
                log::warn!("cannot encode an answer: {e}");
                let mut metadata = Metadata::new(id, MessageType::Response, op_code);
                metadata.response_code = ResponseCode::ServFail;
                let header = Header {
                    metadata,
                    counts: Default::default(),
                };
                let mut bytes = Vec::with_capacity(12);
                header.emit(&mut BinEncoder::new(&mut bytes))?;
                (ResponseInfo::from(header), bytes)
            }
        };
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((info.response_code, bytes));
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_holds_at_most_its_byte_budget() {
        let mut cache = Cache::default();
        let answer = vec![0u8; 60_000];
        for i in 0u32..1000 {
            cache.insert(&i.to_be_bytes(), answer.clone());
            assert!(cache.bytes <= CACHE_BYTES, "{} bytes held", cache.bytes);
        }
        assert!(cache.answers.len() <= CACHE_BYTES / 60_000);
        assert_eq!(
            cache
                .answers
                .get(&999u32.to_be_bytes()[..])
                .map(|a| a.len()),
            Some(60_000)
        );
    }
}
