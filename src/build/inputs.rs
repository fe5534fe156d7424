//! Every place a build reads, listed once ([`inputs`]): the manifest
//! stamps them so an idle build can skip, the watcher watches them so a
//! change starts a build, and per zone they are what that zone's build
//! depends on. The files that `$INCLUDE` reaches and the files in extra/
//! are only known once read ([`crate::build::zone::Assembled::inputs`],
//! [`crate::build::zone::Sources::extra_files`]).

use crate::base::config::Config;
use crate::dane::entries::key_inputs;
use std::path::PathBuf;

/// One place a build reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub path: PathBuf,
    pub kind: Kind,
}

/// What a place is to a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The config file (read at the start of a process; `watch` and `run`
    /// read it again at SIGHUP).
    Config,
    /// soa/ or primary/: the folder of the zone files, and of the files
    /// they `$INCLUDE` (in folders below it).
    SourceFolder,
    /// extra/: every file in it, at any depth, is read.
    Extra,
    /// A zone's `soa/<zone>` or `primary/<zone>` file, or the files its
    /// `[[zone]]` names instead (`file`, or `soa` and `primary`), which may
    /// lie outside the source folders.
    ZoneFile,
    /// A drop directory: every entry in it is read.
    Drop,
    /// A certificate, key or key folder of a `[[tlsa]]` or `[[sshfp]]`
    /// entry (a key folder is followed by the files in it that count).
    Key,
}

impl Kind {
    /// Stamped before the build reads: the folders (a file that arrives
    /// during the build makes the next build look again) and the config
    /// (read before the build began). The files are stamped once read.
    pub fn stamped_first(self) -> bool {
        !matches!(self, Kind::ZoneFile | Kind::Key)
    }
}

/// What a build of `zone` (None: of every zone) reads, as far as it is
/// known before reading: the config file, soa/ and primary/ and each
/// zone's files (in them, or where its `[[zone]]` says), extra/ (any entry in it may fall in any zone), every drop
/// directory (a fragment for any zone, or aliased into it, may be in any of
/// them), and the key inputs whose records fall in the zone.
pub fn inputs(config: &Config, zone: Option<&str>) -> Vec<Input> {
    let mut out = Vec::new();
    let mut add = |kind, path: &PathBuf| {
        out.push(Input {
            path: path.clone(),
            kind,
        })
    };
    if let Some(f) = &config.file {
        add(Kind::Config, f);
    }
    let paths = &config.paths;
    for folder in [&paths.soa, &paths.primary] {
        add(Kind::SourceFolder, folder);
    }
    add(Kind::Extra, &paths.extra);
    for d in &config.drops {
        add(Kind::Drop, &d.path);
    }
    for z in &config.zones {
        if zone.is_none_or(|zone| zone == z.name) {
            let (soa, primary) = (config.soa_file(z), config.primary_file(z));
            add(Kind::ZoneFile, &soa);
            if primary != soa {
                add(Kind::ZoneFile, &primary);
            }
        }
    }
    for key in key_inputs(config, zone) {
        add(Kind::Key, &key);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_zone_reads_its_own_files_and_what_every_zone_shares() {
        let mut config = Config::parse(
            "[[drop]]\npath = \"/d\"\n[paths]\nsoa = \"/s\"\nprimary = \"/p\"\nextra = \"/e\"\n\
             [[zone]]\nname = \"a.test\"\n[[zone]]\nname = \"b.test\"\n\
             [[sshfp]]\nname = \"host.b.test\"\nkeys = [\"/k/host.pub\"]\n",
            Path::new("/c/zonedrop.toml"),
        )
        .unwrap();
        config.file = Some("/c/zonedrop.toml".into());
        let of = |zone| -> Vec<(Kind, String)> {
            inputs(&config, zone)
                .into_iter()
                .map(|i| (i.kind, i.path.display().to_string()))
                .collect()
        };
        let shared = |more: &[(Kind, &str)]| -> Vec<(Kind, String)> {
            [
                (Kind::Config, "/c/zonedrop.toml"),
                (Kind::SourceFolder, "/s"),
                (Kind::SourceFolder, "/p"),
                (Kind::Extra, "/e"),
                (Kind::Drop, "/d"),
            ]
            .iter()
            .chain(more)
            .map(|(k, p)| (*k, p.to_string()))
            .collect()
        };
        assert_eq!(
            of(Some("a.test.")),
            shared(&[(Kind::ZoneFile, "/s/a.test"), (Kind::ZoneFile, "/p/a.test")])
        );
        assert_eq!(
            of(Some("b.test.")),
            shared(&[
                (Kind::ZoneFile, "/s/b.test"),
                (Kind::ZoneFile, "/p/b.test"),
                (Kind::Key, "/k/host.pub"),
            ])
        );
        assert_eq!(
            of(None),
            shared(&[
                (Kind::ZoneFile, "/s/a.test"),
                (Kind::ZoneFile, "/p/a.test"),
                (Kind::ZoneFile, "/s/b.test"),
                (Kind::ZoneFile, "/p/b.test"),
                (Kind::Key, "/k/host.pub"),
            ])
        );
    }
}
