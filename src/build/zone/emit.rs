//! Writing the assembled text: `$ORIGIN`/`$TTL` only where they change,
//! owners relative to the origin in force, and the start of every slice of
//! [`CHUNK`] entries remembered, with the directives it starts under, so
//! the check can parse slices apart.

// Input here comes from drop directories, hooks or zone files: never panic on it.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use crate::build::source;
use std::fmt::Write as _;

/// One slice of the assembled text, as the parser gets it.
pub(super) struct Slice {
    pub(super) index: usize,
    /// The `$ORIGIN`/`$TTL` it starts under, then its entries.
    pub(super) text: String,
    pub(super) entries: usize,
}

/// Writes entries, emitting `$ORIGIN`/`$TTL` only when they change.
#[derive(Debug, Clone)]
pub(super) struct Emitter {
    pub(super) out: String,
    pub(super) zone: String,
    pub(super) default_ttl: String,
    pub(super) origin: String,
    pub(super) ttl: String,
    pub(super) entries: usize,
    pub(super) chunks: Vec<Chunk>,
    /// Where the sources end: the next entry opens a slice.
    pub(super) sealed_at: usize,
}

/// Where a slice of the assembled text starts, and the context it needs:
/// the check parses slices of [`CHUNK`] entries in parallel.
#[derive(Debug, Clone)]
pub(super) struct Chunk {
    pub(super) start: usize,
    pub(super) entries_before: usize,
    pub(super) origin: String,
    pub(super) ttl: String,
}

/// Entries per parallel parsing slice.
pub(super) const CHUNK: usize = 1 << 6;

impl Emitter {
    pub(super) fn new(zone: &str, default_ttl: &str) -> Self {
        Emitter {
            out: String::new(),
            zone: zone.to_string(),
            default_ttl: default_ttl.to_string(),
            origin: String::new(),
            ttl: String::new(),
            entries: 0,
            chunks: Vec::new(),
            sealed_at: usize::MAX,
        }
    }

    /// Call before writing an entry: opens a new slice every CHUNK entries,
    /// and after the sources (the records get slices of their own, so the
    /// sources' slices, checked once, stay as they are).
    pub(super) fn begin_entry(&mut self) {
        let sealed = self
            .chunks
            .last()
            .is_some_and(|c| c.start < self.sealed_at && self.out.len() >= self.sealed_at);
        if self.entries.is_multiple_of(CHUNK) || sealed {
            self.chunks.push(Chunk {
                start: self.out.len(),
                entries_before: self.entries,
                origin: self.origin.clone(),
                ttl: self.ttl.clone(),
            });
        }
        self.entries += 1;
    }

    /// Slice `i` of the text, with the `$ORIGIN`/`$TTL` it starts under.
    /// Complete once slice `i + 1` has begun (or the text is).
    pub(super) fn slice(&self, i: usize) -> Slice {
        let chunk = &self.chunks[i];
        let (end, end_entries) = match self.chunks.get(i + 1) {
            Some(next) => (next.start, next.entries_before),
            None => (self.out.len(), self.entries),
        };
        let mut text = String::with_capacity(end - chunk.start + 64);
        if !chunk.origin.is_empty() {
            let _ = writeln!(text, "$ORIGIN {}", chunk.origin);
        }
        if !chunk.ttl.is_empty() {
            let _ = writeln!(text, "$TTL {}", chunk.ttl);
        }
        text.push_str(&self.out[chunk.start..end]);
        Slice {
            index: i,
            text,
            entries: end_entries - chunk.entries_before,
        }
    }

    /// Back to the zone's origin and default TTL at the start of a part.
    pub(super) fn reset_scope(&mut self) {
        let (zone, ttl) = (self.zone.clone(), self.default_ttl.clone());
        self.directives(&zone, Some(&ttl));
    }

    pub(super) fn directives(&mut self, origin: &str, ttl: Option<&str>) {
        if self.origin != origin {
            let _ = writeln!(self.out, "$ORIGIN {origin}");
            self.origin = origin.to_string();
        }
        let ttl = ttl.unwrap_or(&self.default_ttl);
        if self.ttl != ttl {
            let _ = writeln!(self.out, "$TTL {ttl}");
            self.ttl = ttl.to_string();
        }
    }

    /// One entry; `owner` is absolute and is written relative to the
    /// `$ORIGIN` in force where it lies under it (the output is smaller and
    /// the check's parser reads one label instead of every label).
    pub(super) fn entry(&mut self, owner: &str, rest: &str) {
        self.begin_entry();
        self.out.push_str(relative(owner, &self.origin));
        if !rest.starts_with([' ', '\t']) {
            self.out.push(' ');
        }
        self.out.push_str(rest);
        self.out.push('\n');
    }
}

/// `owner` (absolute) relative to `origin` when it lies under it: `@` for
/// the origin itself, `www` for `www.example.test.` under `example.test.`;
/// otherwise `owner` as it is. A dot that a backslash escapes is part of a
/// label, not a label boundary, so `a\.example.test.` stays absolute.
pub(super) fn relative<'o>(owner: &'o str, origin: &str) -> &'o str {
    if owner.eq_ignore_ascii_case(origin) {
        return "@";
    }
    if origin == "." || origin.is_empty() {
        return owner;
    }
    // `head.` must end with a label boundary, and the rest be the origin.
    let Some(cut) = owner.len().checked_sub(origin.len() + 1) else {
        return owner;
    };
    match (owner.get(..=cut), owner.get(cut + 1..)) {
        (Some(head), Some(tail))
            if cut > 0
                && source::ends_with_unescaped_dot(head)
                && tail.eq_ignore_ascii_case(origin) =>
        {
            &head[..cut]
        }
        _ => owner,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_written_relative_to_the_origin_only_where_they_lie_under_it() {
        let o = "example.test.";
        assert_eq!(relative("example.test.", o), "@");
        assert_eq!(relative("Example.TEST.", o), "@");
        assert_eq!(relative("www.example.test.", o), "www");
        assert_eq!(relative("*.wild.EXAMPLE.test.", o), "*.wild");
        assert_eq!(relative("a\\\\.example.test.", o), "a\\\\");
        // An escaped dot joins `a.example` into one label: not under the origin.
        assert_eq!(relative("a\\.example.test.", o), "a\\.example.test.");
        assert_eq!(relative("wwwexample.test.", o), "wwwexample.test.");
        assert_eq!(relative("example.org.", o), "example.org.");
        assert_eq!(relative("test.", o), "test.");
        assert_eq!(relative("www.example.test.", "."), "www.example.test.");
    }
}
