//! The check: hickory parses the assembled text in slices of
//! [`CHUNK`](super::emit) entries on every core, keeping nothing of a slice
//! but one 128-bit key per record (owner hash, kind, data hash). Sorted,
//! the keys show duplicates, second CNAMEs and data beside a CNAME across
//! the whole zone in a few bytes per record. A big primary part is checked
//! while it is read: the reader hands finished slices to the workers
//! ([`Feed`]). On any problem, [`super::locate`] names the file and line.

// Input here comes from drop directories, hooks or zone files: never panic on it.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use super::emit::{Emitter, Slice};
use super::{zone_err, Assembled, Rendered, Sources, ZoneError};
use crate::base::cores;
use hickory_proto::rr::{LowerName, Name, RData, RecordType};
use hickory_proto::serialize::txt::Parser;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Mutex;
use xxhash_rust::xxh3::Xxh3;

impl Sources<'_> {
    /// Parse and check an assembled zone; on failure, find the file and line.
    /// The sources' slices are parsed once and their summary kept in `a`
    /// (a challenge refused and the zone checked again, or a zone whose
    /// only change is its challenges, parses only the records).
    pub fn check(&self, a: &mut Assembled, records: &[Rendered]) -> Result<(), ZoneError> {
        let ctx = CheckContext::new(&a.zone, a.seed)?;
        let end = a.sources_end.chunks.max(a.checked.upto);
        if a.checked.upto < end {
            let mut sources = std::mem::take(&mut a.checked);
            for r in &parse(a, &ctx, sources.upto..end) {
                sources.absorb(r);
            }
            sources.keys.sort();
            sources.upto = end;
            a.checked = sources;
        }
        let a = &*a;
        let zone = &a.zone;
        let pending = end..a.em.chunks.len();
        let results = match super::memo::records(a, &ctx, pending.clone()) {
            Some(checked) => vec![checked],
            None => parse(a, &ctx, pending),
        };
        // The sources' keys are not copied: the records' are checked
        // against them where they share an owner.
        let kept = &a.checked;
        let mut added = Checked {
            problem: kept.problem.clone(),
            ..Checked::default()
        };
        for r in &results {
            added.absorb(r);
        }
        let Checked {
            soas,
            apex_ns,
            merged,
            keys: mut added,
            problem: first_problem,
            ..
        } = added;
        let (soas, apex_ns) = (soas + kept.soas, apex_ns || kept.apex_ns);
        let mut duplicate = merged || kept.merged;
        match first_problem {
            Some((_, Problem::Parse(e))) => return Err(self.locate_parse_error(a, records, e)),
            Some((
                _,
                Problem::At {
                    name,
                    rtype,
                    message,
                },
            )) => return Err(self.locate(a, records, &name, rtype.as_deref(), message)),
            None => {}
        }
        added.sort_unstable();
        // Sources a cache kept passed this check before (only checked
        // sources are kept): their keys clash with nothing among themselves.
        if !kept.clean {
            duplicate |= conflicts(&kept.keys);
        }
        duplicate |= conflicts_with(&kept.keys, &added);
        if soas == 0 {
            return Err(zone_err(zone, "no SOA record at the apex".into()));
        }
        if !apex_ns {
            return Err(ZoneError::At {
                file: self.primary_path(zone),
                line: 1,
                message: format!("no NS record at the apex {zone}"),
            });
        }
        if duplicate {
            // A duplicate record or a second CNAME (hickory merges both).
            return Err(self.locate_parse_error(a, records, "duplicate records".into()));
        }
        Ok(())
    }
}

/// Parse the slices `pending` of `a` on every core; each worker reports
/// what the whole-zone checks need and the first problem it met.
fn parse(a: &Assembled, ctx: &CheckContext, pending: std::ops::Range<usize>) -> Vec<Checked> {
    if pending.is_empty() {
        return Vec::new();
    }
    let workers = cores().min(pending.len()).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let pending = pending.clone();
                scope.spawn(move || {
                    let mut checked = Checked::default();
                    for i in pending.skip(w).step_by(workers) {
                        checked.add(a.em.slice(i), ctx);
                    }
                    // Sorted here, in parallel: the merge then only joins
                    // sorted runs.
                    checked.keys.sort_unstable();
                    checked
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| Checked {
                    problem: Some((0, Problem::Parse("a parsing thread failed".into()))),
                    ..Checked::default()
                })
            })
            .collect()
    })
}

const HAS_CNAME: u8 = 1;
const HAS_OTHER: u8 = 2;

/// What the whole-zone checks need from the slices parsed so far, and the
/// first problem met.
#[derive(Debug, Clone, Default)]
pub(super) struct Checked {
    /// Slices `0..upto` are in here (the ones checked while the sources
    /// were read); the rest are for [`Sources::check`].
    pub(super) upto: usize,
    pub(super) soas: usize,
    pub(super) apex_ns: bool,
    /// hickory merged records inside a slice (duplicates).
    pub(super) merged: bool,
    /// One [`record_key`] per record, for duplicates and CNAME conflicts
    /// across slices.
    pub(super) keys: Vec<u128>,
    /// The first slice that failed, and how.
    pub(super) problem: Option<(usize, Problem)>,
    /// `keys` passed the whole-zone checks (sources kept by a cache, which
    /// keeps only checked sources): they need not be compared again.
    pub(super) clean: bool,
}

impl Checked {
    /// Parse one slice into this summary; after a problem, slices are
    /// skipped (a worker's slices come in order, so its first is its least).
    fn add(&mut self, slice: Slice, ctx: &CheckContext) {
        if self.problem.is_none() {
            if let Err(p) = summarise(slice.text, slice.entries, ctx, self) {
                self.problem = Some((slice.index, p));
            }
        }
    }

    /// Take in another worker's summary; the earlier problem wins.
    pub(super) fn absorb(&mut self, other: &Checked) {
        self.soas += other.soas;
        self.apex_ns |= other.apex_ns;
        self.merged |= other.merged;
        self.keys.extend_from_slice(&other.keys);
        if let Some((i, p)) = &other.problem {
            if self.problem.as_ref().is_none_or(|(j, _)| i < j) {
                self.problem = Some((*i, p.clone()));
            }
        }
    }
}

/// What every slice of one zone is checked against.
pub(super) struct CheckContext {
    origin: Name,
    apex: LowerName,
    zone: String,
    /// Seeds the record keys: random per build.
    seed: u64,
}

impl CheckContext {
    pub(super) fn seed(&self) -> u64 {
        self.seed
    }

    pub(super) fn zone(&self) -> &str {
        &self.zone
    }

    pub(super) fn new(zone: &str, seed: u64) -> Result<CheckContext, ZoneError> {
        let origin = Name::from_str(zone).map_err(|e| zone_err(zone, e.to_string()))?;
        Ok(CheckContext {
            apex: LowerName::new(&origin),
            zone: origin.to_string(),
            origin,
            seed,
        })
    }
}

/// Slices handed to the pipeline's workers at a time.
const BATCH: usize = 16;

/// A primary file at least this big is checked while it is read (below,
/// starting threads costs more than it saves).
pub(super) const PIPELINE_BYTES: u64 = 256 * 1024;

/// A pipeline worker: parse the batches the reader sends until it is done.
pub(super) fn check_batches(batches: &Mutex<Receiver<Vec<Slice>>>, ctx: &CheckContext) -> Checked {
    let mut checked = Checked::default();
    loop {
        let batch = match batches.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(batch) => batch,
            Err(_) => break,
        };
        for slice in batch {
            checked.add(slice, ctx);
        }
    }
    checked.keys.sort_unstable();
    checked
}

/// Hands completed slices of the text being emitted to the workers.
pub(super) struct Feed {
    pub(super) tx: SyncSender<Vec<Slice>>,
    /// Slices `0..sent` are handed over (or in `batch`).
    pub(super) sent: usize,
    pub(super) batch: Vec<Slice>,
}

impl Feed {
    /// Hand over every slice the emitter has finished; with `all`, the
    /// last one too (the sources are complete).
    pub(super) fn push(&mut self, em: &Emitter, all: bool) {
        let done = if all {
            em.chunks.len()
        } else {
            em.chunks.len().saturating_sub(1)
        };
        while self.sent < done {
            self.batch.push(em.slice(self.sent));
            self.sent += 1;
            if self.batch.len() >= BATCH || (all && self.sent == done) {
                // A send fails only when every worker is gone: the check
                // then parses what is missing itself.
                let _ = self.tx.send(std::mem::take(&mut self.batch));
            }
        }
    }
}

/// Where a record sorts among the keys: its owner's position first, then
/// CNAMEs, DNSSEC types, other data.
const KIND_CNAME: u128 = 0;
const KIND_DNSSEC: u128 = 1;
const KIND_OTHER: u128 = 2;

/// A record as 128 bits: a 64-bit hash of the owner, the record's kind in
/// the next 2 bits, a 62-bit hash of type and data. Sorted, equal keys are
/// duplicate records and one owner's keys lie together, CNAMEs first.
/// The hashes are seeded per build, so drop content cannot aim at a
/// collision; a collision would only send the zone down the slow path,
/// which compares the records themselves.
fn record_key(owner: u64, kind: u128, seed: u64, rtype: RecordType, data: &RData) -> u128 {
    let mut h = Xxh3::with_seed(seed ^ 0x9e37_79b9_7f4a_7c15);
    (rtype, data).hash(&mut h);
    (u128::from(owner) << 64) | (kind << 62) | u128::from(h.finish() >> 2)
}

/// In sorted keys: a duplicate record, a second CNAME at one owner, or a
/// CNAME with other data beside it (RFC 1034 §3.6.2).
fn conflicts(keys: &[u128]) -> bool {
    let owner = |k: u128| (k >> 64) as u64;
    let kind = |k: u128| (k >> 62) & 3;
    keys.windows(2).any(|w| w[0] == w[1])
        || keys.chunk_by(|x, y| owner(*x) == owner(*y)).any(|group| {
            let cnames = group.iter().filter(|k| kind(**k) == KIND_CNAME).count();
            cnames > 1 || (cnames == 1 && group.iter().any(|k| kind(*k) == KIND_OTHER))
        })
}

/// In sorted `kept` and sorted `added`: a conflict ([`conflicts`]) among
/// the records of an owner that has a record in `added`, or between two
/// records of `added`. Costs a binary search per owner of `added`, not a
/// pass over `kept`.
fn conflicts_with(kept: &[u128], added: &[u128]) -> bool {
    let owner = |k: u128| (k >> 64) as u64;
    added.chunk_by(|x, y| owner(*x) == owner(*y)).any(|group| {
        let o = owner(group[0]);
        let from = kept.partition_point(|k| owner(*k) < o);
        let to = from + kept[from..].partition_point(|k| owner(*k) == o);
        let mut all: Vec<u128> = kept[from..to].iter().chain(group).copied().collect();
        all.sort_unstable();
        conflicts(&all)
    })
}

/// The first thing wrong in a slice.
#[derive(Debug, Clone)]
pub(super) enum Problem {
    Parse(String),
    At {
        name: Box<Name>,
        rtype: Option<String>,
        message: String,
    },
}

fn owner_hash(seed: u64, name: &LowerName) -> u64 {
    let mut h = Xxh3::with_seed(seed);
    name.hash(&mut h);
    h.finish()
}

/// Parse one slice's text (`entries` entries) and add it to `s`.
pub(super) fn summarise(
    text: String,
    entries: usize,
    ctx: &CheckContext,
    s: &mut Checked,
) -> Result<(), Problem> {
    let CheckContext {
        origin,
        apex,
        zone,
        seed,
    } = ctx;
    let (apex, seed) = (apex, *seed);
    // The serial mark is itself a valid serial: the text parses as it is.
    let map = match Parser::new(text, None, Some(origin.clone())).parse() {
        Ok((_, map)) => map,
        Err(e) => return Err(Problem::Parse(e.to_string())),
    };
    let mut count = 0usize;
    let mut flags = 0u8;
    let mut cnames = 0u8;
    let mut group: Vec<RecordType> = Vec::new();
    let mut keys = map.iter().peekable();
    while let Some((key, set)) = keys.next() {
        if !apex.zone_of(&key.name) {
            let name = Name::from(&key.name);
            let message = format!("the owner `{name}` lies outside the zone {zone}");
            return Err(Problem::At {
                name: Box::new(name),
                rtype: None,
                message,
            });
        }
        match key.record_type {
            RecordType::SOA if key.name != *apex => {
                let name = Name::from(&key.name);
                let message =
                    format!("an SOA record belongs only at the apex {zone}, not at `{name}`");
                return Err(Problem::At {
                    name: Box::new(name),
                    rtype: Some("SOA".into()),
                    message,
                });
            }
            RecordType::SOA => s.soas += 1,
            RecordType::NS if key.name == *apex => s.apex_ns = true,
            _ => {}
        }
        let owner = owner_hash(seed, &key.name);
        let kind = match key.record_type {
            RecordType::CNAME => KIND_CNAME,
            RecordType::RRSIG | RecordType::NSEC => KIND_DNSSEC,
            _ => KIND_OTHER,
        };
        for r in set.records_without_rrsigs() {
            count += 1;
            s.keys
                .push(record_key(owner, kind, seed, key.record_type, &r.data));
        }
        match key.record_type {
            RecordType::CNAME => {
                flags |= HAS_CNAME;
                cnames = cnames.saturating_add(set.records_without_rrsigs().count() as u8);
            }
            // DNSSEC types may stand beside a CNAME.
            RecordType::RRSIG | RecordType::NSEC => {}
            _ => flags |= HAS_OTHER,
        }
        group.push(key.record_type);
        if keys.peek().is_some_and(|(next, _)| next.name == key.name) {
            continue;
        }
        // RFC 1034 §3.6.2: a CNAME stands alone.
        if flags & (HAS_CNAME | HAS_OTHER) == HAS_CNAME | HAS_OTHER {
            let name = Name::from(&key.name);
            let other = group
                .iter()
                .find(|t| !matches!(t, RecordType::CNAME | RecordType::RRSIG | RecordType::NSEC))
                .map_or(String::new(), |t| t.to_string());
            let message = format!(
                "`{name}` has a CNAME and other data ({other}) beside it (RFC 1034 §3.6.2)"
            );
            return Err(Problem::At {
                name: Box::new(name),
                rtype: Some(other),
                message,
            });
        }
        flags = 0;
        cnames = 0;
        group.clear();
    }
    s.merged |= count != entries;
    Ok(())
}
