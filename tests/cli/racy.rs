//! Equal stamps never hide a change (the racy-clean rule of git): a file
//! system keeps times in ticks, so a change within one tick of the last
//! build can leave every stamp as it was. A folder is compared by its
//! listing, a file stamped less than the granularity (2 s) before the
//! manifest's own time is read again by the next build, and ctime (which
//! `touch` cannot put back) is part of every stamp.

use crate::support::*;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// More than the granularity the manifest assumes (2 s).
const PAST_THE_TICK: Duration = Duration::from_millis(2200);

fn published(t: &Tree) -> String {
    std::fs::read_to_string(t.path("unsigned/example.test")).unwrap_or_default()
}

fn build(t: &Tree) {
    let r = t.run(&["build", "--quiet"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

fn has_manifest(t: &Tree) -> bool {
    t.path("state/manifest.json").exists()
}

/// `touch -m -d @MTIME path`: the folder's mtime put back as it was (its
/// ctime, the kernel's, moves anyway).
fn touch_back(path: &Path, mtime: (i64, i64)) {
    let ok = Command::new("touch")
        .arg("-m")
        .arg("-d")
        .arg(format!("@{}.{:09}", mtime.0, mtime.1))
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn mtime(path: &Path) -> (i64, i64) {
    let m = std::fs::metadata(path).unwrap();
    (m.mtime(), m.mtime_nsec())
}

/// Build after the tree has aged past the tick, so that the manifest
/// vouches for it and the next build would skip if its stamps said so.
fn settled_build(t: &Tree) {
    std::thread::sleep(PAST_THE_TICK);
    build(t);
    assert!(has_manifest(t), "an aged tree is vouched for");
}

#[test]
fn a_drop_directory_put_back_to_its_old_mtime_still_shows_what_came_and_went() {
    let t = Tree::one_zone("", "");
    let drop = t.path("drop");
    settled_build(&t);
    let owner = "_acme-challenge.example.test";
    let old = mtime(&drop);
    assert_eq!(t.run(&["add", owner, V1]).code, 0);
    touch_back(&drop, old);
    build(&t);
    assert!(published(&t).contains(V1), "{}", published(&t));
    // The fragment is younger than the tick: the next build reads again.
    assert!(!has_manifest(&t), "a young fragment is never vouched for");

    settled_build(&t);
    let old = mtime(&drop);
    assert_eq!(t.run(&["del", owner, V1]).code, 0);
    touch_back(&drop, old);
    build(&t);
    assert!(!published(&t).contains(V1), "{}", published(&t));
}

#[test]
fn a_source_folder_put_back_to_its_old_mtime_still_shows_what_came_and_went() {
    let t = Tree::one_zone("", "");
    let extra = t.mkdir("zones/extra");
    settled_build(&t);
    let old = mtime(&extra);
    t.write("zones/extra/www", "www.example.test. 300 IN A 192.0.2.80\n");
    touch_back(&extra, old);
    build(&t);
    assert!(published(&t).contains("192.0.2.80"), "{}", published(&t));
    assert!(
        !has_manifest(&t),
        "a young source file is never vouched for"
    );

    settled_build(&t);
    let old = mtime(&extra);
    std::fs::remove_file(t.path("zones/extra/www")).unwrap();
    touch_back(&extra, old);
    build(&t);
    assert!(!published(&t).contains("192.0.2.80"), "{}", published(&t));
}

/// Sleep to just after the start of the next wall-clock second.
fn start_of_a_second() {
    let ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    std::thread::sleep(
        Duration::from_nanos(u64::from(1_000_000_000 - ns)) + Duration::from_millis(20),
    );
}

fn stamp(path: &Path) -> (u64, u64, i64, i64) {
    let m = std::fs::symlink_metadata(path).unwrap();
    (m.ino(), m.size(), m.mtime(), m.ctime())
}

/// `first`, a build, then `second` with the stamp of `watched` taken on
/// both sides of it, then a build. True when the second change left
/// `watched`'s stamp exactly as it was (both changes fell in one tick).
fn in_one_tick(t: &Tree, watched: &Path, first: impl FnOnce(), second: impl FnOnce()) -> bool {
    start_of_a_second();
    first();
    build(t);
    let before = stamp(watched);
    second();
    let after = stamp(watched);
    build(t);
    before == after
}

/// ext2 with 128-byte inodes keeps whole-second mtimes and ctimes: a change
/// made within the second of the last build leaves the stamps as they were.
/// Before the racy-clean rule, such a change was never published.
#[test]
fn changes_within_one_second_on_a_whole_second_file_system_are_published() {
    let scratch = tempfile::tempdir().unwrap();
    let t = Tree::new();
    let _mount = Mount::ext2(
        t.dir.path(),
        &scratch.path().join("fs.ext2"),
        &["-I", "128"],
        4096,
    )
    .unwrap_or_else(|e| panic!("cannot mount an ext2 image ({e}): run the tests as root"));
    let base = Tree::one_zone("", "");
    base.mkdir("zones/extra");
    copy_dir(base.dir.path(), t.dir.path());
    let drop = t.path("drop");
    let meta = std::fs::metadata(&drop).unwrap();
    assert_eq!(meta.mtime_nsec(), 0, "ext2 -I 128 keeps whole seconds");
    build(&t);

    let (mut added, mut removed, mut extra, mut edited) = (false, false, false, false);
    for i in 0..5 {
        // Additions in the drop directory.
        let (a, b) = (
            format!("_acme-challenge.a{i}.example.test"),
            format!("_acme-challenge.b{i}.example.test"),
        );
        let add = |owner: &str, value: &str| assert_eq!(t.run(&["add", owner, value]).code, 0);
        added |= in_one_tick(&t, &drop, || add(&a, V1), || add(&b, V2));
        let text = published(&t);
        assert!(
            text.contains(&format!("{b}.")) && text.contains(V2),
            "{text}"
        );

        // Removals in the drop directory.
        let del = |owner: &str, value: &str| assert_eq!(t.run(&["del", owner, value]).code, 0);
        removed |= in_one_tick(&t, &drop, || del(&a, V1), || del(&b, V2));
        let text = published(&t);
        assert!(!text.contains(&format!("{b}.")), "{text}");

        // An addition in a source folder.
        let dir = t.path("zones/extra");
        let (x, y) = (format!("x{i}"), format!("y{i}"));
        let write = |name: &str, octet: u32| {
            t.write(
                &format!("zones/extra/{name}"),
                &format!("{name}.example.test. 300 IN A 192.0.2.{octet}\n"),
            );
        };
        extra |= in_one_tick(&t, &dir, || write(&x, 10 + i), || write(&y, 20 + i));
        let text = published(&t);
        assert!(text.contains(&format!("192.0.2.{}", 20 + i)), "{text}");

        // An edit in place, of the same size, of a source file.
        let file = t.path(&format!("zones/extra/{x}"));
        let rewrite = |octet: u32| {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
            f.write_all(format!("{x}.example.test. 300 IN A 192.0.2.{octet}\n").as_bytes())
                .unwrap();
        };
        edited |= in_one_tick(&t, &file, || rewrite(30 + i), || rewrite(40 + i));
        let text = published(&t);
        assert!(text.contains(&format!("192.0.2.{}", 40 + i)), "{text}");
        if added && removed && extra && edited {
            break;
        }
    }
    assert!(
        added && removed && extra && edited,
        "each change was made within one second of the last build at least once (added {added}, removed {removed}, extra {extra}, edited {edited})"
    );
}
