//! The commands `main` calls: each takes what the command line gave, loads
//! what it needs, does the work through the library, and returns the exit
//! status or an [`Error`]. Printing of results lives here; printing of
//! errors lives in `main`.

use crate::config::{Config, DropDir, Proto, SshfpHash, TlsaParams};
use crate::error::{exit, Error};
use crate::hook::{self, Change, HookError, Op, Plan};
use crate::{dane, keys, list, name, sshfp};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Global options: `--config` (or `$ZONEDROP_CONFIG`) and `--drop` (or `$ZONEDROP_DROP`).
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub config: Option<PathBuf>,
    pub drop: Option<PathBuf>,
}

impl Context {
    /// The config if there is one: the hook side works without.
    fn optional_config(&self) -> Result<Config, Error> {
        Ok(Config::load_optional(self.config.as_deref())?.unwrap_or_default())
    }

    fn drop_dir(&self, config: &Config) -> Result<PathBuf, Error> {
        self.drop
            .clone()
            .or_else(|| config.hook_drop().map(Path::to_path_buf))
            .ok_or(Error::Hook(HookError::NoDrop))
    }
}

/// `zonedrop add FQDN VALUE [--ttl N]` and `zonedrop del FQDN VALUE`.
pub fn add_del(
    ctx: &Context,
    op: Op,
    fqdn: &str,
    value: &str,
    ttl: Option<u32>,
) -> Result<u8, Error> {
    let change = Change {
        op,
        owner: fqdn.to_string(),
        value: value.to_string(),
        ttl,
    };
    apply(ctx, &[change])
}

/// `zonedrop hook CLIENT ARGS...` (and the `zonedrop-CLIENT` symlinks).
pub fn hook(ctx: &Context, client: &str, args: &[String]) -> Result<u8, Error> {
    match hook::plan(client, args, &|k| std::env::var(k).ok())? {
        Plan::Exit(code) => Ok(code as u8),
        Plan::Changes(changes) => apply(ctx, &changes),
    }
}

fn apply(ctx: &Context, changes: &[Change]) -> Result<u8, Error> {
    let config = ctx.optional_config()?;
    let dir = ctx.drop_dir(&config)?;
    hook::apply(&dir, changes, &config.policy)?;
    Ok(exit::OK)
}

/// `zonedrop list [--json]`.
pub fn list(ctx: &Context, json: bool) -> Result<u8, Error> {
    let config = Config::load_optional(ctx.config.as_deref())?;
    let dirs: Vec<DropDir> = match (&ctx.drop, &config) {
        (Some(path), c) => vec![DropDir {
            path: path.clone(),
            names: c
                .iter()
                .flat_map(|c| c.drops.iter())
                .find(|d| same_file(&d.path, path))
                .and_then(|d| d.names.clone()),
        }],
        (None, Some(c)) if !c.drops.is_empty() => c.drops.clone(),
        (None, Some(c)) => match c.hook_drop() {
            Some(p) => vec![DropDir {
                path: p.to_path_buf(),
                names: None,
            }],
            None => return Err(Error::Hook(HookError::NoDrop)),
        },
        (None, None) => return Err(Error::Hook(HookError::NoDrop)),
    };
    let items = list::list(&dirs, config.as_ref(), SystemTime::now())?;
    if json {
        let text =
            serde_json::to_string_pretty(&items).map_err(|e| Error::Failed(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{}", list::render_text(&items));
    }
    Ok(exit::OK)
}

/// What `zonedrop tlsa` was given.
#[derive(Debug, Clone)]
pub struct TlsaArgs {
    pub names: Vec<String>,
    pub ports: Vec<u16>,
    /// `tcp`, `udp` or `sctp`.
    pub proto: String,
    pub params: TlsaParams,
    pub ttl: u32,
    pub files: Vec<PathBuf>,
}

/// `zonedrop tlsa --name HOST --port N ... FILE...`: one line per file ×
/// name × port × record, `_N._proto.HOST. TTL IN TLSA u s m HEX`.
///
/// All files are read before anything is printed: a bad one fails the
/// command (exit 1) with nothing on stdout, so a half-written certificate
/// never ends up as a shorter list pasted into a zone.
pub fn tlsa(args: &TlsaArgs) -> Result<u8, Error> {
    let names = fqdns(&args.names)?;
    let proto = match args.proto.as_str() {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        "sctp" => Proto::Sctp,
        other => return Err(Error::Usage(format!("`{other}` is not tcp, udp or sctp"))),
    };
    let mut out = String::new();
    let mut warnings = Vec::new();
    for file in &args.files {
        let material = dane::load(file)?;
        let rdatas = dane::rdata(&material, args.params, file)?;
        warnings.extend(dane::expired(
            &material,
            args.params.usage,
            file,
            SystemTime::now(),
        ));
        for name in &names {
            for port in &args.ports {
                for rdata in &rdatas {
                    out.push_str(&format!(
                        "_{port}._{proto}.{name} {} IN TLSA {rdata}\n",
                        args.ttl
                    ));
                }
            }
        }
    }
    for w in warnings {
        eprintln!("zonedrop: warning: {w}");
    }
    print!("{out}");
    Ok(exit::OK)
}

/// `zonedrop sshfp --name HOST [--hash H] [--ttl N] FILE...|-`: one line per
/// key and fingerprint type, `HOST. [TTL] IN SSHFP ALG TYPE HEX`, each
/// record once however often its key is listed; as with
/// [`tlsa`], a bad file fails the command before anything is printed.
pub fn sshfp(
    name: &str,
    hash: SshfpHash,
    ttl: Option<u32>,
    files: &[PathBuf],
) -> Result<u8, Error> {
    let name = name::parse_fqdn(name).map_err(|e| Error::Usage(e.to_string()))?;
    let ttl = ttl.map(|t| format!(" {t}")).unwrap_or_default();
    let mut rdatas: Vec<String> = Vec::new();
    for file in files {
        for key in sshfp::load(file)? {
            for rdata in sshfp::rdata(&key, hash) {
                // A hashed known_hosts file repeats a key once per host
                // name; a zone wants it once (RFC 2181 §5: an RRset has no
                // duplicates).
                if !rdatas.contains(&rdata) {
                    rdatas.push(rdata);
                }
            }
        }
    }
    let out: String = rdatas
        .iter()
        .map(|rdata| format!("{name}{ttl} IN SSHFP {rdata}\n"))
        .collect();
    print!("{out}");
    Ok(exit::OK)
}

/// `zonedrop list --dane [--json]`: every TLSA and SSHFP fingerprint the
/// config publishes now, and whether it is current, next, or retiring until
/// when. Reads the rollover memory, never writes it. Errors (a bad
/// certificate or key file) go to stderr and make the exit status 1.
pub fn list_dane(ctx: &Context, json: bool) -> Result<u8, Error> {
    let config = Config::load_required(ctx.config.as_deref())?;
    let (statuses, report) = keys::key_status(&config, SystemTime::now());
    if json {
        let text =
            serde_json::to_string_pretty(&statuses).map_err(|e| Error::Failed(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{}", render_key_status(&statuses));
    }
    for w in &report.warnings {
        eprintln!("zonedrop: warning: {w}");
    }
    for e in &report.errors {
        eprintln!("zonedrop: {e}");
    }
    Ok(if report.errors.is_empty() {
        exit::OK
    } else {
        exit::FAILED
    })
}

/// Zone-file lines with the state as a comment:
/// `owner TTL IN TYPE RDATA ; state (source)`.
pub fn render_key_status(statuses: &[keys::KeyStatus]) -> String {
    statuses
        .iter()
        .map(|s| {
            format!(
                "{} {} IN {} {} ; {} ({})\n",
                s.owner,
                s.ttl,
                s.rtype,
                s.rdata,
                s.state,
                s.source.display()
            )
        })
        .collect()
}

fn fqdns(names: &[String]) -> Result<Vec<String>, Error> {
    names
        .iter()
        .map(|n| name::parse_fqdn(n).map_err(|e| Error::Usage(e.to_string())))
        .collect()
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
