//! Issue 13 part 2: dns-account-01 (draft-ietf-acme-dns-account-label).
//! The owner `_<label>._acme-challenge.<domain>` through `add --account`,
//! the whitelist (`[policy] dns_account`, `[[drop]] accounts`), `list`, the
//! challenge alias, the responder, `wait` and RFC 2136 updates. No ACME
//! server or client here speaks dns-account-01 yet; the label itself is
//! checked against the draft's example in `base::rules`' unit tests and
//! here through the binary.

use crate::support::{free_port, line, need, query_txt, Daemon, Tree, V1, V2};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The draft's example account, and its owner at example.test.
const ACCOUNT: &str = "https://example.com/acme/acct/ExampleAccount";
const OWNER: &str = "_ujmmovf2vn55tgye._acme-challenge.example.test.";
/// Another account (label `_vkbgbqfhr6yv2asd`).
const OTHER: &str = "http://localhost:4000/acme/acct/1";

#[test]
fn add_account_writes_the_draft_owner_and_the_build_publishes_it() {
    let t = Tree::one_zone("[policy]\ndns_account = true\n", "");
    let r = t.run(&["add", "--account", ACCOUNT, "example.test", V1]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let files = t.drop_files("drop");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].1, line(OWNER, 60, V1));
    // Two accounts validate one domain at once, beside a plain dns-01.
    assert_eq!(
        t.run(&["add", "--account", OTHER, "example.test", V2]).code,
        0
    );
    assert_eq!(t.run(&["add", "_acme-challenge.example.test", V2]).code, 0);
    let r = t.run(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let zone = std::fs::read_to_string(t.path("unsigned/example.test")).unwrap();
    assert!(
        zone.contains(&format!("\n{OWNER} 60 IN TXT \"{V1}\"\n")),
        "{zone}"
    );
    assert!(
        zone.contains("_vkbgbqfhr6yv2asd._acme-challenge.example.test."),
        "{zone}"
    );
    let r = t.run(&["list"]);
    let row = r
        .stdout
        .lines()
        .find(|l| l.starts_with(OWNER))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(row.ends_with("accepted"), "{row}");
    // del --account removes exactly that one.
    let r = t.run(&["del", "--account", ACCOUNT, "example.test", V1]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(t.drop_files("drop").len(), 2);
    assert!(!t
        .drop_files("drop")
        .iter()
        .any(|(_, c)| c.starts_with(OWNER)));
}

#[test]
fn account_owners_need_the_policy() {
    let t = Tree::one_zone("", "");
    let r = t.run(&["add", "--account", ACCOUNT, "example.test", V1]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("does not start with an allowed label"),
        "{}",
        r.stderr
    );
    assert!(t.drop_files("drop").is_empty());
    // Written by hand (or by a hook with no config): the build refuses it.
    t.write("drop/by-hand", &line(OWNER, 60, V1));
    let r = t.run(&["build"]);
    assert!(
        r.stderr.contains("does not start with an allowed label"),
        "{}",
        r.stderr
    );
    let zone = std::fs::read_to_string(t.path("unsigned/example.test")).unwrap();
    assert!(!zone.contains("_ujmmovf2vn55tgye"), "{zone}");
    // Without any config the hook writes it, and the builder judges.
    let bare = Tree::new();
    bare.mkdir("drop");
    let r = bare.run(&[
        "--drop",
        "drop",
        "add",
        "--account",
        ACCOUNT,
        "example.test",
        V1,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(bare.drop_files("drop")[0].1, line(OWNER, 60, V1));
    let r = bare.run(&[
        "--drop",
        "drop",
        "add",
        "--account",
        "ftp://x",
        "example.test",
        V1,
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn drop_accounts_limit_the_labels() {
    let t = Tree::one_zone("[policy]\ndns_account = true\n", "");
    let config = std::fs::read_to_string(t.path("zonedrop.toml"))
        .unwrap()
        .replace(
            "path = \"drop\"\n",
            &format!("path = \"drop\"\naccounts = [\"{ACCOUNT}\"]\nnames = [\"example.test\"]\n"),
        );
    t.write("zonedrop.toml", &config);
    assert_eq!(
        t.run(&["add", "--account", ACCOUNT, "example.test", V1])
            .code,
        0
    );
    assert_eq!(t.run(&["add", "_acme-challenge.example.test", V1]).code, 0);
    // The hook refuses another account's label...
    let r = t.run(&["add", "--account", OTHER, "example.test", V2]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("[[drop]] accounts"), "{}", r.stderr);
    assert_eq!(t.drop_files("drop").len(), 2);
    // ... and so does the build, for one written by hand; `names` apply to
    // account owners as to plain ones.
    t.write(
        "drop/other",
        &line("_vkbgbqfhr6yv2asd._acme-challenge.example.test.", 60, V2),
    );
    t.write(
        "drop/www",
        &line(
            "_ujmmovf2vn55tgye._acme-challenge.www.example.test.",
            60,
            V2,
        ),
    );
    let r = t.run(&["build"]);
    assert!(r.stderr.contains("drop/other: refused: the owner `_vkbgbqfhr6yv2asd._acme-challenge.example.test.` carries the label of an ACME account"), "{}", r.stderr);
    assert!(r.stderr.contains("drop/www: refused: the owner `_ujmmovf2vn55tgye._acme-challenge.www.example.test.` is outside the names"), "{}", r.stderr);
    let zone = std::fs::read_to_string(t.path("unsigned/example.test")).unwrap();
    assert!(zone.contains(OWNER), "{zone}");
    assert!(!zone.contains("_vkbgbqfhr6yv2asd"), "{zone}");
    let r = t.run(&["--config", "zonedrop.toml", "list"]);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("_vkbgbqfhr6yv2asd") && l.contains("refused")),
        "{}",
        r.stdout
    );
    // Not a URL: the config is refused.
    t.write("zonedrop.toml", &config.replace(ACCOUNT, "not a url"));
    let r = t.run(&["build"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("is not an ACME account URL"),
        "{}",
        r.stderr
    );
}

#[test]
fn alias_responder_wait_and_updates_work_for_account_owners() {
    need("nsupdate", "bind9-dnsutils");
    let port = free_port();
    let t = Tree::one_zone(
        &format!(
            "[[zone]]\nname = \"example.net\"\n[policy]\ndns_account = true\n\
             [serve]\nlisten = [\"127.0.0.1:{port}\"]\n\
             [[update_key]]\nname = \"k\"\nalgorithm = \"hmac-sha256\"\n\
             secret_file = \"k.secret\"\nnames = [\"example.test\", \"*.example.test\"]\ndrop = \"drop\"\n\
             accounts = [\"{ACCOUNT}\"]\n"
        ),
        "_ujmmovf2vn55tgye._acme-challenge.www IN CNAME _ujmmovf2vn55tgye._acme-challenge.www.example.net.\n",
    );
    t.write(
        "zones/soa/example.net",
        "$TTL 3600\n@ IN SOA ns1.example.net. hostmaster.example.net. 1 7200 3600 1209600 300\n",
    );
    t.write(
        "zones/primary/example.net",
        "@ IN NS ns1\nns1 IN A 192.0.2.54\n",
    );
    let secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=";
    let f = t.write("k.secret", &format!("{secret}\n"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The alias: published at its target, in the other zone.
    let r = t.run(&["add", "--account", ACCOUNT, "www.example.test", V1]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = t.run(&["list"]);
    let row = r
        .stdout
        .lines()
        .find(|l| l.starts_with("_ujmmovf2vn55tgye._acme-challenge.www.example.test."))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(
        row.contains("\texample.net.\t_ujmmovf2vn55tgye._acme-challenge.www.example.net.\t"),
        "{row}"
    );
    let run = Daemon::start("zonedrop run", &mut t.cmd(&["run"]), t.path("run.log"));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let target = "_ujmmovf2vn55tgye._acme-challenge.www.example.net.";
    let until = Instant::now() + Duration::from_secs(15);
    while query_txt(addr, target).is_none_or(|(_, s)| s.is_empty()) {
        assert!(Instant::now() < until, "not served; log:\n{}", run.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // The responder follows the alias from the account owner; wait too.
    let (_, strings) =
        query_txt(addr, "_ujmmovf2vn55tgye._acme-challenge.www.example.test.").unwrap();
    assert_eq!(strings, vec![V1.to_string()]);
    let server = format!("127.0.0.1:{port}");
    let r = t.run(&[
        "wait",
        "_ujmmovf2vn55tgye._acme-challenge.www.example.test",
        V1,
        "--server",
        &server,
        "--timeout",
        "5s",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // An update for the key's account is taken; another account's is not.
    let nsupdate = |owner: &str| {
        let mut child = Command::new("nsupdate")
            .args(["-y", &format!("hmac-sha256:k:{secret}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        write!(
            child.stdin.take().unwrap(),
            "server 127.0.0.1 {port}\nzone example.test\nupdate add {owner} 60 TXT \"{V2}\"\nsend\n"
        )
        .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = nsupdate(OWNER);
    assert!(out.status.success(), "{out:?}\n{}", run.log());
    let out = nsupdate("_vkbgbqfhr6yv2asd._acme-challenge.example.test.");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("REFUSED"),
        "{out:?}"
    );
    let (_, strings) = query_txt(addr, OWNER).unwrap();
    assert_eq!(strings, vec![V2.to_string()]);
}
