//! A drop directory is hostile ground; the source folders, the output, the
//! state and each zone's own files are trusted. A drop directory that is,
//! contains or lies inside one of them would let a drop writer publish any
//! record (extra/ is read whole) or touch the builder's own files, so the
//! config is refused. Paths are compared resolved (`..` and symlinks in
//! parents) and by device and inode of every ancestor (bind mounts).

use super::Config;
use crate::base::name::printable_path;
use std::collections::HashMap;
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
    // A zone's own files named in its `[[zone]]` table; the default ones
    // (soa/<zone>, primary/<zone>) lie in the folders above, whose check
    // covers them (a drop directory cannot be, contain or lie inside such a
    // file without lying inside or containing its folder).
    for z in &config.zones {
        let zone = z.name.trim_end_matches('.');
        if let Some(f) = z.file.as_ref().or(z.soa.as_ref()) {
            trusted.push((format!("zone {zone}'s SOA file"), f.clone()));
        }
        if let Some(f) = z.primary.as_ref().filter(|_| z.file.is_none()) {
            trusted.push((format!("zone {zone}'s records file"), f.clone()));
        }
    }
    // Every config load runs this (`zonedrop add` too, before it writes):
    // with a thousand zones, resolving each zone file from the root and
    // statting every ancestor again cost ~28,000 system calls. The zone
    // files share their folders, so folders are resolved and statted once.
    let mut memo = Memo::default();
    for d in &config.drops {
        let drop = memo.resolved(&d.path);
        for (what, path) in &trusted {
            let place = memo.resolved(path);
            let relation = match (memo.inside(&drop, &place), memo.inside(&place, &drop)) {
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
#[cfg(test)]
fn inside(inner: &Path, outer: &Path) -> bool {
    Memo::default().inside(inner, outer)
}

/// [`resolved`] and [`id`] with what one check already learnt: a folder's
/// resolution and a path's device and inode are asked once per check.
/// Only the answers are kept, never a decision: a file that is a symlink
/// is resolved in full, as [`resolved`] does.
#[derive(Default)]
struct Memo {
    resolved: HashMap<PathBuf, PathBuf>,
    ids: HashMap<PathBuf, Option<(u64, u64)>>,
}

impl Memo {
    /// [`resolved`]: a path whose last part is a plain name and not a
    /// symlink (or not there) resolves to its folder's resolution and that
    /// name, which is what `canonicalize` or the normalised rest gives.
    fn resolved(&mut self, path: &Path) -> PathBuf {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        if let Some(done) = self.resolved.get(&absolute) {
            return done.clone();
        }
        // The `lstat` of a plain name (not a symlink) is also what `stat`
        // says of the resolved path: its [`id`], kept, when no `..` can
        // make the kernel's walk and the lexical rest differ.
        let walked = !absolute.components().any(|c| c == Component::ParentDir);
        let plain = match (absolute.parent(), absolute.components().next_back()) {
            (Some(parent), Some(Component::Normal(name))) => {
                match std::fs::symlink_metadata(&absolute) {
                    Ok(m) if m.file_type().is_symlink() => None,
                    Ok(m) => Some((parent, name, Some(Some((m.dev(), m.ino()))))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        Some((parent, name, Some(None)))
                    }
                    Err(_) => Some((parent, name, None)),
                }
            }
            _ => None,
        };
        let out = match plain {
            Some((parent, name, known)) => {
                let out = self.resolved(parent).join(name);
                if let Some(known) = known.filter(|_| walked) {
                    self.ids.insert(out.clone(), known);
                }
                out
            }
            None => resolved(&absolute),
        };
        self.resolved.insert(absolute, out.clone());
        out
    }

    fn id(&mut self, path: &Path) -> Option<(u64, u64)> {
        if let Some(known) = self.ids.get(path) {
            return *known;
        }
        let known = id(path);
        self.ids.insert(path.to_path_buf(), known);
        known
    }

    /// Whether `inner` is `outer` or lies below it: by name once
    /// resolved, or because `inner` or one of its ancestors is the same
    /// file as `outer`.
    fn inside(&mut self, inner: &Path, outer: &Path) -> bool {
        if inner.starts_with(outer) {
            return true;
        }
        let Some(outer) = self.id(outer) else {
            return false;
        };
        inner.ancestors().any(|a| self.id(a) == Some(outer))
    }
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

    #[test]
    fn the_memo_resolves_as_the_whole_walk_does() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().canonicalize().unwrap();
        std::fs::create_dir_all(real.join("a/b")).unwrap();
        std::fs::write(real.join("a/b/f"), "").unwrap();
        std::os::unix::fs::symlink(real.join("a"), real.join("l")).unwrap();
        std::os::unix::fs::symlink(real.join("a/b/f"), real.join("a/fl")).unwrap();
        std::os::unix::fs::symlink(real.join("gone"), real.join("a/dangling")).unwrap();
        let mut memo = Memo::default();
        for p in [
            "a/b/f",
            "a/fl",
            "l/b/f",
            "l/fl",
            "l/x/../y",
            "a/../a",
            "l/new/deeper",
            "a/dangling",
            "a/dangling/x",
            "l/b/../fl",
            "a/b/f",
            "l/x/../b/f",
        ] {
            // Twice: the second answer comes from what the first learnt.
            for _ in 0..2 {
                assert_eq!(memo.resolved(&real.join(p)), resolved(&real.join(p)), "{p}");
            }
        }
        assert_eq!(memo.resolved(&real.join("l/fl")), real.join("a/b/f"));
        let drop = memo.resolved(&real.join("l/b"));
        let file = memo.resolved(&real.join("a/fl"));
        assert!(memo.inside(&file, &drop));
        // `l/x/..` is `a` by name: a/b/f is found though the kernel's walk
        // of l/x/../b/f fails at x.
        let mut memo = Memo::default();
        let by_name = memo.resolved(&real.join("l/x/../b/f"));
        assert_eq!(by_name, real.join("a/b/f"));
        assert!(id(&by_name).is_some());
        assert_eq!(memo.id(&by_name), id(&by_name));
        assert!(!memo.inside(&drop, &real.join("a/b/f")));
    }
}
