//! `examples/Makefile`, run for real on a copy of the example tree: it
//! builds and signs every published zone (checked by ldns-verify-zone;
//! NSEC3 with no extra iterations and no salt), keeps signing when the
//! build or a key fails, reloads after signing, finds the zones whose
//! signatures run out soon and re-signs them, and signs from on_change.
//! `Example` is the tree `cron` runs the crontab in.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The folders cron gives a command; make gets them and bin/, nothing else.
const CRON_PATH: &str = "/usr/bin:/bin";
const DAY: i64 = 86_400;

/// A copy of the shipped tree (zones/, zonedrop.toml, examples/) with the
/// binary "installed" as bin/zonedrop.
pub struct Example {
    pub t: Tree,
}

impl Example {
    pub fn new() -> Example {
        need("make", "make");
        need("ldns-signzone", "ldnsutils");
        need("ldns-keygen", "ldnsutils");
        need("ldns-verify-zone", "ldnsutils");
        need("flock", "util-linux");
        need("awk", "mawk");
        let t = Tree::new();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        copy_dir(&repo.join("zones"), &t.path("zones"));
        std::fs::copy(repo.join("zonedrop.toml"), t.path("zonedrop.toml")).unwrap();
        // The files of examples/, not what a run in the source tree left
        // there (signed/, keys/, the lock) nor the link to the config.
        t.mkdir("examples");
        for e in std::fs::read_dir(repo.join("examples")).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_file() && name != "make.lock" {
                std::fs::copy(e.path(), t.path(&format!("examples/{name}"))).unwrap();
            }
        }
        t.mkdir("drop");
        t.mkdir("bin");
        std::os::unix::fs::symlink(bin(), t.path("bin/zonedrop")).unwrap();
        Example { t }
    }

    /// `make -s -C examples ARGS` with nothing in the environment but a PATH
    /// of cron's folders and bin/.
    fn make(&self, args: &[&str]) -> Output {
        Command::new("make")
            .args(["-s", "-C", "examples"])
            .args(args)
            .current_dir(self.t.dir.path())
            .env_clear()
            .env(
                "PATH",
                format!("{}:{CRON_PATH}", self.t.path("bin").display()),
            )
            .output()
            .unwrap()
    }

    fn make_ok(&self, args: &[&str]) -> String {
        let out = self.make(args);
        assert!(
            out.status.success(),
            "make {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn signed(&self, zone: &str) -> PathBuf {
        self.t.path(&format!("examples/signed/{zone}"))
    }

    pub fn signed_text(&self, zone: &str) -> String {
        std::fs::read_to_string(self.signed(zone)).unwrap()
    }

    pub fn mtime(&self, zone: &str) -> SystemTime {
        std::fs::metadata(self.signed(zone))
            .unwrap()
            .modified()
            .unwrap()
    }

    pub fn verify(&self, zone: &str) {
        let out = Command::new("ldns-verify-zone")
            .arg(self.signed(zone))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ldns-verify-zone {zone}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn add(&self, fqdn: &str, value: &str) {
        let r = self.t.run(&["add", fqdn, value]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }

    /// Replace `from` (which must be there) in a file of the tree.
    fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = std::fs::read_to_string(self.t.path(rel)).unwrap();
        assert!(text.contains(from), "{rel} has no {from:?}");
        self.t.write(rel, &text.replacen(from, to, 1));
    }
}

/// The data fields of every record of `rtype` in a zone as ldns writes it
/// ("owner ttl class type data...").
fn rdata(text: &str, rtype: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 4 && f[3] == rtype)
        .map(|f| f[4..].iter().map(|s| s.to_string()).collect())
        .collect()
}

/// An RRSIG time (YYYYMMDDHHmmSS, UTC) in seconds since 1970.
fn epoch_of(t: &str) -> i64 {
    assert_eq!(t.len(), 14, "RRSIG time {t:?}");
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &t[0..4],
        &t[4..6],
        &t[6..8],
        &t[8..10],
        &t[10..12],
        &t[12..14]
    );
    let at = humantime::parse_rfc3339(&rfc3339).unwrap();
    at.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The (earliest inception, earliest expiration) of a signed zone's RRSIGs.
fn validity(text: &str) -> (i64, i64) {
    let sigs = rdata(text, "RRSIG");
    assert!(!sigs.is_empty(), "no RRSIG");
    let expiration = sigs.iter().map(|s| epoch_of(&s[4])).min().unwrap();
    let inception = sigs.iter().map(|s| epoch_of(&s[5])).min().unwrap();
    (inception, expiration)
}

fn assert_near(what: &str, got: i64, want: i64) {
    assert!(
        (got - want).abs() <= 600,
        "{what}: {got}, expected about {want} (off by {} s)",
        got - want
    );
}

fn lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn make_signs_every_published_zone_with_nsec3_and_no_extra_iterations() {
    let ex = Example::new();
    let out = ex.make(&["BUILD_FLAGS=--quiet"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "cron would mail this: {out:?}"
    );
    for zone in ["example.test", "example.net"] {
        ex.verify(zone);
        let text = ex.signed_text(zone);
        // RFC 9276: SHA-1, no extra iterations, no salt.
        assert_eq!(rdata(&text, "NSEC3PARAM"), vec![vec!["1", "0", "0", "-"]]);
        let nsec3 = rdata(&text, "NSEC3");
        assert!(!nsec3.is_empty(), "{zone}: no NSEC3");
        for r in &nsec3 {
            assert_eq!(r[..4], ["1", "0", "0", "-"], "{zone}: {r:?}");
        }
        assert!(rdata(&text, "NSEC").is_empty(), "{zone}: NSEC beside NSEC3");
        // Explicit validity: from an hour ago for 30 days.
        let (inception, expiration) = validity(&text);
        assert_near("inception", inception, now() - 3600);
        assert_near("expiration", expiration, now() + 30 * DAY);
        // The published serial is zonedrop's.
        let soa = &rdata(&text, "SOA")[0];
        let unsigned = std::fs::read_to_string(ex.t.path(&format!("unsigned/{zone}"))).unwrap();
        assert_eq!(soa[2], rdata(&unsigned, "SOA")[0][2], "{zone}: serial");
    }
    // Private keys are the builder's alone.
    let mut private = 0;
    for e in std::fs::read_dir(ex.t.path("examples/keys")).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().ends_with(".private") {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(e.metadata().unwrap().permissions().mode() & 0o777, 0o600);
            private += 1;
        }
    }
    assert_eq!(private, 4, "a KSK and a ZSK per zone");

    // Nothing changed: nothing is signed again.
    let before = (ex.mtime("example.test"), ex.mtime("example.net"));
    std::thread::sleep(Duration::from_millis(20));
    ex.make_ok(&["BUILD_FLAGS=--quiet"]);
    assert_eq!((ex.mtime("example.test"), ex.mtime("example.net")), before);

    // A challenge re-signs its zone, and only that one.
    ex.add("_acme-challenge.example.test", V1);
    ex.make_ok(&["BUILD_FLAGS=--quiet"]);
    ex.verify("example.test");
    assert!(ex.signed_text("example.test").contains(V1));
    assert_ne!(ex.mtime("example.test"), before.0);
    assert_eq!(ex.mtime("example.net"), before.1);
}

#[test]
fn a_zone_added_to_the_config_is_signed_from_its_first_build() {
    let ex = Example::new();
    ex.make_ok(&["BUILD_FLAGS=--quiet"]);
    ex.t.write(
        "zones/soa/example.org",
        "$TTL 1h\n@ IN SOA ns1.example.org. hostmaster.example.org. 1 2h 1h 2w 5m\n",
    );
    ex.t.write(
        "zones/primary/example.org",
        "@ IN NS ns1\nns1 IN A 192.0.2.54\n",
    );
    let config = std::fs::read_to_string(ex.t.path("zonedrop.toml")).unwrap();
    ex.t.write(
        "zonedrop.toml",
        &format!("{config}\n[[zone]]\nname = \"example.org\"\nserial = \"increment\"\n"),
    );
    ex.make_ok(&["BUILD_FLAGS=--quiet"]);
    ex.verify("example.org");
}

#[test]
fn a_failing_build_does_not_stop_signing() {
    let ex = Example::new();
    ex.make_ok(&["BUILD_FLAGS=--quiet"]);
    let test_before = ex.signed_text("example.test");
    // example.test breaks (data beside a CNAME); example.net gets a challenge.
    let primary = std::fs::read_to_string(ex.t.path("zones/primary/example.test")).unwrap();
    ex.t.write(
        "zones/primary/example.test",
        &format!("{primary}www IN A 192.0.2.80\n"),
    );
    ex.add("_acme-challenge.example.net", V2);
    let out = ex.make(&["BUILD_FLAGS=--quiet"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the build failed: make must say so");
    assert!(stderr.contains("example.test"), "{stderr}");
    ex.verify("example.net");
    assert!(ex.signed_text("example.net").contains(V2), "{stderr}");
    // The broken zone keeps its last good signed version.
    assert_eq!(ex.signed_text("example.test"), test_before);
}

#[test]
fn a_zone_that_cannot_be_signed_does_not_stop_the_others() {
    let ex = Example::new();
    ex.make_ok(&["BUILD_FLAGS=--quiet"]);
    let net_before = ex.signed_text("example.net");
    // example.net's ZSK is gone; both zones get a challenge.
    ex.t.write("examples/keys/example.net.zsk", "Kexample.net.+013+00000\n");
    ex.add("_acme-challenge.example.net", V2);
    ex.add("_acme-challenge.example.test", V1);
    let out = ex.make(&["BUILD_FLAGS=--quiet"]);
    assert!(!out.status.success(), "signing failed: make must say so");
    ex.verify("example.test");
    assert!(ex.signed_text("example.test").contains(V1));
    assert_eq!(ex.signed_text("example.net"), net_before);
    assert!(!ex.t.path("examples/signed/example.net.tmp").exists());
}

#[test]
fn due_lists_the_zones_whose_signatures_run_out_within_resign_days() {
    let ex = Example::new();
    ex.make_ok(&["BUILD_FLAGS=--quiet"]);
    assert_eq!(ex.make_ok(&["due"]), "");
    assert_eq!(
        lines(&ex.make_ok(&["due", "RESIGN_DAYS=31"])),
        ["example.net", "example.test"]
    );
    // example.net signed again for 3 days: due within the default 7.
    std::fs::remove_file(ex.signed("example.net")).unwrap();
    ex.make_ok(&["BUILD_FLAGS=--quiet", "SIG_VALIDITY_DAYS=3"]);
    ex.verify("example.net");
    assert_near(
        "expiration",
        validity(&ex.signed_text("example.net")).1,
        now() + 3 * DAY,
    );
    assert_eq!(ex.make_ok(&["due"]), "example.net\n");
    assert_eq!(ex.make_ok(&["due", "RESIGN_DAYS=2"]), "");
    let expiry = lines(&ex.make_ok(&["expiry"]));
    assert_eq!(expiry.len(), 2, "{expiry:?}");
    assert!(expiry[0].starts_with("example.net 20") && expiry[0].ends_with(" UTC"));

    // The earliest signature counts, wherever it stands in the file: one
    // RRSIG in the middle of example.test made to expire in two days.
    let text = ex.signed_text("example.test");
    let sig_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.split_whitespace().nth(3) == Some("RRSIG"))
        .collect();
    let middle = sig_lines[sig_lines.len() / 2];
    let expires = middle.split_whitespace().nth(8).unwrap();
    let soon =
        humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(2 * 86_400))
            .to_string()
            .replace(['-', ':', 'T', 'Z'], "");
    let edited = middle.replacen(expires, &soon, 1);
    ex.t.write(
        "examples/signed/example.test",
        &text.replacen(middle, &edited, 1),
    );
    assert_eq!(
        lines(&ex.make_ok(&["due"])),
        ["example.net", "example.test"]
    );
}

/// `rrsig-expiry.awk` alone: RRSIG records written with or without TTL and
/// class, expirations as dates or as seconds, the boundary to the second,
/// and RRSIG inside other data or comments ignored.
#[test]
fn rrsig_expiry_finds_the_earliest_expiration_to_the_second() {
    let ex = Example::new();
    let zone = "x.example. 300 IN TXT \"RRSIG A 13 2 300 19700101000000 19700101000000\"\n\
                ; RRSIG A 13 2 300 19700101000000 19700101000000 1 x.example. AA==\n\
                x.example. 300 IN RRSIG A 13 2 300 20261231114237 20261201000000 1 x.example. AA==\n\
                x.example. IN 300 RRSIG TXT 13 2 300 20240229235959 20240201000000 1 x.example. AA==\n\
                a.x.example. RRSIG A 13 3 300 4294967295 1700000000 1 x.example. AA==\n";
    ex.t.write("z", zone);
    let earliest = epoch_of("20240229235959");
    let due = |horizon: i64| {
        let out = Command::new("awk")
            .args(["-v", "zone=x.example", "-v", "mode=due", "-v"])
            .arg(format!("horizon={horizon}"))
            .args(["-f", "examples/rrsig-expiry.awk", "z"])
            .current_dir(ex.t.dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(due(earliest), "");
    assert_eq!(due(earliest + 1), "x.example\n");
    let out = Command::new("awk")
        .args(["-v", "zone=x.example", "-v", "mode=list"])
        .args(["-f", "examples/rrsig-expiry.awk", "z"])
        .current_dir(ex.t.dir.path())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "x.example 2024-02-29 23:59:59 UTC\n"
    );
    // An expiration that is neither form is an error naming the line.
    ex.t.write(
        "z",
        "x.example. 300 IN RRSIG A 13 2 300 soon 20240201000000 1 x.example. AA==\n",
    );
    let out = Command::new("awk")
        .args(["-v", "zone=x.example", "-v", "mode=list"])
        .args(["-f", "examples/rrsig-expiry.awk", "z"])
        .current_dir(ex.t.dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("z line 1"),
        "{out:?}"
    );
}

#[test]
fn resign_re_signs_a_due_zone_even_when_its_serial_cannot_move() {
    let ex = Example::new();
    // example.net keeps the serial its source gives: `build --bump` refuses it.
    ex.edit(
        "zonedrop.toml",
        "name = \"example.net\"\nserial = \"increment\"",
        "name = \"example.net\"\nserial = \"keep\"",
    );
    ex.make_ok(&["BUILD_FLAGS=--quiet"]);
    std::fs::remove_file(ex.signed("example.net")).unwrap();
    ex.make_ok(&["BUILD_FLAGS=--quiet", "SIG_VALIDITY_DAYS=3"]);
    assert_eq!(ex.make_ok(&["due"]), "example.net\n");
    let test_signed = ex.mtime("example.test");

    let out = ex.make(&["resign", "BUILD_FLAGS=--quiet"]);
    assert!(
        !out.status.success(),
        "the serial could not be bumped: resign must say so"
    );
    ex.verify("example.net");
    assert_near(
        "expiration",
        validity(&ex.signed_text("example.net")).1,
        now() + 30 * DAY,
    );
    assert_eq!(ex.make_ok(&["due"]), "");
    assert_eq!(
        ex.mtime("example.test"),
        test_signed,
        "not due, not re-signed"
    );
}

#[test]
fn reload_follows_signing_and_is_retried_until_it_succeeds() {
    let ex = Example::new();
    // RELOAD gets the zone as its last argument: `touch ZONE` leaves a mark.
    // A failed reload fails make, saying which zone, with its status and
    // its output.
    let out = ex.make(&[
        "BUILD_FLAGS=--quiet",
        "RELOAD=sh -c 'echo error: zone $$0 not loaded; exit 3'",
    ]);
    assert!(!out.status.success(), "a failed reload must fail make");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "example.test: RELOAD failed (exit status 3); it is tried again at the next run; \
             its output:\n    error: zone example.test not loaded\n"
        ),
        "{err}"
    );
    ex.verify("example.test");
    // A reload that works says nothing (nsd-control's "ok" is kept out of
    // cron mail).
    let out = ex.make(&["BUILD_FLAGS=--quiet", "RELOAD=sh -c 'echo ok; touch $$0'"]);
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "{out:?}"
    );
    for zone in ["example.test", "example.net"] {
        assert!(
            ex.t.path(&format!("examples/{zone}")).exists(),
            "{zone} not reloaded"
        );
        std::fs::remove_file(ex.t.path(&format!("examples/{zone}"))).unwrap();
    }
    // Reloaded once: nothing to do until the zone is signed again.
    ex.make_ok(&["BUILD_FLAGS=--quiet", "RELOAD=touch"]);
    assert!(!ex.t.path("examples/example.test").exists());
    ex.add("_acme-challenge.example.test", V1);
    ex.make_ok(&["BUILD_FLAGS=--quiet", "RELOAD=touch"]);
    assert!(ex.t.path("examples/example.test").exists());
    assert!(!ex.t.path("examples/example.net").exists());
}

#[test]
fn on_change_can_sign_each_changed_zone() {
    // The `zonedrop watch` variant of docs/jails.md: zonedrop runs
    // `make sign-now ZONES={zone}` after it publishes a zone.
    let ex = Example::new();
    ex.edit(
        "zonedrop.toml",
        "[build]\n",
        "[build]\non_change = \"make -s -C examples sign-now ZONES={zone} RELOAD=touch\"\n",
    );
    let r = ex.t.run(&["build", "--quiet"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for zone in ["example.test", "example.net"] {
        ex.verify(zone);
        assert!(
            ex.t.path(&format!("examples/{zone}")).exists(),
            "{zone} not reloaded"
        );
    }
    let net = ex.mtime("example.net");
    // The next publish may fall in the timestamp tick of the last signing
    // (coarse clocks, whole-second mounts): signed/ and the reload stamp
    // look newer than anything zonedrop writes. on_change still signs and
    // reloads the zone it names.
    let later = SystemTime::now() + Duration::from_secs(3600);
    for rel in [
        "examples/signed/example.test",
        "examples/signed/.example.test.reloaded",
    ] {
        std::fs::File::options()
            .write(true)
            .open(ex.t.path(rel))
            .unwrap()
            .set_modified(later)
            .unwrap();
    }
    std::fs::remove_file(ex.t.path("examples/example.test")).unwrap();
    ex.add("_acme-challenge.example.test", V1);
    let r = ex.t.run(&["build", "--quiet"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    ex.verify("example.test");
    assert!(ex.signed_text("example.test").contains(V1));
    assert!(ex.t.path("examples/example.test").exists(), "not reloaded");
    assert_eq!(ex.mtime("example.net"), net);
}

/// The SOA serial of a zone as ldns or zonedrop writes it.
fn soa_serial(text: &str) -> u32 {
    rdata(text, "SOA")[0][2].parse().unwrap()
}

#[test]
fn resign_gives_a_zone_near_expiry_a_new_serial_and_fresh_signatures() {
    let ex = Example::new();
    ex.make_ok(&["BUILD_FLAGS=--quiet"]);
    // example.net signed again for 3 days: due within RESIGN_DAYS (7).
    std::fs::remove_file(ex.signed("example.net")).unwrap();
    ex.make_ok(&["BUILD_FLAGS=--quiet", "SIG_VALIDITY_DAYS=3"]);
    assert_eq!(ex.make_ok(&["due"]), "example.net\n");
    let serial = soa_serial(&ex.signed_text("example.net"));
    let test_signed = ex.mtime("example.test");

    // What cron runs daily: silent when all is well.
    let out = ex.make(&["resign", "BUILD_FLAGS=--quiet"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "cron would mail this: {out:?}"
    );
    ex.verify("example.net");
    let text = ex.signed_text("example.net");
    // The serial moved (example.net counts by `increment`), so secondaries
    // transfer the new signatures; the signed zone has zonedrop's serial.
    assert_eq!(soa_serial(&text), serial + 1);
    let unsigned = std::fs::read_to_string(ex.t.path("unsigned/example.net")).unwrap();
    assert_eq!(soa_serial(&unsigned), serial + 1);
    assert_near("expiration", validity(&text).1, now() + 30 * DAY);
    assert_eq!(ex.make_ok(&["due"]), "");
    assert_eq!(
        ex.mtime("example.test"),
        test_signed,
        "not due, not re-signed"
    );
}

#[test]
fn bump_due_re_signs_through_on_change() {
    // The `zonedrop watch` variant (docs/jails.md): zonedrop signs from
    // on_change, and cron runs `make bump-due` daily.
    let ex = Example::new();
    let examples = ex.t.path("examples");
    ex.edit(
        "zonedrop.toml",
        "[build]\n",
        &format!(
            "[build]\non_change = \"make -s -C {} sign-now ZONES={{zone}} RELOAD=touch\"\n",
            examples.display()
        ),
    );
    let r = ex.t.run(&["build", "--quiet"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    ex.make_ok(&["sign-now", "ZONES=example.test", "SIG_VALIDITY_DAYS=3"]);
    assert_eq!(ex.make_ok(&["due"]), "example.test\n");
    let serial = soa_serial(&ex.signed_text("example.test"));
    let net_signed = ex.mtime("example.net");
    std::fs::remove_file(ex.t.path("examples/example.test")).unwrap();

    let out = ex.make(&["bump-due", "BUILD_FLAGS=--quiet"]);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    ex.verify("example.test");
    let text = ex.signed_text("example.test");
    // example.test's serials follow the date: a bump moves it on.
    assert!(
        soa_serial(&text) > serial,
        "{} <= {serial}",
        soa_serial(&text)
    );
    assert_near("expiration", validity(&text).1, now() + 30 * DAY);
    assert!(ex.t.path("examples/example.test").exists(), "not reloaded");
    assert_eq!(ex.make_ok(&["due"]), "");
    assert_eq!(
        ex.mtime("example.net"),
        net_signed,
        "not due, not re-signed"
    );
}
