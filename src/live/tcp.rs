//! The responder's TCP path: an accept loop of our own with the limits
//! hickory-server's `Server` lacks, and the DNS-over-TCP framing (RFC 1035
//! §4.2.2, RFC 7766). Every query goes to the same request handler as UDP
//! (`serve.rs`'s `Front`), so answers, zone transfers and NOTIFY are decided
//! in one place.
//!
//! What bounds a peer:
//! - `tcp_max` connections open at once in total, and `tcp_max_per_source`
//!   from one IPv4 address or IPv6 /64 (a host holds a whole /64). A
//!   connection over either cap is closed at once, so a flood from one host
//!   leaves room for others.
//! - Each connection is closed after `tcp_idle` without a query (10 s, as
//!   before), and reads no query after `tcp_lifetime` or `tcp_max_queries`:
//!   a client asking every few seconds cannot hold its slot forever. An
//!   answer being written (a long AXFR) is finished first; each write must
//!   make progress within `tcp_idle`, or the connection is dropped.
//! - `accept` errors (EMFILE when descriptors run out, ENOBUFS, ...) back
//!   off from 5 ms to 1 s instead of retrying at once: hickory's loop spun a
//!   core there.
//! - Descriptors: the soft `RLIMIT_NOFILE` is raised to the hard limit at
//!   start, and `tcp_max` is clamped so that [`FD_RESERVE`] descriptors stay
//!   free for everything else in the process: the builder of `zonedrop run`
//!   (lock, sources, drop directory, state, temporary files), the watcher,
//!   NOTIFY and `on_change`.
//!
//! Queries on one connection are answered one after the other, as
//! hickory-server did. What was refused or cut short is counted in the
//! responder's [`Tally`], never logged per connection. Nothing from the
//! network may panic here.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::op::{Header, MessageType, Metadata};
use hickory_server::proto::rr::Record;
use hickory_server::proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, Instant};

use crate::base::config::Serve;
use crate::live::tally::{Event, Tally};

/// Descriptors kept free for the rest of the process whatever `tcp_max`
/// says: the builder holds a few dozen at its busiest (a lock, a drop
/// directory, a source file per core, state and temporary files, an
/// `on_change` child's pipes, NOTIFY sockets); the margin is for what the
/// libraries open.
pub(crate) const FD_RESERVE: u64 = 256;

/// The first and the longest pause after a failed `accept`.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The TCP limits in force.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) max: usize,
    pub(crate) per_source: usize,
    pub(crate) idle: Duration,
    pub(crate) lifetime: Duration,
    pub(crate) queries: usize,
}

impl Limits {
    /// The configured limits, `tcp_max` clamped to what `nofile` (the soft
    /// descriptor limit) leaves once `open` sockets and [`FD_RESERVE`] are
    /// counted; the warning to log when it was.
    pub(crate) fn new(serve: &Serve, nofile: u64, open: usize) -> (Limits, Option<String>) {
        let room = nofile.saturating_sub(FD_RESERVE + open as u64).max(1);
        let mut max = serve.tcp_max;
        let mut warning = None;
        if max as u64 > room {
            max = room as usize;
            warning = Some(format!(
                "[serve] tcp_max = {} is more than the descriptor limit allows \
                 (RLIMIT_NOFILE {nofile}, {FD_RESERVE} kept for the builder): \
                 at most {max} TCP connections; raise the hard limit \
                 (`ulimit -Hn`, LimitNOFILE= in systemd) for more",
                serve.tcp_max
            ));
        }
        let limits = Limits {
            max,
            per_source: serve.tcp_max_per_source.min(max),
            idle: serve.tcp_idle,
            lifetime: serve.tcp_lifetime,
            queries: serve.tcp_max_queries,
        };
        (limits, warning)
    }
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit; the soft limit in
/// force afterwards (the old one when it could not be raised).
pub(crate) fn raise_nofile() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit write and read the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            } else {
                log::debug!(
                    "cannot raise RLIMIT_NOFILE to {}: {}",
                    limit.rlim_max,
                    std::io::Error::last_os_error()
                );
            }
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is i64 on FreeBSD
    let soft = limit.rlim_cur as u64;
    soft
}

/// Who holds how many connections.
struct Conns {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// The connection count of one responder, shared by its listeners.
pub(crate) struct Admission {
    limits: Limits,
    conns: Mutex<Conns>,
}

/// One admitted connection; dropping it gives the slot back.
struct Permit {
    admission: Arc<Admission>,
    source: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut conns = self.admission.lock();
        conns.total = conns.total.saturating_sub(1);
        if let Some(n) = conns.by_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                conns.by_source.remove(&self.source);
            }
        }
    }
}

/// The key per-source limits count by: the IPv4 address, or the IPv6 /64.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & (u128::MAX << 64)).into()),
        },
        v4 => v4,
    }
}

impl Admission {
    pub(crate) fn new(limits: Limits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            conns: Mutex::new(Conns {
                total: 0,
                by_source: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Conns> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Event> {
        let source = source_key(ip);
        let mut conns = self.lock();
        if conns.total >= self.limits.max {
            return Err(Event::TcpFull);
        }
        let held = conns.by_source.entry(source).or_insert(0);
        if *held >= self.limits.per_source {
            return Err(Event::TcpPerSource);
        }
        *held += 1;
        conns.total += 1;
        Ok(Permit {
            admission: self.clone(),
            source,
        })
    }
}

/// Accept connections on `listener` and answer them with `handler` until
/// the task is aborted (which ends its connections too).
pub(crate) async fn accept_loop<H: RequestHandler>(
    listener: TcpListener,
    handler: Arc<H>,
    admission: Arc<Admission>,
    tally: Arc<Tally>,
) {
    crate::live::tally::quiet_packet_panics();
    let mut connections = tokio::task::JoinSet::new();
    let mut backoff = BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // Reap finished connections as they end; one that panicked
            // was a bug in the DNS library, reached by a peer's bytes.
            Some(ended) = connections.join_next(), if !connections.is_empty() => {
                if ended.is_err_and(|e| e.is_panic()) {
                    let message = crate::live::tally::last_panic();
                    tally.note(Event::Panic, || {
                        format!("a TCP query made the responder panic ({message}); its connection is closed")
                    });
                }
                continue;
            }
        };
        let (stream, src) = match accepted {
            Ok(accepted) => {
                backoff = BACKOFF_MIN;
                accepted
            }
            Err(e) => {
                // A peer that reset before we accepted costs nothing; the
                // rest (descriptors, buffers, memory) needs time to pass.
                if !matches!(
                    e.kind(),
                    ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
                ) {
                    tally.note(Event::AcceptError, || {
                        format!(
                            "cannot accept a TCP connection: {e}; pausing accepts, up to {}s each",
                            BACKOFF_MAX.as_secs()
                        )
                    });
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                continue;
            }
        };
        let permit = match admission.admit(src.ip()) {
            Ok(permit) => permit,
            Err(event) => {
                let limits = &admission.limits;
                tally.note(event, || match event {
                    Event::TcpFull => format!(
                        "TCP connection from {} refused: {} are open ([serve] tcp_max)",
                        src.ip(),
                        limits.max
                    ),
                    _ => format!(
                        "TCP connection from {} refused: it has {} open ([serve] tcp_max_per_source)",
                        src.ip(),
                        limits.per_source
                    ),
                });
                drop(stream);
                continue;
            }
        };
        let (handler, tally, limits) = (handler.clone(), tally.clone(), admission.limits.clone());
        connections.spawn(crate::live::tally::Quiet(Box::pin(async move {
            connection(stream, src, handler.as_ref(), &limits, &tally).await;
            drop(permit);
        })));
    }
}

/// Why a connection stopped reading queries.
enum End {
    /// The peer closed, reset, sent garbage framing or went idle.
    Peer,
    Lifetime,
    Queries,
    /// An answer could not be written: the peer is gone.
    Write,
    /// The peer read no answer for the idle timeout.
    Stalled,
}

async fn connection<H: RequestHandler>(
    stream: TcpStream,
    src: SocketAddr,
    handler: &H,
    limits: &Limits,
    tally: &Tally,
) {
    // Answers are written whole, one per write: no reason to wait for more.
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let reply = Reply {
        writer: Arc::new(tokio::sync::Mutex::new(writer)),
        timeout: limits.idle,
        failed: Arc::new(AtomicU8::new(WRITE_OK)),
    };
    let end_of_life = Instant::now() + limits.lifetime;
    let mut answered = 0;
    let end = loop {
        if answered >= limits.queries {
            break End::Queries;
        }
        let now = Instant::now();
        if now >= end_of_life {
            break End::Lifetime;
        }
        // RFC 7766 §6.2.3: the two-octet length, then the message. The
        // wait for the next query ends at the idle timeout or the end of
        // the connection's life, whichever comes first.
        let (wait, at_end) = if end_of_life - now < limits.idle {
            (end_of_life - now, End::Lifetime)
        } else {
            (limits.idle, End::Peer)
        };
        let len = match timeout(wait, reader.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            Ok(Err(_)) => break End::Peer,
            Err(_) => break at_end,
        };
        let mut message = vec![0u8; len];
        match timeout(limits.idle, reader.read_exact(&mut message)).await {
            Ok(Ok(_)) => {}
            _ => break End::Peer,
        }
        answered += 1;
        answer(message, src, handler, reply.clone(), tally).await;
        match reply.failed.load(Ordering::Acquire) {
            WRITE_OK => {}
            WRITE_STALLED => break End::Stalled,
            _ => break End::Write,
        }
    };
    match end {
        End::Lifetime => tally.note(Event::TcpLifetime, || {
            format!(
                "TCP connection from {} closed after {} ([serve] tcp_lifetime)",
                src.ip(),
                humantime::format_duration(limits.lifetime)
            )
        }),
        End::Queries => tally.note(Event::TcpQueries, || {
            format!(
                "TCP connection from {} closed after {} queries ([serve] tcp_max_queries)",
                src.ip(),
                limits.queries
            )
        }),
        End::Stalled => tally.note(Event::TcpStalled, || {
            format!(
                "TCP connection from {} dropped: it read no answer for {} ([serve] tcp_idle)",
                src.ip(),
                humantime::format_duration(limits.idle)
            )
        }),
        End::Peer | End::Write => {}
    }
    // Close our side cleanly so the peer reads the end of the stream.
    let _ = reply.writer.lock().await.shutdown().await;
}

/// Answer one message read from a connection.
async fn answer<H: RequestHandler>(
    message: Vec<u8>,
    src: SocketAddr,
    handler: &H,
    mut reply: Reply,
    tally: &Tally,
) {
    let request = match Request::from_bytes(message.clone(), src, Protocol::Tcp) {
        Ok(request) => request,
        Err(_) => {
            tally.note(Event::Malformed, || {
                format!(
                    "malformed query from {} over TCP answered FORMERR",
                    src.ip()
                )
            });
            if let Some(formerr) = crate::live::udp::format_error(&message) {
                let _ = reply.write(&formerr).await;
            }
            return;
        }
    };
    if request.metadata.message_type == MessageType::Response {
        tally.note(Event::Malformed, || {
            format!(
                "a response (not a query) from {} over TCP ignored",
                src.ip()
            )
        });
        return;
    }
    handler
        .handle_request::<Reply, TokioTime>(&request, reply)
        .await;
}

/// The response handler of one connection: each answer is encoded and
/// written at once, framed with its length, so an AXFR of many messages
/// streams out as the handler makes them.
#[derive(Clone)]
struct Reply {
    writer: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
    timeout: Duration,
    /// [`WRITE_OK`], [`WRITE_FAILED`] or [`WRITE_STALLED`].
    failed: Arc<AtomicU8>,
}

const WRITE_OK: u8 = 0;
const WRITE_FAILED: u8 = 1;
const WRITE_STALLED: u8 = 2;

impl Reply {
    async fn write(&mut self, message: &[u8]) -> Result<(), NetError> {
        let len = u16::try_from(message.len())
            .map_err(|_| NetError::from("an answer over 65,535 octets"))?;
        let mut framed = Vec::with_capacity(message.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(message);
        let mut writer = self.writer.lock().await;
        match timeout(self.timeout, writer.write_all(&framed)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.failed.store(WRITE_FAILED, Ordering::Release);
                Err(NetError::from(e))
            }
            Err(_) => {
                self.failed.store(WRITE_STALLED, Ordering::Release);
                Err(NetError::from("the peer does not read its answers"))
            }
        }
    }
}

#[async_trait::async_trait]
impl ResponseHandler for Reply {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let id = response.metadata().id;
        let op_code = response.metadata().op_code;
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(u16::MAX);
        let info = match response.destructive_emit(&mut encoder) {
            Ok(info) => info,
            Err(e) => {
                log::warn!("cannot encode an answer: {e}");
                let mut metadata = Metadata::new(id, MessageType::Response, op_code);
                metadata.response_code = ResponseCode::ServFail;
                let header = Header {
                    metadata,
                    counts: Default::default(),
                };
                bytes.clear();
                header.emit(&mut BinEncoder::new(&mut bytes))?;
                ResponseInfo::from(header)
            }
        };
        self.write(&bytes).await?;
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_source: usize) -> Limits {
        Limits {
            max,
            per_source,
            idle: Duration::from_secs(1),
            lifetime: Duration::from_secs(1),
            queries: 1,
        }
    }

    #[test]
    fn admission_counts_in_total_and_per_source_and_gives_back() {
        let a = Admission::new(limits(3, 2));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let p1 = a.admit(ip("192.0.2.1")).unwrap();
        let _p2 = a.admit(ip("::ffff:192.0.2.1")).unwrap();
        assert_eq!(a.admit(ip("192.0.2.1")).err(), Some(Event::TcpPerSource));
        let _p3 = a.admit(ip("2001:db8::1")).unwrap();
        assert_eq!(a.admit(ip("192.0.2.9")).err(), Some(Event::TcpFull));
        drop(p1);
        let _p4 = a.admit(ip("192.0.2.1")).unwrap();
        // One /64 is one source.
        let b = Admission::new(limits(10, 1));
        let _q = b.admit(ip("2001:db8::1")).unwrap();
        assert_eq!(
            b.admit(ip("2001:db8::ffff:2")).err(),
            Some(Event::TcpPerSource)
        );
        let _r = b.admit(ip("2001:db8:0:1::1")).unwrap();
        assert_eq!(b.lock().total, 2);
    }

    #[test]
    fn tcp_max_leaves_the_reserve() {
        let serve = Serve::default();
        let (l, warning) = Limits::new(&serve, 65_536, 4);
        assert_eq!((l.max, l.per_source), (256, 16));
        assert!(warning.is_none());
        let (l, warning) = Limits::new(&serve, 400, 4);
        assert_eq!(l.max, 140);
        let warning = warning.unwrap();
        assert!(
            warning.starts_with("[serve] tcp_max = 256 is more than the descriptor limit allows"),
            "{warning}"
        );
        let (l, _) = Limits::new(&serve, 100, 4);
        assert_eq!((l.max, l.per_source), (1, 1));
    }
}
