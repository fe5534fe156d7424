//! The manifest (state/manifest.json) that makes an idle build cheap: the
//! stamp of every input of the last whole build, the listing of every
//! folder it read, its own time, and when its result expires by itself. If
//! every path still has its stamp, every folder its listing, no stamp was
//! too young to vouch for its file, and no deadline has passed, nothing can
//! have changed, and the build reads nothing.
//!
//! Equal stamps never hide a change (git's racy-clean rule): a file
//! system keeps times in ticks (whole seconds on ext2 with 128-byte inodes,
//! FreeBSD's default precision, coarse kernel clocks), so two versions of
//! a file written within one tick can carry the same stamp. A file whose
//! mtime or ctime is not older than the manifest's own time by more than
//! [`GRANULARITY_NS`] is therefore not vouched for: the next build reads it
//! again. A folder is compared by its listing as well as its stamp, so a
//! name that arrives or leaves within one tick is seen whatever the times
//! say.

use crate::base::config::Config;
use crate::base::fs::{stamp, Stamp};
use crate::base::hex;
use crate::build::inputs::{Input, Kind};
use crate::build::publish::{write_atomic, PublishError};
use crate::build::report::Report;
use crate::hook::drop::DropHandle;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The timestamp granularity assumed of every file system (git assumes the
/// same): a file changed at most this long before the manifest's time may
/// carry the stamp of its previous version. FAT keeps mtimes in 2 s ticks.
pub const GRANULARITY_NS: i64 = 2_000_000_000;

/// Whether nothing moved since the last whole build that succeeded.
pub fn unchanged(config: &Config, now_unix: u64) -> bool {
    Manifest::load(&config.paths.state).is_some_and(|m| m.still_current(now_unix))
}

/// What is taken before a build reads anything ([`stamp_first`]).
#[derive(Debug, Clone, Default)]
pub struct First {
    /// The manifest's own time: the wall clock just before the stamps.
    pub time_ns: i64,
    /// soa/, primary/, every folder of extra/, the drop directories: stamp
    /// and listing.
    pub folders: Vec<Folder>,
    /// The config file.
    pub files: Vec<(PathBuf, Option<Stamp>)>,
}

/// A folder as a build found it: its stamp and the digest of its listing
/// (`None`: absent, or it could not be listed).
pub type Folder = (PathBuf, Option<Stamp>, Option<String>);

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Stamp, before the build reads, the inputs [`Kind::stamped_first`]
/// names: the config, soa/ and primary/, every folder of extra/, the drop
/// directories; each folder with its listing.
pub fn stamp_first(inputs: &[Input]) -> First {
    let mut first = First {
        time_ns: now_ns(),
        ..First::default()
    };
    let mut folder = |p: &Path| first.folders.push((p.to_path_buf(), stamp(p), listing(p)));
    let mut files = Vec::new();
    for i in inputs.iter().filter(|i| i.kind.stamped_first()) {
        match i.kind {
            Kind::Config => files.push((i.path.clone(), stamp(&i.path))),
            Kind::Extra if i.path.exists() => {
                for e in walkdir::WalkDir::new(&i.path).into_iter().flatten() {
                    if e.file_type().is_dir() {
                        folder(e.path());
                    }
                }
            }
            _ => folder(&i.path),
        }
    }
    first.files = files;
    first
}

/// The digest of a folder's listing: every name in it, sorted, dot-files
/// included. `None` when it cannot be listed. The folder is opened with
/// `O_NOFOLLOW` ([`DropHandle::open`]): a drop directory swapped for a
/// symlink is never listed through it (a folder that is a symlink is
/// compared by the link's own stamp).
pub fn listing(dir: &Path) -> Option<String> {
    let names = DropHandle::open(dir).ok()?.all_names().ok()?;
    let mut h = Sha256::new();
    for n in &names {
        h.update(n.as_encoded_bytes());
        h.update([0]);
    }
    Some(hex(&h.finalize()[..16]))
}

/// Whether `s` is too young to vouch for its file: its mtime or ctime is
/// not older than `time_ns` by more than [`GRANULARITY_NS`] (a time in the
/// future is never old enough).
pub fn racy(s: &Stamp, time_ns: i64) -> bool {
    let line = time_ns.saturating_sub(GRANULARITY_NS);
    s.mtime_ns >= line || s.ctime_ns >= line
}

/// Drop the manifest: the build that ran did not look at everything
/// (`Options::drops_only`), so the next one must.
pub fn forget(config: &Config) -> Result<(), PublishError> {
    Manifest::remove(&config.paths.state)
}

/// Remember what a build read, so that the next one may skip: after a
/// `whole` build that succeeded, the inputs stamped before reading
/// (`first`), the `files` read (each once), and every published zone (one
/// removed or replaced by hand is built again). A failed build forgets it,
/// so cron hears about the problem again; so does a partial build that
/// published. So does a build that read a file too young to vouch for
/// ([`racy`]) or a folder it could not list: the next build reads again.
pub fn record(
    config: &Config,
    whole: bool,
    report: &Report,
    first: First,
    files: &[PathBuf],
    until: Option<u64>,
) -> Result<(), PublishError> {
    let state = &config.paths.state;
    if !whole {
        if !report.published.is_empty() {
            Manifest::remove(state)?;
        }
        return Ok(());
    }
    if report.failed() {
        return Manifest::remove(state);
    }
    let mut entries = first.files;
    let mut seen = HashSet::new();
    // The last files are the fragments: the youngest, so the likeliest to
    // be racy, which ends the record at once.
    for p in files.iter().rev().filter(|p| seen.insert(p.as_path())) {
        let s = stamp(p);
        if s.is_some_and(|s| racy(&s, first.time_ns)) {
            return Manifest::remove(state);
        }
        entries.push((p.clone(), s));
    }
    let outputs = config
        .zones
        .iter()
        .map(|z| {
            let out = config.published_path(&z.name);
            let s = stamp(&out);
            (out, s)
        })
        .collect();
    let m = Manifest {
        time_ns: first.time_ns,
        folders: first.folders,
        files: entries,
        outputs,
        until,
    };
    if !m.vouches() {
        return Manifest::remove(state);
    }
    m.save(state)
}

/// Everything an idle build compares: if every path still has its stamp,
/// every folder its listing, and no fragment has expired since, nothing
/// can have changed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// The wall clock (ns since the Unix epoch) just before the first
    /// stamp: what [`racy`] measures the stamps against.
    pub time_ns: i64,
    /// The folders stamped before reading, each with its listing.
    pub folders: Vec<Folder>,
    /// The files read (and the config), stamped.
    pub files: Vec<(PathBuf, Option<Stamp>)>,
    /// The published zones: written by the build itself, so young by
    /// nature; their stamp only tells whether someone replaced or removed
    /// one since.
    pub outputs: Vec<(PathBuf, Option<Stamp>)>,
    /// Unix seconds at which the earliest accepted fragment expires (or a
    /// rollover deadline passes).
    pub until: Option<u64>,
}

impl Manifest {
    pub fn path(state: &Path) -> PathBuf {
        state.join("manifest.json")
    }

    /// The manifest, if there is one this version can read (an older
    /// format lacks fields, so the build after an upgrade reads all).
    pub fn load(state: &Path) -> Option<Manifest> {
        serde_json::from_slice(&fs::read(Manifest::path(state)).ok()?).ok()
    }

    pub fn save(&self, state: &Path) -> Result<(), PublishError> {
        let text = serde_json::to_vec(self).unwrap_or_default();
        write_atomic(&Manifest::path(state), &[&text])
    }

    /// Forget the manifest; one that cannot be removed is an error (it
    /// could make the next build skip a change).
    pub fn remove(state: &Path) -> Result<(), PublishError> {
        let path = Manifest::path(state);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound && path.is_file() => {
                Err(PublishError::Write { path, source: e })
            }
            _ => Ok(()),
        }
    }

    /// Whether its stamps can vouch for what they stamp: no file too young
    /// ([`racy`]), no folder that exists but could not be listed.
    fn vouches(&self) -> bool {
        self.files
            .iter()
            .all(|(_, s)| s.is_none_or(|s| !racy(&s, self.time_ns)))
            && self
                .folders
                .iter()
                .all(|(_, s, l)| s.is_none() || l.is_some())
    }

    /// True when nothing recorded has moved and no deadline has passed.
    /// The few folder stamps are compared first: a new fragment moves its
    /// drop directory's, and the build after it need not stat every zone's
    /// files to learn that (the same checks, in a cheaper order).
    pub fn still_current(&self, now_unix: u64) -> bool {
        if self.until.is_some_and(|t| now_unix >= t) || !self.vouches() {
            return false;
        }
        self.folders.iter().all(|(p, s, _)| stamp(p) == *s)
            && self
                .files
                .iter()
                .chain(&self.outputs)
                .all(|(p, s)| stamp(p) == *s)
            && self
                .folders
                .iter()
                .all(|(p, s, l)| s.is_none() || listing(p) == *l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn old(p: &Path) {
        let t = fs::FileTimes::new().set_modified(UNIX_EPOCH + std::time::Duration::from_secs(1));
        fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_times(t)
            .unwrap();
    }

    #[test]
    fn manifest_sees_moves() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        fs::write(&f, "a").unwrap();
        // Stamped a while after the file was written.
        let m = Manifest {
            time_ns: now_ns() + 3 * GRANULARITY_NS,
            files: vec![(f.clone(), stamp(&f)), (d.path().join("absent"), None)],
            until: Some(100),
            ..Manifest::default()
        };
        assert!(m.still_current(99));
        assert!(!m.still_current(100));
        fs::write(&f, "ab").unwrap();
        assert!(!m.still_current(0));
    }

    #[test]
    fn a_young_stamp_vouches_for_nothing() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        fs::write(&f, "a").unwrap();
        let s = stamp(&f).unwrap();
        assert!(racy(&s, now_ns()), "ctime is now");
        assert!(!racy(&s, now_ns() + 3 * GRANULARITY_NS));
        // An mtime put back into the past does not help: ctime is the
        // kernel's.
        old(&f);
        let s = stamp(&f).unwrap();
        assert!(racy(&s, now_ns()));
        // A time in the future is never old enough.
        let future = Stamp {
            mtime_ns: i64::MAX,
            ctime_ns: 0,
            ..s
        };
        assert!(racy(&future, now_ns()));
        let m = Manifest {
            time_ns: now_ns(),
            files: vec![(f.clone(), Some(s))],
            ..Manifest::default()
        };
        assert!(!m.still_current(0));
    }

    #[test]
    fn a_folder_is_compared_by_its_listing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().to_path_buf();
        let before = listing(&p);
        assert!(before.is_some());
        let mut m = Manifest {
            time_ns: now_ns() + 3 * GRANULARITY_NS,
            folders: vec![(p.clone(), stamp(&p), before.clone())],
            ..Manifest::default()
        };
        assert!(m.still_current(0));
        fs::write(p.join("x"), "").unwrap();
        // Same stamp as before, as within one tick of a coarse clock: the
        // listing still tells.
        m.folders[0].1 = stamp(&p);
        assert!(!m.still_current(0));
        fs::remove_file(p.join("x")).unwrap();
        m.folders[0].1 = stamp(&p);
        assert!(m.still_current(0));
        // A folder that exists but cannot be listed vouches for nothing.
        m.folders[0].2 = None;
        assert!(!m.still_current(0));
    }
}
