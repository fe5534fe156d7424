//! Servers and waiting (issue 11 item 5): host names and the default port
//! 53 wherever a server is named (`--server` of `add`, `hook` and `wait`,
//! `[hook] servers`, `[build] notify`, `notify --to`), listen addresses
//! with port 53 by default; `wait` retrying an NS name until it resolves,
//! through the glue of the managed zones; the hook side refusing, with
//! nothing written, a challenge its config's builder would not take; and
//! the exit status of a hook that cannot wait or waited in vain.

use crate::support::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[test]
fn host_names_and_port_53_are_taken_wherever_a_server_is_named() {
    let port = free_port();
    let t = Tree::one_zone(
        &format!(
            "[serve]\nlisten = [\"127.0.0.1:{port}\"]\n\
             [hook]\nservers = [\"localhost:{port}\"]\n\
             [build]\nnotify = [\"localhost:{port}\"]\n"
        ),
        "",
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let run = run_until_answering(&t, addr, "example.test");
    // [hook] servers by name.
    let r = t.run(&["add", "--wait", "10s", "_acme-challenge.example.test", V1]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{}", run.log());
    // --server by name, on add and hook (lego's convention).
    let server = format!("localhost:{port}");
    let r = t.run(&[
        "add",
        "--wait",
        "10s",
        "--server",
        &server,
        "_acme-challenge.www.example.test",
        V2,
    ]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    let r = t.run(&[
        "hook",
        "--wait",
        "10s",
        "--server",
        &server,
        "lego",
        "present",
        "_acme-challenge.mail.example.test.",
        V1,
        "60",
    ]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    let r = t.run(&[
        "wait",
        "--server",
        &server,
        "--timeout",
        "5s",
        "_acme-challenge.www.example.test",
        V2,
    ]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    // A client that calls a zonedrop-CLIENT link passes no options: its
    // servers come from ZONEDROP_SERVERS (here one that never answers).
    let link = t.symlink_bin("zonedrop-lego");
    let r: Run = t
        .cmd_at(
            &link,
            &["present", "_acme-challenge.www.example.test.", V1, "60"],
        )
        .env("ZONEDROP_WAIT", "1s")
        .env("ZONEDROP_SERVERS", format!("{server},127.0.0.9:5399"))
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(" is not visible after 1s on 127.0.0.9:5399 ("),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(&server), "{}", r.stderr);
    // notify --to by name; [build] notify by name was sent by run's builds
    // (which its own responder acknowledged: no error in its log).
    let r = t.run(&["notify", "example.test", "--to", &server]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert!(!run.log().contains("NOTIFY"), "{}", run.log());
    // Port 53 unless given: nothing answers 127.0.0.9:53.
    let r = t.run(&["notify", "example.test", "--to", "127.0.0.9"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .starts_with("zonedrop: NOTIFY example.test. to 127.0.0.9:53: "),
        "{}",
        r.stderr
    );
    // A name that does not resolve is one line naming it.
    let r = t.run(&["notify", "example.test", "--to", "nowhere.invalid:5300"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.starts_with(
            "zonedrop: NOTIFY example.test. to nowhere.invalid:5300: cannot find its address: "
        ),
        "{}",
        r.stderr
    );
    // Bad addresses are usage errors naming the value.
    let r = t.run(&["notify", "example.test", "--to", "ns1 example"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("`ns1 example` is not a server address"),
        "{}",
        r.stderr
    );
    let r = t.run(&["serve", "--listen", "localhost:53"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("`localhost:53` is not a listen address"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_listen_address_without_a_port_listens_on_53() {
    // Root may bind port 53; a loopback address of our own keeps clear of
    // any resolver on 127.0.0.1 or 127.0.0.53.
    let ip = format!("127.53.{}.{}", std::process::id() % 250 + 1, 7);
    let t = Tree::one_zone(&format!("[serve]\nlisten = [\"{ip}\"]\n"), "");
    let addr: SocketAddr = format!("{ip}:53").parse().unwrap();
    let _run = run_until_answering(&t, addr, "example.test");
}

#[test]
fn the_hook_refuses_what_its_builder_would_not_take_and_writes_nothing() {
    let t = Tree::one_zone("", "");
    let mut text = std::fs::read_to_string(t.path("zonedrop.toml")).unwrap();
    text = text.replacen(
        "path = \"drop\"\n",
        "path = \"drop\"\nnames = [\"example.test\"]\n",
        1,
    );
    t.write("zonedrop.toml", &text);
    let r = t.run(&["add", "_acme-challenge.example.org", V1]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "zonedrop: `_acme-challenge.example.org.` lies in no zone the config (zonedrop.toml) manages; nothing was written\n"
        )
    );
    let r = t.run(&[
        "hook",
        "lego",
        "present",
        "_acme-challenge.www.example.test.",
        V1,
        "60",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "`_acme-challenge.www.example.test.` is outside the names the drop directory"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(t.all_names("drop"), Vec::<String>::new());
    // Without a config the hook side takes any name (the builder judges).
    let bare = Tree::new();
    bare.mkdir("drop");
    let r = bare.run(&["--drop", "drop", "add", "_acme-challenge.example.org", V1]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
}

#[test]
fn a_hook_that_cannot_wait_writes_nothing_and_one_that_waited_in_vain_exits_1() {
    let t = Tree::one_zone("", "");
    // Nothing published yet, no server given: nowhere to look.
    let r = t.run(&["add", "--wait", "1s", "_acme-challenge.example.test", V1]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.starts_with("zonedrop: --wait: "), "{}", r.stderr);
    assert!(
        r.stderr.ends_with("; nothing was written\n"),
        "{}",
        r.stderr
    );
    assert_eq!(t.all_names("drop"), Vec::<String>::new());
    // A server that never answers: the challenge is written, the wait
    // fails, exit 1.
    let r = t.run(&[
        "add",
        "--wait",
        "1s",
        "--server",
        "127.0.0.9:5399",
        "_acme-challenge.example.test",
        V1,
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(" is not visible after 1s on 127.0.0.9:5399 ("),
        "{}",
        r.stderr
    );
    let dir = t.path("drop").canonicalize().unwrap();
    assert!(
        r.stderr.ends_with(&format!(
            "; the challenge stays written in {}\n",
            dir.display()
        )),
        "{}",
        r.stderr
    );
    assert_eq!(t.drop_files("drop").len(), 1);
}

#[test]
fn wait_asks_again_until_an_ns_name_resolves_through_the_glue_of_a_managed_zone() {
    let ip = format!("127.53.{}.{}", std::process::id() % 250 + 1, 9);
    let t = Tree::one_zone(&format!("[serve]\nlisten = [\"{ip}\"]\n"), "");
    // example.test's only NS lies in example.net, which is not built yet.
    t.write("zones/primary/example.test", "@ IN NS ns1.example.net.\n");
    let text = std::fs::read_to_string(t.path("zonedrop.toml")).unwrap();
    t.write(
        "zonedrop.toml",
        &format!("{text}[[zone]]\nname = \"example.net\"\n"),
    );
    t.write(
        "zones/soa/example.net",
        "$TTL 3600\n@ IN SOA ns1.example.net. hostmaster.example.net. 1 7200 3600 1209600 300\n",
    );
    let addr: SocketAddr = format!("{ip}:53").parse().unwrap();
    let run = run_until_answering(&t, addr, "example.test");
    assert_eq!(t.run(&["add", "_acme-challenge.example.test", V1]).code, 0);
    let started = Instant::now();
    let mut wait = t
        .cmd(&[
            "wait",
            "--timeout",
            "20s",
            "--interval",
            "100ms",
            "_acme-challenge.example.test",
            V1,
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        wait.try_wait().unwrap().is_none(),
        "wait gave up on a name that does not resolve yet"
    );
    // example.net is published with ns1's address: the next round finds it.
    t.write(
        "zones/primary/example.net",
        &format!("@ IN NS ns1\nns1 IN A {ip}\n"),
    );
    let out = wait.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        run.log()
    );
    assert!(started.elapsed() > Duration::from_millis(1500));
}
