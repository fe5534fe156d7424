//! What follows a publish (issue 11 item 1, `build::effects`): `on_change`
//! before NOTIFY, its output shown only when it fails; an `on_change` or
//! NOTIFY that failed is owed and retried by a later build that changes
//! nothing; in `run`, NOTIFY only once the responder serves the new zone;
//! and the deployment that found the bug: NSD as the primary, reloaded by
//! `on_change`, Knot as its secondary, told by zonedrop's NOTIFY.

use crate::support::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RData;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many times the on_change command of `hook_tree` ran.
fn runs(t: &Tree) -> usize {
    std::fs::read_to_string(t.path("hook.log"))
        .unwrap_or_default()
        .lines()
        .count()
}

/// A one-zone tree whose on_change logs each run, prints `reloaded`, and
/// fails (exit 3, a line on stderr) while the file `fail` exists.
fn hook_tree(secondary: &Secondary) -> Tree {
    Tree::one_zone(
        &format!(
            "[build]\nnotify = [\"{}\"]\n\
             on_change = \"sh -c 'echo {{zone}} >> hook.log; echo reloaded; \
             if test -e fail; then echo nsd-control: error: zone not loaded >&2; exit 3; fi'\"\n",
            secondary.addr
        ),
        "",
    )
}

#[test]
fn a_failed_on_change_holds_back_notify_until_a_later_build_retries_both() {
    let secondary = Secondary::start();
    let t = hook_tree(&secondary);
    let r = t.run(&["build"]);
    // Its output is kept: nothing of it reaches cron mail when it succeeds.
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert!(!r.stdout.contains("reloaded"), "{}", r.stdout);
    assert_eq!(
        (runs(&t), secondary.told()),
        (1, vec!["example.test.".to_string()])
    );

    t.write("fail", "");
    assert_eq!(t.run(&["add", "_acme-challenge.example.test", V1]).code, 0);
    let r = t.run(&["build"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    // The failure, its status and its output; no NOTIFY for a zone the
    // primary has not loaded.
    let err = &r.stderr;
    assert!(
        err.contains("zonedrop: example.test: on_change `sh -c")
            && err.contains("failed (exit status: 3); it runs again at the next build, and the zone's NOTIFY waits for it; its output:\n    reloaded\n    nsd-control: error: zone not loaded\n"),
        "{err}"
    );
    assert!(!r.stdout.contains("\nreloaded"), "{}", r.stdout);
    assert_eq!((runs(&t), secondary.told()), (2, vec![]));

    // Nothing changed: still owed, still failing, still no NOTIFY.
    let r = t.run(&["build"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!((runs(&t), secondary.told()), (3, vec![]));

    // Fixed: a build that changes nothing runs on_change, then NOTIFY.
    std::fs::remove_file(t.path("fail")).unwrap();
    let r = t.run(&["build"]);
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""));
    assert_eq!(
        (runs(&t), secondary.told()),
        (4, vec!["example.test.".to_string()])
    );
    // Paid: nothing is owed any more.
    let r = t.run(&["build"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!((runs(&t), secondary.told()), (4, vec![]));
}

#[test]
fn a_notify_nobody_acknowledged_is_sent_by_a_later_build() {
    // A secondary that is down: the NOTIFY fails and stays owed.
    let port = free_port();
    let t = Tree::one_zone(&format!("[build]\nnotify = [\"127.0.0.1:{port}\"]\n"), "");
    let r = t.run(&["build"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains(&format!("NOTIFY example.test. to 127.0.0.1:{port}: "))
            && r.stderr
                .contains("; sent again in 60 s or at the next change"),
        "{}",
        r.stderr
    );
    // It comes up; the retry is due (as 60 s later), nothing changed.
    let state = t.path("state/zone-example.test.json");
    let text = std::fs::read_to_string(&state).unwrap();
    let due = regex_free_replace(&text, "\"notify_retry_at\": ", "0");
    std::fs::write(&state, due).unwrap();
    let told = Arc::new(Mutex::new(Vec::new()));
    let socket = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
    let (seen, listener) = (told.clone(), socket.try_clone().unwrap());
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        if let Ok((n, from)) = listener.recv_from(&mut buf) {
            let m = Message::from_vec(&buf[..n]).unwrap();
            seen.lock().unwrap().push(m.queries[0].name().to_string());
            let mut ack = m.clone();
            ack.metadata.message_type = hickory_proto::op::MessageType::Response;
            ack.answers.clear();
            listener.send_to(&ack.to_vec().unwrap(), from).unwrap();
        }
    });
    let r = t.run(&["build"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(*told.lock().unwrap(), ["example.test."]);
    drop(socket);
}

/// `text` with the number after `key` replaced by `value`.
fn regex_free_replace(text: &str, key: &str, value: &str) -> String {
    let at = text
        .find(key)
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        + key.len();
    let end = at + text[at..].find(|c: char| !c.is_ascii_digit()).unwrap();
    format!("{}{value}{}", &text[..at], &text[end..])
}

#[test]
fn run_notifies_once_its_responder_serves_the_new_zone() {
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // At each NOTIFY, before acknowledging it, ask zonedrop run what it
    // serves: a secondary does just that when told.
    let answers = Arc::new(Mutex::new(Vec::new()));
    let seen = answers.clone();
    let secondary = Secondary::start_with(move |m: &Message| {
        let serial = m.answers.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        });
        let served = query_txt(addr, "_acme-challenge.example.test").map(|(_, txt)| txt);
        seen.lock().unwrap().push((serial, served));
    });
    let t = Tree::one_zone(
        &format!(
            "[serve]\nlisten = [\"127.0.0.1:{port}\"]\n[build]\nnotify = [\"{}\"]\n",
            secondary.addr
        ),
        "",
    );
    let run = run_until_answering(&t, addr, "example.test");
    let told = |n: usize| {
        let until = Instant::now() + Duration::from_secs(10);
        while answers.lock().unwrap().len() < n && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        answers.lock().unwrap().clone()
    };
    // The first publish, at the start.
    let first = told(1);
    let Some(Some(serial)) = first.first().map(|a| a.0) else {
        panic!("{first:?}\n{}", run.log());
    };
    assert_eq!(t.run(&["add", "_acme-challenge.example.test", V1]).code, 0);
    let answers = told(2);
    assert_eq!(
        answers[1..],
        [(Some(serial + 1), Some(vec![V1.to_string()]))],
        "{}",
        run.log()
    );
}

/// NSD as the primary, loading zonedrop's output and reloaded by
/// `on_change` (nsd-control over a local socket); Knot as NSD's
/// secondary, told by zonedrop's `[build] notify`; `zonedrop watch`
/// building. A hook that waits on both servers sees its value on both.
#[test]
fn nsd_reloaded_by_on_change_and_knot_notified_both_answer_after_a_hook_wait() {
    need("nsd", "nsd");
    need("nsd-control", "nsd");
    need("knotd", "knot");
    let (nsd_port, knot_port) = (free_port(), free_port());
    let t = Tree::one_zone(
        &format!(
            "[build]\non_change = \"nsd-control -c nsd/nsd.conf reload {{zone}}\"\n\
             notify = [\"127.0.0.1:{knot_port}\"]\n\
             [hook]\nservers = [\"127.0.0.1:{nsd_port}\", \"127.0.0.1:{knot_port}\"]\n"
        ),
        "",
    );
    // The first publish, before NSD starts (it loads the file at start);
    // its on_change and NOTIFY fail with no server up, and stay owed.
    assert_eq!(t.run(&["build"]).code, 1);
    let nsd = start_nsd(
        &t.mkdir("nsd"),
        nsd_port,
        "example.test",
        &t.path("unsigned/example.test"),
    );
    let knot = start_knot(&t, knot_port, nsd_port);
    for (port, d) in [(nsd_port, &nsd), (knot_port, &knot)] {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let until = Instant::now() + Duration::from_secs(15);
        while query_txt(addr, "example.test").is_none_or(|(rcode, _)| rcode != 0) {
            assert!(
                Instant::now() < until,
                "{} does not serve; its log:\n{}",
                d.name,
                d.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let watch = Daemon::start(
        "zonedrop watch",
        &mut t.cmd(&["watch"]),
        t.path("watch.log"),
    );
    std::thread::sleep(Duration::from_millis(500));
    let r = t.run(&["add", "--wait", "20s", "_acme-challenge.example.test", V1]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (0, ""),
        "watch:\n{}\nnsd:\n{}\nknot:\n{}",
        watch.log(),
        nsd.log(),
        knot.log()
    );
    for port in [nsd_port, knot_port] {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let answer = query_txt(addr, "_acme-challenge.example.test").map(|(_, t)| t);
        assert_eq!(answer, Some(vec![V1.to_string()]), "port {port}");
    }
    // The reload's "ok" stays out of the log.
    assert!(!watch.log().contains("\nok\n"), "{}", watch.log());
}

fn start_knot(t: &Tree, port: u16, primary: u16) -> Daemon {
    let d = t.mkdir("knot");
    let conf = knot_secondary_conf(&d, port, primary);
    Daemon::start(
        "knotd",
        Command::new("knotd").arg("-c").arg(&conf),
        d.join("log"),
    )
}

/// The serial in a published zone file's SOA line.
fn serial(t: &Tree) -> u32 {
    let text = std::fs::read_to_string(t.path("unsigned/example.test")).unwrap();
    let line = text.lines().find(|l| l.contains(" SOA ")).unwrap();
    line.split(" SOA ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap()
}

/// Issue 10 item 9: a drop writer that adds and removes a fragment every
/// 20 ms for 5 s gets at most `[build] max_rate` publishes a second (and
/// the first burst), so on_change and the `date` serial keep that pace;
/// a lone add after it is still built at once.
#[test]
fn churn_in_the_drop_directory_is_held_to_max_rate() {
    churn_is_held_to_max_rate(&["watch"]);
}

/// The same when polling (nullfs): a poll that finds a change while the
/// writer has not been quiet waits for its token.
#[test]
fn churn_is_held_to_max_rate_when_polling() {
    churn_is_held_to_max_rate(&["watch", "--poll", "10ms"]);
}

fn churn_is_held_to_max_rate(args: &[&str]) {
    let t = Tree::one_zone(
        "[build]\non_change = \"sh -c 'echo {zone} >> hook.log'\"\n",
        "",
    );
    let toml = std::fs::read_to_string(t.path("zonedrop.toml")).unwrap();
    t.write(
        "zonedrop.toml",
        &toml.replace(
            "name = \"example.test\"\n",
            "name = \"example.test\"\nserial = \"date\"\n",
        ),
    );
    let watch = Daemon::start("zonedrop watch", &mut t.cmd(args), t.path("watch.log"));
    let until = Instant::now() + Duration::from_secs(10);
    while runs(&t) < 1 {
        assert!(Instant::now() < until, "{}", watch.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let (before, first) = (runs(&t), serial(&t));
    let fragment = t.path("drop/churn");
    let start = Instant::now();
    let mut on = false;
    while start.elapsed() < Duration::from_secs(5) {
        if on {
            std::fs::remove_file(&fragment).unwrap();
        } else {
            std::fs::write(&fragment, line("_acme-challenge.example.test.", 60, V1)).unwrap();
        }
        on = !on;
        std::thread::sleep(Duration::from_millis(20));
    }
    let churned = start.elapsed().as_secs_f64();
    // What was held back is built once the churn stops.
    std::thread::sleep(Duration::from_millis(600));
    let ran = runs(&t) - before;
    // 4 a second, the burst of 4 at the start, the last build after it.
    let most = (4.0 * churned).ceil() as usize + 4 + 2;
    assert!(
        ran <= most,
        "on_change ran {ran} times in {churned:.1} s (at most {most}):\n{}",
        watch.log()
    );
    assert!(
        ran >= 10,
        "on_change ran {ran} times: the churn was not built at all"
    );
    eprintln!("churn: on_change ran {ran} times in {churned:.1} s");
    let moved = serial(&t) - first;
    assert!(moved as usize <= most, "the date serial moved by {moved}");

    // A lone add: built at once, however busy the writer was before.
    let lone = Instant::now();
    std::fs::write(
        t.path("drop/lone"),
        line("_acme-challenge.www.example.test.", 60, V2),
    )
    .unwrap();
    let until = lone + Duration::from_secs(2);
    while !std::fs::read_to_string(t.path("unsigned/example.test"))
        .unwrap()
        .contains(V2)
    {
        assert!(
            Instant::now() < until,
            "the lone add was not built:\n{}",
            watch.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = lone.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "the lone add took {took:?}"
    );
}

/// Lone changes are never held back by the rate limit, even above
/// `max_rate`: hooks 200 ms apart (5 a second) against `max_rate = 1`
/// are each published at once. (A hook's write is several events, its
/// temporary file then the rename; taken as churn, all but the first
/// would wait up to a second for their token.)
#[test]
fn lone_adds_above_max_rate_are_built_at_once() {
    let t = Tree::one_zone("[build]\nmax_rate = 1\n", "");
    let watch = Daemon::start(
        "zonedrop watch",
        &mut t.cmd(&["watch"]),
        t.path("watch.log"),
    );
    let zone = t.path("unsigned/example.test");
    let until = Instant::now() + Duration::from_secs(10);
    while !zone.exists() {
        assert!(Instant::now() < until, "{}", watch.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        let owner = format!("_acme-challenge.r{i}.example.test");
        let value = format!("{}{i}", &V1[..42]);
        let started = Instant::now();
        assert_eq!(t.run(&["add", &owner, &value]).code, 0);
        while !std::fs::read_to_string(&zone).unwrap().contains(&value) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{}",
                watch.log()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        slowest = slowest.max(started.elapsed());
        std::thread::sleep(Duration::from_millis(200).saturating_sub(started.elapsed()));
    }
    eprintln!("lone adds: slowest published after {slowest:?}");
    assert!(
        slowest < Duration::from_millis(600),
        "slowest {slowest:?}:\n{}",
        watch.log()
    );
}
