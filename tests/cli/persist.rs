//! Issue 13 part 3: dns-persist-01 (draft-ietf-acme-dns-persist). The
//! `persist` command's record, `[[persist]]` rendered into the zones with
//! its fields validated and an expired `persistUntil` warned about and
//! listed, and the drop side refused unless `[policy] persist_from_drop`.

use crate::support::{line, Tree};
use std::time::{SystemTime, UNIX_EPOCH};

const LE_ACCOUNT: &str = "https://acme-v02.api.letsencrypt.org/acme/acct/12345";

#[test]
fn persist_prints_the_record_in_zone_file_syntax() {
    let t = Tree::new();
    let r = t.run(&[
        "persist",
        "example.test",
        "--issuer",
        "letsencrypt.org",
        "--account-uri",
        LE_ACCOUNT,
        "--wildcard",
        "--until",
        "2027-01-01",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        format!("_validation-persist.example.test. 3600 IN TXT \"letsencrypt.org; accounturi={LE_ACCOUNT}; policy=wildcard; persistUntil=1798761600\"\n")
    );
    // --days N: persistUntil N days from now, as acme.sh's --dns-persist-days.
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let r = t.run(&[
        "persist",
        "www.example.test.",
        "--issuer",
        "pki.goog",
        "--account-uri",
        "https://ca.example/acct/7",
        "--days",
        "30",
        "--ttl",
        "600",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let until: u64 = r
        .stdout
        .trim_end()
        .strip_suffix('"')
        .and_then(|s| s.rsplit_once("persistUntil="))
        .map(|(_, n)| n.parse().unwrap())
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(
        until >= before + 30 * 86400 && until <= before + 30 * 86400 + 60,
        "{until}"
    );
    assert!(r.stdout.starts_with("_validation-persist.www.example.test. 600 IN TXT \"pki.goog; accounturi=https://ca.example/acct/7; persistUntil="), "{}", r.stdout);
    for (args, want) in [
        (
            vec!["--issuer", "bad issuer", "--account-uri", LE_ACCOUNT],
            "is not an issuer domain name",
        ),
        (
            vec![
                "--issuer",
                "letsencrypt.org",
                "--account-uri",
                "https://x/1;policy=wildcard",
            ],
            "is not an ACME account URI",
        ),
        (
            vec![
                "--issuer",
                "letsencrypt.org",
                "--account-uri",
                LE_ACCOUNT,
                "--until",
                "soon",
            ],
            "is not a time",
        ),
        (
            vec![
                "--issuer",
                "letsencrypt.org",
                "--account-uri",
                LE_ACCOUNT,
                "--until",
                "1",
                "--days",
                "2",
            ],
            "cannot be used with",
        ),
    ] {
        let mut all = vec!["persist", "example.test"];
        all.extend(args);
        let r = t.run(&all);
        assert_eq!(r.code, 2, "{all:?}: {}", r.stdout);
        assert!(r.stderr.contains(want), "{all:?}: {}", r.stderr);
        assert!(r.stdout.is_empty());
    }
}

const PERSIST: &str = "[[persist]]\nnames = [\"example.test\", \"www.example.test\"]\n\
    issuer = \"letsencrypt.org\"\naccount_uri = \"https://acme-v02.api.letsencrypt.org/acme/acct/12345\"\n\
    wildcard = true\nuntil = 1798761600\n\
    [[persist]]\nnames = [\"example.test\"]\nissuer = \"pki.goog\"\naccount_uri = \"https://ca.example/acct/7\"\n\
    ttl = 600\nuntil = \"2020-01-01\"\n";

#[test]
fn persist_tables_are_published_validated_and_expiry_is_warned() {
    let t = Tree::one_zone(PERSIST, "");
    let r = t.run(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let zone = std::fs::read_to_string(t.path("unsigned/example.test")).unwrap();
    for want in [
        format!("_validation-persist.example.test. 3600 IN TXT \"letsencrypt.org; accounturi={LE_ACCOUNT}; policy=wildcard; persistUntil=1798761600\"\n"),
        format!("_validation-persist.www.example.test. 3600 IN TXT \"letsencrypt.org; accounturi={LE_ACCOUNT}; policy=wildcard; persistUntil=1798761600\"\n"),
        "_validation-persist.example.test. 600 IN TXT \"pki.goog; accounturi=https://ca.example/acct/7; persistUntil=1577836800\"\n".to_string(),
    ] {
        assert!(zone.contains(&want), "{want} not in\n{zone}");
    }
    // The expired one: warned at the build, shown by list (and kept: the
    // operator removes or renews it).
    assert!(
        r.stderr.contains(
            "[[persist]] for example.test.: persistUntil 2020-01-01T00:00:00Z has passed"
        ),
        "{}",
        r.stderr
    );
    let r = t.run(&["list"]);
    let rows: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("_validation-persist"))
        .collect();
    assert_eq!(rows.len(), 3, "{}", r.stdout);
    assert!(
        rows.iter().any(|l| l.contains("pki.goog")
            && l.ends_with("persist, expired: persistUntil 2020-01-01T00:00:00Z has passed")),
        "{}",
        r.stdout
    );
    assert_eq!(
        rows.iter().filter(|l| l.ends_with("\tpersist")).count(),
        2,
        "{}",
        r.stdout
    );
    let r = t.run(&["list", "--json"]);
    let items: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let expired: Vec<_> = items
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["persist"] == "expired")
        .collect();
    assert_eq!(expired.len(), 1, "{}", r.stdout);

    // Each field is validated: the config is refused (exit 2).
    for (from, to, want) in [
        (
            "issuer = \"pki.goog\"",
            "issuer = \"pki goog\"",
            "is not an issuer domain name",
        ),
        (
            "\"https://ca.example/acct/7\"",
            "\"https://ca.example/acct/7; policy=wildcard\"",
            "is not an ACME account URI",
        ),
        (
            "until = \"2020-01-01\"",
            "until = \"someday\"",
            "is not a time",
        ),
        (
            "names = [\"example.test\"]\nissuer",
            "names = [\"example.org\"]\nissuer",
            "`example.org.` lies in no configured zone",
        ),
        ("wildcard = true", "wildcard = \"yes\"", "invalid type"),
        (
            "ttl = 600",
            "ttl = 600\ncolour = 1",
            "unknown field `colour`",
        ),
    ] {
        let config = std::fs::read_to_string(t.path("zonedrop.toml")).unwrap();
        assert!(config.contains(from), "{from}");
        t.write("zonedrop.toml", &config.replacen(from, to, 1));
        let r = t.run(&["build"]);
        assert_eq!(r.code, 2, "{to}: {}", r.stderr);
        assert!(r.stderr.contains(want), "{to}: {}", r.stderr);
        t.write("zonedrop.toml", &config);
    }
}

const RECORD: &str =
    "letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/12345";

#[test]
fn the_drop_side_never_carries_persist_records_unless_the_policy_says_so() {
    // Even with the label listed among the challenge labels.
    let t = Tree::one_zone(
        "[policy]\nlabels = [\"_acme-challenge\", \"_validation-persist\"]\n",
        "",
    );
    let r = t.run(&["add", "_validation-persist.example.test", RECORD]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("only [[persist]] in the config publishes those, unless [policy] persist_from_drop = true"), "{}", r.stderr);
    assert!(t.drop_files("drop").is_empty());
    t.write(
        "drop/by-hand",
        &line("_validation-persist.example.test.", 60, RECORD),
    );
    let r = t.run(&["build"]);
    assert!(
        r.stderr.contains(
            "drop/by-hand: refused: `_validation-persist.example.test.` is a dns-persist-01 record"
        ),
        "{}",
        r.stderr
    );
    let zone = std::fs::read_to_string(t.path("unsigned/example.test")).unwrap();
    assert!(!zone.contains("_validation-persist"), "{zone}");

    // persist_from_drop = true: taken, in the record's own syntax only.
    let t = Tree::one_zone("[policy]\npersist_from_drop = true\n", "");
    let r = t.run(&["add", "_validation-persist.example.test", RECORD]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        t.drop_files("drop")[0].1,
        line("_validation-persist.example.test.", 60, RECORD)
    );
    let r = t.run(&["add", "_validation-persist.example.test", "letsencrypt.org"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("is not a dns-persist-01 record: no accounturi"),
        "{}",
        r.stderr
    );
    // `;` stays forbidden outside the quotes, and everywhere at other owners.
    t.write(
        "drop/comment",
        "_validation-persist.example.test. 60 IN TXT \"x; accounturi=https://a/1\" ; junk\n",
    );
    t.write(
        "drop/elsewhere",
        "_acme-challenge.example.test. 60 IN TXT \"a;b\"\n",
    );
    let r = t.run(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("drop/comment: refused: it holds `;`"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("drop/elsewhere: refused: it holds `;`"),
        "{}",
        r.stderr
    );
    let zone = std::fs::read_to_string(t.path("unsigned/example.test")).unwrap();
    assert!(
        zone.contains(&format!(
            "_validation-persist.example.test. 60 IN TXT \"{RECORD}\"\n"
        )),
        "{zone}"
    );
}
