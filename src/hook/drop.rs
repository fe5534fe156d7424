//! The drop directory: atomic writes of fragments by hooks, exact removal,
//! and careful reading of a directory whose contents are hostile.
//!
//! Writers put each (owner, value) pair in its own file, named after the pair,
//! through a temporary dot-file in the same directory (fsync, chmod 0644,
//! rename, fsync the directory). Readers skip dot-files, never follow a
//! symlink, never open anything but a regular file, never block, and never
//! read more than the size limit. Whether what they read is acceptable is the
//! whitelist's decision, not this module's.

// Input here comes from drop directories, hooks or zone files: never panic on it.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use crate::base::fs::{sync_dir, write_atomic};
use crate::base::hex;
use crate::hook::fragment::{Fragment, FragmentError};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DropError {
    #[error("drop directory {0} does not exist")]
    Missing(PathBuf),
    #[error("{0} is not a directory; the drop directory (--drop, ZONEDROP_DROP, [hook] drop or a [[drop]] path) must name one")]
    NotDir(PathBuf),
    #[error("drop directory {path} is not writable: {source}")]
    NotWritable { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DropError + '_ {
    move |source| DropError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What `add` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    Written(PathBuf),
    AlreadyThere(PathBuf),
}

/// Why one entry of a drop directory was not read as a fragment.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ReadRefusal {
    #[error("not a regular file (symlink, FIFO, device or folder)")]
    NotRegular,
    #[error("larger than {0} bytes")]
    TooLarge(u64),
    #[error("unreadable: {0}")]
    Unreadable(String),
    #[error("{0}")]
    Syntax(FragmentError),
}

/// One file of a drop directory, read and parsed (or not).
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: PathBuf,
    pub modified: SystemTime,
    pub fragment: Result<Fragment, ReadRefusal>,
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
        Err(source) => Err(DropError::Io {
            path: dir.to_path_buf(),
            source,
        }),
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
    check_dir(dir)?;
    let target = dir.join(file_name_by(&fragment.owner, &fragment.value, writer));
    if let Ok(Entry {
        fragment: Ok(f), ..
    }) = read_entry(&target, 4096)
    {
        if f.owner == fragment.owner && f.value == fragment.value {
            return Ok(Added::AlreadyThere(target));
        }
    }
    let text = fragment.render(default_ttl);
    write_atomic(&target, &[text.as_bytes()]).map_err(|source| DropError::NotWritable {
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
    check_dir(dir)?;
    let mut removed = Vec::new();
    for entry in read_dir(dir, max_bytes)? {
        if let Ok(f) = &entry.fragment {
            if f.owner == owner && f.value == value {
                match fs::remove_file(&entry.path) {
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
        }
    }
    if !removed.is_empty() {
        sync_dir(dir);
    }
    Ok(removed)
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
    check_dir(dir)?;
    let suffix = writer_suffix(writer);
    let mut removed = Vec::new();
    for name in list_names(dir)? {
        if !name.as_encoded_bytes().ends_with(suffix.as_bytes()) {
            continue;
        }
        let path = dir.join(&name);
        let Ok(Entry {
            fragment: Ok(f), ..
        }) = read_entry(&path, max_bytes)
        else {
            continue;
        };
        if f.owner != owner || value.is_some_and(|v| v != f.value) {
            continue;
        }
        match fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(DropError::NotWritable { path, source }),
        }
    }
    if !removed.is_empty() {
        sync_dir(dir);
    }
    Ok(removed)
}

/// The names in `dir` a reader considers: everything but dot-files
/// (temporaries, editor and `rsync` leftovers), sorted for stable output.
pub fn list_names(dir: &Path) -> Result<Vec<OsString>, DropError> {
    let mut names: Vec<OsString> = fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| !n.as_encoded_bytes().starts_with(b"."))
        .collect();
    names.sort();
    Ok(names)
}

/// Read every entry of `dir` (see [`read_entry`]). Entries that vanish while
/// being read are skipped: they were removed, not refused.
pub fn read_dir(dir: &Path, max_bytes: u64) -> Result<Vec<Entry>, DropError> {
    let names = list_names(dir)?;
    Ok(names
        .into_iter()
        .filter_map(|n| read_entry(&dir.join(n), max_bytes).ok())
        .collect())
}

/// Read one drop file without trusting it: `lstat` first (a symlink, FIFO or
/// device is never opened), then open with `O_NOFOLLOW | O_NONBLOCK`, check
/// with `fstat` that it is the same regular file, and read at most
/// `max_bytes + 1` bytes. `Err` only when the file is gone.
pub fn read_entry(path: &Path, max_bytes: u64) -> io::Result<Entry> {
    let meta = fs::symlink_metadata(path)?;
    let refused = |why| Entry {
        path: path.to_path_buf(),
        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        fragment: Err(why),
    };
    if !meta.file_type().is_file() {
        return Ok(refused(ReadRefusal::NotRegular));
    }
    if meta.len() > max_bytes {
        return Ok(refused(ReadRefusal::TooLarge(max_bytes)));
    }
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(e),
        Err(e) => return Ok(refused(ReadRefusal::Unreadable(e.to_string()))),
    };
    let opened = file.metadata()?;
    if !opened.file_type().is_file() || opened.ino() != meta.ino() || opened.dev() != meta.dev() {
        // Swapped between lstat and open: treat as hostile.
        return Ok(refused(ReadRefusal::NotRegular));
    }
    let mut bytes = Vec::with_capacity(opened.len().min(max_bytes) as usize + 1);
    if let Err(e) = (&file).take(max_bytes + 1).read_to_end(&mut bytes) {
        return Ok(refused(ReadRefusal::Unreadable(e.to_string())));
    }
    if bytes.len() as u64 > max_bytes {
        return Ok(refused(ReadRefusal::TooLarge(max_bytes)));
    }
    Ok(Entry {
        path: path.to_path_buf(),
        modified: opened.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        fragment: Fragment::parse(&bytes).map_err(ReadRefusal::Syntax),
    })
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
}
