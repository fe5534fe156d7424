//! File plumbing every side shares: atomic writes, the temporaries a killed
//! writer leaves, folder fsync, and a file's identity on disk ([`Stamp`]).
//!
//! An atomic write goes to a temporary dot-file in the target's folder,
//! which is fsynced, renamed over the target, and the folder fsynced: a
//! reader (a name server, rsync, a signer, the builder reading a drop
//! directory) sees the old file or the new one, never a part, and after a
//! crash the rename is either there or not.

use rustix::fs::{AtFlags, Mode, OFlags};
use serde::{Deserialize, Serialize};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of the temporary files of atomic writes. Readers of drop
/// directories skip every dot-file; the builder removes these from its
/// output folder.
pub const TEMP_PREFIX: &str = ".zonedrop-";

/// Write `parts`, one after the other, to `path` atomically, mode 0644.
/// The folder must exist.
pub fn write_atomic(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)?;
    for part in parts {
        tmp.write_all(part)?;
    }
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir);
    Ok(())
}

/// Write `parts` to `path` atomically (a reader sees the old file or the
/// new one, and so does the next process after a writer was killed), mode
/// 0600, without fsync: for files that are rebuildable and checked when read
/// (the per-zone input record, caches), where a power loss may cost the
/// file but must not cost the time of a sync at every build.
pub fn write_replace(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    write_replace_with(path, |w| parts.iter().try_for_each(|p| w.write_all(p)))
}

/// [`write_replace`], the content written by `fill` (buffered), so that a
/// big file need not be built in memory first.
pub fn write_replace_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)?;
    {
        let mut w = io::BufWriter::with_capacity(1 << 16, tmp.as_file());
        fill(&mut w)?;
        w.flush()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// [`write_atomic`] into the open directory `dir` under `name`: the
/// temporary (created with `O_EXCL | O_NOFOLLOW`), the rename and the
/// folder's fsync are all relative to the handle, so a folder swapped for a
/// symlink meanwhile cannot send the file elsewhere.
pub fn write_atomic_at(dir: BorrowedFd<'_>, name: &OsStr, parts: &[&[u8]]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut attempts = 0;
    let (tmp, fd) = loop {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tmp = format!(
            "{TEMP_PREFIX}{}-{nanos:x}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        match rustix::fs::openat(dir, tmp.as_str(), flags, Mode::from_bits_truncate(0o600)) {
            Ok(fd) => break (tmp, fd),
            Err(rustix::io::Errno::EXIST) if attempts < 100 => attempts += 1,
            Err(e) => return Err(e.into()),
        }
    };
    let mut file = File::from(fd);
    let written = (|| -> io::Result<()> {
        for part in parts {
            file.write_all(part)?;
        }
        file.set_permissions(fs::Permissions::from_mode(0o644))?;
        file.sync_all()?;
        rustix::fs::renameat(dir, tmp.as_str(), dir, name)?;
        Ok(())
    })();
    if written.is_err() {
        let _ = rustix::fs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
    }
    written?;
    let _ = rustix::fs::fsync(dir);
    Ok(())
}

/// fsync a directory so a rename in it survives a crash; best effort, as
/// some file systems refuse to open directories for it.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Remove the temporaries that killed writers left in `dir`.
pub fn clean_temporaries(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name()
                .as_encoded_bytes()
                .starts_with(TEMP_PREFIX.as_bytes())
            {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// What identifies one version of a file on disk: a rename over it changes
/// the inode, an in-place write the size, mtime or ctime. Stored as an
/// array of its five numbers, all 64-bit: a manifest holds thousands, and
/// an idle build reads them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StampFields", into = "StampFields")]
pub struct Stamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    /// Nanoseconds since the Unix epoch, saturating beyond the years 1678
    /// and 2262 (a file dated out there still changes its ctime when it
    /// changes its mtime, and ctime is the kernel's clock).
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

/// [`Stamp`] as stored: device, inode, size, mtime, ctime.
type StampFields = (u64, u64, u64, i64, i64);

impl From<StampFields> for Stamp {
    fn from((dev, ino, size, mtime_ns, ctime_ns): StampFields) -> Stamp {
        Stamp {
            dev,
            ino,
            size,
            mtime_ns,
            ctime_ns,
        }
    }
}

impl From<Stamp> for StampFields {
    fn from(s: Stamp) -> StampFields {
        (s.dev, s.ino, s.size, s.mtime_ns, s.ctime_ns)
    }
}

impl Stamp {
    pub fn of(meta: &fs::Metadata) -> Stamp {
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// Who this process runs as, for a message about a file it cannot read or
/// write: `user NAME (uid N)`, or `uid N` when the name is unknown.
pub fn user() -> String {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    let mut pw = std::mem::MaybeUninit::<libc::passwd>::uninit();
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call, `buf` is as long as
    // said, and `pw` is only read when getpwuid_r set `found` to it.
    let name = unsafe {
        let rc = libc::getpwuid_r(
            uid,
            pw.as_mut_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        );
        if rc == 0 && !found.is_null() && !(*found).pw_name.is_null() {
            Some(
                std::ffi::CStr::from_ptr((*found).pw_name)
                    .to_string_lossy()
                    .into_owned(),
            )
        } else {
            None
        }
    };
    match name {
        Some(n) => format!("user {} (uid {uid})", crate::base::name::printable(&n)),
        None => format!("uid {uid}"),
    }
}

/// Stamp a path without following a final symlink; `None` when absent.
pub fn stamp(path: &Path) -> Option<Stamp> {
    fs::symlink_metadata(path).ok().map(|m| Stamp::of(&m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_leave_one_whole_file_and_temporaries_are_cleaned() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("zone");
        write_atomic(&p, &[b"one ", b"two\n"]).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "one two\n");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let before = stamp(&p).unwrap();
        write_atomic(&p, &[b"three\n"]).unwrap();
        assert_ne!(stamp(&p), Some(before), "a rename is a new version");
        let stored = serde_json::to_string(&before).unwrap();
        assert!(stored.starts_with('['), "{stored}");
        assert_eq!(serde_json::from_str::<Stamp>(&stored).unwrap(), before);
        fs::write(d.path().join(".zonedrop-stale"), "x").unwrap();
        fs::write(d.path().join(".other"), "x").unwrap();
        clean_temporaries(d.path());
        let mut names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, [".other", "zone"]);
        assert_eq!(stamp(&d.path().join("absent")), None);
    }

    #[test]
    fn the_user_is_named_with_the_uid() {
        // SAFETY: geteuid cannot fail.
        let uid = unsafe { libc::geteuid() };
        let u = user();
        assert!(
            u.ends_with(&format!("uid {uid})")) || u == format!("uid {uid}"),
            "{u}"
        );
    }
}
