//! Issue 13 part 1: RFC 2136 updates signed with TSIG, taken by the
//! responder of `zonedrop run` and written as fragments into the key's
//! drop directory. Real clients: nsupdate (bind9-dnsutils), knsupdate
//! (knot-dnsutils), dig for signed queries, certbot's dns-rfc2136 plugin
//! and lego's rfc2136 provider against Pebble. Messages no client sends
//! (an old time, a replay) are made here with hickory-proto's TSIG signer.
//!
//! Every refusal is checked to leave the drop directory as it was.

use crate::acme::Acme;
use crate::support::{free_port, need, query_txt, zonedrop, Daemon, Tree, V1, V2};
use base64::Engine;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm, TsigError};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{Name, RData, Record, RecordType, TSigner};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=";
const OTHER_SECRET: &str = "b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXItMTI=";

/// A tree with one zone, a key `acme-key` (in a BIND key file) that may
/// place challenges at www.example.test and below sub.example.test, and
/// `zonedrop run` answering.
struct Site {
    run: Daemon,
    port: u16,
    tree: Tree,
}

fn key_file(name: &str, secret: &str) -> String {
    format!("key \"{name}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{secret}\";\n}};\n")
}

impl Site {
    fn start(extra: &str) -> Site {
        let port = free_port();
        let tree = Tree::one_zone(
            &format!(
                "[serve]\nlisten = [\"127.0.0.1:{port}\"]\n\
                 [[update_key]]\nname = \"acme-key\"\nalgorithm = \"hmac-sha256\"\n\
                 secret_file = \"acme.key\"\nnames = [\"www.example.test\", \"*.sub.example.test\"]\n\
                 drop = \"drop\"\n{extra}"
            ),
            "",
        );
        let key = tree.write("acme.key", &key_file("acme-key", SECRET));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(
            tree.path("zonedrop.toml"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let run = Daemon::start(
            "zonedrop run",
            zonedrop()
                .arg("run")
                .current_dir(tree.path(""))
                .env("RUST_LOG", "info"),
            tree.path("run.log"),
        );
        let site = Site { run, port, tree };
        site.wait_for(|| query_txt(site.addr(), "example.test.").is_some_and(|(rc, _)| rc == 0));
        site
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn wait_for(&self, check: impl Fn() -> bool) {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if check() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("not in time; zonedrop run:\n{}", self.run.log());
    }

    /// Run nsupdate or knsupdate with `key` (`-y` form, or none) on
    /// `script` (the server line is added): exit status and output.
    fn nsupdate(&self, program: &str, key: Option<&str>, script: &str) -> (i32, String) {
        need(program, "bind9-dnsutils / knot-dnsutils");
        let mut cmd = Command::new(program);
        if let Some(k) = key {
            cmd.args(["-y", k]);
        }
        let mut child = cmd
            .current_dir(self.tree.path(""))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let text = format!("server 127.0.0.1 {}\n{script}\nsend\nquit\n", self.port);
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn txt(&self, owner: &str) -> Vec<String> {
        let mut v = query_txt(self.addr(), owner)
            .map(|(_, t)| t)
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Wait until `owner` serves exactly `values`.
    fn served(&self, owner: &str, values: &[&str]) {
        let mut want: Vec<String> = values.iter().map(|s| s.to_string()).collect();
        want.sort();
        self.wait_for(|| self.txt(owner) == want);
    }
}

const KEY: &str = "hmac-sha256:acme-key:c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=";

#[test]
fn nsupdate_and_knsupdate_add_and_delete() {
    let site = Site::start("");
    let www = "_acme-challenge.www.example.test.";
    let sub = "_acme-challenge.a.sub.example.test.";
    let (rc, out) = site.nsupdate(
        "nsupdate",
        Some(KEY),
        &format!("zone example.test\nupdate add {www} 60 TXT \"{V1}\""),
    );
    assert_eq!(rc, 0, "{out}\n{}", site.run.log());
    let (rc, out) = site.nsupdate(
        "knsupdate",
        Some(KEY),
        &format!(
            "zone example.test\nupdate add {sub} 60 TXT \"{V2}\"\nupdate add {www} 60 TXT \"{V2}\""
        ),
    );
    assert_eq!(rc, 0, "{out}\n{}", site.run.log());
    site.served(www, &[V1, V2]);
    site.served(sub, &[V2]);
    // Each fragment says which key wrote it.
    let files = site.tree.drop_files("drop");
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(
        files.iter().all(|(n, _)| n.ends_with(".tsig-acme-key")),
        "{files:?}"
    );
    assert!(files.contains(&(files[0].0.clone(), format!("{sub} 60 IN TXT \"{V2}\"\n"))));
    let log = site.run.log();
    assert!(
        log.contains(&format!(
            "update by key acme-key. from 127.0.0.1: 1 added, 0 removed at {www}"
        )),
        "{log}"
    );
    assert!(!log.contains("c2VjcmV0"), "a secret in the log:\n{log}");

    // A hook's fragment at the same owner survives the key's RRset delete.
    let hook = site
        .tree
        .run(&["add", www, "hookvalue-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]);
    assert_eq!(hook.code, 0, "{}", hook.stderr);
    let (rc, out) = site.nsupdate(
        "nsupdate",
        Some(KEY),
        &format!("zone example.test\nupdate delete {www} TXT"),
    );
    assert_eq!(rc, 0, "{out}");
    site.served(www, &["hookvalue-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]);
    // One value, with knsupdate.
    let (rc, out) = site.nsupdate(
        "knsupdate",
        Some(KEY),
        &format!("zone example.test\nupdate delete {sub} TXT \"{V2}\""),
    );
    assert_eq!(rc, 0, "{out}");
    site.served(sub, &[]);
    let files = site.tree.drop_files("drop");
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(!files[0].0.contains("tsig"), "{files:?}");
}

/// An UPDATE made here: `zone`, then `records` in the update section,
/// signed with `secret` (key acme-key) at `time` unless None.
fn update_message(zone: &str, records: Vec<Record>, secret: Option<&str>, time: u64) -> Vec<u8> {
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Update);
    m.add_query(Query::query(
        Name::from_ascii(zone).unwrap(),
        RecordType::SOA,
    ));
    for r in records {
        m.authorities.push(r);
    }
    if let Some(secret) = secret {
        let signer = TSigner::new(
            base64::engine::general_purpose::STANDARD
                .decode(secret)
                .unwrap(),
            TsigAlgorithm::HmacSha256,
            Name::from_ascii("acme-key.").unwrap(),
            300,
        )
        .unwrap();
        m.finalize(&signer, time).unwrap();
    }
    m.to_vec().unwrap()
}

fn rand_id() -> u16 {
    (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        & 0xffff) as u16
}

fn txt_record(owner: &str, value: &str) -> Record {
    Record::from_rdata(
        Name::from_ascii(owner).unwrap(),
        60,
        RData::TXT(TXT::new(vec![value.to_string()])),
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Send `bytes` over UDP; the answer, decoded.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    socket.send_to(bytes, addr).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

#[test]
fn refused_updates_write_nothing() {
    let site = Site::start("");
    // A hook's fragment and a key's, to see that refusals leave both.
    let www = "_acme-challenge.www.example.test.";
    assert_eq!(site.tree.run(&["add", www, V1]).code, 0);
    let (rc, out) = site.nsupdate(
        "nsupdate",
        Some(KEY),
        &format!("zone example.test\nupdate add {www} 60 TXT \"{V2}\""),
    );
    assert_eq!(rc, 0, "{out}");
    let before = site.tree.drop_files("drop");
    assert_eq!(before.len(), 2);
    let wrong = format!("hmac-sha256:acme-key:{OTHER_SECRET}");
    let unknown = format!("hmac-sha256:other-key:{SECRET}");
    let cases: &[(&str, Option<&str>, String, &str)] = &[
        ("nsupdate", None, format!("zone example.test\nupdate add {www} 60 TXT \"{V2}x\""), "REFUSED"),
        ("nsupdate", Some(&unknown), format!("zone example.test\nupdate add {www} 60 TXT \"{V1}\""), "NOTAUTH(BADKEY)"),
        ("nsupdate", Some(&wrong), format!("zone example.test\nupdate add {www} 60 TXT \"{V1}\""), "NOTAUTH(BADSIG)"),
        // Outside the key's names (the zone holds it, the key does not).
        ("nsupdate", Some(KEY), format!("zone example.test\nupdate add _acme-challenge.mail.example.test. 60 TXT \"{V1}\""), "REFUSED"),
        ("knsupdate", Some(KEY), format!("zone example.test\nupdate add _acme-challenge.sub.example.test. 60 TXT \"{V1}\""), "REFUSED"),
        // Not a challenge owner, not TXT, the apex, every RRset.
        ("nsupdate", Some(KEY), format!("zone example.test\nupdate add www.example.test. 60 TXT \"{V1}\""), "REFUSED"),
        ("knsupdate", Some(KEY), format!("zone example.test\nupdate add {www} 60 A 192.0.2.1"), "REFUSED"),
        ("nsupdate", Some(KEY), format!("zone example.test\nupdate add example.test. 60 TXT \"{V1}\""), "REFUSED"),
        ("nsupdate", Some(KEY), format!("zone example.test\nupdate delete {www}"), "REFUSED"),
        ("knsupdate", Some(KEY), "zone example.test\nupdate delete example.test. NS".to_string(), "REFUSED"),
        // A dns-persist-01 record: never from the drop side by default.
        ("nsupdate", Some(KEY), "zone example.test\nupdate add _validation-persist.www.example.test. 60 TXT \"letsencrypt.org; accounturi=https://ca.example/acct/1\"".to_string(), "REFUSED"),
        // A value the whitelist would not take.
        ("nsupdate", Some(KEY), format!("zone example.test\nupdate add {www} 60 TXT \"short\""), "REFUSED"),
        // A zone not served here, a name outside the zone.
        ("nsupdate", Some(KEY), format!("zone example.net\nupdate add _acme-challenge.www.example.net. 60 TXT \"{V1}\""), "NOTAUTH"),
        ("nsupdate", Some(KEY), format!("zone example.test\nupdate add _acme-challenge.www.example.org. 60 TXT \"{V1}\""), "NOTZONE"),
        // Prerequisites elsewhere than the update's owners; on them, evaluated.
        ("nsupdate", Some(KEY), format!("zone example.test\nprereq yxdomain ns1.example.test.\nupdate add {www} 60 TXT \"{V1}x\""), "REFUSED"),
        ("nsupdate", Some(KEY), format!("zone example.test\nprereq nxrrset {www} TXT\nupdate delete {www} TXT"), "YXRRSET"),
        ("knsupdate", Some(KEY), format!("zone example.test\nprereq nxdomain {www}\nupdate delete {www} TXT"), "YXDOMAIN"),
    ];
    for (program, key, script, want) in cases {
        let (rc, out) = site.nsupdate(program, *key, script);
        assert_ne!(rc, 0, "{program} {script}: accepted\n{out}");
        assert!(
            out.to_uppercase().contains(want),
            "{program} {script}: wanted {want}, got\n{out}"
        );
        assert_eq!(
            site.tree.drop_files("drop"),
            before,
            "{program} {script} wrote"
        );
    }

    // A time outside the fudge: NOTAUTH, and BADTIME in a signed TSIG.
    let add = || vec![txt_record(www, V1)];
    let late = update_message("example.test.", add(), Some(SECRET), now() - 3600);
    let answer = exchange(site.addr(), &late);
    assert_eq!(
        answer.metadata.response_code,
        hickory_proto::op::ResponseCode::NotAuth
    );
    let sig = answer.signature.expect("a TSIG in the BADTIME answer");
    assert_eq!(sig.data.error, Some(TsigError::BadTime));
    assert_eq!(sig.data.mac.len(), 32, "the BADTIME answer is signed");
    assert_eq!(site.tree.drop_files("drop"), before);

    // A replay: the same signed add after its value was deleted.
    let fresh = update_message(
        "example.test.",
        vec![txt_record("_acme-challenge.a.sub.example.test.", V1)],
        Some(SECRET),
        now(),
    );
    let answer = exchange(site.addr(), &fresh);
    assert_eq!(
        answer.metadata.response_code,
        hickory_proto::op::ResponseCode::NoError
    );
    let (rc, out) = site.nsupdate(
        "nsupdate",
        Some(KEY),
        "zone example.test\nupdate delete _acme-challenge.a.sub.example.test. TXT",
    );
    assert_eq!(rc, 0, "{out}");
    assert_eq!(site.tree.drop_files("drop"), before);
    let answer = exchange(site.addr(), &fresh);
    assert_eq!(
        answer.metadata.response_code,
        hickory_proto::op::ResponseCode::Refused
    );
    assert_eq!(site.tree.drop_files("drop"), before, "a replay wrote");
    // Unsigned, made here too: REFUSED with no TSIG.
    let answer = exchange(
        site.addr(),
        &update_message("example.test.", add(), None, 0),
    );
    assert_eq!(
        answer.metadata.response_code,
        hickory_proto::op::ResponseCode::Refused
    );
    assert!(answer.signature.is_none());
    assert_eq!(site.tree.drop_files("drop"), before);
    let log = site.run.log();
    assert!(log.contains("nothing written"), "{log}");
    assert!(
        !log.contains(SECRET) && !log.contains(OTHER_SECRET),
        "{log}"
    );
}

#[test]
fn signed_queries_are_answered_signed() {
    need("dig", "bind9-dnsutils");
    let site = Site::start("");
    for transport in ["+notcp", "+tcp"] {
        let out = Command::new("dig")
            .args([
                "-p",
                &site.port.to_string(),
                "@127.0.0.1",
                "SOA",
                "example.test",
            ])
            .args(["-y", KEY, transport])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("status: NOERROR"), "{text}");
        assert!(text.contains("flags: qr aa"), "{text}");
        assert!(text.contains("TSIG PSEUDOSECTION"), "{text}");
        assert!(
            text.contains("acme-key.\t\t0\tANY\tTSIG\thmac-sha256."),
            "{text}"
        );
        // dig checks the answer's MAC and says so when it fails.
        assert!(
            !text.to_lowercase().contains("could not be validated"),
            "{text}"
        );
        assert!(!text.contains("tsig verify failure"), "{text}");
    }
}

/// A signed query is answered afresh each time, never from the UDP answer
/// cache: the same bytes a second later get an answer signed a second later.
#[test]
fn signed_answers_are_not_cached() {
    let site = Site::start("");
    let mut m = Message::query();
    m.metadata.recursion_desired = false;
    m.add_query(Query::query(
        Name::from_ascii("example.test.").unwrap(),
        RecordType::SOA,
    ));
    let signer = TSigner::new(
        base64::engine::general_purpose::STANDARD
            .decode(SECRET)
            .unwrap(),
        TsigAlgorithm::HmacSha256,
        Name::from_ascii("acme-key.").unwrap(),
        300,
    )
    .unwrap();
    m.finalize(&signer, now()).unwrap();
    let bytes = m.to_vec().unwrap();
    // One client socket: the same responder socket (and thread cache) each time.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let ask = || {
        socket.send_to(&bytes, site.addr()).unwrap();
        let mut buf = [0u8; 4096];
        let (n, _) = socket.recv_from(&mut buf).unwrap();
        Message::from_vec(&buf[..n]).unwrap()
    };
    let first = ask();
    std::thread::sleep(Duration::from_millis(1100));
    let second = ask();
    let (a, b) = (first.signature.unwrap(), second.signature.unwrap());
    assert_eq!(a.data.error, None);
    assert_eq!(first.answers.len(), 1);
    assert!(
        b.data.time > a.data.time,
        "the second answer is the first one again"
    );
    assert_ne!(a.data.mac, b.data.mac);
}

#[test]
fn keys_reload_on_sighup() {
    let site = Site::start("");
    let www = "_acme-challenge.www.example.test.";
    let new_key = format!("hmac-sha256:acme-key:{OTHER_SECRET}");
    let add = format!("zone example.test\nupdate add {www} 60 TXT \"{V1}\"");
    let (rc, out) = site.nsupdate("nsupdate", Some(&new_key), &add);
    assert_ne!(rc, 0, "{out}");
    site.tree
        .write("acme.key", &key_file("acme-key", OTHER_SECRET));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(site.run.child.id() as i32, libc::SIGHUP) };
    site.wait_for(|| site.run.log().contains("update key(s) in use"));
    let (rc, out) = site.nsupdate("nsupdate", Some(&new_key), &add);
    assert_eq!(rc, 0, "{out}\n{}", site.run.log());
    let (rc, out) = site.nsupdate("nsupdate", Some(KEY), &add.replace(V1, V2));
    assert!(
        rc != 0 && out.contains("BADSIG"),
        "the old secret still works:\n{out}"
    );
}

/// `zonedrop run` with `key` as the only [[update_key]] table: exit status and stderr.
fn start_refused(key: &str, secret_mode: u32) -> (i32, String) {
    let tree = Tree::one_zone(
        &format!("[[drop]]\npath = \"other\"\nnames = [\"www.example.test\"]\n{key}"),
        "",
    );
    tree.mkdir("other");
    let f = tree.write("acme.key", &key_file("acme-key", SECRET));
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(secret_mode)).unwrap();
    let port = free_port();
    let out = tree
        .cmd(&["run", "--listen", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_keys_refuse_the_config() {
    let key = |names: &str, drop: &str| {
        format!(
            "[[update_key]]\nname = \"acme-key\"\nalgorithm = \"hmac-sha256\"\n\
             secret_file = \"acme.key\"\nnames = [{names}]\ndrop = \"{drop}\"\n"
        )
    };
    let cases = [
        (
            key("\"www.example.test\"", "nowhere"),
            0o600,
            "is not the path of a configured [[drop]]",
        ),
        (
            key("\"mail.example.test\"", "other"),
            0o600,
            "is outside the names of the [[drop]]",
        ),
        (
            key("\"www.example.org\"", "drop"),
            0o600,
            "lies in no configured zone",
        ),
        (
            key("\"www.example.test\"", "drop"),
            0o640,
            "readable by group or others",
        ),
        (
            key("\"www.example.test\"", "drop").replace("hmac-sha256", "hmac-sha512"),
            0o600,
            "the file gives algorithm `hmac-sha256`",
        ),
    ];
    for (text, mode, want) in cases {
        let (code, err) = start_refused(&text, mode);
        assert_eq!(code, 2, "{text}: {err}");
        assert!(err.contains(want), "{text}: wanted {want}, got {err}");
        assert!(!err.contains(SECRET), "{err}");
    }
}

#[test]
fn an_inline_secret_in_a_readable_config_is_warned_about() {
    let port = free_port();
    let tree = Tree::one_zone(
        &format!(
            "[serve]\nlisten = [\"127.0.0.1:{port}\"]\n[[update_key]]\nname = \"k\"\n\
             algorithm = \"hmac-sha1\"\nsecret = \"{SECRET}\"\nnames = [\"www.example.test\"]\ndrop = \"drop\"\n"
        ),
        "",
    );
    std::fs::set_permissions(
        tree.path("zonedrop.toml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let run = Daemon::start(
        "zonedrop run",
        zonedrop().arg("run").current_dir(tree.path("")),
        tree.path("run.log"),
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let until = Instant::now() + Duration::from_secs(10);
    // Served (NOERROR at the apex), not merely answering REFUSED before the first build.
    while query_txt(addr, "example.test.").is_none_or(|(rc, _)| rc != 0) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = run.log();
    assert!(
        log.contains("key `k.` has its secret inline in a file group or others can read"),
        "{log}"
    );
    assert!(!log.contains(SECRET), "{log}");
    // hmac-sha1, for old clients.
    let site = Site { run, port, tree };
    let (rc, out) = site.nsupdate(
        "nsupdate",
        Some(&format!("hmac-sha1:k:{SECRET}")),
        &format!("zone example.test\nupdate add _acme-challenge.www.example.test. 60 TXT \"{V1}\""),
    );
    assert_eq!(rc, 0, "{out}");
}

const ACME_KEY: &str = "[[update_key]]\nname = \"acme-key\"\nalgorithm = \"hmac-sha256\"\n\
    secret = \"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=\"\n\
    names = [\"example.test\", \"*.example.test\"]\ndrop = \"drop\"\n";

#[test]
fn certbot_dns_rfc2136_through_run() {
    need("certbot", "certbot");
    assert!(
        std::path::Path::new("/usr/lib/python3/dist-packages/certbot_dns_rfc2136").is_dir(),
        "certbot's dns-rfc2136 plugin is not installed: run `bash .ci/install-deps` (Debian package python3-certbot-dns-rfc2136)"
    );
    let acme = Acme::start_with(ACME_KEY);
    let ini = acme.tree.write(
        "rfc2136.ini",
        &format!(
            "dns_rfc2136_server = 127.0.0.1\ndns_rfc2136_port = {}\ndns_rfc2136_name = acme-key\n\
             dns_rfc2136_secret = {SECRET}\ndns_rfc2136_algorithm = HMAC-SHA256\n",
            acme.dns_port
        ),
    );
    std::fs::set_permissions(&ini, std::fs::Permissions::from_mode(0o600)).unwrap();
    // /usr/bin/certbot runs Debian's python, which alone imports Debian's plugin.
    let mut cmd = acme.client("/usr/bin/certbot");
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
        .args(["--dns-rfc2136", "--dns-rfc2136-credentials"])
        .arg(&ini)
        .args(["--dns-rfc2136-propagation-seconds", "1"])
        .args(["--key-type", "ecdsa"])
        .args(["-d", "example.test", "-d", "*.example.test"]);
    acme.run("certbot rfc2136", &mut cmd);
    acme.check(
        &acme.tree.path("certbot/config/live/example.test/cert.pem"),
        &["example.test", "*.example.test"],
    );
}

#[test]
fn lego_rfc2136_through_run() {
    need("lego", "lego");
    let acme = Acme::start_with(ACME_KEY);
    let mut cmd = acme.client("lego");
    cmd.env("LEGO_CA_CERTIFICATES", acme.ca())
        .env("RFC2136_NAMESERVER", format!("127.0.0.1:{}", acme.dns_port))
        .env("RFC2136_TSIG_KEY", "acme-key")
        .env("RFC2136_TSIG_SECRET", SECRET)
        .env("RFC2136_TSIG_ALGORITHM", "hmac-sha256.")
        .env("RFC2136_PROPAGATION_TIMEOUT", "30")
        .env("RFC2136_POLLING_INTERVAL", "1")
        .env("RFC2136_SEQUENCE_INTERVAL", "0")
        .args(["--server", &acme.directory()])
        .args(["--accept-tos", "--email", "acme@example.test"])
        .arg("--path")
        .arg(acme.tree.path("lego"))
        .args(["--key-type", "ec256", "--dns", "rfc2136"])
        .arg("--dns.disable-cp")
        .args(["-d", "www.example.test", "-d", "*.example.test"])
        .arg("run");
    acme.run("lego rfc2136", &mut cmd);
    acme.check(
        &acme.tree.path("lego/certificates/www.example.test.crt"),
        &["www.example.test", "*.example.test"],
    );
}

#[test]
fn allow_and_max_values_limit_a_key() {
    let www = "_acme-challenge.www.example.test.";
    let add = |v: &str| format!("zone example.test\nupdate add {www} 60 TXT \"{v}\"");
    // From a source outside `allow`: refused, nothing written.
    let site = Site::start("allow = [\"192.0.2.0/24\", \"2001:db8::/32\"]\n");
    let (rc, out) = site.nsupdate("nsupdate", Some(KEY), &add(V1));
    assert!(rc != 0 && out.contains("REFUSED"), "{out}");
    assert!(site.tree.drop_files("drop").is_empty());
    assert!(
        site.run.log().contains("is not allowed from there"),
        "{}",
        site.run.log()
    );
    // From inside it; and at most `max_values` values at once.
    let site = Site::start("allow = [\"127.0.0.0/8\"]\nmax_values = 1\n");
    let (rc, out) = site.nsupdate("nsupdate", Some(KEY), &add(V1));
    assert_eq!(rc, 0, "{out}");
    let (rc, out) = site.nsupdate("nsupdate", Some(KEY), &add(V2));
    assert!(rc != 0 && out.contains("REFUSED"), "{out}");
    assert_eq!(site.tree.drop_files("drop").len(), 1);
    assert!(
        site.run.log().contains("(max_values)"),
        "{}",
        site.run.log()
    );
    // Room again once the first is deleted.
    let (rc, out) = site.nsupdate(
        "nsupdate",
        Some(KEY),
        &format!(
            "zone example.test\nupdate delete {www} TXT \"{V1}\"\nupdate add {www} 60 TXT \"{V2}\""
        ),
    );
    assert_eq!(rc, 0, "{out}\n{}", site.run.log());
    site.served(www, &[V2]);
}

/// Refusals a peer causes without the key are logged bounded (a line when
/// they start, then counts), however fast it sends.
#[test]
fn a_flood_of_unsigned_updates_logs_one_line() {
    let site = Site::start("");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let msg = update_message(
        "example.test.",
        vec![txt_record("_acme-challenge.www.example.test.", V1)],
        None,
        0,
    );
    for _ in 0..300 {
        socket.send_to(&msg, site.addr()).unwrap();
        let mut buf = [0u8; 512];
        socket.recv_from(&mut buf).unwrap();
    }
    let lines = site
        .run
        .log()
        .lines()
        .filter(|l| l.contains("not signed with TSIG"))
        .count();
    assert_eq!(lines, 1, "{}", site.run.log());
    assert!(site.tree.drop_files("drop").is_empty());
}

/// `serve` (no builder in the process) takes updates too: the fragment is
/// written for whichever builder reads the drop directory; SIGHUP reloads
/// its keys as it does in `run`.
#[test]
fn serve_takes_updates_too() {
    let port = free_port();
    let tree = Tree::one_zone(
        &format!(
            "[serve]\nlisten = [\"127.0.0.1:{port}\"]\n[[update_key]]\nname = \"acme-key\"\n\
             algorithm = \"hmac-sha256\"\nsecret_file = \"acme.key\"\nnames = [\"www.example.test\"]\ndrop = \"drop\"\n"
        ),
        "",
    );
    let key = tree.write("acme.key", &key_file("acme-key", SECRET));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(tree.run(&["build"]).code, 0);
    let run = Daemon::start(
        "zonedrop serve",
        zonedrop()
            .arg("serve")
            .current_dir(tree.path(""))
            .env("RUST_LOG", "info"),
        tree.path("serve.log"),
    );
    let site = Site { run, port, tree };
    site.wait_for(|| query_txt(site.addr(), "example.test.").is_some_and(|(rc, _)| rc == 0));
    let www = "_acme-challenge.www.example.test.";
    let (rc, out) = site.nsupdate(
        "nsupdate",
        Some(KEY),
        &format!("zone example.test\nupdate add {www} 60 TXT \"{V1}\""),
    );
    assert_eq!(rc, 0, "{out}\n{}", site.run.log());
    let files = site.tree.drop_files("drop");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].1, format!("{www} 60 IN TXT \"{V1}\"\n"));
    // A build elsewhere publishes it, and serve picks the file up.
    assert_eq!(site.tree.run(&["build"]).code, 0);
    site.served(www, &[V1]);
    // SIGHUP reloads the keys in serve too (and does not end it).
    site.tree
        .write("acme.key", &key_file("acme-key", OTHER_SECRET));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(site.run.child.id() as i32, libc::SIGHUP) };
    site.wait_for(|| site.run.log().contains("update key(s) in use"));
    let new_key = format!("hmac-sha256:acme-key:{OTHER_SECRET}");
    let (rc, out) = site.nsupdate(
        "nsupdate",
        Some(&new_key),
        &format!("zone example.test\nupdate add {www} 60 TXT \"{V2}\""),
    );
    assert_eq!(rc, 0, "{out}\n{}", site.run.log());
}

/// A key file as `tsig-keygen` (bind9) writes it, with hmac-sha512, used
/// by `nsupdate -k` on the same file.
#[test]
fn tsig_keygen_files_are_read() {
    need("tsig-keygen", "bind9");
    let port = free_port();
    let tree = Tree::one_zone(
        &format!(
            "[serve]\nlisten = [\"127.0.0.1:{port}\"]\n[[update_key]]\nname = \"made-by-keygen\"\n\
             algorithm = \"hmac-sha512\"\nsecret_file = \"keygen.key\"\nnames = [\"www.example.test\"]\ndrop = \"drop\"\n"
        ),
        "",
    );
    let out = Command::new("tsig-keygen")
        .args(["-a", "hmac-sha512", "made-by-keygen"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let key = tree.path("keygen.key");
    std::fs::write(&key, &out.stdout).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = Daemon::start(
        "zonedrop run",
        zonedrop().arg("run").current_dir(tree.path("")),
        tree.path("run.log"),
    );
    let site = Site { run, port, tree };
    site.wait_for(|| query_txt(site.addr(), "example.test.").is_some_and(|(rc, _)| rc == 0));
    let mut child = Command::new("nsupdate")
        .arg("-k")
        .arg(&key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    write!(
        child.stdin.take().unwrap(),
        "server 127.0.0.1 {port}\nzone example.test\nupdate add _acme-challenge.www.example.test. 60 TXT \"{V1}\"\nsend\n"
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}\n{}", site.run.log());
    site.served("_acme-challenge.www.example.test.", &[V1]);
    let text = std::fs::read_to_string(&key).unwrap();
    let secret = text.split('"').nth(3).unwrap();
    assert!(!site.run.log().contains(secret), "{}", site.run.log());
}
