//! When the watcher builds. A change event wakes it; it waits until the
//! files have been quiet for [`QUIET`] (a hook's write is a burst of
//! events), at most [`MAX_DELAY`]. Builds the drop side sets off are
//! rate-limited ([`Limiter`]): a lone change (one that comes after the
//! inputs were quiet for [`LONE`]) or a short burst is built at once, but
//! while changes keep coming, builds that publish are held to `[build]
//! max_rate` a second (default 4), so a drop writer cannot drive serials,
//! `on_change` and NOTIFY faster. A writer that spaces its changes at
//! least [`LONE`] apart gets at most one publish per [`LONE`].

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long the files must be quiet before a build starts. A writer's
/// temporaries wake nothing (only their rename into place does), so a
/// hook's fragment is one event: the wait is added to every lone change.
/// A later event of the same writer (a prune's unlink) is built after it.
pub const QUIET: Duration = Duration::from_millis(2);
/// A burst never delays a build longer than this.
pub const MAX_DELAY: Duration = Duration::from_millis(200);
/// A change after this long without one is a lone change: built at once,
/// whatever the rate limit. Changes spaced wider than this (an ACME
/// client's, a person's) are never held back; a writer that churns
/// faster is held to `[build] max_rate`.
pub const LONE: Duration = Duration::from_millis(150);

/// What wakes the watcher: a change in a watched folder (when it was
/// seen), or SIGHUP.
pub(crate) enum Wake {
    Changed(Instant),
    Reload,
}

/// The rate limit on publishing builds: a token bucket of `max_rate`
/// tokens a second holding at most `max_rate` (at least one), so a short
/// burst is built at once; a build that published takes a token, and a
/// build that is not lone waits for one.
#[derive(Debug)]
struct Limiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Limiter {
    fn new(rate: f64) -> Limiter {
        let burst = rate.max(1.0);
        Limiter {
            rate,
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + earned).min(self.burst);
        self.at = now;
    }

    /// How long until a token is there (zero: now).
    fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
    }

    /// A build published: it takes a token (a lone one may find none).
    fn spend(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens - 1.0).max(0.0);
    }
}

/// The watcher's pace: the rate limit and what it knows of the changes.
#[derive(Debug)]
pub(crate) struct Pace {
    limiter: Limiter,
    /// When the last change event came (event mode).
    last_change: Option<Instant>,
    /// Since when polls have found nothing to publish (poll mode).
    quiet_since: Option<Instant>,
    /// A lone change seen and not published yet: the build that publishes
    /// it (not only the first after it: a writer's change may take two
    /// events some milliseconds apart) is built at once.
    lone_pending: bool,
}

impl Pace {
    pub(crate) fn new(max_rate: f64) -> Pace {
        Pace {
            limiter: Limiter::new(max_rate),
            last_change: None,
            quiet_since: None,
            lone_pending: false,
        }
    }

    /// `[build] max_rate` read again.
    pub(crate) fn set_rate(&mut self, max_rate: f64) {
        self.limiter.rate = max_rate;
        self.limiter.burst = max_rate.max(1.0);
    }

    /// Wait until the next build is due (a change, SIGHUP, the tick or
    /// the poll interval `tick`): whether SIGHUP came, or None when the
    /// channel closed.
    pub(crate) fn next(
        &mut self,
        rx: &Receiver<Wake>,
        tick: Duration,
        polling: bool,
    ) -> Option<bool> {
        let mut reload = false;
        match rx.recv_timeout(tick) {
            Ok(wake) => {
                // A lone change, SIGHUP and the tick are built at once;
                // churn waits for a token.
                let mut lone = true;
                if let Wake::Changed(at) = &wake {
                    self.lone_pending |= self
                        .last_change
                        .is_none_or(|t| at.saturating_duration_since(t) >= LONE);
                    lone = self.lone_pending;
                }
                let last_change = &mut self.last_change;
                let mut note = |wake: Wake, reload: &mut bool| match wake {
                    Wake::Reload => *reload = true,
                    Wake::Changed(at) => *last_change = Some(at),
                };
                note(wake, &mut reload);
                // Let the burst finish: quiet for QUIET, or MAX_DELAY at most.
                let start = Instant::now();
                while start.elapsed() < MAX_DELAY {
                    match rx.recv_timeout(QUIET) {
                        Ok(wake) => note(wake, &mut reload),
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return None,
                    }
                }
                // Churn: wait for a token, taking what comes meanwhile.
                while !lone && !reload {
                    let wait = self.limiter.wait(Instant::now());
                    if wait.is_zero() {
                        break;
                    }
                    match rx.recv_timeout(wait) {
                        Ok(wake) => note(wake, &mut reload),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return None,
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) if polling => {
                // Polling: a poll that may publish after the inputs were
                // not seen quiet for LONE is churn.
                let quiet = self.quiet_since.is_some_and(|t| t.elapsed() >= LONE);
                if !quiet {
                    let wait = self.limiter.wait(Instant::now());
                    if !wait.is_zero() {
                        std::thread::sleep(wait);
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return None,
        }
        Some(reload)
    }

    /// A build ran; whether it published.
    pub(crate) fn built(&mut self, published: bool) {
        let now = Instant::now();
        if published {
            self.limiter.spend(now);
            self.quiet_since = None;
            self.lone_pending = false;
        } else if self.quiet_since.is_none() {
            self.quiet_since = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_holds_a_burst_and_refills_at_the_rate() {
        let mut l = Limiter::new(4.0);
        let t0 = l.at;
        for _ in 0..4 {
            assert_eq!(l.wait(t0), Duration::ZERO);
            l.spend(t0);
        }
        let wait = l.wait(t0);
        assert!(
            wait > Duration::from_millis(240) && wait <= Duration::from_millis(250),
            "{wait:?}"
        );
        assert_eq!(l.wait(t0 + Duration::from_millis(250)), Duration::ZERO);
        // Never more than the burst in store.
        assert_eq!(l.wait(t0 + Duration::from_secs(60)), Duration::ZERO);
        assert!(l.tokens <= 4.0);
    }
}
