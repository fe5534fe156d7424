//! Zone assembly with an arbitrary primary file and arbitrary drop files,
//! the way `zonedrop build` runs it, through the build's own stages in a
//! temporary tree: the sources read (`read_sources`: a primary part over
//! 256 KiB is checked while it is read, by the pipelined reader), the drop
//! directory judged with their aliases (`read_drops`), each zone settled
//! (`settle`: a challenge that would break the zone is refused). Nothing may
//! panic, and a zone that settles holds, beyond what the same sources give
//! without the drop directory, exactly one whitelisted challenge TXT record
//! per challenge it kept.

#![no_main]

use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::txt::Parser;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::SystemTime;
use zonedrop::base::rules;
use zonedrop::build::read::read_sources;
use zonedrop::config::{Config, ZoneConf};

#[derive(Debug, Arbitrary)]
struct Input {
    primary: String,
    fragments: Vec<Vec<u8>>,
    /// From 0xf0 up (one value in 16; an input that ran out of bytes gets
    /// 0), the primary text gets [`filler`] before it (even) or after it
    /// (odd), which makes the primary part big enough for the pipelined
    /// reader.
    big: u8,
}

const SOA_TEST: &str =
    "$TTL 3600\n@ IN SOA ns1.example.test. hostmaster.example.test. 1 7200 3600 1209600 300\n";
const SOA_NET: &str =
    "@ 3600 IN SOA ns1.example.test. hostmaster.example.test. 1 7200 3600 1209600 300\n";
const PRIMARY_NET: &str = "@ IN NS ns1.example.test.\nmail IN A 192.0.2.25\n";
const INCLUDED: &str = "inc 300 IN A 192.0.2.99\n";

/// Text that makes a primary part bigger than the 256 KiB from which it is
/// checked while it is read: 2,000 records (some 30 slices, in batches) and
/// comment lines between them, so that a run stays cheap enough to fuzz.
fn filler() -> &'static str {
    static F: OnceLock<String> = OnceLock::new();
    F.get_or_init(|| {
        let comment = format!("; {}\n", "-".repeat(110));
        (0..2_000)
            .map(|i| format!("f{i} IN A 198.51.{}.{}\n{comment}", i / 250 % 250, i % 250))
            .collect()
    })
}

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
        assert!(filler().len() > 256 * 1024);
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
    let primary = match input.big {
        b if b < 0xf0 => input.primary.clone(),
        b if b % 2 == 0 => format!("{}{}", filler(), input.primary),
        _ => format!("{}\n{}", input.primary, filler()),
    };
    std::fs::write(root.join("zones/primary/example.test"), primary).unwrap();

    let config = Config::load(&root.join("zonedrop.toml")).expect("the fuzz config loads");
    let zones: Vec<&ZoneConf> = config.zones.iter().collect();
    let Ok(mut read) = read_sources(&config, &zones, None) else {
        return;
    };
    let sorted = read.read_drops(
        SystemTime::now(),
        false,
        &mut zonedrop::build::Report::default(),
    );
    for z in &config.zones {
        let Some(settled) = read.settle(&z.name) else {
            continue;
        };
        let Ok(with) = settled.zone else {
            continue;
        };
        // It settled: what would be published parses, and the drop side
        // added one challenge TXT record per challenge kept, and nothing else.
        let zone = Name::from_str(&z.name).unwrap();
        let published = with.with_serial(2);
        let all = records(&published, &zone)
            .unwrap_or_else(|e| panic!("a checked zone does not parse: {e}\n{published}"));
        let base = read
            .sources
            .assemble(&z.name, &[])
            .expect("the same sources assemble without the drop records");
        let base = records(&base.with_serial(2), &zone)
            .unwrap_or_else(|e| panic!("the zone without drop records does not parse: {e}"));
        let added: Vec<_> = all.difference(&base).collect();
        assert_eq!(added.len(), settled.challenges, "{added:?}");
        for (name, rtype, data) in added {
            assert!(zone.zone_of(name), "`{name}` outside {zone}");
            assert_eq!(
                *rtype,
                RecordType::TXT,
                "{name} {rtype} {data} came from the drop"
            );
            let owner = name.to_ascii().to_ascii_lowercase();
            // The config's labels are the default: `_acme-challenge` only.
            let label_ok = |o: &str| {
                o.split('.')
                    .next()
                    .is_some_and(|l| l.eq_ignore_ascii_case("_acme-challenge"))
            };
            assert!(
                label_ok(&owner)
                    || read
                        .sources
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
            assert!(
                !settled.refusals.iter().any(|r| r.file == c.file),
                "`{owner}` TXT {data} was refused and published"
            );
        }
        for (name, _, _) in &all {
            assert!(
                zone.zone_of(name),
                "`{name}` outside {zone} in a checked zone"
            );
        }
    }
});
