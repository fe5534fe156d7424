//! A full disk under the output folder: publishing fails with one line that
//! names the file, exit 1; the last good zone and everything else in the
//! folder stay as they were, no temporary is left, and once there is room
//! again the next build publishes.
//!
//! The output folder is a small tmpfs (or, where tmpfs cannot be mounted, a
//! loop-mounted ext2 image); mounting needs root, as in CI.

use crate::support::*;
use std::io::Write;
use std::path::Path;

/// Fill the file system at `dir` with `name` until it is full.
fn fill(dir: &Path, name: &str) -> Vec<u8> {
    let mut f = std::fs::File::create(dir.join(name)).unwrap();
    let block = [b'x'; 1024];
    let mut written = Vec::new();
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(n) => written.extend_from_slice(&block[..n]),
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    f.sync_all().ok();
    written
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_full_disk_keeps_the_last_good_zone_and_says_which_file() {
    let hosts: String = (0..200)
        .map(|i| format!("h{i} IN A 198.51.100.{}\n", i % 250))
        .collect();
    let t = Tree::one_zone("[[zone]]\nname = \"example.net\"\n", &hosts);
    t.write(
        "zones/soa/example.net",
        "$TTL 3600\n@ IN SOA ns1.example.net. hostmaster.example.net. 1 7200 3600 1209600 300\n",
    );
    t.write("zones/primary/example.net", "@ IN NS ns1.example.test.\n");
    let out = t.path("unsigned");
    let _mount = Mount::small(&out, t.dir.path());

    let r = t.run(&["build", "--quiet"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::fs::write(out.join("keep.txt"), "not zonedrop's\n").unwrap();
    fill(&out, "filler");
    let before = snapshot(&out);
    assert!(before.iter().any(|(n, _)| n == "example.test"));

    // A change that needs a new file: a challenge in example.test.
    assert_eq!(t.run(&["add", "_acme-challenge.example.test", V1]).code, 0);
    let r = t.run(&["build"]);
    assert_eq!(r.code, 1, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    let file = out.join("example.test");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {}", r.stderr);
    assert!(
        lines[0].contains(&format!(
            "{}: cannot write: No space left on device",
            file.display()
        )),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "");
    assert_eq!(snapshot(&out), before, "the output folder changed");
    assert_eq!(
        t.all_names("unsigned")
            .iter()
            .filter(|n| n.starts_with('.'))
            .count(),
        0,
        "a temporary was left: {:?}",
        t.all_names("unsigned")
    );

    // Room again: the next build publishes the challenge.
    std::fs::remove_file(out.join("filler")).unwrap();
    let r = t.run(&["build"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(V1), "{text}");
    assert_eq!(
        std::fs::read_to_string(out.join("keep.txt")).unwrap(),
        "not zonedrop's\n"
    );
}
