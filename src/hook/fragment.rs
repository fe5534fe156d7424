//! The drop fragment: one `_acme-challenge` TXT record as one line of
//! zone-file text, its renderer and its strict parser.
//!
//! A fragment is what a one-line shell hook would write:
//! `_acme-challenge.example.test. 60 IN TXT "VALUE"`. The parser here accepts
//! exactly that shape and nothing else: no directives (`$INCLUDE`, `$ORIGIN`,
//! `$TTL`), no relative owners, no parentheses, no comments, no escapes, no
//! second record. hickory's zone parser is never used on drop text (it follows
//! `$INCLUDE` of absolute paths). Policy (which labels, zones, value shapes)
//! is the whitelist's business, not this module's.

// Input here comes from drop directories, hooks or zone files: never panic on it.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use crate::base::config::PERSIST_LABEL;
use crate::base::name::{self, NameError};
use crate::base::rules::{check_chars, check_persist_chars, ValueError};
use thiserror::Error;

/// A TXT challenge record as read from, or written to, a drop directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fragment {
    /// Absolute lowercase owner, e.g. `_acme-challenge.example.test.`.
    pub owner: String,
    /// TTL as written; `None` when the line had none (the policy default applies).
    pub ttl: Option<u32>,
    /// The TXT value, one character-string without quotes.
    pub value: String,
}

/// Why a fragment's text is refused. The messages name the rule broken,
/// never the text: a drop file that fails here may be anything (a hard link
/// to a secret, a file meant to be mailed out by cron), so none of its
/// bytes may reach a log line. Only a token from a fixed list (a record
/// type zonedrop knows, a character the grammar forbids) is named.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FragmentError {
    #[error("it is empty")]
    Empty,
    #[error("it is not ASCII text")]
    NotText,
    #[error("it holds more than one line")]
    MultiLine,
    #[error("it holds a control character")]
    Control,
    #[error("it holds a zone-file directive (`$...`)")]
    Directive,
    #[error("it holds `{}`, which a challenge record never needs", name::printable_char(*.0))]
    Forbidden(char),
    #[error("the owner is relative: it must end with a dot")]
    RelativeOwner,
    #[error("the owner is not a plain domain name: {}", .0.rule())]
    Owner(NameError),
    #[error("the record type is {}, only TXT is accepted", .0.map_or("not TXT".to_string(), |t| format!("`{t}`")))]
    NotTxt(Option<&'static str>),
    #[error("the class is not IN, only IN is accepted")]
    NotIn,
    #[error("the TTL is not a number from 0 to 2147483647")]
    BadTtl,
    #[error("the record has no type")]
    NoType,
    #[error("the record has no value")]
    NoValue,
    #[error("the record has more than one string")]
    ManyStrings,
    #[error("the value has an unbalanced quote")]
    Quote,
    #[error("the value {}", .0.rule())]
    Value(ValueError),
}

impl Fragment {
    /// The one line written to a drop file (with its newline).
    pub fn render(&self, default_ttl: u32) -> String {
        format!(
            "{} {} IN TXT \"{}\"\n",
            self.owner,
            self.ttl.unwrap_or(default_ttl),
            self.value
        )
    }

    /// Parse fragment text strictly. Surrounding blank space and one final
    /// newline (LF or CRLF) are allowed; anything else out of shape is refused.
    pub fn parse(bytes: &[u8]) -> Result<Fragment, FragmentError> {
        let text = std::str::from_utf8(bytes).map_err(|_| FragmentError::NotText)?;
        if !text.is_ascii() {
            return Err(FragmentError::NotText);
        }
        let line = text.trim_matches(|c| c == ' ' || c == '\t');
        let line = line
            .strip_suffix("\r\n")
            .or_else(|| line.strip_suffix('\n'))
            .unwrap_or(line);
        if line.contains('\n') || line.contains('\r') {
            return Err(FragmentError::MultiLine);
        }
        if line.chars().any(|c| c.is_ascii_control() && c != '\t') {
            return Err(FragmentError::Control);
        }
        let line = line.trim_matches(|c| c == ' ' || c == '\t');
        if line.is_empty() {
            return Err(FragmentError::Empty);
        }
        if line.starts_with('$') {
            return Err(FragmentError::Directive);
        }
        // A dns-persist-01 record's value holds `; ` (its parameters): at
        // `_validation-persist` owners, within the quotes only. Whether such
        // a record is taken at all is the whitelist's business.
        let persist = line
            .get(..PERSIST_LABEL.len() + 1)
            .is_some_and(|l| l.eq_ignore_ascii_case(&format!("{PERSIST_LABEL}.")));
        let quoted = match (line.find('"'), line.rfind('"')) {
            (Some(a), Some(b)) if persist && a < b => a..b,
            _ => 0..0,
        };
        if let Some((_, c)) = line.char_indices().find(|(i, c)| {
            matches!(c, '(' | ')' | ';' | '\\' | '@') && !(*c == ';' && quoted.contains(i))
        }) {
            return Err(FragmentError::Forbidden(c));
        }

        // Split off the value first: it may be quoted, everything before it
        // is plain tokens.
        let (head, value) = split_value(line)?;
        let mut tokens = head.split([' ', '\t']).filter(|t| !t.is_empty());
        let owner = tokens.next().ok_or(FragmentError::NoType)?;
        if !owner.ends_with('.') {
            return Err(FragmentError::RelativeOwner);
        }
        let owner = name::parse_fqdn(owner).map_err(FragmentError::Owner)?;
        let mut ttl = None;
        let mut class = None;
        let mut rtype = None;
        for token in tokens {
            if rtype.is_some() {
                // A second token after the type means two strings or junk.
                return Err(FragmentError::ManyStrings);
            }
            if token.bytes().all(|b| b.is_ascii_digit()) && ttl.is_none() {
                ttl = Some(parse_ttl(token)?);
            } else if token.eq_ignore_ascii_case("IN") && class.is_none() {
                class = Some(());
            } else if token.eq_ignore_ascii_case("TXT") {
                rtype = Some(());
            } else if is_class(token) && class.is_none() {
                return Err(FragmentError::NotIn);
            } else if token.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
                return Err(FragmentError::BadTtl);
            } else {
                return Err(FragmentError::NotTxt(known_type(token)));
            }
        }
        if rtype.is_none() {
            // `owner TXT` with no value ends up with the type as the "value".
            return match value {
                Some(v) if v.eq_ignore_ascii_case("TXT") => Err(FragmentError::NoValue),
                Some(v) if !v.starts_with('"') => Err(FragmentError::NotTxt(known_type(v))),
                _ => Err(FragmentError::NoType),
            };
        }
        let value = value.ok_or(FragmentError::NoValue)?;
        let value = match value.strip_prefix('"') {
            Some(inner) => inner.strip_suffix('"').ok_or(FragmentError::Quote)?,
            None => value,
        };
        if persist {
            check_persist_chars(value).map_err(FragmentError::Value)?;
        } else {
            check_chars(value).map_err(FragmentError::Value)?;
        }
        Ok(Fragment {
            owner,
            ttl,
            value: value.to_string(),
        })
    }
}

/// Split `line` into everything before the value and the value token itself.
/// A quoted value must be the last thing on the line and hold no other quote.
fn split_value(line: &str) -> Result<(&str, Option<&str>), FragmentError> {
    if let Some(open) = line.find('"') {
        let rest = &line[open + 1..];
        let close = rest.find('"').ok_or(FragmentError::Quote)?;
        if !rest[close + 1..].trim().is_empty() {
            return Err(FragmentError::ManyStrings);
        }
        let head = &line[..open];
        if !head.ends_with([' ', '\t']) {
            return Err(FragmentError::Quote);
        }
        return Ok((head, Some(&line[open..open + close + 2])));
    }
    match line.rfind([' ', '\t']) {
        Some(i) => Ok((&line[..i], Some(&line[i + 1..]))),
        None => Ok((line, None)),
    }
}

fn parse_ttl(token: &str) -> Result<u32, FragmentError> {
    // RFC 2181 §8: a TTL is an unsigned 31-bit number.
    match token.parse::<u32>() {
        Ok(t) if t <= i32::MAX as u32 => Ok(t),
        _ => Err(FragmentError::BadTtl),
    }
}

/// `token` as one of the record types a refusal may name (it comes from a
/// fixed list, not from the file); `None` for anything else.
fn known_type(token: &str) -> Option<&'static str> {
    const TYPES: &[&str] = &[
        "A", "AAAA", "CAA", "CNAME", "DNAME", "DNSKEY", "DS", "HTTPS", "MX", "NS", "PTR", "SOA",
        "SPF", "SRV", "SSHFP", "SVCB", "TLSA",
    ];
    TYPES
        .iter()
        .copied()
        .find(|t| t.eq_ignore_ascii_case(token))
}

fn is_class(token: &str) -> bool {
    ["CH", "CS", "HS", "NONE", "ANY"]
        .iter()
        .any(|c| token.eq_ignore_ascii_case(c))
        || token.to_ascii_uppercase().starts_with("CLASS")
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: &str = "LPsIwTo7o8BoG0-vjCyGQGBWSVIPxI-i_X336eUOQZo";

    fn ok(s: &str) -> Fragment {
        Fragment::parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn err(s: &str) -> FragmentError {
        Fragment::parse(s.as_bytes()).expect_err(s)
    }

    #[test]
    fn round_trip() {
        let f = Fragment {
            owner: "_acme-challenge.example.test.".into(),
            ttl: Some(60),
            value: V.into(),
        };
        assert_eq!(
            f.render(300),
            format!("_acme-challenge.example.test. 60 IN TXT \"{V}\"\n")
        );
        assert_eq!(ok(&f.render(300)), f);
    }

    #[test]
    fn accepts_the_usual_shapes() {
        let f = ok(&format!("_acme-challenge.Example.test. IN 120 txt {V}\r\n"));
        assert_eq!(f.owner, "_acme-challenge.example.test.");
        assert_eq!(f.ttl, Some(120));
        assert_eq!(f.value, V);
        assert_eq!(ok(&format!("_acme-challenge.a.b.\tTXT\t\"{V}\"")).ttl, None);
    }

    #[test]
    fn refuses_everything_else() {
        assert_eq!(err(""), FragmentError::Empty);
        assert_eq!(err("$INCLUDE /etc/passwd"), FragmentError::Directive);
        assert_eq!(err("$ORIGIN example.test."), FragmentError::Directive);
        assert!(matches!(
            err("_a.b. 60 IN A 192.0.2.1"),
            FragmentError::NotTxt(Some("A"))
        ));
        assert_eq!(
            err("_a.b. 60 IN root:SECRET \"x\""),
            FragmentError::NotTxt(None)
        );
        assert!(matches!(err("_a.b. 60 CH TXT \"x\""), FragmentError::NotIn));
        assert!(matches!(
            err("_a.b 60 IN TXT \"x\""),
            FragmentError::RelativeOwner
        ));
        assert_eq!(
            err("_a.b. 60 IN TXT ( \"x\" )"),
            FragmentError::Forbidden('(')
        );
        assert_eq!(
            err("_a.b. 60 IN TXT \"x\" ; c"),
            FragmentError::Forbidden(';')
        );
        assert_eq!(
            err("_a.b. 60 IN TXT \"a\\\"b\""),
            FragmentError::Forbidden('\\')
        );
        assert_eq!(
            err("_a.b. 60 IN TXT \"x\" \"y\""),
            FragmentError::ManyStrings
        );
        assert_eq!(
            err("_a.b. 60 IN TXT \"x y\""),
            FragmentError::Value(ValueError::BadChar(' '))
        );
        assert_eq!(err("_a.b. 60 IN TXT \"x"), FragmentError::Quote);
        assert_eq!(err("_a.b. 60 IN TXT"), FragmentError::NoValue);
        assert_eq!(
            err("_a.b. 60 IN TXT \"x\"\n_c.d. 60 IN TXT \"y\""),
            FragmentError::MultiLine
        );
        assert_eq!(err("_a.b. 60 IN TXT \"x\u{7}\""), FragmentError::Control);
        assert!(matches!(
            err("_a.b. 99999999999 IN TXT x"),
            FragmentError::BadTtl
        ));
        assert_eq!(
            err("_a.b. 60 IN TXT \"\""),
            FragmentError::Value(ValueError::Empty)
        );
        assert_eq!(
            err(&format!("_a.b. 60 IN TXT {}", "a".repeat(256))),
            FragmentError::Value(ValueError::TooLong)
        );
        assert_eq!(err("_a.b. 60 IN TXT \"x\"\u{e9}"), FragmentError::NotText);
        assert_eq!(err("@ 60 IN TXT x"), FragmentError::Forbidden('@'));
    }
}
