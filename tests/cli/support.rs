//! Shared helpers: a temporary tree, running the binary, reading a drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const V1: &str = "LPsIwTo7o8BoG0-vjCyGQGBWSVIPxI-i_X336eUOQZo";
pub const V2: &str = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA";

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_zonedrop"))
}

/// A temporary working tree; commands run with it as the current folder and
/// with no zonedrop environment inherited.
pub struct Tree {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Tree {
    pub fn new() -> Tree {
        Tree {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// A command for the binary (or a symlink to it) in this tree.
    pub fn cmd_at(&self, program: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args)
            .current_dir(self.dir.path())
            .env_remove("ZONEDROP_CONFIG")
            .env_remove("ZONEDROP_DROP")
            .env_remove("CERTBOT_DOMAIN")
            .env_remove("CERTBOT_VALIDATION");
        c
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_at(&bin(), args)
    }

    /// Run a multi-call symlink as an ACME client would, with the drop
    /// directory `drop` given through the environment.
    pub fn run_hook(&self, link: &Path, args: &[&str]) -> Run {
        self.cmd_at(link, args)
            .env("ZONEDROP_DROP", "drop")
            .output()
            .unwrap()
            .into()
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.cmd(args).output().unwrap().into()
    }

    /// The drop directory's files (no dot-files), name → content, sorted.
    pub fn drop_files(&self, rel: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = std::fs::read_dir(self.path(rel))
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read_to_string(e.path()).unwrap_or_default(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Every entry, dot-files included (to see that nothing half-written stays).
    pub fn all_names(&self, rel: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    pub fn symlink_bin(&self, name: &str) -> PathBuf {
        let link = self.path(name);
        std::os::unix::fs::symlink(bin(), &link).unwrap();
        link
    }
}

/// The fragment line zonedrop writes.
pub fn line(owner: &str, ttl: u32, value: &str) -> String {
    format!("{owner} {ttl} IN TXT \"{value}\"\n")
}

/// The sorted contents of a drop listing (what a builder would read).
pub fn contents(files: &[(String, String)]) -> Vec<String> {
    let mut v: Vec<String> = files.iter().map(|(_, c)| c.clone()).collect();
    v.sort();
    v
}

/// Fail loudly when a program a test needs is missing: CI installs it
/// (`.ci/install-deps`), a developer is told which package to install.
pub fn need(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{program} is not installed: run `bash .ci/install-deps` (Debian package {package})"
    );
}

/// A port free for both UDP and TCP on 127.0.0.1.
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1");
}

/// A server process killed by PID when dropped (SIGTERM, then SIGKILL),
/// its output in a log file.
pub struct Daemon {
    pub child: std::process::Child,
    pub name: &'static str,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(name: &'static str, cmd: &mut Command, log: PathBuf) -> Daemon {
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Daemon { child, name, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) on our own child's PID.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let until = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while std::time::Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("{} (pid {pid}) needed SIGKILL", self.name);
    }
}

/// Ask `server` for the TXT strings at `owner` over UDP (RD clear), by hand:
/// the rcode and the strings of the answer.
pub fn query_txt(server: std::net::SocketAddr, owner: &str) -> Option<(u8, Vec<String>)> {
    use hickory_proto::rr::RData;
    let id: u16 = rand_id();
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in owner.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 16, 0, 1]); // TXT IN
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    socket.send_to(&q, server).ok()?;
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.recv(&mut buf).ok()?;
        let m = hickory_proto::op::Message::from_vec(&buf[..n]).ok()?;
        if m.metadata.id != id {
            continue;
        }
        let strings = m
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(
                    t.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect::<Vec<_>>()
                        .concat(),
                ),
                _ => None,
            })
            .collect();
        return Some((u16::from(m.metadata.response_code) as u8, strings));
    }
}

fn rand_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0x1234);
    NEXT.fetch_add(7919, Ordering::Relaxed)
}

/// CPU seconds (user + system) process `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name (which is in parentheses).
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}
