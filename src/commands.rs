//! The commands `main` calls: each takes what the command line gave, loads
//! what it needs, does the work through the library, and returns the exit
//! status or an [`Error`]. Printing of results lives here; printing of
//! errors lives in `main`.

use crate::base::config::{Config, DropDir, Proto, SshfpHash, TlsaParams};
use crate::base::name;
use crate::base::server::Server;
use crate::build::list;
use crate::build::refusals::{Cap, Memory};
use crate::build::zone::read_aliases;
use crate::build::{self, report::Shown};
use crate::dane::{keys, sshfp, tlsa};
use crate::error::{exit, Error};
use crate::hook::{self, Change, HookError, Op, Plan};
use crate::live::serve::Responder;
use crate::live::{notify, wait};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Global options: `--config` (or `$ZONEDROP_CONFIG`) and `--drop` (or `$ZONEDROP_DROP`).
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub config: Option<PathBuf>,
    pub drop: Option<PathBuf>,
    /// `--wait` (or `$ZONEDROP_WAIT`): hooks return once the record is visible.
    pub wait: Option<Duration>,
    /// `--server` of `add` and `hook`: where to look (default: `[hook] servers`).
    pub servers: Vec<Server>,
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

/// `zonedrop add FQDN VALUE [--ttl N]` and `zonedrop del FQDN VALUE`;
/// with `--account URL`, FQDN is the domain and the owner its
/// dns-account-01 owner.
pub fn add_del(
    ctx: &Context,
    op: Op,
    fqdn: &str,
    value: &str,
    ttl: Option<u32>,
    account: Option<&str>,
) -> Result<u8, Error> {
    let owner = match account {
        None => fqdn.to_string(),
        Some(url) => {
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && url.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                return Err(Error::Usage(format!(
                    "--account: `{}` is not an ACME account URL (https://...)",
                    name::printable(url)
                )));
            }
            let domain = name::parse_fqdn(fqdn).map_err(|e| Error::Usage(e.to_string()))?;
            format!(
                "{}._acme-challenge.{domain}",
                crate::base::rules::account_label(url)
            )
        }
    };
    let change = Change {
        op,
        owner,
        value: value.to_string(),
        ttl,
    };
    apply(ctx, &[change], account.is_some())
}

/// `zonedrop hook CLIENT ARGS...` (and the `zonedrop-CLIENT` symlinks).
pub fn hook(ctx: &Context, client: &str, args: &[String]) -> Result<u8, Error> {
    match hook::plan(client, args, &|k| std::env::var(k).ok())? {
        Plan::Exit(code) => Ok(code as u8),
        Plan::Changes(changes) => apply(ctx, &changes, false),
    }
}

/// `account`: the changes are dns-account-01 challenges; without a config
/// that manages zones, the builder judges whether it takes them.
fn apply(ctx: &Context, changes: &[Change], account: bool) -> Result<u8, Error> {
    let found = Config::load_optional(ctx.config.as_deref())?;
    let managed = found.as_ref().is_some_and(|c| !c.zones.is_empty());
    let mut config = found.unwrap_or_default();
    if account && !managed {
        config.policy.dns_account = true;
    }
    let dir = ctx.drop_dir(&config)?;
    // certbot, dehydrated, uacme, acmetool and getssl check nothing before
    // telling the CA to look: this replaces the blind sleeps of hook scripts.
    let wait = ctx.wait.unwrap_or(config.hook.wait);
    let mut servers: Vec<Vec<Server>> = Vec::new();
    let applied = hook::apply(&dir, changes, &config.policy, |checked| {
        let adds = || checked.iter().filter(|c| c.op == Op::Add);
        if managed {
            for c in adds() {
                refuse_unmanaged(&config, &dir, &c.fragment.owner)?;
            }
        }
        if !wait.is_zero() {
            for c in adds() {
                let found = wait::servers_for(&config, &c.fragment.owner, &ctx.servers)
                    .map_err(|e| HookError::Usage(format!("--wait: {e}; nothing was written")))?;
                servers.push(found);
            }
        }
        Ok(())
    })?;
    let added = applied.iter().filter(|c| c.op == Op::Add);
    for (c, servers) in added.zip(&servers) {
        wait::wait_visible(&config, &c.fragment.owner, &c.fragment.value, servers, wait).map_err(
            |e| {
                Error::Failed(format!(
                    "{e}; the challenge stays written in {}",
                    crate::base::name::printable_path(&dir)
                ))
            },
        )?;
    }
    Ok(exit::OK)
}

/// The hook side, with a config that manages zones, writes only what its
/// builder would take: an owner in a configured zone, and within the
/// `[[drop]] names` of the directory written to.
fn refuse_unmanaged(config: &Config, dir: &Path, owner: &str) -> Result<(), HookError> {
    let file = config.file.as_deref().map_or_else(String::new, |f| {
        format!(" ({})", crate::base::name::printable_path(f))
    });
    if config.zone_of(owner).is_none() {
        return Err(HookError::Refused(format!(
            "`{owner}` lies in no zone the config{file} manages; nothing was written"
        )));
    }
    let configured = config.drops.iter().find(|d| same_file(&d.path, dir));
    let names = configured.and_then(|d| d.names.as_deref());
    let accounts = configured.and_then(|d| d.accounts.as_deref());
    if !crate::base::rules::account_allows(accounts, owner) {
        return Err(HookError::Refused(format!(
            "`{owner}` carries the label of an ACME account the drop directory {} may not carry ([[drop]] accounts in the config{file}); nothing was written",
            dir.display()
        )));
    }
    if !crate::base::rules::drop_allows(names, owner) {
        return Err(HookError::Refused(format!(
            "`{owner}` is outside the names the drop directory {} may carry ([[drop]] names in the config{file}); nothing was written",
            crate::base::name::printable_path(dir)
        )));
    }
    Ok(())
}

/// `zonedrop prune [--drop DIR]`: remove from the drop directory the
/// fragments older than `policy.max_age` (and killed writers' temporaries
/// as old). Silent when all went; each file it could not remove is a line,
/// and exit 1.
pub fn prune(ctx: &Context) -> Result<u8, Error> {
    let config = ctx.optional_config()?;
    let dir = ctx.drop_dir(&config)?;
    crate::hook::drop::check_dir(&dir)?;
    let pruned = crate::hook::prune::prune(&dir, config.policy.max_age, SystemTime::now())?;
    let failed: Vec<String> = pruned
        .failed
        .iter()
        .map(|(p, e)| {
            format!(
                "{}: expired (policy.max_age), but cannot be removed: {e}",
                name::printable(&p.to_string_lossy())
            )
        })
        .collect();
    Ok(failures(&failed))
}

/// `zonedrop watch [--poll DURATION]`.
pub fn watch(ctx: &Context, poll: Option<Duration>) -> Result<u8, Error> {
    let config = Config::load_required(ctx.config.as_deref())?;
    crate::live::watch::run(
        &config,
        &crate::live::watch::Options {
            poll,
            serving: None,
        },
        |_| {},
        |_| {},
    )?;
    Ok(exit::OK)
}

/// What `serve` and `run` start from.
struct Responding {
    config: Config,
    listen: Vec<SocketAddr>,
    responder: Responder,
    runtime: tokio::runtime::Runtime,
}

impl Responding {
    /// `builds`: this process publishes the zones itself (`run`).
    fn new(ctx: &Context, listen: &[SocketAddr], builds: bool) -> Result<Responding, Error> {
        let config = Config::load_required(ctx.config.as_deref())?;
        let listen = if listen.is_empty() {
            config.serve.listen.clone()
        } else {
            listen.to_vec()
        };
        let responder = Responder::load_announcing(&config, !builds)?;
        let keys = responder.updates().load(&config)?;
        if keys > 0 {
            log::info!("{keys} update key(s) loaded: RFC 2136 updates are taken");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::Failed(format!("cannot start the async runtime: {e}")))?;
        Ok(Responding {
            config,
            listen,
            responder,
            runtime,
        })
    }
}

/// `zonedrop run`: watch and serve in one process; a rebuilt zone is
/// swapped into the responder right after it is published.
pub fn run(ctx: &Context, poll: Option<Duration>, listen: &[SocketAddr]) -> Result<u8, Error> {
    let Responding {
        config,
        listen,
        responder,
        runtime,
    } = Responding::new(ctx, listen, true)?;
    let listen_at_start = config.serve.listen.clone();
    let (cfg, swap, serving) = (config.clone(), responder.clone(), responder.clone());
    let watcher = std::thread::spawn(move || {
        crate::live::watch::run(
            &cfg,
            // Each published zone is handed to the responder right after
            // its publish, before its NOTIFY (`build::effects`).
            &crate::live::watch::Options {
                poll,
                serving: Some(std::sync::Arc::new(swap)),
            },
            |_| {},
            |new| take_reloaded(&serving, new, &listen_at_start),
        )
    });
    let served = runtime.block_on(async {
        tokio::select! {
            r = responder.serve(&listen, shutdown_signal()) => r.map_err(Error::from),
            // The watcher only returns on error: stop serving stale zones.
            r = tokio::task::spawn_blocking(move || watcher.join()) => match r {
                Ok(Ok(Err(e))) => Err(Error::from(e)),
                _ => Err(Error::Failed("the watcher stopped".into())),
            },
        }
    });
    // The watcher thread never returns and the task joining it would hold
    // the runtime's drop (and SIGTERM) forever: leave it behind, the
    // process ends.
    runtime.shutdown_background();
    served?;
    Ok(exit::OK)
}

/// `zonedrop list [--json]`.
pub fn list(ctx: &Context, json: bool) -> Result<u8, Error> {
    let config = Config::load_optional(ctx.config.as_deref())?;
    let dirs: Vec<DropDir> = match (&ctx.drop, &config) {
        (Some(path), c) => {
            let configured = c
                .iter()
                .flat_map(|c| c.drops.iter())
                .find(|d| same_file(&d.path, path));
            vec![DropDir {
                path: path.clone(),
                names: configured.and_then(|d| d.names.clone()),
                accounts: configured.and_then(|d| d.accounts.clone()),
            }]
        }
        (None, Some(c)) if !c.drops.is_empty() => c.drops.clone(),
        (None, Some(c)) => match c.hook_drop() {
            Some(p) => vec![DropDir {
                path: p.to_path_buf(),
                names: None,
                accounts: None,
            }],
            None => return Err(Error::Hook(HookError::NoDrop)),
        },
        (None, None) => return Err(Error::Hook(HookError::NoDrop)),
    };
    // Judged as a build judges: with the challenge aliases of the sources.
    let (aliases, unreadable) = match &config {
        Some(c) => read_aliases(c),
        None => Default::default(),
    };
    let now = SystemTime::now();
    let mut items = list::list(&dirs, config.as_ref(), &aliases, now)?;
    if let Some(c) = &config {
        items.extend(list::persisted(c, now));
    }
    if json {
        let text =
            serde_json::to_string_pretty(&items).map_err(|e| Error::Failed(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{}", list::render_text(&items));
    }
    Ok(failures(&unreadable))
}

/// Print `errors`, one line each; the exit status they make.
fn failures(errors: &[impl std::fmt::Display]) -> u8 {
    for e in errors {
        eprintln!("zonedrop: {e}");
    }
    if errors.is_empty() {
        exit::OK
    } else {
        exit::FAILED
    }
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
        let material = tlsa::load(file)?;
        let rdatas = tlsa::rdata(&material, args.params, file)?;
        warnings.extend(tlsa::expired(
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
    Ok(failures(&report.errors))
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
                crate::base::name::printable_path(&s.source)
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

/// `zonedrop build` and `zonedrop check` (`opts.dry_run`): `opts` as the
/// command line gave them, but for the zones, which come as typed. With
/// `strict` (or `[build] strict` for a build) a refusal not reported before
/// (for a check: any refusal) makes the exit status 1.
pub fn build(
    ctx: &Context,
    zones: &[String],
    opts: &build::Options,
    quiet: bool,
    strict: bool,
) -> Result<u8, Error> {
    let config = Config::load_required(ctx.config.as_deref())?;
    let zones = zones
        .iter()
        .map(|z| name::parse_fqdn(z).map_err(|e| Error::Usage(format!("--zone: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = build::Options {
        zones,
        ..opts.clone()
    };
    let mut memory = Memory::stored(&config);
    let report = build::run(&config, &opts, SystemTime::now(), &mut memory)?;
    report.show(
        Shown::Terminal {
            quiet,
            check: opts.dry_run,
        },
        &mut Cap::per_build(config.build.refusal_lines),
    );
    let strict = strict || (config.build.strict && !opts.dry_run);
    Ok(
        if report.failed() || (strict && report.new_refusals() > 0) {
            exit::FAILED
        } else {
            exit::OK
        },
    )
}

/// `zonedrop init [DIR] --zone NAME...`: a working tree in one command;
/// `zonedrop init [DIR] --add-zone NAME`: one more zone in it.
pub fn init(dir: &Path, zones: &[String], add: Option<&str>) -> Result<u8, Error> {
    match add {
        Some(zone) => {
            let config = crate::init::add_zone(dir, zone)?;
            println!(
                "{}: zone {} added. Next: fill in its soa/ and primary/ files, then zonedrop build",
                crate::base::name::printable_path(&config),
                zone.trim_end_matches('.').to_ascii_lowercase()
            );
        }
        None => {
            let config = crate::init::init(dir, zones)?;
            println!(
                "{}: ready. Next: cd {} && zonedrop build",
                crate::base::name::printable_path(&config),
                crate::base::name::printable_path(dir)
            );
        }
    }
    Ok(exit::OK)
}

/// `zonedrop serve [--listen ADDR]...`: answer from the published zones
/// until SIGINT or SIGTERM.
pub fn serve(ctx: &Context, listen: &[SocketAddr]) -> Result<u8, Error> {
    let Responding {
        config,
        listen,
        responder,
        runtime,
    } = Responding::new(ctx, listen, false)?;
    let serving = responder.clone();
    runtime.block_on(async move {
        // SIGHUP: the config read again, as `run` and `watch` do.
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            tokio::spawn(async move {
                let listen_at_start = config.serve.listen.clone();
                let mut config = config;
                while hup.recv().await.is_some() {
                    if let Some(new) = crate::live::watch::read_again(&config) {
                        take_reloaded(&serving, &new, &listen_at_start);
                        config = new;
                    }
                }
            });
        }
        responder.serve(&listen, shutdown_signal()).await
    })?;
    Ok(exit::OK)
}

/// What the responder takes from a config read again on SIGHUP: the zones
/// it serves and the `[[update_key]]` keys (a key that does not load leaves
/// the keys in use as they were); sockets stay.
fn take_reloaded(serving: &Responder, new: &Config, listen_at_start: &[SocketAddr]) {
    serving.set_zones(new);
    match serving.updates().load(new) {
        Ok(n) => log::info!("{n} update key(s) in use"),
        Err(e) => log::error!("{e}; the update keys in use stay"),
    }
    if new.serve.listen != listen_at_start {
        log::warn!("[serve] listen changed: restart to listen there; zonedrop goes on listening where it did");
    }
}

/// Completes on SIGINT or SIGTERM (or never, if neither can be watched).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    log::info!("stopping");
}

/// `zonedrop wait FQDN VALUE [--server ADDR]... [--timeout DURATION]`.
pub fn wait(
    ctx: &Context,
    fqdn: &str,
    value: &str,
    servers: &[Server],
    timeout: Option<Duration>,
    interval: Option<Duration>,
) -> Result<u8, Error> {
    let config = ctx.optional_config()?;
    let timeout = timeout
        .or((!config.hook.wait.is_zero()).then_some(config.hook.wait))
        .unwrap_or(wait::DEFAULT_TIMEOUT);
    wait::wait_visible_every(
        &config,
        fqdn,
        value,
        servers,
        timeout,
        interval.unwrap_or(wait::INTERVAL),
    )?;
    Ok(exit::OK)
}

/// `zonedrop notify ZONE [--to ADDR]...`: NOTIFY the secondaries (default
/// `[build] notify`) that ZONE changed. Prints one line per target that did
/// not acknowledge.
pub fn notify(ctx: &Context, zone: &str, to: &[Server]) -> Result<u8, Error> {
    let config = Config::load_required(ctx.config.as_deref())?;
    let zone = name::parse_fqdn(zone).map_err(|e| Error::Usage(e.to_string()))?;
    if config.zones.iter().all(|z| z.name != zone) {
        return Err(Error::Usage(format!(
            "zone `{zone}` is not configured: add a [[zone]] with that name"
        )));
    }
    if to.is_empty() && config.build.notify.is_empty() {
        return Err(Error::Usage(
            "nowhere to send NOTIFY: give --to ADDR or set [build] notify".into(),
        ));
    }
    Ok(failures(&notify::notify_zone(&config, &zone, to)?))
}

/// What `zonedrop persist` was given.
#[derive(Debug, Clone)]
pub struct PersistArgs {
    pub domain: String,
    pub issuer: String,
    pub account_uri: String,
    pub wildcard: bool,
    pub until: Option<String>,
    pub days: Option<u64>,
    pub ttl: u32,
}

/// `zonedrop persist DOMAIN --issuer NAME --account-uri URL [--wildcard]
/// [--until TIME | --days N]`: the dns-persist-01 record in zone-file syntax.
pub fn persist(args: &PersistArgs) -> Result<u8, Error> {
    use crate::base::config::{check_account_uri, check_issuer, parse_until, persist_value};
    let domain = name::parse_fqdn(&args.domain).map_err(|e| Error::Usage(e.to_string()))?;
    let issuer = check_issuer(&args.issuer).map_err(|e| Error::Usage(format!("--issuer: {e}")))?;
    let account = check_account_uri(&args.account_uri)
        .map_err(|e| Error::Usage(format!("--account-uri: {e}")))?;
    let until = match (&args.until, args.days) {
        (Some(t), _) => Some(parse_until(t).map_err(|e| Error::Usage(format!("--until: {e}")))?),
        (None, Some(days)) => {
            let now = SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            Some(now.saturating_add(days.saturating_mul(86_400)))
        }
        (None, None) => None,
    };
    let value = persist_value(&issuer, &account, args.wildcard, until);
    if value.len() > 255 {
        return Err(Error::Usage(
            "the record's value would be longer than 255 characters".into(),
        ));
    }
    println!(
        "{} {} IN TXT {}",
        crate::base::config::persist_owner(&domain),
        args.ttl,
        crate::build::zone::quote_txt(&value)
    );
    Ok(exit::OK)
}
