//! The builder: published zones checked by the real zone checkers, the
//! hostile drop corpus, failures that keep the last good zone, serials, the
//! idle run, on_change, the lock, and `init`.

use crate::support::*;
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_proto::serialize::txt::Parser;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const V3: &str = "ZTRx1Ckl1-tM05o5zaizTTA0yUy5AGereMgSNWC6Ll8";

/// A tree with the shipped example zones and a config around them.
fn example_tree(extra_config: &str) -> Tree {
    let t = Tree::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones");
    copy_dir(&src, &t.path("zones"));
    t.mkdir("drop");
    t.write(
        "zonedrop.toml",
        &format!(
            "[[drop]]\npath = \"drop\"\nnames = [\"example.test\", \"mail.example.test\", \"example.net\"]\n\
             [[zone]]\nname = \"example.test\"\nserial = \"increment\"\n\
             [[zone]]\nname = \"example.net\"\nserial = \"increment\"\n{extra_config}"
        ),
    );
    t
}

/// Every record of a published zone, parsed (not grepped), as text.
fn records(path: &Path, zone: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let (_, map) = Parser::new(text.as_str(), None, Some(zone.parse().unwrap()))
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    map.values()
        .flat_map(|set| {
            set.records_without_rrsigs()
                .cloned()
                .collect::<Vec<Record>>()
        })
        .filter(|r| r.record_type() != RecordType::SOA)
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect()
}

fn txt(owner: &str, value: &str) -> String {
    format!(
        "{owner} TXT {}",
        RData::TXT(hickory_proto::rr::rdata::TXT::new(vec![value.to_string()]))
    )
}

fn serial_of(path: &Path) -> u32 {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text.lines().find(|l| l.contains(" IN SOA ")).unwrap();
    line.split_whitespace().nth(6).unwrap().parse().unwrap()
}

fn check_with_all_checkers(t: &Tree, zone: &str) {
    let file = t.path(&format!("unsigned/{zone}"));
    let file = file.to_str().unwrap();
    need("named-checkzone", "bind9-utils");
    need("kzonecheck", "knot-dnssecutils");
    need("nsd-checkzone", "nsd");
    for (program, args) in [
        (
            "named-checkzone",
            vec!["-k", "fail", "-n", "fail", zone, file],
        ),
        ("kzonecheck", vec!["-o", zone, file]),
        ("nsd-checkzone", vec![zone, file]),
    ] {
        let out = std::process::Command::new(program)
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program} {zone}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn published_zones_pass_named_knot_and_nsd_checkers() {
    let t = example_tree("");
    // Apex + wildcard values on one owner, and an aliased challenge.
    for (owner, v) in [
        ("_acme-challenge.example.test", V1),
        ("_acme-challenge.example.test", V2),
        ("_acme-challenge.mail.example.test", V3),
    ] {
        assert_eq!(t.run(&["add", owner, v]).code, 0);
    }
    let r = t.run(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "example.test: serial none -> 2026112400, 2 challenges\nexample.net: serial none -> 1, 1 challenge\n"
    );
    assert_eq!(r.stderr, "");
    for zone in ["example.test", "example.net"] {
        check_with_all_checkers(&t, zone);
    }
    let test = records(&t.path("unsigned/example.test"), "example.test.");
    assert!(test.contains(&txt("_acme-challenge.example.test.", V1)));
    assert!(test.contains(&txt("_acme-challenge.example.test.", V2)));
    // The alias: never beside the CNAME, always at its target.
    assert!(!test
        .iter()
        .any(|r| r.starts_with("_acme-challenge.mail.example.test. TXT")));
    assert!(
        test.contains("_acme-challenge.mail.example.test. CNAME _acme-challenge.mail.example.net.")
    );
    let net = records(&t.path("unsigned/example.net"), "example.net.");
    assert!(net.contains(&txt("_acme-challenge.mail.example.net.", V3)));
    // The long TXT (several strings) and the TLSA from extra/ survived.
    assert!(test
        .iter()
        .any(|r| r.starts_with("sel1._domainkey.example.test. TXT")));
    assert!(test
        .iter()
        .any(|r| r.starts_with("_25._tcp.mail.example.test. TLSA 3 1 1 0c72ac70")));
}

#[test]
fn hostile_drop_corpus_yields_only_whitelisted_records() {
    // Every refusal on a line of its own (the default caps new refusals
    // at 20 lines a build: tests/cli/refusals.rs).
    let t = example_tree(
        "[[drop]]\npath = \"flood\"\n[policy]\nmax_files = 1000\n[build]\nrefusal_lines = 100000\n",
    );
    // Baseline: the zones with no drop at all.
    assert_eq!(t.run(&["build"]).code, 0);
    let base_test = records(&t.path("unsigned/example.test"), "example.test.");
    let base_net = records(&t.path("unsigned/example.net"), "example.net.");

    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hostile");
    let mut hostile: Vec<String> = Vec::new();
    for e in std::fs::read_dir(&corpus).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), t.path("drop").join(e.file_name())).unwrap();
        hostile.push(e.file_name().to_string_lossy().into_owned());
    }
    // Made here: a symlink to a secret, a FIFO, a folder, a 100 MB file.
    t.write(
        "secret",
        &format!("_acme-challenge.example.test. 60 IN TXT \"{V3}\"\n"),
    );
    std::os::unix::fs::symlink(t.path("secret"), t.path("drop/symlink-to-secret")).unwrap();
    let fifo = std::ffi::CString::new(t.path("drop/fifo").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    t.mkdir("drop/a-folder");
    std::fs::File::create(t.path("drop/huge"))
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    hostile.extend(["symlink-to-secret", "fifo", "a-folder", "huge"].map(String::from));
    // A hard link to the secret, a fragment dated in 2100 (it would
    // outlive max_age), names that hold control characters or are not
    // UTF-8 (shown escaped).
    std::fs::hard_link(t.path("secret"), t.path("drop/hard-link")).unwrap();
    let future = t.write(
        "drop/future-mtime",
        &format!(
            "_acme-challenge.example.test. 60 IN TXT \"F{}\"\n",
            &V3[1..]
        ),
    );
    std::fs::File::options()
        .write(true)
        .open(&future)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(4_102_444_800))
        .unwrap();
    t.write("drop/ctl\nzonedrop: forged\u{1b}[31m", "junk\n");
    std::fs::write(
        t.path("drop")
            .join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"latin1-\xe9")),
        "junk\n",
    )
    .unwrap();
    hostile.extend(
        [
            "hard-link",
            "future-mtime",
            "ctl\\nzonedrop: forged\\u{1b}[31m",
            "latin1-\\xe9",
        ]
        .map(String::from),
    );
    // 10,000 junk files in a second drop, and a good fragment written last.
    t.mkdir("flood");
    for i in 0..10_000 {
        std::fs::write(t.path(&format!("flood/junk{i:05}")), "junk\n").unwrap();
    }
    std::thread::sleep(Duration::from_millis(20));
    // The good ones, beside all that (one value begins with `-`).
    let dash = format!("-{}", &V1[1..]);
    for v in [V1, dash.as_str()] {
        assert_eq!(
            t.run(&["--drop", "drop", "add", "_acme-challenge.example.test", v])
                .code,
            0
        );
    }
    assert_eq!(
        t.run(&[
            "--drop",
            "flood",
            "add",
            "_acme-challenge.www.example.test",
            V2
        ])
        .code,
        0
    );

    // Files appearing and vanishing while the builder reads.
    let churn_dir = t.path("drop");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let churn = std::thread::spawn(move || {
        let mut n = 0;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let p = churn_dir.join(format!("vanishing{}", n % 50));
            let _ = std::fs::write(&p, "_acme-challenge.example.test. 60 IN A 192.0.2.1\n");
            let _ = std::fs::remove_file(&p);
            n += 1;
        }
    });
    // Read the output while waiting (10,000 refusals fill a pipe), and
    // give up if the build hangs.
    let child = t
        .cmd(&["build"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let out = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the build hangs")
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.join().unwrap();
    let status = out.status;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(status.success(), "{stderr}");

    // Exactly the whitelisted records were added, nothing else, anywhere.
    let test = records(&t.path("unsigned/example.test"), "example.test.");
    let added: BTreeSet<_> = test.difference(&base_test).cloned().collect();
    let expected: BTreeSet<_> = [
        txt("_acme-challenge.example.test.", V1),
        txt("_acme-challenge.example.test.", &dash),
        txt("_acme-challenge.www.example.test.", V2),
    ]
    .into();
    assert_eq!(added, expected);
    assert!(base_test.is_subset(&test));
    assert_eq!(
        records(&t.path("unsigned/example.net"), "example.net."),
        base_net
    );
    for zone in ["example.test", "example.net"] {
        check_with_all_checkers(&t, zone);
    }
    // A one-line refusal naming each hostile file.
    for name in &hostile {
        let line = stderr
            .lines()
            .find(|l| l.contains(&format!("/drop/{name}: refused: ")))
            .unwrap_or_else(|| panic!("no refusal for {name} in:\n{stderr}"));
        assert!(line.starts_with("zonedrop: "), "{line}");
    }
    assert!(
        stderr.contains("9001 files over the limit of 1000 (policy.max_files) were ignored"),
        "{stderr}"
    );
    // Nothing of the secret was read, no name printed raw.
    assert!(!stderr.contains(&V3[1..]));
    assert!(!stderr.contains('\u{1b}') && !stderr.contains("\nzonedrop: forged"));
}

#[test]
fn broken_primary_keeps_last_good_zone_while_others_publish() {
    let t = example_tree("");
    assert_eq!(t.run(&["build"]).code, 0);
    let good = std::fs::read(t.path("unsigned/example.net")).unwrap();
    let mut primary = std::fs::read_to_string(t.path("zones/primary/example.net")).unwrap();
    primary.push_str("broken IN A 300.1.2.3\n");
    std::fs::write(t.path("zones/primary/example.net"), primary).unwrap();
    assert_eq!(t.run(&["add", "_acme-challenge.example.test", V1]).code, 0);
    let r = t.run(&["build"]);
    assert_eq!(r.code, 1);
    let line = r.stderr.lines().next().unwrap();
    assert!(
        line.starts_with("zonedrop: ") && line.contains("zones/primary/example.net:5: "),
        "{}",
        r.stderr
    );
    assert_eq!(
        r.stdout,
        "example.test: serial 2026112400 -> 2026112401, 1 challenge\n"
    );
    assert_eq!(std::fs::read(t.path("unsigned/example.net")).unwrap(), good);
    // cron hears about it again on the next run.
    let r = t.run(&["build"]);
    assert_eq!((r.code, r.stdout.as_str()), (1, ""));
    assert!(r.stderr.contains("zones/primary/example.net:5: "));
}

#[test]
fn serials_move_only_with_content() {
    let t = example_tree("");
    assert_eq!(t.run(&["build"]).code, 0);
    let out = t.path("unsigned/example.test");
    let before = std::fs::metadata(&out).unwrap().modified().unwrap();
    let serial = serial_of(&out);
    std::thread::sleep(Duration::from_millis(20));
    // Nothing changed: silent, nothing rewritten, even when forced.
    for args in [vec!["build"], vec!["build", "--force"]] {
        let r = t.run(&args);
        assert_eq!(
            (r.code, r.stdout.as_str(), r.stderr.as_str()),
            (0, "", ""),
            "{args:?}"
        );
        assert_eq!(std::fs::metadata(&out).unwrap().modified().unwrap(), before);
    }
    // One fragment: exactly +1.
    assert_eq!(t.run(&["add", "_acme-challenge.example.test", V1]).code, 0);
    let r = t.run(&["build"]);
    assert_eq!(
        r.stdout,
        format!(
            "example.test: serial {serial} -> {}, 1 challenge\n",
            serial + 1
        )
    );
    assert_eq!(serial_of(&out), serial + 1);
    // Its removal: +1 again; state lost: the published serial is the base.
    assert_eq!(t.run(&["del", "_acme-challenge.example.test", V1]).code, 0);
    assert_eq!(t.run(&["build", "--quiet"]).stdout, "");
    assert_eq!(serial_of(&out), serial + 2);
    std::fs::remove_dir_all(t.path("state")).unwrap();
    assert_eq!(t.run(&["add", "_acme-challenge.example.test", V2]).code, 0);
    assert_eq!(t.run(&["build"]).code, 0);
    assert_eq!(serial_of(&out), serial + 3);
}

#[test]
fn errors_name_the_file_and_line() {
    let cases = [
        ("www2 IN A 192.0.2.1\nwww2 IN A 192.0.2.1\n", "zones/primary/example.net:6: duplicate record"),
        ("alias IN CNAME example.net.\nalias IN A 192.0.2.1\n", "zones/primary/example.net:6: `alias.example.net.` has a CNAME and other data"),
        ("c2 IN CNAME a.\nc2 IN CNAME b.\n", "zones/primary/example.net:6: `c2.example.net.` has more than one CNAME"),
        ("outside.example.org. IN A 192.0.2.1\n", "zones/primary/example.net:5: the owner `outside.example.org.` lies outside the zone example.net."),
        ("$INCLUDE /etc/passwd\n", "zones/primary/example.net:5: $INCLUDE /etc/passwd: /etc/passwd lies outside the zone source folders"),
        ("$GENERATE 1-3 h$ A 192.0.2.$\n", "zones/primary/example.net:5: the directive $GENERATE is not supported"),
        ("x IN MX mail\n", "zones/primary/example.net:5: error parsing number: invalid digit found in string"),
        ("@ IN SOA a. b. 1 2 3 4 5\n", "zones/primary/example.net:5: `example.net.` has more than one SOA record"),
        ("y IN TXT (\"open\"\n", "zones/primary/example.net:5: `(` is not closed"),
    ];
    for (append, expected) in cases {
        let t = example_tree("");
        let path = t.path("zones/primary/example.net");
        let mut primary = std::fs::read_to_string(&path).unwrap();
        primary.push_str(append);
        std::fs::write(&path, primary).unwrap();
        let r = t.run(&["check"]);
        assert_eq!(r.code, 1, "{append}");
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{append}: {}", r.stderr);
        assert!(
            lines[0].contains(expected),
            "{append}: {:?} lacks {expected:?}",
            lines[0]
        );
        assert!(!t.path("unsigned/example.net").exists(), "check published");
    }
    // No NS at the apex.
    let t = example_tree("");
    std::fs::write(t.path("zones/primary/example.net"), "@ IN A 192.0.2.1\n").unwrap();
    let r = t.run(&["build"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("zones/primary/example.net:1: no NS record at the apex example.net."),
        "{}",
        r.stderr
    );
}

/// The check parses a big zone in slices of a few dozen entries on every
/// core, and a big primary file (this one, 20,000 entries) while it is
/// still being read: conflicts between records far apart (in different
/// slices) and a bad record deep in the file must be found and located as
/// well as neighbours are.
#[test]
fn conflicts_far_apart_are_found_and_located() {
    let filler: String = (0..20_000)
        .map(|i| format!("f{i} IN A 192.0.2.{}\n", i % 250))
        .collect();
    let cases = [
        (
            "www2 IN A 192.0.2.1\n",
            "www2 IN A 192.0.2.1\n",
            "duplicate record: `www2.example.net.` A 192.0.2.1",
        ),
        (
            "alias IN CNAME example.net.\n",
            "alias IN TXT \"x\"\n",
            "`alias.example.net.` has a CNAME and other data (TXT) beside it (RFC 1034 §3.6.2)",
        ),
        (
            "c2 IN CNAME a.\n",
            "c2 IN CNAME b.\n",
            "`c2.example.net.` has more than one CNAME",
        ),
        (
            "",
            "bad IN A 192.0.2.300\n",
            "network address parse error: invalid IPv4 address syntax",
        ),
    ];
    for (first, last, expected) in cases {
        let t = example_tree("");
        let path = t.path("zones/primary/example.net");
        let mut primary = std::fs::read_to_string(&path).unwrap();
        let before = primary.lines().count();
        primary.push_str(first);
        primary.push_str(&filler);
        primary.push_str(last);
        std::fs::write(&path, primary).unwrap();
        let r = t.run(&["check"]);
        assert_eq!(r.code, 1, "{first}{last}: {}", r.stderr);
        let line = before + 20_001 + usize::from(!first.is_empty());
        let want = format!("zones/primary/example.net:{line}: {expected}");
        assert!(
            r.stderr.lines().any(|l| l.ends_with(&want)),
            "{:?} lacks {want:?}",
            r.stderr
        );
    }
}

#[test]
fn check_reports_refusals_and_publishes_nothing() {
    let t = example_tree("");
    t.write(
        "drop/bad",
        "_acme-challenge.example.test. 60 IN A 192.0.2.1\n",
    );
    let r = t.run(&["check"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("/drop/bad: refused: the record type is `A`, only TXT is accepted"),
        "{}",
        r.stderr
    );
    assert!(!t.path("unsigned").exists());
    assert!(t.path("drop/bad").exists());
}

#[test]
fn expired_fragments_are_ignored_and_removed() {
    let t = example_tree("[policy]\nmax_age = \"1h\"\n");
    assert_eq!(t.run(&["add", "_acme-challenge.example.test", V1]).code, 0);
    let old = t.write("drop/old", &line("_acme-challenge.example.test.", 60, V2));
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    let r = t.run(&["build"]);
    assert_eq!(r.code, 0);
    assert!(
        r.stderr.contains("/drop/old: refused: expired"),
        "{}",
        r.stderr
    );
    assert!(!old.exists());
    let zone = records(&t.path("unsigned/example.test"), "example.test.");
    assert!(zone.contains(&txt("_acme-challenge.example.test.", V1)));
    assert!(!zone.contains(&txt("_acme-challenge.example.test.", V2)));
}

#[test]
fn on_change_runs_once_per_changed_zone_and_retries_after_failure() {
    let t = example_tree(
        "[build]\non_change = \"sh -c 'echo {zone} {file} >> hook.log; test ! -e fail'\"\n",
    );
    assert_eq!(t.run(&["build"]).code, 0);
    let log = std::fs::read_to_string(t.path("hook.log")).unwrap();
    let mut lines: Vec<&str> = log.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("example.net ") && lines[0].ends_with("/unsigned/example.net"));
    t.write("fail", "");
    assert_eq!(t.run(&["add", "_acme-challenge.example.test", V1]).code, 0);
    let r = t.run(&["build"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("example.test: on_change `sh -c"),
        "{}",
        r.stderr
    );
    std::fs::remove_file(t.path("fail")).unwrap();
    // Nothing changed in the zone, but the failed command runs again.
    assert_eq!(t.run(&["build"]).code, 0);
    let log = std::fs::read_to_string(t.path("hook.log")).unwrap();
    assert_eq!(
        log.lines()
            .filter(|l| l.starts_with("example.test "))
            .count(),
        3
    );
    assert_eq!(
        log.lines()
            .filter(|l| l.starts_with("example.net "))
            .count(),
        1
    );
}

#[test]
fn a_second_builder_waits_then_says_so() {
    let t = example_tree("[build]\nlock_wait = \"300ms\"\n");
    t.mkdir("state");
    // -o: flock itself holds the lock, not the `sleep` it runs.
    let mut holder = std::process::Command::new("flock")
        .args(["-o", t.path("state/lock").to_str().unwrap(), "sleep", "5"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let r = t.run(&["build"]);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("state/lock: another zonedrop build holds the lock; gave up after 300ms"),
        "{}",
        r.stderr
    );
    assert!(!t.path("unsigned/example.test").exists());
    assert_eq!(t.run(&["build"]).code, 0);
}

#[test]
fn init_makes_a_working_tree() {
    let t = Tree::new();
    let r = t.run(&["init", "site", "--zone", "Mail.Example.ORG"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r: Run = t
        .cmd(&["build"])
        .current_dir(t.path("site"))
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("mail.example.org: serial none -> "),
        "{}",
        r.stdout
    );
    let r: Run = t
        .cmd(&["add", "_acme-challenge.mail.example.org", V1])
        .current_dir(t.path("site"))
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r: Run = t
        .cmd(&["build"])
        .current_dir(t.path("site"))
        .output()
        .unwrap()
        .into();
    assert!(r.stdout.ends_with(", 1 challenge\n"), "{}", r.stdout);
    need("named-checkzone", "bind9-utils");
    let ok = std::process::Command::new("named-checkzone")
        .args([
            "mail.example.org",
            t.path("site/unsigned/mail.example.org").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(ok.status.success());
    // Never over an existing tree.
    let r = t.run(&["init", "site", "--zone", "mail.example.org"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("site/zonedrop.toml: already exists"),
        "{}",
        r.stderr
    );
}

/// A self-signed certificate for `name` with the key in `key` (made if absent).
fn openssl_cert(t: &Tree, key: &str, cert: &str, name: &str) {
    need("openssl", "openssl");
    if !t.path(key).exists() {
        let ok = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(t.path(key))
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-new",
            "-days",
            "30",
            "-subj",
            &format!("/CN={name}"),
            "-key",
        ])
        .arg(t.path(key))
        .arg("-out")
        .arg(t.path(cert))
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn tlsa_records_follow_the_certificate_and_survive_a_bad_file() {
    let t = example_tree(
        "[[tlsa]]\ncert = \"certs/www.pem\"\nnames = [\"www.example.test\"]\nports = [443, 8443]\nttl = 300\n",
    );
    t.mkdir("certs");
    openssl_cert(&t, "certs/www.key", "certs/www.pem", "www.example.test");
    let r = t.run(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let expected = t.run(&[
        "tlsa",
        "--name",
        "www.example.test",
        "--port",
        "443",
        "certs/www.pem",
    ]);
    let rdata = expected
        .stdout
        .split(" IN TLSA ")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    let zone = records(&t.path("unsigned/example.test"), "example.test.");
    for port in [443, 8443] {
        assert!(
            zone.contains(&format!("_{port}._tcp.www.example.test. TLSA {rdata}")),
            "{zone:?}"
        );
    }
    check_with_all_checkers(&t, "example.test");
    let serial = serial_of(&t.path("unsigned/example.test"));

    // A renewal that keeps the key changes nothing.
    std::thread::sleep(Duration::from_millis(20));
    openssl_cert(&t, "certs/www.key", "certs/www.pem", "www.example.test");
    let r = t.run(&["build"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    assert_eq!(serial_of(&t.path("unsigned/example.test")), serial);

    // A half-written certificate: one line naming it, exit 1, records kept.
    let pem = std::fs::read_to_string(t.path("certs/www.pem")).unwrap();
    std::fs::write(t.path("certs/www.pem"), &pem[..pem.len() / 2]).unwrap();
    let r = t.run(&["build"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("certs/www.pem"), "{}", r.stderr);
    let zone = records(&t.path("unsigned/example.test"), "example.test.");
    assert!(zone.contains(&format!("_443._tcp.www.example.test. TLSA {rdata}")));
    assert_eq!(serial_of(&t.path("unsigned/example.test")), serial);
}

/// A big primary part is checked while it is read, the extra entries and
/// the challenges after it: a conflict between the two (data beside a CNAME
/// of the primary, a challenge that copies a record of it) is still found,
/// named where it is, and a challenge that would break the zone refused.
#[test]
fn conflicts_between_a_big_primary_and_what_follows_it_are_found() {
    let filler: String = (0..20_000)
        .map(|i| format!("h{i} IN A 10.0.{}.{}\n", (i >> 8) & 255, i & 255))
        .collect();
    let t = example_tree("[[drop]]\npath = \"open\"\n");
    t.mkdir("open");
    let path = t.path("zones/primary/example.net");
    let mut primary = std::fs::read_to_string(&path).unwrap();
    primary.push_str("alias IN CNAME example.net.\n");
    primary.push_str(&format!("_acme-challenge.copy IN TXT \"{V1}\"\n"));
    primary.push_str(&filler);
    std::fs::write(&path, primary).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() > 256 * 1024);

    // A challenge that repeats a record of the primary part: refused, and
    // the zone published without it.
    let r = t.run(&[
        "--drop",
        "open",
        "add",
        "_acme-challenge.copy.example.net",
        V1,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = t.run(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "refused: it would break zone example.net: duplicate record: `_acme-challenge.copy.example.net.` TXT {V1}"
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout
            .contains("example.net: serial none -> 1, 0 challenges"),
        "{}",
        r.stdout
    );

    // An extra entry beside a CNAME of the primary part: the zone fails,
    // at the extra entry.
    let extra = t.write("zones/extra/clash", "alias.example.net. IN A 192.0.2.1\n");
    let r = t.run(&["check", "--zone", "example.net"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "zonedrop: {}:1: `alias.example.net.` has a CNAME and other data (A) beside it (RFC 1034 §3.6.2)\n",
            extra.display()
        )
    );
}

#[test]
fn a_challenge_never_breaks_a_zone() {
    let t = example_tree("[[drop]]\npath = \"open\"\n");
    t.mkdir("open");
    let path = t.path("zones/primary/example.net");
    let mut primary = std::fs::read_to_string(&path).unwrap();
    // A static copy of a challenge value, and an alias whose target is
    // itself a CNAME to a name without the challenge label.
    primary.push_str(&format!("_acme-challenge IN TXT \"{V1}\"\n"));
    primary
        .push_str("_acme-challenge.hop IN CNAME elsewhere\nelsewhere IN CNAME far.example.org.\n");
    std::fs::write(&path, primary).unwrap();
    let path = t.path("zones/primary/example.test");
    let mut primary = std::fs::read_to_string(&path).unwrap();
    primary.push_str("_acme-challenge.loop IN CNAME _acme-challenge.loop2\n_acme-challenge.loop2 IN CNAME _acme-challenge.loop\n");
    std::fs::write(&path, primary).unwrap();
    assert_eq!(
        t.run(&["--drop", "drop", "add", "_acme-challenge.example.net", V1])
            .code,
        0
    );
    t.write(
        "open/hop",
        &line("_acme-challenge.hop.example.net.", 60, V2),
    );
    t.write(
        "open/loop",
        &line("_acme-challenge.loop.example.test.", 60, V2),
    );
    assert_eq!(t.run(&["add", "_acme-challenge.example.test", V3]).code, 0);
    let r = t.run(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("/drop/_acme-challenge.example.net."),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("refused: it would break zone example.net: duplicate record"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("/open/hop: refused: it would break zone example.net: `elsewhere.example.net.` has a CNAME and other data (TXT)"), "{}", r.stderr);
    assert!(r.stderr.contains("/open/loop: refused: the CNAME chain from `_acme-challenge.loop.example.test.` is longer than 8 or loops"), "{}", r.stderr);
    // Both zones published, with the good challenge.
    let test = records(&t.path("unsigned/example.test"), "example.test.");
    assert!(test.contains(&txt("_acme-challenge.example.test.", V3)));
    check_with_all_checkers(&t, "example.net");
    check_with_all_checkers(&t, "example.test");
}

/// `list` judges a fragment as the build does, with the challenge aliases
/// of the zone sources: an alias that leads out of the managed zones, or in
/// a loop, is refused by both, with the same reason; one that leads into a
/// managed zone is accepted by both.
#[test]
fn list_judges_with_the_challenge_aliases_of_the_sources() {
    let t = example_tree("[[drop]]\npath = \"open\"\n");
    t.mkdir("open");
    let path = t.path("zones/primary/example.net");
    let mut primary = std::fs::read_to_string(&path).unwrap();
    primary.push_str("_acme-challenge.out IN CNAME elsewhere.example.org.\n");
    primary.push_str("_acme-challenge.loop IN CNAME _acme-challenge.loop\n");
    std::fs::write(&path, primary).unwrap();
    for (owner, value) in [
        ("_acme-challenge.out.example.net", V1),
        ("_acme-challenge.loop.example.net", V2),
        ("_acme-challenge.mail.example.test", V3),
    ] {
        let r = t.run(&["--drop", "open", "add", owner, value]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let build = t.run(&["check"]);
    assert_eq!(build.code, 0, "{}", build.stderr);
    let list = t.run(&["list"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    let verdict_of = |owner: &str| -> String {
        let line = list
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{owner}\t")))
            .unwrap_or_else(|| panic!("{owner} not listed:\n{}", list.stdout));
        line.rsplit('\t').next().unwrap().to_string()
    };
    for (owner, why) in [
        (
            "_acme-challenge.out.example.net.",
            "`_acme-challenge.out.example.net.` is a CNAME to `elsewhere.example.org.`, which lies in no zone zonedrop manages",
        ),
        (
            "_acme-challenge.loop.example.net.",
            "the CNAME chain from `_acme-challenge.loop.example.net.` is longer than 8 or loops",
        ),
    ] {
        assert_eq!(verdict_of(owner), format!("refused: {why}"));
        let (name, _) = t
            .drop_files("open")
            .into_iter()
            .find(|(_, text)| text.starts_with(owner))
            .unwrap();
        let file = t.path(&format!("open/{name}"));
        let said = format!("zonedrop: {}: refused: {why}", file.display());
        assert!(
            build.stderr.lines().any(|l| l == said),
            "{said:?} not in\n{}",
            build.stderr
        );
    }
    assert_eq!(verdict_of("_acme-challenge.mail.example.test."), "accepted");
    assert!(!build.stderr.contains("_acme-challenge.mail.example.test."));

    // Sources it cannot read: the listing still comes, the error with it.
    t.write(
        "zones/extra/broken",
        "elsewhere.example.org. 60 IN A 192.0.2.1\n",
    );
    let list = t.run(&["list"]);
    assert_eq!(list.code, 1, "{}", list.stderr);
    assert_eq!(
        list.stderr,
        format!(
            "zonedrop: {}:1: the owner `elsewhere.example.org.` lies in no configured zone\n",
            t.path("zones/extra/broken").display()
        )
    );
    // The header and the three files.
    assert_eq!(list.stdout.lines().count(), 4, "{}", list.stdout);
}

/// After a build publishes a zone, `[build] notify` hears about that zone
/// (RFC 1996), once; about a zone that did not change, never.
#[test]
fn a_published_zone_is_notified_to_the_secondaries() {
    let secondary = Secondary::start();
    let t = example_tree(&format!("[build]\nnotify = [\"{}\"]\n", secondary.addr));
    let r = t.run(&["build"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    let mut told = secondary.told();
    told.sort();
    assert_eq!(told, ["example.net.", "example.test."]);
    assert_eq!(t.run(&["add", "_acme-challenge.example.test", V1]).code, 0);
    let r = t.run(&["build"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(secondary.told(), ["example.test."]);
    let r = t.run(&["build", "--force"]);
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""));
    assert_eq!(secondary.told(), Vec::<String>::new());
}
