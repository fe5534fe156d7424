//! `examples/crontab`, run as cron runs it: each line with `$SHELL -c` in
//! cron's bare environment (PATH=/usr/bin:/bin) plus the crontab's own
//! variables, on a copy of the example tree; overlapping runs never run
//! make twice at once.

use crate::examples::Example;
use crate::support::V1;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// What cron gives a command (crontab(5) on Debian and FreeBSD alike).
const CRON_PATH: &str = "/usr/bin:/bin";
/// Where the README installs the binary; the crontab's PATH must reach it.
const INSTALL_DIR: &str = "/usr/local/bin";
/// Where the crontab expects the tree.
const CRON_TREE: &str = "/srv/zones";

/// The crontab: its variables and its jobs (schedule, command).
struct Crontab {
    vars: Vec<(String, String)>,
    jobs: Vec<(Vec<String>, String)>,
}

fn crontab() -> Crontab {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/crontab"))
            .unwrap();
    let mut c = Crontab {
        vars: vec![],
        jobs: vec![],
    };
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // NAME = value (cron strips one pair of quotes around the value).
        if let Some((name, value)) = line.split_once('=') {
            let name = name.trim();
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                let value = value.trim();
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                    .unwrap_or(value);
                c.vars.push((name.to_string(), value.to_string()));
                continue;
            }
        }
        let mut rest = line;
        let mut schedule = vec![];
        for _ in 0..5 {
            let (field, tail) = rest.split_once(char::is_whitespace).unwrap();
            schedule.push(field.to_string());
            rest = tail.trim_start();
        }
        // cron turns an unescaped % into a newline.
        assert!(!rest.contains('%'), "a % in a cron command: {rest}");
        c.jobs.push((schedule, rest.to_string()));
    }
    c
}

impl Crontab {
    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The every-minute build and the daily re-signing.
    fn minute_and_daily(&self) -> (String, String) {
        let minute = self
            .jobs
            .iter()
            .find(|(s, c)| s.iter().all(|f| f == "*") && !c.contains("resign"))
            .expect("an every-minute build line");
        let daily = self
            .jobs
            .iter()
            .find(|(s, c)| {
                s[0].parse::<u8>().is_ok()
                    && s[1].parse::<u8>().is_ok()
                    && s[2..].iter().all(|f| f == "*")
                    && c.contains("resign")
            })
            .expect("a daily resign line");
        (minute.1.clone(), daily.1.clone())
    }

    /// A job's command as cron runs it: `$SHELL -c COMMAND` with an
    /// environment of cron's PATH, HOME and LOGNAME, then the crontab's own
    /// variables. The tree stands where the crontab expects /srv/zones and
    /// bin/ where it expects /usr/local/bin.
    fn command(&self, ex: &Example, command: &str) -> Command {
        let path = self.var("PATH").expect("the crontab sets PATH");
        assert!(
            path.split(':').any(|d| d == INSTALL_DIR),
            "the crontab's PATH {path} does not reach {INSTALL_DIR}"
        );
        let bin_dir = ex.t.path("bin");
        let path = path
            .split(':')
            .map(|d| {
                if d == INSTALL_DIR {
                    bin_dir.to_str().unwrap()
                } else {
                    d
                }
            })
            .collect::<Vec<_>>()
            .join(":");
        assert!(command.contains(CRON_TREE), "{command}");
        let command = command.replace(CRON_TREE, ex.t.dir.path().to_str().unwrap());
        let shell = self.var("SHELL").unwrap_or("/bin/sh");
        let mut c = Command::new(shell);
        c.arg("-c")
            .arg(command)
            .current_dir(ex.t.dir.path())
            .env_clear()
            .env("PATH", CRON_PATH)
            .env("HOME", ex.t.dir.path())
            .env("LOGNAME", "zonebuild")
            .env("SHELL", "/bin/sh");
        for (name, value) in &self.vars {
            c.env(name, if name == "PATH" { &path } else { value });
        }
        c.stdin(Stdio::null());
        c
    }
}

fn silent(what: &str, out: &Output) {
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "{what}: {}, cron would mail:\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn crontab_lines_run_in_crons_bare_environment() {
    let ex = Example::new();
    let cron = crontab();
    let (minute, daily) = cron.minute_and_daily();

    silent(
        "first minute",
        &cron.command(&ex, &minute).output().unwrap(),
    );
    ex.verify("example.test");
    ex.verify("example.net");
    silent("idle minute", &cron.command(&ex, &minute).output().unwrap());

    ex.add("_acme-challenge.example.test", V1);
    silent(
        "minute after a challenge",
        &cron.command(&ex, &minute).output().unwrap(),
    );
    ex.verify("example.test");
    assert!(ex.signed_text("example.test").contains(V1));

    // Nothing is due: the daily line builds, signs nothing, says nothing.
    let signed = ex.mtime("example.test");
    silent("daily", &cron.command(&ex, &daily).output().unwrap());
    assert_eq!(ex.mtime("example.test"), signed);
}

/// What the crontab's comment promises: a refused challenge is mailed
/// once, when it is first seen (build --quiet prints a new refusal), and
/// not at every minute after.
#[test]
fn a_refused_challenge_is_mailed_once() {
    let ex = Example::new();
    let cron = crontab();
    let (minute, _) = cron.minute_and_daily();
    silent(
        "first minute",
        &cron.command(&ex, &minute).output().unwrap(),
    );
    ex.t.write(
        "drop/junk",
        "_acme-challenge.example.test. 60 IN A 192.0.2.1\n",
    );
    let out = cron.command(&ex, &minute).output().unwrap();
    let mailed = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{mailed}");
    assert_eq!(mailed.lines().count(), 1, "{mailed}");
    assert!(mailed.contains("drop/junk: refused: "), "{mailed}");
    // The zones keep building and signing, and the junk is not mailed again.
    ex.add("_acme-challenge.example.test", V1);
    silent(
        "minute after a challenge",
        &cron.command(&ex, &minute).output().unwrap(),
    );
    assert!(ex.signed_text("example.test").contains(V1));
}

/// Kills a process group when dropped (a test that fails while it is paused).
struct Group(i32);

impl Group {
    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on a process group this test started.
        unsafe {
            libc::kill(-self.0, sig);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

/// Every file under examples/ and unsigned/ with its size and mtime.
fn snapshot(ex: &Example) -> Vec<(PathBuf, u64, SystemTime)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64, SystemTime)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                walk(&e.path(), out);
            } else {
                out.push((e.path(), m.len(), m.modified().unwrap()));
            }
        }
    }
    let mut v = vec![];
    walk(&ex.t.path("examples"), &mut v);
    walk(&ex.t.path("unsigned"), &mut v);
    v.sort();
    v
}

#[test]
fn overlapping_cron_runs_never_run_make_twice() {
    let ex = Example::new();
    let cron = crontab();
    let (minute, daily) = cron.minute_and_daily();
    // A zone big enough that signing it takes a while.
    let mut primary = std::fs::read_to_string(ex.t.path("zones/primary/example.test")).unwrap();
    for i in 0..4000 {
        primary.push_str(&format!("host{i} IN A 192.0.2.{}\n", i % 250 + 1));
    }
    ex.t.write("zones/primary/example.test", &primary);

    // The first run, in a process group of its own, paused as soon as make
    // has built the zones and starts making keys.
    let mut first = cron.command(&ex, &minute);
    std::os::unix::process::CommandExt::process_group(&mut first, 0);
    let mut first = first
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let group = Group(first.id() as i32);
    let until = Instant::now() + Duration::from_secs(60);
    while !ex.t.path("examples/keys").exists() {
        assert!(Instant::now() < until, "make never started keys/");
        std::thread::sleep(Duration::from_millis(1));
    }
    group.signal(libc::SIGSTOP);
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run ended before it could be paused: give it a bigger zone"
    );

    // A second minute's run gives up at once, silently, and touches nothing.
    let before = snapshot(&ex);
    let started = Instant::now();
    let second = cron.command(&ex, &minute).output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    assert!(
        second.stdout.is_empty() && second.stderr.is_empty(),
        "{second:?}"
    );
    assert_eq!(snapshot(&ex), before, "the second run changed files");

    // The daily run waits for the lock instead.
    let mut daily = cron.command(&ex, &daily);
    std::os::unix::process::CommandExt::process_group(&mut daily, 0);
    let mut daily = daily
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _daily_group = Group(daily.id() as i32);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        daily.try_wait().unwrap().is_none(),
        "the daily run did not wait"
    );
    assert_eq!(snapshot(&ex), before, "the daily run did not wait");

    group.signal(libc::SIGCONT);
    silent("first run", &first.wait_with_output().unwrap());
    silent("daily run", &daily.wait_with_output().unwrap());
    ex.verify("example.test");
    ex.verify("example.net");
}
