//! Any bytes as a drop fragment, through the strict parser and the whole
//! whitelist. Whatever is accepted is rendered the way the builder renders it
//! and re-parsed with hickory: it must be exactly one TXT record, at an owner
//! whose first label is allowed (or at the CNAME target of such an owner),
//! inside the configured zone and the drop directory's names, with one string
//! that has the configured value shape and a clamped TTL.
//!
//! The first input byte picks the policy (value shape, drop names); the rest
//! is the fragment file's content.

#![no_main]

use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::txt::Parser;
use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::SystemTime;
use zonedrop::config::{Config, ValueShape};
use zonedrop::drop::{Entry, ReadRefusal};
use zonedrop::fragment::Fragment;
use zonedrop::base::rules;
use zonedrop::whitelist;
use zonedrop::zone::alias::Aliases;
use zonedrop::zone::quote_txt;

const ALIAS_FROM: &str = "_acme-challenge.mail.example.test.";
const ALIAS_TO: &str = "_acme-challenge.mail.example.net.";

struct World {
    configs: Vec<Config>,
    aliases: Aliases,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let zones = "[[zone]]\nname = \"example.test\"\n[[zone]]\nname = \"sub.example.test\"\n[[zone]]\nname = \"example.net\"\n";
        let configs = [
            ("acme", ""),
            ("token", ""),
            ("acme", "names = [\"example.test\", \"*.example.net\"]"),
            ("token", "names = [\"*.sub.example.test\", \"mail.example.test\"]"),
        ]
        .iter()
        .map(|(shape, names)| {
            let text = format!(
                "[[drop]]\npath = \"drop\"\n{names}\n[policy]\nvalue = \"{shape}\"\nlabels = [\"_acme-challenge\", \"_Other\"]\n{zones}"
            );
            Config::parse(&text, Path::new("fuzz.toml")).expect("the fuzz config parses")
        })
        .collect();
        let aliases = Aliases::from_iter([(ALIAS_FROM.to_string(), ALIAS_TO.to_string())]);
        World { configs, aliases }
    })
}

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap_or_else(|e| panic!("`{s}` is not a name: {e}"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let w = world();
    let config = &w.configs[pick as usize % w.configs.len()];
    let policy = &config.policy;

    let parsed = Fragment::parse(bytes);
    if let Ok(f) = &parsed {
        // What the hook writes for an accepted fragment reads back the same.
        let again = Fragment::parse(f.render(60).as_bytes());
        assert_eq!(again.as_ref().map(|g| &g.owner), Ok(&f.owner));
        assert_eq!(again.as_ref().map(|g| &g.value), Ok(&f.value));
    }
    let entry = Entry {
        path: PathBuf::from("drop/fuzz"),
        name: "fuzz".into(),
        modified: SystemTime::now(),
        fragment: parsed.clone().map_err(ReadRefusal::Syntax),
        version: None,
    };
    let dir = &config.drops[0];
    let Ok(c) = whitelist::judge(config, dir, &entry, &w.aliases, SystemTime::now()) else {
        return;
    };
    let f = parsed.expect("an accepted entry was parsed");

    // The owner the hook asked for: an allowed first label, in a zone, in the
    // drop's names; the published owner is it or its alias target.
    let first = f.owner.split('.').next().unwrap_or_default();
    assert!(
        policy.labels.iter().any(|l| l.eq_ignore_ascii_case(first)),
        "label `{first}` of `{}` accepted",
        f.owner
    );
    assert!(rules::drop_allows(dir.names.as_deref(), &f.owner));
    if c.owner != f.owner {
        assert_eq!(w.aliases.follow(&f.owner), Ok(c.owner.clone()));
    }
    assert!(c.ttl >= policy.ttl_min && c.ttl <= policy.ttl_max);

    // What the builder would publish, parsed as a name server would.
    let zone = name(&c.zone);
    let text = format!(
        "$ORIGIN {}\n{} {} IN TXT {}\n",
        c.zone,
        c.owner,
        c.ttl,
        quote_txt(&c.value)
    );
    let (_, map) = Parser::new(text.as_str(), None, Some(zone.clone()))
        .parse()
        .unwrap_or_else(|e| panic!("the rendered record does not parse: {e}\n{text}"));
    let records: Vec<_> = map
        .values()
        .flat_map(|set| set.records_without_rrsigs().cloned().collect::<Vec<_>>())
        .collect();
    assert_eq!(records.len(), 1, "{text}");
    let r = &records[0];
    assert_eq!(r.record_type(), RecordType::TXT);
    assert_eq!(r.name, name(&c.owner));
    assert!(zone.zone_of(&r.name), "`{}` outside {zone}", r.name);
    assert_eq!(
        config.zone_of(&c.owner).map(|z| z.name.as_str()),
        Some(c.zone.as_str())
    );
    assert_eq!(r.ttl, c.ttl);
    let RData::TXT(txt) = &r.data else {
        panic!("not TXT data: {text}")
    };
    let strings: Vec<&[u8]> = txt.txt_data.iter().map(|s| &s[..]).collect();
    assert_eq!(strings, vec![c.value.as_bytes()], "{text}");
    let v = c.value.as_bytes();
    assert!(!v.is_empty() && v.len() <= 255);
    assert!(v
        .iter()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b';')));
    if policy.value == ValueShape::Acme {
        assert!(
            v.len() == 43
                && v.iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        );
    }
});
