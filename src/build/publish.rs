//! Publishing a checked zone: its serial chosen by policy when its content
//! changed ([`publish_zone`]), the file written atomically, and what state/
//! remembers of it (serial, content hash, a pending `on_change`); and the
//! build lock.
//!
//! A zone file is written atomically ([`crate::base::fs::write_atomic`]):
//! a reader (a name server, rsync, a signer) sees the old zone or the new
//! one, never a part. Stale temporaries left by a killed build are removed
//! by the next.

use crate::base::config::{Config, SerialPolicy};
use crate::base::fs as files;
use crate::base::hex;
use crate::build::effects::Serving;
use crate::build::report::{Parts, Published, Txt};
use crate::build::serial;
use crate::build::zone::{Assembled, Rendered};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PublishError {
    #[error("{}: cannot write: {source}", crate::base::name::printable_path(path))]
    Write { path: PathBuf, source: io::Error },
    #[error("{}: another zonedrop build holds the lock; gave up after {}", crate::base::name::printable_path(path), humantime::format_duration(*waited))]
    Locked { path: PathBuf, waited: Duration },
    #[error("{}: cannot read the zone's state as {user}: {source}; the zone keeps its last published version until it can be read", path.display())]
    ReadState {
        path: PathBuf,
        user: String,
        source: io::Error,
    },
    #[error("{}: cannot write the zone's state as {user}: {source}; the zone keeps its last published version until it can be written", path.display())]
    WriteState {
        path: PathBuf,
        user: String,
        source: io::Error,
    },
    #[error("{}: cannot parse the zone's state ({source}); the zone keeps its last published version: delete the file to start afresh (the serial then continues from the published zone)", path.display())]
    ParseState {
        path: PathBuf,
        source: serde_json::Error,
    },
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

/// What [`publish_zone`] did.
#[derive(Debug)]
pub enum Publish {
    /// A new version was published.
    New(Published),
    /// The published version stands: its serial and parts.
    Same { serial: u32, parts: Parts },
}

/// Publish one checked zone if its content changed, or with `bump` in any
/// case; choose its serial (a bumped zone gets the next one by its policy,
/// changed or not). `serving`, the responder of `zonedrop run`, is offered
/// the new version before the file is written ([`Serving::ahead`]), and
/// its served serial counts as the previous one when it is ahead of
/// state/ (a version served ahead of a write that failed).
pub fn publish_zone(
    config: &Config,
    policy: SerialPolicy,
    a: &Assembled,
    challenges: &[Rendered],
    (now_unix, bump): (u64, bool),
    serving: Option<&dyn Serving>,
) -> Result<Publish, PublishError> {
    let state_dir = &config.paths.state;

    let out = config.published_path(&a.zone);
    let content = a.content();
    let at = challenges_at(content, challenges.len());
    let mut hasher = Sha256::new();
    hasher.update(&content.as_bytes()[..at]);
    let base: [u8; 32] = hasher.clone().finalize().into();
    hasher.update(&content.as_bytes()[at..]);
    if policy == SerialPolicy::Keep {
        hasher.update(a.soa.serial.to_be_bytes());
    }
    let hash = hex(&hasher.finalize());
    let parts = || Parts {
        base,
        challenges: challenges.iter().map(txt).collect(),
    };
    let previous = read_zone_state(state_dir, &a.zone)?;
    // The responder of `run` serves a version after the last one written
    // only when a write after [`Serving::ahead`] failed: that version
    // must be replaced, by one with a later serial.
    let served = serving.and_then(|s| s.serial(&a.zone));
    let behind = |p: &ZoneState| served.is_some_and(|s| serial::greater(s, p.serial));
    if let Some(p) = &previous {
        if p.hash == hash && out.exists() && !bump && !behind(p) {
            return Ok(Publish::Same {
                serial: p.serial,
                parts: parts(),
            });
        }
    }
    let old_serial = previous
        .as_ref()
        .map(|p| p.serial)
        .or_else(|| published_serial(&out));
    let seen = match (old_serial, served) {
        (Some(o), Some(s)) if serial::greater(s, o) => Some(s),
        (o, s) => o.or(s),
    };
    let new_serial = match previous
        .as_ref()
        .filter(|p| p.hash == hash && !bump && !behind(p))
    {
        // Same content, output lost: publish it again as it was.
        Some(p) => p.serial,
        None => serial::next(policy, seen, a.soa.serial, now_unix as i64),
    };
    let serial = new_serial.to_string();
    // The state is written after the zone (a crash in between republishes,
    // never loses a change): make sure first that it can be, or a zone
    // would go out that state/ does not know of.
    can_write_state(state_dir, &a.zone)?;
    if let Some(serving) = serving {
        serving.ahead(&a.zone, new_serial, &parts());
    }
    write_atomic(&out, &a.parts_with_serial(&serial).map(str::as_bytes))?;
    save_zone_state(
        state_dir,
        &a.zone,
        &ZoneState {
            serial: new_serial,
            hash,
            on_change_pending: config.build.on_change.is_some(),
            notify_pending: !config.build.notify.is_empty(),
            notify_retry_at: None,
        },
    )?;
    Ok(Publish::New(Published {
        zone: a.zone.clone(),
        file: out,
        old_serial,
        serial: new_serial,
        challenges: challenges.len(),
        parts: parts(),
    }))
}

/// Where the last `n` records of `text` begin: the challenges, which
/// `Assembled::set_records` writes last, one line each.
fn challenges_at(text: &str, n: usize) -> usize {
    let mut at = text.len();
    for _ in 0..n {
        at = text[..at.saturating_sub(1)]
            .rfind('\n')
            .map_or(0, |i| i + 1);
    }
    at
}

/// A challenge record as published: its value taken back out of the
/// quoted TXT data (`zone::quote_txt`).
fn txt(r: &Rendered) -> Txt {
    let quoted = r.rdata.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
    let mut value = String::with_capacity(r.rdata.len());
    let mut escaped = false;
    for c in quoted.unwrap_or(&r.rdata).chars() {
        if c == '\\' && !escaped {
            escaped = true;
            continue;
        }
        escaped = false;
        value.push(c);
    }
    Txt {
        owner: r.owner.to_ascii_lowercase(),
        ttl: r.ttl,
        value,
    }
}

/// What state/ remembers of a zone.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ZoneState {
    pub serial: u32,
    /// SHA-256 of the zone's content with the serial left open.
    pub hash: String,
    /// The on_change command is owed (published since, or it failed last
    /// time): run it at the next build.
    #[serde(default)]
    pub on_change_pending: bool,
    /// A NOTIFY is owed (published since, on_change not done yet, or a
    /// secondary did not acknowledge): send it once on_change is done.
    #[serde(default)]
    pub notify_pending: bool,
    /// After a NOTIFY that failed: not before this Unix time again, unless
    /// the zone is published anew (a secondary that is down must not cost
    /// every build the NOTIFY timeouts).
    #[serde(default)]
    pub notify_retry_at: Option<u64>,
}

pub fn zone_state_path(state: &Path, zone: &str) -> PathBuf {
    state.join(format!("zone-{}.json", zone.trim_end_matches('.')))
}

/// What state/ remembers of a zone, if it can be read (see
/// [`read_zone_state`]).
pub fn load_zone_state(state: &Path, zone: &str) -> Option<ZoneState> {
    read_zone_state(state, zone).ok().flatten()
}

/// What state/ remembers of a zone: `None` when there is nothing (a new
/// zone, or state/ lost); an error when it is there but cannot be read or
/// parsed: publishing without it could go back in serials.
pub fn read_zone_state(state: &Path, zone: &str) -> Result<Option<ZoneState>, PublishError> {
    let path = zone_state_path(state, zone);
    let text = match fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(PublishError::ReadState {
                path,
                user: files::user(),
                source,
            })
        }
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|source| PublishError::ParseState { path, source })
}

pub fn save_zone_state(state: &Path, zone: &str, s: &ZoneState) -> Result<(), PublishError> {
    let path = zone_state_path(state, zone);
    let text = serde_json::to_vec_pretty(s).unwrap_or_default();
    let fail = |source| PublishError::WriteState {
        path: path.clone(),
        user: files::user(),
        source,
    };
    fs::create_dir_all(state).map_err(fail)?;
    files::write_atomic(&path, &[&text]).map_err(fail)
}

/// Whether [`save_zone_state`] can replace the zone's state: a temporary
/// can be made beside it (then removed), and the name is no folder.
fn can_write_state(state: &Path, zone: &str) -> Result<(), PublishError> {
    let path = zone_state_path(state, zone);
    let fail = |source| PublishError::WriteState {
        path: path.clone(),
        user: files::user(),
        source,
    };
    fs::create_dir_all(state).map_err(fail)?;
    if path.is_dir() {
        return Err(fail(io::Error::from(io::ErrorKind::IsADirectory)));
    }
    tempfile::Builder::new()
        .prefix(files::TEMP_PREFIX)
        .tempfile_in(state)
        .map(drop)
        .map_err(fail)
}

/// The serial of a published zone file (its first SOA line), for when
/// state/ was lost.
pub fn published_serial(path: &Path) -> Option<u32> {
    let text = fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.contains(" IN SOA "))?;
    let rdata = line.split(" IN SOA ").nth(1)?;
    rdata.split_whitespace().nth(2)?.parse().ok()
}

/// The exclusive build lock (flock on state/lock), held while alive.
pub struct Lock {
    _file: File,
}

impl Lock {
    /// For readers of the published files, which need not write anything
    /// (the lock file is opened read-only and never created): `Err(())`
    /// while a build holds the lock, else the lock if there is a lock
    /// file to take (no build can start while it is held).
    #[allow(clippy::result_unit_err)]
    pub fn try_read(state: &Path) -> Result<Option<Lock>, ()> {
        let Ok(file) = File::open(state.join("lock")) else {
            return Ok(None);
        };
        match file.try_lock() {
            Ok(()) => Ok(Some(Lock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Err(()),
            Err(fs::TryLockError::Error(_)) => Ok(None),
        }
    }

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
    fn a_reader_takes_the_lock_only_when_no_build_holds_it() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(Lock::try_read(d.path()), Ok(None)));
        let lock = Lock::acquire(d.path(), Duration::ZERO).unwrap();
        assert!(Lock::try_read(d.path()).is_err());
        drop(lock);
        let reader = Lock::try_read(d.path()).unwrap().unwrap();
        assert!(Lock::acquire(d.path(), Duration::ZERO).is_err());
        drop(reader);
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
