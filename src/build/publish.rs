//! Publishing and remembering: atomic zone files, per-zone state (serial
//! and content hash), the manifest that makes an idle build cheap, and the
//! build lock.
//!
//! A zone file is written atomically ([`crate::base::fs::write_atomic`]):
//! a reader (a name server, rsync, a signer) sees the old zone or the new
//! one, never a part. Stale temporaries left by a killed build are removed
//! by the next.

use crate::base::fs::{self as files, stamp, Stamp};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PublishError {
    #[error("{}: cannot write: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{}: another zonedrop build holds the lock; gave up after {}", path.display(), humantime::format_duration(*waited))]
    Locked { path: PathBuf, waited: Duration },
}

fn write_err(path: &Path) -> impl FnOnce(io::Error) -> PublishError + '_ {
    move |source| PublishError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Write `parts` to `path` atomically, making its folder first.
pub fn write_atomic(path: &Path, parts: &[&[u8]]) -> Result<(), PublishError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(write_err(dir))?;
    files::write_atomic(path, parts).map_err(write_err(path))
}

/// What state/ remembers of a zone.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ZoneState {
    pub serial: u32,
    /// SHA-256 of the zone's content with the serial left open.
    pub hash: String,
    /// The on_change command failed last time: run it again.
    #[serde(default)]
    pub on_change_pending: bool,
}

pub fn zone_state_path(state: &Path, zone: &str) -> PathBuf {
    state.join(format!("zone-{}.json", zone.trim_end_matches('.')))
}

pub fn load_zone_state(state: &Path, zone: &str) -> Option<ZoneState> {
    let text = fs::read(zone_state_path(state, zone)).ok()?;
    serde_json::from_slice(&text).ok()
}

pub fn save_zone_state(state: &Path, zone: &str, s: &ZoneState) -> Result<(), PublishError> {
    let path = zone_state_path(state, zone);
    let text = serde_json::to_vec_pretty(s).unwrap_or_default();
    write_atomic(&path, &[&text])
}

/// The serial of a published zone file (its first SOA line), for when
/// state/ was lost.
pub fn published_serial(path: &Path) -> Option<u32> {
    let text = fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.contains(" IN SOA "))?;
    let rdata = line.split(" IN SOA ").nth(1)?;
    rdata.split_whitespace().nth(2)?.parse().ok()
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

/// The exclusive build lock (flock on state/lock), held while alive.
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Take the lock, waiting up to `wait`.
    pub fn acquire(state: &Path, wait: Duration) -> Result<Lock, PublishError> {
        fs::create_dir_all(state).map_err(write_err(state))?;
        let path = state.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(write_err(&path))?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Lock { _file: file }),
                Err(fs::TryLockError::WouldBlock) if start.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(PublishError::Locked { path, waited: wait })
                }
                Err(fs::TryLockError::Error(e)) => return Err(write_err(&path)(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_and_serial_recovery() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("out/example.test");
        write_atomic(
            &p,
            &[
                b"example.test. 3600 IN SOA ns1.example.test. h.example.test. ",
                b"42",
                b" 1 2 3 4\n",
            ],
        )
        .unwrap();
        assert_eq!(published_serial(&p), Some(42));
    }

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

    #[test]
    fn second_lock_waits_then_gives_up() {
        let d = tempfile::tempdir().unwrap();
        let _held = Lock::acquire(d.path(), Duration::ZERO).unwrap();
        let e = Lock::acquire(d.path(), Duration::from_millis(120))
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .contains("another zonedrop build holds the lock"),
            "{e}"
        );
    }
}
