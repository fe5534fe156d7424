//! What a network peer can make the responder do, bounded: TCP connection
//! floods (caps in total and per source, lifetime, query cap, descriptors
//! left for the builder), floods of refused and malformed packets (a few
//! log lines with counts, never one per packet), and response rate limiting
//! per source prefix. Every server runs as the real binary on 127.0.0.1 and
//! a port picked here; peers use other loopback addresses (all of 127/8 is
//! local on Linux) to be other sources.

use crate::support::*;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ZONE: &str = "example.test";

/// A tree with one zone, a drop directory and `[serve]` on a free port,
/// plus `serve_extra` lines in `[serve]`.
fn tree(serve_extra: &str) -> (Tree, SocketAddr) {
    let t = Tree::new();
    let port = free_port();
    t.write(
        "zonedrop.toml",
        &format!(
            "[[drop]]\npath = \"drop\"\n[[zone]]\nname = \"{ZONE}\"\n\
             [serve]\nlisten = [\"127.0.0.1:{port}\"]\n{serve_extra}"
        ),
    );
    t.write(
        "zones/soa/example.test",
        "$TTL 3600\n@ IN SOA ns1.example.test. hostmaster.example.test. 1 7200 3600 1209600 300\n",
    );
    t.write(
        "zones/primary/example.test",
        "@ IN NS ns1\nns1 IN A 127.0.0.1\n",
    );
    t.mkdir("drop");
    (t, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Start `zonedrop <verb>` in `t` with RLIMIT_NOFILE set to `nofile` (soft,
/// hard; None: as inherited), and wait until it answers the SOA over UDP.
fn start(t: &Tree, verb: &str, nofile: Option<(u64, u64)>, server: SocketAddr) -> Daemon {
    if verb == "serve" {
        let r = t.run(&["build", "--quiet"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let mut cmd = t.cmd(&[verb]);
    cmd.env("RUST_LOG", "warn,zonedrop=info");
    if let Some((soft, hard)) = nofile {
        // SAFETY: only setrlimit, async-signal-safe, between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: soft,
                    rlim_max: hard,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let name = if verb == "run" {
        "zonedrop run"
    } else {
        "zonedrop serve"
    };
    let mut daemon = Daemon::start(name, &mut cmd, t.path(&format!("{verb}.log")));
    let until = Instant::now() + Duration::from_secs(10);
    // Its own answers: it says it listens and still runs.
    while !daemon.log().contains("answering on ") || query(server, &soa_query(1)).is_none() {
        if let Ok(Some(status)) = daemon.child.try_wait() {
            panic!("{name} ended ({status}); its log:\n{}", daemon.log());
        }
        assert!(
            Instant::now() < until,
            "{name} does not answer; its log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon
}

/// A query for the zone's SOA with ID `id`, RD clear.
fn soa_query(id: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(b"\x07example\x04test\x00\x00\x06\x00\x01");
    q
}

/// Ask over UDP once; the answer, if one came within half a second.
fn query(server: SocketAddr, q: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    socket.send_to(q, server).ok()?;
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

/// Raise this process's soft descriptor limit to at least `want` (the
/// hard limit permitting): the floods below hold a thousand sockets.
fn raise_own_nofile(want: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < want {
            assert!(
                limit.rlim_max >= want,
                "this test needs {want} descriptors; the hard limit is {}",
                limit.rlim_max
            );
            limit.rlim_cur = want;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
}

/// One TCP query and its answer on `stream`; None if the server closed
/// the connection or did not answer within `wait`.
fn tcp_ask(stream: &mut TcpStream, id: u16, wait: Duration) -> Option<Vec<u8>> {
    let q = soa_query(id);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    stream.write_all(&framed).ok()?;
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut answer = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut answer).ok()?;
    Some(answer)
}

/// Whether the server has closed `stream` (end of stream within `wait`).
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Ok(0)) || matches!(stream.read(&mut byte), Ok(0))
}

/// A TCP connection to `server` from the loopback address `from`.
fn connect_from(from: Ipv4Addr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(from, 0)).into())?;
    socket.connect_timeout(&server.into(), Duration::from_secs(2))?;
    Ok(socket.into())
}

/// The log lines a test looks at: what the responder said after start.
fn lines_after_start(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| !l.contains("answering on ") && !l.contains("stopping"))
        .collect()
}

/// About 1,100 kept-alive TCP connections (one query every 3 s on each)
/// from this host, half from one address and half from 50 others, while a
/// challenge is added under `zonedrop run`, started with the usual soft
/// limit of 1,024 descriptors.
/// Before the limits, the connections took every descriptor: TCP answers
/// stopped, hickory's accept loop spun a core on EMFILE, and the builder
/// failed with "Too many open files", so the challenge waited for the
/// flood to end.
#[test]
fn a_tcp_flood_leaves_the_builder_and_udp_working() {
    let (t, server) = tree("");
    raise_own_nofile(4096);
    let run = start(&t, "run", Some((1024, hard_nofile())), server);
    let pid = run.child.id();

    const CLIENTS: usize = 1100;
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    for n in 0..CLIENTS {
        let from = match n % 2 {
            0 => Ipv4Addr::new(127, 0, 0, 10),
            _ => Ipv4Addr::new(127, 0, 0, 11 + (n % 100 / 2) as u8),
        };
        let (stop, answered, refused) = (stop.clone(), answered.clone(), refused.clone());
        runtime.spawn(flood_client(
            from, server, n as u16, stop, answered, refused,
        ));
    }
    std::thread::sleep(Duration::from_secs(3));
    let cpu_before = cpu_seconds(pid);
    let flood_started = Instant::now();

    // A challenge added during the flood is published and answered over
    // UDP within a second.
    let owner = format!("_acme-challenge.{ZONE}.");
    let added = Instant::now();
    let r = t.run(&["add", &owner, V1]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let want = Some((0, vec![V1.to_string()]));
    while query_txt(server, &owner) != want {
        assert!(
            added.elapsed() < Duration::from_secs(1),
            "the challenge is not answered 1 s after `zonedrop add` under the flood; log:\n{}",
            run.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "netlimits: challenge answered {} ms after add started, under {} connections",
        added.elapsed().as_millis(),
        CLIENTS
    );
    std::thread::sleep(Duration::from_secs(3));
    let cpu = (cpu_seconds(pid) - cpu_before) / flood_started.elapsed().as_secs_f64();
    assert!(run.child.id() == pid && std::fs::metadata(format!("/proc/{pid}")).is_ok());
    let (got, shut) = (
        answered.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );

    // The flood ends: TCP answers resume, from the very address that
    // flooded.
    stop.store(true, Ordering::Relaxed);
    runtime.shutdown_timeout(Duration::from_secs(5));
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = connect_from(Ipv4Addr::new(127, 0, 0, 10), server)
            .ok()
            .and_then(|mut s| tcp_ask(&mut s, 0x4242, Duration::from_secs(1)));
        if answer.is_some_and(|a| a[..2] == [0x42, 0x42] && a[3] & 0x0f == 0) {
            break;
        }
        assert!(
            Instant::now() < until,
            "TCP does not answer 5 s after the flood; log:\n{}",
            run.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let log = run.log();
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
    // Served some connections throughout, refused the rest at once, and
    // said so in a bounded number of lines.
    assert!(got > 0 && shut > 0, "{got} answers, {shut} refusals");
    assert!(
        log.contains(
            "TCP connection from 127.0.0.10 refused: it has 16 open ([serve] tcp_max_per_source)"
        ),
        "{log}"
    );
    assert!(
        log.contains(" refused: 256 are open ([serve] tcp_max)"),
        "{log}"
    );
    let said = log.lines().filter(|l| l.contains("TCP connection")).count();
    assert!(said <= 2, "{said} lines:\n{log}");
    // No spinning on accept: well under a core while the flood lasted.
    assert!(cpu < 0.5, "zonedrop run used {:.0}% of a core", cpu * 100.0);
    eprintln!(
        "netlimits: {got} TCP answers and {shut} refused connections in the flood; \
         zonedrop run used {:.0}% of a core",
        cpu * 100.0
    );
}

/// The hard descriptor limit of this process (the child keeps it).
fn hard_nofile() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit on a local struct.
    unsafe { assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0) };
    limit.rlim_max
}

/// One flooding client: keeps a connection to `server` from `from`, asks
/// every 3 s, and reconnects a second after the server closes it.
async fn flood_client(
    from: Ipv4Addr,
    server: SocketAddr,
    n: u16,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let q = soa_query(n);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    // Spread the connects and the asks over the 3 s.
    tokio::time::sleep(Duration::from_millis(u64::from(n) * 3)).await;
    while !stop.load(Ordering::Relaxed) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::V4(SocketAddrV4::new(from, 0)))
            .unwrap();
        let Ok(mut stream) = socket.connect(server).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        while !stop.load(Ordering::Relaxed) {
            if stream.write_all(&framed).await.is_err() {
                break;
            }
            let mut len = [0u8; 2];
            let read = tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut len));
            match read.await {
                Ok(Ok(_)) => {
                    let mut answer = vec![0u8; u16::from_be_bytes(len) as usize];
                    if stream.read_exact(&mut answer).await.is_err() {
                        break;
                    }
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    refused.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Each TCP connection is bounded: it is closed after `tcp_max_queries`
/// queries, at `tcp_lifetime` even when it keeps asking, and after
/// `tcp_idle` without a query; a source holds at most `tcp_max_per_source`
/// connections while another source still gets in. The soft descriptor
/// limit is raised to the hard one, and a `tcp_max` that would eat the
/// builder's reserve is clamped with a warning. Before, hickory's loop
/// only had the 10 s idle timeout: a client asking every few seconds kept
/// its connection, and its descriptor, for ever.
#[test]
fn tcp_connections_end_at_their_limits() {
    let (t, server) = tree(
        "tcp_max = 1000\ntcp_max_per_source = 2\ntcp_idle = \"1s\"\n\
         tcp_lifetime = \"2s\"\ntcp_max_queries = 5\n",
    );
    let serve = start(&t, "serve", Some((300, 600)), server);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", serve.child.id())).unwrap();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        nofile.split_whitespace().collect::<Vec<_>>()[3..5],
        ["600", "600"],
        "the soft limit was not raised: {nofile}"
    );
    let wait = Duration::from_secs(2);

    // The query cap: five answers, then the end of the stream.
    let mut a = connect_from(Ipv4Addr::new(127, 0, 0, 20), server).unwrap();
    for id in 1..=5 {
        let answer = tcp_ask(&mut a, id, wait);
        assert!(
            answer.is_some_and(|x| x[..2] == id.to_be_bytes()),
            "query {id}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(closed_within(&mut a, wait), "open after 5 queries");

    // The lifetime: asking every 0.6 s (inside the idle timeout, and four
    // queries, below the cap), the connection still ends 2 s after it
    // began.
    let began = Instant::now();
    let mut b = connect_from(Ipv4Addr::new(127, 0, 0, 21), server).unwrap();
    let mut answers = 0;
    while tcp_ask(&mut b, 7, wait).is_some() {
        answers += 1;
        assert!(began.elapsed() < Duration::from_secs(4), "still open");
        std::thread::sleep(Duration::from_millis(600));
    }
    let lived = began.elapsed();
    assert!(
        (3..=4).contains(&answers) && lived >= Duration::from_millis(1900),
        "{answers} answers in {lived:?}"
    );

    // Idle: a connection that asks nothing is closed after a second.
    let began = Instant::now();
    let mut c = connect_from(Ipv4Addr::new(127, 0, 0, 22), server).unwrap();
    assert!(closed_within(&mut c, Duration::from_secs(3)));
    let idle = began.elapsed();
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_millis(2500),
        "{idle:?}"
    );

    // Per source: the third connection from one address is closed at
    // once, unanswered; another address still gets in.
    let from = Ipv4Addr::new(127, 0, 0, 23);
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| connect_from(from, server).unwrap())
        .collect();
    for (id, s) in held.iter_mut().enumerate() {
        assert!(tcp_ask(s, id as u16, wait).is_some());
    }
    let mut third = connect_from(from, server).unwrap();
    assert!(tcp_ask(&mut third, 3, wait).is_none(), "a third connection");
    let mut other = connect_from(Ipv4Addr::new(127, 0, 0, 24), server).unwrap();
    assert!(tcp_ask(&mut other, 4, wait).is_some(), "another source");
    drop(held);

    let log = serve.log();
    for line in [
        "[serve] tcp_max = 1000 is more than the descriptor limit allows (RLIMIT_NOFILE 600, 256 kept for the builder): at most ",
        "TCP connection from 127.0.0.20 closed after 5 queries ([serve] tcp_max_queries)",
        "TCP connection from 127.0.0.21 closed after 2s ([serve] tcp_lifetime)",
        "TCP connection from 127.0.0.23 refused: it has 2 open ([serve] tcp_max_per_source)",
    ] {
        assert!(log.contains(line), "no `{line}` in:\n{log}");
    }
    assert!(
        !log.contains("127.0.0.22"),
        "an idle close is no news:\n{log}"
    );
}

/// A flood of spoofable UDP packets that the responder refuses (IXFR from
/// outside `allow_axfr`, AXFR over UDP) or cannot read (garbage with and
/// without a header) leaves one line per kind and a summary per
/// `log_interval`, whose counts add up to exactly what was sent. Before,
/// each refused transfer logged a line: 326,525 packets wrote 207,278
/// lines in 5 s.
#[test]
fn a_flood_of_refused_and_malformed_packets_logs_a_few_lines_with_counts() {
    let (t, server) = tree("log_interval = \"2s\"\n");
    let serve = start(&t, "serve", None, server);
    let log_file = serve.log.clone();
    let ixfr = |id: u16| {
        let mut q = soa_query(id);
        let at = q.len() - 4;
        q[at..at + 2].copy_from_slice(&251u16.to_be_bytes());
        q
    };
    let axfr = |id: u16| {
        let mut q = soa_query(id);
        let at = q.len() - 4;
        q[at..at + 2].copy_from_slice(&252u16.to_be_bytes());
        q
    };
    let garbage = |id: u16| {
        let mut q = soa_query(id);
        q.truncate(18); // the question's name cut off
        q
    };
    let until = Instant::now() + Duration::from_secs(3);
    let sent: Vec<[usize; 3]> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(move || {
                    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                    socket.connect(server).unwrap();
                    socket
                        .set_read_timeout(Some(Duration::from_secs(2)))
                        .unwrap();
                    let mut buf = [0u8; 512];
                    // transfers refused, AXFR over UDP, malformed
                    let mut sent = [0usize; 3];
                    let mut i = 0u16;
                    while Instant::now() < until {
                        i = i.wrapping_add(1);
                        let (kind, packet, rcode) = match i % 10 {
                            0..=3 => (0, ixfr(i), 5),
                            4..=6 => (1, axfr(i), 4),
                            7 | 8 => (2, garbage(i), 1),
                            _ => {
                                // No header: no answer, only counted.
                                socket.send(&[0x12, 0x34, 0x56]).unwrap();
                                sent[2] += 1;
                                continue;
                            }
                        };
                        socket.send(&packet).unwrap();
                        let n = socket.recv(&mut buf).expect("an answer");
                        assert!(n >= 12 && buf[..2] == i.to_be_bytes());
                        assert_eq!(buf[3] & 0x0f, rcode, "kind {kind}");
                        sent[kind] += 1;
                    }
                    sent
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let sent: Vec<usize> = (0..3).map(|k| sent.iter().map(|s| s[k]).sum()).collect();
    // SIGTERM: the responder sums up what it counted before it stops.
    drop(serve);
    let log = std::fs::read_to_string(log_file).unwrap();
    let said = lines_after_start(&log);
    assert!(
        said.len() <= 8,
        "{} lines for {sent:?} packets:\n{log}",
        said.len()
    );

    // The line of its own each kind gets (either one for malformed
    // packets, whichever came first), and how its summary counts it.
    let kinds: [(&[&str], &str); 3] = [
        (
            &["zone transfer refused to 127.0.0.1 (not in [serve] allow_axfr)"],
            "zone transfers refused",
        ),
        (
            &["AXFR over UDP from 127.0.0.1 answered NOTIMP"],
            "AXFR over UDP answered NOTIMP",
        ),
        (
            &[
                "malformed query from 127.0.0.1 answered FORMERR",
                "a datagram from 127.0.0.1 that is no DNS query ignored (3 octets)",
            ],
            "malformed packets",
        ),
    ];
    for ((first, noun), sent) in kinds.iter().zip(&sent) {
        let shown = said
            .iter()
            .filter(|l| {
                first.iter().any(|f| l.contains(f)) && l.contains("more like it are counted")
            })
            .count();
        let counted: usize = said
            .iter()
            .filter_map(|l| l.split_once("not logged one by one: "))
            .flat_map(|(_, counts)| counts.split(", "))
            .filter_map(|c| c.strip_suffix(noun))
            .map(|n| n.trim().parse::<usize>().unwrap())
            .sum();
        assert!(shown >= 1, "no line for {noun}:\n{log}");
        assert_eq!(shown + counted, *sent, "{noun}:\n{log}");
    }
    eprintln!("netlimits: {sent:?} packets, {} log lines", said.len());
}

/// With response rate limiting on (here on loopback, where it is off
/// unless configured), a client asking as fast as it can gets at most
/// rate × time + burst whole answers, cached or not; of the rest every
/// second one is truncated (TC=1, no records) and the others dropped.
/// A client in another /24 asking at half the rate gets every answer.
#[test]
fn response_rate_limiting_holds_a_fast_prefix_and_spares_the_others() {
    let (t, server) = tree("rrl_rate = 10\nrrl_burst = 5\nlog_interval = \"1h\"\n");
    let serve = start(&t, "serve", None, server);
    // The start's own probes used the burst: let the bucket fill again.
    std::thread::sleep(Duration::from_secs(1));

    let fast = UdpSocket::bind("127.0.0.1:0").unwrap();
    fast.connect(server).unwrap();
    fast.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let slow = UdpSocket::bind("127.0.1.1:0").unwrap();
    slow.connect(server).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(1))).unwrap();

    const ASKED: u16 = 600;
    let (elapsed, (whole, truncated), slow_whole) = std::thread::scope(|scope| {
        let counter = scope.spawn(|| {
            let (mut whole, mut truncated) = (0usize, 0usize);
            let mut buf = [0u8; 512];
            while let Ok(n) = fast.recv(&mut buf) {
                assert!(n >= 12);
                match (buf[2] & 0x02 != 0, u16::from_be_bytes([buf[6], buf[7]])) {
                    (false, 1) => whole += 1,
                    (true, 0) => truncated += 1,
                    other => panic!("unexpected answer {other:?}"),
                }
            }
            (whole, truncated)
        });
        let other = scope.spawn(|| {
            let mut buf = [0u8; 512];
            (0..10u16)
                .filter(|&id| {
                    slow.send(&soa_query(id)).unwrap();
                    std::thread::sleep(Duration::from_millis(200));
                    slow.recv(&mut buf)
                        .is_ok_and(|n| n > 12 && buf[2] & 0x02 == 0)
                })
                .count()
        });
        let began = Instant::now();
        for id in 0..ASKED {
            fast.send(&soa_query(id)).unwrap();
            std::thread::sleep(Duration::from_micros(3300));
        }
        let elapsed = began.elapsed();
        (elapsed, counter.join().unwrap(), other.join().unwrap())
    });
    // The responder's clock runs a little behind the sender's (the last
    // queries wait in its socket): two answers of slack above.
    let allowed = (10.0 * elapsed.as_secs_f64()).ceil() as usize + 5;
    assert!(
        whole <= allowed + 2 && whole * 5 >= allowed * 4,
        "{whole} whole answers in {elapsed:?}, {allowed} allowed"
    );
    let limited = usize::from(ASKED) - whole;
    assert!(
        truncated.abs_diff(limited / 2) <= 2,
        "{truncated} truncated of {limited} over the limit"
    );
    assert_eq!(slow_whole, 10, "the other /24 was limited too");
    let log = serve.log();
    assert!(
        log.contains(
            "answers to 127.0.0.0/24 dropped over the rate limit \
             ([serve] rrl_rate 10/s, rrl_burst 5, rrl_slip 2)"
        ),
        "{log}"
    );
    assert!(!log.contains("127.0.1.0/24"), "{log}");
    eprintln!(
        "netlimits: {ASKED} asked in {elapsed:?}: {whole} whole, {truncated} truncated, \
         {} dropped",
        limited - truncated
    );
}

/// When `accept` fails (here EMFILE: the responder's descriptor limit is
/// lowered while it runs, so that one more connection takes the last
/// descriptor), the accept loop backs off instead of retrying at once, says
/// so in one line, keeps answering UDP, and takes the waiting connections
/// once a descriptor is free again. hickory's loop retried EMFILE at once
/// and spun a core.
#[test]
fn accept_errors_back_off_instead_of_spinning() {
    let (t, server) = tree("");
    let serve = start(&t, "serve", None, server);
    let pid = serve.child.id();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64;
    let limit = libc::rlimit {
        rlim_cur: open + 1,
        rlim_max: open + 1,
    };
    // SAFETY: prlimit on our own child, with a struct we own.
    let lowered = unsafe {
        libc::prlimit(
            pid as i32,
            libc::RLIMIT_NOFILE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(lowered, 0, "{}", std::io::Error::last_os_error());
    let wait = Duration::from_secs(2);
    let mut first = connect_from(Ipv4Addr::new(127, 0, 0, 30), server).unwrap();
    assert!(
        tcp_ask(&mut first, 1, wait).is_some(),
        "the last descriptor"
    );
    // These wait in the listen queue: accept has no descriptor for them.
    let waiting: Vec<TcpStream> = (0..3)
        .map(|n| connect_from(Ipv4Addr::new(127, 0, 0, 31 + n), server).unwrap())
        .collect();
    let before = cpu_seconds(pid);
    let began = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let cpu = (cpu_seconds(pid) - before) / began.elapsed().as_secs_f64();
    assert!(
        cpu < 0.2,
        "zonedrop serve used {:.0}% of a core",
        cpu * 100.0
    );
    assert!(query(server, &soa_query(9)).is_some(), "UDP stopped");
    // A descriptor comes free: the waiting connections are taken and
    // answered, one at a time (each closed to free the descriptor for the
    // next), within the longest pause.
    drop(first);
    for (n, mut s) in waiting.into_iter().enumerate() {
        let answer = tcp_ask(&mut s, 2 + n as u16, Duration::from_secs(3));
        assert!(answer.is_some(), "waiting connection {n}:\n{}", serve.log());
    }
    let log = serve.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cannot accept a TCP connection"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("Too many open files") && lines[0].contains("pausing accepts"),
        "{log}"
    );
}

/// A peer that asks for a zone transfer and does not read it holds its
/// connection (and the answer in memory) only until a write has made no
/// progress for `tcp_idle`; then the connection is dropped, with a line.
#[test]
fn a_peer_that_reads_no_answer_is_dropped() {
    let (t, server) = tree("allow_axfr = [\"127.0.0.1\"]\ntcp_idle = \"1s\"\n");
    // 7 MB: more than the kernel buffers on both ends (the sender's
    // grows up to net.ipv4.tcp_wmem's 4 MB).
    let strings = format!("\"{}\" ", "x".repeat(250)).repeat(32);
    let records: String = (0..1000)
        .map(|i| format!("big{i} IN TXT {strings}\n"))
        .collect();
    t.write(
        "zones/primary/example.test",
        &format!("@ IN NS ns1\nns1 IN A 127.0.0.1\n{records}"),
    );
    let serve = start(&t, "serve", None, server);
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    let mut q = soa_query(0x7777);
    let at = q.len() - 4;
    q[at..at + 2].copy_from_slice(&252u16.to_be_bytes()); // AXFR
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    stream.write_all(&framed).unwrap();
    let line = "TCP connection from 127.0.0.1 dropped: it read no answer for 1s ([serve] tcp_idle)";
    let until = Instant::now() + Duration::from_secs(5);
    while !serve.log().contains(line) {
        assert!(Instant::now() < until, "no `{line}` in:\n{}", serve.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // What was sent before arrives, then the end.
    let mut rest = Vec::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.len() < 6_000_000, "{} octets came", rest.len());
    let mut other = connect_from(Ipv4Addr::new(127, 0, 0, 50), server).unwrap();
    assert!(tcp_ask(&mut other, 1, Duration::from_secs(2)).is_some());
}
