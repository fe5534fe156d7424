//! Pruning a drop directory on its writable side: the fragments older than
//! `policy.max_age` (which no builder publishes any more), and the
//! temporaries of killed writers as old. A builder that reads the
//! directory through a read-only mount cannot remove them; `zonedrop
//! prune` (from the ACME client's crontab) and every `add` and `del` do.
//!
//! Only regular files are removed: a symlink, FIFO or folder in a drop
//! directory is the operator's to look at (the builder refuses it).

use crate::base::fs::TEMP_PREFIX;
use crate::hook::drop::{DropError, DropHandle};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A hook (`add`, `del`) looks at this many entries at most, from a
/// random place in the listing on; `zonedrop prune` looks at all. With
/// thousands of fragments pending a hook would otherwise `stat` them all
/// at every call; fragments live for `policy.max_age` (a day by
/// default), and what one call leaves a later one (or the builder's
/// refusal as expired, or cron's `zonedrop prune`) takes.
pub const HOOK_LOOKS: usize = 64;

/// What a prune did.
#[derive(Debug, Default)]
pub struct Pruned {
    pub removed: Vec<PathBuf>,
    /// Expired files that could not be removed, and why.
    pub failed: Vec<(PathBuf, io::Error)>,
}

/// Remove from `dir` every regular file (fragment, or a temporary of a
/// killed writer) whose mtime is more than `max_age` before `now`. A file
/// dated in the future is not old. The directory is opened once, as a hook
/// opens it, and listed, stat'ed and unlinked relative to that handle.
pub fn prune(dir: &Path, max_age: Duration, now: SystemTime) -> Result<Pruned, DropError> {
    let handle = DropHandle::open_following(dir)?;
    prune_in(&handle, dir, max_age, now, None)
}

/// [`prune`], as a hook does it: at most [`HOOK_LOOKS`] entries looked at.
pub fn prune_some(dir: &Path, max_age: Duration, now: SystemTime) -> Result<Pruned, DropError> {
    let handle = DropHandle::open_following(dir)?;
    prune_in(&handle, dir, max_age, now, Some(HOOK_LOOKS))
}

fn prune_in(
    handle: &DropHandle,
    dir: &Path,
    max_age: Duration,
    now: SystemTime,
    looks: Option<usize>,
) -> Result<Pruned, DropError> {
    let mut out = Pruned::default();
    let mut names = handle.all_names()?;
    if let Some(n) = looks.filter(|n| *n < names.len()) {
        use std::hash::BuildHasher;
        let from =
            std::collections::hash_map::RandomState::new().hash_one(now) as usize % names.len();
        names.rotate_left(from);
        names.truncate(n);
    }
    for name in names {
        let bytes = name.as_encoded_bytes();
        if bytes.starts_with(b".") && !bytes.starts_with(TEMP_PREFIX.as_bytes()) {
            continue;
        }
        let Ok(Some(modified)) = handle.regular_mtime(&name) else {
            continue;
        };
        let age = now.duration_since(modified).unwrap_or_default();
        if age <= max_age {
            continue;
        }
        let path = dir.join(&name);
        match handle.remove(&name) {
            Ok(()) => out.removed.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => out.failed.push((path, e)),
        }
    }
    if !out.removed.is_empty() {
        handle.sync();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_regular_files_go() {
        let d = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let age = |p: &Path, secs: u64| {
            std::fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(now - Duration::from_secs(secs))
                .unwrap();
        };
        for (name, secs) in [
            ("old", 7200),
            ("new", 60),
            (".zonedrop-tmp", 7200),
            (".other", 7200),
        ] {
            let p = d.path().join(name);
            std::fs::write(&p, "x").unwrap();
            age(&p, secs);
        }
        std::fs::create_dir(d.path().join("folder")).unwrap();
        let pruned = prune(d.path(), Duration::from_secs(3600), now).unwrap();
        let mut removed: Vec<_> = pruned
            .removed
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        removed.sort();
        assert_eq!(removed, [".zonedrop-tmp", "old"]);
        assert!(d.path().join("new").exists() && d.path().join(".other").exists());
        assert!(d.path().join("folder").exists());
    }
}
