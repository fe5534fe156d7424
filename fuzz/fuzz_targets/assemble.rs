//! Zone assembly with an arbitrary primary file and arbitrary drop files,
//! the way `zonedrop build` runs it (whitelist, `Sources::assemble`,
//! `Sources::check`) in a temporary tree. Nothing may panic, and a zone that
//! passes the checks holds, beyond what the same sources give without the
//! drop directory, only whitelisted challenge TXT records.

#![no_main]

use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::txt::Parser;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::SystemTime;
use zonedrop::config::Config;
use zonedrop::base::rules;
use zonedrop::whitelist;
use zonedrop::zone::{quote_txt, Rendered, Sources};

#[derive(Debug, Arbitrary)]
struct Input {
    primary: String,
    fragments: Vec<Vec<u8>>,
}

const SOA_TEST: &str =
    "$TTL 3600\n@ IN SOA ns1.example.test. hostmaster.example.test. 1 7200 3600 1209600 300\n";
const SOA_NET: &str =
    "@ 3600 IN SOA ns1.example.test. hostmaster.example.test. 1 7200 3600 1209600 300\n";
const PRIMARY_NET: &str = "@ IN NS ns1.example.test.\nmail IN A 192.0.2.25\n";
const INCLUDED: &str = "inc 300 IN A 192.0.2.99\n";

fn tree() -> &'static Path {
    static T: OnceLock<tempfile::TempDir> = OnceLock::new();
    T.get_or_init(|| {
        let t = tempfile::tempdir().expect("a temporary folder");
        let w = |rel: &str, text: &str| {
            let p = t.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        w("zones/soa/example.test", SOA_TEST);
        w("zones/soa/example.net", SOA_NET);
        w("zones/primary/example.net", PRIMARY_NET);
        w("zones/primary/inc/a.inc", INCLUDED);
        w(
            "zonedrop.toml",
            "[[drop]]\npath = \"drop\"\n[[zone]]\nname = \"example.test\"\n[[zone]]\nname = \"example.net\"\n",
        );
        std::fs::create_dir_all(t.path().join("drop")).unwrap();
        t
    })
    .path()
}

/// Every record of a zone text as `name type ttl rdata`, or the parse error.
fn records(text: &str, zone: &Name) -> Result<BTreeSet<(Name, RecordType, String)>, String> {
    let (_, map) = Parser::new(text, None, Some(zone.clone()))
        .parse()
        .map_err(|e| e.to_string())?;
    Ok(map
        .values()
        .flat_map(|set| set.records_without_rrsigs().cloned().collect::<Vec<_>>())
        .map(|r| {
            (
                r.name.clone(),
                r.record_type(),
                format!("{} {}", r.ttl, r.data),
            )
        })
        .collect())
}

fuzz_target!(|input: Input| {
    if input.fragments.len() > 16 || input.primary.len() > 64 * 1024 {
        return;
    }
    let root = tree();
    let drop = root.join("drop");
    for e in std::fs::read_dir(&drop).unwrap().flatten() {
        let _ = std::fs::remove_file(e.path());
    }
    for (i, f) in input.fragments.iter().enumerate() {
        std::fs::write(drop.join(format!("f{i}")), f).unwrap();
    }
    std::fs::write(root.join("zones/primary/example.test"), &input.primary).unwrap();

    let config = Config::load(&root.join("zonedrop.toml")).expect("the fuzz config loads");
    let Ok(mut sources) = Sources::new(&config) else {
        return;
    };
    for z in &config.zones {
        let _ = sources.scan_aliases(&z.name);
    }
    let now = SystemTime::now();
    let sorted = whitelist::sort_drops_with(&config, &sources.aliases, now, false);
    for z in &config.zones {
        let rendered: Vec<Rendered> = sorted
            .challenges
            .iter()
            .filter(|c| c.zone == z.name)
            .map(|c| Rendered {
                owner: c.owner.clone(),
                ttl: c.ttl,
                rtype: "TXT",
                rdata: quote_txt(&c.value),
                source: PathBuf::from(&c.file),
            })
            .collect();
        let Ok(with) = sources.assemble(&z.name, &rendered) else {
            continue;
        };
        if sources.check(&with, &rendered).is_err() {
            continue;
        }
        // It passed: what would be published parses, and the drop side added
        // nothing but challenge TXT records.
        let zone = Name::from_str(&z.name).unwrap();
        let published = with.with_serial(2);
        let all = records(&published, &zone)
            .unwrap_or_else(|e| panic!("a checked zone does not parse: {e}\n{published}"));
        let base = sources
            .assemble(&z.name, &[])
            .expect("the same sources assemble without the drop records");
        let base = records(&base.with_serial(2), &zone)
            .unwrap_or_else(|e| panic!("the zone without drop records does not parse: {e}"));
        for (name, rtype, data) in all.difference(&base) {
            assert!(zone.zone_of(name), "`{name}` outside {zone}");
            assert_eq!(
                *rtype,
                RecordType::TXT,
                "{name} {rtype} {data} came from the drop"
            );
            let owner = name.to_ascii().to_ascii_lowercase();
            let label_ok = |o: &str| {
                o.split('.')
                    .next()
                    .is_some_and(|l| l.eq_ignore_ascii_case("_acme-challenge"))
            };
            assert!(
                label_ok(&owner)
                    || sources
                        .aliases
                        .iter()
                        .any(|(from, to)| to == owner && label_ok(from)),
                "`{owner}` is neither a challenge owner nor an alias target"
            );
            let value = data.split_once(' ').map_or("", |(_, v)| v);
            let c = sorted
                .challenges
                .iter()
                .find(|c| c.owner == owner && c.value == value)
                .unwrap_or_else(|| panic!("`{owner}` TXT {data} matches no accepted challenge"));
            assert!(rules::check_value(&c.value, &config.policy).is_ok());
        }
        for (name, _, _) in &all {
            assert!(
                zone.zone_of(name),
                "`{name}` outside {zone} in a checked zone"
            );
        }
    }
});
