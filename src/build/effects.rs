//! What follows a publish, zone by zone, in this order:
//!
//! 1. in `zonedrop run`, the responder takes the new version ([`Serving`]:
//!    a delta when only the challenges moved, else the file reloaded), so
//!    that the challenge is answered without waiting for anything else (a
//!    delta is even taken before the file is written, [`Serving::ahead`]:
//!    the answer does not wait for the disk);
//! 2. `build.on_change` (a reload of another name server, a signer), its
//!    output captured and shown only when it fails, with its exit status;
//! 3. NOTIFY to `[build] notify` (RFC 1996), only once `on_change` has
//!    succeeded and, in `run`, the responder serves the new version: a
//!    secondary told earlier would ask for the SOA, find the old serial,
//!    and stay one change behind.
//!
//! What is owed survives the process: publishing marks `on_change` and
//! NOTIFY due in the zone's state (`state/zone-*.json`, written
//! atomically, [`publish::ZoneState`]); each is cleared once done. A
//! failure leaves the mark, so the next build runs what is owed even when
//! nothing changed: a failed `on_change` first, then the NOTIFY it held
//! back. A NOTIFY that no secondary acknowledged is sent again no sooner
//! than [`NOTIFY_RETRY`] later (a secondary that is down would otherwise
//! cost every build its timeouts); the build's manifest expires then, so
//! an idle `watch` or cron build does retry it. A failure is one entry in
//! the report (exit 1) and never stops the build.

use crate::base::config::Config;
use crate::base::name;
use crate::build::publish;
use crate::build::report::{Parts, Published};
use crate::live::notify;
use std::process::{Command, Stdio};

/// How long after a NOTIFY that failed it is tried again (unless the zone
/// is published anew, which sends one at once).
pub const NOTIFY_RETRY: u64 = 60;
/// How much of a failed `on_change`'s output is shown (its end).
const OUTPUT_LINES: usize = 20;

/// The responder of `zonedrop run`, as the builder sees it: told about
/// each publish before the NOTIFY goes out.
pub trait Serving: Send + Sync + std::fmt::Debug {
    /// `zone`'s next version, `serial`, holding `parts`, is about to be
    /// written: serve it now if it is a delta of the served version
    /// (challenges and serial only). Returns whether it was taken; either
    /// way [`Serving::published`] follows once the file is written.
    fn ahead(&self, zone: &str, serial: u32, parts: &Parts) -> bool;
    /// The serial of `zone` as served now. A version served ahead of a
    /// write that then failed has had its serial seen: the next version
    /// must come after it.
    fn serial(&self, zone: &str) -> Option<u32>;
    /// Serve `published` now: the challenges as a delta when the served
    /// version differs from it in challenges and serial only, else the
    /// published file read again. On error the old version stays served.
    fn published(&self, published: &Published) -> Result<(), String>;
    /// Serve `zone`'s published file, if it is not what is served (a
    /// NOTIFY owed from an earlier build is about to go out).
    fn current(&self, zone: &str) -> Result<(), String>;
    /// `zone`'s published version, `serial`, holds `parts` (a build that
    /// changed nothing in it): if that is the version served, a later
    /// change can be taken as a delta of it.
    fn same(&self, zone: &str, serial: u32, parts: Parts);
}

/// What a build made of a zone.
#[derive(Debug)]
pub enum Version {
    /// It published this new version.
    New(Published),
    /// The published version, with this serial, stands.
    Same(u32, Parts),
    /// It published nothing (it failed).
    Unknown,
}

/// What the effects of one zone came to.
#[derive(Debug, Default)]
pub struct Outcome {
    /// One entry per failure (a failed `on_change` with its output).
    pub errors: Vec<String>,
    /// A NOTIFY is owed and waits until then (Unix seconds).
    pub retry_at: Option<u64>,
}

/// The effects of publishing `zone` (`published`, if this build did) or of
/// what an earlier build left owed; `serving` is the responder of `run`.
pub fn after_publish(
    config: &Config,
    zone: &str,
    version: &Version,
    serving: Option<&dyn Serving>,
    now_unix: u64,
) -> Outcome {
    let published = match version {
        Version::New(p) => Some(p),
        _ => None,
    };
    let mut out = Outcome::default();
    let state_dir = &config.paths.state;
    // What is owed is in the zone's state (read only when something can
    // be owed: a build of many zones reads no more than it must).
    let owes = config.build.on_change.is_some() || !config.build.notify.is_empty();
    let state = owes
        .then(|| publish::load_zone_state(state_dir, zone))
        .flatten();
    let notify_owed = state.as_ref().is_some_and(|s| s.notify_pending);
    // 1. The responder of `run`: the challenge answered at once.
    let mut served = true;
    if let Some(serving) = serving {
        let result = match version {
            Version::New(p) => serving.published(p),
            _ if notify_owed => serving.current(zone),
            Version::Same(serial, parts) => {
                serving.same(zone, *serial, parts.clone());
                Ok(())
            }
            Version::Unknown => Ok(()),
        };
        if let Err(e) = result {
            served = false;
            out.errors
                .push(format!("{e}; the NOTIFY waits until it is served"));
        }
    }
    // Never published (or its state lost): nothing is owed.
    let Some(mut st) = state else {
        return out;
    };
    let before = st.clone();
    // 2. on_change, owed since the publish or a failure.
    if config.build.on_change.is_none() {
        st.on_change_pending = false;
    }
    if st.on_change_pending {
        match run_on_change(config, zone) {
            Ok(()) => st.on_change_pending = false,
            Err(e) => out.errors.push(e),
        }
    }
    // 3. NOTIFY, once both are done.
    if config.build.notify.is_empty() {
        st.notify_pending = false;
    }
    if published.is_some() {
        st.notify_retry_at = None;
    }
    if st.notify_pending && !st.on_change_pending && served {
        match st.notify_retry_at.filter(|&t| t > now_unix) {
            Some(t) => out.retry_at = Some(t),
            None => match notify::notify_zone(config, zone, &[]) {
                Ok(failed) if failed.is_empty() => {
                    st.notify_pending = false;
                    st.notify_retry_at = None;
                }
                Ok(failed) => {
                    let again = now_unix + NOTIFY_RETRY;
                    st.notify_retry_at = Some(again);
                    out.retry_at = Some(again);
                    out.errors.extend(failed.iter().map(|e| {
                        format!("{e}; sent again in {NOTIFY_RETRY} s or at the next change")
                    }));
                }
                Err(e) => out.errors.push(e.to_string()),
            },
        }
    }
    if st != before {
        if let Err(e) = publish::save_zone_state(state_dir, zone, &st) {
            out.errors
                .push(format!("{e}: what is owed after a publish is not recorded"));
        }
    }
    out
}

/// Run `build.on_change` for `zone`. `{zone}` and `{file}` are substituted
/// in each argument after splitting, so they cannot inject arguments;
/// there is no shell unless the command names one. Its output is kept
/// and shown only when it fails.
fn run_on_change(config: &Config, zone: &str) -> Result<(), String> {
    let Some(cmd) = &config.build.on_change else {
        return Ok(());
    };
    let zone_s = zone.trim_end_matches('.');
    let file = config.published_path(zone);
    let words = shell_words::split(cmd)
        .map_err(|e| format!("build.on_change: cannot split `{cmd}`: {e}"))?;
    let words: Vec<String> = words
        .iter()
        .map(|w| {
            w.replace("{zone}", zone_s)
                .replace("{file}", &file.to_string_lossy())
        })
        .collect();
    let Some((program, args)) = words.split_first() else {
        return Err("build.on_change is empty".into());
    };
    let owed = "it runs again at the next build, and the zone's NOTIFY waits for it";
    match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "{zone_s}: on_change `{cmd}` failed ({}); {owed}{}",
            o.status,
            shown_output(&o.stdout, &o.stderr)
        )),
        Err(e) => Err(format!(
            "{zone_s}: on_change `{cmd}`: cannot run {}: {e}; {owed}",
            name::printable(program)
        )),
    }
}

/// The end of a failed command's output (stdout, then stderr), each line
/// indented and escaped; empty when it printed nothing.
fn shown_output(stdout: &[u8], stderr: &[u8]) -> String {
    let text = [
        String::from_utf8_lossy(stdout),
        String::from_utf8_lossy(stderr),
    ]
    .join("\n");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return "; it printed nothing".into();
    }
    let skip = lines.len().saturating_sub(OUTPUT_LINES);
    let mut out = String::from("; its output");
    if skip > 0 {
        out.push_str(&format!(" (last {OUTPUT_LINES} lines)"));
    }
    out.push(':');
    for l in &lines[skip..] {
        out.push_str("\n    ");
        out.push_str(&name::printable(l));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_escaped_and_its_end_kept() {
        assert_eq!(shown_output(b"", b"\n"), "; it printed nothing");
        let many: String = (0..30).map(|i| format!("line {i}\n")).collect();
        let shown = shown_output(many.as_bytes(), b"bad \x1b[31m\n");
        assert!(shown.starts_with("; its output (last 20 lines):\n    line 11\n"));
        assert!(shown.ends_with("\n    bad \\u{1b}[31m"), "{shown}");
    }
}
