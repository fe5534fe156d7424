//! What a build did ([`Report`]): the zones it published, the fragments
//! it refused, its errors and warnings; and how it is shown, on a terminal
//! or in the log ([`Report::show`]).

use crate::build::refusals::Cap;
use crate::build::whitelist::Refusal;
use std::path::PathBuf;

/// A zone that was published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub zone: String,
    pub file: PathBuf,
    pub old_serial: Option<u32>,
    pub serial: u32,
    pub challenges: usize,
    /// What the responder of `zonedrop run` needs to take this version as
    /// a delta of the one it serves (`build::effects`).
    pub parts: Parts,
}

/// A published zone in two parts: a digest of everything but its
/// challenges (the operator's sources, TLSA and SSHFP records), and the
/// challenges. Two versions with the same `base` differ in their
/// challenges and serial only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parts {
    /// SHA-256 of the zone's text, serial left open, up to its challenges.
    pub base: [u8; 32],
    pub challenges: Vec<Txt>,
}

/// One challenge record as published.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Txt {
    /// Absolute, lower case.
    pub owner: String,
    pub ttl: u32,
    pub value: String,
}

/// One rendered record: owner (absolute, lowercase), TTL, type, and its
/// data as zone-file text (a TXT value quoted).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct RecordLine {
    pub owner: String,
    pub ttl: u32,
    pub rtype: String,
    pub rdata: String,
}

impl std::fmt::Display for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let zone = self.zone.trim_end_matches('.');
        let old = self
            .old_serial
            .map_or("none".to_string(), |s| s.to_string());
        let s = if self.challenges == 1 { "" } else { "s" };
        write!(
            f,
            "{zone}: serial {old} -> {}, {} challenge{s}",
            self.serial, self.challenges
        )
    }
}

/// What a build did.
#[derive(Debug, Default)]
pub struct Report {
    /// Nothing moved since the last build: nothing was read.
    pub skipped: bool,
    pub published: Vec<Published>,
    pub refusals: Vec<Refusal>,
    /// For each of `refusals`, whether it was not reported before
    /// ([`crate::build::refusals::Memory`]); empty (a check): all are new.
    pub fresh: Vec<bool>,
    /// One line each: zones that failed, on_change commands that failed.
    pub errors: Vec<String>,
    /// Informational lines (expired certificates and the like).
    pub warnings: Vec<String>,
    /// Warnings a build gives once, when what they warn about happens (a
    /// key switched without pre-publication, a `date` serial run out of
    /// its day): shown even with `--quiet`, since no later build repeats them.
    pub alerts: Vec<String>,
}

impl Report {
    pub fn failed(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Whether the `i`th refusal was not reported before.
    pub fn is_fresh(&self, i: usize) -> bool {
        self.fresh.get(i).copied().unwrap_or(true)
    }

    /// How many refusals were not reported before (what `--strict` fails on).
    pub fn new_refusals(&self) -> usize {
        (0..self.refusals.len())
            .filter(|&i| self.is_fresh(i))
            .count()
    }
}

/// Where a report is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// On the terminal of `build` (`quiet`: errors, alerts and new
    /// refusals only) or `check` (`check`: every refusal, uncapped): the
    /// published zones on stdout, the rest on stderr.
    Terminal { quiet: bool, check: bool },
    /// In the log of `watch` and `run`, one line each at its level.
    Log,
}

/// A line of a report, by what it says.
#[derive(Clone, Copy)]
enum Line {
    Refusal,
    Warning,
    Alert,
    Error,
    Published,
}

impl Report {
    /// Show the report: refusals, warnings, errors, then the published
    /// zones, one line each. Refusals: a check shows them all; a build or
    /// the log only those not reported before (even when quiet), as many
    /// as `cap` lets through, then a line with the counts of the rest (at
    /// the end of a build, or once the cap's interval has passed). A
    /// skipped build shows nothing else.
    pub fn show(&self, to: Shown, cap: &mut Cap) {
        let check = matches!(to, Shown::Terminal { check: true, .. });
        if to == Shown::Log {
            if let Some(summary) = cap.summary() {
                log::warn!("{summary}");
            }
        }
        if self.skipped {
            return;
        }
        let wanted = |line| match (to, line) {
            (Shown::Log, _) | (_, Line::Error | Line::Alert | Line::Refusal) => true,
            (Shown::Terminal { quiet, .. }, _) => !quiet,
        };
        let show = |line, text: &dyn std::fmt::Display| {
            if wanted(line) {
                match (to, line) {
                    (Shown::Log, Line::Refusal | Line::Warning | Line::Alert) => {
                        log::warn!("{text}")
                    }
                    (Shown::Log, Line::Error) => log::error!("{text}"),
                    (Shown::Log, Line::Published) => log::info!("{text}"),
                    (Shown::Terminal { .. }, Line::Published) => println!("{text}"),
                    (Shown::Terminal { .. }, Line::Warning | Line::Alert) => {
                        eprintln!("zonedrop: warning: {text}")
                    }
                    (Shown::Terminal { .. }, _) => eprintln!("zonedrop: {text}"),
                }
            }
        };
        for (i, r) in self.refusals.iter().enumerate() {
            if check || (self.is_fresh(i) && cap.admit(r)) {
                show(Line::Refusal, r);
            }
        }
        if !check && to != Shown::Log {
            if let Some(summary) = cap.summary() {
                show(Line::Refusal, &summary);
            }
        }
        for w in &self.warnings {
            show(Line::Warning, w);
        }
        for a in &self.alerts {
            show(Line::Alert, a);
        }
        for e in &self.errors {
            show(Line::Error, e);
        }
        for p in &self.published {
            show(Line::Published, p);
        }
    }
}
