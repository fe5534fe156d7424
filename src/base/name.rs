//! Domain names as zonedrop handles them: lowercase, absolute (trailing dot),
//! letters/digits/hyphen/underscore labels only.
//!
//! This is deliberately stricter than RFC 1035 §2.3.1 plus underscores: hook
//! arguments and drop fragments are untrusted, and a name with escapes, spaces
//! or quotes has no business being a challenge owner. Zone data written by the
//! operator is parsed by hickory instead and does not come through here.

// Input here comes from drop directories, hooks or zone files: never panic on it.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use thiserror::Error;

/// Why a string is not a domain name we accept.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NameError {
    #[error("`{0}` is not a domain name: it is empty")]
    Empty(String),
    #[error("`{0}` is not a domain name: it has an empty label")]
    EmptyLabel(String),
    #[error("`{0}` is not a domain name: a label is longer than 63 bytes")]
    LongLabel(String),
    #[error("`{0}` is not a domain name: it is longer than 253 bytes")]
    TooLong(String),
    #[error(
        "`{name}` is not a domain name: `{ch}` is not allowed (letters, digits, `-` and `_` only)"
    )]
    BadChar { name: String, ch: char },
    #[error("`{0}` is not a domain name zone files can hold: a label may not start with `-` or hold `_` after its first character, and an `xn--` label must be valid punycode")]
    NotZoneText(String),
}

impl NameError {
    /// The rule broken, without the name (for text that may be anything).
    pub fn rule(&self) -> &'static str {
        match self {
            NameError::Empty(_) => "it is empty",
            NameError::EmptyLabel(_) => "it has an empty label",
            NameError::LongLabel(_) => "a label is longer than 63 bytes",
            NameError::TooLong(_) => "it is longer than 253 bytes",
            NameError::BadChar { .. } => {
                "it holds a character other than letters, digits, `-` and `_`"
            }
            NameError::NotZoneText(_) => {
                "a label starts with `-`, holds `_` after its first character, or is bad punycode"
            }
        }
    }
}

/// Parse `s` (with or without the trailing dot, any case) into a lowercase
/// absolute name such as `_acme-challenge.example.test.`.
///
/// RFC 1035 §2.3.4: labels of at most 63 octets, names of at most 255 octets
/// on the wire, which is 253 characters in presentation form without the root.
pub fn parse_fqdn(s: &str) -> Result<String, NameError> {
    let shown = || printable(s);
    let body = s.strip_suffix('.').unwrap_or(s);
    if body.is_empty() {
        return Err(NameError::Empty(shown()));
    }
    if body.len() > 253 {
        return Err(NameError::TooLong(shown()));
    }
    for label in body.split('.') {
        if label.is_empty() {
            return Err(NameError::EmptyLabel(shown()));
        }
        if label.len() > 63 {
            return Err(NameError::LongLabel(shown()));
        }
        if let Some(ch) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(NameError::BadChar { name: shown(), ch });
        }
    }
    let mut out = body.to_ascii_lowercase();
    out.push('.');
    // The published zone is read back by hickory's zone-file parser (and by
    // name servers), which applies UTS 46 with STD3 rules to every label not
    // starting with `_`: `a_b` or a bad `xn--` label fails there. A name that
    // would not read back must be refused here, or one drop fragment stops
    // its whole zone from publishing.
    match hickory_proto::rr::Name::from_utf8(&out) {
        Ok(n) if n.to_ascii().eq_ignore_ascii_case(&out) => Ok(out),
        _ => Err(NameError::NotZoneText(shown())),
    }
}

/// Like [`parse_fqdn`], but also accepts a leading `*.` wildcard label
/// (RFC 4592), as used in `[[drop]] names`.
pub fn parse_pattern(s: &str) -> Result<String, NameError> {
    match s.strip_prefix("*.") {
        Some(rest) => Ok(format!("*.{}", parse_fqdn(rest)?)),
        None => parse_fqdn(s),
    }
}

/// True when absolute lowercase `name` equals `zone` or lies below it.
pub fn in_zone(name: &str, zone: &str) -> bool {
    if zone == "." {
        return true;
    }
    name == zone
        || (name.len() > zone.len()
            && name.ends_with(zone)
            && name.as_bytes()[name.len() - zone.len() - 1] == b'.')
}

/// The first label of an absolute name (`_acme-challenge` for
/// `_acme-challenge.example.test.`).
pub fn first_label(name: &str) -> &str {
    name.split('.').next().unwrap_or("")
}

/// The name with its first label removed (`example.test.` for
/// `_acme-challenge.example.test.`); the root stays the root.
pub fn parent(name: &str) -> &str {
    match name.find('.') {
        Some(i) if i + 1 < name.len() => &name[i + 1..],
        _ => ".",
    }
}

/// A name for messages: control characters, and the invisible ones that
/// reorder or hide text (U+202E and the like), escaped (`\n`, `\u{202e}`) so
/// one hostile argument or file name cannot break a log line in two or
/// forge one.
pub fn printable(s: &str) -> String {
    s.chars().map(printable_char).collect()
}

/// One character for a message: control and other unprintable characters
/// escaped (`\n`, `\u{1b}`), others as they are.
pub fn printable_char(c: char) -> String {
    match c {
        // escape_debug would add a backslash to these; they are printable.
        '\\' | '"' | '\'' => c.to_string(),
        _ => c.escape_debug().to_string(),
    }
}

/// A path or file name for messages and `list` output: [`printable`], with
/// each byte that is not UTF-8 written `\xNN`. Every path zonedrop prints
/// goes through here (a drop file's name is chosen by whoever wrote it).
pub fn printable_path(p: impl AsRef<std::ffi::OsStr>) -> String {
    let mut out = String::new();
    for chunk in p.as_ref().as_encoded_bytes().utf8_chunks() {
        out.push_str(&printable(chunk.valid()));
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_what_could_forge_a_line() {
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(
            printable("a\nb\u{1b}[31m\u{202e}é\\\""),
            "a\\nb\\u{1b}[31m\\u{202e}é\\\""
        );
        let name = std::ffi::OsStr::from_bytes(b"x\xff\n");
        assert_eq!(printable_path(name), "x\\xff\\n");
    }

    #[test]
    fn normalises_case_and_dot() {
        assert_eq!(
            parse_fqdn("_ACME-Challenge.Example.TEST").unwrap(),
            "_acme-challenge.example.test."
        );
        assert_eq!(parse_fqdn("a.b.").unwrap(), "a.b.");
    }

    #[test]
    fn refuses_bad_names() {
        assert!(matches!(parse_fqdn(""), Err(NameError::Empty(_))));
        assert!(matches!(parse_fqdn("."), Err(NameError::Empty(_))));
        assert!(matches!(parse_fqdn("a..b"), Err(NameError::EmptyLabel(_))));
        assert!(matches!(
            parse_fqdn("a b.c"),
            Err(NameError::BadChar { ch: ' ', .. })
        ));
        assert!(matches!(
            parse_fqdn("a\\.b"),
            Err(NameError::BadChar { .. })
        ));
        assert!(matches!(
            parse_fqdn("*.a.b"),
            Err(NameError::BadChar { ch: '*', .. })
        ));
        assert!(matches!(
            parse_fqdn(&"a".repeat(64)),
            Err(NameError::LongLabel(_))
        ));
        let long = vec!["abcdefghi"; 26].join(".");
        assert!(matches!(parse_fqdn(&long), Err(NameError::TooLong(_))));
    }

    /// Found by the `fragment` fuzz target: `_acme-challenge.x_y.example.test.`
    /// passed here, was accepted from a drop file, and then the assembled zone
    /// failed hickory's parser (STD3 forbids `_` inside a label), so one hostile
    /// fragment kept the whole zone from publishing.
    #[test]
    fn underscore_inside_a_label_is_refused_before_it_reaches_a_zone() {
        assert!(matches!(
            parse_fqdn("_acme-challenge.wtbo-i_xsub.example.test."),
            Err(NameError::NotZoneText(_))
        ));
        assert!(matches!(
            parse_fqdn("_acme-challenge.xn--zz.example.test."),
            Err(NameError::NotZoneText(_))
        ));
        assert!(parse_fqdn("_acme-challenge._x.example.test.").is_ok());
        assert!(matches!(
            parse_fqdn("_acme-challenge.-a.example.test."),
            Err(NameError::NotZoneText(_))
        ));
        assert!(parse_fqdn("_acme-challenge.xn--bcher-kva.example.test.").is_ok());
    }

    #[test]
    fn zone_membership_is_label_aligned() {
        assert!(in_zone("a.example.test.", "example.test."));
        assert!(in_zone("example.test.", "example.test."));
        assert!(!in_zone("badexample.test.", "example.test."));
        assert!(!in_zone("test.", "example.test."));
        assert_eq!(parent("_acme-challenge.example.test."), "example.test.");
        assert_eq!(
            first_label("_acme-challenge.example.test."),
            "_acme-challenge"
        );
    }
}
