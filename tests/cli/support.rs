//! Shared helpers: a temporary tree, running the binary, reading a drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const V1: &str = "LPsIwTo7o8BoG0-vjCyGQGBWSVIPxI-i_X336eUOQZo";
pub const V2: &str = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA";

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_zonedrop"))
}

/// A temporary working tree; commands run with it as the current folder and
/// with no zonedrop environment inherited.
pub struct Tree {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Tree {
    pub fn new() -> Tree {
        Tree {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// A command for the binary (or a symlink to it) in this tree.
    pub fn cmd_at(&self, program: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args)
            .current_dir(self.dir.path())
            .env_remove("ZONEDROP_CONFIG")
            .env_remove("ZONEDROP_DROP")
            .env_remove("CERTBOT_DOMAIN")
            .env_remove("CERTBOT_VALIDATION");
        c
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_at(&bin(), args)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.cmd(args).output().unwrap().into()
    }

    /// The drop directory's files (no dot-files), name → content, sorted.
    pub fn drop_files(&self, rel: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = std::fs::read_dir(self.path(rel))
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read_to_string(e.path()).unwrap_or_default(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Every entry, dot-files included (to see that nothing half-written stays).
    pub fn all_names(&self, rel: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    pub fn symlink_bin(&self, name: &str) -> PathBuf {
        let link = self.path(name);
        std::os::unix::fs::symlink(bin(), &link).unwrap();
        link
    }
}

/// The fragment line zonedrop writes.
pub fn line(owner: &str, ttl: u32, value: &str) -> String {
    format!("{owner} {ttl} IN TXT \"{value}\"\n")
}

/// The sorted contents of a drop listing (what a builder would read).
pub fn contents(files: &[(String, String)]) -> Vec<String> {
    let mut v: Vec<String> = files.iter().map(|(_, c)| c.clone()).collect();
    v.sort();
    v
}

/// Fail loudly when a program a test needs is missing: CI installs it
/// (`.ci/install-deps`), a developer is told which package to install.
pub fn need(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{program} is not installed: run `bash .ci/install-deps` (Debian package {package})"
    );
}
