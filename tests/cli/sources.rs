//! Zones as people keep them (issue 11 item 6): a zone file that holds its
//! own SOA (`[[zone]] file`), or its two parts under names of their own
//! (`soa`, `primary`), adopted as they are; and `init` for several zones,
//! or one more in an existing tree, keeping the config's comments.

use crate::support::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn named_checkzone(zone: &str, file: &Path) {
    need("named-checkzone", "bind9-utils");
    let out = Command::new("named-checkzone")
        .args(["-k", "fail", "-n", "fail", zone])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "named-checkzone {zone}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn serial_of(path: &Path) -> u32 {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text.lines().find(|l| l.contains(" IN SOA ")).unwrap();
    line.split_whitespace().nth(6).unwrap().parse().unwrap()
}

/// An existing zone file as BIND or NSD keep it: $ORIGIN, $TTL, the SOA
/// first (over several lines), records, an $INCLUDE beside it.
const ZONE_FILE: &str = concat!(
    "$ORIGIN example.org.\n$TTL 1h\n",
    "@ IN SOA ns1 hostmaster (\n  2024010101 ; serial\n  2h 1h 2w 5m )\n",
    "  IN NS ns1\n",
    "  IN NS ns2.example.net.\n",
    "ns1 IN A 192.0.2.53\nwww IN A 192.0.2.80\n",
    "$INCLUDE mail.inc\n",
);

#[test]
fn a_zone_file_with_its_own_soa_is_adopted_in_place() {
    let t = Tree::new();
    t.mkdir("drop");
    t.write("nsd/example.org.zone", ZONE_FILE);
    t.write("nsd/mail.inc", "mail IN A 192.0.2.25\n@ IN MX 10 mail\n");
    t.write(
        "zonedrop.toml",
        "[[drop]]\npath = \"drop\"\n[[zone]]\nname = \"example.org\"\nserial = \"increment\"\nfile = \"nsd/example.org.zone\"\n",
    );
    assert_eq!(
        t.run(&["add", "_acme-challenge.www.example.org", V1]).code,
        0
    );
    let r = t.run(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "example.org: serial none -> 2024010101, 1 challenge\n"
    );
    let out = t.path("unsigned/example.org");
    named_checkzone("example.org", &out);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.matches(" IN SOA ").count(), 1, "{text}");
    for want in ["192.0.2.80", "192.0.2.25", "ns2.example.net.", V1] {
        assert!(text.contains(want), "{want} not in\n{text}");
    }
    // Nothing changed: nothing rebuilt; the file edited: rebuilt.
    assert_eq!(t.run(&["build"]).stdout, "");
    let edited = ZONE_FILE.replace("192.0.2.80", "192.0.2.81");
    t.write("nsd/example.org.zone", &edited);
    assert_eq!(t.run(&["build", "--quiet"]).code, 0);
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .contains("192.0.2.81"));
    assert_eq!(serial_of(&out), 2024010102);
    // A second SOA in it is named with its line.
    t.write(
        "nsd/example.org.zone",
        &format!("{edited}@ IN SOA ns1 h 1 2 3 4 5\n"),
    );
    let r = t.run(&["build"]);
    assert_eq!(r.code, 1);
    let file = t.path("nsd/example.org.zone");
    assert_eq!(
        r.stderr,
        format!(
            "zonedrop: {f}:11: a second SOA record (the zone's is at {f}:3)\n",
            f = file.display()
        )
    );
}

#[test]
fn soa_and_primary_under_names_of_their_own() {
    let t = Tree::new();
    t.mkdir("drop");
    t.write(
        "legacy/example.org.soa",
        "$TTL 3600\n@ IN SOA ns1.example.org. hostmaster.example.org. 7 7200 3600 1209600 300\n",
    );
    t.write(
        "legacy/example.org.db",
        "@ IN NS ns1\nns1 IN A 192.0.2.53\n",
    );
    t.write(
        "zonedrop.toml",
        "[[drop]]\npath = \"drop\"\n[[zone]]\nname = \"example.org\"\nserial = \"increment\"\n\
         soa = \"legacy/example.org.soa\"\nprimary = \"legacy/example.org.db\"\n",
    );
    let r = t.run(&["build"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "example.org: serial none -> 7, 0 challenges\n"),
        "{}",
        r.stderr
    );
    named_checkzone("example.org", &t.path("unsigned/example.org"));
    // `file` with either is a config error.
    t.write(
        "zonedrop.toml",
        "[[zone]]\nname = \"example.org\"\nfile = \"a\"\nsoa = \"b\"\n",
    );
    let r = t.run(&["build"]);
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr,
        "zonedrop: zonedrop.toml: zone.file: zone `example.org.`: `file` holds the SOA and the records: give it alone, or `soa` and `primary`\n"
    );
}

#[test]
fn watch_follows_a_zone_file_kept_outside_the_source_folders() {
    let t = Tree::new();
    t.mkdir("drop");
    t.write("nsd/example.org.zone", ZONE_FILE);
    t.write("nsd/mail.inc", "mail IN A 192.0.2.25\n");
    t.write(
        "zonedrop.toml",
        "[[drop]]\npath = \"drop\"\n[[zone]]\nname = \"example.org\"\nserial = \"increment\"\nfile = \"nsd/example.org.zone\"\n",
    );
    let d = Daemon::start(
        "zonedrop watch",
        &mut t.cmd(&["watch"]),
        t.path("watch.log"),
    );
    let out = t.path("unsigned/example.org");
    let end = Instant::now() + Duration::from_secs(10);
    while !out.exists() {
        assert!(Instant::now() < end, "not built; log:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    t.write(
        "nsd/example.org.zone",
        &ZONE_FILE.replace("192.0.2.80", "192.0.2.82"),
    );
    // Within a second: an event, not the 5 s tick.
    let end = Instant::now() + Duration::from_secs(1);
    while !std::fs::read_to_string(&out)
        .unwrap()
        .contains("192.0.2.82")
    {
        assert!(
            Instant::now() < end,
            "not rebuilt on change; log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `zonedrop ARGS` run in `dir`.
fn run_in(t: &Tree, dir: &str, args: &[&str]) -> Run {
    t.cmd(args)
        .current_dir(t.path(dir))
        .output()
        .unwrap()
        .into()
}

#[test]
fn init_sets_up_several_zones_and_adds_one_keeping_the_comments() {
    let t = Tree::new();
    let r = t.run(&[
        "init",
        "site",
        "--zone",
        "a.example",
        "--zone",
        "B.example.",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let config = t.path("site/zonedrop.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    // A binary install has no examples/ nor README: the config points at
    // nothing but the files init wrote and the command's own help.
    for absent in ["examples/", "README", "../"] {
        assert!(!text.contains(absent), "{absent} in\n{text}");
    }
    assert!(
        text.contains("names = [\"a.example\", \"*.a.example\", \"b.example\", \"*.b.example\"]"),
        "{text}"
    );
    for rel in [
        "zones/soa/a.example",
        "zones/primary/b.example",
        "zones/extra",
        "drop",
    ] {
        assert!(t.path(&format!("site/{rel}")).exists(), "{rel}");
    }
    let r = run_in(&t, "site", &["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 2, "{}", r.stdout);
    named_checkzone("b.example", &t.path("site/unsigned/b.example"));

    // One more, in the tree as it is: comments and layout kept.
    let r = t.run(&["init", "site", "--add-zone", "c.example"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "site/zonedrop.toml: zone c.example added. Next: fill in its soa/ and primary/ files, then zonedrop build\n"
    );
    let edited = std::fs::read_to_string(&config).unwrap();
    for line in text.lines().filter(|l| !l.starts_with("names = ")) {
        assert!(edited.contains(line), "{line:?} lost:\n{edited}");
    }
    assert!(edited.contains("names = [\"a.example\", \"*.a.example\", \"b.example\", \"*.b.example\", \"c.example\", \"*.c.example\"]"), "{edited}");
    assert!(
        edited.contains("[[zone]]\nname = \"c.example\"\nserial = \"date\"\n"),
        "{edited}"
    );
    // The new zone builds, and the hook side takes its challenges.
    let r = run_in(&t, "site", &["add", "_acme-challenge.www.c.example", V1]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run_in(&t, "site", &["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("c.example: serial none -> "),
        "{}",
        r.stdout
    );
    named_checkzone("c.example", &t.path("site/unsigned/c.example"));

    // Refusals, with nothing written.
    let before = std::fs::read_to_string(&config).unwrap();
    let r = t.run(&["init", "site", "--add-zone", "c.example"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "zonedrop: site/zonedrop.toml: zone c.example is configured already\n"
    );
    let r = t.run(&["init", "elsewhere", "--add-zone", "d.example"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("no config to add a zone to"),
        "{}",
        r.stderr
    );
    let r = t.run(&[
        "init",
        "site",
        "--zone",
        "d.example",
        "--add-zone",
        "e.example",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = t.run(&["init", "site", "--zone", "d.example"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("zonedrop.toml: already exists"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);
    assert!(!t.path("site/zones/soa/d.example").exists());
}
