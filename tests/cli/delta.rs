//! `zonedrop run` takes a challenge-only change as a delta (issue 12 step
//! 3, `live/delta.rs`): no re-read of the published file, and no stale
//! answer from the UDP path's cache, neither at the name itself nor at a
//! CNAME in another zone that leads into it, while queries keep coming.

use crate::support::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const OWNER: &str = "_acme-challenge.example.test";
/// A CNAME in example.net into example.test's challenge owner.
const ALIAS: &str = "alias.example.net";

#[test]
fn challenges_reach_run_as_deltas_and_no_cached_answer_goes_stale() {
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let t = Tree::one_zone(&format!("[serve]\nlisten = [\"127.0.0.1:{port}\"]\n"), "");
    let toml = std::fs::read_to_string(t.path("zonedrop.toml")).unwrap();
    t.write(
        "zonedrop.toml",
        &format!("{toml}[[zone]]\nname = \"example.net\"\n"),
    );
    t.write(
        "zones/soa/example.net",
        "$TTL 3600\n@ IN SOA ns1.example.test. hostmaster.example.test. 1 7200 3600 1209600 300\n",
    );
    t.write(
        "zones/primary/example.net",
        "@ IN NS ns1.example.test.\nalias IN CNAME _acme-challenge.example.test.\n",
    );
    // Built before run starts: run's responder loads the files, and its
    // first build, finding nothing new, tells it what they hold.
    assert_eq!(t.run(&["build"]).code, 0);
    let run = run_until_answering(&t, addr, "example.test");
    let until = Instant::now() + Duration::from_secs(10);
    while query_txt(addr, "example.net").is_none_or(|(rcode, _)| rcode != 0) {
        assert!(
            Instant::now() < until,
            "example.net not served:\n{}",
            run.log()
        );
    }
    // Six: more TXT records would not fit a 512-octet answer.
    let values: Vec<String> = (0..6)
        .map(|i| format!("delta-value-{i:02}-{}", "x".repeat(28)))
        .collect();

    // Askers, each on fresh source ports (so on every UDP thread of the
    // responder, each with its own cache): the values answered at a name
    // only ever grow, since values are only added.
    let stop = Arc::new(AtomicBool::new(false));
    let askers: Vec<_> = [OWNER, ALIAS, OWNER, ALIAS]
        .into_iter()
        .map(|name| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut seen, mut asked) = (0usize, 0usize);
                while !stop.load(Ordering::Relaxed) {
                    let Some((rcode, txt)) = query_txt(addr, name) else {
                        continue;
                    };
                    asked += 1;
                    assert!(rcode == 0 || rcode == 3, "{name}: rcode {rcode}");
                    assert!(
                        txt.len() >= seen,
                        "{name}: {} values answered after {seen}: a stale answer",
                        txt.len()
                    );
                    seen = txt.len();
                }
                (seen, asked)
            })
        })
        .collect();

    for value in &values {
        let started = Instant::now();
        let r = t.run(&["add", OWNER, value]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        // Lone changes, as an ACME client makes them.
        let until = started + Duration::from_secs(10);
        while !query_txt(addr, OWNER).is_some_and(|(_, txt)| txt.contains(value)) {
            assert!(
                Instant::now() < until,
                "{value} not answered:\n{}",
                run.log()
            );
        }
        std::thread::sleep(Duration::from_millis(200).saturating_sub(started.elapsed()));
    }
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    for asker in askers {
        let (seen, asked) = asker.join().unwrap();
        assert_eq!(seen, values.len(), "asked {asked} times");
        assert!(asked > 20, "asked only {asked} times");
    }
    // Through the alias too, and every change was a delta, the first one
    // included: the file was read only at the start.
    let (_, txt) = query_txt(addr, ALIAS).unwrap();
    assert_eq!(txt.len(), values.len(), "{txt:?}");
    let log = run.log();
    let deltas = log.matches("taken as a delta").count();
    assert_eq!(deltas, values.len(), "{log}");
    assert_eq!(log.matches("reloaded").count(), 0, "{log}");
}
