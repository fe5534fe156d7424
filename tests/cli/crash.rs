//! Crash safety: `zonedrop build --force` killed with SIGKILL at random
//! moments, hundreds of times, while a reader keeps parsing the published
//! zone. The zone must always be whole (old or new, never a part), and the
//! next build must clean the killed build's temporaries, find the lock free
//! and publish.

use crate::support::*;
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::txt::Parser;
use std::process::Stdio;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Records in primary/: enough that writing the zone takes a while, so
/// kills land while the temporary is being written.
const HOSTS: usize = 1_500;
/// Time for the kill loop (the whole test stays under a minute).
const BUDGET: Duration = Duration::from_secs(45);
/// Kills to aim at; the loop stops at this many or at the budget.
const KILLS: usize = 300;

fn tree() -> Tree {
    let hosts: String = (0..HOSTS)
        .map(|i| format!("h{i} IN A 198.51.{}.{}\n", i / 250 % 250, i % 250))
        .collect();
    // lock_wait 0: a lock left held by a killed build fails at once.
    Tree::one_zone("[build]\nlock_wait = \"0s\"\n", &hosts)
}

/// A 43-character base64url value for challenge `i`.
fn value(i: usize) -> String {
    format!("{i:0>43}")
}

/// What a reader of the published zone sees: records other than the
/// challenges (always the same count) and the serial.
fn read_zone(text: &str) -> Result<(usize, u32), String> {
    let origin = Name::from_str("example.test.").unwrap();
    let (_, map) = Parser::new(text, None, Some(origin))
        .parse()
        .map_err(|e| e.to_string())?;
    let mut others = 0;
    let mut serial = None;
    for set in map.values() {
        for r in set.records_without_rrsigs() {
            match r.record_type() {
                RecordType::TXT => {}
                RecordType::SOA => {
                    if let RData::SOA(soa) = &r.data {
                        serial = Some(soa.serial);
                    }
                    others += 1;
                }
                _ => others += 1,
            }
        }
    }
    Ok((others, serial.ok_or("no SOA")?))
}

/// A small xorshift: random kill moments without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn temporaries(t: &Tree) -> usize {
    t.all_names("unsigned")
        .iter()
        .filter(|n| n.starts_with('.'))
        .count()
}

#[test]
fn sigkilled_builds_never_publish_a_partial_zone() {
    let t = tree();
    let whole = HOSTS + 3; // SOA, NS, ns1 A, the hosts
    let first = t.run(&["build", "--quiet"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let out = t.path("unsigned/example.test");

    // How long one publishing build takes, to spread the kills over it.
    let started = Instant::now();
    t.write(
        "drop/c-calibrate",
        &line("_acme-challenge.example.test.", 60, &value(0)),
    );
    assert_eq!(t.run(&["build", "--force", "--quiet"]).code, 0);
    let mut build_time = started.elapsed().as_micros() as u64;

    let stop = Arc::new(AtomicBool::new(false));
    let parses = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (stop, parses, out) = (stop.clone(), parses.clone(), out.clone());
        std::thread::spawn(move || -> Result<Vec<u32>, String> {
            let mut serials = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let text = std::fs::read_to_string(&out).map_err(|e| format!("read: {e}"))?;
                let (others, serial) =
                    read_zone(&text).map_err(|e| format!("a partial zone was visible: {e}"))?;
                if others != whole {
                    return Err(format!("{others} records visible instead of {whole}"));
                }
                if serials.last() != Some(&serial) {
                    serials.push(serial);
                }
                parses.fetch_add(1, Ordering::Relaxed);
            }
            Ok(serials)
        })
    };

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
    let (mut kills, mut exited, mut left_temp, mut cleaned) = (0, 0, 0, 0);
    let mut present: Vec<usize> = Vec::new();
    let loop_start = Instant::now();
    let mut i = 1;
    while loop_start.elapsed() < BUDGET && kills < KILLS {
        // Change the input so the build has something to publish.
        if present.len() < 4 || rng.below(2) == 0 {
            t.write(
                &format!("drop/c{i}"),
                // One owner each: policy.max_values_per_name does not cut in.
                &line(
                    &format!("_acme-challenge.h{i}.example.test."),
                    60,
                    &value(i),
                ),
            );
            present.push(i);
        } else {
            let gone = present.remove(rng.below(present.len() as u64) as usize);
            std::fs::remove_file(t.path(&format!("drop/c{gone}"))).unwrap();
        }
        i += 1;
        let before = temporaries(&t);
        let mut child = t
            .cmd(&["build", "--force", "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Half the kills anywhere in the build, half near its end, where
        // the zone is written and renamed.
        let at = if rng.below(2) == 0 {
            rng.below(build_time * 5 / 4)
        } else {
            build_time * 6 / 10 + rng.below(build_time * 6 / 10)
        };
        std::thread::sleep(Duration::from_micros(at));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        if status.code().is_some() {
            exited += 1; // finished before the kill
            assert_eq!(status.code(), Some(0), "an unkilled build failed");
            if before > 0 {
                // It started over a killed build's temporary: gone.
                assert_eq!(temporaries(&t), 0, "{:?}", t.all_names("unsigned"));
                cleaned += 1;
            }
            // Builds run faster than the calibration said (it ran while
            // the rest of the suite loaded the machine): aim earlier.
            build_time = (build_time * 3 / 4).max(1_000);
        } else {
            kills += 1;
        }
        let left = temporaries(&t);
        // Each build removes the temporaries it finds before it writes its
        // own: they never pile up in the output folder.
        assert!(
            left <= 1,
            "{left} temporaries: {:?}",
            t.all_names("unsigned")
        );
        if left > 0 {
            left_temp += 1;
        }
        if i % 25 == 0 {
            // The next build recovers: lock free, temporaries gone, published.
            let r = t.run(&["build", "--force", "--quiet"]);
            assert_eq!(r.code, 0, "the build after a kill failed: {}", r.stderr);
            assert_eq!(temporaries(&t), 0, "{:?}", t.all_names("unsigned"));
            cleaned += usize::from(left > 0);
        }
    }
    // Random timing may miss the short write: then aim. Watch the output
    // folder and kill the moment a temporary appears, so the "killed while
    // writing" case, and the last build starting over its temporary, are
    // always exercised, whatever the machine's speed.
    let mut aimed = 0;
    while temporaries(&t) == 0 && aimed < 50 {
        aimed += 1;
        let n = present.pop().unwrap_or(i);
        let _ = std::fs::remove_file(t.path(&format!("drop/c{n}")));
        let mut child = t
            .cmd(&["build", "--force", "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while temporaries(&t) == 0 && Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL
        if child.wait().unwrap().code().is_none() {
            kills += 1;
        }
        if temporaries(&t) > 0 {
            left_temp += 1;
        }
    }
    let left = temporaries(&t);
    let r = t.run(&["build", "--force", "--quiet"]);
    assert_eq!(
        r.code, 0,
        "the build after the last kill failed: {}",
        r.stderr
    );
    assert_eq!(temporaries(&t), 0, "{:?}", t.all_names("unsigned"));
    cleaned += usize::from(left > 0);
    stop.store(true, Ordering::Relaxed);
    let serials = reader.join().unwrap().unwrap_or_else(|e| panic!("{e}"));

    // The last build published exactly the challenges left in drop/.
    let text = std::fs::read_to_string(&out).unwrap();
    let txt = text.lines().filter(|l| l.contains(" IN TXT ")).count();
    assert_eq!(txt, present.len() + 1, "challenges in the final zone");
    eprintln!(
        "crash: {} builds: {kills} killed ({left_temp} left a temporary, {cleaned} builds started over one), \
         {exited} finished first, {aimed} aimed; reader parsed {} times and saw {} serials; one build takes {} ms",
        kills + exited,
        parses.load(Ordering::Relaxed),
        serials.len(),
        build_time / 1000
    );
    assert!(
        kills >= 200,
        "only {kills} builds were killed ({exited} finished first) in {:?}",
        loop_start.elapsed()
    );
    assert!(left_temp > 0, "no kill landed while a temporary existed");
    assert!(
        cleaned > 0,
        "no build ran to its end over a killed build's temporary"
    );
    assert!(serials.len() > 1, "the reader never saw a new zone");
}

/// An inotify watch on a folder for the first file created or written in
/// it (closed when dropped).
struct FirstWrite(i32);

impl FirstWrite {
    fn new(dir: &std::path::Path) -> FirstWrite {
        let path = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
        // SAFETY: plain calls with a C string that outlives them.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        assert!(fd >= 0);
        let wd = unsafe {
            libc::inotify_add_watch(fd, path.as_ptr(), libc::IN_CREATE | libc::IN_MODIFY)
        };
        assert!(wd >= 0, "inotify on {}", dir.display());
        FirstWrite(fd)
    }

    /// Until the first event, or `limit`.
    fn wait(self, limit: Duration) {
        let mut pfd = libc::pollfd {
            fd: self.0,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, limit.as_millis() as i32) };
    }
}

impl Drop for FirstWrite {
    fn drop(&mut self) {
        // SAFETY: our own descriptor.
        unsafe { libc::close(self.0) };
    }
}

/// Temporaries of killed cache writers in state/cache.
fn cache_temporaries(t: &Tree) -> usize {
    std::fs::read_dir(t.path("state/cache"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0)
}

/// The cache of a zone's checked sources (state/cache/<zone>), with builds
/// SIGKILLed while they write it: the build after each kill finds the old
/// cache or the new one, never a torn one (it would say "damaged"), and
/// publishes; killed writers' temporaries do not pile up.
#[test]
fn sigkilled_builds_leave_the_old_cache_or_the_new_one() {
    // 10,000 hosts: a cache of about 500 KB, long enough to write that
    // aimed kills land in it.
    let hosts: String = (0..10_000)
        .map(|i| format!("h{i} IN A 198.51.{}.{}\n", i / 250 % 250, i % 250))
        .collect();
    let t = Tree::one_zone("[build]\nlock_wait = \"0s\"\n", &hosts);
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(t.run(&["build", "--force", "--quiet"]).code, 0);
    assert!(t.path("state/cache/example.test").exists());
    let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ u64::from(std::process::id()));
    let started = Instant::now();
    let (mut kills, mut torn_moments) = (0, 0);
    let mut build_time = 50_000u64;
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(30) && (kills < 40 || torn_moments < 3) {
        i += 1;
        // --force reads the sources and writes the cache again (with a
        // new seed for its record keys: other bytes).
        // Aimed every other round: the moment a file in state/cache is
        // created or written to.
        let watch = (i % 2 == 1).then(|| FirstWrite::new(&t.path("state/cache")));
        let mut child = t
            .cmd(&["build", "--force", "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        match watch {
            Some(w) => w.wait(Duration::from_secs(5)),
            None => std::thread::sleep(Duration::from_micros(rng.below(build_time * 5 / 4))),
        }
        let begun = Instant::now();
        child.kill().unwrap(); // SIGKILL
        if child.wait().unwrap().code().is_none() {
            kills += 1;
        } else {
            build_time = (begun.elapsed().as_micros() as u64).max(build_time * 3 / 4);
        }
        torn_moments += usize::from(cache_temporaries(&t) > 0);

        // The next build: a challenge-only change on top of whatever the
        // killed one left.
        let owner = format!("_acme-challenge.h{i}.example.test");
        assert_eq!(t.run(&["add", &owner, &value(i)]).code, 0);
        let r: Run = t
            .cmd(&["build", "--quiet"])
            .env("RUST_LOG", "zonedrop=info")
            .output()
            .unwrap()
            .into();
        assert_eq!(r.code, 0, "the build after a kill failed: {}", r.stderr);
        assert!(!r.stderr.contains("damaged"), "{}", r.stderr);
        let text = std::fs::read_to_string(t.path("unsigned/example.test")).unwrap();
        assert!(text.contains(&value(i)) && text.contains("h9999"), "{text}");
        assert_eq!(cache_temporaries(&t), 0, "temporaries left behind");
        assert_eq!(t.run(&["del", &owner, &value(i)]).code, 0);
    }
    eprintln!("crash (cache): {kills} kills, {torn_moments} left a cache temporary, {i} rounds");
    assert!(kills >= 15, "only {kills} builds were killed");
    assert!(
        torn_moments > 0,
        "no kill landed while the cache was written"
    );
}
