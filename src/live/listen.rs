//! Where and how the responder listens: the sockets of each listen address,
//! the descriptor budget, and the tasks that run while it serves (the UDP
//! threads, a TCP accept loop per address, the file poll, the log summary).
//!
//! Per address: a TCP listener (bound first, without SO_REUSEPORT, so a
//! second responder on the same address fails instead of sharing the UDP
//! port) and a UDP socket per core sharing the port (SO_REUSEPORT on Linux;
//! on FreeBSD plain SO_REUSEPORT does not spread unicast datagrams, so
//! SO_REUSEPORT_LB). The response rate limit is decided per address
//! (`[serve] rrl_rate`: unset means on unless the address is loopback) and
//! one table serves every socket that limits, so a prefix asking on two
//! addresses gets the rate once.
//!
//! It decides nothing about requests: that is `Front`'s (`serve.rs`).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;

use crate::live::rrl::Rrl;
use crate::live::serve::{Responder, ServeError, POLL};
use crate::live::tcp::{Admission, Limits};
use crate::live::udp::UdpPath;

/// The sockets of every listen address, not yet answering.
struct Sockets {
    udp: Vec<(std::net::UdpSocket, Option<Arc<Rrl>>)>,
    tcp: Vec<tokio::net::TcpListener>,
}

/// Answer on `listen` until `shutdown` completes; see [`Responder::serve`].
pub(crate) async fn serve(
    responder: &Responder,
    listen: &[SocketAddr],
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    if listen.is_empty() {
        return Err(ServeError::NoListen);
    }
    // Before any socket: TCP gets what the limit leaves.
    let nofile = crate::live::tcp::raise_nofile();
    let Sockets { udp, tcp } = bind(responder, listen).await?;
    let (limits, clamped) = Limits::new(responder.settings(), nofile, udp.len() + tcp.len());
    if let Some(warning) = clamped {
        log::warn!("{warning}");
    }
    let admission = Admission::new(limits);
    let front = responder.front();
    let tally = responder.tally();
    let mut tasks: Vec<JoinHandle<()>> = tcp
        .into_iter()
        .map(|listener| {
            tokio::spawn(crate::live::tcp::accept_loop(
                listener,
                front.clone(),
                admission.clone(),
                tally.clone(),
            ))
        })
        .collect();
    let udp = UdpPath::start(
        udp,
        front,
        responder.generation(),
        tokio::runtime::Handle::current(),
        tally.clone(),
    )
    .map_err(|e| ServeError::Server(format!("cannot start the UDP threads: {e}")))?;
    tasks.extend(background(responder));
    shutdown.await;
    // Aborting an accept loop ends its connections too.
    for task in &tasks {
        task.abort();
    }
    let _ = tokio::task::spawn_blocking(move || udp.stop()).await;
    tally.flush();
    Ok(())
}

/// Bind every address, UDP and TCP, and say where the responder answers.
async fn bind(responder: &Responder, listen: &[SocketAddr]) -> Result<Sockets, ServeError> {
    let serve = responder.settings();
    let mut rrl: Option<Arc<Rrl>> = None;
    let mut sockets = Sockets {
        udp: Vec::new(),
        tcp: Vec::new(),
    };
    for &addr in listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| bind_error("TCP", addr, source))?;
        let udp = udp_sockets(addr).map_err(|source| bind_error("UDP", addr, source))?;
        let limit = serve.rrl_rate_on(addr).map(|rate| {
            rrl.get_or_insert_with(|| Arc::new(Rrl::new(serve, rate)))
                .clone()
        });
        log::info!(
            "answering on {addr} (UDP and TCP) for {}; {}",
            match responder.served() {
                z if z.is_empty() => "no zone yet".to_string(),
                z => z.join(" "),
            },
            match &limit {
                Some(rrl) => format!("UDP answers rate-limited ({})", rrl.limit()),
                None if serve.rrl_rate == Some(0) => {
                    "no UDP rate limit ([serve] rrl_rate = 0)".to_string()
                }
                None => "no UDP rate limit on loopback ([serve] rrl_rate)".to_string(),
            }
        );
        sockets
            .udp
            .extend(udp.into_iter().map(|s| (s, limit.clone())));
        sockets.tcp.push(listener);
    }
    Ok(sockets)
}

/// The tasks beside the sockets: the poll of the published files, and the
/// summary of what peers made the responder refuse, every `log_interval`.
fn background(responder: &Responder) -> [JoinHandle<()>; 2] {
    let me = responder.clone();
    let poller = tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let me = me.clone();
            // stat and parse are blocking file I/O
            let _ = tokio::task::spawn_blocking(move || me.poll()).await;
        }
    });
    let tally = responder.tally();
    let summary = tokio::spawn(async move {
        let mut tick = tokio::time::interval(tally.interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is now
        loop {
            tick.tick().await;
            tally.flush();
        }
    });
    [poller, summary]
}

/// One UDP socket per core on `addr`, sharing the port: each is read and
/// answered by a thread of its own ([`UdpPath`]) and the kernel spreads the
/// queries over them.
fn udp_sockets(addr: SocketAddr) -> std::io::Result<Vec<std::net::UdpSocket>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let cores = crate::base::cores();
    // Port 0 would give each socket a port of its own.
    let count = if addr.port() == 0 { 1 } else { cores };
    (0..count)
        .map(|_| {
            let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
            if count > 1 {
                share_port(&socket)?;
            }
            // Room for bursts while a thread is busy (best effort: the
            // kernel caps it at net.core.rmem_max).
            let _ = socket.set_recv_buffer_size(1 << 20);
            socket.bind(&addr.into())?;
            Ok(socket.into())
        })
        .collect()
}

/// Let several sockets bind the port, the kernel spreading datagrams over
/// them by source: SO_REUSEPORT on Linux (since 3.9). On FreeBSD that
/// option only lets the last socket bound receive unicast datagrams;
/// SO_REUSEPORT_LB (FreeBSD 12) is the one that balances.
#[cfg(not(target_os = "freebsd"))]
fn share_port(socket: &socket2::Socket) -> std::io::Result<()> {
    socket.set_reuse_port(true)
}

#[cfg(target_os = "freebsd")]
fn share_port(socket: &socket2::Socket) -> std::io::Result<()> {
    socket.set_reuse_port_lb(true)
}

/// How this platform opens ports below 1024 to a user that is not root.
#[cfg(target_os = "linux")]
const PRIVILEGED_PORT_HINT: &str = " (ports below 1024 need root or the capability: `setcap cap_net_bind_service=+ep $(command -v zonedrop)`, AmbientCapabilities=CAP_NET_BIND_SERVICE in a systemd unit, or listen on a port above 1023)";
#[cfg(target_os = "freebsd")]
const PRIVILEGED_PORT_HINT: &str = " (ports below 1024 need root, or open them: `sysctl net.inet.ip.portrange.reservedhigh=52` for every user, or mac_portacl(4) for this user alone; or listen on a port above 1023)";
#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
const PRIVILEGED_PORT_HINT: &str =
    " (ports below 1024 need root here: run as root, or listen on a port above 1023)";

/// How this platform lists the addresses of its interfaces.
#[cfg(target_os = "linux")]
const ADDRESSES_HINT: &str =
    " (no interface of this host has that address: choose one `ip addr` shows)";
#[cfg(not(target_os = "linux"))]
const ADDRESSES_HINT: &str =
    " (no interface of this host has that address: choose one `ifconfig` shows)";

fn bind_error(proto: &'static str, addr: SocketAddr, source: std::io::Error) -> ServeError {
    let hint = match source.kind() {
        std::io::ErrorKind::PermissionDenied if addr.port() < 1024 => PRIVILEGED_PORT_HINT,
        std::io::ErrorKind::AddrInUse => {
            " (another program already answers there, often a resolver or name server: stop it or choose another address with --listen)"
        }
        std::io::ErrorKind::AddrNotAvailable => ADDRESSES_HINT,
        _ => "",
    };
    ServeError::Bind {
        proto,
        addr,
        source,
        hint,
    }
}
