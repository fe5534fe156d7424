//! Hook-to-answer latency of `zonedrop run` (`cargo bench --bench latency`):
//! from the moment `zonedrop add` starts (as an ACME client's hook calls
//! it: the hook's own work, pruning included, counts) until the embedded
//! responder answers the new TXT value, in four deployments:
//!
//! - `small`: the example tree (two small zones);
//! - `zones`: 1,001 zones, the challenge landing in one of them;
//! - `big`: one zone of 100,000 records;
//! - `pending`: the example tree with 2,000 fragments already pending in
//!   the drop directory (`max_files` raised to make room).
//!
//! Each deployment gets a temporary tree and a `zonedrop run` of its own
//! on 127.0.0.1 and a free port, with the default rate limit
//! (`[build] max_rate` 4). Each round runs the real binary's `add` for a
//! new owner and value, then asks the responder by UDP (a query built
//! here, RD clear, about every millisecond) until the value is in the
//! answer. Adds are spaced 200 ms apart (start to start): they are lone
//! changes, as ACME clients make them, not churn. Prints p50, p90, p99 and
//! max per deployment, in milliseconds.
//!
//! `ZONEDROP_BENCH_ROUNDS` (default 100) changes the number of rounds;
//! `ZONEDROP_BENCH_ONLY=small,big` runs only the deployments named.

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use std::fmt::Write as _;
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Adds start this far apart.
const SPACING: Duration = Duration::from_millis(200);
/// A round that takes longer than this is a failure, not a slow sample.
const GIVE_UP: Duration = Duration::from_secs(30);
const SOA: &str =
    "$TTL 3600\n@ IN SOA ns1.example.test. hostmaster.example.test. 1 7200 3600 1209600 300\n";

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let rounds: usize = std::env::var("ZONEDROP_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let only = std::env::var("ZONEDROP_BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|o| o.trim() == name);
    println!(
        "# zonedrop run: `zonedrop add` started -> TXT answered, {rounds} adds {} ms apart, {} cores",
        SPACING.as_millis(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let deployments: [(&str, &str, Setup); 4] = [
        ("small", "the example tree (2 small zones)", small),
        ("zones", "1,001 zones, the challenge in one", zones),
        ("big", "one zone of 100,000 records", big),
        (
            "pending",
            "2,000 fragments pending in the drop directory",
            pending,
        ),
    ];
    for (name, what, make) in deployments {
        if wanted(name) {
            let mut samples = deployment(make, rounds);
            report(&format!("{name:8} {what}"), &mut samples);
        }
    }
}

/// Writes a deployment's tree; returns the config's zone part.
type Setup = fn(&Path) -> String;

/// Set up a tree with `make` (it returns the config's zone part), start
/// `zonedrop run` in it, and time `rounds` adds.
fn deployment(make: Setup, rounds: usize) -> Vec<Duration> {
    let zonedrop = env!("CARGO_BIN_EXE_zonedrop");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("drop")).expect("drop");
    let zones = make(d);
    let port = free_port();
    let config = d.join("zonedrop.toml");
    std::fs::write(
        &config,
        format!(
            "[paths]\nsoa = \"zones/soa\"\nprimary = \"zones/primary\"\n\
             extra = \"zones/extra\"\nunsigned = \"unsigned\"\nstate = \"state\"\n\
             [policy]\nmax_files = {}\n\
             [[drop]]\npath = \"drop\"\n{zones}\
             [serve]\nlisten = [\"127.0.0.1:{port}\"]\n",
            3000 + rounds
        ),
    )
    .expect("config");
    let _run = Kill(
        Command::new(zonedrop)
            .arg("--config")
            .arg(&config)
            .arg("run")
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .spawn()
            .expect("zonedrop run"),
    );
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.connect(("127.0.0.1", port)).expect("connect");
    sock.set_read_timeout(Some(Duration::from_millis(1)))
        .expect("timeout");
    let mut q = Querier { sock, id: 0 };
    let until = Instant::now() + Duration::from_secs(120);
    while q.txt("example.test.").is_none() {
        assert!(Instant::now() < until, "zonedrop run does not answer");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Its first build done (recorded in the manifest), the responder
    // handed every zone: from here on it is idle until the first add.
    while !d.join("state/manifest.json").exists() {
        assert!(
            Instant::now() < until,
            "zonedrop run's first build does not end"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let owner = format!("_acme-challenge.r{i}.example.test.");
        let value = format!("L{i:042}");
        let started = Instant::now();
        let out = Command::new(zonedrop)
            .arg("--config")
            .arg(&config)
            .args(["add", &owner, &value])
            .output()
            .expect("zonedrop add");
        assert!(out.status.success(), "zonedrop add: {out:?}");
        q.until(&owner, started, |t| t.contains(&value));
        samples.push(started.elapsed());
        if let Some(wait) = (started + SPACING).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    samples
}

/// The example tree.
fn small(d: &Path) -> String {
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("zones"),
        &d.join("zones"),
    );
    "[[zone]]\nname = \"example.test\"\n[[zone]]\nname = \"example.net\"\n".into()
}

/// example.test and 1,000 other zones of a few records each.
fn zones(d: &Path) -> String {
    let mut config = String::new();
    for i in 0..1001 {
        let z = if i == 0 {
            "example.test".to_string()
        } else {
            format!("z{i:04}.example")
        };
        writeln!(config, "[[zone]]\nname = \"{z}\"").ok();
        write(&d.join(format!("zones/soa/{z}")), SOA);
        write(
            &d.join(format!("zones/primary/{z}")),
            "@ IN NS ns1.example.test.\nwww IN A 192.0.2.1\nmail IN A 192.0.2.2\n@ IN MX 10 mail\n@ IN TXT \"v=spf1 mx -all\"\n",
        );
    }
    std::fs::create_dir_all(d.join("zones/extra")).expect("extra");
    config
}

/// example.test with 100,000 records.
fn big(d: &Path) -> String {
    write(&d.join("zones/soa/example.test"), SOA);
    let mut primary = String::from("@ IN NS ns1\nns1 IN A 192.0.2.53\n");
    for i in 0..100_000u32 {
        writeln!(
            primary,
            "h{i} IN A 10.{}.{}.{}",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        )
        .ok();
    }
    write(&d.join("zones/primary/example.test"), &primary);
    std::fs::create_dir_all(d.join("zones/extra")).expect("extra");
    "[[zone]]\nname = \"example.test\"\n".into()
}

/// The example tree and 2,000 fragments already in the drop directory.
fn pending(d: &Path) -> String {
    let zones = small(d);
    for i in 0..2000 {
        write(
            &d.join(format!("drop/pending-{i:04}")),
            &format!("_acme-challenge.p{i}.example.test. 60 IN TXT \"P{i:042}\"\n"),
        );
    }
    zones
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |p: f64| {
        ms(samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1])
    };
    println!(
        "{what}: p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms  (n={})",
        at(0.50),
        at(0.90),
        at(0.99),
        ms(*samples.last().expect("samples")),
        samples.len()
    );
}

struct Querier {
    sock: UdpSocket,
    id: u16,
}

impl Querier {
    /// The TXT strings at `owner`, or None when no answer came within ~1 ms.
    fn txt(&mut self, owner: &str) -> Option<Vec<String>> {
        self.id = self.id.wrapping_add(1);
        let mut m = Message::query();
        m.metadata.id = self.id;
        m.metadata.recursion_desired = false;
        m.add_query(Query::query(
            Name::from_ascii(owner).expect("name"),
            RecordType::TXT,
        ));
        self.sock.send(&m.to_vec().expect("encode")).ok()?;
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_millis(1);
        loop {
            let n = self.sock.recv(&mut buf).ok()?;
            if let Ok(r) = Message::from_vec(&buf[..n]) {
                if r.metadata.id == self.id {
                    return Some(
                        r.answers
                            .iter()
                            .filter_map(|rec| match &rec.data {
                                RData::TXT(t) => {
                                    Some(String::from_utf8_lossy(&t.txt_data.concat()).into_owned())
                                }
                                _ => None,
                            })
                            .collect(),
                    );
                }
            }
            // A late answer to an earlier query: read on, briefly.
            if Instant::now() >= deadline {
                return None;
            }
        }
    }

    /// Ask about `owner` every millisecond until `done` holds.
    fn until(&mut self, owner: &str, start: Instant, done: impl Fn(&[String]) -> bool) {
        loop {
            let asked = Instant::now();
            if self.txt(owner).is_some_and(|t| done(&t)) {
                return;
            }
            assert!(start.elapsed() < GIVE_UP, "no change after {GIVE_UP:?}");
            let next = asked + Duration::from_millis(1);
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
}

fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}
