//! The hook side: every ACME client convention, with its exact argument
//! order, against a real drop directory.

use crate::support::*;

/// The drop directory holds exactly these fragment lines (in any order).
fn drop_holds(t: &Tree, expected: &[String]) {
    let mut expected = expected.to_vec();
    expected.sort();
    assert_eq!(contents(&t.drop_files("drop")), expected);
}

fn tree() -> Tree {
    let t = Tree::new();
    t.mkdir("drop");
    t
}

#[test]
fn add_and_del_generic() {
    let t = tree();
    let r = t.run(&["--drop", "drop", "add", "_ACME-Challenge.Example.TEST", V1]);
    assert_eq!((r.code, r.stderr.as_str(), r.stdout.as_str()), (0, "", ""));
    drop_holds(&t, &[line("_acme-challenge.example.test.", 60, V1)]);
    // Same pair again, other spelling: a no-op.
    let r = t.run(&[
        "--drop",
        "drop",
        "add",
        "_acme-challenge.example.test.",
        V1,
        "--ttl",
        "300",
    ]);
    assert_eq!(r.code, 0);
    assert_eq!(t.drop_files("drop").len(), 1);
    // --drop after the subcommand, and $ZONEDROP_DROP, work too.
    let r: Run = t
        .cmd(&["del", "_acme-challenge.example.test", V1])
        .env("ZONEDROP_DROP", "drop")
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(t.drop_files("drop").is_empty());
    // Deleting what is not there succeeds quietly.
    let r = t.run(&["del", "_acme-challenge.example.test", V1, "--drop", "drop"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
}

#[test]
fn ttl_is_written() {
    let t = tree();
    assert_eq!(
        t.run(&[
            "--drop",
            "drop",
            "add",
            "_acme-challenge.a.test",
            V1,
            "--ttl",
            "120"
        ])
        .code,
        0
    );
    drop_holds(&t, &[line("_acme-challenge.a.test.", 120, V1)]);
}

#[test]
fn wildcard_and_apex_values_coexist() {
    let t = tree();
    // certbot for example.test and *.example.test: both land on one name.
    for v in [V1, V2] {
        let r: Run = t
            .cmd(&["--drop", "drop", "hook", "certbot", "auth"])
            .env("CERTBOT_DOMAIN", "example.test")
            .env("CERTBOT_VALIDATION", v)
            .output()
            .unwrap()
            .into();
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    drop_holds(
        &t,
        &[
            line("_acme-challenge.example.test.", 60, V1),
            line("_acme-challenge.example.test.", 60, V2),
        ],
    );
    let r: Run = t
        .cmd(&["--drop", "drop", "hook", "certbot", "cleanup"])
        .env("CERTBOT_DOMAIN", "example.test")
        .env("CERTBOT_VALIDATION", V1)
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0);
    drop_holds(&t, &[line("_acme-challenge.example.test.", 60, V2)]);
}

#[test]
fn lego_default_and_raw_modes() {
    let t = tree();
    let lego = t.symlink_bin("zonedrop-lego");
    let run = |args: &[&str]| t.run_hook(&lego, args);
    // Default mode, with the extra TTL argument of old lego versions.
    assert_eq!(
        run(&["present", "_acme-challenge.example.test.", V1, "120"]).code,
        0
    );
    // RAW mode: the value is base64url(SHA-256(keyAuth)).
    let keyauth =
        "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
    let digest = "ZTRx1Ckl1-tM05o5zaizTTA0yUy5AGereMgSNWC6Ll8";
    let r = run(&[
        "present",
        "--",
        "*.example.test",
        "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA",
        keyauth,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    drop_holds(
        &t,
        &[
            line("_acme-challenge.example.test.", 60, V1),
            line("_acme-challenge.example.test.", 60, digest),
        ],
    );
    // `timeout` is answered, cleanup of both, then cleanup again (after a
    // failed present) succeeds quietly.
    assert_eq!(run(&["timeout"]).code, 0);
    assert_eq!(
        run(&["cleanup", "_acme-challenge.example.test.", V1, "120"]).code,
        0
    );
    assert_eq!(
        run(&["cleanup", "--", "*.example.test", "tok", keyauth]).code,
        0
    );
    assert!(t.drop_files("drop").is_empty());
    let r = run(&["cleanup", "_acme-challenge.example.test.", V1]);
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""));
    // Through `zonedrop hook lego` as well.
    assert_eq!(
        t.run(&[
            "--drop",
            "drop",
            "hook",
            "lego",
            "present",
            "_acme-challenge.a.test.",
            V2
        ])
        .code,
        0
    );
    drop_holds(&t, &[line("_acme-challenge.a.test.", 60, V2)]);
}

#[test]
fn dehydrated_chain_and_other_events() {
    let t = tree();
    let hook = t.symlink_bin("zonedrop-dehydrated");
    let run = |args: &[&str]| t.run_hook(&hook, args);
    // The deliberately unknown start-up event, and generate_csr whose stdout
    // dehydrated would read as a CSR: exit 0, print nothing.
    for ev in [
        vec!["this_hookscript_is_broken__dehydrated_is_working_fine__please_ignore_unknown_hooks_in_your_script"],
        vec!["generate_csr", "example.test", "/certs", "/certs/cert.csr"],
        vec!["startup_hook"],
        vec!["deploy_cert", "example.test", "k", "c", "f", "ch", "1"],
    ] {
        let r = run(&ev);
        assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""), "{ev:?}");
    }
    // HOOK_CHAIN=no: one triple; HOOK_CHAIN=yes: several.
    assert_eq!(
        run(&["deploy_challenge", "example.test", "tokfile1", V1]).code,
        0
    );
    assert_eq!(
        run(&[
            "deploy_challenge",
            "example.test",
            "tokfile2",
            V2,
            "www.example.test",
            "tokfile3",
            V1
        ])
        .code,
        0
    );
    drop_holds(
        &t,
        &[
            line("_acme-challenge.example.test.", 60, V1),
            line("_acme-challenge.example.test.", 60, V2),
            line("_acme-challenge.www.example.test.", 60, V1),
        ],
    );
    assert_eq!(
        run(&[
            "clean_challenge",
            "example.test",
            "tokfile1",
            V1,
            "example.test",
            "tokfile2",
            V2,
            "www.example.test",
            "tokfile3",
            V1
        ])
        .code,
        0
    );
    assert!(t.drop_files("drop").is_empty());
    // A broken triple writes nothing.
    let r = run(&["deploy_challenge", "example.test", "tokfile1"]);
    assert_eq!(r.code, 2);
    assert!(t.drop_files("drop").is_empty());
}

#[test]
fn uacme_dns01_and_other_types() {
    let t = tree();
    let hook = t.symlink_bin("zonedrop-uacme");
    let run = |args: &[&str]| t.run_hook(&hook, args);
    assert_eq!(
        run(&["begin", "http-01", "example.test", "tok", "keyauth"]).code,
        1
    );
    assert_eq!(
        run(&["begin", "tls-alpn-01", "example.test", "tok", "keyauth"]).code,
        1
    );
    assert!(t.drop_files("drop").is_empty());
    assert_eq!(run(&["begin", "dns-01", "example.test", "tok", V1]).code, 0);
    drop_holds(&t, &[line("_acme-challenge.example.test.", 60, V1)]);
    assert_eq!(run(&["done", "dns-01", "example.test", "tok", V1]).code, 0);
    assert!(t.drop_files("drop").is_empty());
    assert_eq!(run(&["begin", "dns-01", "example.test", "tok", V1]).code, 0);
    assert_eq!(
        run(&["failed", "dns-01", "example.test", "tok", V1]).code,
        0
    );
    assert!(t.drop_files("drop").is_empty());
}

#[test]
fn acmetool_and_getssl() {
    let t = tree();
    let hook = t.symlink_bin("zonedrop-acmetool");
    let run = |args: &[&str]| t.run_hook(&hook, args);
    assert_eq!(run(&["live-updated"]).code, 42);
    assert_eq!(
        run(&["challenge-http-start", "example.test", "f", "x"]).code,
        42
    );
    assert_eq!(
        run(&["challenge-dns-start", "example.test", "/tmp/target", V1]).code,
        0
    );
    drop_holds(&t, &[line("_acme-challenge.example.test.", 60, V1)]);
    assert_eq!(
        run(&["challenge-dns-stop", "example.test", "/tmp/target", V1]).code,
        0
    );
    assert!(t.drop_files("drop").is_empty());

    assert_eq!(
        t.run(&[
            "--drop",
            "drop",
            "hook",
            "getssl",
            "add",
            "www.example.test",
            V2
        ])
        .code,
        0
    );
    drop_holds(&t, &[line("_acme-challenge.www.example.test.", 60, V2)]);
    assert_eq!(
        t.run(&[
            "--drop",
            "drop",
            "hook",
            "getssl",
            "del",
            "www.example.test",
            V2
        ])
        .code,
        0
    );
    assert!(t.drop_files("drop").is_empty());
}

#[test]
fn del_removes_a_foreign_fragment() {
    let t = tree();
    // Written by an old shell hook, under its own file name, in the same format.
    t.write(
        "drop/old-hook-123.txt",
        &format!("_acme-challenge.example.test. 300 IN TXT \"{V1}\"\n"),
    );
    t.write(
        "drop/other.txt",
        &format!("_acme-challenge.example.test. 300 IN TXT \"{V2}\"\n"),
    );
    let r = t.run(&["--drop", "drop", "del", "_acme-challenge.example.test", V1]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(t.all_names("drop"), vec!["other.txt"]);
}

#[test]
fn bad_input_is_refused_and_nothing_written() {
    let t = tree();
    t.write("notadir", "");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["add", "_acme-challenge.example.test", "a\"b"],
            1,
            "the value `a\"b` holds `\"`",
        ),
        (
            vec!["add", "_acme-challenge.example.test", "a b"],
            1,
            "holds ` `",
        ),
        (
            vec!["add", "_acme-challenge.example.test", "a\\b"],
            1,
            "holds `\\`",
        ),
        (
            vec!["add", "_acme-challenge.example.test", "a\nb"],
            1,
            "holds `\\n`",
        ),
        (
            vec!["add", "_acme-challenge.example.test", "short"],
            1,
            "is not an ACME DNS-01 digest",
        ),
        (
            vec!["add", "_acme-challenge.exa mple.test", V1],
            1,
            "is not a domain name: ` ` is not allowed",
        ),
        (
            vec!["add", "_acme-challenge..test", V1],
            1,
            "has an empty label",
        ),
        (
            vec!["add", "www.example.test", V1],
            1,
            "does not start with an allowed label (_acme-challenge)",
        ),
        (
            vec!["hook", "certbot", "auth"],
            2,
            "CERTBOT_DOMAIN is not set",
        ),
        (vec!["hook", "nosuch", "x"], 2, "unknown client `nosuch`"),
    ];
    for (args, code, needle) in cases {
        let mut full = vec!["--drop", "drop"];
        full.extend(&args);
        let r = t.run(&full);
        assert_eq!(r.code, code, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains(needle),
            "{args:?}: {:?} lacks {needle:?}",
            r.stderr
        );
        assert_eq!(
            r.stderr.trim_end().lines().count(),
            1,
            "{args:?}: one line: {:?}",
            r.stderr
        );
        assert!(t.all_names("drop").is_empty(), "{args:?} wrote something");
    }
    // Missing, not a directory, not writable.
    let r = t.run(&[
        "--drop",
        "missing",
        "add",
        "_acme-challenge.example.test",
        V1,
    ]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (1, "zonedrop: drop directory missing does not exist")
    );
    let r = t.run(&[
        "--drop",
        "notadir",
        "add",
        "_acme-challenge.example.test",
        V1,
    ]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (
            1,
            "zonedrop: notadir is not a directory; the drop directory (--drop, ZONEDROP_DROP, [hook] drop or a [[drop]] path) must name one"
        )
    );
    let r = t.run(&["add", "_acme-challenge.example.test", V1]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no drop directory"), "{}", r.stderr);
}

#[test]
fn unwritable_drop_directory() {
    let t = tree();
    // Tests run as root in CI, where permission bits do not stop a write:
    // an immutable directory does (ext4 and most Linux file systems).
    let ro = t.mkdir("ro");
    let chattr = |flag: &str| {
        std::process::Command::new("chattr")
            .args([flag, ro.to_str().unwrap()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if unsafe_is_root() {
        assert!(chattr("+i"), "chattr +i failed: install e2fsprogs");
    } else {
        std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    }
    let r = t.run(&["--drop", "ro", "add", "_acme-challenge.example.test", V1]);
    if unsafe_is_root() {
        chattr("-i");
    }
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .starts_with("zonedrop: drop directory ro is not writable:"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.trim_end().lines().count(), 1);
    assert!(t.all_names("ro").is_empty());
}

fn unsafe_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

#[test]
fn config_drop_and_policy_apply_to_hooks() {
    let t = tree();
    t.write(
        "etc/zonedrop.toml",
        "[[drop]]\npath = \"../drop\"\n[policy]\nlabels = [\"_acme-challenge\", \"_validation\"]\nttl_default = 90\n",
    );
    let r = t.run(&[
        "add",
        "_validation.example.test",
        V1,
        "--config",
        "etc/zonedrop.toml",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    drop_holds(&t, &[line("_validation.example.test.", 90, V1)]);
    // A broken config is an error naming file, line and key.
    t.write("bad.toml", "[policy]\nttl_mni = 3\n");
    let r = t.run(&[
        "--config",
        "bad.toml",
        "add",
        "_acme-challenge.example.test",
        V1,
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .starts_with("zonedrop: bad.toml: line 2: unknown field `ttl_mni`"),
        "{}",
        r.stderr
    );
}

#[test]
fn list_shows_fragments_and_verdicts() {
    let t = tree();
    t.write(
        "zonedrop.toml",
        "[[drop]]\npath = \"drop\"\nnames = [\"example.test\"]\n[[zone]]\nname = \"example.test\"\n",
    );
    assert_eq!(t.run(&["add", "_acme-challenge.example.test", V1]).code, 0);
    t.write("drop/evil", "$INCLUDE /etc/passwd\n");
    t.write(
        "drop/other",
        &format!("_acme-challenge.www.example.test. 60 IN TXT \"{V2}\"\n"),
    );
    let r = t.run(&["list", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let items: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let items = items.as_array().unwrap();
    assert_eq!(items.len(), 3);
    let find = |suffix: &str| {
        items
            .iter()
            .find(|i| i["file"].as_str().unwrap().ends_with(suffix))
            .unwrap()
            .clone()
    };
    let evil = find("/evil");
    assert_eq!(evil["accepted"], false);
    assert!(evil["reason"].as_str().unwrap().contains("directive"));
    let other = find("/other");
    assert_eq!(other["accepted"], false);
    assert!(other["reason"]
        .as_str()
        .unwrap()
        .contains("outside the names"));
    let ours = items.iter().find(|i| i["accepted"] == true).unwrap();
    assert_eq!(ours["owner"], "_acme-challenge.example.test.");
    assert_eq!(ours["value"], V1);
    assert_eq!(ours["ttl"], 60);
    let r = t.run(&["list"]);
    // The header and the three files.
    assert_eq!(r.stdout.lines().count(), 4);
    assert!(r
        .stdout
        .contains(&format!("_acme-challenge.example.test.\t{V1}\t60\t")));
}

#[test]
fn acme_sh_plugin_adds_and_removes_in_separate_shells() {
    let t = tree();
    let plugin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/dns_zonedrop.sh");
    // acme.sh sources the plugin in a fresh subshell for each call.
    let call = |func: &str, value: &str| -> Run {
        clean_env(&mut std::process::Command::new("sh"))
            .arg("-c")
            .arg(format!(
                ". '{}' && {func} _acme-challenge.example.test {value}",
                plugin.display()
            ))
            .current_dir(t.path(""))
            .env("ZONEDROP_BIN", bin())
            .env("ZONEDROP_DROP", "drop")
            .output()
            .unwrap()
            .into()
    };
    let r = call("dns_zonedrop_add", V1);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(call("dns_zonedrop_add", V2).code, 0);
    drop_holds(
        &t,
        &[
            line("_acme-challenge.example.test.", 60, V1),
            line("_acme-challenge.example.test.", 60, V2),
        ],
    );
    assert_eq!(call("dns_zonedrop_rm", V1).code, 0);
    drop_holds(&t, &[line("_acme-challenge.example.test.", 60, V2)]);
    // A refused value makes the plugin fail, as acme.sh expects.
    let r = call("dns_zonedrop_add", "not-a-digest");
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("is not an ACME DNS-01 digest"),
        "{}",
        r.stderr
    );
}
