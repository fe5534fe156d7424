//! Concurrency: 200 hooks (`zonedrop add` and `zonedrop del`) run as
//! parallel processes while `zonedrop run` watches the drop directory and
//! serves. Every added record must be answered, every deleted one must go,
//! none may be lost, and the builder must never read a fragment half-written
//! (it would refuse it, and say so in its log).

use crate::support::*;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const ADDS: usize = 120;
const DELS: usize = 80;

fn value(kind: char, i: usize) -> String {
    format!("{kind}{i:0>42}")
}

fn owner(kind: &str, i: usize) -> String {
    // One owner per record: policy.max_values_per_name does not cut in.
    format!("_acme-challenge.{kind}{i}.example.test.")
}

/// Wait until every owner answers exactly `want` (empty: no TXT), or fail
/// after `within` listing what is still wrong.
fn settle(
    server: SocketAddr,
    want: &[(String, Option<String>)],
    within: Duration,
    log: &dyn Fn() -> String,
) {
    let until = Instant::now() + within;
    let mut pending: Vec<&(String, Option<String>)> = want.iter().collect();
    while !pending.is_empty() {
        pending.retain(|(owner, value)| {
            let got = query_txt(server, owner).map(|(_, s)| s);
            got != Some(value.iter().cloned().collect())
        });
        if pending.is_empty() {
            break;
        }
        assert!(
            Instant::now() < until,
            "{} owners still wrong after {within:?}, e.g. {:?}; log:\n{}",
            pending.len(),
            pending.first(),
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn hook(t: &Tree, verb: &str, owner: &str, value: &str) -> Child {
    t.cmd(&[verb, owner, value])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn parallel_hooks_while_run_serves_lose_nothing() {
    let port = free_port();
    let t = Tree::one_zone(
        &format!("[policy]\nmax_files = 1000\n[serve]\nlisten = [\"127.0.0.1:{port}\"]\n"),
        "",
    );
    let server = SocketAddr::from(([127, 0, 0, 1], port));

    // The records the deletes will remove, in place before `run` starts.
    for i in 0..DELS {
        let r = t.run(&["add", &owner("old", i), &value('o', i)]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let run = Daemon::start("zonedrop run", &mut t.cmd(&["run"]), t.path("run.log"));
    let old: Vec<(String, Option<String>)> = (0..DELS)
        .map(|i| (owner("old", i), Some(value('o', i))))
        .collect();
    settle(server, &old, Duration::from_secs(10), &|| run.log());

    // 200 hook processes at once: adds of new records, deletes of old ones,
    // interleaved so both kinds race the builder.
    let started = Instant::now();
    let mut children = Vec::new();
    for i in 0..ADDS.max(DELS) {
        if i < ADDS {
            children.push(("add", i, hook(&t, "add", &owner("new", i), &value('n', i))));
        }
        if i < DELS {
            children.push(("del", i, hook(&t, "del", &owner("old", i), &value('o', i))));
        }
    }
    assert_eq!(children.len(), ADDS + DELS);
    for (verb, i, child) in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{verb} {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let hooks_done = started.elapsed();

    let mut want: Vec<(String, Option<String>)> = (0..ADDS)
        .map(|i| (owner("new", i), Some(value('n', i))))
        .collect();
    want.extend((0..DELS).map(|i| (owner("old", i), None)));
    settle(server, &want, Duration::from_secs(15), &|| run.log());
    let settled = started.elapsed();

    // The published zone holds exactly the new records.
    let text = std::fs::read_to_string(t.path("unsigned/example.test")).unwrap();
    let published: BTreeSet<String> = text
        .lines()
        .filter(|l| l.contains(" IN TXT "))
        .map(|l| l.rsplit('"').nth(1).unwrap_or_default().to_string())
        .collect();
    let expected: BTreeSet<String> = (0..ADDS).map(|i| value('n', i)).collect();
    assert_eq!(published, expected);

    // Nothing half-written was ever seen, and nothing is left behind.
    let log = run.log();
    assert!(
        !log.contains("refused"),
        "the builder refused a fragment:\n{log}"
    );
    assert!(!log.contains("ERROR"), "{log}");
    let names = t.all_names("drop");
    assert_eq!(names.len(), ADDS, "{names:?}");
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    eprintln!(
        "concurrency: {} hook processes finished in {} ms, all answers right after {} ms",
        ADDS + DELS,
        hooks_done.as_millis(),
        settled.as_millis()
    );
}
