//! Zone assembly and whole-zone checks, in parts:
//! - `sources`: reading soa/, primary/ and extra/ into one text per zone;
//! - [`alias`]: the challenge alias rule (a CNAME at a challenge owner);
//! - `emit`: writing that text, in slices the check can parse apart;
//! - `check`: the parallel parse and the whole-zone checks;
//! - `locate`: the file and line of what the check found;
//! - [`settle`]: refusing the challenges that would break a zone;
//! - [`cache`]: a zone's checked sources kept in state/ between builds.
//!
//! For each zone: `$ORIGIN zone.`, the SOA part (its serial set later by
//! policy), the primary part, the extra entries whose owners fall in the
//! zone (closest enclosing zone wins), TLSA/SSHFP records, then the
//! accepted challenges. Every part starts at the zone's origin and default
//! TTL, so a directive in one part cannot change the meaning of another.
//! Owners are written relative to the `$ORIGIN` in force where they lie
//! under it.

// Input here comes from drop directories, hooks or zone files: never panic on it.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod alias;
pub mod cache;
mod check;
mod emit;
mod locate;
pub mod memo;
mod settle;
mod sources;

pub use settle::{settle, Settled};
pub use sources::{read_aliases, Sources};

use crate::build::source::{self, at_line};
use check::Checked;
use emit::Emitter;
use std::fmt::Write as _;
use std::path::PathBuf;
use thiserror::Error;

/// Stands where the SOA serial goes until the policy has chosen it.
const SERIAL_MARK: &str = "4294967295";

/// What is wrong with a zone, and where (the file and line when known).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ZoneError {
    #[error("{}{}: {message}", crate::base::name::printable_path(file), at_line(*line))]
    At {
        file: PathBuf,
        line: usize,
        message: String,
    },
    #[error("zone {zone}: {message}")]
    Zone { zone: String, message: String },
}

impl From<source::SourceError> for ZoneError {
    fn from(e: source::SourceError) -> Self {
        ZoneError::At {
            file: e.file,
            line: e.line,
            message: e.message,
        }
    }
}

/// The SOA as found in `soa/<zone>`.
#[derive(Debug, Clone)]
pub struct Soa {
    pub file: PathBuf,
    pub line: usize,
    /// The serial as written.
    pub serial: u32,
    /// The zone's default TTL: soa/'s `$TTL`, else the SOA minimum.
    pub default_ttl: String,
}

/// A record zonedrop renders itself (challenge, TLSA, SSHFP), with where it came from.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub owner: String,
    pub ttl: u32,
    pub rtype: &'static str,
    /// Zone-file text of the data (a TXT value already quoted).
    pub rdata: String,
    pub source: PathBuf,
}

/// A zone assembled: its text with the serial still open.
#[derive(Debug, Clone)]
pub struct Assembled {
    pub zone: String,
    /// The text so far, and where its slices start.
    em: Emitter,
    /// Byte offset of the serial mark in the text.
    serial_at: usize,
    pub soa: Soa,
    /// Every source file read for it (soa, primary, included files).
    pub inputs: Vec<PathBuf>,
    /// Where the operator's sources end and the rendered records begin.
    sources_end: Mark,
    /// The sources' slices, if they were checked while being read.
    checked: Checked,
    /// Seeds the record keys of this zone's check.
    seed: u64,
}

/// The emitter's state where the sources end (at its `sealed_at`), to go
/// back to.
#[derive(Debug, Clone)]
struct Mark {
    entries: usize,
    chunks: usize,
    origin: String,
    ttl: String,
}

/// Bytes of room a copy of cached sources gets for the records that
/// follow them ([`Assembled::with_room`]).
const RECORDS_ROOM: usize = 64 << 10;

impl Assembled {
    /// A copy with room after the text for the records, so that
    /// [`Assembled::set_records`] does not copy the text again to grow it
    /// (a million-record zone's text is about 25 MB).
    pub fn with_room(&self) -> Assembled {
        let mut out = String::with_capacity(self.em.out.len() + RECORDS_ROOM);
        out.push_str(&self.em.out);
        let em = &self.em;
        Assembled {
            zone: self.zone.clone(),
            em: Emitter {
                out,
                zone: em.zone.clone(),
                default_ttl: em.default_ttl.clone(),
                origin: em.origin.clone(),
                ttl: em.ttl.clone(),
                entries: em.entries,
                chunks: em.chunks.clone(),
                sealed_at: em.sealed_at,
            },
            serial_at: self.serial_at,
            soa: self.soa.clone(),
            inputs: self.inputs.clone(),
            sources_end: self.sources_end.clone(),
            checked: self.checked.clone(),
            seed: self.seed,
        }
    }

    /// The text with the serial filled in.
    pub fn with_serial(&self, serial: u32) -> String {
        self.parts_with_serial(&serial.to_string()).concat()
    }

    /// The text with `serial` filled in, as the three pieces to write one
    /// after the other (a copy of a big zone's text would double its
    /// memory).
    pub fn parts_with_serial<'s>(&'s self, serial: &'s str) -> [&'s str; 3] {
        let text = &self.em.out;
        [
            &text[..self.serial_at],
            serial,
            &text[self.serial_at + SERIAL_MARK.len()..],
        ]
    }

    /// The text with the serial left open: what "content changed" compares.
    pub fn content(&self) -> &str {
        &self.em.out
    }

    /// Put `records` (keys, then challenges) after the operator's sources,
    /// in place of any records set before.
    pub fn set_records(&mut self, records: &[Rendered]) {
        let m = &self.sources_end;
        let em = &mut self.em;
        em.out.truncate(em.sealed_at);
        em.entries = m.entries;
        em.chunks.truncate(m.chunks);
        em.origin.clone_from(&m.origin);
        em.ttl.clone_from(&m.ttl);
        if !records.is_empty() {
            em.reset_scope();
            for r in records {
                em.begin_entry();
                let _ = writeln!(em.out, "{} {} IN {} {}", r.owner, r.ttl, r.rtype, r.rdata);
            }
        }
    }
}

fn zone_err(zone: &str, message: String) -> ZoneError {
    ZoneError::Zone {
        zone: zone.to_string(),
        message,
    }
}

/// Render a TXT value as one quoted character-string. Values reaching here
/// were checked by the whitelist: no quote, backslash or control character.
pub fn quote_txt(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}
