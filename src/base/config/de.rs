//! The deserialisers that check a value's own syntax while the config is
//! read, so a mistake is reported with the file, the line and the key.

use crate::base::name;
use serde::{Deserialize, Deserializer};
use std::time::Duration;

pub(crate) fn fqdn<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    name::parse_fqdn(&s).map_err(serde::de::Error::custom)
}

pub(crate) fn fqdns<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| name::parse_fqdn(s).map_err(serde::de::Error::custom))
        .collect()
}

pub(crate) fn patterns<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| name::parse_pattern(s).map_err(serde::de::Error::custom))
        .collect::<Result<_, _>>()
        .map(Some)
}

/// Parse a duration such as `90s`, `15m`, `24h` or `0s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("`{s}` is not a duration ({e}); write e.g. \"90s\", \"15m\" or \"24h\"")
    })
}

pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

pub(crate) fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

pub(crate) fn from_str<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr<Err = String>,
{
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

/// ACME account URLs (`accounts = [...]`): absolute http(s) URLs, printable.
pub(crate) fn accounts<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let urls = Vec::<String>::deserialize(d)?;
    for u in &urls {
        let ok = (u.starts_with("https://") || u.starts_with("http://"))
            && u.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(serde::de::Error::custom(format!(
                "`{}` is not an ACME account URL (https://...)",
                name::printable(u)
            )));
        }
    }
    Ok(Some(urls))
}
