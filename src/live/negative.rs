//! Negative answers (NXDOMAIN and NODATA) from an index of each served
//! zone's names, without asking hickory.
//!
//! hickory-server's in-memory zone tells NODATA from NXDOMAIN by scanning
//! every record key of the zone (`keys().any(..)`): in a zone of 100,000
//! records an NXDOMAIN costs milliseconds of CPU, and random names defeat
//! the UDP path's answer cache, so any peer could keep a core busy with a
//! few dozen queries a second. [`Names`] is the index that answers the
//! question in a few hash lookups: every owner name of the zone with the
//! types it holds, and every name between an owner and the apex (an empty
//! non-terminal, RFC 4592 §2.2.2) with a count of the owners below it, so that a
//! name whose last record goes is removed with its empty parents. It is
//! built with each loaded version (`serve.rs`, `build_zone`) and changed
//! with the records by a challenge delta (`delta.rs`), under its own lock,
//! so a negative answer is always one version's (its rcode and its SOA).
//!
//! [`answer`] takes only what it can answer exactly as hickory's catalog
//! would (`Catalog::handle_request`, `build_authoritative_response`: AA,
//! the question as asked, the zone's SOA RRset as stored in authority,
//! the response EDNS of the catalog): one plain question of class IN, not
//! a transfer or ANY, unsigned, EDNS version 0, at a name with no RRset of
//! the asked type, no CNAME and no ANAME. Every shape where hickory does
//! more than look at the name goes to hickory: a delegation (NS or SOA
//! below the apex) or DNAME on the way down from the apex, and any
//! wildcard that hickory could match (it tries `*.` under every ancestor
//! of the name, RFC 4592 or not). A zone the index does not model (an
//! owner outside it, DNSSEC records) is left to hickory entirely.
//! Nothing from the network may panic here.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use crate::live::serve::Slot;
use hickory_server::proto::op::{Edns, MessageType, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::{DNSClass, Name, Record, RecordSet, RecordType, RrKey};
use hickory_server::server::{Request, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponseBuilder, ZoneHandler};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

/// One served version's names, as a delta leaves them.
pub(crate) struct Names {
    /// The apex in wire form, lower case.
    apex: Box<[u8]>,
    /// Owners and empty non-terminals, in wire form, lower case.
    nodes: HashMap<Box<[u8]>, Node>,
    /// The apex's SOA RRset as stored: the authority of a negative answer
    /// (shared, so an answer takes it without copying records).
    soa: Arc<[Record]>,
    /// False when the zone has a shape the index does not model.
    usable: bool,
}

#[derive(Default)]
struct Node {
    /// The types of the RRsets at this name; empty for an empty non-terminal.
    types: Vec<RecordType>,
    /// Owners strictly below this name.
    below: u32,
    /// Children named `*` that hold records (a wildcard hickory may use).
    wild: u32,
}

/// A shared, lockable index: the served version and the front share it.
pub(crate) type Shared = Arc<RwLock<Names>>;

impl Names {
    /// The index of the records `origin`'s zone is loaded with.
    pub(crate) fn new(origin: &Name, records: &BTreeMap<RrKey, RecordSet>) -> Names {
        let mut names = Names {
            apex: wire(origin).into(),
            nodes: HashMap::with_capacity(records.len()),
            soa: Arc::new([]),
            usable: true,
        };
        for (key, set) in records {
            let dnssec = matches!(
                key.record_type,
                RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3
            ) || !set.rrsigs().is_empty();
            if dnssec || !origin.zone_of(key.name()) {
                names.usable = false;
            }
            names.add(&wire(key.name()), key.record_type);
        }
        if let Some(set) = records.get(&RrKey::new(origin.into(), RecordType::SOA)) {
            names.set_soa(set);
        }
        names
    }

    /// A shared index of `records`.
    pub(crate) fn shared(origin: &Name, records: &BTreeMap<RrKey, RecordSet>) -> Shared {
        Arc::new(RwLock::new(Names::new(origin, records)))
    }

    /// The SOA of the negative answers from now on.
    pub(crate) fn set_soa(&mut self, set: &RecordSet) {
        self.soa = set.records_without_rrsigs().cloned().collect();
    }

    /// `owner` now has (`present`) or no longer has an RRset of `rtype`.
    pub(crate) fn set(&mut self, owner: &Name, rtype: RecordType, present: bool) {
        if !self.in_zone(&wire(owner)) {
            // The delta refuses such owners; keep the index honest anyway.
            self.usable = false;
            return;
        }
        match present {
            true => self.add(&wire(owner), rtype),
            false => self.remove(&wire(owner), rtype),
        }
    }

    fn in_zone(&self, owner: &[u8]) -> bool {
        owner == &*self.apex || parents(owner, self.apex.len()).any(|p| p == &*self.apex)
    }

    fn add(&mut self, owner: &[u8], rtype: RecordType) {
        let node = self.nodes.entry(owner.into()).or_default();
        let first = node.types.is_empty();
        if !node.types.contains(&rtype) {
            node.types.push(rtype);
        }
        if !first {
            return;
        }
        let apex = self.apex.len();
        let wildcard = owner.starts_with(b"\x01*");
        for (n, parent) in parents(owner, apex).enumerate() {
            let node = self.nodes.entry(parent.into()).or_default();
            node.below += 1;
            if n == 0 && wildcard {
                node.wild += 1;
            }
        }
    }

    fn remove(&mut self, owner: &[u8], rtype: RecordType) {
        let Some(node) = self.nodes.get_mut(owner) else {
            return;
        };
        let had = node.types.len();
        node.types.retain(|t| *t != rtype);
        if had == 0 || !node.types.is_empty() {
            return;
        }
        if node.below == 0 {
            self.nodes.remove(owner);
        }
        let apex = self.apex.len();
        let wildcard = owner.starts_with(b"\x01*");
        for (n, parent) in parents(owner, apex).enumerate() {
            let Some(node) = self.nodes.get_mut(parent) else {
                continue;
            };
            node.below = node.below.saturating_sub(1);
            if n == 0 && wildcard {
                node.wild = node.wild.saturating_sub(1);
            }
            if node.types.is_empty() && node.below == 0 && parent.len() > apex {
                self.nodes.remove(parent);
            }
        }
    }

    /// The rcode of the negative answer to `qtype` at `qname` (wire form,
    /// lower case, inside this zone), or None when hickory answers.
    fn decide(&self, qname: &[u8], qtype: RecordType) -> Option<ResponseCode> {
        if !self.usable || !self.in_zone(qname) {
            return None;
        }
        let rcode = match self.nodes.get(qname) {
            // A positive answer (or a CNAME, or an A/AAAA made from an
            // ANAME) is a map lookup in hickory.
            Some(node)
                if node
                    .types
                    .iter()
                    .any(|t| *t == qtype || matches!(t, RecordType::CNAME | RecordType::ANAME)) =>
            {
                return None
            }
            // An owner without that type, or an empty non-terminal.
            Some(_) => ResponseCode::NoError,
            None => ResponseCode::NXDomain,
        };
        let apex = self.apex.len();
        // hickory answers a name at or below a zone cut with the NS (a
        // referral) and knows nothing of DNAME: both its own.
        if qname.len() > apex && self.nodes.get(qname).is_some_and(|n| n.cut()) {
            return None;
        }
        for parent in parents(qname, apex) {
            let Some(node) = self.nodes.get(parent) else {
                continue;
            };
            let at_apex = parent.len() == apex;
            // `*.parent` for every ancestor: hickory's wildcard search.
            if node.wild > 0 || node.types.contains(&RecordType::DNAME) {
                return None;
            }
            if !at_apex && node.cut() {
                return None;
            }
        }
        Some(rcode)
    }
}

impl Node {
    /// A zone cut (NS or SOA below the apex) or a DNAME.
    fn cut(&self) -> bool {
        self.types
            .iter()
            .any(|t| matches!(t, RecordType::NS | RecordType::SOA | RecordType::DNAME))
    }
}

/// `name` in wire form (length-prefixed labels, the root's empty label
/// last), in lower case.
fn wire(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

/// The names above `name` (wire form), nearest first, down to those
/// `shortest` octets long.
fn parents(name: &[u8], shortest: usize) -> impl Iterator<Item = &[u8]> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let len = usize::from(*name.get(at)?);
        if len == 0 {
            return None;
        }
        at += 1 + len;
        let rest = name.get(at..)?;
        (rest.len() >= shortest).then_some(rest)
    })
}

/// The indexes of the served zones, by apex in wire form; swapped with the
/// catalog.
#[derive(Default)]
pub(crate) struct Zones(HashMap<Box<[u8]>, Shared>);

impl Zones {
    /// The index of each zone `slots` serve.
    pub(crate) fn new(slots: &HashMap<String, Slot>) -> Zones {
        Zones(
            slots
                .values()
                .filter_map(|s| s.served.as_ref())
                .map(|l| (wire(l.handler.origin()).into(), l.names.clone()))
                .collect(),
        )
    }

    /// The index of the longest served zone `qname` is in, as the catalog
    /// picks it.
    fn find(&self, qname: &[u8]) -> Option<&Shared> {
        self.0
            .get(qname)
            .or_else(|| parents(qname, 1).find_map(|p| self.0.get(p)))
    }
}

/// Answer `request` when it is a question [`Names`] answers negatively,
/// as hickory's catalog would; None: hickory answers.
pub(crate) async fn answer<R: ResponseHandler>(
    zones: &Zones,
    request: &Request,
    handle: &mut R,
) -> Option<ResponseInfo> {
    if request.metadata.message_type != MessageType::Query
        || request.metadata.op_code != OpCode::Query
        || request.signature.is_some()
    {
        return None;
    }
    let [query] = request.queries.queries() else {
        return None;
    };
    let qtype = query.query_type();
    if query.query_class() != DNSClass::IN
        || matches!(qtype, RecordType::AXFR | RecordType::IXFR | RecordType::ANY)
    {
        return None;
    }
    // The catalog's response EDNS; a version it does not speak gets its
    // BADVERS.
    let edns = match &request.edns {
        Some(asked) if asked.version() > 0 => return None,
        Some(asked) => {
            let mut edns = Edns::new();
            edns.set_max_payload(asked.max_payload().max(512));
            edns.set_version(0);
            Some(edns)
        }
        None => None,
    };
    let qname = wire(query.name());
    let (rcode, soa) = {
        let names = zones.find(&qname)?;
        let names = names.read().unwrap_or_else(|e| e.into_inner());
        (names.decide(&qname, qtype)?, names.soa.clone())
    };
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.authoritative = true;
    metadata.response_code = rcode;
    let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
        metadata,
        std::iter::empty(),
        soa.iter(),
        std::iter::empty(),
        std::iter::empty(),
    );
    Some(crate::live::serve::sent(
        request,
        handle.send_response(response).await,
    ))
}

/// A whole index as plain values ([`Names::snapshot`]).
#[cfg(test)]
pub(crate) type Snapshot = (BTreeMap<Vec<u8>, (Vec<u16>, u32, u32)>, Vec<String>);

#[cfg(test)]
impl Names {
    /// Every name with its sorted types, owners below and wildcards, and
    /// the SOA: two indexes of one version compare equal.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let nodes = self
            .nodes
            .iter()
            .map(|(k, n)| {
                let mut types: Vec<u16> = n.types.iter().map(|t| u16::from(*t)).collect();
                types.sort();
                (k.to_vec(), (types, n.below, n.wild))
            })
            .collect();
        (nodes, self.soa.iter().map(|r| r.to_string()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::config::Config;
    use crate::live::serve::Responder;
    use crate::live::udp::Capture;
    use hickory_server::net::runtime::TokioTime;
    use hickory_server::net::xfer::Protocol;
    use hickory_server::proto::op::{Message, Query};
    use hickory_server::server::RequestHandler;
    use hickory_server::zone_handler::{Catalog, ZoneHandler};

    const ZONE: &str = "$ORIGIN example.test.\n$TTL 60\n\
        @ IN SOA ns1 hostmaster 7 3600 600 86400 300\n\
        @ IN NS ns1\n@ IN TXT \"apex\"\n\
        ns1 IN A 127.0.0.1\n\
        a.b.c IN A 192.0.2.1\n\
        *.wild IN TXT \"wildcard\"\n\
        x.y.wild IN A 192.0.2.2\n\
        sub IN NS ns.sub\nns.sub IN A 192.0.2.3\n\
        www IN CNAME host\nhost IN A 192.0.2.4\n\
        _acme-challenge.x IN TXT \"challenge\"\n\
        alias IN ANAME host\n";

    const DEEP: &str = "$ORIGIN deep.example.test.\n$TTL 30\n\
        @ IN SOA ns1 hostmaster 9 3600 600 86400 20\n@ IN NS ns1\nns1 IN A 127.0.0.1\n";

    fn responder() -> (tempfile::TempDir, Responder) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zonedrop.toml");
        std::fs::write(
            &path,
            "[[zone]]\nname = \"example.test\"\n[[zone]]\nname = \"deep.example.test\"\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("unsigned")).unwrap();
        std::fs::write(dir.path().join("unsigned/example.test"), ZONE).unwrap();
        std::fs::write(dir.path().join("unsigned/deep.example.test"), DEEP).unwrap();
        let config = Config::load(&path).unwrap();
        let r = Responder::load(&config).unwrap();
        (dir, r)
    }

    /// hickory's catalog over the zones `r` serves, with no `Front`.
    fn catalog(r: &Responder) -> Catalog {
        let mut catalog = Catalog::new();
        for slot in r.inner.lock().values() {
            let handler: Arc<dyn ZoneHandler> = slot.served.as_ref().unwrap().handler.clone();
            catalog.upsert(handler.origin().clone(), vec![handler]);
        }
        catalog
    }

    struct Ask {
        name: &'static str,
        rtype: RecordType,
        class: DNSClass,
        edns: Option<(u16, u8, bool)>,
        flags: bool,
    }

    fn ask(name: &'static str, rtype: RecordType) -> Ask {
        Ask {
            name,
            rtype,
            class: DNSClass::IN,
            edns: None,
            flags: false,
        }
    }

    fn request(a: &Ask, id: u16) -> Request {
        let mut m = Message::query();
        m.metadata.id = id;
        m.metadata.recursion_desired = a.flags;
        m.metadata.checking_disabled = a.flags;
        let mut q = Query::query(Name::from_ascii(a.name).unwrap(), a.rtype);
        q.set_query_class(a.class);
        m.add_query(q);
        if let Some((payload, version, dnssec_ok)) = a.edns {
            let mut e = Edns::new();
            e.set_max_payload(payload);
            e.set_version(version);
            e.set_dnssec_ok(dnssec_ok);
            m.set_edns(e);
        }
        let src = "127.0.0.1:5353".parse().unwrap();
        Request::from_bytes(m.to_vec().unwrap(), src, Protocol::Udp).unwrap()
    }

    /// Every shape of question: answered here (Some(rcode)) or left to
    /// hickory (None); where answered here, byte for byte what hickory's
    /// catalog sends for it.
    #[test]
    fn negative_answers_are_hickorys_to_the_byte() {
        use RecordType::*;
        let (_dir, r) = responder();
        let catalog = catalog(&r);
        let zones = r.inner.names.load_full();
        let nx = Some(ResponseCode::NXDomain);
        let nodata = Some(ResponseCode::NoError);
        let mut cases = vec![
            (ask("nx.example.test.", A), nx),
            (ask("deeper.nx.example.test.", TXT), nx),
            (ask("example.test.", AAAA), nodata),
            (ask("example.test.", SOA), None),
            (ask("example.test.", NS), None),
            (ask("example.test.", TXT), None),
            (ask("ns1.example.test.", TXT), nodata),
            (ask("ns1.example.test.", A), None),
            // Empty non-terminals, and names below an owner.
            (ask("c.example.test.", A), nodata),
            (ask("b.c.example.test.", TXT), nodata),
            (ask("a.b.c.example.test.", AAAA), nodata),
            (ask("a.b.c.example.test.", A), None),
            (ask("z.a.b.c.example.test.", A), nx),
            (ask("x.example.test.", A), nodata),
            (ask("_acme-challenge.x.example.test.", A), nodata),
            (ask("_acme-challenge.x.example.test.", TXT), None),
            (ask("_ACME-Challenge.X.Example.TEST.", CAA), nodata),
            (ask("NX.Example.Test.", MX), nx),
            // Wildcards, delegations, CNAME, ANAME: hickory's.
            (ask("wild.example.test.", A), nodata),
            (ask("foo.wild.example.test.", TXT), None),
            (ask("foo.wild.example.test.", A), None),
            (ask("y.wild.example.test.", A), None),
            (ask("*.wild.example.test.", A), None),
            (ask("sub.example.test.", A), None),
            (ask("x.sub.example.test.", A), None),
            (ask("ns.sub.example.test.", A), None),
            (ask("www.example.test.", A), None),
            (ask("www.example.test.", TXT), None),
            (ask("alias.example.test.", A), None),
            (ask("alias.example.test.", TXT), None),
            (ask("host.example.test.", TXT), nodata),
            // The longest zone, and names outside every zone.
            (ask("nx.deep.example.test.", A), nx),
            (ask("deep.example.test.", TXT), nodata),
            (ask("example.org.", A), None),
            (ask("test.", A), None),
            // Transfers, ANY.
            (ask("nx.example.test.", ANY), None),
            (ask("example.test.", IXFR), None),
        ];
        let mut chaos = ask("nx.example.test.", A);
        chaos.class = DNSClass::CH;
        cases.push((chaos, None));
        for (edns, want) in [
            ((1232, 0, false), nx),
            ((4096, 0, true), nx),
            ((100, 0, false), nx),
            ((1232, 1, false), None),
        ] {
            let mut a = ask("nx.example.test.", TXT);
            a.edns = Some(edns);
            cases.push((a, want));
            let mut a = ask("ns1.example.test.", TXT);
            a.edns = Some(edns);
            a.flags = true;
            cases.push((a, want.map(|_| ResponseCode::NoError)));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for (n, (a, want)) in cases.iter().enumerate() {
            let req = request(a, 1000 + n as u16);
            let ours = Capture::default();
            let got = rt.block_on(answer(&zones, &req, &mut ours.clone()));
            assert_eq!(
                got.map(|info| info.response_code),
                *want,
                "{} {} {:?}",
                a.name,
                a.rtype,
                a.edns
            );
            let theirs = Capture::default();
            rt.block_on(catalog.handle_request::<Capture, TokioTime>(&req, theirs.clone()));
            let theirs = theirs.take().unwrap();
            if want.is_some() {
                let ours = ours.take().unwrap();
                assert_eq!(ours.1, theirs.1, "{} {} {:?}", a.name, a.rtype, a.edns);
                let m = Message::from_vec(&ours.1).unwrap();
                assert!(m.metadata.authoritative);
                assert_eq!(m.authorities.len(), 1);
                assert_eq!(m.authorities[0].record_type(), SOA);
            }
            // Through the front, the answer is the same either way (a
            // transfer is the front's to refuse).
            if a.rtype == IXFR {
                continue;
            }
            let front = Capture::default();
            rt.block_on(
                r.front()
                    .handle_request::<Capture, TokioTime>(&req, front.clone()),
            );
            assert_eq!(front.take().unwrap().1, theirs.1, "{} {}", a.name, a.rtype);
        }
    }

    #[test]
    fn the_index_forgets_a_name_with_its_empty_parents() {
        let origin = Name::from_ascii("example.test.").unwrap();
        let (_, records) = hickory_server::proto::serialize::txt::Parser::new(
            ZONE.to_string(),
            None,
            Some(origin.clone()),
        )
        .parse()
        .unwrap();
        let mut names = Names::new(&origin, &records);
        let before = names.snapshot();
        let owner = Name::from_ascii("_acme-challenge.deep.new.example.test.").unwrap();
        let q = wire(&owner);
        assert_eq!(
            names.decide(&q, RecordType::TXT),
            Some(ResponseCode::NXDomain)
        );
        names.set(&owner, RecordType::TXT, true);
        assert_eq!(names.decide(&q, RecordType::TXT), None);
        assert_eq!(
            names.decide(&wire(&owner.base_name()), RecordType::TXT),
            Some(ResponseCode::NoError)
        );
        names.set(&owner, RecordType::TXT, false);
        assert_eq!(names.snapshot(), before);
        for n in [&owner, &owner.base_name(), &owner.base_name().base_name()] {
            assert_eq!(
                names.decide(&wire(n), RecordType::TXT),
                Some(ResponseCode::NXDomain),
                "{n}"
            );
        }
        // A challenge beside other records keeps the name.
        let x = Name::from_ascii("_acme-challenge.x.example.test.").unwrap();
        names.set(&x, RecordType::TXT, false);
        assert_eq!(
            names.decide(&wire(&x.base_name()), RecordType::A),
            Some(ResponseCode::NXDomain)
        );
        assert_eq!(
            names.decide(&wire(&origin), RecordType::A),
            Some(ResponseCode::NoError)
        );
    }
}
