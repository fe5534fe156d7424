//! Issue 5, end to end: real certificates from a real ACME server (Pebble)
//! through `zonedrop run`, requested by real ACME clients that call
//! zonedrop as their hook. Pebble validates by asking zonedrop's responder;
//! the hooks wait (`[hook] wait`, `[hook] servers`) until the TXT is served
//! before the client tells Pebble to look. Each test checks the issued
//! certificate's names and that the drop directory is empty afterwards.
//!
//! Also `zonedrop watch --poll`, the mode for drop directories where change
//! events never arrive (nullfs, NFS).
//!
//! Every server binds 127.0.0.1 only, on ports picked here, and is killed by
//! PID when the test ends.

use crate::support::{
    bin, clean_env, copy_dir, free_port, need, query_txt, zonedrop, Daemon, Tree, V1,
};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one client run may take before the test fails.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// A server started here, killed by PID when dropped.
type Guard = Daemon;

/// The TXT strings at `name` on 127.0.0.1:`port`, or None when the
/// server did not answer.
fn txt(port: u16, name: &str) -> Option<Vec<String>> {
    query_txt(SocketAddr::from(([127, 0, 0, 1], port)), name).map(|(_, strings)| strings)
}

/// Run `cmd` to completion (at most [`CLIENT_TIMEOUT`]), output into `log`;
/// panic with the log when it fails.
fn run_client(what: &str, cmd: &mut Command, log: &Path, extra_log: &dyn Fn() -> String) {
    let file = std::fs::File::create(log).unwrap();
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > CLIENT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} still runs after {CLIENT_TIMEOUT:?}; its output:\n{}\n{}",
                std::fs::read_to_string(log).unwrap_or_default(),
                extra_log()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("{what}: {status} after {:.1?}", start.elapsed());
    assert!(
        status.success(),
        "{what} failed ({status}); its output:\n{}\n{}",
        std::fs::read_to_string(log).unwrap_or_default(),
        extra_log()
    );
}

/// One issuance setup: a tree with the example zones, `zonedrop run` and
/// Pebble, both answering.
pub(crate) struct Acme {
    // Fields drop in order: servers first, then the tree they run in.
    pebble: Guard,
    zonedrop: Guard,
    pub(crate) dns_port: u16,
    acme_port: u16,
    pub(crate) tree: Tree,
}

impl Acme {
    fn start() -> Acme {
        Acme::start_with("")
    }

    /// [`Acme::start`] with `extra` at the end of zonedrop.toml.
    pub(crate) fn start_with(extra: &str) -> Acme {
        need("pebble", "pebble");
        need("openssl", "openssl");
        let tree = Tree::new();
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("zones"),
            &tree.path("zones"),
        );
        tree.mkdir("drop");
        let dns_port = free_port();
        tree.write(
            "zonedrop.toml",
            &format!(
                "[paths]\nsoa = \"zones/soa\"\nprimary = \"zones/primary\"\n\
                 extra = \"zones/extra\"\nunsigned = \"unsigned\"\nstate = \"state\"\n\
                 [[drop]]\npath = \"drop\"\n\
                 [[zone]]\nname = \"example.test\"\n\
                 [[zone]]\nname = \"example.net\"\n\
                 [hook]\nwait = \"30s\"\nservers = [\"127.0.0.1:{dns_port}\"]\n\
                 [serve]\nlisten = [\"127.0.0.1:{dns_port}\"]\n{extra}"
            ),
        );
        let zonedrop = Guard::start(
            "zonedrop run",
            zonedrop()
                .arg("--config")
                .arg(tree.path("zonedrop.toml"))
                .arg("run")
                .current_dir(tree.path(""))
                .env("RUST_LOG", "warn,zonedrop=info"),
            tree.path("zonedrop.log"),
        );

        // The TLS identity of Pebble's API: a test CA and a certificate for
        // 127.0.0.1 signed by it (the Debian package ships no test certs).
        tls_identity(&tree);
        let acme_port = free_port();
        tree.write(
            "pebble.json",
            &format!(
                r#"{{"pebble": {{
                  "listenAddress": "127.0.0.1:{acme_port}",
                  "managementListenAddress": "127.0.0.1:{}",
                  "certificate": "{}",
                  "privateKey": "{}",
                  "httpPort": {},
                  "tlsPort": {},
                  "ocspResponderURL": "",
                  "externalAccountBindingRequired": false
                }}}}"#,
                free_port(),
                tree.path("tls/cert.pem").display(),
                tree.path("tls/key.pem").display(),
                free_port(),
                free_port(),
            ),
        );
        let pebble = Guard::start(
            "pebble",
            Command::new("pebble")
                .arg("-config")
                .arg(tree.path("pebble.json"))
                .arg("-dnsserver")
                .arg(format!("127.0.0.1:{dns_port}"))
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                .env("PEBBLE_AUTHZREUSE", "0")
                .current_dir(tree.path("")),
            tree.path("pebble.log"),
        );
        let acme = Acme {
            pebble,
            zonedrop,
            dns_port,
            acme_port,
            tree,
        };
        acme.wait_ready();
        acme
    }

    fn wait_ready(&self) {
        let until = Instant::now() + Duration::from_secs(10);
        let (mut dns, mut api) = (false, false);
        while Instant::now() < until && !(dns && api) {
            // The zone is published and served: its apex TXT (SPF) answers.
            dns = dns
                || txt(self.dns_port, "example.test.")
                    .is_some_and(|t| t.iter().any(|s| s.starts_with("v=spf1")));
            api = api || TcpStream::connect(("127.0.0.1", self.acme_port)).is_ok();
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            dns,
            "zonedrop run does not answer:\n{}",
            self.zonedrop.log()
        );
        assert!(api, "pebble does not listen:\n{}", self.pebble.log());
    }

    pub(crate) fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.acme_port)
    }

    pub(crate) fn ca(&self) -> PathBuf {
        self.tree.path("tls/ca.pem")
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.tree.path("zonedrop.toml")
    }

    pub(crate) fn logs(&self) -> String {
        format!(
            "--- zonedrop run:\n{}\n--- pebble:\n{}",
            self.zonedrop.log(),
            self.pebble.log()
        )
    }

    /// A command for a client, with zonedrop's hooks finding the config
    /// (hence the drop directory and `[hook] wait`) through the environment.
    pub(crate) fn client(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        clean_env(&mut c)
            .current_dir(self.tree.path(""))
            .env("ZONEDROP_CONFIG", self.config());
        c
    }

    pub(crate) fn run(&self, what: &str, cmd: &mut Command) {
        let log = self.tree.path(&format!("{}.log", what.replace(' ', "-")));
        run_client(what, cmd, &log, &|| self.logs());
    }

    /// The certificate names exactly `names`, Pebble issued it, the drop
    /// directory is empty and the challenges leave the served zone.
    pub(crate) fn check(&self, cert: &Path, names: &[&str]) {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-issuer", "-ext", "subjectAltName", "-in"])
            .arg(cert)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "openssl x509 on {cert:?}: {out:?}");
        assert!(text.contains("Pebble"), "not issued by Pebble: {text}");
        let mut sans: Vec<&str> = text
            .split([',', '\n'])
            .filter_map(|s| s.trim().strip_prefix("DNS:"))
            .collect();
        sans.sort();
        let mut want = names.to_vec();
        want.sort();
        assert_eq!(sans, want, "the certificate's names:\n{text}");
        let left: Vec<_> = std::fs::read_dir(self.tree.path("drop"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "the drop directory still holds {left:?}");
        let until = Instant::now() + Duration::from_secs(3);
        let mut seen = None;
        while Instant::now() < until {
            seen = txt(self.dns_port, "_acme-challenge.example.test.");
            if seen.as_ref().is_some_and(Vec::is_empty) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("challenges still served after cleanup: {seen:?}");
    }
}

/// tls/ca.pem (a CA for the clients to trust), tls/cert.pem + tls/key.pem
/// (Pebble's API certificate for 127.0.0.1 and localhost, signed by it).
fn tls_identity(tree: &Tree) {
    let dir = tree.mkdir("tls");
    let ossl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    ossl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=zonedrop test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        ]
        .concat(),
    );
    ossl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "key.pem",
                "-out",
                "cert.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    ossl(&[
        "x509",
        "-req",
        "-in",
        "cert.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
}

/// lego with its exec provider; `raw` selects EXEC_MODE=RAW.
fn lego(raw: bool, names: &[&str]) {
    need("lego", "lego");
    let acme = Acme::start();
    let hook = acme.tree.symlink_bin("zonedrop-lego");
    let mut cmd = acme.client("lego");
    cmd.env("LEGO_CA_CERTIFICATES", acme.ca())
        .env("EXEC_PATH", &hook)
        // lego sleeps this long between authorizations (default 60 s).
        .env("EXEC_SEQUENCE_INTERVAL", "0")
        .env("EXEC_POLLING_INTERVAL", "1")
        .env("EXEC_PROPAGATION_TIMEOUT", "30")
        .args(["--server", &acme.directory()])
        .args(["--accept-tos", "--email", "acme@example.test"])
        .arg("--path")
        .arg(acme.tree.path("lego"))
        .args(["--key-type", "ec256", "--dns", "exec"])
        // lego's own propagation check asks the zone's NS on port 53; the
        // hook's `[hook] wait` does that job against the responder instead.
        .arg("--dns.disable-cp");
    if raw {
        cmd.env("EXEC_MODE", "RAW");
    } else {
        cmd.env_remove("EXEC_MODE");
    }
    for n in names {
        cmd.args(["-d", n]);
    }
    cmd.arg("run");
    acme.run(if raw { "lego RAW" } else { "lego" }, &mut cmd);
    let file = names[0].replace('*', "_");
    acme.check(
        &acme.tree.path(&format!("lego/certificates/{file}.crt")),
        names,
    );
}

#[test]
fn lego_default_mode_apex_and_wildcard() {
    lego(false, &["example.test", "*.example.test"]);
}

#[test]
fn lego_raw_mode() {
    lego(true, &["www.example.test"]);
}

#[test]
fn certbot_manual_hooks() {
    need("certbot", "certbot");
    let acme = Acme::start();
    // certbot runs hooks through a shell, but first checks that the first
    // word (split at whitespace, quotes not understood) is an executable:
    // the path goes unquoted.
    let hook = |what: &str| format!("{} hook certbot {what}", bin().display());
    let mut cmd = acme.client("certbot");
    cmd.env("REQUESTS_CA_BUNDLE", acme.ca())
        .args(["certonly", "--non-interactive", "--agree-tos"])
        .args(["--register-unsafely-without-email"])
        .args(["--server", &acme.directory()])
        .arg("--config-dir")
        .arg(acme.tree.path("certbot/config"))
        .arg("--work-dir")
        .arg(acme.tree.path("certbot/work"))
        .arg("--logs-dir")
        .arg(acme.tree.path("certbot/logs"))
        .args(["--manual", "--preferred-challenges", "dns"])
        .args(["--manual-auth-hook", &hook("auth")])
        .args(["--manual-cleanup-hook", &hook("cleanup")])
        .args(["--key-type", "ecdsa"])
        .args(["-d", "example.test", "-d", "*.example.test"]);
    acme.run("certbot", &mut cmd);
    acme.check(
        &acme.tree.path("certbot/config/live/example.test/cert.pem"),
        &["example.test", "*.example.test"],
    );
}

fn dehydrated(chain: bool) {
    need("dehydrated", "dehydrated");
    need("curl", "curl");
    let acme = Acme::start();
    let hook = acme.tree.symlink_bin("zonedrop-dehydrated");
    let base = acme.tree.mkdir("dehydrated");
    let config = acme.tree.write(
        "dehydrated/config",
        &format!(
            "CA=\"{}\"\nCHALLENGETYPE=\"dns-01\"\nHOOK=\"{}\"\nHOOK_CHAIN=\"{}\"\n\
             BASEDIR=\"{}\"\nKEY_ALGO=\"prime256v1\"\nKEYSIZE=2048\n\
             CURL_OPTS=\"--cacert {}\"\n",
            acme.directory(),
            hook.display(),
            if chain { "yes" } else { "no" },
            base.display(),
            acme.ca().display()
        ),
    );
    let mut register = acme.client("dehydrated");
    register
        .arg("-f")
        .arg(&config)
        .args(["--register", "--accept-terms"]);
    acme.run("dehydrated register", &mut register);
    let mut cmd = acme.client("dehydrated");
    cmd.arg("-f")
        .arg(&config)
        .args(["--cron", "-d", "example.test", "-d", "*.example.test"]);
    acme.run("dehydrated", &mut cmd);
    acme.check(
        &base.join("certs/example.test/cert.pem"),
        &["example.test", "*.example.test"],
    );
}

#[test]
fn dehydrated_hook_chain_no() {
    dehydrated(false);
}

#[test]
fn dehydrated_hook_chain_yes() {
    dehydrated(true);
}

#[test]
fn uacme_single_name() {
    need("uacme", "uacme");
    need("unshare", "util-linux");
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the uacme test bind-mounts the test CA over the system bundle: run it as root (CI does)"
    );
    let acme = Acme::start();
    let hook = acme.tree.symlink_bin("zonedrop-uacme");
    let confdir = acme.tree.path("uacme");
    // uacme has no CA option and libcurl reads no CA variable: the test CA
    // becomes the system bundle, in a mount namespace of uacme's own.
    let bundle = "/etc/ssl/certs/ca-certificates.crt";
    assert!(
        Path::new(bundle).is_file(),
        "{bundle} is missing (Debian package ca-certificates)"
    );
    let in_ns = |args: &str| {
        let mut c = acme.client("unshare");
        c.args(["-m", "sh", "-c"]).arg(format!(
            "mount --bind \"$1\" {bundle} && exec uacme -v -y -t EC -a \"$2\" -c \"$3\" {args}"
        ));
        c.arg("sh")
            .arg(acme.ca())
            .arg(acme.directory())
            .arg(&confdir);
        c
    };
    acme.run("uacme new", &mut in_ns("new"));
    let mut issue = in_ns(&format!("-h '{}' issue www.example.test", hook.display()));
    acme.run("uacme", &mut issue);
    acme.check(
        &confdir.join("www.example.test/cert.pem"),
        &["www.example.test"],
    );
}

/// `zonedrop watch --poll`: no change events, only polling; a fragment
/// dropped is in the published zone within about 2 s, also after the drop
/// directory was removed and made again.
#[test]
fn watch_poll_picks_up_fragments() {
    let tree = Tree::new();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("zones"),
        &tree.path("zones"),
    );
    tree.mkdir("drop");
    tree.write(
        "zonedrop.toml",
        "[paths]\nsoa = \"zones/soa\"\nprimary = \"zones/primary\"\n\
         extra = \"zones/extra\"\nunsigned = \"unsigned\"\nstate = \"state\"\n\
         [[drop]]\npath = \"drop\"\n[[zone]]\nname = \"example.test\"\n\
         [[zone]]\nname = \"example.net\"\n",
    );
    let watch = Guard::start(
        "zonedrop watch",
        zonedrop()
            .args(["--config", "zonedrop.toml", "watch", "--poll", "200ms"])
            .current_dir(tree.path(""))
            .env("RUST_LOG", "warn,zonedrop=info"),
        tree.path("watch.log"),
    );
    let published = tree.path("unsigned/example.test");
    let within = |what: &str, limit: Duration, check: &dyn Fn(&str) -> bool| {
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&published).unwrap_or_default();
            if check(&text) {
                eprintln!("{what}: {:?}", start.elapsed());
                return;
            }
            assert!(
                start.elapsed() < limit,
                "{what}: not after {limit:?}; published:\n{text}\nwatch log:\n{}",
                watch.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    within("first build", Duration::from_secs(10), &|t| {
        t.contains("v=spf1")
    });
    let add = |value: &str| {
        let r = tree.run(&[
            "--drop",
            "drop",
            "add",
            "_acme-challenge.example.test",
            value,
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    };
    add(V1);
    within("fragment added", Duration::from_secs(2), &|t| {
        t.contains(V1)
    });
    let r = tree.run(&["--drop", "drop", "del", "_acme-challenge.example.test", V1]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    within("fragment removed", Duration::from_secs(2), &|t| {
        !t.contains(V1)
    });

    // The drop directory goes away and comes back (a remount): polling
    // picks up what is dropped into the new one.
    std::fs::remove_dir(tree.path("drop")).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    tree.mkdir("drop");
    let v3 = "ZZZZwTo7o8BoG0-vjCyGQGBWSVIPxI-i_X336eUOQZo";
    add(v3);
    within(
        "fragment in a re-created drop",
        Duration::from_secs(2),
        &|t| t.contains(v3),
    );
    // No change event was used: the watcher holds no inotify instance
    // (on nullfs or NFS, none would ever report anything).
    assert_eq!(inotify_instances(&watch), 0, "{}", watch.log());
    drop(watch);
    // Without --poll it holds one: the probe above can see it.
    let watch = Guard::start(
        "zonedrop watch",
        zonedrop()
            .args(["--config", "zonedrop.toml", "watch"])
            .current_dir(tree.path(""))
            .env("RUST_LOG", "warn,zonedrop=info"),
        tree.path("watch-events.log"),
    );
    let until = Instant::now() + Duration::from_secs(10);
    while !watch.log().contains("watching") && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(inotify_instances(&watch) > 0, "{}", watch.log());
}

/// The inotify instances `process` holds: its descriptors that are
/// `anon_inode:inotify` in /proc.
fn inotify_instances(process: &Daemon) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", process.child.id()))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.as_os_str() == "anon_inode:inotify")
        .count()
}

/// `zonedrop run` ends on SIGTERM (systemd's stop, the guards here): the
/// watcher thread that never returns must not hold the exit.
#[test]
fn run_stops_on_sigterm() {
    let tree = Tree::new();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("zones"),
        &tree.path("zones"),
    );
    let port = free_port();
    tree.write(
        "zonedrop.toml",
        &format!(
            "[paths]\nsoa = \"zones/soa\"\nprimary = \"zones/primary\"\n\
             extra = \"zones/extra\"\n\
             [[zone]]\nname = \"example.test\"\n[[zone]]\nname = \"example.net\"\n\
             [serve]\nlisten = [\"127.0.0.1:{port}\"]\n"
        ),
    );
    let mut child = zonedrop()
        .args(["--config", "zonedrop.toml", "run"])
        .current_dir(tree.path(""))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while txt(port, "example.test.").is_none_or(|t| t.is_empty()) {
        assert!(Instant::now() < until, "zonedrop run does not answer");
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "zonedrop run: {status} on SIGTERM");
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("zonedrop run still runs 2 s after SIGTERM");
}
