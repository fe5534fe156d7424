//! Which refusals were already reported, and how many lines they may take.
//!
//! A drop writer can put junk beside its fragments and keep it there; a
//! build that printed every refusal again would fill cron mail and the
//! `watch` log with the same lines. [`Memory`] is the one place that
//! decides whether a refusal is new: one is new once per file version
//! (device, inode, size, mtime, ctime and a digest of the content, so a
//! rewritten file is a new version) and reason. `watch` and `run` keep the
//! memory in the process; `build` keeps it in `state/refusals.json` (an
//! unreadable or damaged file makes every refusal new, with one line, and
//! never fails a zone). Entries for files that are gone are forgotten.
//! `check` and `list` never consult it: they show every refusal.
//!
//! A writer can always make new files, so new refusals are also capped
//! ([`Cap`]): at most `[build] refusal_lines` lines per build (`build`) or
//! per `[build] refusal_interval` (`watch`, `run`), then one summary line
//! with the counts of the rest.

use crate::base::config::Config;
use crate::base::fs::{write_atomic, Stamp};
use crate::base::hex;
use crate::build::whitelist::Refusal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The file under the state folder where `build` keeps its memory.
pub const FILE: &str = "refusals.json";

/// Which refusals were reported: for each refused path, the keys (file
/// version and reason) reported for it.
#[derive(Debug, Default)]
pub struct Memory {
    /// Where the memory is kept between processes (`build`); `None`: in
    /// this process only (`watch`, `run`).
    file: Option<PathBuf>,
    seen: BTreeMap<PathBuf, BTreeSet<String>>,
    /// The stored file does not hold `seen` (changed, damaged or missing).
    dirty: bool,
}

/// `state/refusals.json` as stored: each path as the hex of its bytes (a
/// drop file's name need not be UTF-8), with its keys.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    seen: BTreeMap<String, BTreeSet<String>>,
}

impl Memory {
    /// A memory kept in this process only (`watch`, `run`).
    pub fn kept() -> Memory {
        Memory::default()
    }

    /// The memory of `build`, in the state folder of `config`; read with
    /// [`Memory::load`] once the build holds its lock.
    pub fn stored(config: &Config) -> Memory {
        Memory {
            file: Some(config.paths.state.join(FILE)),
            ..Memory::default()
        }
    }

    /// Read the stored memory, if there is one. A file that cannot be read
    /// or makes no sense leaves the memory empty (every refusal is new)
    /// and returns the one line that says so; a missing file is a first
    /// build.
    pub fn load(&mut self) -> Option<String> {
        let path = self.file.as_ref()?;
        self.dirty = true;
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => return Some(unusable(path, &e.to_string())),
        };
        let stored: Stored = match serde_json::from_slice(&text) {
            Ok(s) => s,
            Err(e) => return Some(unusable(path, &e.to_string())),
        };
        let mut seen = BTreeMap::new();
        for (p, keys) in stored.seen {
            match unhex(&p) {
                Some(bytes) => {
                    let p = PathBuf::from(std::ffi::OsString::from_vec(bytes));
                    seen.insert(p, keys);
                }
                None => return Some(unusable(path, "a path that is not hex")),
            }
        }
        self.seen = seen;
        self.dirty = false;
        None
    }

    /// Sort `refusals` into new (`true`) and already reported, and
    /// remember them all. A path refused before but not now is forgotten
    /// once the file is gone. Returns, for each refusal, whether it is new.
    pub fn sort(&mut self, refusals: &[Refusal]) -> Vec<bool> {
        let mut now: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
        let fresh = refusals
            .iter()
            .map(|r| {
                let key = key(r);
                let new = !self.seen.get(&r.file).is_some_and(|k| k.contains(&key));
                now.entry(r.file.clone()).or_default().insert(key);
                new
            })
            .collect();
        let old_seen = std::mem::take(&mut self.seen);
        self.seen = old_seen
            .iter()
            .filter(|(p, _)| !now.contains_key(*p) && std::fs::symlink_metadata(p).is_ok())
            .map(|(p, k)| (p.clone(), k.clone()))
            .collect();
        self.seen.extend(now);
        self.dirty |= self.seen != old_seen;
        fresh
    }

    /// Write the stored memory (atomically) if it changed; the line to
    /// report when it cannot be written (the next build then reports these
    /// refusals again).
    pub fn save(&mut self) -> Option<String> {
        let path = self.file.clone().filter(|_| self.dirty)?;
        let stored = Stored {
            seen: self
                .seen
                .iter()
                .map(|(p, k)| (hex(p.as_os_str().as_encoded_bytes()), k.clone()))
                .collect(),
        };
        let text = serde_json::to_vec(&stored).unwrap_or_default();
        let failed = write_atomic(&path, &[&text]).err();
        self.dirty = failed.is_some();
        failed.map(|e| {
            format!(
                "{}: cannot write the memory of reported refusals: {e}; the next build reports them again",
                path.display()
            )
        })
    }
}

fn unusable(path: &Path, why: &str) -> String {
    format!(
        "{}: cannot use the memory of reported refusals ({why}): every refusal is reported as new",
        path.display()
    )
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What makes a refusal the same one again: the version of its file
/// ([`version`]) and its reason.
fn key(r: &Refusal) -> String {
    let mut h = Sha256::new();
    match r.version.or_else(|| version(&r.file)) {
        Some((s, digest)) => {
            for n in [s.dev, s.ino, s.size] {
                h.update(n.to_le_bytes());
            }
            for n in [s.mtime_ns, s.ctime_ns] {
                h.update(n.to_le_bytes());
            }
            h.update(digest);
        }
        None => h.update(b"gone"),
    }
    h.update([0]);
    h.update(r.reason.as_bytes());
    hex(&h.finalize()[..16])
}

/// The version of a refused file: its stamp, and for a regular file the
/// SHA-256 of its first 64 KiB (a drop file over the size limit is not
/// read further; its size is in the stamp). Opened as the drop reader
/// opens: never following a symlink, never blocking on a FIFO. Only for a
/// refusal that does not carry the version the drop reader read (a
/// challenge refused because it would break its zone).
fn version(path: &Path) -> Option<(Stamp, [u8; 32])> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let mut digest = Sha256::new();
    if meta.file_type().is_file() {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path);
        if let Ok(f) = file {
            // The same regular file that was stamped, or no digest.
            if f.metadata()
                .is_ok_and(|m| m.is_file() && m.ino() == meta.ino())
            {
                let mut bytes = Vec::new();
                let _ = f.take(64 * 1024).read_to_end(&mut bytes);
                digest.update(&bytes);
            }
        }
    }
    Some((Stamp::of(&meta), digest.finalize().into()))
}

/// How many new refusals get a line of their own: the rest are counted and
/// summed up in one line.
#[derive(Debug)]
pub struct Cap {
    lines: usize,
    /// `None`: the cap is per build (the summary ends the build's lines);
    /// else per this long (the summary comes when it has passed).
    interval: Option<Duration>,
    started: Instant,
    shown: usize,
    held: usize,
    held_files: HashSet<PathBuf>,
}

impl Cap {
    /// At most `lines` lines for one build.
    pub fn per_build(lines: usize) -> Cap {
        Cap {
            lines,
            interval: None,
            started: Instant::now(),
            shown: 0,
            held: 0,
            held_files: HashSet::new(),
        }
    }

    /// At most `lines` lines per `interval` (`watch`, `run`).
    pub fn per_interval(lines: usize, interval: Duration) -> Cap {
        Cap {
            interval: Some(interval),
            ..Cap::per_build(lines)
        }
    }

    /// Take new limits (a config read again); the counts of the current
    /// interval stay.
    pub fn set_limits(&mut self, lines: usize, interval: Duration) {
        self.lines = lines;
        if self.interval.is_some() {
            self.interval = Some(interval);
        }
    }

    /// Whether `r` gets a line of its own; if not, it is counted.
    pub fn admit(&mut self, r: &Refusal) -> bool {
        if self.shown < self.lines {
            self.shown += 1;
            return true;
        }
        self.held += 1;
        self.held_files.insert(r.file.clone());
        false
    }

    /// The summary of the refusals held back, if any, and a fresh count:
    /// for a per-build cap at the end of the build, for an interval once
    /// it has passed (`None` before).
    pub fn summary(&mut self) -> Option<String> {
        let text = match self.interval {
            Some(i) if self.started.elapsed() < i => return None,
            Some(i) => format!(
                "in the last {}, over [build] refusal_lines = {} per refusal_interval",
                humantime::format_duration(Duration::from_secs(i.as_secs().max(1))),
                self.lines
            ),
            None => format!("over [build] refusal_lines = {}", self.lines),
        };
        let out = (self.held > 0).then(|| {
            let s = |n: usize| if n == 1 { "" } else { "s" };
            format!(
                "{} more new refusal{} ({} file{}) {text}, not shown one by one: `zonedrop check` or `zonedrop list` shows them all",
                self.held,
                s(self.held),
                self.held_files.len(),
                s(self.held_files.len())
            )
        });
        self.started = Instant::now();
        self.shown = 0;
        self.held = 0;
        self.held_files.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(file: &Path, reason: &str) -> Refusal {
        Refusal {
            file: file.to_path_buf(),
            reason: reason.into(),
            version: None,
        }
    }

    #[test]
    fn a_refusal_is_new_once_per_version_and_forgotten_when_gone() {
        let d = tempfile::tempdir().unwrap();
        let junk = d.path().join("junk");
        std::fs::write(&junk, "junk").unwrap();
        let r = [refusal(&junk, "bad")];
        let mut m = Memory::kept();
        assert_eq!(m.sort(&r), [true]);
        assert_eq!(m.sort(&r), [false]);
        assert_eq!(m.sort(&[refusal(&junk, "worse")]), [true], "a new reason");
        std::fs::write(&junk, "jank").unwrap();
        assert_eq!(m.sort(&r), [true], "a rewritten file");
        assert_eq!(m.sort(&[]), Vec::<bool>::new());
        assert!(m.seen.contains_key(&junk), "still there: remembered");
        std::fs::remove_file(&junk).unwrap();
        m.sort(&[]);
        assert!(m.seen.is_empty(), "gone: forgotten");
    }

    #[test]
    fn stored_memory_survives_and_damage_is_one_line() {
        let d = tempfile::tempdir().unwrap();
        let junk = d.path().join("j\u{1b}\n");
        std::fs::write(&junk, "junk").unwrap();
        let file = d.path().join(FILE);
        let mut m = Memory {
            file: Some(file.clone()),
            ..Memory::default()
        };
        assert_eq!(m.load(), None);
        m.sort(&[refusal(&junk, "bad")]);
        assert_eq!(m.save(), None);
        let mut again = Memory {
            file: Some(file.clone()),
            ..Memory::default()
        };
        assert_eq!(again.load(), None);
        assert_eq!(again.sort(&[refusal(&junk, "bad")]), [false]);
        std::fs::remove_file(&file).unwrap();
        assert_eq!(again.save(), None);
        assert!(!file.exists(), "nothing changed: not written again");
        std::fs::write(&file, "{not json").unwrap();
        let mut damaged = Memory {
            file: Some(file),
            ..Memory::default()
        };
        assert!(damaged
            .load()
            .unwrap()
            .contains("every refusal is reported as new"));
        assert_eq!(damaged.sort(&[refusal(&junk, "bad")]), [true]);
    }

    #[test]
    fn the_cap_counts_what_it_holds_back() {
        let mut cap = Cap::per_build(2);
        let p = Path::new("x");
        let admitted: Vec<bool> = (0..5).map(|_| cap.admit(&refusal(p, "r"))).collect();
        assert_eq!(admitted, [true, true, false, false, false]);
        let s = cap.summary().unwrap();
        assert!(s.starts_with("3 more new refusals (1 file)"), "{s}");
        assert_eq!(cap.summary(), None);
        let mut cap = Cap::per_interval(0, Duration::from_secs(3600));
        assert!(!cap.admit(&refusal(p, "r")));
        assert_eq!(cap.summary(), None, "the interval has not passed");
    }
}
