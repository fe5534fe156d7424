//! Negative answers (NXDOMAIN, NODATA) from the responder's index of each
//! zone's names (`live/negative.rs`) rather than hickory's scan of the
//! whole zone: the same answers NSD gives on the same file, kept right by
//! `run`'s challenge deltas, and no dearer than a positive answer in a big
//! zone.
//!
//! DNAME is not among the shapes: hickory's zone-file parser refuses it,
//! so no zone zonedrop serves can hold one (the index still hands any name
//! below a DNAME to hickory).

use crate::support::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Every shape the index has to get right: apex records, an empty
/// non-terminal (b.c and c above a.b.c), a wildcard, a delegation with
/// glue, a CNAME, a challenge below an empty non-terminal (x).
const ZONE: &str = "$ORIGIN example.test.\n$TTL 300\n\
    @ IN SOA ns1 hostmaster 42 3600 600 86400 60\n\
    @ IN NS ns1\n@ IN MX 10 mail\n@ IN TXT \"apex\"\n\
    ns1 IN A 127.0.0.1\nmail IN A 192.0.2.25\n\
    a.b.c IN A 192.0.2.1\n\
    *.wild IN TXT \"wildcard\"\n\
    sub IN NS ns.sub\nns.sub IN A 192.0.2.53\n\
    www IN CNAME host\nhost IN A 192.0.2.4\n\
    _acme-challenge.x IN TXT \"challenge\"\n";

/// `zonedrop serve` of `text` as example.test on a free port, once it answers.
fn serve(t: &Tree, text: &str) -> (Daemon, SocketAddr) {
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    t.write(
        "zonedrop.toml",
        &format!("[[zone]]\nname = \"example.test\"\n[serve]\nlisten = [\"127.0.0.1:{port}\"]\n"),
    );
    t.write("unsigned/example.test", text);
    let mut d = Daemon::start(
        "zonedrop serve",
        &mut t.cmd(&["serve"]),
        t.path("serve.log"),
    );
    wait_for(&mut d, addr);
    (d, addr)
}

fn wait_for(d: &mut Daemon, addr: SocketAddr) {
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        if let Ok(Some(status)) = d.child.try_wait() {
            panic!("{} ended ({status}); its log:\n{}", d.name, d.log());
        }
        if ask(addr, "example.test.", RecordType::SOA, None)
            .is_some_and(|m| m.metadata.response_code == ResponseCode::NoError)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{} does not answer on {addr}; its log:\n{}",
        d.name,
        d.log()
    );
}

/// What an answer should be.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    NxDomain,
    NoData,
    /// NOERROR with this many answer records.
    Answers(usize),
    /// NOERROR, no answer, the child's NS in authority.
    Referral,
}

fn check(m: &Message, name: &str, rtype: RecordType, want: Want) {
    let what = format!("{name} {rtype}: {want:?}\n{m}");
    // The question as asked, spelling included.
    assert_eq!(m.queries.len(), 1, "{what}");
    assert_eq!(m.queries[0].name().to_string(), name, "{what}");
    assert_eq!(m.queries[0].query_type(), rtype, "{what}");
    match want {
        Want::NxDomain | Want::NoData => {
            let rcode = match want {
                Want::NxDomain => ResponseCode::NXDomain,
                _ => ResponseCode::NoError,
            };
            assert_eq!(m.metadata.response_code, rcode, "{what}");
            assert!(m.metadata.authoritative, "{what}");
            assert!(m.answers.is_empty() && m.additionals.is_empty(), "{what}");
            assert_eq!(m.authorities.len(), 1, "{what}");
            let soa = &m.authorities[0];
            // In the asker's spelling when it is the question's name.
            assert_eq!(
                soa.name.to_lowercase().to_string(),
                "example.test.",
                "{what}"
            );
            assert!(matches!(&soa.data, RData::SOA(_)), "{what}");
        }
        Want::Answers(n) => {
            assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{what}");
            assert!(m.metadata.authoritative, "{what}");
            assert_eq!(m.answers.len(), n, "{what}");
        }
        Want::Referral => {
            assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{what}");
            assert!(m.answers.is_empty(), "{what}");
            assert!(
                m.authorities
                    .iter()
                    .any(|r| r.record_type() == RecordType::NS
                        && r.name.to_string() == "sub.example.test."),
                "{what}"
            );
        }
    }
}

/// NXDOMAIN and NODATA, at owners, at empty non-terminals, in any
/// spelling, beside wildcards, delegations and CNAMEs (which hickory still
/// answers): zonedrop's answers are right, and NSD, serving the same file,
/// agrees on the rcode, AA and the section counts of every negative one.
#[test]
fn negative_answers_agree_with_nsd() {
    use RecordType::*;
    use Want::*;
    need("nsd", "nsd");
    let t = Tree::new();
    let (_serve, zonedrop) = serve(&t, ZONE);
    let nsd_port = free_port();
    let mut nsd = start_nsd(
        &t.mkdir("nsd"),
        nsd_port,
        "example.test",
        &t.path("unsigned/example.test"),
    );
    let nsd_addr = SocketAddr::from(([127, 0, 0, 1], nsd_port));
    wait_for(&mut nsd, nsd_addr);
    let cases = [
        ("nx.example.test.", A, NxDomain),
        ("NX.Example.TEST.", TXT, NxDomain),
        ("deeper.nx.example.test.", AAAA, NxDomain),
        ("example.test.", AAAA, NoData),
        ("Example.Test.", CAA, NoData),
        ("host.example.test.", TXT, NoData),
        ("mail.example.test.", MX, NoData),
        // The empty non-terminals, and below an owner.
        ("c.example.test.", A, NoData),
        ("B.c.example.test.", TXT, NoData),
        ("a.b.c.example.test.", AAAA, NoData),
        ("x.a.b.c.example.test.", A, NxDomain),
        ("x.example.test.", A, NoData),
        ("_ACME-CHALLENGE.X.example.test.", AAAA, NoData),
        ("y.x.example.test.", TXT, NxDomain),
        ("wild.example.test.", A, NoData),
        // What the names hold.
        ("example.test.", MX, Answers(1)),
        ("a.b.c.example.test.", A, Answers(1)),
        ("_acme-challenge.x.example.test.", TXT, Answers(1)),
        ("anything.wild.example.test.", TXT, Answers(1)),
        ("www.example.test.", A, Answers(2)),
        // Under the delegation: a referral.
        ("x.sub.example.test.", A, Referral),
        ("ns.sub.example.test.", A, Referral),
    ];
    for (name, rtype, want) in cases {
        for edns in [None, Some(1232)] {
            let ours = ask(zonedrop, name, rtype, edns).expect("zonedrop answers");
            check(&ours, name, rtype, want);
            if matches!(want, NxDomain | NoData) {
                // The zone's SOA as stored, TTL included.
                let soa = &ours.authorities[0];
                assert_eq!(soa.ttl, 300, "{name} {rtype}\n{ours}");
                assert!(
                    matches!(&soa.data, RData::SOA(s) if s.serial == 42 && s.minimum == 60),
                    "{name} {rtype}\n{ours}"
                );
            }
            assert_eq!(
                ours.edns.is_some(),
                edns.is_some(),
                "{name} {rtype}\n{ours}"
            );
            let theirs = ask(nsd_addr, name, rtype, edns).expect("NSD answers");
            let counts = |m: &Message| {
                (
                    m.metadata.response_code,
                    m.answers.len(),
                    m.authorities.len(),
                    m.additionals.len(),
                )
            };
            if matches!(want, NxDomain | NoData) {
                assert_eq!(
                    counts(&ours),
                    counts(&theirs),
                    "{name} {rtype}\n{ours}\n{theirs}"
                );
                assert!(theirs.metadata.authoritative, "{name} {rtype}\n{theirs}");
            } else {
                assert_eq!(
                    ours.metadata.response_code, theirs.metadata.response_code,
                    "{name} {rtype}\n{ours}\n{theirs}"
                );
                assert_eq!(ours.answers.len(), theirs.answers.len(), "{name} {rtype}");
            }
        }
    }
}

/// `run` takes a challenge as a delta: its name answers at once, and when
/// it is removed, the name and its empty parent `x` are NXDOMAIN again
/// (the index forgets a name whose last record went).
#[test]
fn a_challenge_delta_adds_and_removes_its_names() {
    use RecordType::*;
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let t = Tree::one_zone(&format!("[serve]\nlisten = [\"127.0.0.1:{port}\"]\n"), "");
    assert_eq!(t.run(&["build"]).code, 0);
    let run = run_until_answering(&t, addr, "example.test");
    let owner = "_acme-challenge.x.example.test.";
    let rcode = |name: &str, rtype| {
        ask(addr, name, rtype, None)
            .expect("an answer")
            .metadata
            .response_code
    };
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let limit = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < limit, "{what}:\n{}", run.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    assert_eq!(rcode(owner, TXT), ResponseCode::NXDomain);
    assert_eq!(rcode("x.example.test.", A), ResponseCode::NXDomain);

    let r = t.run(&["add", owner, V1]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    until("the challenge answered", &|| {
        query_txt(addr, owner).is_some_and(|(_, txt)| txt == [V1])
    });
    let m = ask(addr, "X.example.test.", A, None).unwrap();
    check(&m, "X.example.test.", A, Want::NoData);
    check(
        &ask(addr, "_acme-challenge.x.example.test.", AAAA, None).unwrap(),
        owner,
        AAAA,
        Want::NoData,
    );

    let r = t.run(&["del", owner, V1]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    until("the challenge gone", &|| {
        rcode(owner, TXT) == ResponseCode::NXDomain
    });
    for (name, rtype) in [(owner, TXT), (owner, AAAA), ("x.example.test.", A)] {
        let m = ask(addr, name, rtype, None).unwrap();
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NXDomain,
            "{name}\n{m}"
        );
        assert!(m.metadata.authoritative && m.answers.is_empty(), "{m}");
        assert_eq!(m.authorities.len(), 1, "{m}");
    }
    // Both changes were deltas: the index was changed, not rebuilt.
    let log = run.log();
    assert_eq!(log.matches("taken as a delta").count(), 2, "{log}");
}

/// The CPU seconds `zonedrop serve` (pid) spends answering `names`, each
/// asked once.
fn cost(pid: u32, addr: SocketAddr, names: &[(String, RecordType)], want: ResponseCode) -> f64 {
    let before = cpu_seconds(pid);
    for (name, rtype) in names {
        let m = ask(addr, name, *rtype, None).unwrap_or_else(|| panic!("no answer for {name}"));
        assert_eq!(m.metadata.response_code, want, "{name}");
    }
    cpu_seconds(pid) - before
}

/// In a zone of 20,000 names, distinct NXDOMAIN and NODATA questions
/// (what the answer cache cannot hold) cost no more than distinct
/// positive ones: hickory alone scanned the whole zone for each, so that
/// random names kept a core busy at a few dozen queries a second.
#[test]
fn negative_answers_cost_no_more_than_positive_ones_in_a_big_zone() {
    const NAMES: usize = 20_000;
    const ASKED: usize = 400;
    let mut text = String::from(
        "$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n\
         @ IN NS ns1\nns1 IN A 127.0.0.1\n",
    );
    for i in 0..NAMES {
        text.push_str(&format!("h{i} IN A 192.0.2.1\n"));
    }
    let t = Tree::new();
    let (serve, addr) = serve(&t, &text);
    let pid = serve.child.id();
    let pick = |i: usize| (i * 7919) % NAMES;
    let positive: Vec<_> = (0..ASKED)
        .map(|i| (format!("h{}.example.test.", pick(i)), RecordType::A))
        .collect();
    let nxdomain: Vec<_> = (0..ASKED)
        .map(|i| (format!("nx{i}.example.test."), RecordType::A))
        .collect();
    let nodata: Vec<_> = (0..ASKED)
        .map(|i| {
            (
                format!("h{}.example.test.", pick(i + ASKED)),
                RecordType::TXT,
            )
        })
        .collect();
    let positive = cost(pid, addr, &positive, ResponseCode::NoError);
    let nxdomain = cost(pid, addr, &nxdomain, ResponseCode::NXDomain);
    let nodata = cost(pid, addr, &nodata, ResponseCode::NoError);
    let figures =
        format!("{ASKED} questions each: positive {positive:.3} s, NXDOMAIN {nxdomain:.3} s, NODATA {nodata:.3} s of CPU");
    eprintln!("{figures}");
    // A tick of slack (10 ms) on each side for the clock's granularity.
    let bound = 2.0 * positive + 0.05;
    assert!(nxdomain <= bound && nodata <= bound, "{figures}");
}
