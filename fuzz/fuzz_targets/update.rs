//! RFC 2136 updates, arbitrary ones, through the update path of the
//! responder (`Updates::decide_bytes`: TSIG, replay, source, the sections,
//! the whitelist, the writes) in a temporary tree with one zone and one key
//! (`fuzz-key`, hmac-sha256, names example.test and below). An input is
//! either raw bytes sent as they are, or an update built from arbitrary
//! sections (zone, prerequisites, updates: owners from a set of interesting
//! ones or arbitrary, any class and type, any TXT strings), sent unsigned,
//! signed with the right key, or signed with a wrong one.
//!
//! Property: nothing outside the whitelist is ever written. After every
//! input, each file of the drop directory is a fragment that the builder's
//! whitelist accepts for that directory, written under the key's name, at
//! a name the key may touch; nothing is written at all unless the answer
//! was NOERROR for a message signed with the right key.

#![no_main]

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigner};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};
use zonedrop::base::config::TsigAlg;
use zonedrop::base::rules;
use zonedrop::config::Config;
use zonedrop::live::update::{Key, Keys, Updates};
use zonedrop::{drop, whitelist};

const SECRET: &[u8] = b"fuzz-secret-fuzz-secret-fuzz-sec";

#[derive(Debug, Arbitrary)]
enum Input {
    Raw(Vec<u8>),
    Built {
        zone: Owner,
        prerequisites: Vec<Rr>,
        updates: Vec<Rr>,
        /// 0: unsigned, 1: the right key, 2: a wrong secret.
        sign: u8,
        /// The TSIG time: within the fudge (now + skew - 128) up to 249,
        /// 1000 s ago from 250 (BADTIME).
        skew: u8,
    },
}

#[derive(Debug, Arbitrary)]
struct Rr {
    owner: Owner,
    class: u8,
    rtype: u8,
    ttl: u32,
    txt: Txt,
}

#[derive(Debug, Arbitrary)]
enum Txt {
    /// One of a few values the whitelist takes (or nearly).
    Known(u8),
    Strings(Vec<Vec<u8>>),
}

const VALUES: &[&str] = &[
    "LPsIwTo7o8BoG0-vjCyGQGBWSVIPxI-i_X336eUOQZo",
    "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA",
    "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
    "LPsIwTo7o8BoG0-vjCyGQGBWSVIPxI-i_X336eUOQZ=",
    "letsencrypt.org; accounturi=https://ca.example/acct/1",
    "short",
];

#[derive(Debug, Arbitrary)]
enum Owner {
    Known(u8),
    Label(String),
    Any(String),
}

const KNOWN: &[&str] = &[
    "example.test.",
    "_acme-challenge.example.test.",
    "_acme-challenge.www.example.test.",
    "_acme-challenge.a.b.example.test.",
    "_ACME-Challenge.WWW.example.test.",
    "_ujmmovf2vn55tgye._acme-challenge.example.test.",
    "_validation-persist.example.test.",
    "www.example.test.",
    "_acme-challenge.example.net.",
    "example.net.",
    "_acme-challenge.",
    ".",
];

impl Owner {
    fn name(&self) -> Option<Name> {
        let text = match self {
            Owner::Known(i) => KNOWN[usize::from(*i) % KNOWN.len()].to_string(),
            Owner::Label(l) => format!("{l}._acme-challenge.example.test."),
            Owner::Any(s) => s.clone(),
        };
        Name::from_ascii(text).ok()
    }
}

const CLASSES: [DNSClass; 5] = [
    DNSClass::IN,
    DNSClass::ANY,
    DNSClass::NONE,
    DNSClass::CH,
    DNSClass::HS,
];
const TYPES: [RecordType; 6] = [
    RecordType::TXT,
    RecordType::ANY,
    RecordType::A,
    RecordType::SOA,
    RecordType::CNAME,
    RecordType::NS,
];

impl Rr {
    fn record(&self) -> Option<Record> {
        let name = self.owner.name()?;
        let rtype = TYPES[usize::from(self.rtype) % TYPES.len()];
        let data = match rtype {
            RecordType::TXT => match &self.txt {
                Txt::Known(i) => RData::TXT(TXT::new(vec![
                    VALUES[usize::from(*i) % VALUES.len()].to_string()
                ])),
                Txt::Strings(s) if !s.is_empty() => RData::TXT(TXT::from_bytes(
                    s.iter().map(|t| &t[..t.len().min(255)]).collect(),
                )),
                Txt::Strings(_) => RData::Update0(RecordType::TXT),
            },
            RecordType::A => RData::A("192.0.2.1".parse().ok()?),
            other => RData::Update0(other),
        };
        let mut r = Record::from_rdata(name, self.ttl, data);
        r.dns_class = CLASSES[usize::from(self.class) % CLASSES.len()];
        Some(r)
    }
}

struct Site {
    _dir: tempfile::TempDir,
    drop: std::path::PathBuf,
    config: Config,
    updates: Updates,
}

fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        for d in ["drop", "zones/soa", "zones/primary", "zones/extra"] {
            std::fs::create_dir_all(p.join(d)).unwrap();
        }
        std::fs::write(
            p.join("zones/soa/example.test"),
            "$TTL 3600\n@ IN SOA ns1.example.test. h.example.test. 1 7200 3600 1209600 300\n",
        )
        .unwrap();
        std::fs::write(
            p.join("zones/primary/example.test"),
            "@ IN NS ns1\nns1 IN A 192.0.2.53\n",
        )
        .unwrap();
        std::fs::write(
            p.join("zonedrop.toml"),
            "[[drop]]\npath = \"drop\"\nnames = [\"example.test\", \"*.example.test\"]\n\
             [[zone]]\nname = \"example.test\"\n[[zone]]\nname = \"example.net\"\n\
             [policy]\ndns_account = true\nmax_values_per_name = 3\n",
        )
        .unwrap();
        let config = Config::load(&p.join("zonedrop.toml")).unwrap();
        let mut key = Key::new(
            "fuzz-key.",
            TsigAlg::HmacSha256,
            SECRET.to_vec(),
            config.drops[0].clone(),
        );
        key.names = vec!["example.test.".into(), "*.example.test.".into()];
        key.max_values = Some(4);
        let updates = Updates::with_keys(&config, Keys::from_keys(vec![key]));
        Site {
            drop: p.join("drop"),
            _dir: dir,
            config,
            updates,
        }
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn encode(
    zone: &Owner,
    prerequisites: &[Rr],
    updates: &[Rr],
    sign: u8,
    skew: u8,
) -> Option<(Vec<u8>, bool)> {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Update);
    m.add_query(Query::query(zone.name()?, RecordType::SOA));
    m.answers
        .extend(prerequisites.iter().filter_map(Rr::record));
    m.authorities.extend(updates.iter().filter_map(Rr::record));
    let right = sign % 3 == 1;
    if sign % 3 != 0 {
        let secret = if right {
            SECRET.to_vec()
        } else {
            b"wrong".to_vec()
        };
        let signer = TSigner::new(
            secret,
            TsigAlgorithm::HmacSha256,
            Name::from_ascii("fuzz-key.").ok()?,
            300,
        )
        .ok()?;
        let time = match skew {
            250.. => now() - 1000,
            _ => (now() + u64::from(skew)).saturating_sub(128),
        };
        m.finalize(&signer, time).ok()?;
    }
    Some((m.to_vec().ok()?, right))
}

/// Every file in the drop directory: a fragment of the key, whitelisted.
fn check_drop(site: &Site, wrote_allowed: bool) {
    let names = drop::list_names(&site.drop).unwrap();
    if !wrote_allowed {
        assert!(
            names.is_empty(),
            "written without a good signature: {names:?}"
        );
    }
    let dir = &site.config.drops[0];
    let aliases = zonedrop::zone::read_aliases(&site.config).0;
    for n in names {
        let name = n.to_string_lossy().into_owned();
        assert!(
            name.ends_with(".tsig-fuzz-key"),
            "not the key's file name: {name}"
        );
        let entry = drop::DropHandle::open(&site.drop)
            .unwrap()
            .read_entry(&n, 4096)
            .unwrap();
        let f = entry
            .fragment
            .as_ref()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Err(v) = whitelist::judge(&site.config, dir, &entry, &aliases, SystemTime::now()) {
            panic!(
                "{name}: written, but the whitelist refuses it: {}",
                v.reason()
            );
        }
        assert!(rules::drop_allows(
            Some(&["example.test.".into(), "*.example.test.".into()]),
            &f.owner
        ));
    }
}

fn clear(drop: &Path) {
    for n in drop::list_names(drop).unwrap() {
        let _ = std::fs::remove_file(drop.join(n));
    }
}

fuzz_target!(|input: Input| {
    let site = site();
    clear(&site.drop);
    let served = vec!["example.test.".to_string()];
    let src = SocketAddr::from(([127, 0, 0, 1], 5353));
    let (bytes, right) = match &input {
        Input::Raw(b) => (b.clone(), false),
        Input::Built {
            zone,
            prerequisites,
            updates,
            sign,
            skew,
        } => match encode(zone, prerequisites, updates, *sign, *skew) {
            Some(x) => x,
            None => return,
        },
    };
    let rcode = site.updates.decide_bytes(&bytes, src, &served, now());
    let accepted = rcode == Some(hickory_proto::op::ResponseCode::NoError);
    check_drop(site, right && accepted);
});
