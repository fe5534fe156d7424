//! State that cannot be read or written never makes a build publish less
//! than it says must stay (issue 11 item 2): the zones it concerns keep
//! their last published version, the build exits 1, and the message names
//! the file and the user. Once it can be read again, the next build
//! publishes. The manifest, which only saves work, is read again from the
//! sources when it cannot be read.

use crate::support::*;
use std::path::Path;
use std::process::Command;

const OWNER: &str = "_acme-challenge.example.test";

fn published(t: &Tree) -> String {
    std::fs::read_to_string(t.path("unsigned/example.test")).unwrap()
}

/// A tree whose www has a TLSA record from `www.pem`, switched once to a
/// new key: the first key's record is retiring and must stay published
/// for its hold (2 × 60 s + 1 h).
fn switched_tree() -> (Tree, String) {
    let t = Tree::one_zone(
        "[[tlsa]]\ncert = \"www.pem\"\nnames = [\"www.example.test\"]\nports = [443]\nttl = 60\n",
        "www IN A 192.0.2.80\n",
    );
    new_key(&t, "www.pem");
    assert_eq!(t.run(&["build", "--quiet"]).code, 0);
    let first = published(&t);
    let tlsa = first
        .lines()
        .find(|l| l.contains(" TLSA "))
        .unwrap()
        .to_string();
    new_key(&t, "www.pem");
    let r = t.run(&["build", "--quiet"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = published(&t);
    assert!(text.contains(&tlsa), "retiring: {text}");
    assert_eq!(text.matches(" TLSA ").count(), 2, "{text}");
    (t, tlsa)
}

/// `zonedrop build` as the user nobody (uid 65534).
fn build_as_nobody(t: &Tree) -> Run {
    need("setpriv", "util-linux");
    clean_env(&mut Command::new("setpriv"))
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin())
        .arg("--config")
        .arg(t.path("zonedrop.toml"))
        .arg("build")
        .current_dir(t.dir.path())
        .output()
        .unwrap()
        .into()
}

fn chown(owner: &str, path: &Path, recursive: bool) {
    let mut c = Command::new("chown");
    if recursive {
        c.arg("-R");
    }
    assert!(c.arg(owner).arg(path).status().unwrap().success());
}

/// The deployment of the issue: a build as root left state/keys.json
/// readable by root only; the builder user's next build must not drop the
/// retiring TLSA record the memory holds.
#[test]
fn rollover_memory_the_builder_cannot_read_keeps_the_zones_as_they_were() {
    let (t, tlsa) = switched_tree();
    let keys = t.path("state/keys.json");
    assert_eq!(t.run(&["add", OWNER, V1]).code, 0);
    chown("65534:65534", t.dir.path(), true);
    chown("0:0", &keys, false);
    std::fs::set_permissions(&keys, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let before = published(&t);

    let r = build_as_nobody(&t);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "{}: cannot read the key rollover memory as user nobody (uid 65534): Permission denied",
            keys.display()
        )),
        "{}",
        r.stderr
    );
    assert_eq!(published(&t), before, "the last good zone stays");

    chown("65534:65534", &keys, false);
    let r = build_as_nobody(&t);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let text = published(&t);
    assert!(text.contains(&tlsa) && text.contains(V1), "{text}");

    // A state/ the builder cannot write in: no zone goes out that state/
    // would not know of.
    assert_eq!(t.run(&["add", OWNER, V2]).code, 0);
    chown("0:0", &t.path("state"), false);
    let before = published(&t);
    let r = build_as_nobody(&t);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "{}: cannot write the zone's state as user nobody (uid 65534): Permission denied",
            t.path("state/zone-example.test.json").display()
        )),
        "{}",
        r.stderr
    );
    assert_eq!(published(&t), before);
    chown("65534:65534", &t.path("state"), false);
    let r = build_as_nobody(&t);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(published(&t).contains(V2));
}

/// Each state file in turn replaced by a folder (which root cannot read as
/// a file either).
#[test]
fn each_state_file_that_cannot_be_read_fails_what_it_concerns() {
    let (t, tlsa) = switched_tree();
    let values = [V1, V2];
    for (i, name) in ["keys.json", "zone-example.test.json"].iter().enumerate() {
        let file = t.path(&format!("state/{name}"));
        let kept = std::fs::read(&file).unwrap();
        std::fs::remove_file(&file).unwrap();
        std::fs::create_dir(&file).unwrap();
        let owner = format!("_acme-challenge.s{i}.example.test");
        assert_eq!(t.run(&["add", &owner, values[i]]).code, 0);
        let before = published(&t);
        let r = t.run(&["build"]);
        assert_eq!(r.code, 1, "{name}: {}{}", r.stdout, r.stderr);
        let said = format!("{}: cannot read the ", file.display());
        assert!(
            r.stderr.contains(&said) && r.stderr.contains("as user root (uid 0): Is a directory"),
            "{name}: {}",
            r.stderr
        );
        assert_eq!(published(&t), before, "{name}: the last good zone stays");
        assert_eq!(r.stdout, "", "{name}: nothing published");

        std::fs::remove_dir(&file).unwrap();
        std::fs::write(&file, kept).unwrap();
        let r = t.run(&["build", "--quiet"]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        let text = published(&t);
        assert!(
            text.contains(&tlsa) && text.contains(values[i]),
            "{name}: {text}"
        );
    }

    // The manifest only saves work: one that cannot be read is no reason
    // to skip, and one that cannot be written is said.
    let manifest = t.path("state/manifest.json");
    let _ = std::fs::remove_file(&manifest);
    std::fs::create_dir(&manifest).unwrap();
    assert_eq!(
        t.run(&["del", "_acme-challenge.s0.example.test", V1]).code,
        0
    );
    // Past the file system's tick, so that the build would record one.
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let r = t.run(&["build"]);
    assert!(!published(&t).contains(V1), "{}", published(&t));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains(&format!("{}: cannot write", manifest.display())),
        "{}",
        r.stderr
    );
}
