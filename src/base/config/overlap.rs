//! A drop directory is hostile ground; the source folders, the output, the
//! state and each zone's own files are trusted. A drop directory that is,
//! contains or lies inside one of them would let a drop writer publish any
//! record (extra/ is read whole) or touch the builder's own files, so the
//! config is refused. Paths are compared resolved (`..` and symlinks in
//! parents) and by device and inode of every ancestor (bind mounts).

use super::Config;
use crate::base::name::printable_path;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// The first overlap of a `[[drop]]` path with a trusted place, as a
/// message naming both paths.
pub(super) fn check(config: &Config) -> Result<(), String> {
    let p = &config.paths;
    let mut trusted: Vec<(String, PathBuf)> = vec![
        ("the soa/ folder".into(), p.soa.clone()),
        ("the primary/ folder".into(), p.primary.clone()),
        ("the extra/ folder".into(), p.extra.clone()),
        ("the output folder".into(), p.unsigned.clone()),
        ("the state/ folder".into(), p.state.clone()),
    ];
    for z in &config.zones {
        let zone = z.name.trim_end_matches('.');
        trusted.push((format!("zone {zone}'s SOA file"), config.soa_file(z)));
        trusted.push((
            format!("zone {zone}'s records file"),
            config.primary_file(z),
        ));
    }
    for d in &config.drops {
        let drop = resolved(&d.path);
        for (what, path) in &trusted {
            let place = resolved(path);
            let relation = match (inside(&drop, &place), inside(&place, &drop)) {
                (true, true) => "is",
                (true, false) => "lies inside",
                (false, true) => "contains",
                (false, false) => continue,
            };
            return Err(format!(
                "the drop directory {} {relation} {what} {}: a drop writer could publish or change anything there; give each drop directory a folder of its own",
                printable_path(&d.path),
                printable_path(path)
            ));
        }
    }
    Ok(())
}

/// `path` made absolute, its longest existing part resolved (symlinks,
/// `..`), the rest normalised as written.
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut rest = Vec::new();
    let mut existing = absolute.as_path();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for c in rest.iter().rev() {
                match c {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::Normal(n) => out.push(n),
                    _ => {}
                }
            }
            return out;
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

fn id(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Whether `inner` is `outer` or lies below it: by name once resolved, or
/// because `inner` or one of its ancestors is the same file as `outer`.
fn inside(inner: &Path, outer: &Path) -> bool {
    if inner.starts_with(outer) {
        return true;
    }
    let Some(outer) = id(outer) else {
        return false;
    };
    inner.ancestors().any(|a| id(a) == Some(outer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_what_exists_and_normalises_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().canonicalize().unwrap();
        std::fs::create_dir(real.join("a")).unwrap();
        std::os::unix::fs::symlink(real.join("a"), real.join("l")).unwrap();
        assert_eq!(resolved(&real.join("l/x/../y")), real.join("a/y"));
        assert_eq!(resolved(&real.join("a/../a")), real.join("a"));
        assert!(inside(&resolved(&real.join("l/new")), &real.join("a")));
        assert!(!inside(&real.join("ab"), &real.join("a")));
    }
}
