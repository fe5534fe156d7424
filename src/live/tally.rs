//! Bounded logging of what network peers make the responder refuse, drop or
//! cut short: refused zone transfers, malformed packets, rate-limited
//! answers, refused and closed TCP connections, accept errors.
//!
//! A peer can send such packets as fast as the network carries them, and
//! one log line each would let it fill the disk (326,525 refused IXFRs once
//! wrote 207,278 lines in 5 s). So each kind of event is logged one by one
//! only when it starts: the first event after a quiet
//! `[serve] log_interval` gets a line of its own, with its details (the
//! source address, the error). Every further event is only counted, and one
//! summary line per interval gives the counts of what was not logged one by
//! one. At most one line per kind and one summary per interval, however
//! fast the peer sends.
//!
//! A packet that makes the DNS library panic is such an event too: while a
//! packet is handled ([`quietly`], [`Quiet`]) the panic hook keeps the
//! message for the tally's line instead of printing it (and a backtrace
//! note) for every packet.
//!
//! It owns no decisions: the UDP and TCP paths and the request handler
//! report what they did. Recording an event is an atomic add and a load.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, Once};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// What a network peer made the responder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// An AXFR or IXFR from an address not in `[serve] allow_axfr`.
    TransferRefused,
    /// An AXFR over UDP (answered NOTIMP, RFC 5936 §4.2).
    UdpAxfr,
    /// A packet that is not a DNS query we can read (answered FORMERR
    /// where the header reads, else dropped).
    Malformed,
    /// A UDP answer dropped by the response rate limit.
    RateDropped,
    /// A UDP answer sent truncated (TC=1) by the response rate limit.
    RateSlipped,
    /// A TCP connection closed at once: `tcp_max` connections are open.
    TcpFull,
    /// A TCP connection closed at once: its source has `tcp_max_per_source`.
    TcpPerSource,
    /// A TCP connection closed at `tcp_lifetime`.
    TcpLifetime,
    /// A TCP connection closed after `tcp_max_queries` queries.
    TcpQueries,
    /// A TCP connection dropped: its peer read no answer for `tcp_idle`.
    TcpStalled,
    /// `accept` failed (EMFILE and the like); the loop backs off.
    AcceptError,
    /// A packet made the DNS library panic; it was dropped.
    Panic,
    /// An RFC 2136 update or a signed message refused before its key was
    /// proven (no TSIG, an unknown key, a bad MAC, a time outside the
    /// fudge) or replayed.
    UpdateRefused,
}

const EVENTS: [Event; 13] = [
    Event::TransferRefused,
    Event::UdpAxfr,
    Event::Malformed,
    Event::RateDropped,
    Event::RateSlipped,
    Event::TcpFull,
    Event::TcpPerSource,
    Event::TcpLifetime,
    Event::TcpQueries,
    Event::TcpStalled,
    Event::AcceptError,
    Event::Panic,
    Event::UpdateRefused,
];

impl Event {
    /// How the summary line counts it: "N {noun}".
    fn noun(self) -> &'static str {
        match self {
            Event::TransferRefused => "zone transfers refused",
            Event::UdpAxfr => "AXFR over UDP answered NOTIMP",
            Event::Malformed => "malformed packets",
            Event::RateDropped => "answers dropped by the rate limit",
            Event::RateSlipped => "answers truncated by the rate limit",
            Event::TcpFull => "TCP connections refused at tcp_max",
            Event::TcpPerSource => "TCP connections refused at tcp_max_per_source",
            Event::TcpLifetime => "TCP connections closed at tcp_lifetime",
            Event::TcpQueries => "TCP connections closed at tcp_max_queries",
            Event::TcpStalled => "TCP connections dropped for not reading their answers",
            Event::AcceptError => "TCP accept errors",
            Event::Panic => "packets that made the responder panic",
            Event::UpdateRefused => "updates and signed messages refused (TSIG, replays)",
        }
    }

    /// Limits that bite and errors are warnings; refusals that are the
    /// configured policy working are information.
    fn level(self) -> log::Level {
        match self {
            Event::TransferRefused | Event::UdpAxfr | Event::Malformed => log::Level::Info,
            Event::TcpLifetime | Event::TcpQueries => log::Level::Info,
            Event::Panic => log::Level::Error,
            _ => log::Level::Warn,
        }
    }
}

#[derive(Default)]
struct Kind {
    /// Events of this interval not logged one by one.
    counted: AtomicU64,
    /// An event was logged one by one in this interval.
    shown: AtomicBool,
    /// Events happened in this interval or the one before: new ones are
    /// counted, not logged.
    active: AtomicBool,
}

/// The counters of one responder, shared by its UDP threads, its TCP
/// tasks and its request handler.
pub(crate) struct Tally {
    interval: Duration,
    kinds: [Kind; EVENTS.len()],
    since: Mutex<Instant>,
}

impl Tally {
    pub(crate) fn new(interval: Duration) -> Tally {
        Tally {
            interval,
            kinds: Default::default(),
            since: Mutex::new(Instant::now()),
        }
    }

    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    /// Record one event. `detail` (what the line of its own says) is only
    /// called when the event is logged one by one.
    pub(crate) fn note(&self, event: Event, detail: impl FnOnce() -> String) {
        let kind = &self.kinds[event as usize];
        if kind.active.load(Ordering::Relaxed) || kind.active.swap(true, Ordering::AcqRel) {
            kind.counted.fetch_add(1, Ordering::Relaxed);
            return;
        }
        kind.shown.store(true, Ordering::Relaxed);
        log::log!(
            event.level(),
            "{}; more like it are counted and summed up every {} ([serve] log_interval)",
            detail(),
            humantime::format_duration(self.interval)
        );
    }

    /// Log one line with the counts of the events not logged one by one
    /// since the last call, if there were any. Called every interval, and
    /// once more when the responder stops.
    pub(crate) fn flush(&self) {
        let now = Instant::now();
        let since = {
            let mut since = self.since.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *since, now)
        };
        let mut parts = Vec::new();
        let mut level = log::Level::Info;
        for event in EVENTS {
            let kind = &self.kinds[event as usize];
            let counted = kind.counted.swap(0, Ordering::AcqRel);
            let shown = kind.shown.swap(false, Ordering::AcqRel);
            if counted == 0 && !shown {
                // A quiet interval: the next event gets a line of its own.
                kind.active.store(false, Ordering::Release);
            }
            if counted > 0 {
                parts.push(format!("{counted} {}", event.noun()));
                level = level.min(event.level());
            }
        }
        if !parts.is_empty() {
            // Whole seconds: the interval is at least one.
            let secs = Duration::from_secs(now.duration_since(since).as_secs_f64().round() as u64);
            log::log!(
                level,
                "in the last {}, not logged one by one: {}",
                humantime::format_duration(secs),
                parts.join(", ")
            );
        }
    }
}

thread_local! {
    /// This thread is handling a packet: a panic is the tally's to report.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// The message of the last panic a packet caused.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Install (once) the panic hook that keeps panics in packet handling
/// quiet; every other panic still goes to the hook that was there.
pub(crate) fn quiet_packet_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                // The message may quote the packet: escaped, on one line.
                let message = info.to_string().escape_debug().to_string();
                *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
            } else {
                previous(info);
            }
        }));
    });
}

/// The message of the last panic a packet caused, for the tally's line.
pub(crate) fn last_panic() -> String {
    LAST_PANIC
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default()
}

/// Marks the current thread as handling a packet until dropped.
struct QuietGuard(bool);

impl QuietGuard {
    fn new() -> QuietGuard {
        QuietGuard(QUIET.with(|q| q.replace(true)))
    }
}

impl Drop for QuietGuard {
    fn drop(&mut self) {
        let before = self.0;
        QUIET.with(|q| q.set(before));
    }
}

/// Run `f` (the handling of one packet) with its panics kept quiet.
pub(crate) fn quietly<T>(f: impl FnOnce() -> T) -> T {
    let _quiet = QuietGuard::new();
    f()
}

/// A future (the handling of one connection) whose panics are kept quiet
/// on whichever thread polls it.
pub(crate) struct Quiet<F>(pub(crate) Pin<Box<F>>);

impl<F: Future> Future for Quiet<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _quiet = QuietGuard::new();
        self.0.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(t: &Tally, e: Event) -> (u64, bool, bool) {
        let k = &t.kinds[e as usize];
        (
            k.counted.load(Ordering::Relaxed),
            k.shown.load(Ordering::Relaxed),
            k.active.load(Ordering::Relaxed),
        )
    }

    #[test]
    fn the_first_event_is_shown_the_rest_counted_until_a_quiet_interval() {
        let t = Tally::new(Duration::from_secs(60));
        for _ in 0..1000 {
            t.note(Event::Malformed, String::new);
        }
        // (counted, shown, active)
        assert_eq!(counts(&t, Event::Malformed), (999, true, true));
        assert_eq!(counts(&t, Event::Panic), (0, false, false));

        // The interval that saw events keeps the kind active: a flood that
        // goes on is only counted.
        t.flush();
        assert_eq!(counts(&t, Event::Malformed), (0, false, true));
        t.note(Event::Malformed, String::new);
        assert_eq!(counts(&t, Event::Malformed), (1, false, true));
        t.flush();
        // A quiet interval ends the burst: the next one is shown again.
        t.flush();
        assert_eq!(counts(&t, Event::Malformed), (0, false, false));
        t.note(Event::Malformed, String::new);
        assert_eq!(counts(&t, Event::Malformed), (0, true, true));
    }

    #[test]
    fn a_quiet_panic_is_kept_for_the_tally_not_printed() {
        quiet_packet_panics();
        let caught = std::panic::catch_unwind(|| quietly(|| panic!("bad \u{1b}[31m packet")));
        assert!(caught.is_err());
        let message = last_panic();
        assert!(message.contains("bad \\u{1b}[31m packet"), "{message}");
        assert!(!message.contains('\n'), "{message}");
        assert_eq!(last_panic(), "");
    }
}
