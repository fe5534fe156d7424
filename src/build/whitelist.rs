//! The whitelist: which drop fragments become records in a zone.
//!
//! A record is accepted only if it is TXT (the fragment parser already
//! refuses anything else), its owner's first label is an allowed label, the
//! owner lies in a configured zone and within the names its drop directory
//! may touch ([`crate::base::rules`]), its value has the configured shape,
//! and its file passed the drop reader's checks; an aliased owner is
//! published at its alias's target ([`crate::build::zone::alias`]).
//! Accepted records are re-rendered by the zone builder with absolute
//! owner, clamped TTL, class IN and a quoted value; drop text itself never
//! reaches a zone.

// Input here comes from drop directories, hooks or zone files: never panic on it.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use crate::base::config::{Config, DropDir};
use crate::base::rules::{account_allows, check_label, check_value_at, drop_allows};
use crate::build::zone::alias::Aliases;
use crate::hook::drop::{self, Entry};
use crate::hook::fragment::Fragment;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A challenge record the builder may publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The zone it goes into.
    pub zone: String,
    /// Where it is published (the CNAME target for an aliased challenge).
    pub owner: String,
    /// TTL clamped to `[ttl_min, ttl_max]`.
    pub ttl: u32,
    pub value: String,
    /// The drop file it came from.
    pub file: PathBuf,
}

/// A drop file, or a record in it, that was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub file: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: refused: {}", self.file.display(), self.reason)
    }
}

/// Every drop directory read, checked and sorted into accepted challenges and
/// refusals.
pub struct Sorted {
    pub challenges: Vec<Challenge>,
    pub refusals: Vec<Refusal>,
}

/// Read all drop directories of `config` and apply the whitelist, with the
/// challenge aliases of the zone sources; `now` is injectable for tests; with
/// `prune`, expired fragments are removed where the builder may write.
pub fn sort_drops_with(config: &Config, aliases: &Aliases, now: SystemTime, prune: bool) -> Sorted {
    let mut out = Sorted {
        challenges: Vec::new(),
        refusals: Vec::new(),
    };
    for dir in &config.drops {
        sort_dir(config, dir, aliases, now, prune, &mut out);
    }
    limit_per_owner(&mut out, config.policy.max_values_per_name);
    out
}

fn sort_dir(
    config: &Config,
    dir: &DropDir,
    aliases: &Aliases,
    now: SystemTime,
    prune: bool,
    out: &mut Sorted,
) {
    let policy = &config.policy;
    let refuse = |out: &mut Sorted, file: &Path, reason: String| {
        out.refusals.push(Refusal {
            file: file.to_path_buf(),
            reason,
        })
    };
    let names = match drop::list_names(&dir.path) {
        Ok(n) => n,
        // A drop directory that does not exist (yet) holds no challenges.
        Err(drop::DropError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return
        }
        Err(e) => {
            refuse(out, &dir.path, e.to_string());
            return;
        }
    };
    let mut entries: Vec<Entry> = names
        .into_iter()
        .filter_map(|n| drop::read_entry(&dir.path.join(n), policy.max_fragment_bytes).ok())
        .collect();
    if entries.len() > policy.max_files {
        // Keep the newest: a live client's fragment is always recent.
        entries.sort_by_key(|e| std::cmp::Reverse(e.modified));
        let over = entries.split_off(policy.max_files);
        refuse(
            out,
            &dir.path,
            format!(
                "{} files over the limit of {} (policy.max_files) were ignored, oldest first",
                over.len(),
                policy.max_files
            ),
        );
    }
    for entry in entries {
        let remove = |path: &Path| {
            // Best effort: on a read-only mount it stays, and stays ignored.
            if prune {
                let _ = std::fs::remove_file(path);
            }
        };
        match judge(config, dir, &entry, aliases, now) {
            Ok(c) => out.challenges.push(c),
            Err(Verdict::Expired(reason)) => {
                remove(&entry.path);
                refuse(out, &entry.path, reason);
            }
            Err(Verdict::Refused(reason)) => refuse(out, &entry.path, reason),
        }
    }
}

/// Why [`judge`] did not accept an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Older than `policy.max_age`: ignored, and removed where possible.
    Expired(String),
    Refused(String),
}

impl Verdict {
    pub fn reason(&self) -> &str {
        match self {
            Verdict::Expired(r) | Verdict::Refused(r) => r,
        }
    }
}

/// The whole whitelist for one drop entry (but the per-owner limit, which
/// needs all of them): the challenge it yields, or why not.
pub fn judge(
    config: &Config,
    dir: &DropDir,
    entry: &Entry,
    aliases: &Aliases,
    now: SystemTime,
) -> Result<Challenge, Verdict> {
    let policy = &config.policy;
    let fragment = entry
        .fragment
        .as_ref()
        .map_err(|why| Verdict::Refused(why.to_string()))?;
    let age = now.duration_since(entry.modified).unwrap_or_default();
    if age > policy.max_age {
        return Err(Verdict::Expired(format!(
            "expired: older than policy.max_age ({})",
            humantime::format_duration(policy.max_age)
        )));
    }
    let (zone, owner) = accept(config, dir, fragment, aliases).map_err(Verdict::Refused)?;
    Ok(Challenge {
        zone,
        owner,
        ttl: fragment
            .ttl
            .unwrap_or(policy.ttl_default)
            .clamp(policy.ttl_min, policy.ttl_max),
        value: fragment.value.clone(),
        file: entry.path.clone(),
    })
}

/// The policy checks on one parsed fragment: its zone and final owner, or why not.
fn accept(
    config: &Config,
    dir: &DropDir,
    f: &Fragment,
    aliases: &Aliases,
) -> Result<(String, String), String> {
    check_label(&f.owner, &config.policy)?;
    check_value_at(&f.owner, &f.value, &config.policy)?;
    if config.zone_of(&f.owner).is_none() {
        return Err(format!(
            "the owner `{}` lies in no configured zone",
            f.owner
        ));
    }
    if !drop_allows(dir.names.as_deref(), &f.owner) {
        return Err(format!(
            "the owner `{}` is outside the names this drop directory may carry",
            f.owner
        ));
    }
    if !account_allows(dir.accounts.as_deref(), &f.owner) {
        return Err(format!(
            "the owner `{}` carries the label of an ACME account this drop directory may not carry ([[drop]] accounts)",
            f.owner
        ));
    }
    let owner = aliases.follow(&f.owner)?;
    match config.zone_of(&owner) {
        Some(zone) => Ok((zone.name.clone(), owner)),
        None => Err(format!(
            "`{}` is a CNAME to `{owner}`, which lies in no zone zonedrop manages",
            f.owner
        )),
    }
}

/// Drop duplicate pairs, then keep at most `max` values per owner (the newest
/// files win; the rest are refused).
fn limit_per_owner(out: &mut Sorted, max: usize) {
    let mut by_owner: BTreeMap<String, Vec<Challenge>> = BTreeMap::new();
    for c in out.challenges.drain(..) {
        let list = by_owner.entry(c.owner.clone()).or_default();
        if !list.iter().any(|x| x.value == c.value) {
            list.push(c);
        }
    }
    for (_, mut list) in by_owner {
        if list.len() > max {
            list.sort_by_key(|c| std::cmp::Reverse(modified(&c.file)));
            for c in list.split_off(max) {
                out.refusals.push(Refusal {
                    reason: format!(
                        "more than {max} values for `{}` (policy.max_values_per_name)",
                        c.owner
                    ),
                    file: c.file,
                });
            }
        }
        out.challenges.extend(list);
    }
    out.challenges
        .sort_by(|a, b| (&a.owner, &a.value).cmp(&(&b.owner, &b.value)));
}

fn modified(p: &Path) -> SystemTime {
    std::fs::symlink_metadata(p)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}
