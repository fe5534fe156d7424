//! The manifest (state/manifest.json) that makes an idle build cheap: the
//! stamp of every input of the last whole build, and when its result
//! expires by itself. If every path still has its stamp and no deadline
//! has passed, nothing can have changed, and the build reads nothing.

use crate::base::config::Config;
use crate::base::fs::{stamp, Stamp};
use crate::build::inputs::{Input, Kind};
use crate::build::publish::{write_atomic, PublishError};
use crate::build::report::Report;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Whether nothing moved since the last whole build that succeeded.
pub fn unchanged(config: &Config, now_unix: u64) -> bool {
    Manifest::load(&config.paths.state).is_some_and(|m| m.still_current(now_unix))
}

/// The inputs stamped before the build reads ([`Kind::stamped_first`]):
/// the config, soa/ and primary/, every folder of extra/, the drop
/// directories.
pub fn stamp_first(inputs: &[Input]) -> Vec<(PathBuf, Option<Stamp>)> {
    let mut stamps: Vec<(PathBuf, Option<Stamp>)> = Vec::new();
    let mut stamp_now = |p: &Path| stamps.push((p.to_path_buf(), stamp(p)));
    for i in inputs.iter().filter(|i| i.kind.stamped_first()) {
        if i.kind != Kind::Extra || !i.path.exists() {
            stamp_now(&i.path);
            continue;
        }
        for e in walkdir::WalkDir::new(&i.path).into_iter().flatten() {
            if e.file_type().is_dir() {
                stamp_now(e.path());
            }
        }
    }
    stamps
}

/// Remember what a build read, so that the next one may skip: after a
/// `whole` build that succeeded, the inputs stamped before reading
/// (`first`), the `files` read (each once), and every published zone (one
/// removed or replaced by hand is built again). A failed build forgets it,
/// so cron hears about the problem again; so does a partial build that
/// published.
pub fn record(
    config: &Config,
    whole: bool,
    report: &Report,
    first: Vec<(PathBuf, Option<Stamp>)>,
    files: &[PathBuf],
    until: Option<u64>,
) -> Result<(), PublishError> {
    let state = &config.paths.state;
    if !whole {
        if !report.published.is_empty() {
            Manifest::remove(state);
        }
        return Ok(());
    }
    if report.failed() {
        Manifest::remove(state);
        return Ok(());
    }
    let mut entries = first;
    let mut seen = HashSet::new();
    for p in files.iter().filter(|p| seen.insert(p.as_path())) {
        entries.push((p.clone(), stamp(p)));
    }
    for z in &config.zones {
        let out = config.published_path(&z.name);
        entries.push((out.clone(), stamp(&out)));
    }
    Manifest { entries, until }.save(state)
}

/// Everything an idle build compares: if every path still has its stamp
/// and no fragment has expired since, nothing can have changed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub entries: Vec<(PathBuf, Option<Stamp>)>,
    /// Unix seconds at which the earliest accepted fragment expires (or a
    /// rollover deadline passes).
    pub until: Option<u64>,
}

impl Manifest {
    pub fn path(state: &Path) -> PathBuf {
        state.join("manifest.json")
    }

    pub fn load(state: &Path) -> Option<Manifest> {
        serde_json::from_slice(&fs::read(Manifest::path(state)).ok()?).ok()
    }

    pub fn save(&self, state: &Path) -> Result<(), PublishError> {
        let text = serde_json::to_vec(self).unwrap_or_default();
        write_atomic(&Manifest::path(state), &[&text])
    }

    pub fn remove(state: &Path) {
        let _ = fs::remove_file(Manifest::path(state));
    }

    /// True when nothing recorded has moved and no deadline has passed.
    pub fn still_current(&self, now_unix: u64) -> bool {
        if self.until.is_some_and(|t| now_unix >= t) {
            return false;
        }
        self.entries.iter().all(|(p, s)| stamp(p) == *s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_sees_moves() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        fs::write(&f, "a").unwrap();
        let m = Manifest {
            entries: vec![(f.clone(), stamp(&f)), (d.path().join("absent"), None)],
            until: Some(100),
        };
        assert!(m.still_current(99));
        assert!(!m.still_current(100));
        fs::write(&f, "ab").unwrap();
        assert!(!m.still_current(0));
    }
}
