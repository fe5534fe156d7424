//! The drop directory: atomic writes of fragments by hooks, exact removal,
//! and careful reading of a directory whose contents are hostile.
//!
//! Writers put each (owner, value) pair in its own file, named after the pair,
//! through a temporary dot-file in the same directory (fsync, chmod 0644,
//! rename, fsync the directory). Readers skip dot-files, never follow a
//! symlink, never open anything but a regular file, never block, and never
//! read more than the size limit, never read a file with more than one link.
//! Whether what they read is acceptable is the whitelist's decision, not
//! this module's.
//!
//! Everything goes through a [`DropHandle`]: the directory opened once
//! (`O_DIRECTORY`, and `O_NOFOLLOW` for the builder), every entry listed,
//! stat'ed, opened, written and removed relative to it, so a directory
//! swapped for a symlink meanwhile cannot send a read or a removal
//! elsewhere. Prune (`hook::prune`) and every other writer use it too.

// Input here comes from drop directories, hooks or zone files: never panic on it.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use crate::base::fs::{write_atomic_at, Stamp};
use crate::base::hex;
use crate::base::name::printable_path;
use crate::hook::fragment::{Fragment, FragmentError};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use sha2::{Digest, Sha256};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DropError {
    #[error("drop directory {} does not exist", printable_path(.0))]
    Missing(PathBuf),
    #[error("{} is not a directory; the drop directory (--drop, ZONEDROP_DROP, [hook] drop or a [[drop]] path) must name one", printable_path(.0))]
    NotDir(PathBuf),
    #[error("drop directory {} is a symbolic link{}: name the real directory in the config (whoever can replace a link can point it at any folder while zonedrop reads and removes files there)", printable_path(.path), .target.as_ref().map_or(String::new(), |t| format!(" to {}", printable_path(t))))]
    Symlink {
        path: PathBuf,
        target: Option<PathBuf>,
    },
    #[error("drop directory {} is not writable: {source}", printable_path(.path))]
    NotWritable { path: PathBuf, source: io::Error },
    #[error("drop directory {} cannot be listed: {source}", printable_path(.path))]
    Unlistable { path: PathBuf, source: io::Error },
}

/// What `add` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    Written(PathBuf),
    AlreadyThere(PathBuf),
}

/// Why one entry of a drop directory was not read as a fragment. None of
/// these carries a byte of the file's content.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ReadRefusal {
    #[error("not a regular file (symlink, FIFO, device or folder)")]
    NotRegular,
    #[error("it has {0} hard links: a fragment has one (a link could make zonedrop read a file from elsewhere)")]
    HardLinked(u64),
    #[error("larger than {0} bytes")]
    TooLarge(u64),
    #[error("unreadable: {0}")]
    Unreadable(String),
    #[error("{0}")]
    Syntax(FragmentError),
}

/// One version of a drop file, as the refusal memory tells versions apart:
/// its stamp and the SHA-256 of what was read of it (nothing for a file
/// refused unread). Taken from the read itself, never by opening the path
/// again.
pub type Version = (Stamp, [u8; 32]);

/// One file of a drop directory, read and parsed (or not).
#[derive(Debug, Clone)]
pub struct Entry {
    /// The directory's path joined with the name: for messages and stamps
    /// only, never opened again.
    pub path: PathBuf,
    /// The name in its directory, as listed.
    pub name: OsString,
    pub modified: SystemTime,
    pub fragment: Result<Fragment, ReadRefusal>,
    pub version: Option<Version>,
}

/// The file name of the fragment for (owner, value): readable, at most 255
/// bytes, and distinct for every pair.
pub fn file_name(owner: &str, value: &str) -> String {
    file_name_by(owner, value, None)
}

/// The file name of the fragment for (owner, value) written by `writer` (an
/// RFC 2136 update key, `live::update`): `<owner>.<hex>.tsig-<key>`, so the
/// key's own fragments can be told from a hook's. `None`: a hook's name.
pub fn file_name_by(owner: &str, value: &str, writer: Option<&str>) -> String {
    let mut digest = Sha256::new()
        .chain_update(owner.as_bytes())
        .chain_update([0u8])
        .chain_update(value.as_bytes());
    if let Some(w) = writer {
        digest = digest.chain_update([0u8]).chain_update(w.as_bytes());
    }
    let hex = hex(&digest.finalize()[..8]);
    let stem = owner.trim_end_matches('.');
    let stem = &stem[..stem.len().min(200)];
    match writer {
        Some(w) => format!("{stem}.{hex}{}", writer_suffix(w)),
        None => format!("{stem}.{hex}"),
    }
}

/// What the file names of `writer`'s fragments end with.
pub fn writer_suffix(writer: &str) -> String {
    let w = writer.trim_end_matches('.');
    format!(".tsig-{}", &w[..w.len().min(40)])
}

/// Check that `dir` exists and is a directory.
pub fn check_dir(dir: &Path) -> Result<(), DropError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(DropError::NotDir(dir.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(DropError::Missing(dir.to_path_buf())),
        Err(source) => Err(DropError::Unlistable {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// An open drop directory. It is opened once; every listing, read, write
/// and removal after that is relative to the handle (`openat`, `unlinkat`,
/// `renameat`), so swapping the directory for a symlink, or moving it,
/// cannot make zonedrop read or remove anything outside it.
#[derive(Debug)]
pub struct DropHandle {
    fd: OwnedFd,
    path: PathBuf,
}

impl DropHandle {
    /// Open `path` as a reader of hostile entries (the builder, `list`): a
    /// symlink in place of the directory is refused. A mount point is fine.
    pub fn open(path: &Path) -> Result<DropHandle, DropError> {
        DropHandle::open_with(path, false)
    }

    /// Open `path` as a hook does: its `--drop` may be a symlink to the real
    /// directory (its own view of it); the handle is what counts after that.
    pub fn open_following(path: &Path) -> Result<DropHandle, DropError> {
        DropHandle::open_with(path, true)
    }

    fn open_with(path: &Path, follow: bool) -> Result<DropHandle, DropError> {
        let mut flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        if !follow {
            flags |= OFlags::NOFOLLOW;
        }
        match rfs::open(path, flags, Mode::empty()) {
            Ok(fd) => Ok(DropHandle {
                fd,
                path: path.to_path_buf(),
            }),
            Err(e) => {
                let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
                let e = io::Error::from(e);
                Err(if is_link && !follow {
                    DropError::Symlink {
                        path: path.to_path_buf(),
                        target: fs::canonicalize(path).ok(),
                    }
                } else if e.kind() == io::ErrorKind::NotFound {
                    DropError::Missing(path.to_path_buf())
                } else if e.raw_os_error() == Some(libc::ENOTDIR) {
                    DropError::NotDir(path.to_path_buf())
                } else {
                    DropError::Unlistable {
                        path: path.to_path_buf(),
                        source: e,
                    }
                })
            }
        }
    }

    /// The path it was opened by, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn unlistable(&self, e: impl Into<io::Error>) -> DropError {
        DropError::Unlistable {
            path: self.path.clone(),
            source: e.into(),
        }
    }

    /// The names a reader considers: everything but dot-files (temporaries,
    /// editor and `rsync` leftovers), sorted for stable output. A listing
    /// that fails part way is an error, never a shorter list.
    pub fn names(&self) -> Result<Vec<OsString>, DropError> {
        let mut names = self.all_names()?;
        names.retain(|n| !n.as_encoded_bytes().starts_with(b"."));
        Ok(names)
    }

    /// Every name but `.` and `..`, dot-files included, sorted.
    pub fn all_names(&self) -> Result<Vec<OsString>, DropError> {
        let mut names = Vec::new();
        for e in rfs::Dir::read_from(&self.fd).map_err(|e| self.unlistable(e))? {
            let e = e.map_err(|e| self.unlistable(e))?;
            let name = e.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name.to_vec()));
            }
        }
        names.sort();
        Ok(names)
    }

    /// The mtime of `name` if it is a regular file (`fstatat` without
    /// following), `None` for anything else.
    pub fn regular_mtime(&self, name: &OsStr) -> io::Result<Option<SystemTime>> {
        let st = rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(
            (FileType::from_raw_mode(st.st_mode as _) == FileType::RegularFile)
                .then(|| mtime(st.st_mtime as i64, st.st_mtime_nsec as i64)),
        )
    }

    /// Read every entry (see [`DropHandle::read_entry`]). Entries that vanish
    /// while being read are skipped: they were removed, not refused.
    pub fn read_all(&self, max_bytes: u64) -> Result<Vec<Entry>, DropError> {
        Ok(self
            .names()?
            .into_iter()
            .filter_map(|n| self.read_entry(&n, max_bytes).ok())
            .collect())
    }

    /// Read one entry without trusting it: `fstatat` without following
    /// first (a symlink, FIFO or device is never opened, a file with more
    /// than one link never read), then `openat` with `O_NOFOLLOW |
    /// O_NONBLOCK`, `fstat` to see it is the same regular file, and at most
    /// `max_bytes + 1` bytes read. `Err` only when the file is gone.
    ///
    /// A file read before is not opened again when its stamp (device,
    /// inode, size, mtime, ctime) is the one it had then and that read
    /// came more than [`RACY`] after both its times ([`Reads`]): `watch`
    /// and `run` build again and again over the same pending fragments.
    pub fn read_entry(&self, name: &OsStr, max_bytes: u64) -> io::Result<Entry> {
        let started = SystemTime::now();
        let path = self.path.join(name);
        if let Some(kept) = Reads::unchanged(&path, max_bytes) {
            return Ok(kept);
        }
        let st = rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)?;
        if let Some(kept) = Reads::get(&path, &stamp_of(&st), max_bytes) {
            return Ok(kept);
        }
        let read = self.read_opened(name, &st, max_bytes)?;
        Reads::keep(&path, &stamp_of(&st), max_bytes, started, &read);
        Ok(read)
    }

    /// [`DropHandle::read_entry`] past its `fstatat` (`st`).
    #[allow(clippy::unnecessary_cast)] // FreeBSD's stat has other types
    fn read_opened(&self, name: &OsStr, st: &rfs::Stat, max_bytes: u64) -> io::Result<Entry> {
        let entry = |modified, fragment, version| Entry {
            path: self.path.join(name),
            name: name.to_os_string(),
            modified,
            fragment,
            version: Some(version),
        };
        let listed = mtime(st.st_mtime as i64, st.st_mtime_nsec as i64);
        let unread = (stamp_of(st), Sha256::digest(b"").into());
        let refused = |why| entry(listed, Err(why), unread);
        if FileType::from_raw_mode(st.st_mode as _) != FileType::RegularFile {
            return Ok(refused(ReadRefusal::NotRegular));
        }
        if st.st_nlink as u64 > 1 {
            return Ok(refused(ReadRefusal::HardLinked(st.st_nlink as u64)));
        }
        if st.st_size as u64 > max_bytes {
            return Ok(refused(ReadRefusal::TooLarge(max_bytes)));
        }
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let file = match rfs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(rustix::io::Errno::NOENT) => return Err(io::ErrorKind::NotFound.into()),
            Err(e) => {
                return Ok(refused(ReadRefusal::Unreadable(
                    io::Error::from(e).to_string(),
                )))
            }
        };
        let opened = file.metadata()?;
        if !opened.file_type().is_file()
            || opened.ino() != st.st_ino as u64
            || opened.dev() != st.st_dev as u64
        {
            // Swapped between the stat and the open: treat as hostile.
            return Ok(refused(ReadRefusal::NotRegular));
        }
        if opened.nlink() > 1 {
            return Ok(refused(ReadRefusal::HardLinked(opened.nlink())));
        }
        let modified = opened.modified().unwrap_or(UNIX_EPOCH);
        let mut bytes = Vec::with_capacity(opened.len().min(max_bytes) as usize + 1);
        let read = (&file).take(max_bytes + 1).read_to_end(&mut bytes);
        let version = (Stamp::of(&opened), Sha256::digest(&bytes).into());
        if let Err(e) = read {
            return Ok(entry(
                modified,
                Err(ReadRefusal::Unreadable(e.to_string())),
                version,
            ));
        }
        if bytes.len() as u64 > max_bytes {
            return Ok(entry(
                modified,
                Err(ReadRefusal::TooLarge(max_bytes)),
                version,
            ));
        }
        Ok(entry(
            modified,
            Fragment::parse(&bytes).map_err(ReadRefusal::Syntax),
            version,
        ))
    }

    /// Remove `name` from this directory (`unlinkat`): never anything
    /// elsewhere, whatever happened to the path since it was opened.
    pub fn remove(&self, name: &OsStr) -> io::Result<()> {
        rfs::unlinkat(&self.fd, name, AtFlags::empty()).map_err(io::Error::from)
    }

    /// Remove `entry` if its name still holds the file that was read (the
    /// same device and inode): one renamed over it since (a client adding
    /// the same pair again) stays.
    #[allow(clippy::unnecessary_cast)] // FreeBSD's stat has other types
    pub fn remove_entry(&self, entry: &Entry) -> io::Result<()> {
        if let Some((read, _)) = &entry.version {
            let st = rfs::statat(&self.fd, &entry.name, AtFlags::SYMLINK_NOFOLLOW)?;
            if (st.st_dev as u64, st.st_ino as u64) != (read.dev, read.ino) {
                return Ok(());
            }
        }
        self.remove(&entry.name)
    }

    /// Write `bytes` to `name` in this directory atomically.
    pub fn write(&self, name: &OsStr, bytes: &[u8]) -> io::Result<()> {
        write_atomic_at(self.fd.as_fd(), name, &[bytes])
    }

    /// fsync the directory so removals in it survive a crash; best effort.
    pub fn sync(&self) {
        let _ = rfs::fsync(&self.fd);
    }
}

/// The [`Stamp`] of an `fstatat` result.
/// A stamp this close to the read that kept it vouches for nothing (git's
/// racy-clean rule, as the manifest applies it): a file written again
/// within the same tick of a coarse clock keeps its stamp.
pub const RACY: Duration = Duration::from_secs(2);

/// At most this many reads are kept; past it the memory starts afresh
/// (a drop directory holds at most `policy.max_files` fragments).
const KEPT_READS: usize = 20_000;

/// What reading a drop file gave, kept per path in the process
/// ([`DropHandle::read_entry`]). A kept read is given back only for the
/// same stamp, ctime included, and only if it was read more than
/// [`RACY`] after the file's mtime and ctime; nothing else is kept: a
/// read that failed, or a file that moved between its `fstatat` and the
/// read. The whitelist still judges every entry at every build.
struct Reads;

type KeptRead = (Stamp, u64, Entry);

static READS: std::sync::Mutex<Option<std::collections::HashMap<PathBuf, KeptRead>>> =
    std::sync::Mutex::new(None);

thread_local! {
    /// While a build that goes by the watcher's events runs
    /// ([`going_by_events`]): the drop entries they named since the last
    /// build.
    static CHANGED: std::cell::RefCell<Option<std::collections::HashSet<PathBuf>>> =
        const { std::cell::RefCell::new(None) };
}

/// Run `build` (on this thread) knowing that of the drop entries only
/// those in `changed` can have changed since the last build, as the
/// watcher's change events tell (`live::watch`, never when polling): a
/// kept read of any other entry is given back without its `fstatat`.
/// Anything the events may have missed is read in full by the watcher's
/// next full build.
pub fn going_by_events<T>(
    changed: std::collections::HashSet<PathBuf>,
    build: impl FnOnce() -> T,
) -> T {
    CHANGED.with(|c| *c.borrow_mut() = Some(changed));
    let out = build();
    CHANGED.with(|c| *c.borrow_mut() = None);
    out
}

impl Reads {
    /// The kept read of `path`, if a build going by events runs and they
    /// did not name it.
    fn unchanged(path: &Path, max_bytes: u64) -> Option<Entry> {
        let quiet = CHANGED.with(|c| c.borrow().as_ref().is_some_and(|c| !c.contains(path)));
        if !quiet {
            return None;
        }
        let reads = READS.lock().ok()?;
        let (_, bytes, entry) = reads.as_ref()?.get(path)?;
        (*bytes == max_bytes).then(|| entry.clone())
    }

    fn get(path: &Path, stamp: &Stamp, max_bytes: u64) -> Option<Entry> {
        let reads = READS.lock().ok()?;
        let (kept, bytes, entry) = reads.as_ref()?.get(path)?;
        (kept == stamp && *bytes == max_bytes).then(|| entry.clone())
    }

    fn keep(path: &Path, stamp: &Stamp, max_bytes: u64, started: SystemTime, read: &Entry) {
        let read_stamp = read.version.as_ref().map(|(s, _)| s);
        let parsed = matches!(read.fragment, Ok(_) | Err(ReadRefusal::Syntax(_)));
        let ns = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH).map_or(i64::MIN, |d| {
                i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
            })
        };
        let settled = stamp
            .mtime_ns
            .max(stamp.ctime_ns)
            .saturating_add(RACY.as_nanos() as i64)
            < ns(started);
        let Ok(mut reads) = READS.lock() else {
            return;
        };
        let reads = reads.get_or_insert_with(Default::default);
        if read_stamp != Some(stamp) || !parsed || !settled {
            reads.remove(path);
            return;
        }
        if reads.len() >= KEPT_READS {
            reads.clear();
        }
        reads.insert(path.to_path_buf(), (*stamp, max_bytes, read.clone()));
    }
}

// The casts are no-ops on Linux; FreeBSD's `struct stat` has other types.
#[allow(clippy::unnecessary_cast)]
fn stamp_of(st: &rfs::Stat) -> Stamp {
    let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
    Stamp {
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        size: st.st_size as u64,
        mtime_ns: ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
        ctime_ns: ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
    }
}

fn mtime(secs: i64, nanos: i64) -> SystemTime {
    let nanos = Duration::from_nanos(nanos.clamp(0, 999_999_999) as u64);
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64) + nanos
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + nanos
    }
}

/// Write `fragment` into `dir` atomically. Adding a pair that is already
/// there changes nothing.
pub fn add(dir: &Path, fragment: &Fragment, default_ttl: u32) -> Result<Added, DropError> {
    add_by(dir, fragment, default_ttl, None)
}

/// [`add`], under the file name of `writer` ([`file_name_by`]).
pub fn add_by(
    dir: &Path,
    fragment: &Fragment,
    default_ttl: u32,
    writer: Option<&str>,
) -> Result<Added, DropError> {
    let handle = DropHandle::open_following(dir)?;
    let name = OsString::from(file_name_by(&fragment.owner, &fragment.value, writer));
    let target = dir.join(&name);
    if let Ok(Entry {
        fragment: Ok(f), ..
    }) = handle.read_entry(&name, 4096)
    {
        if f.owner == fragment.owner && f.value == fragment.value {
            return Ok(Added::AlreadyThere(target));
        }
    }
    let text = fragment.render(default_ttl);
    handle
        .write(&name, text.as_bytes())
        .map_err(|source| DropError::NotWritable {
            path: dir.to_path_buf(),
            source,
        })?;
    Ok(Added::Written(target))
}

/// Remove every fragment in `dir` that carries exactly (owner, value): the
/// one `add` wrote, and any other one-line fragment with the same pair
/// under any file name. Returns the files removed; none is not an error.
pub fn del(
    dir: &Path,
    owner: &str,
    value: &str,
    max_bytes: u64,
) -> Result<Vec<PathBuf>, DropError> {
    remove_where(dir, max_bytes, |_, f| f.owner == owner && f.value == value)
}

/// Remove the fragments `writer` wrote at `owner` (all of them, or the one
/// with `value`); a hook's fragments, or another writer's, stay. Returns the
/// files removed.
pub fn del_by(
    dir: &Path,
    owner: &str,
    value: Option<&str>,
    writer: &str,
    max_bytes: u64,
) -> Result<Vec<PathBuf>, DropError> {
    let suffix = writer_suffix(writer);
    remove_where(dir, max_bytes, |name, f| {
        name.as_encoded_bytes().ends_with(suffix.as_bytes())
            && f.owner == owner
            && value.is_none_or(|v| v == f.value)
    })
}

/// Remove the fragments of `dir` (read through its handle) for which
/// `matches(name, fragment)` holds, then sync the directory once.
fn remove_where(
    dir: &Path,
    max_bytes: u64,
    matches: impl Fn(&OsStr, &Fragment) -> bool,
) -> Result<Vec<PathBuf>, DropError> {
    let handle = DropHandle::open_following(dir)?;
    let mut removed = Vec::new();
    for entry in handle.read_all(max_bytes)? {
        let Ok(f) = &entry.fragment else { continue };
        if !matches(&entry.name, f) {
            continue;
        }
        match handle.remove(&entry.name) {
            Ok(()) => removed.push(entry.path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(DropError::NotWritable {
                    path: entry.path,
                    source,
                })
            }
        }
    }
    if !removed.is_empty() {
        handle.sync();
    }
    Ok(removed)
}

/// The names in `dir` a reader considers ([`DropHandle::names`]).
pub fn list_names(dir: &Path) -> Result<Vec<OsString>, DropError> {
    DropHandle::open(dir)?.names()
}

/// Read every entry of `dir` as the builder does ([`DropHandle::read_all`]).
pub fn read_dir(dir: &Path, max_bytes: u64) -> Result<Vec<Entry>, DropError> {
    DropHandle::open(dir)?.read_all(max_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn frag(owner: &str, value: &str) -> Fragment {
        Fragment {
            owner: owner.into(),
            ttl: Some(60),
            value: value.into(),
        }
    }

    #[test]
    fn add_is_atomic_idempotent_and_0644() {
        let dir = tempfile::tempdir().unwrap();
        let f = frag("_acme-challenge.example.test.", "abc");
        let Added::Written(path) = add(dir.path(), &f, 60).unwrap() else {
            panic!("not written")
        };
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert!(matches!(
            add(dir.path(), &f, 60).unwrap(),
            Added::AlreadyThere(_)
        ));
        assert_eq!(list_names(dir.path()).unwrap().len(), 1);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "_acme-challenge.example.test. 60 IN TXT \"abc\"\n"
        );
    }

    #[test]
    fn del_removes_exactly_the_pair() {
        let dir = tempfile::tempdir().unwrap();
        add(dir.path(), &frag("_acme-challenge.a.test.", "one"), 60).unwrap();
        add(dir.path(), &frag("_acme-challenge.a.test.", "two"), 60).unwrap();
        fs::write(
            dir.path().join("foreign"),
            "_acme-challenge.a.test. 300 IN TXT \"one\"\n",
        )
        .unwrap();
        let removed = del(dir.path(), "_acme-challenge.a.test.", "one", 4096).unwrap();
        assert_eq!(removed.len(), 2);
        let left = read_dir(dir.path(), 4096).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].fragment.as_ref().unwrap().value, "two");
        assert!(del(dir.path(), "_acme-challenge.a.test.", "one", 4096)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn hostile_entries_are_refused_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        fs::create_dir(dir.path().join("sub")).unwrap();
        let d = dir.path().join("d");
        fs::create_dir(&d).unwrap();
        fs::write(&secret, "_acme-challenge.a.test. 60 IN TXT \"x\"").unwrap();
        std::os::unix::fs::symlink(&secret, d.join("link")).unwrap();
        let fifo =
            std::ffi::CString::new(d.join("fifo").into_os_string().into_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        fs::write(d.join("big"), vec![b'a'; 5000]).unwrap();
        fs::write(d.join(".zonedrop-tmp"), "partial").unwrap();
        let entries = read_dir(&d, 4096).unwrap();
        let by_name = |n: &str| {
            entries
                .iter()
                .find(|e| e.path.file_name().unwrap() == n)
                .map(|e| e.fragment.clone())
        };
        assert_eq!(by_name("link"), Some(Err(ReadRefusal::NotRegular)));
        assert_eq!(by_name("fifo"), Some(Err(ReadRefusal::NotRegular)));
        assert_eq!(by_name("big"), Some(Err(ReadRefusal::TooLarge(4096))));
        assert_eq!(by_name(".zonedrop-tmp"), None);
    }

    #[test]
    fn the_handle_stays_on_the_directory_it_opened() {
        let dir = tempfile::tempdir().unwrap();
        let (d, moved, other) = (
            dir.path().join("d"),
            dir.path().join("moved"),
            dir.path().join("other"),
        );
        fs::create_dir(&d).unwrap();
        fs::create_dir(&other).unwrap();
        fs::write(d.join("a"), "_acme-challenge.a.test. 60 IN TXT \"x\"").unwrap();
        fs::write(other.join("a"), "outside").unwrap();
        fs::hard_link(other.join("a"), d.join("linked")).unwrap();
        let h = DropHandle::open(&d).unwrap();
        // Swapped for a symlink after the open: the handle does not follow.
        fs::rename(&d, &moved).unwrap();
        std::os::unix::fs::symlink(&other, &d).unwrap();
        let entries = h.read_all(4096).unwrap();
        assert_eq!(entries.len(), 2);
        assert!(entries[0].fragment.is_ok());
        assert_eq!(entries[1].fragment, Err(ReadRefusal::HardLinked(2)));
        h.remove(OsStr::new("a")).unwrap();
        assert!(other.join("a").exists() && !moved.join("a").exists());
        // Opened by a path that is a symlink: refused, naming the target.
        let e = DropHandle::open(&d).unwrap_err();
        assert!(matches!(e, DropError::Symlink { .. }), "{e}");
        assert!(e
            .to_string()
            .contains(&fs::canonicalize(&other).unwrap().display().to_string()));
        // An entry renamed over since it was read is not removed.
        fs::write(moved.join("b"), "one").unwrap();
        let read = h.read_entry(OsStr::new("b"), 4096).unwrap();
        fs::write(moved.join(".new"), "two").unwrap();
        fs::rename(moved.join(".new"), moved.join("b")).unwrap();
        h.remove_entry(&read).unwrap();
        assert_eq!(fs::read_to_string(moved.join("b")).unwrap(), "two");
        let read = h.read_entry(OsStr::new("b"), 4096).unwrap();
        h.remove_entry(&read).unwrap();
        assert!(!moved.join("b").exists());
        // A hook's own view may be a link.
        assert_eq!(
            DropHandle::open_following(&d)
                .unwrap()
                .names()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn a_kept_read_serves_only_its_own_settled_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let h = DropHandle::open(dir.path()).unwrap();
        let name = OsStr::new("f");
        let path = dir.path().join(name);
        fs::write(&path, "_acme-challenge.example.test. 60 IN TXT \"aaa\"\n").unwrap();
        let stamp = |p: &Path| Stamp::of(&fs::symlink_metadata(p).unwrap());
        // Read within RACY of its write: not kept.
        h.read_entry(name, 4096).unwrap();
        assert!(Reads::get(&path, &stamp(&path), 4096).is_none());
        std::thread::sleep(RACY + Duration::from_millis(100));
        let first = h.read_entry(name, 4096).unwrap();
        let kept = Reads::get(&path, &stamp(&path), 4096).expect("a settled read is kept");
        assert_eq!(kept.fragment, first.fragment);
        assert!(Reads::get(&path, &stamp(&path), 100).is_none());
        // Rewritten in place, same size, mtime put back: ctime moved, so
        // the new value is read.
        let mtime = fs::metadata(&path).unwrap().modified().unwrap();
        fs::write(&path, "_acme-challenge.example.test. 60 IN TXT \"bbb\"\n").unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let again = h.read_entry(name, 4096).unwrap();
        assert_eq!(again.fragment.unwrap().value, "bbb");
        // A file that turned into a hard link is refused, not served kept.
        std::thread::sleep(RACY + Duration::from_millis(100));
        h.read_entry(name, 4096).unwrap();
        fs::hard_link(&path, dir.path().join("g")).unwrap();
        let linked = h.read_entry(name, 4096).unwrap();
        assert_eq!(linked.fragment, Err(ReadRefusal::HardLinked(2)));
    }
}
