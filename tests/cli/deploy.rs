//! The README's deployment walk ("Running it for real") run as written
//! (issue 11, "Done when"): every `sh` block of that section, in order,
//! with bash, as root, only its first block's settings changed through
//! the environment (ports, folders, user names). Two users are made with
//! useradd, the drop directory is bind-mounted read-only, NSD and Knot run
//! for real (dropping to their own users), and the test stands in for cron:
//! it runs the builder's crontab line as cron does (the builder's user and
//! groups, `PATH=/usr/bin:/bin` plus the crontab's variables) every second
//! while the hook user's `zonedrop add --wait` waits for both servers.
//! Then it checks what an operator notices. The script passes shellcheck
//! first.

use crate::support::*;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ACME_USER: &str = "zdwalk-acme";
const BUILD_USER: &str = "zdwalk-build";
const ZONE: &str = "example.test";

/// The `sh` blocks of the README section "Running it for real", joined.
fn walk_script() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("\n## Running it for real\n")
        .expect("the README's deployment section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let mut script = String::new();
    let mut inside = false;
    for line in section.lines() {
        if inside {
            if line.starts_with("```") {
                inside = false;
                script.push('\n');
            } else {
                script.push_str(line);
                script.push('\n');
            }
        } else if line == "```sh" {
            inside = true;
        }
    }
    assert!(!inside, "an unclosed sh block in the deployment section");
    script
}

/// What the walk leaves running or mounted, undone by PID and path
/// whatever the test's outcome.
struct Walk {
    root: PathBuf,
    script: Option<Child>,
}

impl Walk {
    fn pid(&self, file: &str) -> Option<i32> {
        std::fs::read_to_string(self.root.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Walk {
    fn drop(&mut self) {
        if let Some(mut c) = self.script.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for file in ["dns/watch.pid", "nsd/nsd.pid", "knot/knot.pid"] {
            let Some(pid) = self.pid(file) else { continue };
            // SAFETY: kill(2) on the PID the server this test started wrote.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            let until = Instant::now() + Duration::from_secs(5);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let drop_dir = self.root.join("dns/drop");
        let _ = Command::new("umount").arg(&drop_dir).status();
    }
}

/// An /etc/cron.d file: its variables and its jobs (schedule, user, command).
struct CronD {
    vars: Vec<(String, String)>,
    jobs: Vec<(Vec<String>, String, String)>,
}

fn cron_d(text: &str) -> CronD {
    let mut c = CronD {
        vars: vec![],
        jobs: vec![],
    };
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((name, value)) = line.split_once('=') {
            let name = name.trim();
            if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                c.vars.push((name.to_string(), value.trim().to_string()));
                continue;
            }
        }
        // A line cut short (the file read while it is written) is no job.
        let mut fields = line.split_whitespace();
        let schedule: Vec<String> = fields.by_ref().take(5).map(String::from).collect();
        let Some(user) = fields.next() else { continue };
        let Some((_, rest)) = line.split_once(&format!(" {user} ")) else {
            continue;
        };
        let (user, rest) = (user.to_string(), rest.trim());
        if rest.is_empty() {
            continue;
        }
        assert!(!rest.contains('%'), "a % in a cron command: {rest}");
        c.jobs.push((schedule, user, rest.to_string()));
    }
    c
}

impl CronD {
    /// The every-minute job, if there is one.
    fn minute(&self) -> Option<Command> {
        self.jobs
            .iter()
            .find(|(s, _, _)| s.iter().all(|f| f == "*"))
            .map(|(_, user, command)| self.command(user, command))
    }

    /// The daily job: a fixed minute and hour.
    fn daily(&self) -> Command {
        let (_, user, command) = self
            .jobs
            .iter()
            .find(|(s, _, _)| {
                s[0].parse::<u8>().is_ok()
                    && s[1].parse::<u8>().is_ok()
                    && s[2..].iter().all(|f| f == "*")
            })
            .expect("a daily line");
        self.command(user, command)
    }

    /// A job as cron runs it: as its user with that user's groups
    /// (initgroups), in cron's bare environment plus the file's variables,
    /// with $SHELL -c, from /.
    fn command(&self, user: &str, command: &str) -> Command {
        let gid = String::from_utf8(
            Command::new("id")
                .args(["-g", user])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let shell = self
            .vars
            .iter()
            .find(|(n, _)| n == "SHELL")
            .map_or("/bin/sh", |(_, v)| v.as_str());
        let mut c = Command::new("setpriv");
        c.args(["--reuid", user, "--regid", gid.trim(), "--init-groups"])
            .args(["env", "-i", "PATH=/usr/bin:/bin", "HOME=/", "SHELL=/bin/sh"])
            .arg(format!("LOGNAME={user}"))
            .args(self.vars.iter().map(|(n, v)| format!("{n}={v}")))
            .args([shell, "-c", command])
            .current_dir("/")
            .stdin(Stdio::null());
        c
    }
}

/// The effective uid of process `pid`.
fn euid(pid: i32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn dig(port: u16, name: &str, rtype: &str) -> String {
    let out = Command::new("dig")
        .args(["+short", "-p", &port.to_string(), "@127.0.0.1", name, rtype])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_readme_deployment_walk_runs_the_whole_pipeline() {
    for (program, package) in [
        ("nsd", "nsd"),
        ("knotd", "knot"),
        ("ldns-signzone", "ldnsutils"),
        ("ldns-verify-zone", "ldnsutils"),
        ("dig", "bind9-dnsutils"),
        ("flock", "util-linux"),
        ("setpriv", "util-linux"),
        ("make", "make"),
        ("openssl", "openssl"),
    ] {
        need(program, package);
    }
    // SAFETY: geteuid(2) has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the walk makes users and mounts: run as root"
    );
    let tmp = tempfile::tempdir().unwrap();
    // The users must reach the binary and their folders.
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let root = tmp.path().join("srv");
    let bin_dir = tmp.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    let cron_file = tmp.path().join("cron.d-zonedrop");
    let (nsd_port, knot_port) = (free_port(), free_port());
    // The walk as one script; what an operator pastes passes shellcheck.
    let script = tmp.path().join("walk.sh");
    std::fs::write(&script, format!("set -eux\n{}", walk_script())).unwrap();
    need("shellcheck", "shellcheck");
    let check = Command::new("shellcheck")
        .args(["-s", "bash"])
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "shellcheck:\n{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let log = tmp.path().join("walk.log");
    let out = std::fs::File::create(&log).unwrap();

    let mut walk = Walk {
        root: root.clone(),
        script: None,
    };
    walk.script = Some(
        Command::new("bash")
            .arg(&script)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", "/root")
            .env("ZD_ROOT", &root)
            .env("ZD_BIN", &bin_dir)
            .env("ZD_FROM", bin())
            .env("ZD_ZONE", ZONE)
            .env("ZD_ACME_USER", ACME_USER)
            .env("ZD_BUILD_USER", BUILD_USER)
            .env("ZD_NSD_PORT", nsd_port.to_string())
            .env("ZD_KNOT_PORT", knot_port.to_string())
            .env("ZD_CRON", &cron_file)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    );
    let walk_log = || {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "walk:\n{}\nnsd:\n{}\nknot:\n{}",
            read(&log),
            read(&root.join("nsd/nsd.log")),
            read(&root.join("knot/knot.log"))
        )
    };

    // cron: once the walk installed the crontab, its minute line runs every
    // second (a fast minute) until the walk is over.
    let mut cron_runs = vec![];
    let until = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(status) = walk.script.as_mut().unwrap().try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < until, "the walk hangs:\n{}", walk_log());
        let text = std::fs::read_to_string(&cron_file).unwrap_or_default();
        if let Some(mut minute) = cron_d(&text).minute() {
            cron_runs.push(minute.output().unwrap());
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert!(
        status.success(),
        "the walk failed ({status}):\n{}",
        walk_log()
    );

    // Both servers answer the challenge the hook user added (built from
    // cron); the one added under watch (which both answered, or `add
    // --wait` would have failed the walk) and then deleted goes from both.
    let www = format!("_acme-challenge.www.{ZONE}");
    for port in [nsd_port, knot_port] {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(
            query_txt(addr, &format!("_acme-challenge.{ZONE}")).map(|(_, t)| t),
            Some(vec![V1.to_string()]),
            "port {port}\n{}",
            walk_log()
        );
        let until = Instant::now() + Duration::from_secs(30);
        while query_txt(addr, &www).is_none_or(|(_, t)| !t.is_empty()) {
            assert!(
                Instant::now() < until,
                "{www} still on port {port}: {:?}\n{}",
                query_txt(addr, &www),
                walk_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // watch ran as the builder, logged no trouble, and signed through
    // on_change (its "ok" from nsd-control kept out of the log).
    let watch_pid = walk.pid("dns/watch.pid").unwrap();
    assert_eq!(euid(watch_pid), uid_of(BUILD_USER));
    let watch_log = std::fs::read_to_string(root.join("dns/watch.log")).unwrap();
    assert!(
        !watch_log.contains("ERROR") && !watch_log.contains("WARN") && !watch_log.contains("\nok"),
        "{watch_log}"
    );
    // Knot had it through NSD's NOTIFY (its refresh timer is 2 hours).
    let knot_log = std::fs::read_to_string(root.join("knot/knot.log")).unwrap();
    assert!(knot_log.contains("notify, incoming"), "{knot_log}");
    // The TLSA record from the certificate, on the secondary.
    let cert = root.join("acme/certs/www.pem");
    let expected = zonedrop()
        .args(["tlsa", "--name", &format!("www.{ZONE}"), "--port", "443"])
        .arg(&cert)
        .output()
        .unwrap();
    let expected = String::from_utf8(expected.stdout).unwrap();
    let digest = expected.split_whitespace().last().unwrap().to_lowercase();
    let served = dig(knot_port, &format!("_443._tcp.www.{ZONE}"), "TLSA");
    assert!(
        served.replace(' ', "").to_lowercase().contains(&digest),
        "served {served:?}, computed {expected:?}"
    );
    // The signed zone verifies, and it is what NSD serves.
    let signed = root.join(format!("dns/sign/signed/{ZONE}"));
    let v = Command::new("ldns-verify-zone")
        .arg(&signed)
        .output()
        .unwrap();
    assert!(v.status.success(), "{v:?}");
    let signed_text = std::fs::read_to_string(&signed).unwrap();
    assert!(signed_text.contains(V1) && !signed_text.contains(V2));
    assert!(!dig(nsd_port, ZONE, "DNSKEY").is_empty());

    // Who wrote what: the hook user the fragment, the builder the rest;
    // the builder could not have written the drop directory.
    let (acme, builder) = (uid_of(ACME_USER), uid_of(BUILD_USER));
    for e in std::fs::read_dir(root.join("acme/drop")).unwrap() {
        assert_eq!(e.unwrap().metadata().unwrap().uid(), acme);
    }
    for dir in [
        "dns/unsigned",
        "dns/state",
        "dns/sign/signed",
        "dns/sign/keys",
    ] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let e = e.unwrap();
            assert_eq!(e.metadata().unwrap().uid(), builder, "{:?}", e.path());
        }
    }
    let erofs = std::fs::write(root.join("dns/drop/probe"), "").unwrap_err();
    assert_eq!(erofs.raw_os_error(), Some(libc::EROFS), "{erofs}");
    let as_builder = Command::new("setpriv")
        .args([
            "--reuid",
            BUILD_USER,
            "--regid",
            BUILD_USER,
            "--clear-groups",
        ])
        .arg("touch")
        .arg(root.join("acme/drop/probe"))
        .output()
        .unwrap();
    assert!(!as_builder.status.success(), "{as_builder:?}");
    // The servers dropped root once their ports were open.
    for file in ["nsd/nsd.pid", "knot/knot.pid"] {
        let pid = walk.pid(file).unwrap();
        assert_ne!(euid(pid), 0, "{file}: pid {pid} runs as root");
    }

    // cron: the daily line, with nothing due, changes nothing; no run
    // mailed anything.
    let before = std::fs::metadata(&signed).unwrap().modified().unwrap();
    let text = std::fs::read_to_string(&cron_file).unwrap();
    cron_runs.push(cron_d(&text).daily().output().unwrap());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        std::fs::metadata(&signed).unwrap().modified().unwrap(),
        before
    );
    for (i, run) in cron_runs.iter().enumerate() {
        assert!(
            run.status.success() && run.stdout.is_empty() && run.stderr.is_empty(),
            "cron run {i} of {} would mail: {run:?}",
            cron_runs.len()
        );
    }
    eprintln!("cron ran the minute line {} times", cron_runs.len());
    drop(walk);
}
