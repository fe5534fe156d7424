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
use crate::base::name::printable_path;
use crate::base::rules::{account_allows, check_label, check_value_at, drop_allows};
use crate::build::zone::alias::Aliases;
use crate::hook::drop::{DropError, DropHandle, Entry, Version};
use crate::hook::fragment::Fragment;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

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
    /// Its mtime as read (the newest win under `max_values_per_name`; it
    /// expires `max_age` after).
    pub modified: SystemTime,
    /// The version read, for the refusal memory.
    pub version: Option<Version>,
}

/// A drop file, or a record in it, that was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub file: PathBuf,
    pub reason: String,
    /// The version of the file as the drop reader read it, when it did
    /// (the refusal memory's key); `None`: look at the path.
    pub version: Option<Version>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: refused: {}",
            printable_path(&self.file),
            self.reason
        )
    }
}

/// Every drop directory read, checked and sorted into accepted challenges and
/// refusals.
#[derive(Default)]
pub struct Sorted {
    pub challenges: Vec<Challenge>,
    pub refusals: Vec<Refusal>,
    /// Drop directories that could not be opened or listed, and why: an
    /// error for the zones they feed, which keep their last good output.
    pub unreadable: Vec<(DropDir, DropError)>,
    /// Drop directories that do not exist (yet): they hold no challenges.
    pub missing: Vec<PathBuf>,
    /// The earliest time a fragment refused as dated in the future comes
    /// within `policy.max_future`: the build's result is stale then.
    pub future_until: Option<SystemTime>,
}

/// Read all drop directories of `config` and apply the whitelist, with the
/// challenge aliases of the zone sources; `now` is injectable for tests; with
/// `prune`, expired fragments are removed where the builder may write.
pub fn sort_drops_with(config: &Config, aliases: &Aliases, now: SystemTime, prune: bool) -> Sorted {
    let mut out = Sorted::default();
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
    let refuse = |out: &mut Sorted, entry: Option<&Entry>, reason: String| {
        out.refusals.push(Refusal {
            file: entry.map_or_else(|| dir.path.clone(), |e| e.path.clone()),
            reason,
            version: entry.and_then(|e| e.version),
        })
    };
    // Opened once: every read and removal below is relative to the handle.
    let listed = DropHandle::open(&dir.path)
        .and_then(|h| h.read_all(policy.max_fragment_bytes).map(|e| (h, e)));
    let (handle, mut entries) = match listed {
        Ok(listed) => listed,
        // A drop directory that does not exist (yet) holds no challenges:
        // hooks may not have run.
        Err(DropError::Missing(path)) => {
            out.missing.push(path);
            return;
        }
        Err(e) => {
            out.unreadable.push((dir.clone(), e));
            return;
        }
    };
    if entries.len() > policy.max_files {
        // Keep the newest: a live client's fragment is always recent.
        entries.sort_by_key(|e| std::cmp::Reverse(e.modified));
        let over = entries.split_off(policy.max_files);
        refuse(
            out,
            None,
            format!(
                "{} files over the limit of {} (policy.max_files) were ignored, oldest first",
                over.len(),
                policy.max_files
            ),
        );
    }
    for entry in entries {
        match judge(config, dir, &entry, aliases, now) {
            Ok(c) => out.challenges.push(c),
            Err(Verdict::Expired(mut reason)) => {
                // On a read-only mount it stays, and stays ignored: the
                // refusal says so (once per file version, see build::refusals).
                let failed = prune
                    .then(|| handle.remove_entry(&entry).err())
                    .flatten()
                    .filter(|e| e.kind() != std::io::ErrorKind::NotFound);
                if let Some(e) = failed {
                    reason.push_str(&format!(
                        "; the builder cannot remove it ({e}): run `zonedrop prune` on the side that writes the drop directory"
                    ));
                }
                refuse(out, Some(&entry), reason);
            }
            Err(Verdict::Refused(reason)) => refuse(out, Some(&entry), reason),
            Err(Verdict::Future(reason, at)) => {
                out.future_until = Some(out.future_until.map_or(at, |t| t.min(at)));
                refuse(out, Some(&entry), reason);
            }
        }
    }
}

/// The zones a drop directory may carry challenges into: every zone when
/// it has no `names`; else the zones of its names (and below a wildcard),
/// and the zones its challenge aliases lead into. When it cannot be read,
/// these are the zones that may not publish without it.
pub fn fed_zones(config: &Config, dir: &DropDir, aliases: &Aliases) -> Vec<String> {
    let Some(names) = &dir.names else {
        return config.zones.iter().map(|z| z.name.clone()).collect();
    };
    let mut fed: Vec<String> = Vec::new();
    let mut feed = |zone: Option<&str>| {
        if let Some(z) = zone {
            if !fed.iter().any(|f| f == z) {
                fed.push(z.to_string());
            }
        }
    };
    for pattern in names {
        let base = pattern.strip_prefix("*.").unwrap_or(pattern);
        feed(config.zone_of(base).map(|z| z.name.as_str()));
        if pattern.starts_with("*.") {
            for z in config
                .zones
                .iter()
                .filter(|z| crate::base::name::in_zone(&z.name, base))
            {
                feed(Some(&z.name));
            }
        }
    }
    for (owner, _) in aliases.iter() {
        if drop_allows(Some(names), owner) {
            let target = aliases.follow(owner).ok();
            feed(
                target
                    .and_then(|t| config.zone_of(&t))
                    .map(|z| z.name.as_str()),
            );
        }
    }
    fed
}

/// Why [`judge`] did not accept an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Older than `policy.max_age`: ignored, and removed where possible.
    Expired(String),
    Refused(String),
    /// Dated more than `policy.max_future` ahead: refused until the given
    /// time, when it comes within it.
    Future(String, SystemTime),
}

impl Verdict {
    pub fn reason(&self) -> &str {
        match self {
            Verdict::Expired(r) | Verdict::Refused(r) | Verdict::Future(r, _) => r,
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
    if let Ok(ahead) = entry.modified.duration_since(now) {
        if ahead > policy.max_future {
            return Err(Verdict::Future(
                format!(
                    "dated {} in the future, more than policy.max_future ({}): a writer's clock is wrong, or the file tries to outlive policy.max_age",
                    humantime::format_duration(Duration::from_secs(ahead.as_secs())),
                    humantime::format_duration(policy.max_future)
                ),
                entry.modified - policy.max_future,
            ));
        }
    }
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
        modified: entry.modified,
        version: entry.version,
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
            list.sort_by_key(|c| std::cmp::Reverse(c.modified));
            for c in list.split_off(max) {
                out.refusals.push(Refusal {
                    reason: format!(
                        "more than {max} values for `{}` (policy.max_values_per_name)",
                        c.owner
                    ),
                    file: c.file,
                    version: c.version,
                });
            }
        }
        out.challenges.extend(list);
    }
    out.challenges
        .sort_by(|a, b| (&a.owner, &a.value).cmp(&(&b.owner, &b.value)));
}
