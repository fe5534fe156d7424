//! The files the `[[tlsa]]` and `[[sshfp]]` entries name: each with the
//! owners, TTL and hold of its records (`inputs`, for
//! [`crate::dane::keys`] to compute them), and as plain paths, per zone
//! ([`key_inputs`], for the build's listing of what it reads).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use crate::base::config::{Config, SshfpHash, Tlsa, TlsaParams};
use crate::dane::keys::default_hold;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every file and folder the key records of `zone` (None: of every zone)
/// depend on: each `[[tlsa]]` cert and next, each `[[sshfp]]` key file, and
/// for a key folder the folder itself (its mtime moves when a file comes or
/// goes) followed by the files in it that count (see [`folder_files`]).
/// Missing paths are listed too. An entry counts for a zone when one of its
/// owners lies in it.
pub fn key_inputs(config: &Config, zone: Option<&str>) -> Vec<PathBuf> {
    let in_zone =
        |owner: &str| zone.is_none_or(|zone| config.zone_of(owner).is_some_and(|z| z.name == zone));
    let mut out: Vec<PathBuf> = Vec::new();
    let mut push = |p: PathBuf| {
        if !out.contains(&p) {
            out.push(p);
        }
    };
    for t in &config.tlsa {
        if !tlsa_owners(t).iter().any(|o| in_zone(o)) {
            continue;
        }
        push(t.cert.clone());
        if let Some(n) = &t.next {
            push(n.clone());
        }
    }
    for s in config.sshfp.iter().filter(|s| in_zone(&s.name)) {
        for path in &s.keys {
            push(path.clone());
            if path.is_dir() {
                folder_files(path)
                    .unwrap_or_default()
                    .into_iter()
                    .for_each(&mut push);
            }
        }
    }
    out
}

/// The owners of a `[[tlsa]]` entry's records. RFC 6698 §3: the owner is
/// `_<port>._<protocol>.<base domain name>`.
fn tlsa_owners(t: &Tlsa) -> Vec<String> {
    t.names
        .iter()
        .flat_map(|n| {
            t.ports
                .iter()
                .map(move |port| format!("_{port}._{}.{n}", t.proto))
        })
        .collect()
}

/// The files of a key folder that are read: `*.pub` (keys and host
/// certificates) and `known_hosts*`, skipping hidden and temporary names;
/// sorted. Private keys, `sshd_config` and the like next to them are ignored.
pub fn folder_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let wanted = name.ends_with(".pub") || name.starts_with("known_hosts");
        if name.starts_with('.') || !wanted {
            continue;
        }
        if entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// One file to compute records from.
pub(super) struct Input {
    /// Identifies the source across builds (config entry + file).
    pub(super) key: String,
    pub(super) entry: String,
    pub(super) path: PathBuf,
    pub(super) kind: Kind,
    pub(super) owners: Vec<String>,
    pub(super) ttl: u32,
    pub(super) hold: Duration,
    pub(super) next: bool,
}

pub(super) enum Kind {
    Tlsa(TlsaParams),
    Sshfp(SshfpHash),
}

/// A config entry path that could not even be listed: every source
/// remembered under it keeps its records.
pub(super) struct Unlisted {
    pub(super) entry: String,
    pub(super) error: String,
}

pub(super) fn inputs(config: &Config) -> (Vec<Input>, Vec<Unlisted>) {
    let mut out = Vec::new();
    let mut unlisted = Vec::new();
    for t in &config.tlsa {
        let p = t.params;
        let owners = tlsa_owners(t);
        let describe = |path: &Path, role: &str| {
            format!(
                "tlsa {role} {} {} {} {} {}",
                crate::base::name::printable_path(path),
                t.names.join(","),
                t.ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                t.proto,
                format_args!("{} {} {}", p.usage, p.selector, p.matching)
            )
        };
        let hold = t.hold.unwrap_or_else(|| default_hold(t.ttl));
        let mut add = |path: &Path, next: bool| {
            let key = describe(path, if next { "next" } else { "cert" });
            out.push(Input {
                entry: key.clone(),
                key,
                path: path.to_path_buf(),
                kind: Kind::Tlsa(p),
                owners: owners.clone(),
                ttl: t.ttl,
                hold,
                next,
            })
        };
        add(&t.cert, false);
        if let Some(n) = &t.next {
            add(n, true);
        }
    }
    for s in &config.sshfp {
        let hold = s.hold.unwrap_or_else(|| default_hold(s.ttl));
        let hash = format!("{:?}", s.hash).to_lowercase();
        for path in &s.keys {
            let entry = format!(
                "sshfp {} {hash} {}",
                s.name,
                crate::base::name::printable_path(path)
            );
            let files = match std::fs::metadata(path) {
                Ok(m) if m.is_dir() => match folder_files(path) {
                    Ok(files) => files,
                    Err(e) => {
                        unlisted.push(Unlisted {
                            entry,
                            error: format!(
                                "{}: cannot list the key folder: {e}",
                                crate::base::name::printable_path(path)
                            ),
                        });
                        continue;
                    }
                },
                Ok(_) => vec![path.clone()],
                Err(e) => {
                    unlisted.push(Unlisted {
                        entry,
                        error: format!(
                            "{}: cannot read: {e}",
                            crate::base::name::printable_path(path)
                        ),
                    });
                    continue;
                }
            };
            for file in files {
                out.push(Input {
                    key: format!(
                        "sshfp {} {hash} {}",
                        s.name,
                        crate::base::name::printable_path(&file)
                    ),
                    entry: entry.clone(),
                    path: file,
                    kind: Kind::Sshfp(s.hash),
                    owners: vec![s.name.clone()],
                    ttl: s.ttl,
                    hold,
                    next: false,
                });
            }
        }
    }
    (out, unlisted)
}
