//! Hook-to-answer latency of `zonedrop run` (`cargo bench --bench latency`):
//! how long after `zonedrop add` returns (as it does inside an ACME
//! client's hook) the embedded responder answers the new TXT value.
//!
//! `zonedrop run` serves a temporary copy of the example tree on
//! 127.0.0.1 and a free port. Each round runs the real binary's `add`,
//! then from the moment it returns asks the responder by UDP (a query
//! built here, RD clear, about every millisecond) until the value is in
//! the answer; then `del`, and the same for the value's disappearance.
//! Prints p50, p90, p99 and max of both, in milliseconds.
//!
//! `ZONEDROP_BENCH_ROUNDS` (default 200) changes the number of rounds.

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const OWNER: &str = "_acme-challenge.example.test.";
/// A round that takes longer than this is a failure, not a slow sample.
const GIVE_UP: Duration = Duration::from_secs(10);

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
        .unwrap_or(200);
    let zonedrop = env!("CARGO_BIN_EXE_zonedrop");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("zones"),
        &d.join("zones"),
    );
    std::fs::create_dir(d.join("drop")).expect("drop");
    let port = free_port();
    let config = d.join("zonedrop.toml");
    std::fs::write(
        &config,
        format!(
            "[paths]\nsoa = \"zones/soa\"\nprimary = \"zones/primary\"\n\
             extra = \"zones/extra\"\nunsigned = \"unsigned\"\nstate = \"state\"\n\
             [[drop]]\npath = \"drop\"\n\
             [[zone]]\nname = \"example.test\"\n[[zone]]\nname = \"example.net\"\n\
             [serve]\nlisten = [\"127.0.0.1:{port}\"]\n"
        ),
    )
    .expect("config");
    let _run = Kill(
        Command::new(zonedrop)
            .arg("--config")
            .arg(&config)
            .arg("run")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("zonedrop run"),
    );
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.connect(("127.0.0.1", port)).expect("connect");
    sock.set_read_timeout(Some(Duration::from_millis(1)))
        .expect("timeout");
    let mut q = Querier { sock, id: 0 };
    let until = Instant::now() + GIVE_UP;
    while q.txt().is_none() {
        assert!(Instant::now() < until, "zonedrop run does not answer");
        std::thread::sleep(Duration::from_millis(10));
    }

    let cmd = |op: &str, value: &str| {
        let out = Command::new(zonedrop)
            .arg("--config")
            .arg(&config)
            .args([op, OWNER, value])
            .output()
            .expect("zonedrop add/del");
        assert!(out.status.success(), "zonedrop {op}: {out:?}");
    };
    println!(
        "# zonedrop run hook-to-answer latency: {rounds} rounds, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "# per round: `{zonedrop} --config {} add {OWNER} VALUE`, then a UDP TXT query to 127.0.0.1:{port} every ~1 ms until VALUE is answered; then `del` likewise until it is gone",
        config.display()
    );
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let value = format!("L{i:042}");
        cmd("add", &value);
        added.push(q.until(|t| t.contains(&value)));
        cmd("del", &value);
        removed.push(q.until(|t| !t.contains(&value)));
    }
    report("add -> answered", &mut added);
    report("del -> gone    ", &mut removed);
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
    /// The TXT strings at OWNER, or None when no answer came within ~1 ms.
    fn txt(&mut self) -> Option<Vec<String>> {
        self.id = self.id.wrapping_add(1);
        let mut m = Message::query();
        m.metadata.id = self.id;
        m.metadata.recursion_desired = false;
        m.add_query(Query::query(
            Name::from_ascii(OWNER).expect("name"),
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

    /// Ask about every millisecond until `done` holds; the time it took.
    fn until(&mut self, done: impl Fn(&[String]) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            let asked = Instant::now();
            if self.txt().is_some_and(|t| done(&t)) {
                return start.elapsed();
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
