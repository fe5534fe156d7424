//! The TLSA and SSHFP records a build publishes, computed from the
//! `[[tlsa]]` and `[[sshfp]]` config entries, with key rollover.
//!
//! This module owns owner names, TTLs, and the rollover memory in
//! `<paths.state>/keys.json`; [`crate::dane::tlsa`] and [`crate::dane::sshfp`] own the
//! record data, [`crate::dane::entries`] the files each entry names. The
//! zone builder calls [`zone_key_records`] once per build.
//!
//! Rollover, in the spirit of RFC 7671 §8 (TLSA publisher requirements):
//! a new key's record is in the DNS before the server uses the key, and an
//! old one leaves only after every cached copy of the old RRset expired.
//! - a fingerprint that stops being current stays published for the entry's
//!   `hold` (default 2 × ttl + 1 h), counted from the build that first saw it
//!   gone; one that comes back is current again;
//! - `next` (a CSR or public key) is published beside the current key, so
//!   the switch to it breaks no cached TLSA RRset;
//! - a source that cannot be read or parsed (missing, half-written, not key
//!   material) is an error line naming the file, and its last good records
//!   stay published: a fingerprint never vanishes because a certificate was
//!   briefly half-written.
//!
//! The clock is an argument, so tests drive time without sleeping.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use crate::base::config::Config;
use crate::base::fs::write_atomic;
use crate::dane::entries::{inputs, Input, Kind};
use crate::dane::{sshfp, tlsa};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The rollover memory's file name, inside `paths.state`.
pub const STATE_FILE: &str = "keys.json";

/// One record for the zone builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Absolute, lowercase, with the trailing dot.
    pub owner: String,
    pub ttl: u32,
    /// `"TLSA"` or `"SSHFP"`.
    pub rtype: &'static str,
    /// Presentation RDATA, e.g. `3 1 1 abcd…` or `4 2 abcd…`.
    pub rdata: String,
}

/// Everything a build gets from the key entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRecords {
    /// Sorted by owner, type and data; no duplicates.
    pub records: Vec<KeyRecord>,
    /// One line each, naming the file.
    pub errors: Vec<String>,
    /// One line each, naming the file (expired certificates).
    pub warnings: Vec<String>,
    /// Said once, by the build that switched keys too early (see
    /// [`crate::build::Report::alerts`]).
    pub alerts: Vec<String>,
    /// The zones that must keep their last published version because the
    /// rollover memory could not be read or written: without it, a build
    /// could publish less than it says must stay (an error line says why).
    pub held: Held,
}

/// Which zones the rollover memory holds back when it failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Held {
    /// The memory was read and, if it changed, written.
    #[default]
    Nothing,
    /// It could not be read: any zone may have records it says must stay.
    Every,
    /// It could not be written: the zones of these owners (every record it
    /// held and would have held).
    Owners(Vec<String>),
}

impl Held {
    /// Whether a zone whose records this owner falls in is held back.
    pub fn holds(&self, zone_of: impl Fn(&str) -> bool) -> bool {
        match self {
            Held::Nothing => false,
            Held::Every => true,
            Held::Owners(owners) => owners.iter().any(|o| zone_of(o)),
        }
    }
}

/// Why a fingerprint is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Computed from the current certificate or key.
    Current,
    /// Pre-published from a `next` CSR or public key.
    Next,
    /// No longer current; published until then.
    Retiring { until: SystemTime },
}

impl std::fmt::Display for KeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyState::Current => f.write_str("current"),
            KeyState::Next => f.write_str("next"),
            KeyState::Retiring { until } => {
                write!(
                    f,
                    "retiring until {}",
                    humantime::format_rfc3339_seconds(*until)
                )
            }
        }
    }
}

/// One published fingerprint and its state, for `zonedrop list --dane`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyStatus {
    pub owner: String,
    pub ttl: u32,
    pub rtype: &'static str,
    pub rdata: String,
    #[serde(serialize_with = "display")]
    pub state: KeyState,
    /// The file it was computed from.
    pub source: PathBuf,
}

fn display<S: Serializer, T: std::fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// The records to publish at `now`, with rollover; updates the rollover
/// memory in `<paths.state>/keys.json` (written atomically, and only when it
/// changed, so a build that changes nothing writes nothing).
pub fn zone_key_records(config: &Config, now: SystemTime) -> KeyRecords {
    let path = state_path(config);
    let (old, mut errors, writable) = match load_state(&path) {
        Ok(s) => (s, Vec::new(), true),
        Err(e) => (
            State::default(),
            vec![format!(
                "{e}; every zone keeps its last published version until it can be read (it says which TLSA and SSHFP records must stay)"
            )],
            false,
        ),
    };
    let plan = plan(config, now, &old);
    let mut out = plan.records;
    errors.append(&mut out.errors);
    out.errors = errors;
    if !writable {
        out.held = Held::Every;
    } else if plan.state != old {
        if let Err(e) = save_state(&path, &plan.state) {
            out.errors.push(format!(
                "{e}; the zones of its TLSA and SSHFP records keep their last published version until it can be written"
            ));
            let mut owners: Vec<String> = [&old, &plan.state]
                .iter()
                .flat_map(|s| {
                    s.active
                        .iter()
                        .map(|r| r.owner.clone())
                        .chain(s.retiring.iter().map(|r| r.owner.clone()))
                })
                .collect();
            owners.sort();
            owners.dedup();
            out.held = Held::Owners(owners);
        }
    }
    out
}

/// Every fingerprint that would be published at `now` and why, without
/// touching the rollover memory; plus the error and warning lines.
pub fn key_status(config: &Config, now: SystemTime) -> (Vec<KeyStatus>, KeyRecords) {
    let (old, errors) = match load_state(&state_path(config)) {
        Ok(s) => (s, Vec::new()),
        Err(e) => (State::default(), vec![e]),
    };
    let mut plan = plan(config, now, &old);
    plan.records.errors.splice(0..0, errors);
    let r = &mut plan.records;
    r.warnings.append(&mut r.alerts);
    r.warnings.append(&mut plan.held_warnings);
    plan.records.warnings.sort();
    plan.records.warnings.dedup();
    (plan.statuses, plan.records)
}

/// When the published key records next change with no file changing: the
/// end of the earliest hold in the rollover memory (None: nothing held, or
/// no readable memory). [`crate::dane::entries::key_inputs`] covers changes
/// that come from files; this covers the ones that come from the clock, so
/// a builder that skips unchanged inputs, or a watcher, knows when to build
/// anyway.
pub fn next_key_change(config: &Config) -> Option<SystemTime> {
    let state = load_state(&state_path(config)).ok()?;
    state
        .retiring
        .iter()
        .map(|r| r.until)
        .min()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

/// The default hold: 2 × ttl + 1 hour (a resolver may have cached the old
/// RRset for one TTL, and a validator its signatures for another).
pub fn default_hold(ttl: u32) -> Duration {
    Duration::from_secs(2 * u64::from(ttl) + 3600)
}

fn state_path(config: &Config) -> PathBuf {
    config.paths.state.join(STATE_FILE)
}

/// What `keys.json` remembers between builds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    /// The last good records of each source, by source key.
    sources: BTreeMap<String, Source>,
    /// What was current or next at the last build.
    active: Vec<Stored>,
    /// What is held after it stopped being current.
    retiring: Vec<Retiring>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Source {
    /// The config entry (one `keys` path, or a tlsa cert/next) it came from.
    entry: String,
    records: Vec<Stored>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    owner: String,
    rtype: String,
    rdata: String,
    ttl: u32,
    /// Seconds to hold it once it retires.
    hold: u64,
    next: bool,
    source: PathBuf,
    /// Unix seconds: the build that first published it (as current or
    /// next); 0 in memories written before this was kept (taken as long
    /// ago) and in the per-source records.
    #[serde(default, skip_serializing_if = "is_zero")]
    since: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Retiring {
    owner: String,
    rtype: String,
    rdata: String,
    ttl: u32,
    /// Unix seconds: when it was first seen gone, and when it goes.
    retired: u64,
    until: u64,
    source: PathBuf,
    /// It was replaced by a key that had not been published for its TTL
    /// plus the propagation margin: what replaced it, and until when
    /// clients may still fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    abrupt: Option<Abrupt>,
}

/// A switch to a key that was not pre-published long enough.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Abrupt {
    /// The file the new key came from.
    source: PathBuf,
    ttl: u32,
    /// Unix seconds until which a cached copy of the old RRset may lack
    /// the new key: when the new key was published, plus TTL and margin.
    until: u64,
}

impl Retiring {
    /// The warning for a switch to a key that was not pre-published.
    fn abrupt_warning(&self, margin: Duration) -> Option<String> {
        let a = self.abrupt.as_ref()?;
        let at = |s: u64| humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(s));
        let how = if self.rtype == "TLSA" {
            "`next =`"
        } else {
            "a second key file in `keys`"
        };
        Some(format!(
            "{} {}: the key from {} replaced the published one at {} without being pre-published for its TTL ({} s) plus [dane] propagation_margin ({}); clients holding the old record set in cache may fail until {}: publish the next key beside the current one first ({how})",
            self.owner,
            self.rtype,
            crate::base::name::printable_path(&a.source),
            at(self.retired),
            a.ttl,
            humantime::format_duration(margin),
            at(a.until),
        ))
    }
}

type RecordKey = (String, String, String);

fn key_of(owner: &str, rtype: &str, rdata: &str) -> RecordKey {
    (owner.to_string(), rtype.to_string(), rdata.to_string())
}

fn rtype_static(rtype: &str) -> &'static str {
    if rtype == "SSHFP" {
        "SSHFP"
    } else {
        "TLSA"
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

fn load_state(path: &Path) -> Result<State, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{}: cannot parse the key rollover memory ({e}); it is left as it is: delete it to start afresh (fingerprints it holds for rollover are then dropped)",
                crate::base::name::printable_path(path)
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(format!(
            "{}: cannot read the key rollover memory as {}: {e}",
            crate::base::name::printable_path(path),
            crate::base::fs::user()
        )),
    }
}

fn save_state(path: &Path, state: &State) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| {
        format!(
            "{}: cannot write the key rollover memory as {}: {e}",
            crate::base::name::printable_path(path),
            crate::base::fs::user()
        )
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    let text = serde_json::to_string_pretty(state).map_err(|e| fail(&e))?;
    write_atomic(path, &[text.as_bytes(), b"\n"]).map_err(|e| fail(&e))
}

/// The records of one input, or the error line.
fn compute(
    input: &Input,
    now: SystemTime,
    warnings: &mut Vec<String>,
) -> Result<Vec<Stored>, String> {
    let (rtype, datas) = match input.kind {
        Kind::Tlsa(params) => {
            let material = tlsa::load(&input.path).map_err(|e| e.to_string())?;
            let datas = tlsa::rdata(&material, params, &input.path).map_err(|e| e.to_string())?;
            warnings.extend(tlsa::expired(&material, params.usage, &input.path, now));
            ("TLSA", datas)
        }
        Kind::Sshfp(hash) => {
            let keys = sshfp::load(&input.path).map_err(|e| e.to_string())?;
            let datas = keys.iter().flat_map(|k| sshfp::rdata(k, hash)).collect();
            ("SSHFP", datas)
        }
    };
    Ok(input
        .owners
        .iter()
        .flat_map(|owner| {
            datas.iter().map(move |rdata| Stored {
                owner: owner.clone(),
                rtype: rtype.to_string(),
                rdata: rdata.clone(),
                ttl: input.ttl,
                hold: input.hold.as_secs(),
                next: input.next,
                source: input.path.clone(),
                since: 0,
            })
        })
        .collect())
}

/// Whether `old`, retiring now, is replaced by a current key at its owner
/// that was published less than its TTL plus `margin` ago, and if so by
/// what, until when. RFC 7671 §8 (TLSA publisher requirements): the new
/// record goes out first, and the server switches keys only once it has
/// reached every authoritative server and cached copies of the old set
/// (one TTL) are gone; the margin is that propagation.
fn abrupt(
    active: &BTreeMap<RecordKey, Stored>,
    old: &Stored,
    now_s: u64,
    margin: Duration,
) -> Option<Abrupt> {
    active
        .values()
        .filter(|r| !r.next && r.owner == old.owner && r.rtype == old.rtype)
        .map(|r| {
            let safe = r
                .since
                .saturating_add(u64::from(r.ttl))
                .saturating_add(margin.as_secs());
            (r, safe)
        })
        .filter(|(_, safe)| *safe > now_s)
        .max_by_key(|(_, safe)| *safe)
        .map(|(r, until)| Abrupt {
            source: r.source.clone(),
            ttl: r.ttl,
            until,
        })
}

struct Plan {
    records: KeyRecords,
    /// The warnings of switches made by earlier builds (see [`key_status`]).
    held_warnings: Vec<String>,
    statuses: Vec<KeyStatus>,
    state: State,
}

/// The pure heart: from the config, the clock and the old memory, the
/// records to publish and the new memory.
fn plan(config: &Config, now: SystemTime, old: &State) -> Plan {
    let now_s = unix(now);
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut alerts = Vec::new();
    let mut sources = BTreeMap::new();
    let (inputs, unlisted) = inputs(config);
    for input in &inputs {
        match compute(input, now, &mut warnings) {
            Ok(records) => {
                sources.insert(
                    input.key.clone(),
                    Source {
                        entry: input.entry.clone(),
                        records,
                    },
                );
            }
            Err(e) => match old.sources.get(&input.key) {
                Some(last) if !last.records.is_empty() => {
                    errors.push(format!("{e}; its last good records stay published"));
                    sources.insert(input.key.clone(), last.clone());
                }
                _ => errors.push(e),
            },
        }
    }
    for u in unlisted {
        let kept: Vec<_> = old
            .sources
            .iter()
            .filter(|(_, s)| s.entry == u.entry)
            .collect();
        if kept.is_empty() {
            errors.push(u.error);
        } else {
            errors.push(format!("{}; its last good records stay published", u.error));
            for (k, s) in kept {
                sources.insert(k.clone(), s.clone());
            }
        }
    }

    // Current beats next when a fingerprint is both (the switch happened).
    let mut active: BTreeMap<RecordKey, Stored> = BTreeMap::new();
    for r in sources.values().flat_map(|s| s.records.iter()) {
        let k = key_of(&r.owner, &r.rtype, &r.rdata);
        match active.get(&k) {
            Some(have) if !have.next || r.next => {}
            _ => {
                active.insert(k, r.clone());
            }
        }
    }
    // When each was first published: kept from the last build, else now.
    let published: BTreeMap<RecordKey, u64> = old
        .active
        .iter()
        .map(|r| (key_of(&r.owner, &r.rtype, &r.rdata), r.since))
        .collect();
    for (k, r) in active.iter_mut() {
        r.since = published.get(k).copied().unwrap_or(now_s);
    }
    let margin = config.dane.propagation_margin;

    // An old record goes only once no cache can still hold it (see the
    // module doc).
    let mut retiring: BTreeMap<RecordKey, Retiring> = BTreeMap::new();
    for r in &old.retiring {
        let k = key_of(&r.owner, &r.rtype, &r.rdata);
        if r.until > now_s && !active.contains_key(&k) {
            match retiring.get(&k) {
                Some(have) if have.until >= r.until => {}
                _ => {
                    retiring.insert(k, r.clone());
                }
            }
        }
    }
    for r in &old.active {
        let k = key_of(&r.owner, &r.rtype, &r.rdata);
        if active.contains_key(&k) || retiring.contains_key(&k) {
            continue;
        }
        let until = now_s.saturating_add(r.hold);
        if until > now_s {
            let retired = Retiring {
                owner: r.owner.clone(),
                rtype: r.rtype.clone(),
                rdata: r.rdata.clone(),
                ttl: r.ttl,
                retired: now_s,
                until,
                source: r.source.clone(),
                abrupt: abrupt(&active, r, now_s, margin),
            };
            alerts.extend(retired.abrupt_warning(margin));
            retiring.insert(k, retired);
        }
    }
    // What `list --dane` says while clients may still fail after such a
    // switch; a build said it once, when it happened.
    let held_warnings = old
        .retiring
        .iter()
        .filter(|r| r.abrupt.as_ref().is_some_and(|a| a.until > now_s))
        .filter_map(|r| r.abrupt_warning(margin))
        .collect();

    let mut statuses: Vec<KeyStatus> = active
        .values()
        .map(|r| KeyStatus {
            owner: r.owner.clone(),
            ttl: r.ttl,
            rtype: rtype_static(&r.rtype),
            rdata: r.rdata.clone(),
            state: if r.next {
                KeyState::Next
            } else {
                KeyState::Current
            },
            source: r.source.clone(),
        })
        .chain(retiring.values().map(|r| KeyStatus {
            owner: r.owner.clone(),
            ttl: r.ttl,
            rtype: rtype_static(&r.rtype),
            rdata: r.rdata.clone(),
            state: KeyState::Retiring {
                until: UNIX_EPOCH + Duration::from_secs(r.until),
            },
            source: r.source.clone(),
        }))
        .collect();
    statuses.sort_by(|a, b| (&a.owner, a.rtype, &a.rdata).cmp(&(&b.owner, b.rtype, &b.rdata)));

    // RFC 2181 §5.2: "the TTLs of all RRs in an RRSet must be the same";
    // after a TTL change the lowest one wins, which only shortens caching.
    let mut rrset_ttl: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    for s in &statuses {
        let t = rrset_ttl.entry((&s.owner, s.rtype)).or_insert(s.ttl);
        *t = (*t).min(s.ttl);
    }
    let records = statuses
        .iter()
        .map(|s| KeyRecord {
            owner: s.owner.clone(),
            ttl: rrset_ttl
                .get(&(s.owner.as_str(), s.rtype))
                .copied()
                .unwrap_or(s.ttl),
            rtype: s.rtype,
            rdata: s.rdata.clone(),
        })
        .collect();

    warnings.sort();
    warnings.dedup();
    Plan {
        records: KeyRecords {
            records,
            errors,
            warnings,
            alerts,
            held: Held::Nothing,
        },
        held_warnings,
        statuses,
        state: State {
            sources,
            active: active.into_values().collect(),
            retiring: retiring.into_values().collect(),
        },
    }
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
