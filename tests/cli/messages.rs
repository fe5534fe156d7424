//! Messages and help (issue 11 item 8): each command's `--help` shows the
//! options that apply to it and describes every argument (the global
//! options stay accepted everywhere); `list` has a header and says where
//! each challenge lands; the wording of a few messages; the hint for a
//! port that needs privileges; the `date` serial running out of its day;
//! and the responder following a challenge alias into another zone it
//! serves, as BIND does.

use crate::support::*;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

const COMMANDS: [&str; 15] = [
    "add", "del", "prune", "hook", "build", "check", "init", "list", "tlsa", "sshfp", "watch",
    "run", "serve", "wait", "notify",
];

/// The options and arguments of `zonedrop CMD -h`: (name, description).
fn entries(cmd: &str) -> Vec<(String, String)> {
    let r = Tree::new().run(&[cmd, "-h"]);
    assert_eq!(r.code, 0, "{cmd} -h: {}", r.stderr);
    let mut out = Vec::new();
    let mut inside = false;
    for line in r.stdout.lines() {
        if line == "Arguments:" || line == "Options:" {
            inside = true;
            continue;
        }
        let trimmed = line.trim_start();
        if inside && line.starts_with(' ') && trimmed.starts_with(['-', '<', '[']) {
            let (name, description) = trimmed.split_once("  ").unwrap_or((trimmed, ""));
            out.push((name.to_string(), description.trim().to_string()));
        } else if line.is_empty() {
            inside = false;
        }
    }
    out
}

#[test]
fn each_command_shows_its_own_options_and_describes_every_argument() {
    for cmd in COMMANDS {
        let entries = entries(cmd);
        assert!(!entries.is_empty(), "{cmd}");
        for (name, description) in &entries {
            // "[default: x]" alone says nothing about what it is.
            assert!(
                !description.is_empty() && !description.starts_with('['),
                "zonedrop {cmd}: {name} has no description"
            );
        }
        let shows = |option: &str| entries.iter().any(|(n, _)| n.starts_with(option));
        let (config, drop, wait) = match cmd {
            "add" | "hook" => (true, true, true),
            "del" | "list" | "prune" => (true, true, false),
            "init" | "tlsa" | "sshfp" => (false, false, false),
            _ => (true, false, false),
        };
        assert_eq!(
            (shows("--config"), shows("--drop"), shows("--wait")),
            (config, drop, wait),
            "zonedrop {cmd} -h: --config, --drop, --wait"
        );
    }
    // Hidden is not refused: what scripts pass today still works.
    let t = Tree::new();
    t.write(
        "key.pem",
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAyNmTdp5UhmxCLZbEVOlF8zLJaAVZvrgS3OqtYRpsAPw=\n-----END PUBLIC KEY-----\n",
    );
    let r = t.run(&[
        "tlsa",
        "--drop",
        "x",
        "--wait",
        "1s",
        "--config",
        "none.toml",
        "--name",
        "www.example",
        "--port",
        "443",
        "key.pem",
    ]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert!(r
        .stdout
        .starts_with("_443._tcp.www.example. 3600 IN TLSA 3 1 1 "));
}

/// Each command's help says what its exit statuses mean (issue 11 item
/// 4), and what it says holds: a refusal alone is no failure of `build`,
/// a new one is under `--strict`; `check --strict` fails on any.
#[test]
fn each_command_states_what_its_exit_statuses_mean() {
    for cmd in COMMANDS {
        let r = Tree::new().run(&[cmd, "--help"]);
        let said = r
            .stdout
            .lines()
            .find(|l| l.starts_with("Exit status: "))
            .unwrap_or_else(|| {
                panic!("zonedrop {cmd} --help states no exit status:\n{}", r.stdout)
            });
        assert!(said.contains(" 2 "), "zonedrop {cmd}: {said}");
    }
    let top = Tree::new().run(&["--help"]).stdout;
    assert!(top.contains("stated exactly in its --help"), "{top}");
    assert!(!top.contains("a challenge was refused"), "{top}");
    let build = Tree::new().run(&["build", "--help"]).stdout;
    assert!(build.contains("a refused challenge alone is not a failure"));
    assert!(build.contains("under --strict or [build] strict = true, a challenge was refused that no build had reported before"));

    let t = Tree::one_zone("", "");
    t.write("drop/junk", "junk\n");
    assert_eq!(t.run(&["build"]).code, 0);
    t.write("drop/junk2", "junk\n");
    assert_eq!(t.run(&["build", "--strict"]).code, 1);
    assert_eq!(t.run(&["build", "--strict", "--force"]).code, 0);
    assert_eq!(t.run(&["check"]).code, 0);
    assert_eq!(t.run(&["check", "--strict"]).code, 1);
    assert_eq!(t.run(&["build", "--zone", "nowhere.test"]).code, 2);
    assert_eq!(t.run(&["prune", "--drop", "nowhere"]).code, 1);
}

#[test]
fn list_has_a_header_and_says_in_which_zone_and_at_which_owner_each_challenge_lands() {
    let t = Tree::one_zone(
        "[[zone]]\nname = \"example.net\"\n",
        "_acme-challenge.www IN CNAME _acme-challenge.www.example.net.\n",
    );
    t.write(
        "zones/soa/example.net",
        "$TTL 3600\n@ IN SOA ns1.example.net. hostmaster.example.net. 1 7200 3600 1209600 300\n",
    );
    t.write(
        "zones/primary/example.net",
        "@ IN NS ns1\nns1 IN A 192.0.2.54\n",
    );
    for owner in [
        "_acme-challenge.www.example.test",
        "_acme-challenge.example.test",
    ] {
        assert_eq!(t.run(&["add", owner, V1]).code, 0);
    }
    t.write("drop/junk", "not a fragment\n");
    let r = t.run(&["list"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "OWNER\tVALUE\tTTL\tAGE\tZONE\tAT\tFILE\tVERDICT");
    let row = |owner: &str| -> Vec<&str> {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("{owner}\t")))
            .unwrap_or_else(|| panic!("{owner} not in\n{}", r.stdout))
            .split('\t')
            .collect()
    };
    let aliased = row("_acme-challenge.www.example.test.");
    assert_eq!(
        (aliased[4], aliased[5], aliased[7]),
        (
            "example.net.",
            "_acme-challenge.www.example.net.",
            "accepted"
        )
    );
    let plain = row("_acme-challenge.example.test.");
    assert_eq!(
        (plain[4], plain[5]),
        ("example.test.", "_acme-challenge.example.test.")
    );
    let junk = row("-");
    assert_eq!((junk[4], junk[5]), ("-", "-"));
    let r = t.run(&["list", "--json"]);
    let items: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let aliased = items
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["owner"] == "_acme-challenge.www.example.test.")
        .unwrap();
    assert_eq!(aliased["zone"], "example.net.");
    assert_eq!(aliased["published_at"], "_acme-challenge.www.example.net.");
}

#[test]
fn messages_say_it_once_and_name_a_whole_file_without_a_line() {
    let t = Tree::one_zone("", "");
    // The hook's usage error: one "zonedrop: " only.
    let r = t.run(&["hook", "certbot", "bogus"]);
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr,
        "zonedrop: hook certbot: expected `auth` or `cleanup` (for --manual-auth-hook / --manual-cleanup-hook)\n"
    );
    // A source that cannot be read is named as a file, with no `:0:`.
    std::fs::remove_file(t.path("zones/soa/example.test")).unwrap();
    t.mkdir("zones/soa/example.test");
    let r = t.run(&["build"]);
    assert_eq!(r.code, 1);
    let soa = t.path("zones/soa/example.test");
    assert!(
        r.stderr
            .starts_with(&format!("zonedrop: {}: cannot read: ", soa.display())),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(":0:"), "{}", r.stderr);
}

#[test]
fn run_does_not_announce_missing_zones_it_is_about_to_build() {
    let port = free_port();
    let t = Tree::one_zone(&format!("[serve]\nlisten = [\"127.0.0.1:{port}\"]\n"), "");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let run = Daemon::start("zonedrop run", &mut t.cmd(&["run"]), t.path("run.log"));
    let until = Instant::now() + Duration::from_secs(15);
    while query_txt(addr, "example.test").is_none_or(|(rcode, _)| rcode != 0) {
        assert!(Instant::now() < until, "no answer; log:\n{}", run.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = run.log();
    assert!(log.contains("zone example.test. reloaded"), "{log}");
    assert!(!log.contains("not published yet"), "{log}");
}

#[test]
fn a_port_that_needs_privileges_gets_this_platforms_hint() {
    need("setpriv", "util-linux");
    let first_free: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        first_free > 1,
        "every port is open to every user here: nothing to test"
    );
    let t = Tree::one_zone(
        &format!("[serve]\nlisten = [\"127.0.0.1:{}\"]\n", first_free - 1),
        "",
    );
    // The tree must be readable by the unprivileged user.
    let chmod = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(t.dir.path())
        .status()
        .unwrap();
    assert!(chmod.success());
    let out = clean_env(&mut Command::new("setpriv"))
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin())
        .arg("--config")
        .arg(t.path("zonedrop.toml"))
        .arg("serve")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Permission denied")
            && stderr.contains("`setcap cap_net_bind_service=+ep $(command -v zonedrop)`")
            && stderr.contains("AmbientCapabilities=CAP_NET_BIND_SERVICE")
            && !stderr.contains("mac_portacl"),
        "{stderr}"
    );
}

#[test]
fn a_date_serial_that_runs_out_of_its_day_says_so_once() {
    let t = Tree::one_zone("serial = \"date\"\n", "");
    assert_eq!(t.run(&["build", "--quiet"]).code, 0);
    let today: u32 = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
        [..10]
        .replace('-', "")
        .parse()
        .unwrap();
    // state/ says 98 changes were made today.
    let state = t.path("state/zone-example.test.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    v["serial"] = (today * 100 + 98).into();
    std::fs::write(&state, v.to_string()).unwrap();
    let mut said = Vec::new();
    for (i, value) in [V1, V2, V1].iter().enumerate() {
        let owner = format!("_acme-challenge.h{i}.example.test");
        assert_eq!(t.run(&["add", &owner, value]).code, 0);
        let r = t.run(&["build", "--quiet"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        said.push(r.stderr);
    }
    // 99 is today's last; the next one is tomorrow's first, said even with
    // --quiet, and once.
    assert_eq!(said[0], "");
    assert_eq!(
        said[1],
        format!(
            "zonedrop: warning: example.test: serial {} is past today's last date serial (YYYYMMDD99): the 100 changes a day of serial = \"date\" ran out, and serials run ahead of the date until it catches up\n",
            today * 100 + 100
        )
    );
    assert_eq!(said[2], "");
}

#[test]
fn the_responder_follows_a_challenge_alias_into_another_zone_it_serves() {
    need("dig", "bind9-dnsutils");
    let port = free_port();
    let t = Tree::one_zone(
        &format!("[[zone]]\nname = \"example.net\"\n[serve]\nlisten = [\"127.0.0.1:{port}\"]\n"),
        "_acme-challenge.www IN CNAME _acme-challenge.www.example.net.\n\
         _acme-challenge.gone IN CNAME _acme-challenge.gone.example.net.\n",
    );
    t.write(
        "zones/soa/example.net",
        "$TTL 3600\n@ IN SOA ns1.example.net. hostmaster.example.net. 1 7200 3600 1209600 300\n",
    );
    t.write(
        "zones/primary/example.net",
        "@ IN NS ns1\nns1 IN A 192.0.2.54\n",
    );
    assert_eq!(
        t.run(&["add", "_acme-challenge.www.example.test", V1]).code,
        0
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let run = Daemon::start("zonedrop run", &mut t.cmd(&["run"]), t.path("run.log"));
    let until = Instant::now() + Duration::from_secs(15);
    while query_txt(addr, "_acme-challenge.www.example.net").is_none_or(|(_, s)| s.is_empty()) {
        assert!(Instant::now() < until, "no answer; log:\n{}", run.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let dig = |name: &str| -> String {
        let out = Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &port.to_string(),
                "+norec",
                "+time=1",
                "+tries=1",
            ])
            .args([name, "TXT"])
            .output()
            .unwrap();
        // Fields one space apart (dig aligns them with tabs).
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    // The CNAME and the TXT at its target, in one authoritative answer.
    let out = dig("_acme-challenge.www.example.test");
    assert!(
        out.contains("status: NOERROR") && out.contains("flags: qr aa"),
        "{out}"
    );
    assert!(out.contains("ANSWER: 2,"), "{out}");
    assert!(
        out.contains(
            "_acme-challenge.www.example.test. 3600 IN CNAME _acme-challenge.www.example.net."
        ),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "_acme-challenge.www.example.net. 60 IN TXT \"{V1}\""
        )),
        "{out}"
    );
    // A target that does not exist: the CNAME, NXDOMAIN for the target
    // (RFC 6604), and the target zone's SOA.
    let out = dig("_acme-challenge.gone.example.test");
    assert!(
        out.contains("status: NXDOMAIN") && out.contains("ANSWER: 1,"),
        "{out}"
    );
    assert!(
        out.contains("example.net. 300 IN SOA ns1.example.net. "),
        "{out}"
    );
}
