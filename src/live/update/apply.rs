//! Checking the sections of one authenticated UPDATE (RFC 2136 §3) and
//! turning it into fragments in the key's drop directory.
//!
//! Everything is checked before anything is written: the zone section (one
//! zone, SOA, served here), every update record (a TXT add, a TXT value
//! delete or a TXT RRset delete, at a challenge owner within the key's
//! names and not at the apex), the prerequisites (only at the update's own
//! challenge owners, evaluated against what the drop directories hold), the
//! builder's whitelist for every added fragment ([`whitelist::judge`]) and
//! the limits (values per name, the key's `max_values`, the directory's
//! `max_files`). Then the changes are made in order through `hook::drop`.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use super::{Key, UpdateMessage};
use crate::base::config::Config;
use crate::base::name;
use crate::base::rules::{account_allows, check_label, check_value_at, drop_allows};
use crate::build::whitelist;
use crate::build::zone::alias::Aliases;
use crate::build::zone::read_aliases;
use crate::hook::drop::{self, Entry};
use crate::hook::fragment::Fragment;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::{DNSClass, Name, RData, Record, RecordType};
use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

/// Why an update was refused: the RCODE and a line for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub rcode: ResponseCode,
    pub reason: String,
}

fn refuse(rcode: ResponseCode, reason: impl Into<String>) -> Refused {
    Refused {
        rcode,
        reason: reason.into(),
    }
}

/// One change, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Add(Fragment),
    /// Delete one value (`Some`) or the key's whole RRset at the owner.
    Delete {
        owner: String,
        value: Option<String>,
    },
}

impl Change {
    fn owner(&self) -> &str {
        match self {
            Change::Add(f) => &f.owner,
            Change::Delete { owner, .. } => owner,
        }
    }
}

/// What an applied update did, for the log line.
pub struct Done {
    pub owners: BTreeSet<String>,
    pub added: usize,
    pub removed: usize,
}

impl Done {
    /// Whether a file was written or removed.
    pub fn changed(&self) -> bool {
        self.added + self.removed > 0
    }
}

impl std::fmt::Display for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let owners: Vec<&str> = self.owners.iter().map(String::as_str).collect();
        write!(
            f,
            "{} added, {} removed at {}",
            self.added,
            self.removed,
            owners.join(" ")
        )
    }
}

/// Check `message` for `key` and, if it all passes, write it.
pub fn apply(
    config: &Config,
    key: &Key,
    served: &dyn Fn(&str) -> bool,
    message: &UpdateMessage,
    now: SystemTime,
) -> Result<Done, Refused> {
    let changes = check(config, key, served, message, now)?;
    write(config, key, &changes)
}

/// The lowercase absolute text of a name from the wire, in the strict form,
/// or why not.
fn owner_of(name: &Name) -> Result<String, Refused> {
    let text = name.to_lowercase().to_ascii();
    name::parse_fqdn(&text).map_err(|e| {
        refuse(
            ResponseCode::Refused,
            format!(
                "`{}` is not a plain domain name: {e}",
                name::printable(&text)
            ),
        )
    })
}

/// The one string of a TXT record, as a value.
fn txt_value(record: &Record) -> Result<String, Refused> {
    let RData::TXT(txt) = &record.data else {
        return Err(refuse(
            ResponseCode::FormErr,
            "a TXT record without TXT data",
        ));
    };
    let [one] = &txt.txt_data[..] else {
        return Err(refuse(
            ResponseCode::Refused,
            "a TXT record of more than one string",
        ));
    };
    String::from_utf8(one.to_vec())
        .map_err(|_| refuse(ResponseCode::Refused, "a TXT value that is not text"))
}

/// Check every section; the changes to make, in order.
pub fn check(
    config: &Config,
    key: &Key,
    served: &dyn Fn(&str) -> bool,
    message: &UpdateMessage,
    now: SystemTime,
) -> Result<Vec<Change>, Refused> {
    // §3.1.1: exactly one zone, of type SOA.
    let [(zname, ztype, zclass)] = &message.zones[..] else {
        return Err(refuse(
            ResponseCode::FormErr,
            "the zone section must hold exactly one zone",
        ));
    };
    if *ztype != RecordType::SOA {
        return Err(refuse(
            ResponseCode::FormErr,
            "the zone section's type is not SOA",
        ));
    }
    let zone = owner_of(zname).map_err(|r| refuse(ResponseCode::NotAuth, r.reason))?;
    // §3.1.2: a zone this server is not authoritative for.
    if *zclass != DNSClass::IN || config.zones.iter().all(|z| z.name != zone) || !served(&zone) {
        return Err(refuse(
            ResponseCode::NotAuth,
            format!("zone `{zone}` is not served here"),
        ));
    }
    let changes = message
        .updates
        .iter()
        .map(|record| change_of(config, key, &zone, record))
        .collect::<Result<Vec<_>, _>>()?;
    let owners: BTreeSet<String> = changes.iter().map(|c| c.owner().to_string()).collect();
    // The challenge aliases of the zone sources, as the builder reads them.
    let aliases = match owners.is_empty() {
        true => Aliases::default(),
        false => read_aliases(config).0,
    };
    let held = held_values(config, &owners, &aliases, now);
    prerequisites(&zone, &owners, &held, message)?;
    whitelisted(config, key, &changes, &aliases, now)?;
    limits(config, key, &changes, &held)?;
    Ok(changes)
}

/// One record of the update section (RFC 2136 §3.4.1), checked: the
/// change it makes, or why it is refused.
fn change_of(config: &Config, key: &Key, zone: &str, record: &Record) -> Result<Change, Refused> {
    let policy = &config.policy;
    let owner = owner_of(&record.name)?;
    // §3.4.1.3: every name within the zone.
    if !name::in_zone(&owner, zone) || config.zone_of(&owner).map(|z| z.name.as_str()) != Some(zone)
    {
        return Err(refuse(
            ResponseCode::NotZone,
            format!("`{owner}` is outside zone {zone}"),
        ));
    }
    let rtype = record.record_type();
    if rtype == RecordType::ANY && record.dns_class == DNSClass::ANY {
        return Err(refuse(
            ResponseCode::Refused,
            format!("a delete of every RRset at `{owner}`"),
        ));
    }
    if owner == zone {
        return Err(refuse(
            ResponseCode::Refused,
            format!("a change at the zone apex `{owner}`"),
        ));
    }
    if rtype != RecordType::TXT {
        return Err(refuse(
            ResponseCode::Refused,
            format!("a {rtype} record at `{owner}`: only TXT is accepted"),
        ));
    }
    check_label(&owner, policy).map_err(|e| refuse(ResponseCode::Refused, e))?;
    if !drop_allows(Some(&key.names), &owner)
        || !drop_allows(key.drop.names.as_deref(), &owner)
        || !account_allows(key.accounts.as_deref(), &owner)
    {
        return Err(refuse(
            ResponseCode::Refused,
            format!("`{owner}` is outside the names of key {}", key.name),
        ));
    }
    let change = match record.dns_class {
        DNSClass::IN => {
            let value = txt_value(record)?;
            check_value_at(&owner, &value, policy).map_err(|e| refuse(ResponseCode::Refused, e))?;
            Change::Add(Fragment {
                owner,
                ttl: Some(record.ttl.min(i32::MAX as u32)),
                value,
            })
        }
        // §2.5.2: delete an RRset (TTL 0, no data).
        DNSClass::ANY => {
            if record.ttl != 0 || !matches!(record.data, RData::Update0(_)) {
                return Err(refuse(ResponseCode::FormErr, "a malformed RRset delete"));
            }
            Change::Delete { owner, value: None }
        }
        // §2.5.4: delete one RR (TTL 0).
        DNSClass::NONE => {
            if record.ttl != 0 {
                return Err(refuse(ResponseCode::FormErr, "a malformed RR delete"));
            }
            let value = txt_value(record)?;
            Change::Delete {
                owner,
                value: Some(value),
            }
        }
        other => {
            return Err(refuse(
                ResponseCode::FormErr,
                format!("an update record of class {other}"),
            ))
        }
    };
    Ok(change)
}

/// The values the drop directories hold now at each of `owners`, as the
/// builder would accept them.
fn held_values(
    config: &Config,
    owners: &BTreeSet<String>,
    aliases: &Aliases,
    now: SystemTime,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut held: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    if owners.is_empty() {
        return held;
    }
    for dir in &config.drops {
        let Ok(entries) = drop::read_dir(&dir.path, config.policy.max_fragment_bytes) else {
            continue;
        };
        for entry in entries {
            let Ok(f) = &entry.fragment else { continue };
            if owners.contains(&f.owner)
                && whitelist::judge(config, dir, &entry, aliases, now).is_ok()
            {
                held.entry(f.owner.clone())
                    .or_default()
                    .insert(f.value.clone());
            }
        }
    }
    held
}

/// §3.2: prerequisites may only name the update's challenge owners, and
/// are evaluated there against what the drop directories hold.
fn prerequisites(
    zone: &str,
    owners: &BTreeSet<String>,
    held: &BTreeMap<String, BTreeSet<String>>,
    message: &UpdateMessage,
) -> Result<(), Refused> {
    let empty = BTreeSet::new();
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for record in &message.prerequisites {
        let owner = owner_of(&record.name)?;
        if !name::in_zone(&owner, zone) {
            return Err(refuse(
                ResponseCode::NotZone,
                format!("a prerequisite at `{owner}`, outside zone {zone}"),
            ));
        }
        if !owners.contains(&owner) {
            return Err(refuse(
                ResponseCode::Refused,
                format!("a prerequisite at `{owner}`, which the update does not change"),
            ));
        }
        if record.ttl != 0 {
            return Err(refuse(ResponseCode::FormErr, "a prerequisite with a TTL"));
        }
        let values = held.get(&owner).unwrap_or(&empty);
        let rtype = record.record_type();
        let ok = match (record.dns_class, rtype) {
            (DNSClass::ANY, RecordType::ANY) => (!values.is_empty(), ResponseCode::NXDomain),
            (DNSClass::ANY, RecordType::TXT) => (!values.is_empty(), ResponseCode::NXRRSet),
            (DNSClass::NONE, RecordType::ANY) => (values.is_empty(), ResponseCode::YXDomain),
            (DNSClass::NONE, RecordType::TXT) => (values.is_empty(), ResponseCode::YXRRSet),
            (DNSClass::IN, RecordType::TXT) => {
                wanted
                    .entry(owner.clone())
                    .or_default()
                    .insert(txt_value(record)?);
                (true, ResponseCode::NoError)
            }
            _ => {
                return Err(refuse(
                    ResponseCode::Refused,
                    format!(
                        "a prerequisite on {rtype} at `{owner}`: only TXT and ANY are evaluated"
                    ),
                ))
            }
        };
        if let (false, rcode) = ok {
            return Err(refuse(
                rcode,
                format!("the prerequisite at `{owner}` does not hold"),
            ));
        }
    }
    // §3.2.3: value-dependent prerequisites compare whole RRsets.
    for (owner, want) in wanted {
        if held.get(&owner).unwrap_or(&empty) != &want {
            return Err(refuse(
                ResponseCode::NXRRSet,
                format!("the TXT RRset at `{owner}` is not the one the prerequisite gives"),
            ));
        }
    }
    Ok(())
}

/// Every added fragment through the builder's own whitelist.
fn whitelisted(
    config: &Config,
    key: &Key,
    changes: &[Change],
    aliases: &Aliases,
    now: SystemTime,
) -> Result<(), Refused> {
    for change in changes {
        let Change::Add(f) = change else { continue };
        let name = drop::file_name_by(&f.owner, &f.value, Some(&key.name));
        let entry = Entry {
            path: key.drop.path.join(&name),
            name: name.into(),
            modified: now,
            fragment: Ok(f.clone()),
            version: None,
        };
        whitelist::judge(config, &key.drop, &entry, aliases, now)
            .map_err(|v| refuse(ResponseCode::Refused, v.reason().to_string()))?;
    }
    Ok(())
}

/// `policy.max_values_per_name`, the key's `max_values` and the
/// directory's `policy.max_files`, after the changes.
fn limits(
    config: &Config,
    key: &Key,
    changes: &[Change],
    held: &BTreeMap<String, BTreeSet<String>>,
) -> Result<(), Refused> {
    let policy = &config.policy;
    let mut after = held.clone();
    let mut mine = own_values(config, key);
    for change in changes {
        match change {
            Change::Add(f) => {
                after
                    .entry(f.owner.clone())
                    .or_default()
                    .insert(f.value.clone());
                mine.insert((f.owner.clone(), f.value.clone()));
            }
            Change::Delete { owner, value } => {
                let gone: Vec<(String, String)> = mine
                    .iter()
                    .filter(|(o, v)| o == owner && value.as_ref().is_none_or(|x| x == v))
                    .cloned()
                    .collect();
                for pair in gone {
                    if let Some(values) = after.get_mut(&pair.0) {
                        values.remove(&pair.1);
                    }
                    mine.remove(&pair);
                }
            }
        }
    }
    for (owner, values) in &after {
        let adds = changes
            .iter()
            .any(|c| matches!(c, Change::Add(f) if &f.owner == owner));
        if adds && values.len() > policy.max_values_per_name {
            return Err(refuse(
                ResponseCode::Refused,
                format!(
                    "more than {} values at `{owner}` (policy.max_values_per_name)",
                    policy.max_values_per_name
                ),
            ));
        }
    }
    let adds = changes
        .iter()
        .filter(|c| matches!(c, Change::Add(_)))
        .count();
    if adds > 0 {
        if let Some(max) = key.max_values {
            if mine.len() > max {
                return Err(refuse(
                    ResponseCode::Refused,
                    format!(
                        "key {} would hold more than {max} values (max_values)",
                        key.name
                    ),
                ));
            }
        }
        let files = drop::list_names(&key.drop.path).map_or(0, |n| n.len());
        if files + adds > policy.max_files {
            return Err(refuse(
                ResponseCode::Refused,
                format!(
                    "{} holds {files} files, the limit is {} (policy.max_files)",
                    key.drop.path.display(),
                    policy.max_files
                ),
            ));
        }
    }
    Ok(())
}

/// The (owner, value) pairs `key` has written that are still there.
fn own_values(config: &Config, key: &Key) -> BTreeSet<(String, String)> {
    let suffix = drop::writer_suffix(&key.name);
    let Ok(handle) = drop::DropHandle::open_following(&key.drop.path) else {
        return BTreeSet::new();
    };
    let Ok(names) = handle.names() else {
        return BTreeSet::new();
    };
    names
        .into_iter()
        .filter(|n| n.as_encoded_bytes().ends_with(suffix.as_bytes()))
        .filter_map(|n| handle.read_entry(&n, config.policy.max_fragment_bytes).ok())
        .filter_map(|e| e.fragment.ok())
        .map(|f| (f.owner, f.value))
        .collect()
}

/// Make the changes, in order; each is on disk (synced) when this returns.
fn write(config: &Config, key: &Key, changes: &[Change]) -> Result<Done, Refused> {
    let dir = &key.drop.path;
    let failed = |e: drop::DropError| refuse(ResponseCode::ServFail, e.to_string());
    let mut done = Done {
        owners: BTreeSet::new(),
        added: 0,
        removed: 0,
    };
    for change in changes {
        done.owners.insert(change.owner().to_string());
        match change {
            Change::Add(f) => {
                let added = drop::add_by(dir, f, config.policy.ttl_default, Some(&key.name))
                    .map_err(failed)?;
                if matches!(added, drop::Added::Written(_)) {
                    done.added += 1;
                }
            }
            Change::Delete { owner, value } => {
                let removed = drop::del_by(
                    dir,
                    owner,
                    value.as_deref(),
                    &key.name,
                    config.policy.max_fragment_bytes,
                )
                .map_err(failed)?;
                done.removed += removed.len();
            }
        }
    }
    Ok(done)
}
