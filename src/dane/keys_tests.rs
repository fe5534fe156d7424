//! The tests of `keys`: rollover driven through its clock argument.

use super::*;
use crate::base::config::TlsaParams;
use crate::dane::entries::key_inputs;
use std::fs;

const HOUR: Duration = Duration::from_secs(3600);

// Two Ed25519 SubjectPublicKeyInfos (`openssl genpkey -algorithm
// ed25519 | openssl pkey -pubout`) standing for the current and the
// next key.
const KEY_A: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAyNmTdp5UhmxCLZbEVOlF8zLJaAVZvrgS3OqtYRpsAPw=\n-----END PUBLIC KEY-----\n";
const KEY_B: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAaioSt0V3duKwZreVFVLIC2TCWYIFqFNUw02jST6W3zI=\n-----END PUBLIC KEY-----\n";
const SSH_A: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIP/+VMZXanuZdNOgY0Dqh1BZuz0I18gg9UCUDqGIElv a";
const SSH_B: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFwS8QqsZVMxAyt+Z+6HIdvWzN6+id0M46qa+EGVtje4 b";

struct Setup {
    dir: tempfile::TempDir,
    config: Config,
}

fn setup(extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zonedrop.toml");
    let text = format!(
        "[[tlsa]]\ncert = \"www.pem\"\nnames = [\"www.example.test\"]\nports = [443, 25]\nttl = 600\n{extra}"
    );
    fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    Setup { dir, config }
}

impl Setup {
    fn write(&self, name: &str, text: &str) {
        fs::write(self.dir.path().join(name), text).unwrap();
    }
    fn run(&self, at: SystemTime) -> KeyRecords {
        zone_key_records(&self.config, at)
    }
}

fn fingerprint(pem: &str) -> String {
    let m = tlsa::parse(pem.as_bytes(), Path::new("k")).unwrap();
    tlsa::rdata(&m, TlsaParams::default(), Path::new("k")).unwrap()[0].clone()
}

fn rdatas(r: &KeyRecords, owner: &str) -> Vec<String> {
    r.records
        .iter()
        .filter(|k| k.owner == owner)
        .map(|k| k.rdata.clone())
        .collect()
}

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

#[test]
fn records_for_each_name_and_port() {
    let s = setup("");
    s.write("www.pem", KEY_A);
    let r = s.run(t0());
    assert_eq!(r.errors, Vec::<String>::new());
    let owners: Vec<&str> = r.records.iter().map(|k| k.owner.as_str()).collect();
    assert_eq!(
        owners,
        ["_25._tcp.www.example.test.", "_443._tcp.www.example.test."]
    );
    assert!(r.records.iter().all(|k| k.ttl == 600 && k.rtype == "TLSA"));
    assert_eq!(
        rdatas(&r, "_443._tcp.www.example.test."),
        [fingerprint(KEY_A)]
    );
    assert!(s.dir.path().join("state/keys.json").is_file());
}

#[test]
fn a_new_key_holds_the_old_fingerprint_then_drops_it() {
    let s = setup("");
    let owner = "_443._tcp.www.example.test.";
    s.write("www.pem", KEY_A);
    s.run(t0());
    s.write("www.pem", KEY_B);
    let r = s.run(t0() + HOUR);
    let mut both = vec![fingerprint(KEY_A), fingerprint(KEY_B)];
    both.sort();
    assert_eq!(rdatas(&r, owner), both);
    let (st, _) = key_status(&s.config, t0() + HOUR);
    let old = st.iter().find(|k| k.rdata == fingerprint(KEY_A)).unwrap();
    // Default hold: 2 × 600 s + 1 h from the build that saw it go.
    let until = t0() + 2 * HOUR + Duration::from_secs(1200);
    assert_eq!(old.state, KeyState::Retiring { until });
    assert_eq!(next_key_change(&s.config), Some(until));
    // Still there just before the hold ends, gone at its end.
    let r = s.run(t0() + 2 * HOUR + Duration::from_secs(1199));
    assert_eq!(rdatas(&r, owner).len(), 2);
    let r = s.run(t0() + 2 * HOUR + Duration::from_secs(1200));
    assert_eq!(rdatas(&r, owner), [fingerprint(KEY_B)]);
    assert_eq!(next_key_change(&s.config), None);
}

#[test]
fn key_reuse_changes_nothing() {
    let s = setup("");
    s.write("www.pem", KEY_A);
    let first = s.run(t0());
    let state = s.dir.path().join("state/keys.json");
    let before = fs::read(&state).unwrap();
    // A renewal that keeps the key: same SPKI, same `3 1 1` record.
    s.write("www.pem", &format!("# renewed\n{KEY_A}"));
    let again = s.run(t0() + 100 * HOUR);
    assert_eq!(first, again);
    assert_eq!(fs::read(&state).unwrap(), before);
}

#[test]
fn next_is_published_before_the_switch() {
    let s = setup("next = \"next.pem\"\n");
    let owner = "_443._tcp.www.example.test.";
    s.write("www.pem", KEY_A);
    s.write("next.pem", KEY_B);
    let r = s.run(t0());
    assert_eq!(rdatas(&r, owner).len(), 2);
    let (st, _) = key_status(&s.config, t0());
    let b = st.iter().find(|k| k.rdata == fingerprint(KEY_B)).unwrap();
    assert_eq!(b.state, KeyState::Next);
    // The switch: B becomes current, A retires and is held.
    s.write("www.pem", KEY_B);
    let r = s.run(t0() + HOUR);
    assert_eq!(rdatas(&r, owner).len(), 2);
    let (st, _) = key_status(&s.config, t0() + HOUR);
    let b = st.iter().find(|k| k.rdata == fingerprint(KEY_B)).unwrap();
    assert_eq!(b.state, KeyState::Current);
    let a = st.iter().find(|k| k.rdata == fingerprint(KEY_A)).unwrap();
    assert!(matches!(a.state, KeyState::Retiring { .. }));
    let r = s.run(t0() + 10 * HOUR);
    assert_eq!(rdatas(&r, owner), [fingerprint(KEY_B)]);
}

#[test]
fn a_bad_source_keeps_its_last_good_records() {
    let s = setup("");
    let owner = "_443._tcp.www.example.test.";
    s.write("www.pem", KEY_A);
    let good = s.run(t0());
    // Half-written, then garbage, then gone: the record stays, each
    // build says why, and no hold clock starts.
    for (i, text) in [&KEY_A[..40], "junk", ""].iter().enumerate() {
        s.write("www.pem", text);
        let r = s.run(t0() + (i as u32 + 1) * 100 * HOUR);
        assert_eq!(r.records, good.records, "{text}");
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert!(r.errors[0].contains("www.pem: "), "{:?}", r.errors);
        assert!(r.errors[0].ends_with("its last good records stay published"));
    }
    fs::remove_file(s.dir.path().join("www.pem")).unwrap();
    let r = s.run(t0() + 1000 * HOUR);
    assert_eq!(rdatas(&r, owner), [fingerprint(KEY_A)]);
    assert!(r.errors[0].contains("cannot read"), "{:?}", r.errors);
    // Without a last good state there is nothing to keep.
    let fresh = setup("");
    fresh.write("www.pem", "junk");
    let r = fresh.run(t0());
    assert!(r.records.is_empty());
    assert_eq!(r.errors.len(), 1);
    assert!(!r.errors[0].contains("last good"), "{:?}", r.errors);
}

#[test]
fn an_expired_certificate_is_published_with_a_warning() {
    let s = setup("");
    s.write("www.pem", tlsa::tests::CERT);
    // The certificate is valid until 2126-10-31T08:13:53Z.
    let r = s.run(t0());
    assert_eq!((r.records.len(), r.warnings.len()), (2, 0));
    let later = UNIX_EPOCH + Duration::from_secs(5_000_000_000);
    let r = s.run(later);
    assert_eq!(r.records.len(), 2);
    assert_eq!(r.errors, Vec::<String>::new());
    assert_eq!(
        r.warnings,
        [format!(
            "{}: certificate expired 2126-10-31T08:13:53Z; its TLSA record is published anyway: renew it",
            s.dir.path().join("www.pem").display()
        )]
    );
}

#[test]
fn a_corrupt_memory_is_reported_and_left_alone() {
    let s = setup("");
    s.write("www.pem", KEY_A);
    fs::create_dir_all(s.dir.path().join("state")).unwrap();
    s.write("state/keys.json", "{");
    let r = s.run(t0());
    assert_eq!(r.records.len(), 2);
    assert!(
        r.errors[0].contains("keys.json: cannot parse"),
        "{:?}",
        r.errors
    );
    assert_eq!(
        fs::read_to_string(s.dir.path().join("state/keys.json")).unwrap(),
        "{"
    );
}

#[test]
fn sshfp_folders_roll_over_per_file() {
    let s = setup(
        "[[sshfp]]\nname = \"host.example.test\"\nkeys = [\"keys\"]\nhash = \"all\"\nhold = \"2h\"\n\
         [[zone]]\nname = \"example.test\"\n[[zone]]\nname = \"host.example.test\"\n",
    );
    s.write("www.pem", KEY_A);
    fs::create_dir(s.dir.path().join("keys")).unwrap();
    s.write("keys/a.pub", SSH_A);
    s.write("keys/b.pub", SSH_B);
    s.write("keys/ssh_host_ed25519_key", "private: not read");
    let host = "host.example.test.";
    let r = s.run(t0());
    assert_eq!(r.errors, Vec::<String>::new());
    assert_eq!(rdatas(&r, host).len(), 4);
    assert!(r
        .records
        .iter()
        .any(|k| k.rtype == "SSHFP" && k.rdata.starts_with("4 1 ")));
    let inputs = key_inputs(&s.config, None);
    // Per zone: the certificate's TLSA records lie in example.test, the
    // SSHFP records in host.example.test.
    let cert = s.dir.path().join("www.pem");
    assert_eq!(
        key_inputs(&s.config, Some("example.test.")),
        [cert.as_path()]
    );
    let in_host = key_inputs(&s.config, Some("host.example.test."));
    assert!(!in_host.contains(&cert) && in_host.len() == inputs.len() - 1);
    assert!(inputs.contains(&s.dir.path().join("keys")));
    assert!(inputs.contains(&s.dir.path().join("keys/b.pub")));
    assert!(!inputs.contains(&s.dir.path().join("keys/ssh_host_ed25519_key")));
    // Removing a key retires its fingerprints for the 2 h hold.
    fs::remove_file(s.dir.path().join("keys/b.pub")).unwrap();
    assert_eq!(rdatas(&s.run(t0() + HOUR), host).len(), 4);
    assert_eq!(rdatas(&s.run(t0() + 3 * HOUR), host).len(), 2);
    // A broken key keeps its last good records.
    s.write("keys/a.pub", "ssh-ed25519 AAAA");
    let r = s.run(t0() + 4 * HOUR);
    assert_eq!(rdatas(&r, host).len(), 2);
    assert!(r.errors[0].contains("a.pub: line 1:"), "{:?}", r.errors);
}

#[test]
fn a_switch_without_pre_publication_is_warned_about() {
    let s = setup("");
    s.write("www.pem", KEY_A);
    assert_eq!(s.run(t0()).warnings, Vec::<String>::new());
    s.write("www.pem", KEY_B);
    let r = s.run(t0() + HOUR);
    assert_eq!(r.warnings, Vec::<String>::new());
    // TTL 600 s + the default margin of 1 h, from the switch.
    let want = |port: u16| {
        format!(
            "_{port}._tcp.www.example.test. TLSA: the key from {} replaced the published one at 2027-01-15T09:00:00Z without being pre-published for its TTL (600 s) plus [dane] propagation_margin (1h); clients holding the old record set in cache may fail until 2027-01-15T10:10:00Z: publish the next key beside the current one first (`next =`)",
            s.dir.path().join("www.pem").display()
        )
    };
    assert_eq!(r.alerts, [want(25), want(443)]);
    // The build says it once; `list --dane` says it while it matters.
    assert_eq!(s.run(t0() + HOUR).alerts, Vec::<String>::new());
    let later = t0() + 2 * HOUR + Duration::from_secs(599);
    assert_eq!(
        key_status(&s.config, later).1.warnings,
        [want(25), want(443)]
    );
    let over = t0() + 2 * HOUR + Duration::from_secs(600);
    assert_eq!(key_status(&s.config, over).1.warnings, Vec::<String>::new());
}

#[test]
fn a_next_key_published_long_enough_switches_in_silence() {
    let s = setup("next = \"next.pem\"\n");
    s.write("www.pem", KEY_A);
    s.write("next.pem", KEY_B);
    assert_eq!(s.run(t0()).warnings, Vec::<String>::new());
    // Too early: 600 s + 1 h have not passed since B was published.
    let early = t0() + HOUR + Duration::from_secs(599);
    s.write("www.pem", KEY_B);
    let (_, r) = key_status(&s.config, early);
    assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
    assert!(r.warnings[0].ends_with("until 2027-01-15T09:10:00Z: publish the next key beside the current one first (`next =`)"), "{:?}", r.warnings);
    // In time: nothing to say.
    let r = s.run(t0() + HOUR + Duration::from_secs(600));
    assert!(r.warnings.is_empty() && r.alerts.is_empty(), "{r:?}");
    assert_eq!(rdatas(&r, "_443._tcp.www.example.test.").len(), 2);
}
