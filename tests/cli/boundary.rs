//! The drop directory as a boundary: what a hostile drop writer cannot make
//! zonedrop do. Nothing outside the drop directory is read or removed
//! (a symlink in its place, a swap while a build runs, a hard link to a
//! secret), no byte of a refused file and no raw file name reaches a
//! message, a drop directory inside a source folder is refused, a future
//! mtime does not outlive `max_age`, and an unreadable drop directory
//! keeps the last good zone instead of withdrawing its challenges.

use crate::support::*;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Set a file's mtime.
fn set_mtime(path: &Path, at: SystemTime) {
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(at)
        .unwrap();
}

#[test]
fn a_symlink_in_place_of_the_drop_directory_is_refused_and_names_the_real_one() {
    let t = Tree::one_zone("", "");
    std::fs::remove_dir(t.path("drop")).unwrap();
    t.mkdir("elsewhere");
    t.write(
        "elsewhere/planted",
        &line("_acme-challenge.example.test.", 60, V1),
    );
    std::os::unix::fs::symlink(t.path("elsewhere"), t.path("drop")).unwrap();
    let real = std::fs::canonicalize(t.path("elsewhere")).unwrap();
    for args in [&["check"][..], &["build"], &["list"]] {
        let r = t.run(args);
        assert_eq!(r.code, 1, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("is a symbolic link to ")
                && r.stderr.contains(real.to_str().unwrap())
                && r.stderr.contains("name the real directory"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(!r.stdout.contains(V1) && !r.stderr.contains(V1), "{args:?}");
    }
    assert!(!t.path("unsigned/example.test").exists());
    // Named as the real directory, it works.
    t.write(
        "zonedrop.toml",
        "[[drop]]\npath = \"elsewhere\"\n[[zone]]\nname = \"example.test\"\n",
    );
    let r = t.run(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("1 challenge"), "{}", r.stdout);
}

#[test]
fn swapping_the_drop_directory_for_a_symlink_during_builds_reads_and_removes_nothing_outside() {
    let t = Tree::one_zone("[policy]\nmax_age = \"1h\"\n", "");
    // Outside: files a build would remove (expired) and one it would
    // publish (fresh), were it to follow the link.
    t.mkdir("outside");
    let old = SystemTime::now() - Duration::from_secs(7200);
    let mut outside = Vec::new();
    for i in 0..20 {
        let p = t.write(
            &format!("outside/victim{i:02}"),
            &line("_acme-challenge.example.test.", 60, V1),
        );
        set_mtime(&p, old);
        outside.push(p);
    }
    t.write(
        "outside/planted",
        &line("_acme-challenge.example.test.", 60, V2),
    );
    outside.push(t.path("outside/planted"));
    assert_eq!(t.run(&["add", "_acme-challenge.example.test", V1]).code, 0);

    // Every open, read or removal in the outside folder is seen (inotify).
    let watch = Inotify::new(&t.path("outside"));
    std::fs::read(t.path("outside/planted")).unwrap();
    assert!(watch.events() > 0, "the watch sees a read");
    let (drop, real, target) = (t.path("drop"), t.path("drop.real"), t.path("outside"));
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let swapper = std::thread::spawn(move || {
        let mut swaps = 0u32;
        while !stop2.load(Ordering::Relaxed) {
            std::fs::rename(&drop, &real).unwrap();
            std::os::unix::fs::symlink(&target, &drop).unwrap();
            std::thread::sleep(Duration::from_micros(100));
            std::fs::remove_file(&drop).unwrap();
            std::fs::rename(&real, &drop).unwrap();
            // Real as long as linked: builds open either, and are swapped under.
            std::thread::sleep(Duration::from_micros(100));
            swaps += 1;
        }
        swaps
    });
    let mut refused = 0;
    for _ in 0..300 {
        let r = t.run(&["build", "--force"]);
        assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
        assert!(
            !r.stderr.contains("victim") && !r.stderr.contains("planted"),
            "{}",
            r.stderr
        );
        if r.stderr.contains("is a symbolic link") {
            refused += 1;
        }
        if let Ok(zone) = std::fs::read_to_string(t.path("unsigned/example.test")) {
            assert!(!zone.contains(V2), "published from outside:\n{zone}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    eprintln!("{swaps} swaps; {refused} of 300 builds met the link");
    assert!(swaps > 300, "only {swaps} swaps");
    assert!(refused > 0, "no build ever saw the link");
    for p in &outside {
        assert!(p.exists(), "{} was removed", p.display());
    }
    assert_eq!(
        watch.events(),
        0,
        "the outside folder was opened, read or changed"
    );
}

/// An inotify watch for opens, reads and removals in one folder (the
/// folder itself included).
struct Inotify(std::os::fd::OwnedFd);

impl Inotify {
    fn new(dir: &Path) -> Inotify {
        use std::os::fd::FromRawFd;
        // SAFETY: plain syscalls; the descriptor is owned from here on.
        unsafe {
            let fd = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
            assert!(fd >= 0);
            let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
            let mask = libc::IN_OPEN | libc::IN_ACCESS | libc::IN_DELETE | libc::IN_MODIFY;
            assert!(libc::inotify_add_watch(fd, path.as_ptr(), mask) >= 0);
            Inotify(std::os::fd::OwnedFd::from_raw_fd(fd))
        }
    }

    /// How many bytes of events arrived (0: none).
    fn events(&self) -> usize {
        use std::os::fd::AsRawFd;
        let mut buf = [0u8; 4096];
        // SAFETY: reading into a buffer of the given size.
        let n = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        n.max(0) as usize
    }
}

const MARK: &str = "S3CR3TMARK";

/// Every way `zonedrop` shows a drop directory, all output together.
fn everything_shown(t: &Tree) -> String {
    let mut all = String::new();
    for args in [&["build"][..], &["check"], &["list"], &["list", "--json"]] {
        let r = t.run(args);
        all.push_str(&r.stdout);
        all.push_str(&r.stderr);
    }
    all
}

#[test]
fn no_byte_of_a_malformed_fragment_or_a_hard_linked_secret_is_ever_shown() {
    let t = Tree::one_zone("[policy]\nmax_files = 5000\n", "");
    // Every shape of the hostile corpus, with the secret where the
    // grammar fails: before the owner, after it, at the end of the line.
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hostile");
    let mut names = Vec::new();
    for e in std::fs::read_dir(&corpus).unwrap() {
        let e = e.unwrap();
        let text = std::fs::read(e.path()).unwrap();
        let first_space = text.iter().position(|&b| b == b' ').unwrap_or(text.len());
        let line_end = text.iter().position(|&b| b == b'\n').unwrap_or(text.len());
        let mark = format!(" {MARK}");
        let variants = [
            [MARK.as_bytes(), b" ", &text].concat(),
            [&text[..first_space], mark.as_bytes(), &text[first_space..]].concat(),
            [&text[..line_end], mark.as_bytes(), &text[line_end..]].concat(),
        ];
        for (i, v) in variants.iter().enumerate() {
            let name = format!("{}-secret{i}", e.file_name().to_str().unwrap());
            std::fs::write(t.path("drop").join(&name), v).unwrap();
            names.push(name);
        }
    }
    // The secret where each token of a fragment goes.
    for (i, shape) in [
        format!("root:{MARK}:0:0 60 IN TXT \"{V1}\""),
        format!("root:{MARK}. 60 IN TXT \"{V1}\""),
        format!("_acme-challenge.example.test. {MARK} IN TXT \"{V1}\""),
        format!("_acme-challenge.example.test. 9{MARK} IN TXT \"{V1}\""),
        format!("_acme-challenge.example.test. 60 CLASS{MARK} TXT \"{V1}\""),
        format!("_acme-challenge.example.test. 60 IN TXT \"{MARK}\u{1}\""),
        format!("_acme-challenge.example.test. 60 IN TXT \"{MARK} x\""),
        format!("_acme-challenge.example.test. 60 IN TXT {MARK}\u{e9}"),
        format!("_acme-challenge.-{MARK}.test. 60 IN TXT \"{V1}\""),
        MARK.to_string(),
    ]
    .iter()
    .enumerate()
    {
        let name = format!("shape{i}");
        t.write(&format!("drop/{name}"), shape);
        names.push(name);
    }
    // A hard link to a secret that happens to be a valid fragment: refused
    // for its link count, never read.
    t.write(
        "secret",
        &line(
            "_acme-challenge.example.test.",
            60,
            "S3CR3TMARKxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ),
    );
    std::fs::hard_link(t.path("secret"), t.path("drop/hard-link")).unwrap();
    names.push("hard-link".into());

    let shown = everything_shown(&t);
    assert!(
        !shown.to_lowercase().contains(&MARK.to_lowercase()),
        "the secret was shown:\n{}",
        shown
            .lines()
            .filter(|l| l.to_lowercase().contains(&MARK.to_lowercase()))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Each one refused, by name, with the rule it broke.
    let build = t.run(&["check"]);
    for name in &names {
        assert!(
            build.stderr.contains(&format!("/drop/{name}: refused: ")),
            "no refusal for {name}:\n{}",
            build.stderr
        );
    }
    assert!(
        build
            .stderr
            .contains("/drop/hard-link: refused: it has 2 hard links"),
        "{}",
        build.stderr
    );
    // A record type from the known list is still named.
    assert!(
        build
            .stderr
            .contains("/drop/type-a-secret2: refused: the record type is `A`"),
        "{}",
        build.stderr
    );
}

#[test]
fn file_names_cannot_forge_lines_and_any_name_lists_as_json() {
    let t = Tree::one_zone("", "");
    let forged = "evil\nzonedrop: example.test: serial 1 -> 2, 1 challenge\u{1b}[31m\u{202e}";
    t.write(&format!("drop/{forged}"), "junk\n");
    let drop = t.path("drop");
    let raw = |bytes: &[u8]| drop.join(std::ffi::OsStr::from_bytes(bytes));
    std::fs::write(raw(b"latin1-\xe9t\xe9"), "junk\n").unwrap();
    std::fs::write(
        raw(b"good-\xff"),
        line("_acme-challenge.example.test.", 60, V1),
    )
    .unwrap();
    let check = |out: &str, what: &str| {
        assert!(
            !out.contains('\u{1b}') && !out.contains('\u{202e}'),
            "{what}: raw control:\n{out:?}"
        );
        assert!(
            !out.lines()
                .any(|l| l.starts_with("zonedrop: example.test: serial 1")),
            "{what}: a forged line:\n{out}"
        );
    };
    for args in [&["build"][..], &["check"], &["list"]] {
        let r = t.run(args);
        check(&r.stdout, &format!("{args:?} stdout"));
        check(&r.stderr, &format!("{args:?} stderr"));
        assert!(r.stderr.contains("drop/evil\\nzonedrop: example.test: serial 1 -> 2, 1 challenge\\u{1b}[31m\\u{202e}: refused: ")
            || args == ["list"], "{args:?}: {}", r.stderr);
    }
    let r = t.run(&["list", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let items: Vec<serde_json::Value> = serde_json::from_str(&r.stdout).unwrap();
    let files: Vec<&str> = items.iter().map(|i| i["file"].as_str().unwrap()).collect();
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(
        files.iter().any(|f| f.ends_with("/drop/good-\\xff")),
        "{files:?}"
    );
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("/drop/latin1-\\xe9t\\xe9")),
        "{files:?}"
    );
    let good = items
        .iter()
        .find(|i| i["file"].as_str().unwrap().ends_with("good-\\xff"))
        .unwrap();
    assert_eq!(good["accepted"], true);
}

#[test]
fn a_drop_directory_overlapping_a_trusted_place_is_refused_naming_both() {
    let t = Tree::one_zone("", "");
    t.mkdir("zones/extra/incoming");
    t.mkdir("zones/primary/sub");
    t.mkdir("state");
    std::os::unix::fs::symlink(t.path("zones/extra"), t.path("via-link")).unwrap();
    // A bind mount of extra/ elsewhere: only device and inode tell.
    let bound = t.mkdir("bound");
    let mount = Command::new("mount")
        .arg("--bind")
        .arg(t.path("zones/extra"))
        .arg(&bound)
        .status()
        .unwrap();
    assert!(mount.success(), "mount --bind (the tests run as root)");
    let zone = "[[zone]]\nname = \"example.test\"\n";
    let cases = [
        ("drop = zones/extra/incoming", format!("[[drop]]\npath = \"zones/extra/incoming\"\n{zone}"), "lies inside the extra/ folder", "zones/extra"),
        ("drop = zones/../zones/primary/sub/..", format!("[[drop]]\npath = \"zones/../zones/primary/sub/..\"\n{zone}"), "is the primary/ folder", "zones/primary"),
        ("a symlinked parent", format!("[[drop]]\npath = \"via-link/x\"\n{zone}"), "lies inside the extra/ folder", "zones/extra"),
        ("a bind mount", format!("[[drop]]\npath = \"bound\"\n{zone}"), "is the extra/ folder", "zones/extra"),
        ("state inside the drop", format!("[[drop]]\npath = \"drop\"\n[paths]\nstate = \"drop/state\"\n{zone}"), "contains the state/ folder", "drop/state"),
        ("output inside the drop", format!("[[drop]]\npath = \"drop\"\n[paths]\nunsigned = \"drop/out\"\n{zone}"), "contains the output folder", "drop/out"),
        ("soa/ inside the drop", format!("[[drop]]\npath = \"zones\"\n{zone}"), "contains the soa/ folder", "zones/soa"),
        ("a zone's own file", "[[drop]]\npath = \"drop\"\n[[zone]]\nname = \"example.test\"\nfile = \"drop/example.test.zone\"\n".to_string(), "contains zone example.test's SOA file", "drop/example.test.zone"),
    ];
    let mut failures = Vec::new();
    for (what, config, relation, other) in &cases {
        t.write("zonedrop.toml", config);
        for args in [&["build"][..], &["check"]] {
            let r = t.run(args);
            let lines: Vec<&str> = r.stderr.lines().collect();
            let ok = r.code == 2
                && lines.len() == 1
                && lines[0].contains(relation)
                && lines[0].contains(&t.path(other).display().to_string());
            if !ok {
                failures.push(format!("{what} {args:?}: exit {}: {}", r.code, r.stderr));
            }
        }
    }
    let _ = Command::new("umount").arg(&bound).status();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(!t.path("unsigned/example.test").exists());
    // Its own folder beside them is fine.
    t.write(
        "zonedrop.toml",
        &format!("[[drop]]\npath = \"drop\"\n{zone}"),
    );
    assert_eq!(t.run(&["build"]).code, 0);
}

#[test]
fn a_fragment_dated_in_the_future_is_refused_and_looked_at_again_when_its_time_comes() {
    let t = Tree::one_zone(
        "[policy]\nmax_future = \"2s\"\nmax_values_per_name = 1\n",
        "",
    );
    // Dated 2100: would outlive max_age and win every contest.
    assert_eq!(t.run(&["add", "_acme-challenge.example.test", V1]).code, 0);
    let far = t.path("drop").join(
        std::fs::read_dir(t.path("drop"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .file_name(),
    );
    set_mtime(
        &far,
        SystemTime::UNIX_EPOCH + Duration::from_secs(4_102_444_800),
    );
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(t.run(&["add", "_acme-challenge.example.test", V2]).code, 0);
    let r = t.run(&["build"]);
    assert!(
        r.stderr.contains("refused: dated ")
            && r.stderr
                .contains("in the future, more than policy.max_future (2s)"),
        "{}",
        r.stderr
    );
    let zone = std::fs::read_to_string(t.path("unsigned/example.test")).unwrap();
    assert!(zone.contains(V2) && !zone.contains(V1), "{zone}");
    std::fs::remove_file(&far).unwrap();
    assert_eq!(t.run(&["del", "_acme-challenge.example.test", V2]).code, 0);

    // Dated 6 s ahead: refused now, published by an ordinary build once
    // it is within max_future, though no file moved in between.
    assert_eq!(t.run(&["add", "_acme-challenge.example.test", V1]).code, 0);
    let soon = t.path("drop").join(
        std::fs::read_dir(t.path("drop"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .file_name(),
    );
    let at = SystemTime::now() + Duration::from_secs(6);
    set_mtime(&soon, at);
    let r = t.run(&["build"]);
    assert!(r.stderr.contains("in the future"), "{}", r.stderr);
    assert!(!std::fs::read_to_string(t.path("unsigned/example.test"))
        .unwrap()
        .contains(V1));
    // Let a build record the manifest with the file still too far ahead.
    t.run(&["build"]);
    while SystemTime::now() < at - Duration::from_secs(2) + Duration::from_millis(1100) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = t.run(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("1 challenge"),
        "not built again: {}{}",
        r.stdout,
        r.stderr
    );
    assert!(std::fs::read_to_string(t.path("unsigned/example.test"))
        .unwrap()
        .contains(V1));
}

/// `zonedrop ARGS` as root without the capabilities that bypass file
/// permissions: a folder with mode 000 is then unreadable, as for any user.
fn run_without_dac_override(t: &Tree, args: &[&str]) -> Run {
    need("setpriv", "util-linux");
    clean_env(&mut Command::new("setpriv"))
        .args([
            "--inh-caps=-all",
            "--bounding-set=-dac_override,-dac_read_search",
            "--",
        ])
        .arg(bin())
        .args(args)
        .current_dir(t.dir.path())
        .output()
        .unwrap()
        .into()
}

#[test]
fn an_unreadable_drop_directory_fails_its_zones_which_keep_their_challenges() {
    let t = Tree::one_zone("", "");
    assert_eq!(t.run(&["add", "_acme-challenge.example.test", V1]).code, 0);
    assert_eq!(t.run(&["build"]).code, 0);
    let published = std::fs::read_to_string(t.path("unsigned/example.test")).unwrap();
    assert!(published.contains(V1));
    let mode = |m: u32| {
        std::fs::set_permissions(
            t.path("drop"),
            std::os::unix::fs::PermissionsExt::from_mode(m),
        )
        .unwrap()
    };
    mode(0o000);
    // A client adds a second value meanwhile (root may).
    assert_eq!(t.run(&["add", "_acme-challenge.example.test", V2]).code, 0);
    for args in [&["build", "--quiet"][..], &["build", "--quiet"], &["check"]] {
        let r = run_without_dac_override(&t, args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        let dir = t.path("drop");
        assert!(
            r.stderr.contains(&format!(
                "drop directory {} cannot be listed: Permission denied",
                dir.display()
            )) && r.stderr.contains("example.test")
                && r.stderr.contains("keeps its last published version"),
            "{args:?}: {}",
            r.stderr
        );
        assert_eq!(
            std::fs::read_to_string(t.path("unsigned/example.test")).unwrap(),
            published,
            "{args:?}"
        );
    }
    mode(0o755);
    // The next ordinary build publishes what the directory holds.
    let r = run_without_dac_override(&t, &["build", "--quiet"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let zone = std::fs::read_to_string(t.path("unsigned/example.test")).unwrap();
    assert!(zone.contains(V1) && zone.contains(V2), "{zone}");
}

#[test]
fn a_missing_drop_directory_counts_as_empty_and_says_so() {
    let t = Tree::one_zone("", "");
    std::fs::remove_dir(t.path("drop")).unwrap();
    let r = t.run(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stderr
            .matches("does not exist (yet): it counts as empty")
            .count(),
        1,
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("0 challenges"), "{}", r.stdout);
}

#[test]
fn an_unreadable_drop_directory_fails_only_the_zones_it_feeds() {
    let t = Tree::one_zone("", "");
    t.write(
        "zonedrop.toml",
        "[[drop]]\npath = \"drop\"\nnames = [\"example.test\"]\n\
         [[drop]]\npath = \"drop2\"\nnames = [\"example.net\"]\n\
         [[zone]]\nname = \"example.test\"\n[[zone]]\nname = \"example.net\"\n",
    );
    t.write(
        "zones/soa/example.net",
        "$TTL 3600\n@ IN SOA ns1.example.net. hostmaster.example.net. 1 7200 3600 1209600 300\n",
    );
    t.write(
        "zones/primary/example.net",
        "@ IN NS ns1\nns1 IN A 192.0.2.54\n",
    );
    t.mkdir("drop2");
    std::fs::set_permissions(
        t.path("drop"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    assert_eq!(
        t.run(&["--drop", "drop2", "add", "_acme-challenge.example.net", V1])
            .code,
        0
    );
    let r = run_without_dac_override(&t, &["build"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("zone example.test: drop directory"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("zone example.net"), "{}", r.stderr);
    assert!(
        r.stdout
            .contains("example.net: serial none -> 1, 1 challenge"),
        "{}",
        r.stdout
    );
    assert!(!t.path("unsigned/example.test").exists());
}

/// An ACME value that begins with `-` (one in 64 do).
fn dash_value() -> String {
    format!("-{}", &V1[1..])
}

#[test]
fn every_entry_point_takes_a_value_that_begins_with_a_dash() {
    let t = Tree::one_zone("", "");
    let v = dash_value();
    let v = v.as_str();
    let holds = |t: &Tree| -> usize {
        t.drop_files("drop")
            .iter()
            .filter(|(_, c)| c.contains(&format!("\"{v}\"")))
            .count()
    };
    let owner = "_acme-challenge.example.test";
    let link = t.symlink_bin("zonedrop-getssl");
    // (add, del) for each entry point: the generic commands, every client's
    // hook convention, a multi-call link and the acme.sh plugin.
    type Call<'a> = Box<dyn Fn(bool) -> Run + 'a>;
    let plain = |args: Vec<String>| -> Run {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        t.run(&args)
    };
    let s = |x: &str| x.to_string();
    let plugin = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/dns_zonedrop.sh");
    let entry_points: Vec<(&str, Call)> = vec![
        (
            "add/del",
            Box::new(|add| plain(vec![s(if add { "add" } else { "del" }), s(owner), s(v)])),
        ),
        (
            "add/del --ttl after",
            Box::new(|add| {
                let mut a = vec![s(if add { "add" } else { "del" }), s(owner), s(v)];
                if add {
                    a.extend([s("--ttl"), s("60")]);
                }
                plain(a)
            }),
        ),
        (
            "hook lego",
            Box::new(|add| {
                plain(vec![
                    s("hook"),
                    s("lego"),
                    s(if add { "present" } else { "cleanup" }),
                    format!("{owner}."),
                    s(v),
                ])
            }),
        ),
        (
            "hook dehydrated",
            Box::new(|add| {
                plain(vec![
                    s("hook"),
                    s("dehydrated"),
                    s(if add {
                        "deploy_challenge"
                    } else {
                        "clean_challenge"
                    }),
                    s("example.test"),
                    s("-token"),
                    s(v),
                ])
            }),
        ),
        (
            "hook uacme",
            Box::new(|add| {
                plain(vec![
                    s("hook"),
                    s("uacme"),
                    s(if add { "begin" } else { "done" }),
                    s("dns-01"),
                    s("example.test"),
                    s("-token"),
                    s(v),
                ])
            }),
        ),
        (
            "hook acmetool",
            Box::new(|add| {
                plain(vec![
                    s("hook"),
                    s("acmetool"),
                    s(if add {
                        "challenge-dns-start"
                    } else {
                        "challenge-dns-stop"
                    }),
                    s("example.test"),
                    s("-target"),
                    s(v),
                ])
            }),
        ),
        (
            "hook getssl",
            Box::new(|add| {
                plain(vec![
                    s("hook"),
                    s("getssl"),
                    s(if add { "add" } else { "del" }),
                    s("example.test"),
                    s(v),
                ])
            }),
        ),
        (
            "hook certbot",
            Box::new(|add| {
                t.cmd(&["hook", "certbot", if add { "auth" } else { "cleanup" }])
                    .env("CERTBOT_DOMAIN", "example.test")
                    .env("CERTBOT_VALIDATION", v)
                    .output()
                    .unwrap()
                    .into()
            }),
        ),
        (
            "zonedrop-getssl link",
            Box::new(|add| {
                t.cmd_at(&link, &[if add { "add" } else { "del" }, "example.test", v])
                    .output()
                    .unwrap()
                    .into()
            }),
        ),
        (
            "acme.sh plugin",
            Box::new(|add| {
                clean_env(&mut Command::new("sh"))
                    .arg("-c")
                    .arg(format!(
                        ". '{}' && {} {owner} '{v}'",
                        plugin.display(),
                        if add {
                            "dns_zonedrop_add"
                        } else {
                            "dns_zonedrop_rm"
                        }
                    ))
                    .current_dir(t.path(""))
                    .env("ZONEDROP_BIN", bin())
                    .env("ZONEDROP_DROP", "drop")
                    .output()
                    .unwrap()
                    .into()
            }),
        ),
    ];
    let mut failures = Vec::new();
    for (what, call) in &entry_points {
        let r = call(true);
        if r.code != 0 || holds(&t) != 1 {
            failures.push(format!("{what} add: exit {}: {}", r.code, r.stderr));
        }
        let r = call(false);
        if r.code != 0 || holds(&t) != 0 {
            failures.push(format!("{what} del: exit {}: {}", r.code, r.stderr));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // `wait` for it, against the responder serving the built zone.
    assert_eq!(t.run(&["add", owner, v]).code, 0);
    let r = t.run(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let port = free_port();
    let _serve = Daemon::start(
        "zonedrop serve",
        &mut t.cmd(&["serve", "--listen", &format!("127.0.0.1:{port}")]),
        t.path("serve.log"),
    );
    let r = t.run(&[
        "wait",
        owner,
        v,
        "--server",
        &format!("127.0.0.1:{port}"),
        "--timeout",
        "10s",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}
