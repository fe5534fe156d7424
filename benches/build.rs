//! Benchmarks of the builder, side by side with the established tools in
//! one run (`cargo bench --bench build`):
//!
//! 1. zones of 1,000, 100,000 and 1,000,000 records: `zonedrop build`
//!    from no state (a full build: parse, check, publish) against
//!    `named-compilezone` and `kzonecheck` on the same zone text; median
//!    wall time and peak RSS of each;
//! 2. a no-change `zonedrop build` over 1,000 zones (median of 21 runs);
//! 3. a cron `zonedrop build` after one new fragment among 1,001 zones
//!    (median of 21 runs, the `zonedrop add` before each not timed).
//!
//! `ZONEDROP_BENCH_SIZES=1000,100000` and `ZONEDROP_BENCH_RUNS` shrink it for a quick look.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    let sizes: Vec<usize> = std::env::var("ZONEDROP_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 100_000, 1_000_000]);
    let runs: usize = env_or("ZONEDROP_BENCH_RUNS", 5);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    println!(
        "# zonedrop build benchmark: {runs} runs each, {} cores, medians",
        cores()
    );
    println!(
        "{:>9} {:<26} {:>10} {:>12} {:>14}",
        "records", "tool", "median s", "peak RSS MB", "zonedrop/tool"
    );
    for records in sizes {
        bench_zone(&d.join(format!("z{records}")), records, runs);
    }
    let zonedrop = env!("CARGO_BIN_EXE_zonedrop");

    // 1,000 small zones, no change since the last build.
    let many = d.join("many");
    many_zones(&many, 1000);
    let (t, rss) = measure(21, || {
        let mut c = Command::new(zonedrop);
        c.args(["build"]).current_dir(&many);
        c
    });
    println!(
        "no-change build, 1,000 zones: median {:.1} ms, peak RSS {:.0} MB",
        t.as_secs_f64() * 1000.0,
        rss as f64 / 1024.0
    );

    // 1,001 small zones, one new fragment (for z500.test) before each
    // build, as when cron runs after a hook added a challenge.
    let cron = d.join("cron");
    many_zones(&cron, 1001);
    let n = std::cell::Cell::new(0);
    let (t, rss) = measure(21, || {
        n.set(n.get() + 1);
        let owner = format!("_acme-challenge.h{}.z500.test", n.get());
        let value = format!("{:0>43}", n.get());
        let added = Command::new(zonedrop)
            .args(["add", &owner, &value])
            .current_dir(&cron)
            .status();
        assert!(added.is_ok_and(|s| s.success()), "zonedrop add failed");
        let mut c = Command::new(zonedrop);
        c.args(["build"]).current_dir(&cron);
        c
    });
    println!(
        "cron build after one new fragment among 1,001 zones: median {:.1} ms, peak RSS {:.0} MB",
        t.as_secs_f64() * 1000.0,
        rss as f64 / 1024.0
    );
}

/// A tree of `zones` small zones (z0.test …) with a drop directory,
/// built once after its files aged past the file system's tick.
fn many_zones(many: &Path, zones: usize) {
    let zonedrop = env!("CARGO_BIN_EXE_zonedrop");
    let mut config = String::new();
    for i in 0..zones {
        let z = format!("z{i}.test");
        writeln!(config, "[[zone]]\nname = \"{z}\"").ok();
        write(
            &many.join(format!("zones/soa/{z}")),
            "$TTL 3600\n@ IN SOA ns1 h 1 7200 3600 1209600 300\n",
        );
        write(
            &many.join(format!("zones/primary/{z}")),
            "@ IN NS ns1\nns1 IN A 192.0.2.1\nwww IN A 192.0.2.2\n",
        );
    }
    config.push_str("[[drop]]\npath = \"drop\"\n");
    write(&many.join("zonedrop.toml"), &config);
    std::fs::create_dir_all(many.join("drop")).ok();
    // Files younger than the file system's tick are read again by the next
    // build (the racy-clean rule): let the tree age past it first.
    std::thread::sleep(Duration::from_millis(2200));
    let first = Command::new(zonedrop)
        .args(["build", "--quiet"])
        .current_dir(many)
        .status();
    assert!(
        first.is_ok_and(|s| s.success()),
        "first build of {zones} zones failed"
    );
}

/// One zone of `records` records: zonedrop's full build against
/// named-compilezone and kzonecheck on the same text.
fn bench_zone(d: &Path, records: usize, runs: usize) {
    // One big zone, streamed to the files: were it built in memory, this
    // process's peak RSS would be counted in every child's (Linux keeps
    // the larger high-water mark across fork and exec).
    let soa = "$TTL 3600\n@ IN SOA ns1.big.test. hostmaster.big.test. 1 7200 3600 1209600 300\n";
    write(&d.join("zones/soa/big.test"), soa);
    write(&d.join("zonedrop.toml"), "[[zone]]\nname = \"big.test\"\n");
    let mut primary = create(&d.join("zones/primary/big.test"));
    let mut whole = create(&d.join("big.test.zone"));
    write!(whole, "$ORIGIN big.test.\n{soa}").expect("write bench input");
    let mut line = String::new();
    let mut put = |line: &str| {
        primary
            .write_all(line.as_bytes())
            .expect("write bench input");
        whole.write_all(line.as_bytes()).expect("write bench input");
    };
    put("@ IN NS ns1\n@ IN NS ns2\nns1 IN A 192.0.2.1\nns2 IN A 192.0.2.2\n");
    for i in 0..records.saturating_sub(5) {
        line.clear();
        match i % 4 {
            0 => writeln!(
                line,
                "h{i} IN A 10.{}.{}.{}",
                (i >> 16) & 255,
                (i >> 8) & 255,
                i & 255
            ),
            1 => writeln!(line, "h{i} 300 IN AAAA 2001:db8::{:x}", i & 0xffff),
            2 => writeln!(line, "h{i} IN TXT \"v=spf1 ip4:192.0.2.{} -all\"", i & 255),
            _ => writeln!(line, "h{i} IN MX 10 mail{}", i % 100),
        }
        .ok();
        put(&line);
    }
    primary.flush().expect("write bench input");
    whole.flush().expect("write bench input");

    let zonedrop = env!("CARGO_BIN_EXE_zonedrop");
    let zone_file = d.join("big.test.zone");
    let zone_file = zone_file.to_str().unwrap_or_default();
    let mut results = Vec::new();
    let zd = measure(runs, || {
        // No state and no output: every run parses, checks and publishes
        // (with state, an unchanged zone would not be written again).
        std::fs::remove_dir_all(d.join("state")).ok();
        std::fs::remove_dir_all(d.join("unsigned")).ok();
        let mut c = Command::new(zonedrop);
        c.args(["build", "--quiet"]).current_dir(d);
        c
    });
    results.push(("zonedrop build (publish)", zd));
    if have("named-compilezone") {
        let r = measure(runs, || {
            let mut c = Command::new("named-compilezone");
            c.args(["-q", "-o", "/dev/null", "big.test", zone_file]);
            c
        });
        results.push(("named-compilezone", r));
    }
    if have("kzonecheck") {
        let r = measure(runs, || {
            let mut c = Command::new("kzonecheck");
            c.args(["-o", "big.test", zone_file]);
            c
        });
        results.push(("kzonecheck", r));
    }
    for (name, (t, rss)) in &results {
        println!(
            "{:>9} {:<26} {:>10.3} {:>12.0} {:>14.2}",
            records,
            name,
            t.as_secs_f64(),
            *rss as f64 / 1024.0,
            zd.0.as_secs_f64() / t.as_secs_f64()
        );
    }
}

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn write(path: &Path, text: &str) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).ok();
    }
    std::fs::write(path, text).expect("write bench input");
}

fn create(path: &Path) -> std::io::BufWriter<std::fs::File> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).ok();
    }
    std::io::BufWriter::new(std::fs::File::create(path).expect("create bench input"))
}

fn have(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        println!("{program}: not installed, skipped (bash .ci/install-deps installs it)");
    }
    found
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Median wall time and the largest peak RSS (KiB) over `runs` runs.
#[allow(clippy::zombie_processes)] // reaped by wait4 in wait_rusage
fn measure(runs: usize, make: impl Fn() -> Command) -> (Duration, i64) {
    let mut times = Vec::new();
    let mut peak = 0;
    for _ in 0..runs {
        // Made first: what `make` prepares is not timed.
        let mut cmd = make();
        let start = Instant::now();
        let child = cmd
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let (ok, rss) = wait_rusage(child.id() as i32);
        times.push(start.elapsed());
        assert!(ok, "benchmark command failed");
        peak = peak.max(rss);
    }
    times.sort();
    (times[times.len() / 2], peak)
}

/// wait4(2): the exit status and the child's own peak RSS in KiB.
fn wait_rusage(pid: i32) -> (bool, i64) {
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    (
        r == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        usage.ru_maxrss,
    )
}
