//! DANE rollover that cannot bite silently (issue 11 item 7): a published
//! key replaced without having been pre-published for its TTL plus the
//! propagation margin is warned about by `build` and `list --dane`; a
//! `hold` shorter than the TTL is a config error, for `[[tlsa]]` and
//! `[[sshfp]]` alike.

use crate::support::*;

fn tree(tlsa: &str) -> Tree {
    Tree::one_zone(
        &format!(
            "[[tlsa]]\ncert = \"www.pem\"\nnames = [\"www.example.test\"]\nports = [443]\nttl = 1\n{tlsa}\
             [dane]\npropagation_margin = \"1s\"\n"
        ),
        "www IN A 192.0.2.80\n",
    )
}

const OWNER: &str = "_443._tcp.www.example.test. TLSA";

#[test]
fn a_key_switched_without_pre_publication_is_warned_about() {
    let t = tree("");
    new_key(&t, "www.pem");
    let r = t.run(&["build", "--quiet"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    new_key(&t, "www.pem");
    let r = t.run(&["build", "--quiet"]);
    assert_eq!(r.code, 0, "a warning, not a failure: {}", r.stderr);
    let warning = format!("zonedrop: warning: {OWNER}: the key from ");
    assert!(r.stderr.starts_with(&warning), "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "without being pre-published for its TTL (1 s) plus [dane] propagation_margin (1s)"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    // `list --dane` says so too, while it matters.
    let r = t.run(&["list", "--dane"]);
    assert_eq!(r.code, 0);
    assert!(r.stderr.starts_with(&warning), "{}", r.stderr);
    assert!(r.stdout.contains("; retiring until "), "{}", r.stdout);
}

#[test]
fn a_key_pre_published_for_its_ttl_and_the_margin_switches_in_silence() {
    let t = tree("next = \"next.pem\"\n");
    new_key(&t, "www.pem");
    new_key(&t, "next.pem");
    let r = t.run(&["build", "--quiet"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    // TTL 1 s + margin 1 s, and the clock's second boundaries.
    std::thread::sleep(std::time::Duration::from_millis(3100));
    std::fs::copy(t.path("next.pem"), t.path("www.pem")).unwrap();
    let r = t.run(&["build", "--quiet"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    let r = t.run(&["list", "--dane"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
}

#[test]
fn a_hold_shorter_than_the_ttl_is_a_config_error() {
    for (entry, key, what) in [
        (
            "[[tlsa]]\ncert = \"www.pem\"\nnames = [\"www.example.test\"]\nports = [443]\nttl = 3600\nhold = \"5s\"\n",
            "tlsa.hold",
            "www.pem".to_string(),
        ),
        (
            "[[sshfp]]\nname = \"www.example.test\"\nkeys = [\"host.pub\"]\nhold = \"59m\"\n",
            "sshfp.hold",
            "www.example.test.".to_string(),
        ),
    ] {
        let t = Tree::one_zone(entry, "www IN A 192.0.2.80\n");
        let r = t.run(&["build"]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        // As the config writes it.
        let path = what;
        let hold = if key == "tlsa.hold" { "5s" } else { "59m" };
        assert_eq!(
            r.stderr,
            format!(
                "zonedrop: zonedrop.toml: {key}: {path}: hold = \"{hold}\" is shorter than the TTL (3600 s): a retired fingerprint must stay at least as long as resolvers may cache its record set\n"
            )
        );
        assert!(!t.path("unsigned").exists(), "nothing published");
    }
}
