//! The cache of a zone's checked sources (`state/cache/<zone>`): its
//! assembled text up to the end of the operator's sources, where its
//! slices start, and the summary of their check (the 128-bit record keys
//! and their seed). A zone whose only change is its challenges is settled
//! from it: only the challenge records are parsed, and checked against the
//! kept keys (a CNAME at the owner, duplicates, names outside the zone).
//!
//! The cache is rebuildable, never required: it is used only under the
//! `key` of the zone's input record (the stamps of its sources and the
//! digest of its extra entries), and a file that is missing, of another
//! version, under another key or damaged (checked by a digest of the whole)
//! is no cache. It is written atomically (a temporary renamed over it), so
//! a writer killed midway leaves the old file or the new one; it is not
//! fsynced, since after a power loss the digest tells a torn file.
//!
//! `watch` and `run` also keep them in memory ([`keep_in_memory`]), bounded
//! by a byte limit, least recently used out first.

// Input here comes from state/ files: never panic on it.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use super::check::Checked;
use super::emit::{Chunk, Emitter};
use super::{Assembled, Mark, Soa};
use crate::base::fs::write_replace_with;
use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The file's first bytes: the format and its version.
const MAGIC: &[u8] = b"zonedrop zone cache 1\n";

/// Zones whose sources are smaller than this are read again rather than
/// cached: reading a small zone costs about what loading it would.
pub const MIN_BYTES: usize = 64 * 1024;

/// Where the cache of `zone` lives under `state`.
pub fn path(state: &Path, zone: &str) -> PathBuf {
    state.join("cache").join(zone.trim_end_matches('.'))
}

/// Whether `a`'s sources are worth a cache ([`MIN_BYTES`]) and checked.
pub fn worth(a: &Assembled) -> bool {
    a.em.sealed_at >= MIN_BYTES
        && a.em.sealed_at != usize::MAX
        && a.checked.problem.is_none()
        && a.checked.upto == a.sources_end.chunks
}

/// Write the checked sources of `a` under `key`, atomically (streamed:
/// a big zone's cache is not built in memory first).
pub fn save(state: &Path, a: &Assembled, key: &str) -> io::Result<()> {
    let target = path(state, &a.zone);
    let dir = target.parent().unwrap_or(state);
    std::fs::create_dir_all(dir)?;
    write_replace_with(&target, |out| {
        let mut w = Writer {
            out,
            hash: xxhash_rust::xxh3::Xxh3::new(),
        };
        w.raw(MAGIC)?;
        w.str(key)?;
        w.str(&a.zone)?;
        // The emitter as it stands where the sources end.
        let m = &a.sources_end;
        let em = &a.em;
        w.str(em.out.get(..em.sealed_at).unwrap_or(&em.out))?;
        w.str(&em.zone)?;
        w.str(&em.default_ttl)?;
        w.str(&m.origin)?;
        w.str(&m.ttl)?;
        w.num(m.entries as u64)?;
        w.num(m.chunks as u64)?;
        for c in em.chunks.get(..m.chunks).unwrap_or(&em.chunks) {
            w.num(c.start as u64)?;
            w.num(c.entries_before as u64)?;
            w.str(&c.origin)?;
            w.str(&c.ttl)?;
        }
        w.num(a.serial_at as u64)?;
        w.path(&a.soa.file)?;
        w.num(a.soa.line as u64)?;
        w.num(u64::from(a.soa.serial))?;
        w.str(&a.soa.default_ttl)?;
        w.num(a.inputs.len() as u64)?;
        for p in &a.inputs {
            w.path(p)?;
        }
        let c = &a.checked;
        w.num(c.soas as u64)?;
        w.num(u64::from(c.apex_ns) | (u64::from(c.merged) << 1))?;
        w.num(c.keys.len() as u64)?;
        for k in &c.keys {
            w.raw(&k.to_le_bytes())?;
        }
        w.num(a.seed)?;
        let digest = w.hash.digest128();
        w.out.write_all(&digest.to_le_bytes())
    })
}

/// Why a cache file was not used (for the log line), when there was one.
pub type Unusable = String;

/// The checked sources of `zone` cached under `key`: `Ok(None)` when there
/// is no cache, or one under another key (the sources moved since).
pub fn load(state: &Path, zone: &str, key: &str) -> Result<Option<Assembled>, Unusable> {
    let path = path(state, zone);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let damaged = || format!("{}: damaged or of another version", path.display());
    let body_len = bytes.len().checked_sub(16).ok_or_else(damaged)?;
    let (body, digest) = bytes.split_at(body_len);
    let digest: [u8; 16] = digest.try_into().map_err(|_| damaged())?;
    if !body.starts_with(MAGIC) || xxhash_rust::xxh3::xxh3_128(body) != u128::from_le_bytes(digest)
    {
        return Err(damaged());
    }
    let mut r = Reader {
        at: MAGIC.len(),
        bytes: body,
    };
    let read = |r: &mut Reader<'_>| -> Option<Option<Assembled>> {
        if r.str()? != key {
            return Some(None);
        }
        let zone_name = r.str()?;
        if zone_name != zone {
            return Some(None);
        }
        let out = r.str()?;
        let (em_zone, default_ttl, origin, ttl) = (r.str()?, r.str()?, r.str()?, r.str()?);
        let entries = r.usize()?;
        let n_chunks = r.usize()?;
        let mut chunks = Vec::with_capacity(n_chunks.min(body.len() / 8));
        for _ in 0..n_chunks {
            chunks.push(Chunk {
                start: r.usize()?,
                entries_before: r.usize()?,
                origin: r.str()?,
                ttl: r.str()?,
            });
        }
        let serial_at = r.usize()?;
        let soa = Soa {
            file: r.path()?,
            line: r.usize()?,
            serial: u32::try_from(r.num()?).ok()?,
            default_ttl: r.str()?,
        };
        let n_inputs = r.usize()?;
        let mut inputs = Vec::with_capacity(n_inputs.min(body.len()));
        for _ in 0..n_inputs {
            inputs.push(r.path()?);
        }
        let soas = r.usize()?;
        let flags = r.num()?;
        let n_keys = r.usize()?;
        let mut keys = Vec::with_capacity(n_keys.min(body.len() / 16));
        for _ in 0..n_keys {
            keys.push(u128::from_le_bytes(r.take(16)?.try_into().ok()?));
        }
        let seed = r.num()?;
        let in_order = chunks
            .windows(2)
            .all(|w| w[0].start <= w[1].start && w[0].entries_before <= w[1].entries_before);
        let last_fits = chunks.last().is_none_or(|c| {
            c.start <= out.len() && out.is_char_boundary(c.start) && c.entries_before <= entries
        });
        if r.at != body.len()
            || serial_at >= out.len()
            || !in_order
            || !last_fits
            || chunks.iter().any(|c| !out.is_char_boundary(c.start))
        {
            return None;
        }
        let sealed_at = out.len();
        let sources_end = Mark {
            entries,
            chunks: n_chunks,
            origin: origin.clone(),
            ttl: ttl.clone(),
        };
        Some(Some(Assembled {
            zone: zone_name,
            em: Emitter {
                out,
                zone: em_zone,
                default_ttl,
                origin,
                ttl,
                entries,
                chunks,
                sealed_at,
            },
            serial_at,
            soa,
            inputs,
            sources_end,
            checked: Checked {
                upto: n_chunks,
                soas,
                apex_ns: flags & 1 != 0,
                merged: flags & 2 != 0,
                keys,
                problem: None,
                clean: true,
            },
            seed,
        }))
    };
    read(&mut r).ok_or_else(damaged)
}

/// The checked sources kept in memory by a long-running process (`watch`,
/// `run`): by zone, under the same key as the file, least recently used
/// first out once they take more than the limit.
static MEMORY: Mutex<Option<Memory>> = Mutex::new(None);

struct Memory {
    limit: usize,
    used: usize,
    clock: u64,
    zones: HashMap<String, Kept>,
}

struct Kept {
    key: String,
    sources: Assembled,
    bytes: usize,
    used_at: u64,
}

/// Keep checked sources in memory too, up to `limit` bytes (`watch` and
/// `run` call this once: a cron build has no later build to keep them for).
pub fn keep_in_memory(limit: usize) {
    let mut m = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    *m = Some(Memory {
        limit,
        used: 0,
        clock: 0,
        zones: HashMap::new(),
    });
}

/// Bytes `a`'s sources take in memory, roughly.
fn size(a: &Assembled) -> usize {
    a.em.sealed_at.min(a.em.out.len())
        + a.checked.keys.len() * 16
        + a.em.chunks.len() * (std::mem::size_of::<Chunk>() + 16)
}

/// `a` (its sources: the records are cut off) kept in memory under `key`,
/// if memory is kept and it fits.
pub fn remember(a: &Assembled, key: &str) {
    let mut guard = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    let Some(m) = guard.as_mut() else {
        return;
    };
    if let Some(old) = m.zones.remove(&a.zone) {
        m.used -= old.bytes;
    }
    let bytes = size(a);
    if bytes > m.limit {
        return;
    }
    while m.used + bytes > m.limit {
        let Some(oldest) = m
            .zones
            .iter()
            .min_by_key(|(_, k)| k.used_at)
            .map(|(z, _)| z.clone())
        else {
            break;
        };
        if let Some(k) = m.zones.remove(&oldest) {
            m.used -= k.bytes;
        }
    }
    let mut sources = a.clone();
    sources.set_records(&[]);
    // Only sources that passed the check are kept.
    sources.checked.clean = true;
    m.clock += 1;
    m.used += bytes;
    m.zones.insert(
        a.zone.clone(),
        Kept {
            key: key.to_string(),
            sources,
            bytes,
            used_at: m.clock,
        },
    );
}

/// The checked sources of `zone` kept in memory under `key`, if any.
pub fn recall(zone: &str, key: &str) -> Option<Assembled> {
    let mut guard = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    let m = guard.as_mut()?;
    m.clock += 1;
    let clock = m.clock;
    let k = m.zones.get_mut(zone).filter(|k| k.key == key)?;
    k.used_at = clock;
    Some(k.sources.with_room())
}

/// Forget the cache of `zone` (it is no longer worth one).
pub fn remove(state: &Path, zone: &str) {
    let _ = std::fs::remove_file(path(state, zone));
}

/// Remove the caches of zones not in `zones` (removed from the config),
/// in memory and in state/, and temporaries a killed writer left.
pub fn prune<'z>(state: &Path, zones: impl Iterator<Item = &'z str>) {
    let keep: std::collections::HashSet<&str> = zones.map(|z| z.trim_end_matches('.')).collect();
    if let Some(m) = MEMORY.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        let gone: Vec<String> = m
            .zones
            .keys()
            .filter(|z| !keep.contains(z.trim_end_matches('.')))
            .cloned()
            .collect();
        for z in gone {
            if let Some(k) = m.zones.remove(&z) {
                m.used -= k.bytes;
            }
        }
    }
    let dir = state.join("cache");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        if name.to_str().is_none_or(|n| !keep.contains(n)) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Writes the cache's fields and hashes what it writes.
struct Writer<'w> {
    out: &'w mut dyn Write,
    hash: xxhash_rust::xxh3::Xxh3,
}

impl Writer<'_> {
    fn raw(&mut self, b: &[u8]) -> io::Result<()> {
        self.hash.update(b);
        self.out.write_all(b)
    }
    fn num(&mut self, n: u64) -> io::Result<()> {
        self.raw(&n.to_le_bytes())
    }
    fn bytes(&mut self, b: &[u8]) -> io::Result<()> {
        self.num(b.len() as u64)?;
        self.raw(b)
    }
    fn str(&mut self, s: &str) -> io::Result<()> {
        self.bytes(s.as_bytes())
    }
    fn path(&mut self, p: &Path) -> io::Result<()> {
        self.bytes(p.as_os_str().as_encoded_bytes())
    }
}

struct Reader<'b> {
    at: usize,
    bytes: &'b [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n)?;
        let b = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(b)
    }
    fn num(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn usize(&mut self) -> Option<usize> {
        usize::try_from(self.num()?).ok()
    }
    fn bytes(&mut self) -> Option<&[u8]> {
        let n = self.usize()?;
        self.take(n)
    }
    fn str(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
    fn path(&mut self) -> Option<PathBuf> {
        use std::os::unix::ffi::OsStrExt;
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(self.bytes()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::config::Config;
    use crate::build::zone::Sources;

    #[test]
    fn a_cache_reads_back_and_memory_keeps_the_most_recent_within_its_limit() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        let mut config = String::new();
        for z in ["a.test", "b.test"] {
            config.push_str(&format!("[[zone]]\nname = \"{z}\"\n"));
            let write = |rel: String, text: &str| {
                std::fs::create_dir_all(p.join(&rel).parent().unwrap()).unwrap();
                std::fs::write(p.join(rel), text).unwrap();
            };
            write(
                format!("zones/soa/{z}"),
                "$TTL 3600\n@ IN SOA ns1 h 1 7200 3600 1209600 300\n",
            );
            let hosts: String = (0..100).map(|i| format!("h{i} IN A 192.0.2.1\n")).collect();
            write(
                format!("zones/primary/{z}"),
                &format!("@ IN NS ns1\n{hosts}"),
            );
        }
        std::fs::write(p.join("zonedrop.toml"), &config).unwrap();
        let config = Config::load(&p.join("zonedrop.toml")).unwrap();
        let mut sources = Sources::new(&config).unwrap();
        let mut a = sources.assemble_sources("a.test.").unwrap();
        let mut b = sources.assemble_sources("b.test.").unwrap();
        sources.check(&mut a, &[]).unwrap();
        sources.check(&mut b, &[]).unwrap();

        // The file: read back under its key only.
        let state = p.join("state");
        save(&state, &a, "k1").unwrap();
        let back = load(&state, "a.test.", "k1").unwrap().unwrap();
        assert_eq!(back.content(), a.content());
        assert_eq!(back.checked.keys, a.checked.keys);
        assert!(load(&state, "a.test.", "k2").unwrap().is_none());
        assert!(load(&state, "b.test.", "k1").unwrap().is_none());

        // Memory: room for one of the two.
        keep_in_memory(size(&a) + size(&b) / 2);
        remember(&a, "ka");
        assert!(recall("a.test.", "ka").is_some());
        assert!(recall("a.test.", "other key").is_none());
        remember(&b, "kb");
        assert!(recall("a.test.", "ka").is_none(), "the least recent went");
        assert_eq!(recall("b.test.", "kb").unwrap().content(), b.content());
        prune(&state, ["a.test."].into_iter());
        assert!(
            recall("b.test.", "kb").is_none(),
            "a zone no longer configured"
        );
    }
}
