//! The rules every side applies to a challenge: which owners may carry one
//! (`policy.labels`), which characters a value may hold at all and which
//! shape the policy asks for, and which names a drop directory may carry
//! (`[[drop]] names`). The hook checks them before it writes, the builder
//! again when it reads a drop directory, `list` when it judges one.

// Input here comes from drop directories, hooks or zone files: never panic on it.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use crate::base::config::{Policy, ValueShape};
use crate::base::name;
use thiserror::Error;

/// Whether `owner`'s first label is one of the challenge labels
/// (`policy.labels`, any case): the owners a challenge, or a challenge
/// alias, may stand at.
pub fn is_challenge_owner(owner: &str, policy: &Policy) -> bool {
    let label = name::first_label(owner);
    policy.labels.iter().any(|l| l.eq_ignore_ascii_case(label))
}

/// Why a TXT value is not a plausible challenge token, whatever the policy.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ValueError {
    #[error("is empty")]
    Empty,
    #[error("is longer than 255 bytes")]
    TooLong,
    #[error("holds `{}` (quotes, spaces, backslashes, semicolons and control characters are not allowed)", name::printable_char(*.0))]
    BadChar(char),
}

impl ValueError {
    /// The rule broken, without the character (for text that may be anything).
    pub fn rule(&self) -> &'static str {
        match self {
            ValueError::Empty => "is empty",
            ValueError::TooLong => "is longer than 255 bytes",
            ValueError::BadChar(_) => "holds a character a value may not hold (quotes, spaces, backslashes, semicolons, control characters, non-ASCII)",
        }
    }
}

/// The characters a value may hold at all: printable ASCII except space,
/// quote, backslash and semicolon — enough for base64, base64url and hex
/// tokens, and nothing that needs escaping in zone-file text.
pub fn check_chars(value: &str) -> Result<(), ValueError> {
    if value.is_empty() {
        return Err(ValueError::Empty);
    }
    if value.len() > 255 {
        // RFC 1035 §3.3: a <character-string> is at most 255 octets.
        return Err(ValueError::TooLong);
    }
    if let Some(c) = value
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '"' | '\\' | ';'))
    {
        return Err(ValueError::BadChar(c));
    }
    Ok(())
}

/// Check an owner's first label against `policy.labels`.
pub fn check_label(owner: &str, policy: &Policy) -> Result<(), String> {
    if is_challenge_owner(owner, policy) {
        Ok(())
    } else {
        Err(format!(
            "the owner `{owner}` does not start with an allowed label ({})",
            policy.labels.join(", ")
        ))
    }
}

/// Check a value against the policy's value shape.
pub fn check_value(value: &str, policy: &Policy) -> Result<(), String> {
    check_chars(value).map_err(|e| format!("the value `{}` {e}", name::printable(value)))?;
    match policy.value {
        // RFC 8555 §8.4: base64url(SHA-256(key authorization)), no padding:
        // 32 bytes are 43 characters.
        ValueShape::Acme
            if value.len() != 43
                || !value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Err(format!(
                "the value `{}` is not an ACME DNS-01 digest (43 characters of base64url)",
                name::printable(value)
            ))
        }
        _ => Ok(()),
    }
}

/// Whether `[[drop]] names` allow a challenge at `owner`: `example.test`
/// allows `<label>.example.test`, `*.example.test` allows `<label>.X` for any
/// X strictly below `example.test`. No names: any managed name.
pub fn drop_allows(names: Option<&[String]>, owner: &str) -> bool {
    let Some(names) = names else { return true };
    let domain = name::parent(owner);
    names
        .iter()
        .any(|pattern| match pattern.strip_prefix("*.") {
            Some(base) => domain != base && name::in_zone(domain, base),
            None => domain == pattern,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_limit_the_drop() {
        let names = vec![
            "example.test.".to_string(),
            "*.sub.example.test.".to_string(),
        ];
        let n = Some(names.as_slice());
        assert!(drop_allows(n, "_acme-challenge.example.test."));
        assert!(!drop_allows(n, "_acme-challenge.www.example.test."));
        assert!(drop_allows(n, "_acme-challenge.a.sub.example.test."));
        assert!(drop_allows(n, "_acme-challenge.b.a.sub.example.test."));
        assert!(!drop_allows(n, "_acme-challenge.sub.example.test."));
        assert!(drop_allows(None, "_acme-challenge.anything.test."));
    }

    #[test]
    fn value_shapes() {
        let mut p = Policy::default();
        assert!(check_value("LPsIwTo7o8BoG0-vjCyGQGBWSVIPxI-i_X336eUOQZo", &p).is_ok());
        assert!(check_value("short", &p).is_err());
        assert!(check_value("LPsIwTo7o8BoG0-vjCyGQGBWSVIPxI-i_X336eUOQZ=", &p).is_err());
        p.value = ValueShape::Token;
        assert!(check_value("short", &p).is_ok());
        assert!(check_value("a\"b", &p).is_err());
    }
}
