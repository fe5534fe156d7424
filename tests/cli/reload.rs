//! SIGHUP reads the config again in `watch` and `run` (issue 11 item 9;
//! what `systemctl reload` and rc.d's `reload` send): a zone added is
//! built (and served), a zone removed is no longer built nor served, and
//! a config that does not load is logged while the one in use stays. And
//! what `watch` takes for a change: not the reads of its own builds.

use crate::support::*;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

const NET_SOA: &str =
    "$TTL 3600\n@ IN SOA ns1.example.net. hostmaster.example.net. 1 7200 3600 1209600 300\n";

fn hup(d: &Daemon) {
    // SAFETY: kill(2) on our own child's PID.
    let r = unsafe { libc::kill(d.child.id() as i32, libc::SIGHUP) };
    assert_eq!(r, 0);
}

/// Wait until `check` holds, failing with the daemon's log after 15 s.
fn until(d: &mut Daemon, what: &str, check: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(15);
    while !check() {
        if let Ok(Some(status)) = d.child.try_wait() {
            panic!(
                "{} ended ({status}) waiting for {what}; log:\n{}",
                d.name,
                d.log()
            );
        }
        assert!(
            Instant::now() < end,
            "{what}: not within 15 s; log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn serial_of(path: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.contains(" IN SOA "))?;
    line.split_whitespace().nth(6)?.parse().ok()
}

/// example.test's tree, with example.net's sources ready but not configured.
fn tree(extra: &str) -> Tree {
    let t = Tree::one_zone(extra, "");
    t.write("zones/soa/example.net", NET_SOA);
    t.write(
        "zones/primary/example.net",
        "@ IN NS ns1\nns1 IN A 192.0.2.54\n",
    );
    t
}

/// `zonedrop add` as a hook without a config (the tree's may be broken on
/// purpose), run inside the drop directory.
fn add(t: &Tree, owner: &str, value: &str) {
    let out = zonedrop()
        .args(["--drop", ".", "add", owner, value])
        .current_dir(t.path("drop"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn configure(t: &Tree, zones: &[&str], extra: &str) {
    let mut text = String::from("[[drop]]\npath = \"drop\"\n");
    for z in zones {
        text.push_str(&format!("[[zone]]\nname = \"{z}\"\n"));
    }
    text.push_str(extra);
    t.write("zonedrop.toml", &text);
}

#[test]
fn watch_reads_its_config_again_at_sighup() {
    let t = tree("");
    let mut d = Daemon::start(
        "zonedrop watch",
        &mut t.cmd(&["watch"]),
        t.path("watch.log"),
    );
    let (test, net) = (
        t.path("unsigned/example.test"),
        t.path("unsigned/example.net"),
    );
    until(&mut d, "the first build", || test.exists());

    // A zone added: built after SIGHUP, not before.
    configure(&t, &["example.test", "example.net"], "");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!net.exists(), "built before SIGHUP");
    hup(&d);
    until(&mut d, "example.net built", || net.exists());
    assert!(
        d.log().contains("config read again (SIGHUP): 2 zones"),
        "{}",
        d.log()
    );

    // A config that does not load: said, and the one in use goes on.
    t.write("zonedrop.toml", "[[zone]\nname = \"example.test\"\n");
    hup(&d);
    let log = d.log.clone();
    let logged = |text: &str| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(text)
    };
    until(&mut d, "the error logged", || {
        logged("SIGHUP: the config in use stays")
    });
    assert!(d.log().contains("zonedrop.toml: line 1:"), "{}", d.log());
    let before = serial_of(&net).unwrap();
    add(&t, "_acme-challenge.example.net", V1);
    until(&mut d, "example.net rebuilt with the old config", || {
        serial_of(&net) == Some(before + 1)
    });

    // A zone removed: no longer built (its last file stays).
    configure(&t, &["example.net"], "");
    hup(&d);
    until(&mut d, "the new config", || {
        logged("config read again (SIGHUP): 1 zones")
    });
    let test_serial = serial_of(&test);
    add(&t, "_acme-challenge.example.test", V2);
    add(&t, "_acme-challenge.example.net", V2);
    until(&mut d, "example.net rebuilt", || {
        serial_of(&net) == Some(before + 2)
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(serial_of(&test), test_serial, "a removed zone was built");
    assert!(d.child.try_wait().unwrap().is_none(), "watch ended");
}

#[test]
fn run_serves_the_zones_of_the_config_read_at_sighup() {
    let port = free_port();
    let serve = format!("[serve]\nlisten = [\"127.0.0.1:{port}\"]\n");
    let t = tree(&serve);
    configure(&t, &["example.test", "example.net"], &serve);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut d = Daemon::start("zonedrop run", &mut t.cmd(&["run"]), t.path("run.log"));
    let answers = |name: &str| query_txt(addr, name).map(|(rcode, _)| rcode);
    until(&mut d, "both zones served", || {
        answers("example.test") == Some(0) && answers("example.net") == Some(0)
    });

    // example.net removed: REFUSED, as any name outside our zones.
    configure(&t, &["example.test"], &serve);
    hup(&d);
    until(&mut d, "example.net no longer served", || {
        answers("example.net") == Some(5)
    });
    assert_eq!(answers("example.test"), Some(0));

    // Back again: built and served.
    configure(&t, &["example.test", "example.net"], &serve);
    assert_eq!(t.run(&["add", "_acme-challenge.example.net", V1]).code, 0);
    hup(&d);
    until(&mut d, "the challenge served", || {
        query_txt(addr, "_acme-challenge.example.net").is_some_and(|(_, v)| v == [V1])
    });
    assert!(d.child.try_wait().unwrap().is_none(), "run ended");
}

/// The files a build reads are opened, and inotify says so: taken as
/// changes, those opens made `watch` build again at once, and a zone that
/// fails (the manifest is dropped, so every build reads) was built some
/// fifty times a second, its error logged each time.
#[test]
fn reading_the_sources_is_no_change_to_watch() {
    let t = Tree::one_zone("", "");
    // No NS at the apex: the zone fails at every build.
    t.write("zones/primary/example.test", "ns1 IN A 192.0.2.53\n");
    // The log outside the watched folders (its own lines would be changes).
    let logs = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        "zonedrop watch",
        &mut t.cmd(&["watch"]),
        logs.path().join("watch.log"),
    );
    std::thread::sleep(Duration::from_secs(2));
    let builds = d.log().matches("no NS record at the apex").count();
    assert!(
        (1..=3).contains(&builds),
        "{builds} builds in 2 s:\n{}",
        d.log()
    );
}
