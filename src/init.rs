//! `zonedrop init`: a working tree in one command (a commented config, the
//! soa/ and primary/ skeletons of each zone, an empty drop directory), or
//! one more zone in an existing tree. The config is edited with toml_edit,
//! which keeps the operator's comments and layout: a new `[[zone]]` after
//! the last one, and the zone's names in every `[[drop]] names` list (a
//! directory without that list already takes every managed name).
//!
//! Nothing is overwritten, and nothing is half-written: every file is
//! checked first, and the edited config must load before anything goes
//! to disk.

use crate::base::config::Config;
use crate::base::fs::write_atomic;
use crate::base::name;
use std::path::{Path, PathBuf};
use thiserror::Error;
use toml_edit::{value, Array, ArrayOfTables, DocumentMut, Item, Table};

#[derive(Debug, Error)]
pub enum InitError {
    #[error("--zone: {0}")]
    Name(#[from] name::NameError),
    #[error("{}: already exists; init writes only into a fresh tree (to add a zone: zonedrop init {} --add-zone NAME)", crate::base::name::printable_path(path), crate::base::name::printable_path(dir))]
    Exists { path: PathBuf, dir: PathBuf },
    #[error(
        "{}: no config to add a zone to: make the tree with zonedrop init {} --zone NAME",
        crate::base::name::printable_path(path),
        crate::base::name::printable_path(dir)
    )]
    NoConfig { path: PathBuf, dir: PathBuf },
    #[error(
        "{}: zone {zone} is configured already",
        crate::base::name::printable_path(path)
    )]
    Configured { path: PathBuf, zone: String },
    #[error("{}: {message}", crate::base::name::printable_path(path))]
    Edit { path: PathBuf, message: String },
    #[error(transparent)]
    Config(#[from] crate::base::config::ConfigError),
    #[error("{}: cannot write: {source}", crate::base::name::printable_path(path))]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

const CONFIG: &str = include_str!("../templates/zonedrop.toml");
const SOA: &str = include_str!("../templates/soa.zone");
const PRIMARY: &str = include_str!("../templates/primary.zone");

/// `zonedrop init DIR --zone A [--zone B]...`: a fresh tree for `zones`.
/// Returns the config's path.
pub fn init(dir: &Path, zones: &[String]) -> Result<PathBuf, InitError> {
    let zones = bare_names(zones)?;
    let config = dir.join("zonedrop.toml");
    let mut text = fill(CONFIG, &zones[0]);
    for zone in &zones[1..] {
        text = add_to_config(&text, zone).map_err(|message| InitError::Edit {
            path: config.clone(),
            message,
        })?;
    }
    let mut files = vec![(config.clone(), text)];
    for zone in &zones {
        files.push((dir.join("zones/soa").join(zone), fill(SOA, zone)));
        files.push((dir.join("zones/primary").join(zone), fill(PRIMARY, zone)));
    }
    for (path, _) in &files {
        if path.exists() {
            return Err(InitError::Exists {
                path: path.clone(),
                dir: dir.to_path_buf(),
            });
        }
    }
    for d in ["zones/extra", "drop"] {
        let d = dir.join(d);
        std::fs::create_dir_all(&d).map_err(|source| InitError::Write { path: d, source })?;
    }
    write_all(&files)?;
    Ok(config)
}

/// `zonedrop init DIR --add-zone NAME`: the zone's skeletons in the tree's
/// soa/ and primary/, a `[[zone]]` for it in DIR/zonedrop.toml, and its
/// names in every `[[drop]] names` list.
pub fn add_zone(dir: &Path, zone: &str) -> Result<PathBuf, InitError> {
    let zone = bare_names(&[zone.to_string()])?.remove(0);
    let path = dir.join("zonedrop.toml");
    if !path.is_file() {
        return Err(InitError::NoConfig {
            path,
            dir: dir.to_path_buf(),
        });
    }
    let config = Config::load(&path)?;
    let fqdn = format!("{zone}.");
    if config.zones.iter().any(|z| z.name == fqdn) {
        return Err(InitError::Configured { path, zone });
    }
    let text = std::fs::read_to_string(&path).map_err(|source| InitError::Write {
        path: path.clone(),
        source,
    })?;
    let edited = add_to_config(&text, &zone).map_err(|message| InitError::Edit {
        path: path.clone(),
        message,
    })?;
    // The edited config must load as it is before anything is written.
    Config::parse(&edited, &path)?;
    let files = vec![
        (config.paths.soa.join(&zone), fill(SOA, &zone)),
        (config.paths.primary.join(&zone), fill(PRIMARY, &zone)),
        (path.clone(), edited),
    ];
    for (p, _) in &files[..2] {
        if p.exists() {
            return Err(InitError::Exists {
                path: p.clone(),
                dir: dir.to_path_buf(),
            });
        }
    }
    write_all(&files)?;
    Ok(path)
}

/// `text` (a zonedrop.toml) with a `[[zone]]` for `zone` (bare, no final
/// dot) after the last one, and `zone` and `*.zone` in every `[[drop]]
/// names` list; comments and layout kept.
pub fn add_to_config(text: &str, zone: &str) -> Result<String, String> {
    let mut doc: DocumentMut = text.parse().map_err(|e| format!("{e}"))?;
    // The serial policy of the zones before it, else the init default.
    let serial = doc
        .get("zone")
        .and_then(Item::as_array_of_tables)
        .and_then(|zones| zones.iter().last())
        .and_then(|z| z.get("serial"))
        .and_then(Item::as_str)
        .unwrap_or("date")
        .to_string();
    let zones = doc
        .entry("zone")
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or("`zone` is not a list of [[zone]] tables")?;
    let mut table = Table::new();
    table["name"] = value(zone);
    table["serial"] = value(serial);
    zones.push(table);
    if let Some(drops) = doc.get_mut("drop").and_then(Item::as_array_of_tables_mut) {
        for drop in drops.iter_mut() {
            if let Some(names) = drop.get_mut("names").and_then(Item::as_array_mut) {
                add_names(names, zone);
            }
        }
    }
    Ok(doc.to_string())
}

fn add_names(names: &mut Array, zone: &str) {
    for pattern in [zone.to_string(), format!("*.{zone}")] {
        if !names.iter().any(|v| v.as_str() == Some(pattern.as_str())) {
            names.push(pattern);
        }
    }
}

/// The zones as the files and the config name them: lowercase, no final dot.
fn bare_names(zones: &[String]) -> Result<Vec<String>, InitError> {
    zones
        .iter()
        .map(|z| Ok(name::parse_fqdn(z)?.trim_end_matches('.').to_string()))
        .collect()
}

fn fill(template: &str, zone: &str) -> String {
    template.replace("{zone}", zone)
}

/// Write `files` atomically, in order; on a failure, remove the ones this
/// call wrote (a tree is made whole or not at all).
fn write_all(files: &[(PathBuf, String)]) -> Result<(), InitError> {
    for (i, (path, text)) in files.iter().enumerate() {
        let dir = path.parent().unwrap_or(Path::new("."));
        let written =
            std::fs::create_dir_all(dir).and_then(|()| write_atomic(path, &[text.as_bytes()]));
        if let Err(e) = written {
            for (done, _) in &files[..i] {
                let _ = std::fs::remove_file(done);
            }
            return Err(InitError::Write {
                path: path.clone(),
                source: e,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_is_added_after_the_last_with_the_comments_kept() {
        let text =
            "# top\n[[drop]]\npath = \"d\"\nnames = [\"a.test\", \"*.a.test\"] # who may write\n\
                    [[drop]]\npath = \"open\"\n\
                    [[zone]]\nname = \"a.test\"\nserial = \"increment\" # policy\n\
                    [build]\nnotify = []\n";
        let out = add_to_config(text, "b.test").unwrap();
        assert_eq!(
            out,
            "# top\n[[drop]]\npath = \"d\"\nnames = [\"a.test\", \"*.a.test\", \"b.test\", \"*.b.test\"] # who may write\n\
             [[drop]]\npath = \"open\"\n\
             [[zone]]\nname = \"a.test\"\nserial = \"increment\" # policy\n\n\
             [[zone]]\nname = \"b.test\"\nserial = \"increment\"\n\
             [build]\nnotify = []\n"
        );
        let c = Config::parse(&out, Path::new("z.toml")).unwrap();
        assert_eq!(c.zones.len(), 2);
    }
}
