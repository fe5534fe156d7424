//! What a build did ([`Report`]): the zones it published, the fragments
//! it refused, its errors and warnings.

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
    /// One line each: zones that failed, on_change commands that failed.
    pub errors: Vec<String>,
    /// Informational lines (expired certificates and the like).
    pub warnings: Vec<String>,
}

impl Report {
    pub fn failed(&self) -> bool {
        !self.errors.is_empty()
    }
}
