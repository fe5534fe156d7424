//! Refusals reported once per file version (issue 10 item 9, issue 11 item
//! 4): in `build` through state/refusals.json, in `watch` in the process;
//! `--quiet` still prints a new one, `--strict` fails on it; the lines are
//! capped with a summary; `check` shows them all. Pruning on the writable
//! side (`prune`, `add`, `del`), and an expired file on a read-only mount
//! reported once.

use crate::support::*;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const JUNK: &str = "_acme-challenge.example.test. 60 IN A 192.0.2.1\n";

/// The refusal lines of `stderr` that name `file` (a drop file's name).
fn refused(stderr: &str, file: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.contains(&format!("/{file}: refused: ")))
        .count()
}

/// Age `path` with touch(1), as an operator would.
fn touch_ago(path: &Path, ago: &str) {
    let ok = Command::new("touch")
        .args(["-m", "-d", ago])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "touch -d {ago} {}", path.display());
}

/// A change in the drop directory, so that the next build runs (an idle
/// build reads nothing and reports nothing anyway).
fn add(t: &Tree, value: &str) {
    let r = t.run(&["add", "_acme-challenge.example.test", value]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn a_refusal_is_reported_once_per_file_version() {
    let t = Tree::one_zone("", "");
    t.write("drop/junk", JUNK);
    let r = t.run(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(refused(&r.stderr, "junk"), 1, "{}", r.stderr);

    // The next build runs (a new fragment) and says nothing about it.
    add(&t, V1);
    let r = t.run(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("1 challenge"), "{}", r.stdout);
    assert_eq!(r.stderr, "");
    let r = t.run(&["build", "--force"]);
    assert_eq!(r.stderr, "");

    // `check` still shows it, and does not advance the memory.
    let r = t.run(&["check"]);
    assert_eq!(refused(&r.stderr, "junk"), 1, "{}", r.stderr);

    // Rewritten: a new version, reported again (once).
    t.write("drop/junk", "rewritten junk\n");
    let r = t.run(&["build"]);
    assert_eq!(refused(&r.stderr, "junk"), 1, "{}", r.stderr);
    let r = t.run(&["build", "--force"]);
    assert_eq!(r.stderr, "");

    // Gone and back with the same text: a new file, reported again.
    std::fs::remove_file(t.path("drop/junk")).unwrap();
    assert_eq!(t.run(&["build"]).code, 0);
    t.write("drop/junk", JUNK);
    let r = t.run(&["build"]);
    assert_eq!(refused(&r.stderr, "junk"), 1, "{}", r.stderr);
}

#[test]
fn quiet_prints_a_new_refusal_once() {
    let t = Tree::one_zone("", "");
    t.write("drop/junk", JUNK);
    let r = t.run(&["build", "--quiet"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "");
    assert_eq!(refused(&r.stderr, "junk"), 1, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    add(&t, V1);
    let r = t.run(&["build", "--quiet"]);
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""));
}

#[test]
fn strict_exits_1_on_a_new_refusal_only() {
    let t = Tree::one_zone("", "");
    add(&t, V1);
    t.write("drop/junk", JUNK);
    let r = t.run(&["build", "--strict"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(refused(&r.stderr, "junk"), 1, "{}", r.stderr);
    // The refusal fails no zone: it is published with its challenge.
    assert!(r.stdout.contains("1 challenge"), "{}", r.stdout);
    assert!(t.path("unsigned/example.test").exists());
    // Nothing new: 0.
    add(&t, V2);
    let r = t.run(&["build", "--strict"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("2 challenges"), "{}", r.stdout);
    // `check --strict` fails on any refusal, new or not; `check` does not.
    let r = t.run(&["check", "--strict"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(refused(&r.stderr, "junk"), 1, "{}", r.stderr);
    assert_eq!(t.run(&["check"]).code, 0);

    // [build] strict = true is --strict for every build.
    let config = std::fs::read_to_string(t.path("zonedrop.toml")).unwrap();
    t.write(
        "zonedrop.toml",
        &format!("{config}[build]\nstrict = true\n"),
    );
    t.write("drop/junk2", JUNK);
    let r = t.run(&["build", "--quiet"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(refused(&r.stderr, "junk2"), 1, "{}", r.stderr);
    assert_eq!(refused(&r.stderr, "junk"), 0, "{}", r.stderr);
    let r = t.run(&["build", "--force", "--quiet"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
}

#[test]
fn a_lost_or_damaged_memory_reports_again_and_the_build_succeeds() {
    let t = Tree::one_zone("", "");
    t.write("drop/junk", JUNK);
    assert_eq!(refused(&t.run(&["build"]).stderr, "junk"), 1);
    let memory = t.path("state/refusals.json");
    assert!(memory.is_file());

    std::fs::remove_file(&memory).unwrap();
    add(&t, V1);
    let r = t.run(&["build", "--quiet"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(refused(&r.stderr, "junk"), 1, "{}", r.stderr);

    std::fs::write(&memory, "{\"seen\": [1, 2").unwrap();
    add(&t, V2);
    let r = t.run(&["build", "--quiet"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(refused(&r.stderr, "junk"), 1, "{}", r.stderr);
    let said: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("refusals.json"))
        .collect();
    assert_eq!(said.len(), 1, "{}", r.stderr);
    assert!(
        said[0].contains("every refusal is reported as new"),
        "{}",
        said[0]
    );
    assert!(t.path("unsigned/example.test").exists());
    // Written again whole: the next build is quiet.
    let r = t.run(&["build", "--force", "--quiet"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));

    // A memory that can be neither read nor written (a folder in its
    // place; as root, modes do not stop reads): every build reports the
    // refusal and says why, and still publishes, exit 0.
    std::fs::remove_file(&memory).unwrap();
    std::fs::create_dir(&memory).unwrap();
    for _ in 0..2 {
        let r = t.run(&["build", "--force", "--quiet"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(refused(&r.stderr, "junk"), 1, "{}", r.stderr);
        assert!(r.stderr.contains("refusals.json"), "{}", r.stderr);
    }
}

#[test]
fn many_refusals_take_capped_lines_and_a_summary() {
    let t = Tree::one_zone("", "");
    for i in 0..50 {
        t.write(&format!("drop/junk{i:02}"), JUNK);
    }
    let r = t.run(&["build", "--quiet"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    // The default [build] refusal_lines = 20, then one line for the rest.
    assert_eq!(lines.len(), 21, "{}", r.stderr);
    assert_eq!(
        lines.iter().filter(|l| l.contains(": refused: ")).count(),
        20
    );
    assert!(
        lines[20].starts_with("zonedrop: 30 more new refusals (30 files)"),
        "{}",
        lines[20]
    );
    // All 50 were remembered: the next build says nothing.
    add(&t, V1);
    assert_eq!(t.run(&["build", "--quiet"]).stderr, "");
    // `check` shows every one.
    let r = t.run(&["check"]);
    assert_eq!(
        r.stderr
            .lines()
            .filter(|l| l.contains(": refused: "))
            .count(),
        50
    );
    // The cap is a config key.
    let config = std::fs::read_to_string(t.path("zonedrop.toml")).unwrap();
    t.write(
        "zonedrop.toml",
        &format!("{config}[build]\nrefusal_lines = 2\n"),
    );
    for i in 0..5 {
        t.write(&format!("drop/more{i}"), JUNK);
    }
    let r = t.run(&["build", "--quiet"]);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.stderr);
    assert!(lines[2].starts_with("zonedrop: 3 more new refusals (3 files)"));
}

/// `watch` remembers in the process: a junk file is logged once however
/// many builds read it, and new ones are capped per interval with a summary.
#[test]
fn watch_logs_a_refusal_once_and_caps_lines_per_interval() {
    let t = Tree::one_zone(
        "[[drop]]\npath = \"flood\"\n[build]\nrefusal_lines = 3\nrefusal_interval = \"1s\"\n",
        "",
    );
    t.write("drop/junk", JUNK);
    let log = t.path("watch.log");
    let mut cmd = t.cmd(&["watch", "--poll", "100ms"]);
    let watch = Daemon::start("zonedrop watch", &mut cmd, log);
    let wait_for = |what: &dyn Fn(&str) -> bool| {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if what(&watch.log()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out; log:\n{}", watch.log());
    };
    wait_for(&|l| l.contains("serial none -> "));
    // Builds that publish, each reading the junk file again.
    for (n, v) in [V1, V2].iter().enumerate() {
        add(&t, v);
        let want = format!("{} challenge", n + 1);
        wait_for(&|l: &str| l.contains(&want));
    }
    assert_eq!(refused(&watch.log(), "junk"), 1, "{}", watch.log());

    // Ten new junk files at once (a folder renamed into place), in an
    // interval with no new refusal yet: 3 lines, then, once the interval
    // is over, one line for the other 7.
    std::thread::sleep(Duration::from_millis(1200));
    t.mkdir("staging");
    for i in 0..10 {
        t.write(&format!("staging/junk{i}"), JUNK);
    }
    std::fs::rename(t.path("staging"), t.path("flood")).unwrap();
    wait_for(&|l| l.contains("7 more new refusals (7 files)"));
    let log = watch.log();
    let flood = log
        .lines()
        .filter(|l| l.contains("/flood/") && l.contains(": refused: "))
        .count();
    assert_eq!(flood, 3, "{log}");
    assert_eq!(refused(&log, "junk"), 1, "{log}");
}

/// A mount of `from` on `at`, read-only, unmounted when dropped.
struct ReadOnly {
    at: PathBuf,
}

impl ReadOnly {
    fn bind(from: &Path, at: &Path) -> ReadOnly {
        std::fs::create_dir_all(at).unwrap();
        let c = |p: &Path| CString::new(p.to_str().unwrap()).unwrap();
        let (src, dst) = (c(from), c(at));
        // SAFETY: C strings that outlive the calls.
        unsafe {
            let bind = libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            );
            assert_eq!(
                bind,
                0,
                "mount --bind: {} (run the tests as root, as CI does)",
                std::io::Error::last_os_error()
            );
            let ro = libc::mount(
                std::ptr::null(),
                dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                std::ptr::null(),
            );
            if ro != 0 {
                let e = std::io::Error::last_os_error();
                libc::umount2(dst.as_ptr(), libc::MNT_DETACH);
                panic!("mount -o remount,ro,bind: {e}");
            }
        }
        ReadOnly {
            at: at.to_path_buf(),
        }
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let target = CString::new(self.at.to_str().unwrap()).unwrap();
        // SAFETY: a C string that outlives the call.
        unsafe {
            libc::umount2(target.as_ptr(), libc::MNT_DETACH);
        }
    }
}

/// The jail layout: the ACME side writes `drop`, the builder reads it
/// through a read-only bind mount `ro`. An expired fragment there is
/// reported once (with what to do), not at every build; `prune` on the
/// writable side removes it.
#[test]
fn an_expired_file_the_builder_cannot_remove_is_reported_once() {
    let t = Tree::one_zone("", "");
    t.write(
        "zonedrop.toml",
        "[[drop]]\npath = \"ro\"\n[[zone]]\nname = \"example.test\"\n",
    );
    let _ro = ReadOnly::bind(&t.path("drop"), &t.path("ro"));
    let old = t.write("drop/old", &line("_acme-challenge.example.test.", 60, V2));
    touch_ago(&old, "2 days ago");
    let r = t.run(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let said: Vec<&str> = r.stderr.lines().filter(|l| l.contains("/old: ")).collect();
    assert_eq!(said.len(), 1, "{}", r.stderr);
    assert!(
        said[0].contains("refused: expired") && said[0].contains("zonedrop prune"),
        "{}",
        said[0]
    );
    assert!(old.exists());
    for (i, v) in [V1, V2].iter().enumerate() {
        let r = t.run(&["--drop", "ro", "list"]);
        assert!(r.stdout.contains("refused: expired"), "{}", r.stdout);
        // A new challenge on the writable side (a writer that does not
        // prune: `add` would have removed the old file); the builder's
        // next build publishes it and is quiet about the old file.
        t.write(
            &format!("drop/new{i}"),
            &line("_acme-challenge.www.example.test.", 60, v),
        );
        let r = t.run(&["build"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stdout.contains("serial "), "{}", r.stdout);
        assert!(!r.stderr.contains("/old"), "{}", r.stderr);
        assert!(old.exists());
    }
    // The writable side prunes it.
    let r = t.run(&["prune", "--drop", "drop"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert!(!old.exists());
    // And prune on the read-only side says what it could not remove.
    let stuck = t.write("drop/stuck", JUNK);
    touch_ago(&stuck, "2 days ago");
    let r = t.run(&["prune", "--drop", "ro"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("zonedrop: ro/stuck: expired (policy.max_age), but cannot be removed: Read-only file system"), "{}", r.stderr);
}

#[test]
fn prune_removes_only_fragments_older_than_max_age() {
    let t = Tree::one_zone("[policy]\nmax_age = \"1h\"\n", "");
    add(&t, V1);
    add(&t, V2);
    let files = t.drop_files("drop");
    let (old, young) = (
        t.path(&format!("drop/{}", files[0].0)),
        t.path(&format!("drop/{}", files[1].0)),
    );
    touch_ago(&old, "2 hours ago");
    let junk_old = t.write("drop/junk-old", JUNK);
    touch_ago(&junk_old, "2 hours ago");
    let junk_new = t.write("drop/junk-new", JUNK);
    let temp_old = t.write("drop/.zonedrop-abc123", "partial");
    touch_ago(&temp_old, "2 hours ago");
    let dot = t.write("drop/.keep", "");
    touch_ago(&dot, "2 hours ago");
    t.mkdir("drop/folder");
    touch_ago(&t.path("drop/folder"), "2 hours ago");
    // Not yet old: 59 minutes.
    let almost = t.write("drop/almost", JUNK);
    touch_ago(&almost, "59 minutes ago");

    let r = t.run(&["prune", "--drop", "drop"]);
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""));
    for gone in [&old, &junk_old, &temp_old] {
        assert!(!gone.exists(), "{} stays", gone.display());
    }
    for kept in [&young, &junk_new, &dot, &almost, &t.path("drop/folder")] {
        assert!(kept.exists(), "{} removed", kept.display());
    }
    // Without --drop: the config's drop directory.
    touch_ago(&almost, "2 hours ago");
    assert_eq!(t.run(&["prune"]).code, 0);
    assert!(!almost.exists());
}

#[test]
fn add_and_del_prune_the_directory_they_write() {
    let t = Tree::one_zone("[policy]\nmax_age = \"1h\"\n", "");
    let stale = t.write("drop/stale", &line("_acme-challenge.example.test.", 60, V2));
    touch_ago(&stale, "3 hours ago");
    add(&t, V1);
    assert!(!stale.exists(), "add left an expired fragment");
    assert_eq!(t.drop_files("drop").len(), 1);

    let stale = t.write("drop/stale", &line("_acme-challenge.example.test.", 60, V2));
    touch_ago(&stale, "3 hours ago");
    let young = t.write("drop/young", &line("_acme-challenge.example.test.", 60, V2));
    let r = t.run(&["del", "_acme-challenge.example.test", V1]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!stale.exists(), "del left an expired fragment");
    assert!(young.exists());
    assert_eq!(t.drop_files("drop").len(), 1);
}

#[test]
fn a_hook_looks_at_a_bounded_part_of_a_big_drop_directory() {
    // With thousands of fragments pending, a hook that stat'ed them all
    // at every call would spend most of its time there.
    let t = Tree::one_zone("[policy]\nmax_age = \"1h\"\nmax_files = 5000\n", "");
    for i in 0..300 {
        let f = t.write(
            &format!("drop/stale-{i:03}"),
            &line(&format!("_acme-challenge.s{i}.example.test."), 60, V2),
        );
        touch_ago(&f, "3 hours ago");
    }
    add(&t, V1);
    let left = t.drop_files("drop").len() - 1;
    assert!(
        (300 - 64..300).contains(&left),
        "one add removed {} of 300 expired fragments",
        300 - left
    );
    // Later calls take the rest, and `zonedrop prune` all at once.
    let r = t.run(&["del", "_acme-challenge.example.test", V1]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(t.drop_files("drop").len() < left);
    let r = t.run(&["prune", "--drop", "drop"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(t.drop_files("drop").is_empty());
    assert!(t.all_names("drop").is_empty(), "{:?}", t.all_names("drop"));
}
