//! The record lines a long-running builder (`watch`, `run`) has checked
//! before. A build whose only change is its challenges checks the records
//! part of the zone again (the sources come checked from their cache):
//! with thousands of challenges pending, parsing them all at every build
//! was most of its check. Each line of the records part is one record,
//! parsed once under its zone, scope and key seed; what it came to (its
//! record key, whether it is an SOA or an apex NS) is kept here and reused.
//! A line that does not parse, or parses to anything but one record, is
//! never kept: it is parsed (and reported) every time.
//!
//! The memory is bounded ([`MAX_LINES`]: cleared when full) and off in a
//! single build, which parses its records in one pass instead.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use super::check::{summarise, CheckContext, Checked};
use super::Assembled;
use std::collections::HashMap;
use std::sync::Mutex;
use xxhash_rust::xxh3::Xxh3;

/// Lines kept at most (about 40 bytes each).
const MAX_LINES: usize = 200_000;

/// What one record line came to.
#[derive(Debug, Clone, Copy)]
struct Line {
    key: u128,
    soa: bool,
    apex_ns: bool,
}

/// None: off (a single build).
static LINES: Mutex<Option<HashMap<u128, Line>>> = Mutex::new(None);

/// Keep the record lines checked from now on (`watch`, `run`).
pub fn keep() {
    let mut lines = LINES.lock().unwrap_or_else(|e| e.into_inner());
    if lines.is_none() {
        *lines = Some(HashMap::new());
    }
}

/// The records part of `a` (slices `pending`) summarised line by line
/// with the kept lines, or None when nothing is kept (the caller parses
/// the slices as a whole).
pub(super) fn records(
    a: &Assembled,
    ctx: &CheckContext,
    pending: std::ops::Range<usize>,
) -> Option<Checked> {
    let mut guard = LINES.lock().unwrap_or_else(|e| e.into_inner());
    let lines = guard.as_mut()?;
    let mut out = Checked::default();
    for i in pending {
        let slice = a.em.slice(i);
        let body_at = scope_end(&slice.text);
        let (scope, body) = slice.text.split_at(body_at);
        if body.lines().any(|l| l.starts_with('$')) || body.lines().count() != slice.entries {
            // Not one record a line: the slice is parsed whole.
            let mut whole = Checked::default();
            if let Err(p) = summarise(slice.text.clone(), slice.entries, ctx, &mut whole) {
                whole.problem = Some((i, p));
            }
            out.absorb(&whole);
            continue;
        }
        for line in body.lines() {
            let id = digest(ctx, scope, line);
            if let Some(l) = lines.get(&id) {
                out.keys.push(l.key);
                out.soas += usize::from(l.soa);
                out.apex_ns |= l.apex_ns;
                continue;
            }
            let mut one = Checked::default();
            match summarise(format!("{scope}{line}\n"), 1, ctx, &mut one) {
                Ok(()) if one.keys.len() == 1 && !one.merged && one.soas <= 1 => {
                    if lines.len() >= MAX_LINES {
                        lines.clear();
                    }
                    lines.insert(
                        id,
                        Line {
                            key: one.keys[0],
                            soa: one.soas == 1,
                            apex_ns: one.apex_ns,
                        },
                    );
                    out.absorb(&one);
                }
                Ok(()) => out.absorb(&one),
                Err(p) => {
                    one.problem = Some((i, p));
                    out.absorb(&one);
                }
            }
        }
    }
    Some(out)
}

/// Where the `$ORIGIN`/`$TTL` lines a slice starts with end.
fn scope_end(text: &str) -> usize {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if !line.starts_with('$') {
            break;
        }
        at += line.len();
    }
    at
}

fn digest(ctx: &CheckContext, scope: &str, line: &str) -> u128 {
    let mut h = Xxh3::with_seed(ctx.seed());
    h.update(ctx.zone().as_bytes());
    h.update(&[0]);
    h.update(scope.as_bytes());
    h.update(&[0]);
    h.update(line.as_bytes());
    h.digest128()
}
