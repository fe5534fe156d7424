//! Incremental builds: a zone is read, checked and published only when
//! one of its inputs moved (its soa and primary files and their includes,
//! its extra entries, the challenges and key records that fall in it, the
//! config); the others cost a `stat` per source file. The per-zone input
//! record (state/zones.json) is rebuildable: damaged or missing, every zone
//! is read from its sources.

use crate::support::*;
use std::process::Command;
use std::time::Duration;

const OWNER: &str = "_acme-challenge.example.test";
const V3: &str = "ThirdValueThirdValueThirdValueThirdValue12A";

/// More than the granularity the racy-clean rule assumes (2 s).
const PAST_THE_TICK: Duration = Duration::from_millis(2200);

/// Three zones: example.test, a.test, b.test.
fn three_zones() -> Tree {
    let t = Tree::one_zone(
        "[[zone]]\nname = \"a.test\"\n[[zone]]\nname = \"b.test\"\n",
        "",
    );
    for z in ["a.test", "b.test"] {
        t.write(
            &format!("zones/soa/{z}"),
            &format!("$TTL 3600\n@ IN SOA ns1.{z}. hostmaster.{z}. 1 7200 3600 1209600 300\n"),
        );
        t.write(
            &format!("zones/primary/{z}"),
            "@ IN NS ns1\nns1 IN A 192.0.2.53\n",
        );
    }
    t
}

/// `zonedrop build` under strace: the run, and every file it opened.
fn traced_build(t: &Tree) -> (Run, String) {
    need("strace", "strace");
    let log = t.path("strace.log");
    let out = clean_env(&mut Command::new("strace"))
        .args(["-f", "-qq", "-e", "trace=open,openat", "-o"])
        .arg(&log)
        .arg(bin())
        .arg("build")
        .current_dir(t.dir.path())
        .output()
        .unwrap();
    (out.into(), std::fs::read_to_string(&log).unwrap())
}

fn opened(trace: &str, rel: &str) -> bool {
    trace.contains(&format!("/{rel}\""))
}

fn published(t: &Tree, zone: &str) -> String {
    std::fs::read_to_string(t.path(&format!("unsigned/{zone}"))).unwrap()
}

#[test]
fn a_build_reads_only_the_zones_whose_inputs_moved() {
    let t = three_zones();
    std::thread::sleep(PAST_THE_TICK);
    let r = t.run(&["build", "--quiet"]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    // A challenge for a.test: only a.test is read and published.
    assert_eq!(t.run(&["add", "_acme-challenge.a.test", V1]).code, 0);
    let (r, trace) = traced_build(&t);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "a.test: serial 1 -> 2, 1 challenge\n");
    assert!(opened(&trace, "zones/primary/a.test"), "{trace}");
    for other in [
        "zones/primary/b.test",
        "zones/soa/b.test",
        "zones/primary/example.test",
    ] {
        assert!(!opened(&trace, other), "{other} was read:\n{trace}");
    }
    assert!(published(&t, "a.test").contains(V1));

    // An edit of b.test's primary: b.test is read again, and only it.
    std::thread::sleep(PAST_THE_TICK);
    t.write(
        "zones/primary/b.test",
        "@ IN NS ns1\nns1 IN A 192.0.2.53\nwww IN A 192.0.2.80\n",
    );
    let (r, trace) = traced_build(&t);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "b.test: serial 1 -> 2, 0 challenges\n");
    assert!(!opened(&trace, "zones/primary/example.test"), "{trace}");
    assert!(published(&t, "b.test").contains("192.0.2.80"));

    // The challenge goes: a.test again.
    assert_eq!(t.run(&["del", "_acme-challenge.a.test", V1]).code, 0);
    let (r, _) = traced_build(&t);
    assert_eq!(r.stdout, "a.test: serial 2 -> 3, 0 challenges\n");

    // A published zone removed by hand is published again.
    std::fs::remove_file(t.path("unsigned/b.test")).unwrap();
    assert_eq!(t.run(&["add", "_acme-challenge.example.test", V2]).code, 0);
    let r = t.run(&["build"]);
    assert_eq!(
        r.stdout,
        "example.test: serial 1 -> 2, 1 challenge\nb.test: serial 2 -> 2, 0 challenges\n"
    );
}

#[test]
fn extra_entries_and_the_config_are_inputs_of_their_zones() {
    let t = three_zones();
    t.mkdir("zones/extra");
    std::thread::sleep(PAST_THE_TICK);
    assert_eq!(t.run(&["build", "--quiet"]).code, 0);
    t.write("zones/extra/www", "www.b.test. 300 IN A 192.0.2.81\n");
    let r = t.run(&["build"]);
    assert_eq!(
        r.stdout, "b.test: serial 1 -> 2, 0 challenges\n",
        "{}",
        r.stderr
    );

    // A zone removed from the config drops out of the record.
    let config = std::fs::read_to_string(t.path("zonedrop.toml")).unwrap();
    t.write(
        "zonedrop.toml",
        &config.replace("[[zone]]\nname = \"a.test\"\n", ""),
    );
    let r = t.run(&["build", "--quiet"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let record = std::fs::read_to_string(t.path("state/zones.json")).unwrap();
    assert!(
        !record.contains("\"a.test.\"") && record.contains("\"b.test.\""),
        "{record}"
    );
}

#[test]
fn a_damaged_or_missing_input_record_is_rebuilt_from_the_sources() {
    let t = three_zones();
    std::thread::sleep(PAST_THE_TICK);
    assert_eq!(t.run(&["build", "--quiet"]).code, 0);
    let record = t.path("state/zones.json");
    assert!(record.exists());
    std::fs::write(&record, "{\"version\": 1, \"zones\": {\"a.test.\": [").unwrap();
    assert_eq!(t.run(&["add", "_acme-challenge.a.test", V1]).code, 0);
    let r = t
        .cmd(&["build"])
        .env("RUST_LOG", "zonedrop=info")
        .output()
        .unwrap();
    let r = Run::from(r);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("a.test: serial 1 -> 2, 1 challenge"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("the per-zone input record is damaged"),
        "{}",
        r.stderr
    );
    // Written anew, it serves the next build.
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(text.contains("\"b.test.\""), "{text}");

    std::fs::remove_file(&record).unwrap();
    assert_eq!(t.run(&["del", "_acme-challenge.a.test", V1]).code, 0);
    let r = t.run(&["build"]);
    assert_eq!(
        r.stdout, "a.test: serial 2 -> 3, 0 challenges\n",
        "{}",
        r.stderr
    );
}

/// example.test with `hosts` A records in its primary (about 24 bytes
/// each: 3,000 make a zone whose checked sources are cached), and a TXT
/// record at `_acme-challenge.dup` holding V2.
fn big_zone(hosts: usize) -> Tree {
    let primary: String = (0..hosts)
        .map(|i| format!("h{i} IN A 198.51.{}.{}\n", i / 250 % 250, i % 250))
        .collect();
    Tree::one_zone(
        "",
        &format!("{primary}_acme-challenge.dup IN TXT \"{V2}\"\n"),
    )
}

#[test]
fn a_zone_whose_only_change_is_its_challenges_is_settled_from_its_cache() {
    let t = big_zone(3000);
    std::thread::sleep(PAST_THE_TICK);
    let r = t.run(&["build", "--quiet"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let cache = t.path("state/cache/example.test");
    assert!(
        !cache.exists(),
        "a build whose sources moved keeps no cache"
    );

    // The first challenge-only change reads the sources and keeps them.
    assert_eq!(t.run(&["add", OWNER, V1]).code, 0);
    let (r, trace) = traced_build(&t);
    assert_eq!(r.stdout, "example.test: serial 1 -> 2, 1 challenge\n");
    assert!(opened(&trace, "zones/primary/example.test"), "{trace}");
    assert!(cache.exists());

    // The next ones do not read them.
    assert_eq!(
        t.run(&["add", "_acme-challenge.www.example.test", V1]).code,
        0
    );
    let (r, trace) = traced_build(&t);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "example.test: serial 2 -> 3, 2 challenges\n");
    assert!(!opened(&trace, "zones/primary/example.test"), "{trace}");
    assert!(opened(&trace, "state/cache/example.test"), "{trace}");
    let text = published(&t, "example.test");
    assert!(
        text.contains("_acme-challenge.www") && text.contains("h2999"),
        "{text}"
    );

    // A challenge that would copy a record of the sources is checked
    // against the kept record keys, and refused (naming the line it would
    // copy reads the sources: that is the refusal's own path).
    assert_eq!(
        t.run(&["add", "_acme-challenge.dup.example.test", V2]).code,
        0
    );
    let (r, trace) = traced_build(&t);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(opened(&trace, "state/cache/example.test"), "{trace}");
    assert!(
        r.stderr.contains("refused") && r.stderr.contains("it would break zone example.test"),
        "{}",
        r.stderr
    );

    // --force reads the sources.
    let r = t.run(&["build", "--force", "--quiet"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(published(&t, "example.test").contains(V1));
}

#[test]
fn a_damaged_cache_is_read_from_the_sources_and_written_anew() {
    let t = big_zone(3000);
    std::thread::sleep(PAST_THE_TICK);
    assert_eq!(t.run(&["build", "--force", "--quiet"]).code, 0);
    let cache = t.path("state/cache/example.test");
    let mut bytes = std::fs::read(&cache).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&cache, &bytes).unwrap();
    let damaged = std::fs::read(&cache).unwrap();

    assert_eq!(t.run(&["add", OWNER, V1]).code, 0);
    let r: Run = t
        .cmd(&["build"])
        .env("RUST_LOG", "zonedrop=info")
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "example.test: serial 1 -> 2, 1 challenge\n");
    assert!(
        r.stderr.contains("state/cache/example.test: damaged or of another version: zone example.test. is read from its sources"),
        "{}",
        r.stderr
    );
    assert!(published(&t, "example.test").contains(V1));
    // Read from the sources, the zone's checked sources were kept again.
    assert_ne!(std::fs::read(&cache).unwrap(), damaged);

    // A zone removed from the config takes its cache with it.
    t.write(
        "zones/soa/other.test",
        "$TTL 3600\n@ IN SOA ns1.other.test. h.other.test. 1 7200 3600 1209600 300\n",
    );
    t.write("zones/primary/other.test", "@ IN NS ns1.example.test.\n");
    t.write(
        "zonedrop.toml",
        "[[drop]]\npath = \"drop\"\n[[zone]]\nname = \"other.test\"\n",
    );
    assert_eq!(t.run(&["build", "--quiet"]).code, 0);
    assert!(!cache.exists());
}

/// `watch` keeps a zone's checked sources in memory: after the first
/// challenge-only change (which reads the sources), the next ones read
/// neither the sources nor the cache file.
#[test]
fn watch_keeps_checked_sources_in_memory() {
    let t = big_zone(3000);
    std::thread::sleep(PAST_THE_TICK);
    assert_eq!(t.run(&["build", "--quiet"]).code, 0);
    let mut cmd = t.cmd(&["watch"]);
    cmd.env("RUST_LOG", "zonedrop=debug");
    let d = Daemon::start("zonedrop watch", &mut cmd, t.path("watch.log"));
    let published_within = |value: &str| {
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while !published(&t, "example.test").contains(value) {
            assert!(
                std::time::Instant::now() < until,
                "not published; log:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    assert_eq!(t.run(&["add", OWNER, V1]).code, 0);
    published_within(V1);
    assert_eq!(
        t.run(&["add", "_acme-challenge.www.example.test", V1]).code,
        0
    );
    published_within("_acme-challenge.www");
    let log = d.log();
    assert!(
        log.contains("zone example.test.: checked sources kept in memory"),
        "{log}"
    );
}

/// `watch` builds after changes to drop entries alone without looking at
/// the sources or at the drop entries no event named (`drops_only`): what
/// such a build must still see.
#[test]
fn watch_sees_in_place_rewrites_source_edits_and_lost_outputs_between_drop_only_builds() {
    let t = three_zones();
    assert_eq!(t.run(&["build", "--quiet"]).code, 0);
    let d = Daemon::start(
        "zonedrop watch",
        &mut t.cmd(&["watch"]),
        t.path("watch.log"),
    );
    let within = |what: &str, secs: u64, done: &dyn Fn() -> bool| {
        let until = std::time::Instant::now() + Duration::from_secs(secs);
        while !done() {
            assert!(
                std::time::Instant::now() < until,
                "{what}; log:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    assert_eq!(t.run(&["add", OWNER, V1]).code, 0);
    within("V1 published", 10, &|| {
        published(&t, "example.test").contains(V1)
    });
    // Read again once settled (kept: later builds take it unread), then
    // rewritten in place under its name: the event names it.
    std::thread::sleep(PAST_THE_TICK);
    assert_eq!(t.run(&["add", "_acme-challenge.a.test", V2]).code, 0);
    within("V2 published", 10, &|| published(&t, "a.test").contains(V2));
    let file = t
        .all_names("drop")
        .into_iter()
        .find(|n| n.starts_with("_acme-challenge.example.test."))
        .unwrap();
    let text = std::fs::read_to_string(t.path(&format!("drop/{file}"))).unwrap();
    std::fs::write(t.path(&format!("drop/{file}")), text.replace(V1, V3)).unwrap();
    within("the rewrite published", 10, &|| {
        let p = published(&t, "example.test");
        p.contains(V3) && !p.contains(V1)
    });
    // A source edited between drop-only builds.
    t.write(
        "zones/primary/b.test",
        "@ IN NS ns1\nns1 IN A 192.0.2.53\nedited IN A 192.0.2.99\n",
    );
    within("the edit published", 10, &|| {
        published(&t, "b.test").contains("edited")
    });
    // And an entry added to extra/ (read once per full build).
    t.write("zones/extra/more", "extra.b.test. 300 IN A 192.0.2.98\n");
    within("the extra entry published", 10, &|| {
        published(&t, "b.test").contains("192.0.2.98")
    });
    // A published file removed by hand (no event the builder acts on)
    // comes back with the next full build, within the watcher's tick.
    std::fs::remove_file(t.path("unsigned/a.test")).unwrap();
    assert_eq!(t.run(&["add", OWNER, V2]).code, 0);
    within("a.test published again", 12, &|| {
        t.path("unsigned/a.test").exists() && published(&t, "a.test").contains(V2)
    });
}
