//! The live side driven from outside: `zonedrop serve` started as the real
//! binary on 127.0.0.1 and a port picked here, asked with `dig`; `zonedrop
//! wait` against it; and NSD and Knot as secondaries that `zonedrop
//! notify` makes transfer the zone. Every server started here listens on 127.0.0.1 only
//! and is killed by PID when its guard drops.

use crate::support::{cpu_seconds, free_port, knot_secondary_conf, need, zonedrop, Daemon};
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const VALUE1: &str = "first-challenge-value";
const VALUE2: &str = "second-challenge-value";

/// A server started here, killed by PID when dropped.
type Guard = Daemon;

fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> Guard {
    Daemon::start(name, cmd, log)
}

fn zone_text(serial: u32, txt: &str, extra: &str) -> String {
    format!(
        "$ORIGIN example.test.\n$TTL 60\n\
         @ IN SOA ns1 hostmaster {serial} 3600 600 86400 60\n\
         @ IN NS ns1\n\
         ns1 IN A 127.0.0.1\n\
         _acme-challenge IN TXT \"{txt}\"\n\
         www IN CNAME host\n\
         host IN A 192.0.2.1\n\
         *.wild IN TXT \"wildcard\"\n{extra}"
    )
}

/// A config folder: zonedrop.toml + unsigned/example.test.
struct Site {
    dir: tempfile::TempDir,
    port: u16,
}

impl Site {
    fn new(allow_axfr: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        std::fs::create_dir(dir.path().join("unsigned")).unwrap();
        std::fs::write(
            dir.path().join("zonedrop.toml"),
            format!(
                "[[zone]]\nname = \"example.test\"\n\
                 [serve]\nlisten = [\"127.0.0.1:{port}\"]\nallow_axfr = [{allow_axfr}]\n"
            ),
        )
        .unwrap();
        let site = Site { dir, port };
        site.publish(&zone_text(1, VALUE1, ""));
        site
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("zonedrop.toml")
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// A UDP socket talking to the responder, for packets built by hand.
    fn udp_client(&self, timeout: Duration) -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(self.addr()).unwrap();
        socket.set_read_timeout(Some(timeout)).unwrap();
        socket
    }

    /// Write the published zone the way the builder does: temp file, rename.
    fn publish(&self, text: &str) {
        let unsigned = self.dir.path().join("unsigned");
        let mut tmp = tempfile::NamedTempFile::new_in(&unsigned).unwrap();
        tmp.write_all(text.as_bytes()).unwrap();
        tmp.persist(unsigned.join("example.test")).unwrap();
    }

    fn zonedrop(&self) -> Command {
        let mut c = zonedrop();
        c.arg("--config").arg(self.config());
        c
    }

    /// `zonedrop serve`, returned once it answers.
    /// `zonedrop serve`, returned once it answers: its own answers (it
    /// says it listens and is still running), not those of some other
    /// server that took the port first.
    fn serve(&self) -> Guard {
        let mut guard = spawn(
            "zonedrop serve",
            self.zonedrop().arg("serve"),
            self.dir.path().join("serve.log"),
        );
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(status)) = guard.child.try_wait() {
                panic!("zonedrop serve ended ({status}); its log:\n{}", guard.log());
            }
            if guard.log().contains("answering on ")
                && dig(self.port, &["example.test", "SOA", "+short"]).contains("hostmaster")
            {
                return guard;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("zonedrop serve does not answer; its log:\n{}", guard.log());
    }
}

fn dig(port: u16, args: &[&str]) -> String {
    need("dig", "bind9-dnsutils");
    let out = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            "+norec",
            "+time=1",
            "+tries=1",
        ])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Ask until `check` holds or `within` passes; the last answer either way.
fn dig_until(port: u16, args: &[&str], within: Duration, check: impl Fn(&str) -> bool) -> String {
    let until = Instant::now() + within;
    loop {
        let out = dig(port, args);
        if check(&out) || Instant::now() >= until {
            return out;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn serve_answers_authoritatively() {
    let site = Site::new("\"127.0.0.1\"");
    let _serve = site.serve();
    let p = site.port;

    let out = dig(p, &["_acme-challenge.example.test", "TXT"]);
    assert!(out.contains("flags: qr aa;"), "AA not set:\n{out}");
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains(&format!("\"{VALUE1}\"")), "{out}");
    assert!(
        out.contains("; EDNS: version: 0"),
        "no OPT in the answer:\n{out}"
    );

    let out = dig(p, &["nothing.example.test", "A"]);
    assert!(
        out.contains("status: NXDOMAIN") && out.contains("flags: qr aa;"),
        "{out}"
    );
    assert!(out.contains("AUTHORITY: 1"), "{out}");
    assert!(
        out.contains("IN\tSOA\tns1.example.test."),
        "no SOA in authority:\n{out}"
    );

    let out = dig(p, &["_acme-challenge.example.test", "AAAA"]);
    assert!(
        out.contains("status: NOERROR") && out.contains("ANSWER: 0"),
        "{out}"
    );
    assert!(
        out.contains("IN\tSOA\tns1.example.test."),
        "NODATA without SOA:\n{out}"
    );

    let out = dig(p, &["www.example.test", "A", "+short"]);
    assert_eq!(out, "host.example.test.\n192.0.2.1\n");
    let out = dig(p, &["anything.wild.example.test", "TXT", "+short"]);
    assert_eq!(out, "\"wildcard\"\n");

    let out = dig(p, &["example.org", "A"]);
    assert!(out.contains("status: REFUSED"), "outside the zones:\n{out}");

    let out = dig(p, &["example.test", "AXFR"]);
    assert!(
        out.contains("XFR size: 8 records"),
        "AXFR from 127.0.0.1:\n{out}"
    );

    // dig always transfers over TCP: ask over UDP by hand.
    let mut axfr = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    axfr.extend_from_slice(b"\x07example\x04test\x00\x00\xfc\x00\x01");
    let socket = site.udp_client(Duration::from_secs(1));
    socket.send(&axfr).unwrap();
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).unwrap();
    assert!(n >= 12 && buf[3] & 0x0f == 4, "AXFR over UDP is not NOTIMP");

    let out = dig(p, &["+opcode=notify", "example.test", "SOA"]);
    assert!(out.contains("opcode: NOTIFY, status: NOERROR"), "{out}");
    assert!(out.contains("flags: qr aa"), "{out}");
}

#[test]
fn axfr_is_refused_outside_allow_axfr() {
    let site = Site::new("\"192.0.2.53\"");
    let serve = site.serve();
    let out = dig(site.port, &["example.test", "AXFR"]);
    assert!(
        out.contains("Transfer failed") && !out.contains("XFR size"),
        "{out}"
    );
    assert!(serve.log().contains("zone transfer refused to 127.0.0.1"));
    // and the server still answers
    let out = dig(
        site.port,
        &["_acme-challenge.example.test", "TXT", "+short"],
    );
    assert_eq!(out, format!("\"{VALUE1}\"\n"));
}

#[test]
fn a_republished_zone_is_answered_within_a_second() {
    let site = Site::new("");
    let serve = site.serve();
    // Without dig's random cookie every ask is the same bytes but the ID.
    let args = ["_acme-challenge.example.test", "TXT", "+short", "+nocookie"];
    // Asked twice, so the answer sits in the UDP path's cache: the reload
    // must replace it, not wait for it to age.
    for _ in 0..2 {
        assert_eq!(dig(site.port, &args), format!("\"{VALUE1}\"\n"));
    }
    site.publish(&zone_text(2, VALUE2, ""));
    let want = format!("\"{VALUE2}\"\n");
    let out = dig_until(site.port, &args, Duration::from_secs(1), |o| o == want);
    assert_eq!(out, want, "log:\n{}", serve.log());
    assert!(serve
        .log()
        .contains("zone example.test. reloaded (serial 2)"));

    // A broken file keeps the old zone and is reported once, by file name.
    site.publish("$ORIGIN example.test.\n@ IN SOA ( broken\n");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(dig(site.port, &args), want);
    let log = serve.log();
    let file = site.dir.path().join("unsigned/example.test");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(errors[0].contains(&format!(
        "{}: cannot load zone example.test.",
        file.display()
    )));
    assert!(errors[0].contains("still serving the previous version"));

    // A zone with data beside a CNAME is refused the same way.
    site.publish(&zone_text(3, "x", "www IN TXT \"beside the cname\"\n"));
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(dig(site.port, &args), want);
}

/// The UDP path answers a question it has seen from a cache of encoded
/// answers: each asker must still get its own ID and its own spelling of
/// the name back (resolvers that randomise case check it), and an answer
/// too big for 512 octets stays truncated without EDNS and whole with it.
#[test]
fn repeated_questions_keep_their_id_case_and_size() {
    let big: String = (0..6)
        .map(|i| format!("big IN TXT \"{}\"\n", format!("{i}").repeat(200)))
        .collect();
    let site = Site::new("");
    site.publish(&zone_text(1, VALUE1, &big));
    let _serve = site.serve();
    let socket = site.udp_client(Duration::from_secs(2));
    let ask = |id: u16, name: &[u8]| {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        q.extend_from_slice(name);
        q.extend_from_slice(&[0, 16, 0, 1]); // TXT IN
        socket.send(&q).unwrap();
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).unwrap();
        (q, buf[..n].to_vec())
    };
    let lower = b"\x0f_acme-challenge\x07example\x04test\x00";
    let mixed = b"\x0f_AcMe-ChAlLeNgE\x07eXaMpLe\x04TeSt\x00";
    let mut answers = Vec::new();
    for (id, name) in [
        (0x1111, lower),
        (0x2222, lower),
        (0x3333, mixed),
        (0x4444, mixed),
    ] {
        let (q, a) = ask(id, name);
        assert_eq!(a[..2], q[..2], "ID {id:#x} not echoed");
        assert_eq!(a[3] & 0x0f, 0, "not NOERROR");
        assert_eq!(a[12..q.len()], q[12..], "question not echoed as asked");
        assert!(
            a.windows(VALUE1.len()).any(|w| w == VALUE1.as_bytes()),
            "no challenge value in the answer"
        );
        answers.push(a);
    }
    assert_eq!(
        answers[0][2..],
        answers[1][2..],
        "same question, other answer"
    );

    for _ in 0..2 {
        let out = dig(
            site.port,
            &["big.example.test", "TXT", "+noedns", "+ignore"],
        );
        assert!(out.contains("flags: qr aa tc;"), "not truncated:\n{out}");
        let out = dig(site.port, &["big.example.test", "TXT", "+bufsize=4096"]);
        assert!(
            out.contains("flags: qr aa;") && out.contains("ANSWER: 6"),
            "not whole with EDNS:\n{out}"
        );
    }
}

/// Resolvers that randomise the case of each question (0x20) ask one name
/// in a new spelling each time. Every spelling gets its own ID and its own
/// question back, with the records, and is answered from the cache: asking
/// in fresh spellings costs the responder about what asking one spelling
/// again does. Before, the cache was keyed by the exact bytes, so each
/// new spelling went through hickory (several times the CPU per query).
#[test]
fn every_spelling_of_a_name_is_answered_from_the_cache() {
    let site = Site::new("");
    let serve = site.serve();
    let socket = site.udp_client(Duration::from_secs(2));
    let name = b"\x0f_acme-challenge\x07example\x04test\x00";
    let mut seed = 0x9e37_79b9_u32;
    let mut random_spelling = || -> Vec<u8> {
        name.iter()
            .map(|&b| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                if seed & 1 == 1 {
                    b.to_ascii_uppercase()
                } else {
                    b
                }
            })
            .collect()
    };
    let ask = |id: u16, spelling: &[u8]| {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        q.extend_from_slice(spelling);
        q.extend_from_slice(&[0, 16, 0, 1]); // TXT IN
        socket.send(&q).unwrap();
        let mut buf = [0u8; 4096];
        let len = socket.recv(&mut buf).unwrap();
        let a = &buf[..len];
        assert_eq!(a[..2], q[..2], "ID");
        assert_eq!(a[3] & 0x0f, 0, "rcode");
        assert_eq!(
            a[12..q.len()],
            q[12..],
            "question not echoed as asked: {}",
            String::from_utf8_lossy(spelling)
        );
        assert!(
            a[q.len()..]
                .windows(VALUE1.len())
                .any(|w| w == VALUE1.as_bytes()),
            "no challenge value"
        );
        // The answer's owner in the asker's spelling too (a pointer to
        // the question, or the name written as asked), as NSD answers.
        let owner = &a[q.len()..];
        assert!(
            owner.starts_with(&[0xc0, 0x0c]) || owner.starts_with(spelling),
            "the answer names its owner in another spelling than {}",
            String::from_utf8_lossy(spelling)
        );
    };
    // Warmed up first, then the two kinds in turns: the responder's CPU
    // per query drifts in the first second of load on this machine kind
    // (one spelling alone: 0.15 s for the first 10,000, 0.3 s for each
    // next), which compared one kind before the other.
    const ASKS: u16 = 2_500;
    for id in 0..4 * ASKS {
        ask(id, name);
    }
    let pid = serve.child.id();
    let (mut one_spelling, mut fresh_spellings) = (0.0, 0.0);
    for _ in 0..4 {
        let before = cpu_seconds(pid);
        for id in 0..ASKS {
            ask(id, name);
        }
        one_spelling += cpu_seconds(pid) - before;
        let before = cpu_seconds(pid);
        for id in 0..ASKS {
            let spelling = random_spelling();
            ask(id, &spelling);
        }
        fresh_spellings += cpu_seconds(pid) - before;
    }
    eprintln!(
        "live: {} asks cost the responder {:.0} ms of CPU in one spelling, {:.0} ms in fresh ones",
        4 * ASKS,
        one_spelling * 1000.0,
        fresh_spellings * 1000.0
    );
    assert!(
        fresh_spellings < 1.5 * one_spelling + 0.05,
        "fresh spellings cost {fresh_spellings:.2} s of CPU, one spelling {one_spelling:.2} s"
    );
}

#[test]
fn malformed_packets_get_formerr_or_silence() {
    let site = Site::new("");
    let serve = site.serve();
    let socket = site.udp_client(Duration::from_millis(500));
    let header = |qd: u16, an: u16, ns: u16, ar: u16| {
        let mut h = vec![0x12, 0x34, 0x00, 0x00];
        for n in [qd, an, ns, ar] {
            h.extend_from_slice(&n.to_be_bytes());
        }
        h
    };
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("shorter than a header", vec![0x12, 0x34, 0x01]),
        ("empty", vec![]),
    ];
    let mut truncated = header(1, 0, 0, 0);
    truncated.extend_from_slice(b"\x07example\x04te");
    cases.push(("truncated question", truncated));
    let mut pointer = header(1, 0, 0, 0);
    pointer.extend_from_slice(&[0xc0, 0x0c, 0x00, 0x10, 0x00, 0x01]); // points at itself
    cases.push(("label pointer loop", pointer));
    let mut forward = header(1, 0, 0, 0);
    forward.extend_from_slice(&[0xc0, 0xff, 0x00, 0x10, 0x00, 0x01]); // points past the end
    cases.push(("label pointer past the end", forward));
    let mut huge = header(0xffff, 0xffff, 0xffff, 0xffff);
    huge.extend_from_slice(b"\x07example\x04test\x00\x00\x10\x00\x01");
    cases.push(("huge counts", huge));
    let mut long = header(1, 0, 0, 0);
    long.extend(std::iter::repeat_n(0x3f, 300));
    cases.push(("label run past 255 octets", long));
    for (what, packet) in cases {
        socket.send(&packet).unwrap();
        let mut buf = [0u8; 4096];
        match socket.recv(&mut buf) {
            Ok(n) => {
                assert!(n >= 12, "{what}: short answer");
                assert_eq!(buf[0..2], [0x12, 0x34], "{what}: wrong ID");
                assert_eq!(
                    buf[3] & 0x0f,
                    1,
                    "{what}: not FORMERR: rcode {}",
                    buf[3] & 0x0f
                );
            }
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "{what}: {e}; the responder's log:\n{}",
                serve.log()
            ),
        }
    }
    let out = dig(
        site.port,
        &["_acme-challenge.example.test", "TXT", "+short"],
    );
    assert_eq!(
        out,
        format!("\"{VALUE1}\"\n"),
        "the server stopped answering"
    );
}

#[test]
fn wait_succeeds_when_served_and_names_the_server_at_timeout() {
    let site = Site::new("");
    let _serve = site.serve();
    let server = site.addr().to_string();
    let args = ["--server", &server, "--interval", "100ms"];

    let out = run(site
        .zonedrop()
        .args([
            "wait",
            "_acme-challenge.example.test",
            VALUE1,
            "--timeout",
            "3s",
        ])
        .args(args));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");

    // Through a CNAME at the challenge name.
    site.publish(&zone_text(
        2,
        VALUE1,
        "_acme-challenge.www IN CNAME _acme-challenge\n",
    ));
    let out = run(site
        .zonedrop()
        .args([
            "wait",
            "_acme-challenge.www.example.test",
            VALUE1,
            "--timeout",
            "3s",
        ])
        .args(args));
    assert!(out.status.success(), "{}", stderr(&out));

    let started = Instant::now();
    let out = run(site
        .zonedrop()
        .args([
            "wait",
            "_acme-challenge.example.test",
            VALUE2,
            "--timeout",
            "1s",
        ])
        .args(args));
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        stderr(&out),
        format!(
            "zonedrop: _acme-challenge.example.test. TXT \"{VALUE2}\" is not visible after 1s on \
             {server} (1 other TXT at _acme-challenge.example.test.)\n"
        )
    );

    // Without --server: the zone's NS, from the published file (port 53 is
    // not ours, so only check that the right server is named).
    let out = run(site.zonedrop().args([
        "wait",
        "_acme-challenge.example.test",
        VALUE2,
        "--timeout",
        "1s",
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(" on 127.0.0.1:53 ("),
        "{}",
        stderr(&out)
    );
}

/// Records that make a zone bigger than one DNS message over TCP can
/// hold (65,535 octets): its transfer needs several.
fn over_64_kib() -> String {
    (0..1500)
        .map(|i| format!("big{i} IN TXT \"{}\"\n", "x".repeat(100)))
        .collect()
}

/// An AXFR of a zone over 64 KiB comes in several messages, each whole,
/// the SOA first and last: `dig` and `kdig` take it. Before, hickory put
/// the zone into one message, which was cut off at 65,535 octets.
#[test]
fn a_zone_over_64_kib_transfers_in_several_messages() {
    need("kdig", "knot-dnsutils");
    let site = Site::new("\"127.0.0.1\"");
    site.publish(&zone_text(1, VALUE1, &over_64_kib()));
    let _serve = site.serve();
    let out = dig(site.port, &["example.test", "AXFR"]);
    let size = out
        .lines()
        .find_map(|l| l.strip_prefix(";; XFR size: "))
        .unwrap_or_else(|| panic!("{out}"));
    let messages: usize = size
        .split("messages ")
        .nth(1)
        .and_then(|m| m.split(',').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("{size}"));
    assert!(size.starts_with("1508 records") && messages >= 3, "{size}");
    assert!(out.contains("big1499.example.test."), "{out}");

    let out = Command::new("kdig")
        .args([
            "@127.0.0.1",
            "-p",
            &site.port.to_string(),
            "example.test",
            "AXFR",
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains(&format!("({messages} messages, 1508 records)")),
        "{out}"
    );
}

/// A secondary name server of `zonedrop serve`, started by `start(dir,
/// port, primary port)`, transfers the zone, is NOTIFYed of serial 2 by
/// `zonedrop notify`, and then answers the new challenge. Serial 2 is
/// over 64 KiB, so that transfer takes several messages.
fn secondary_follows_notify(name: &'static str, start: impl Fn(&Path, u16, u16) -> Command) {
    let site = Site::new("\"127.0.0.1\"");
    let serve = site.serve();
    let dir = site.dir.path().join(name);
    std::fs::create_dir(&dir).unwrap();
    let port = free_port();
    let secondary = spawn(name, &mut start(&dir, port, site.port), dir.join("log"));
    let args = ["_acme-challenge.example.test", "TXT", "+short"];
    let first = format!("\"{VALUE1}\"\n");
    let out = dig_until(port, &args, Duration::from_secs(10), |o| o == first);
    assert_eq!(
        out,
        first,
        "{name} did not transfer the zone; its log:\n{}",
        secondary.log()
    );

    // Publish serial 2; once zonedrop serves it, NOTIFY makes it fetch it.
    site.publish(&zone_text(2, VALUE2, &over_64_kib()));
    let soa = dig_until(
        site.port,
        &["example.test", "SOA", "+short"],
        Duration::from_secs(2),
        |o| o.contains(" 2 3600 "),
    );
    assert!(soa.contains(" 2 3600 "), "{}", serve.log());
    let out = run(site
        .zonedrop()
        .args(["notify", "example.test", "--to"])
        .arg(format!("127.0.0.1:{port}")));
    assert!(out.status.success(), "{}", stderr(&out));
    let second = format!("\"{VALUE2}\"\n");
    let out = dig_until(port, &args, Duration::from_secs(5), |o| o == second);
    assert_eq!(
        out,
        second,
        "{name} did not follow the NOTIFY; its log:\n{}",
        secondary.log()
    );
    let last = dig(port, &["big1499.example.test", "TXT", "+short"]);
    assert_eq!(last, format!("\"{}\"\n", "x".repeat(100)), "{name}");

    // A target that does not answer is one line naming it.
    let silent = free_port();
    let out = run(site
        .zonedrop()
        .args(["notify", "example.test", "--to"])
        .arg(format!("127.0.0.1:{silent}")));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "zonedrop: NOTIFY example.test. to 127.0.0.1:{silent}: "
        )),
        "{err}"
    );
}

#[test]
fn nsd_transfers_from_serve_after_notify() {
    need("nsd", "nsd");
    secondary_follows_notify("nsd", |dir, port, primary| {
        let d = dir.display();
        let conf = dir.join("nsd.conf");
        // request-xfr AXFR: no IXFR attempt first, the transfer is an AXFR.
        std::fs::write(
            &conf,
            format!(
                "server:\n  ip-address: 127.0.0.1\n  port: {port}\n  do-ip6: no\n  \
                 username: \"\"\n  chroot: \"\"\n  zonesdir: \"{d}\"\n  database: \"\"\n  \
                 pidfile: \"{d}/nsd.pid\"\n  xfrdfile: \"{d}/xfrd.state\"\n  \
                 zonelistfile: \"{d}/zone.list\"\n  xfrdir: \"{d}\"\n  server-count: 1\n  \
                 verbosity: 2\n\
                 remote-control:\n  control-enable: no\n\
                 zone:\n  name: example.test\n  zonefile: example.test.zone\n  \
                 allow-notify: 127.0.0.1 NOKEY\n  request-xfr: AXFR 127.0.0.1@{primary} NOKEY\n"
            ),
        )
        .unwrap();
        let mut c = Command::new("nsd");
        c.arg("-d").arg("-c").arg(conf);
        c
    });
}

#[test]
fn knot_transfers_from_serve_after_notify() {
    need("knotd", "knot");
    secondary_follows_notify("knotd", |dir, port, primary| {
        let conf = knot_secondary_conf(dir, port, primary);
        let mut c = Command::new("knotd");
        c.arg("-c").arg(conf);
        c
    });
}

#[test]
fn a_busy_port_is_reported_with_a_way_out() {
    let site = Site::new("");
    let _busy = UdpSocket::bind(site.addr()).unwrap();
    let out = run(site.zonedrop().arg("serve"));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("zonedrop: cannot listen on UDP {}: ", site.addr()))
            && err.contains("another program already answers there"),
        "{err}"
    );
}
