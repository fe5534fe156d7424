//! Shared helpers: a temporary tree (and the one-zone tree most tests
//! start from), running the binary with a clean environment, reading a
//! drop, programs a test needs, a DNS client, servers killed at the end,
//! file systems mounted for a test.

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use std::ffi::CString;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

pub const V1: &str = "LPsIwTo7o8BoG0-vjCyGQGBWSVIPxI-i_X336eUOQZo";
pub const V2: &str = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA";

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_zonedrop"))
}

/// `cmd` without the `ZONEDROP_*` variables of the developer's environment
/// (with `ZONEDROP_WAIT=30s` in a shell, every `add` would wait for a
/// server): a test sets the ones it means.
pub fn clean_env(cmd: &mut Command) -> &mut Command {
    for name in ["ZONEDROP_CONFIG", "ZONEDROP_DROP", "ZONEDROP_WAIT"] {
        cmd.env_remove(name);
    }
    for (name, _) in std::env::vars_os() {
        if name.as_encoded_bytes().starts_with(b"ZONEDROP_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// The binary, with a clean environment ([`clean_env`]).
pub fn zonedrop() -> Command {
    let mut c = Command::new(bin());
    clean_env(&mut c);
    c
}

/// Copy the folder `from` to `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
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

    /// The smallest working tree: one zone, example.test (its SOA, `@ NS
    /// ns1`, `ns1 A`, then `primary`), an empty drop directory `drop`, and
    /// `config` after the zone in zonedrop.toml.
    pub fn one_zone(config: &str, primary: &str) -> Tree {
        let t = Tree::new();
        t.write(
            "zonedrop.toml",
            &format!("[[drop]]\npath = \"drop\"\n[[zone]]\nname = \"example.test\"\n{config}"),
        );
        t.write(
            "zones/soa/example.test",
            "$TTL 3600\n@ IN SOA ns1.example.test. hostmaster.example.test. 1 7200 3600 1209600 300\n",
        );
        t.write(
            "zones/primary/example.test",
            &format!("@ IN NS ns1\nns1 IN A 192.0.2.53\n{primary}"),
        );
        t.mkdir("drop");
        t
    }

    /// A command for the binary (or a symlink to it) in this tree, with a
    /// clean environment.
    pub fn cmd_at(&self, program: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        clean_env(&mut c)
            .args(args)
            .current_dir(self.dir.path())
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
/// Daemons (nsd, knotd) are looked for in /usr/sbin too, which a user's
/// PATH may lack.
pub fn need(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(program).is_file();
    assert!(
        found,
        "{program} is not installed: run `bash .ci/install-deps` (Debian package {package})"
    );
}

/// A new Ed25519 public key (PEM) at `rel`.
pub fn new_key(t: &Tree, rel: &str) {
    need("openssl", "openssl");
    let private = t.path(&format!("{rel}.key"));
    let ok = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&private)
        .status()
        .unwrap()
        .success()
        && Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(t.path(rel))
            .status()
            .unwrap()
            .success();
    assert!(ok, "openssl could not make a key");
}

/// A file system mounted on a folder for a test (mounting needs root, as
/// in CI), unmounted when dropped.
pub struct Mount {
    at: PathBuf,
}

impl Mount {
    /// A small file system: a 128 KiB tmpfs, or where tmpfs cannot be
    /// mounted a 256 KiB ext2 image (in `scratch`) on a loop device.
    pub fn small(at: &Path, scratch: &Path) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let c = |s: &str| CString::new(s).unwrap();
        let target = c(at.to_str().unwrap());
        // SAFETY: plain C strings that outlive the call.
        let rc = unsafe {
            libc::mount(
                c("tmpfs").as_ptr(),
                target.as_ptr(),
                c("tmpfs").as_ptr(),
                0,
                c("size=128k,mode=0755").as_ptr().cast(),
            )
        };
        if rc == 0 {
            return Mount {
                at: at.to_path_buf(),
            };
        }
        let tmpfs_error = std::io::Error::last_os_error();
        Mount::ext2(at, &scratch.join("small.ext2"), &["-m", "0"], 256).unwrap_or_else(|e| {
            panic!(
                "cannot mount a small file system on {} (tmpfs: {tmpfs_error}; loop ext2: {e}): run the tests as root",
                at.display()
            )
        })
    }

    /// An ext2 image of `kib` KiB at `image`, made with `mkfs_args`, on a
    /// loop device at `at`.
    pub fn ext2(at: &Path, image: &Path, mkfs_args: &[&str], kib: u32) -> Result<Mount, String> {
        need("mkfs.ext2", "e2fsprogs");
        std::fs::create_dir_all(at).unwrap();
        let mkfs = Command::new("mkfs.ext2")
            .args(["-q", "-F"])
            .args(mkfs_args)
            .arg(image)
            .arg(kib.to_string())
            .output()
            .unwrap();
        if !mkfs.status.success() {
            return Err(format!(
                "mkfs.ext2: {}",
                String::from_utf8_lossy(&mkfs.stderr)
            ));
        }
        let mount = Command::new("mount")
            .args(["-o", "loop"])
            .arg(image)
            .arg(at)
            .output()
            .unwrap();
        if !mount.status.success() {
            return Err(format!("mount: {}", String::from_utf8_lossy(&mount.stderr)));
        }
        Ok(Mount {
            at: at.to_path_buf(),
        })
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let target = CString::new(self.at.to_str().unwrap()).unwrap();
        // SAFETY: a C string that outlives the call. MNT_DETACH: never leave
        // a mount behind even if something still has a file open.
        unsafe {
            libc::umount2(target.as_ptr(), libc::MNT_DETACH);
        }
    }
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

/// Ask `server` over UDP for the TXT strings at `owner`, as an authority
/// is asked (RD clear): the rcode and the strings (each record's
/// character-strings joined), or None when no answer came within 500 ms.
pub fn query_txt(server: SocketAddr, owner: &str) -> Option<(u8, Vec<String>)> {
    // Message::query() draws a random ID.
    let mut q = Message::query();
    q.metadata.recursion_desired = false;
    let name = Name::from_ascii(format!("{}.", owner.trim_end_matches('.'))).unwrap();
    q.add_query(Query::query(name, RecordType::TXT));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(server).ok()?;
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    socket.send(&q.to_vec().unwrap()).ok()?;
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.recv(&mut buf).ok()?;
        let Ok(m) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if m.metadata.id != q.metadata.id {
            continue; // a late answer to an earlier question
        }
        let strings = m
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(String::from_utf8_lossy(&t.txt_data.concat()).into_owned()),
                _ => None,
            })
            .collect();
        return Some((u16::from(m.metadata.response_code) as u8, strings));
    }
}

/// The variables the binary reads (clap's `env`) never come from the
/// developer's shell; run the suite with `ZONEDROP_WAIT=30s` set to see
/// what they would do.
#[test]
fn commands_start_without_zonedrop_variables() {
    let mut c = Command::new("true");
    clean_env(&mut c);
    let removed: Vec<_> = c
        .get_envs()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k)
        .collect();
    for name in ["ZONEDROP_CONFIG", "ZONEDROP_DROP", "ZONEDROP_WAIT"] {
        assert!(removed.iter().any(|k| *k == name), "{name} is passed on");
    }
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

/// A secondary on a UDP socket of its own: it acknowledges every NOTIFY
/// and remembers the zones it was told about, in order.
pub struct Secondary {
    pub addr: SocketAddr,
    told: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Secondary {
    pub fn start() -> Secondary {
        Secondary::start_with(|_| {})
    }

    /// A secondary that hands each NOTIFY to `before_ack` before it
    /// acknowledges it (the sender waits for the acknowledgement).
    pub fn start_with(before_ack: impl Fn(&Message) + Send + 'static) -> Secondary {
        use hickory_proto::op::{MessageType, OpCode, ResponseCode};
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let secondary = Secondary {
            addr: socket.local_addr().unwrap(),
            told: Default::default(),
            stop: Default::default(),
        };
        let (told, stop) = (secondary.told.clone(), secondary.stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let request = Message::from_vec(&buf[..n]).unwrap();
                assert_eq!(request.metadata.op_code, OpCode::Notify);
                assert_eq!(request.queries[0].query_type(), RecordType::SOA);
                before_ack(&request);
                told.lock()
                    .unwrap()
                    .push(request.queries[0].name().to_string());
                let mut ack =
                    Message::new(request.metadata.id, MessageType::Response, OpCode::Notify);
                ack.metadata.response_code = ResponseCode::NoError;
                ack.add_query(request.queries[0].clone());
                socket.send_to(&ack.to_vec().unwrap(), from).unwrap();
            }
        });
        secondary
    }

    /// The zones told about since the last call.
    pub fn told(&self) -> Vec<String> {
        std::mem::take(&mut *self.told.lock().unwrap())
    }
}

impl Drop for Secondary {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `zonedrop run` in `t`, returned once `addr` answers for `zone`.
pub fn run_until_answering(t: &Tree, addr: SocketAddr, zone: &str) -> Daemon {
    let mut d = Daemon::start("zonedrop run", &mut t.cmd(&["run"]), t.path("run.log"));
    let until = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < until {
        if let Ok(Some(status)) = d.child.try_wait() {
            panic!("zonedrop run ended ({status}); its log:\n{}", d.log());
        }
        if query_txt(addr, zone).is_some_and(|(rcode, _)| rcode == 0) {
            return d;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "zonedrop run does not answer on {addr}; its log:\n{}",
        d.log()
    );
}

/// NSD in the folder `d` (its config, state and log), serving `zone` from
/// `file` on 127.0.0.1@`port`, with AXFR to 127.0.0.1 and control over a
/// local socket (`nsd-control -c d/nsd.conf`).
pub fn start_nsd(d: &Path, port: u16, zone: &str, file: &Path) -> Daemon {
    let conf = d.join("nsd.conf");
    let dd = d.display();
    std::fs::write(
        &conf,
        format!(
            "server:\n  ip-address: 127.0.0.1\n  port: {port}\n  do-ip6: no\n  \
             username: \"\"\n  chroot: \"\"\n  zonesdir: \"{dd}\"\n  database: \"\"\n  \
             pidfile: \"{dd}/nsd.pid\"\n  xfrdfile: \"{dd}/xfrd.state\"\n  \
             zonelistfile: \"{dd}/zone.list\"\n  xfrdir: \"{dd}\"\n  server-count: 1\n  \
             verbosity: 2\n\
             remote-control:\n  control-enable: yes\n  control-interface: {dd}/nsd.ctl\n\
             zone:\n  name: {zone}\n  zonefile: {}\n  \
             provide-xfr: 127.0.0.1 NOKEY\n",
            file.display()
        ),
    )
    .unwrap();
    Daemon::start(
        "nsd",
        Command::new("nsd").arg("-d").arg("-c").arg(&conf),
        d.join("log"),
    )
}

/// Ask `server` over UDP for `rtype` at `name` (spelled as given), as an
/// authority is asked (RD clear), with EDNS when `edns` gives a payload
/// size: the whole answer, or None when none came within 500 ms.
pub fn ask(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    edns: Option<u16>,
) -> Option<Message> {
    let mut q = Message::query();
    q.metadata.recursion_desired = false;
    q.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    if let Some(payload) = edns {
        let mut e = hickory_proto::op::Edns::new();
        e.set_max_payload(payload);
        q.set_edns(e);
    }
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(server).ok()?;
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    socket.send(&q.to_vec().unwrap()).ok()?;
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.recv(&mut buf).ok()?;
        match Message::from_vec(&buf[..n]) {
            Ok(m) if m.metadata.id == q.metadata.id => return Some(m),
            _ => continue, // a late answer to an earlier question
        }
    }
}

/// Write a Knot config in `dir` for a secondary of example.test on
/// 127.0.0.1@`port` that transfers from 127.0.0.1@`primary` and takes its
/// NOTIFY; the config's path. (Knot asks for IXFR first and falls back to
/// AXFR where the primary has none.)
pub fn knot_secondary_conf(dir: &Path, port: u16, primary: u16) -> PathBuf {
    let d = dir.display();
    let conf = dir.join("knot.conf");
    std::fs::write(
        &conf,
        format!(
            "server:\n  rundir: \"{d}\"\n  listen: 127.0.0.1@{port}\n  \
             pidfile: \"{d}/knot.pid\"\n\
             database:\n  storage: \"{d}/db\"\n\
             log:\n  - target: stderr\n    any: info\n\
             remote:\n  - id: primary\n    address: 127.0.0.1@{primary}\n\
             acl:\n  - id: notify\n    address: 127.0.0.1\n    action: notify\n\
             template:\n  - id: default\n    storage: \"{d}\"\n    file: \"%s.zone\"\n\
             zone:\n  - domain: example.test\n    master: primary\n    acl: notify\n"
        ),
    )
    .unwrap();
    conf
}
