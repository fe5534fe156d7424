//! Zone sources (soa/, primary/, extra/): split into entries with their file
//! and line, directives resolved here and nowhere else.
//!
//! RFC 1035 §5.1 master-file syntax: entries end at a newline outside
//! parentheses and quotes, `;` starts a comment, a line starting with blank
//! space reuses the last owner. This module handles `$ORIGIN`, `$TTL` and
//! `$INCLUDE` itself so that hickory's parser never sees an `$INCLUDE` (it
//! would follow any absolute path) and so that a directive cannot change the
//! meaning of another file: every file starts with the origin and default
//! TTL it is given, and an `$INCLUDE` restores both afterwards (§5.1: "the
//! origin ... is restored"). Included files must lie under the source
//! folders. The record data itself is left to hickory (see `zone`).

// Input here comes from drop directories, hooks or zone files: never panic on it.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// How deep `$INCLUDE` may nest.
const MAX_INCLUDE_DEPTH: usize = 8;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{}{}: {message}", crate::base::name::printable_path(file), at_line(*line))]
pub struct SourceError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

/// `:LINE` after a file name in a message; nothing for line 0, which
/// stands for the file as a whole (one that cannot be read, or is missing).
pub fn at_line(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}")
    }
}

/// The context an entry is read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Absolute origin, e.g. `example.test.`.
    pub origin: Arc<str>,
    /// The `$TTL` in force, as written (hickory parses its units).
    pub ttl: Option<Arc<str>>,
}

/// One resource-record entry of a source file.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub file: &'a Arc<PathBuf>,
    pub line: usize,
    pub scope: &'a Scope,
    /// The owner made absolute (`@`, relative names and blank owners resolved).
    pub owner: &'a str,
    /// The entry after its owner, exactly as written (may span lines).
    pub rest: &'a str,
    /// The tokens after the owner, quotes kept, comments and parentheses dropped.
    pub tokens: &'a [&'a str],
}

impl Entry<'_> {
    /// The record type token (after optional TTL and class), upper-cased.
    pub fn rtype(&self) -> Option<String> {
        self.type_index()
            .map(|i| self.tokens[i].to_ascii_uppercase())
    }

    /// Index in `tokens` of the type.
    pub fn type_index(&self) -> Option<usize> {
        self.tokens.iter().position(|t| !is_ttl(t) && !is_class(t))
    }

    /// The TTL token, if the entry has one.
    pub fn ttl_token(&self) -> Option<&str> {
        let end = self.type_index().unwrap_or(self.tokens.len());
        self.tokens[..end].iter().find(|t| is_ttl(t)).copied()
    }

    /// The entry text with every `@` token in the record data replaced by
    /// the origin: hickory's parser takes `@` only as an owner, while RFC
    /// 1035 §5.1 allows it wherever a domain name stands.
    pub fn rest_text(&self) -> std::borrow::Cow<'_, str> {
        at_to_origin(self.rest, &self.scope.origin)
    }

    /// The record data tokens (after the type).
    pub fn rdata(&self) -> &[&str] {
        match self.type_index() {
            Some(i) => &self.tokens[i + 1..],
            None => &[],
        }
    }
}

/// Replace standalone `@` tokens outside quotes and comments by `origin`.
pub fn at_to_origin<'a>(text: &'a str, origin: &str) -> std::borrow::Cow<'a, str> {
    if !text.contains('@') {
        return text.into();
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len() + origin.len());
    let (mut quoted, mut comment) = (false, false);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\\' if !comment => {
                // The backslash and the whole character it escapes, which
                // may be more than one byte.
                let next = text[i + 1..].chars().next().map_or(0, char::len_utf8);
                let end = i + 1 + next;
                out.push_str(&text[i..end]);
                i = end;
                continue;
            }
            b'"' if !comment => quoted = !quoted,
            b';' if !quoted => comment = true,
            b'\n' => comment = false,
            b'@' if !quoted && !comment => {
                let before = i == 0 || matches!(b[i - 1], b' ' | b'\t' | b'(' | b'\n');
                let after = i + 1 == b.len()
                    || matches!(b[i + 1], b' ' | b'\t' | b')' | b'\n' | b'\r' | b';');
                if before && after {
                    out.push_str(origin);
                    i += 1;
                    continue;
                }
            }
            _ => {}
        }
        let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&text[i..i + ch_len]);
        i += ch_len;
    }
    out.into()
}

fn is_ttl(t: &str) -> bool {
    t.as_bytes().first().is_some_and(u8::is_ascii_digit)
}

fn is_class(t: &str) -> bool {
    ["IN", "CH", "HS", "CS", "NONE", "ANY"]
        .iter()
        .any(|c| t.eq_ignore_ascii_case(c))
        // Bytes, not `str` slices: a token may hold non-ASCII text, and
        // byte 5 need not be a character boundary.
        || (t.len() > 5
            && t.as_bytes()[..5].eq_ignore_ascii_case(b"CLASS")
            && t.as_bytes()[5..].iter().all(u8::is_ascii_digit))
}

/// Make `name` absolute against `origin` (`@` is the origin).
pub fn absolute(name: &str, origin: &str) -> String {
    let mut out = String::new();
    absolute_into(name, origin, &mut out);
    out
}

/// [`absolute`] into `out`, reusing its allocation (once per entry of a
/// million-record zone).
fn absolute_into(name: &str, origin: &str, out: &mut String) {
    out.clear();
    if name == "@" {
        out.push_str(origin);
    } else if ends_with_unescaped_dot(name) {
        out.push_str(name);
    } else {
        out.push_str(name);
        out.push('.');
        if origin != "." {
            out.push_str(origin);
        }
    }
}

/// Does `name` end with a dot that no backslash escapes (a label boundary)?
pub fn ends_with_unescaped_dot(name: &str) -> bool {
    let b = name.as_bytes();
    if b.last() != Some(&b'.') {
        return false;
    }
    // Count the backslashes before the final dot: even means unescaped.
    let slashes = b[..b.len() - 1]
        .iter()
        .rev()
        .take_while(|&&c| c == b'\\')
        .count();
    slashes % 2 == 0
}

/// What the expander reports besides entries.
pub trait Sink {
    /// One resource-record entry.
    fn entry(&mut self, entry: &Entry<'_>) -> Result<(), String>;
    /// A file was read (the main one or an included one): for the manifest.
    fn file(&mut self, _path: &Path) {}
}

/// Reads source files and feeds their entries to a [`Sink`].
pub struct Expander<'r> {
    /// Folders `$INCLUDE` may reach into (canonical).
    roots: &'r [PathBuf],
}

impl<'r> Expander<'r> {
    pub fn new(roots: &'r [PathBuf]) -> Self {
        Expander { roots }
    }

    /// Expand `path` read in `scope`.
    pub fn expand(
        &self,
        path: &Path,
        scope: Scope,
        sink: &mut dyn Sink,
    ) -> Result<(), SourceError> {
        let text = std::fs::read_to_string(path).map_err(|e| SourceError {
            file: path.to_path_buf(),
            line: 0,
            message: format!("cannot read: {e}"),
        })?;
        self.expand_text(&text, Arc::new(path.to_path_buf()), scope, sink, 0)
    }

    /// Expand `text` as if read from `file`.
    pub fn expand_text(
        &self,
        text: &str,
        file: Arc<PathBuf>,
        mut scope: Scope,
        sink: &mut dyn Sink,
        depth: usize,
    ) -> Result<(), SourceError> {
        sink.file(&file);
        let err = |line: usize, message: String| SourceError {
            file: file.to_path_buf(),
            line,
            message,
        };
        // The owner of the last entry: blank-owner entries reuse it.
        let mut owner = String::new();
        let mut have_owner = false;
        let mut tokens: Vec<&str> = Vec::new();
        for raw in Splitter::new(text) {
            let raw = raw.map_err(|(line, m)| err(line, m))?;
            tokens.clear();
            tokenize(raw.text, &mut tokens);
            let Some(first) = tokens.first().copied() else {
                continue; // blank line or comment only
            };
            if !raw.blank_owner && first.starts_with('$') {
                let arg = |i: usize| tokens.get(i).copied();
                match first.to_ascii_uppercase().as_str() {
                    "$ORIGIN" => {
                        let name = arg(1).ok_or_else(|| err(raw.line, "$ORIGIN needs a domain name".into()))?;
                        scope.origin = absolute(name, &scope.origin).into();
                    }
                    "$TTL" => {
                        let ttl = arg(1).ok_or_else(|| err(raw.line, "$TTL needs a value".into()))?;
                        scope.ttl = Some(ttl.into());
                    }
                    "$INCLUDE" => {
                        let target = arg(1).ok_or_else(|| err(raw.line, "$INCLUDE needs a file name".into()))?;
                        if depth >= MAX_INCLUDE_DEPTH {
                            return Err(err(raw.line, format!("$INCLUDE nests deeper than {MAX_INCLUDE_DEPTH} levels")));
                        }
                        let path = self.include_path(&file, target).map_err(|m| err(raw.line, m))?;
                        let inner_text = std::fs::read_to_string(&path)
                            .map_err(|e| err(raw.line, format!("$INCLUDE {}: cannot read: {e}", crate::base::name::printable_path(&path))))?;
                        let inner_scope = Scope {
                            origin: match arg(2) {
                                Some(o) => absolute(o, &scope.origin).into(),
                                None => scope.origin.clone(),
                            },
                            ttl: scope.ttl.clone(),
                        };
                        // The included file's $ORIGIN and $TTL end with it.
                        self.expand_text(&inner_text, Arc::new(path), inner_scope, sink, depth + 1)?;
                    }
                    other => {
                        return Err(err(
                            raw.line,
                            format!("the directive {other} is not supported (only $ORIGIN, $TTL and $INCLUDE)"),
                        ))
                    }
                }
                continue;
            }
            let (rest_tokens, rest) = if raw.blank_owner {
                if !have_owner {
                    return Err(err(
                        raw.line,
                        "this entry has no owner and none came before it in this file".into(),
                    ));
                }
                (&tokens[..], raw.text)
            } else {
                absolute_into(first, &scope.origin, &mut owner);
                have_owner = true;
                // `first` is a slice of the entry's text: the rest starts
                // where it ends.
                let after = first.as_ptr() as usize - raw.text.as_ptr() as usize + first.len();
                (&tokens[1..], raw.text.get(after..).unwrap_or(""))
            };
            let entry = Entry {
                file: &file,
                line: raw.line,
                scope: &scope,
                owner: &owner,
                rest,
                tokens: rest_tokens,
            };
            if entry.type_index().is_none() {
                return Err(err(raw.line, "this entry has no record type".into()));
            }
            sink.entry(&entry).map_err(|m| err(raw.line, m))?;
        }
        Ok(())
    }

    /// Resolve an `$INCLUDE` target relative to the including file, and
    /// refuse anything outside the source folders.
    fn include_path(&self, from: &Path, target: &str) -> Result<PathBuf, String> {
        let target = target.trim_matches('"');
        let base = from.parent().unwrap_or(Path::new("."));
        let joined = base.join(target);
        let real = joined
            .canonicalize()
            .map_err(|e| format!("$INCLUDE {target}: {e}"))?;
        if !self.roots.iter().any(|r| real.starts_with(r)) {
            return Err(format!(
                "$INCLUDE {target}: {} lies outside the zone source folders",
                crate::base::name::printable_path(&real)
            ));
        }
        if !real.is_file() {
            return Err(format!("$INCLUDE {target}: not a regular file"));
        }
        Ok(real)
    }
}

/// One entry's raw text and where it starts.
struct RawEntry<'a> {
    line: usize,
    text: &'a str,
    blank_owner: bool,
}

/// Splits master-file text into entries: newlines inside parentheses or
/// quotes do not end an entry; `;` comments run to the end of the line.
struct Splitter<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

impl<'a> Splitter<'a> {
    fn new(text: &'a str) -> Self {
        Splitter {
            text,
            pos: 0,
            line: 1,
        }
    }
}

impl<'a> Iterator for Splitter<'a> {
    type Item = Result<RawEntry<'a>, (usize, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.text.as_bytes();
        if self.pos >= bytes.len() {
            return None;
        }
        let start = self.pos;
        let start_line = self.line;
        let mut depth = 0usize;
        let mut quoted = false;
        let mut i = start;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => {
                    if bytes.get(i + 1) == Some(&b'\n') {
                        self.line += 1;
                    }
                    i += 2;
                    continue;
                }
                b'"' => quoted = !quoted,
                b';' if !quoted => {
                    while i < bytes.len() && bytes[i] != b'\n' {
                        i += 1;
                    }
                    continue;
                }
                b'(' if !quoted => depth += 1,
                b')' if !quoted => {
                    if depth == 0 {
                        return Some(Err((self.line, "`)` without `(`".into())));
                    }
                    depth -= 1;
                }
                b'\n' => {
                    self.line += 1;
                    if depth == 0 && !quoted {
                        self.pos = i + 1;
                        return Some(Ok(RawEntry {
                            line: start_line,
                            text: &self.text[start..i],
                            blank_owner: matches!(bytes[start], b' ' | b'\t'),
                        }));
                    }
                }
                _ => {}
            }
            i += 1;
        }
        self.pos = bytes.len();
        if quoted {
            return Some(Err((start_line, "a quoted string is not closed".into())));
        }
        if depth > 0 {
            return Some(Err((start_line, "`(` is not closed".into())));
        }
        Some(Ok(RawEntry {
            line: start_line,
            text: &self.text[start..],
            blank_owner: matches!(bytes[start], b' ' | b'\t'),
        }))
    }
}

/// Split an entry into tokens: blank-separated, quoted strings kept whole
/// (with their quotes), parentheses and comments dropped.
fn tokenize<'a>(text: &'a str, out: &mut Vec<&'a str>) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\r' | b'\n' | b'(' | b')' => i += 1,
            b';' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(b.len());
                out.push(&text[start..i]);
            }
            _ => {
                let start = i;
                while i < b.len()
                    && !matches!(
                        b[i],
                        b' ' | b'\t' | b'\r' | b'\n' | b'(' | b')' | b';' | b'"'
                    )
                {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                let end = i.min(b.len());
                out.push(&text[start..end]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect(Vec<(usize, String, String, String, Vec<String>)>);
    impl Sink for Collect {
        fn entry(&mut self, e: &Entry<'_>) -> Result<(), String> {
            self.0.push((
                e.line,
                e.owner.to_string(),
                e.scope.origin.to_string(),
                e.scope.ttl.as_deref().unwrap_or("-").to_string(),
                e.tokens.iter().map(|t| t.to_string()).collect(),
            ));
            Ok(())
        }
    }

    fn scope(origin: &str) -> Scope {
        Scope {
            origin: origin.into(),
            ttl: None,
        }
    }

    /// Found by the `assemble` fuzz target: `\Ԝ` (a backslash before a
    /// two-byte character) in a file that also holds `@` made the `@`
    /// rewriting slice inside the character and panic the build.
    #[test]
    fn escaped_non_ascii_character_is_kept_whole_when_at_is_rewritten() {
        assert_eq!(
            at_to_origin("_acm\\\u{51c}x IN CNAME @", "a."),
            "_acm\\\u{51c}x IN CNAME a."
        );
        assert_eq!(at_to_origin("@ x \\", "a."), "a. x \\");
    }

    /// Found by the `assemble` fuzz target: a type token such as `TXT೯`
    /// (non-ASCII across byte 5) panicked the class check with a slice
    /// inside a character, taking the whole build down.
    #[test]
    fn non_ascii_token_is_not_sliced_inside_a_character() {
        assert!(!is_class("TXT\u{cef}"));
        assert!(is_class("CLASS1") && !is_class("CLASS\u{e9}"));
        let mut sink = Collect::default();
        Expander::new(&[])
            .expand_text(
                "www TXT\u{cef} x\n",
                Arc::new("p".into()),
                scope("a."),
                &mut sink,
                0,
            )
            .unwrap();
        assert_eq!(sink.0.len(), 1);
    }

    #[test]
    fn splits_entries_with_lines_and_owners() {
        let text = "$TTL 300\n@ IN SOA ns1 host ( 1 2\n  3 4 5 ) ; comment\n\n  IN NS ns1\nwww 60 IN TXT \"a;b\" \"c\\\"d\"\n$ORIGIN sub\nx A 192.0.2.1\n";
        let mut c = Collect::default();
        Expander::new(&[])
            .expand_text(
                text,
                Arc::new("f".into()),
                scope("example.test."),
                &mut c,
                0,
            )
            .unwrap();
        let v = c.0;
        assert_eq!(v.len(), 4);
        assert_eq!(
            (v[0].0, v[0].1.as_str(), v[0].3.as_str()),
            (2, "example.test.", "300")
        );
        assert_eq!(
            v[0].4,
            ["IN", "SOA", "ns1", "host", "1", "2", "3", "4", "5"]
        );
        assert_eq!((v[1].0, v[1].1.as_str()), (5, "example.test."));
        assert_eq!(v[2].4, ["60", "IN", "TXT", "\"a;b\"", "\"c\\\"d\""]);
        assert_eq!(
            (v[3].0, v[3].1.as_str(), v[3].2.as_str()),
            (8, "x.sub.example.test.", "sub.example.test.")
        );
    }

    #[test]
    fn errors_name_the_line() {
        let mut c = Collect::default();
        let e = Expander::new(&[])
            .expand_text(
                "a A 1\n$GENERATE 1-2 x A 1\n",
                Arc::new("f".into()),
                scope("t."),
                &mut c,
                0,
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "f:2: the directive $GENERATE is not supported (only $ORIGIN, $TTL and $INCLUDE)"
        );
        let e = Expander::new(&[])
            .expand_text("  A 1\n", Arc::new("f".into()), scope("t."), &mut c, 0)
            .unwrap_err();
        assert_eq!(e.line, 1);
        let e = Expander::new(&[])
            .expand_text(
                "a TXT (\"x\"\n",
                Arc::new("f".into()),
                scope("t."),
                &mut c,
                0,
            )
            .unwrap_err();
        assert_eq!(e.to_string(), "f:1: `(` is not closed");
    }

    #[test]
    fn include_is_confined_and_scoped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(
            root.join("inc"),
            "$ORIGIN elsewhere.\n$TTL 5\nb A 192.0.2.2\n",
        )
        .unwrap();
        std::fs::write(
            root.join("main"),
            "$INCLUDE inc\nc A 192.0.2.3\n$INCLUDE /etc/passwd\n",
        )
        .unwrap();
        let roots = vec![root.clone()];
        let mut c = Collect::default();
        let e = Expander::new(&roots)
            .expand(&root.join("main"), scope("example.test."), &mut c)
            .unwrap_err();
        assert!(
            e.message.contains("lies outside the zone source folders"),
            "{e}"
        );
        assert_eq!(e.line, 3);
        // The include's $ORIGIN and $TTL did not leak into `c`.
        assert_eq!(c.0[0].1, "b.elsewhere.");
        assert_eq!(
            (c.0[1].1.as_str(), c.0[1].3.as_str()),
            ("c.example.test.", "-")
        );
    }

    #[test]
    fn at_in_record_data() {
        assert_eq!(
            at_to_origin(" IN CNAME @ ; @ here", "a.b."),
            " IN CNAME a.b. ; @ here"
        );
        assert_eq!(at_to_origin(" MX 10 @", "a.b."), " MX 10 a.b.");
        assert_eq!(
            at_to_origin(" TXT \"x @ y\" a@b", "a.b."),
            " TXT \"x @ y\" a@b"
        );
    }

    #[test]
    fn absolute_names() {
        assert_eq!(absolute("@", "a.b."), "a.b.");
        assert_eq!(absolute("x", "a.b."), "x.a.b.");
        assert_eq!(absolute("x.", "a.b."), "x.");
        assert_eq!(absolute("x\\.", "a.b."), "x\\..a.b.");
        assert_eq!(absolute("x", "."), "x.");
    }
}
