//! RFC 2136 dynamic updates signed with TSIG (RFC 8945), and TSIG-signed
//! queries, for the responder of `serve` and `run`.
//!
//! An update is one more drop writer: what it adds becomes fragments in the
//! drop directory its key names (`[[update_key]] drop`), written through
//! `hook::drop` under file names that say which key wrote them, and what it
//! deletes is removed from there, only among that key's fragments. The
//! builder then reads them like any hook's. Nothing is written unless the
//! whole update passes: the TSIG (key, MAC, time, not seen before), the
//! key's source addresses, the zone, and every record (`apply.rs`: TXT at a
//! challenge owner within the key's names, the same whitelist the builder
//! applies, the limits). NOERROR is only sent once the files are synced.
//!
//! `Front` (`serve.rs`) hands over every UPDATE and every signed message;
//! a signed query is answered by `Front` as usual and the answer signed on
//! its way out ([`Signing`]). Signed messages are never in the UDP answer
//! cache (`udp.rs` caches only unsigned queries). Refusals a peer can
//! cause without the key (and replays) are logged through the responder's
//! tally (`tally.rs`: a line when they start, then counts). Keys are read at start
//! and again on SIGHUP in `run` ([`Updates::load`]).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod apply;
pub mod keys;

use arc_swap::ArcSwap;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::proto::op::{Edns, Message, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::tsig::{
    make_tsig_record, signed_bitmessage_to_buf, TsigAlgorithm, TsigError, TSIG,
};
use hickory_server::proto::rr::{Name, Record, RecordType};
use hickory_server::proto::serialize::binary::{BinDecoder, BinEncoder};
use hickory_server::server::{Request, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::base::config::{Config, TsigAlg};
use crate::live::serve::Front;
use crate::live::tally::Event;
pub use keys::{Key, KeyError, Keys};

/// The largest fudge honoured (seconds): a client asking for more gets
/// this; it also bounds how long MACs are remembered against replays.
pub const MAX_FUDGE: u64 = 300;

/// How long an accepted update waits for its zone to be served anew
/// before it is answered anyway: below the 3 s after which nsupdate sends
/// the same message again over UDP (which would be refused as a replay).
const VISIBLE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The most MACs remembered at once: past it, signed updates are refused
/// until older MACs leave the window.
const MAX_SEEN: usize = 100_000;

/// Room left for the TSIG record when a signed answer is sized.
const TSIG_ROOM: usize = 200;

/// The keys and what they may do, swapped whole on reload.
#[derive(Default)]
pub struct Updates {
    state: ArcSwap<State>,
    /// MACs of accepted signed updates, and until when (unix seconds) they
    /// are remembered.
    seen: Mutex<HashMap<Vec<u8>, u64>>,
}

#[derive(Default)]
struct State {
    keys: Keys,
    config: Config,
}

impl Updates {
    /// Read the keys of `config` (secrets, drop directories) and use them
    /// from now on; on error the keys in use stay.
    pub fn load(&self, config: &Config) -> Result<usize, KeyError> {
        let keys = Keys::load(config)?;
        let n = keys.len();
        self.state.store(Arc::new(State {
            keys,
            config: config.clone(),
        }));
        Ok(n)
    }

    /// Keys made elsewhere (tests and the fuzz target).
    pub fn with_keys(config: &Config, keys: Keys) -> Updates {
        let updates = Updates::default();
        updates.state.store(Arc::new(State {
            keys,
            config: config.clone(),
        }));
        updates
    }

    /// Remember `mac` until `until`; false if it was seen before.
    fn first_sight(&self, mac: &[u8], now: u64, until: u64) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() > 10_000 {
            seen.retain(|_, t| *t >= now);
            // Signed updates beyond what can be remembered within the
            // window: refused (as a replay would be), never forgotten early.
            if seen.len() > MAX_SEEN {
                return false;
            }
        }
        match seen.get(mac) {
            Some(t) if *t >= now => false,
            _ => {
                seen.insert(mac.to_vec(), until);
                true
            }
        }
    }

    /// The TSIG of `request`, checked (RFC 8945 §5.2).
    fn verify(&self, request: &Request, now: u64) -> Tsig {
        let Some(sig) = request.signature.as_deref() else {
            return Tsig::Unsigned;
        };
        let key_name = sig.name.to_lowercase().to_ascii();
        let alg = TsigAlg::from_name(&sig.data.algorithm.to_name().to_ascii());
        let state = self.state.load();
        let key = match (state.keys.get(&fqdn(&key_name)), alg) {
            (Some(key), Some(alg)) if key.algorithm == alg => key,
            // §5.2.1: an unknown key or algorithm.
            _ => {
                return Tsig::BadKey {
                    name: sig.name.clone(),
                    algorithm: sig.data.algorithm.clone(),
                }
            }
        };
        let Ok((tbv, _)) = signed_bitmessage_to_buf(request.as_slice(), None, true) else {
            return Tsig::BadSig(key);
        };
        // §5.2.2: the MAC.
        if !key.verify(&tbv, &sig.data.mac) {
            return Tsig::BadSig(key);
        }
        let ctx = SignCtx {
            key,
            request_mac: sig.data.mac.clone(),
            oid: sig.data.oid,
            time: now,
            fudge: MAX_FUDGE as u16,
            error: None,
            other: Vec::new(),
        };
        // §5.2.3: the time.
        let fudge = u64::from(sig.data.fudge).min(MAX_FUDGE);
        if now.abs_diff(sig.data.time) > fudge {
            return Tsig::BadTime(SignCtx {
                time: sig.data.time,
                error: Some(TsigError::BadTime),
                other: now.to_be_bytes()[2..].to_vec(),
                ..ctx
            });
        }
        Tsig::Valid(ctx, sig.data.time + fudge)
    }
}

fn fqdn(s: &str) -> String {
    if s.ends_with('.') {
        s.to_string()
    } else {
        format!("{s}.")
    }
}

/// What the TSIG of a request came to.
enum Tsig {
    Unsigned,
    BadKey {
        name: Name,
        algorithm: TsigAlgorithm,
    },
    BadSig(Arc<Key>),
    BadTime(SignCtx),
    /// Good; remember the MAC until the time given.
    Valid(SignCtx, u64),
}

/// What signing an answer takes (RFC 8945 §5.3).
#[derive(Clone)]
struct SignCtx {
    key: Arc<Key>,
    request_mac: Vec<u8>,
    oid: u16,
    time: u64,
    fudge: u16,
    error: Option<TsigError>,
    other: Vec<u8>,
}

impl SignCtx {
    fn tsig(&self, mac: Vec<u8>) -> TSIG {
        TSIG::new(
            tsig_algorithm(self.key.algorithm),
            self.time,
            self.fudge,
            mac,
            self.oid,
            self.error,
            self.other.clone(),
        )
    }

    fn key_name(&self) -> Name {
        Name::from_ascii(&self.key.name).unwrap_or_else(|_| Name::root())
    }

    /// The TSIG record for `unsigned`, the encoded answer without it.
    fn sign(&self, unsigned: &[u8]) -> Option<Box<Record<TSIG>>> {
        let stub = self.tsig(Vec::new());
        let mut tbs = Vec::with_capacity(unsigned.len() + 200);
        let mut encoder = BinEncoder::new(&mut tbs);
        encoder.emit_u16(self.request_mac.len() as u16).ok()?;
        encoder.emit_vec(&self.request_mac).ok()?;
        encoder.emit_vec(unsigned).ok()?;
        stub.emit_tsig_for_mac(&mut encoder, &self.key_name())
            .ok()?;
        let mac = self.key.sign(&tbs);
        Some(Box::new(make_tsig_record(self.key_name(), self.tsig(mac))))
    }
}

fn tsig_algorithm(alg: TsigAlg) -> TsigAlgorithm {
    match alg {
        TsigAlg::HmacSha1 => TsigAlgorithm::HmacSha1,
        TsigAlg::HmacSha256 => TsigAlgorithm::HmacSha256,
        TsigAlg::HmacSha384 => TsigAlgorithm::HmacSha384,
        TsigAlg::HmacSha512 => TsigAlgorithm::HmacSha512,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Answer an UPDATE or a signed message (`Front` sends every one here).
pub(crate) async fn handle<R: ResponseHandler, T: Time>(
    front: &Front,
    updates: &Updates,
    request: &Request,
    handle: R,
) -> ResponseInfo {
    let now = unix_now();
    let tally = front.tally();
    let update = request.metadata.op_code == OpCode::Update;
    let src = request.src().ip();
    let (ctx, remember) = match updates.verify(request, now) {
        Tsig::Unsigned => {
            tally.note(Event::UpdateRefused, || {
                format!("update from {src} refused: not signed with TSIG")
            });
            return reply(request, ResponseCode::Refused, None, None, handle).await;
        }
        Tsig::BadKey { name, algorithm } => {
            tally.note(Event::UpdateRefused, || {
                format!(
                    "{} from {src} refused: unknown TSIG key or algorithm",
                    what(update)
                )
            });
            // §5.2.1: NOTAUTH, BADKEY, unsigned.
            let tsig = TSIG::new(
                algorithm,
                now,
                MAX_FUDGE as u16,
                Vec::new(),
                request.metadata.id,
                Some(TsigError::BadKey),
                Vec::new(),
            );
            let rec = Box::new(make_tsig_record(name, tsig));
            return reply(request, ResponseCode::NotAuth, None, Some(rec), handle).await;
        }
        Tsig::BadSig(key) => {
            tally.note(Event::UpdateRefused, || {
                format!(
                    "{} from {src} refused: bad TSIG MAC for key {}",
                    what(update),
                    key.name
                )
            });
            // §5.2.2: NOTAUTH, BADSIG, unsigned.
            let tsig = TSIG::new(
                tsig_algorithm(key.algorithm),
                now,
                MAX_FUDGE as u16,
                Vec::new(),
                request.metadata.id,
                Some(TsigError::BadSig),
                Vec::new(),
            );
            let name = Name::from_ascii(&key.name).unwrap_or_else(|_| Name::root());
            let rec = Box::new(make_tsig_record(name, tsig));
            return reply(request, ResponseCode::NotAuth, None, Some(rec), handle).await;
        }
        Tsig::BadTime(ctx) => {
            tally.note(Event::UpdateRefused, || {
                format!(
                    "{} from {src} refused: TSIG time outside the fudge (key {})",
                    what(update),
                    ctx.key.name
                )
            });
            // §5.2.3: NOTAUTH, BADTIME, signed.
            return reply(request, ResponseCode::NotAuth, Some(&ctx), None, handle).await;
        }
        Tsig::Valid(ctx, until) => (ctx, until),
    };
    if !update {
        let transfer = request
            .queries
            .queries()
            .iter()
            .any(|q| matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR));
        if transfer {
            // A signed transfer is a chain of signed messages: not offered.
            return reply(request, ResponseCode::Refused, Some(&ctx), None, handle).await;
        }
        let signing = Signing {
            inner: handle,
            ctx: Arc::new(ctx),
            question: Arc::from(request.queries.as_bytes()),
            count: request.queries.len(),
            max: match request.protocol() {
                Protocol::Udp => usize::from(request.max_payload()),
                _ => usize::from(u16::MAX),
            }
            .saturating_sub(TSIG_ROOM),
        };
        return front.answer::<Signing<R>, T>(request, signing).await;
    }
    if let Err((rcode, why)) = updates.admit(&ctx, remember, src, now) {
        tally.note(Event::UpdateRefused, || why);
        return reply(request, rcode, Some(&ctx), None, handle).await;
    }
    let state = updates.state.load_full();
    let served = front.served_zones();
    let message = UpdateMessage::of(request);
    let zone = message.zone();
    let serial = front.serial(&zone);
    let key = ctx.key.clone();
    let (rcode, changed) = tokio::task::spawn_blocking(move || {
        apply_logged(&state.config, &key, &served, &message, src)
    })
    .await
    .unwrap_or((ResponseCode::ServFail, false));
    if changed {
        // As a name server's update is visible once answered: wait (a
        // while) for the builder to publish the zone and the responder to
        // serve it; clients such as lego ask the CA to look right away.
        let until = tokio::time::Instant::now() + VISIBLE_WAIT;
        while front.serial(&zone) == serial && tokio::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    reply(request, rcode, Some(&ctx), None, handle).await
}

impl Updates {
    /// The checks between a good TSIG and the sections: not a replay
    /// (the MAC is remembered until `remember`), a source the key allows.
    fn admit(
        &self,
        ctx: &SignCtx,
        remember: u64,
        src: std::net::IpAddr,
        now: u64,
    ) -> Result<(), (ResponseCode, String)> {
        if !self.first_sight(&ctx.request_mac, now, remember) {
            return Err((
                ResponseCode::Refused,
                format!(
                    "update from {src} refused: a replay of a message already seen (key {})",
                    ctx.key.name
                ),
            ));
        }
        if let Some(allow) = &ctx.key.allow {
            if !allow.iter().any(|p| p.contains(src)) {
                return Err((
                    ResponseCode::Refused,
                    format!(
                        "update from {src} refused: key {} is not allowed from there ([[update_key]] allow)",
                        ctx.key.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// [`Updates::decide`] for a message as it came over UDP from `src`;
    /// None when it does not parse (the UDP path answers FORMERR then).
    pub fn decide_bytes(
        &self,
        raw: &[u8],
        src: std::net::SocketAddr,
        served: &[String],
        now: u64,
    ) -> Option<ResponseCode> {
        let request = Request::from_bytes(raw.to_vec(), src, Protocol::Udp).ok()?;
        Some(self.decide(&request, served, now))
    }

    /// What [`handle`] decides for an UPDATE, without answering or waiting
    /// for the zone to be served: TSIG, replay, source, sections, writes.
    /// The RCODE of the answer. (The fuzz target's way in.)
    pub fn decide(&self, request: &Request, served: &[String], now: u64) -> ResponseCode {
        let src = request.src().ip();
        let (ctx, remember) = match self.verify(request, now) {
            Tsig::Unsigned => return ResponseCode::Refused,
            Tsig::BadKey { .. } | Tsig::BadSig(_) | Tsig::BadTime(_) => {
                return ResponseCode::NotAuth
            }
            Tsig::Valid(ctx, remember) => (ctx, remember),
        };
        if request.metadata.op_code != OpCode::Update {
            return ResponseCode::NoError;
        }
        if let Err((rcode, why)) = self.admit(&ctx, remember, src, now) {
            log::warn!("{why}");
            return rcode;
        }
        let state = self.state.load_full();
        let message = UpdateMessage::of(request);
        apply_logged(&state.config, &ctx.key, served, &message, src).0
    }
}

/// Apply `message` for `key` and log the outcome: the RCODE, and whether a
/// file changed.
fn apply_logged(
    config: &Config,
    key: &Key,
    served: &[String],
    message: &UpdateMessage,
    src: std::net::IpAddr,
) -> (ResponseCode, bool) {
    let served = |z: &str| served.iter().any(|s| s == z);
    match apply::apply(config, key, &served, message, SystemTime::now()) {
        Ok(done) => {
            log::info!("update by key {} from {src}: {done}", key.name);
            (ResponseCode::NoError, done.changed())
        }
        Err(refused) => {
            log::warn!(
                "update by key {} from {src} refused ({:?}): {}; nothing written",
                key.name,
                refused.rcode,
                refused.reason
            );
            (refused.rcode, false)
        }
    }
}

fn what(update: bool) -> &'static str {
    if update {
        "update"
    } else {
        "signed query"
    }
}

/// The sections of an UPDATE (RFC 2136 §2), owned for the writer's thread.
#[derive(Debug, Clone)]
pub struct UpdateMessage {
    /// The zone section: (name, type, class) of each entry.
    pub zones: Vec<(Name, RecordType, hickory_server::proto::rr::DNSClass)>,
    pub prerequisites: Vec<Record>,
    pub updates: Vec<Record>,
}

impl UpdateMessage {
    pub fn of(request: &Request) -> UpdateMessage {
        UpdateMessage {
            zones: request
                .queries
                .queries()
                .iter()
                .map(|q| {
                    (
                        Name::from(q.name().clone()),
                        q.query_type(),
                        q.query_class(),
                    )
                })
                .collect(),
            prerequisites: request.answers.clone(),
            updates: request.authorities.clone(),
        }
    }

    /// The zone section's (first) name, lowercase and absolute.
    pub fn zone(&self) -> String {
        self.zones
            .first()
            .map(|(n, _, _)| fqdn(&n.to_lowercase().to_ascii()))
            .unwrap_or_default()
    }

    /// The sections of an encoded message (the fuzz target).
    pub fn from_message(m: &Message) -> UpdateMessage {
        UpdateMessage {
            zones: m
                .queries
                .iter()
                .map(|q| (q.name().clone(), q.query_type(), q.query_class()))
                .collect(),
            prerequisites: m.answers.clone(),
            updates: m.authorities.clone(),
        }
    }
}

/// An answer with no records: the zone (or question) section copied,
/// `rcode`, signed with `ctx` or carrying the unsigned TSIG `tsig`.
async fn reply<R: ResponseHandler>(
    request: &Request,
    rcode: ResponseCode,
    ctx: Option<&SignCtx>,
    tsig: Option<Box<Record<TSIG>>>,
    mut handle: R,
) -> ResponseInfo {
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    let edns = request.edns.as_ref().map(|_| &edns);
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = rcode;
    metadata.authoritative = rcode == ResponseCode::NoError;
    let build = || MessageResponseBuilder::new(&request.queries, edns).build_no_records(metadata);
    let mut response = build();
    if let Some(ctx) = ctx {
        let mut unsigned = Vec::with_capacity(512);
        if build()
            .destructive_emit(&mut BinEncoder::new(&mut unsigned))
            .is_err()
        {
            return crate::live::serve::failed(request);
        }
        match ctx.sign(&unsigned) {
            Some(sig) => response.set_signature(sig),
            None => return crate::live::serve::failed(request),
        }
    } else if let Some(tsig) = tsig {
        response.set_signature(tsig);
    }
    crate::live::serve::sent(request, handle.send_response(response).await)
}

/// A response handler that signs what goes through it (the answers to
/// signed queries): the answer is encoded, read back, and sent again with
/// its TSIG record, the MAC taken over exactly the bytes sent before it.
#[derive(Clone)]
pub(crate) struct Signing<R> {
    inner: R,
    ctx: Arc<SignCtx>,
    /// The question section as the request had it.
    question: Arc<[u8]>,
    count: usize,
    /// The most octets the answer may take before its TSIG.
    max: usize,
}

#[async_trait::async_trait]
impl<R: ResponseHandler> ResponseHandler for Signing<R> {
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
        let mut first = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut first);
        encoder.set_max_size(u16::try_from(self.max).unwrap_or(u16::MAX));
        response
            .destructive_emit(&mut encoder)
            .map_err(|e| NetError::from(e.to_string()))?;
        let message = Message::from_vec(&first).map_err(|e| NetError::from(e.to_string()))?;
        let queries = Queries::read(&mut BinDecoder::new(&self.question), self.count)
            .map_err(|e| NetError::from(e.to_string()))?;
        let edns = message.edns.clone();
        let build = || {
            MessageResponseBuilder::new(&queries, edns.as_ref()).build(
                message.metadata,
                message.answers.iter(),
                message.authorities.iter(),
                std::iter::empty(),
                message.additionals.iter(),
            )
        };
        let mut unsigned = Vec::with_capacity(first.len());
        build()
            .destructive_emit(&mut BinEncoder::new(&mut unsigned))
            .map_err(|e| NetError::from(e.to_string()))?;
        let sig = self
            .ctx
            .sign(&unsigned)
            .ok_or_else(|| NetError::from("cannot sign the answer".to_string()))?;
        let mut response = build();
        response.set_signature(sig);
        self.inner.send_response(response).await
    }
}
