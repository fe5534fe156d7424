//! The `zonedrop` command line: parses arguments, calls the library, prints
//! the one error once, and exits with a documented status.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use zonedrop::base::server::Server;
use zonedrop::build;
use zonedrop::commands::{self, Context};
use zonedrop::config::{SshfpHash, TlsaParams};
use zonedrop::hook::Op;

const EXIT_CODES: &str = "Exit status: 0 the command did what it was asked; 1 it failed at it; 2 bad usage or config. What each means for a command is stated exactly in its --help (zonedrop build --help).
Invoked as zonedrop-certbot, zonedrop-lego, zonedrop-dehydrated, zonedrop-uacme or zonedrop-acmetool (a symlink), it runs `zonedrop hook <client>` with its arguments.";

/// Each command's exit statuses, as its `--help` states them (checked by
/// tests/cli/messages.rs and the tests of each command).
mod exits {
    pub const ADD: &str = "Exit status: 0 the fragment is written (with --wait: and every server serves it); 1 the challenge is refused (a bad name or value; with a config that manages zones, a name outside them or outside the drop directory's [[drop]] names), nothing written; or the drop directory is missing or not writable; or --wait ran out (the challenge stays written); 2 bad usage or config, no drop directory given or configured, or --wait with no server to ask (nothing written). Expired fragments in the drop directory are pruned on the way; that never changes the status.";
    pub const HOOK: &str = "Exit status: as `zonedrop add --help` (and `del` for the client's cleanup call); an event that is not about DNS exits as the client expects of a hook that ignores it (0; acmetool: 42; uacme declining a non-dns-01 `begin`: 1), writing nothing; 2 also for arguments that do not follow the client's convention.";
    pub const DEL: &str = "Exit status: 0 no fragment with this owner and value is left (also when there was none); 1 a bad name or value, the drop directory is missing, or a fragment cannot be removed; 2 bad usage or config, or no drop directory given or configured. Expired fragments are pruned on the way; that never changes the status.";
    pub const PRUNE: &str = "Exit status: 0 no expired file is left (also when there was none); 1 an expired file cannot be removed (a line each: on a read-only mount, prune where the directory is writable), or the drop directory does not exist; 2 bad usage or config, or no drop directory given or configured.";
    pub const BUILD: &str = "Exit status: 0 every zone is published or unchanged (also: nothing moved, nothing read), and, under --strict or [build] strict = true, no refusal was new; a refused challenge alone is not a failure otherwise. 1 a zone failed (its last good output stays published; the other zones still publish), an on_change command or a NOTIFY failed, a certificate or key file could not be used, the build lock was not free within [build] lock_wait, the output or state folder could not be written; or, under --strict or [build] strict = true, a challenge was refused that no build had reported before (each is reported once per file version; `zonedrop check` shows them all). 2 bad usage or config, a --zone that is not configured, or --bump for a zone under serial = \"keep\".";
    pub const CHECK: &str = "Exit status: 0 every zone would build (refused challenges do not count unless --strict; [build] strict does not apply to check); 1 a zone would fail, a certificate or key file could not be used, or, with --strict, any challenge is refused; 2 bad usage or config, or a --zone that is not configured.";
    pub const LIST: &str = "Exit status: 0 listed (refused fragments are listed, they do not change it); 1 a drop directory does not exist or cannot be read, or the zone sources could not be read for the challenge aliases (the list is still printed); with --dane: a certificate or key file could not be used; 2 bad usage or config, or no drop directory given or configured.";
    pub const INIT: &str = "Exit status: 0 the tree is written (or the zone added); 1 the tree exists already (or, with --add-zone, has no config or has the zone), or a file cannot be written or edited; 2 bad usage, a zone name that is not one, or a config that does not load.";
    pub const RECORDS: &str = "Exit status: 0 the records are printed; 1 a file cannot be read or used (nothing is printed); 2 bad usage.";
    pub const WATCH: &str = "Exit status: it runs until a signal ends it (SIGHUP reads the config again); zones that fail are logged, never an exit. 1 the file watcher or the SIGHUP handler cannot start; 2 bad usage or config.";
    pub const RUN: &str = "Exit status: 0 after SIGTERM or SIGINT; zones that fail to build are logged, never an exit. 1 it cannot listen, cannot load a published zone at start, or the watcher stopped; 2 bad usage or config, nothing to listen on, or no zone.";
    pub const SERVE: &str = "Exit status: 0 after SIGTERM or SIGINT; 1 it cannot listen or cannot load a published zone at start; 2 bad usage or config, nothing to listen on, or no zone.";
    pub const WAIT: &str = "Exit status: 0 every server serves the value; 1 the timeout ran out (the servers that do not serve it are named), or a published zone it looks in cannot be read; 2 bad usage or config, a name that is not a domain name, or no server to ask.";
    pub const NOTIFY: &str = "Exit status: 0 every secondary acknowledged; 1 one did not acknowledge or its name does not resolve (a line each), or the zone's published file cannot be read; 2 bad usage or config, a zone that is not configured, or nowhere to send NOTIFY.";
}

#[derive(Parser)]
#[command(name = "zonedrop", version, about, after_help = EXIT_CODES)]
struct Cli {
    /// The config file (default: ./zonedrop.toml, /usr/local/etc/zonedrop/zonedrop.toml, /etc/zonedrop/zonedrop.toml).
    #[arg(long, global = true, env = "ZONEDROP_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The drop directory hooks write into (default: [hook] drop, else the first [[drop]]).
    #[arg(long, global = true, env = "ZONEDROP_DROP", value_name = "DIR")]
    drop: Option<PathBuf>,
    /// Hooks: return only once the record is visible on every server, waiting up to this long (default: [hook] wait).
    #[arg(long, global = true, env = "ZONEDROP_WAIT", value_name = "DURATION", value_parser = parse_duration)]
    wait: Option<Duration>,
    #[command(subcommand)]
    command: Command,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    zonedrop::config::parse_duration(s)
}

#[derive(Subcommand)]
enum Command {
    /// Add a challenge: write the TXT fragment for FQDN and VALUE into the drop directory.
    #[command(after_help = exits::ADD)]
    Add {
        /// The TXT owner, e.g. _acme-challenge.example.com (trailing dot optional); with --account, the domain being validated.
        #[arg(allow_hyphen_values = true)]
        fqdn: String,
        /// The challenge's TXT value (for ACME: the 43-character digest the client prints; one in 64 begins with `-`).
        #[arg(allow_hyphen_values = true)]
        value: String,
        /// TTL for the record (default: policy.ttl_default).
        #[arg(long)]
        ttl: Option<u32>,
        /// dns-account-01: the ACME account URL; the owner is _<label>._acme-challenge.<FQDN> (needs [policy] dns_account = true).
        #[arg(long, value_name = "URL")]
        account: Option<String>,
        /// With --wait: a server to ask, IP or host name, port 53 unless given (default: [hook] servers, else the zone's NS); repeat for more, or give a comma-separated list in ZONEDROP_SERVERS (for clients that call a zonedrop-CLIENT link).
        #[arg(
            long = "server",
            value_name = "HOST[:PORT]",
            env = "ZONEDROP_SERVERS",
            value_delimiter = ','
        )]
        servers: Vec<Server>,
    },
    /// Print the dns-persist-01 record for DOMAIN (draft-ietf-acme-dns-persist) in zone-file syntax, for zones kept by hand; [[persist]] in the config puts it into the zones zonedrop builds.
    Persist {
        /// The domain the CA may issue for: the record goes at _validation-persist.DOMAIN.
        domain: String,
        /// The CA's issuer domain name, as in its CAA records (e.g. letsencrypt.org).
        #[arg(long)]
        issuer: String,
        /// The ACME account URL the CA may issue to (RFC 8657 accounturi).
        #[arg(long, value_name = "URL")]
        account_uri: String,
        /// Wildcard certificates too (policy=wildcard).
        #[arg(long)]
        wildcard: bool,
        /// persistUntil: unix seconds, a date (2027-06-30) or an RFC 3339 time.
        #[arg(long, value_name = "TIME", conflicts_with = "days")]
        until: Option<String>,
        /// persistUntil N days from now (as acme.sh's --dns-persist-days N).
        #[arg(long, value_name = "N")]
        days: Option<u64>,
        /// The record's TTL.
        #[arg(long, default_value_t = 3600)]
        ttl: u32,
    },
    /// Remove a challenge: delete exactly the fragments carrying FQDN and VALUE.
    #[command(after_help = exits::DEL)]
    Del {
        /// The TXT owner the challenge was added at, e.g. _acme-challenge.example.com; with --account, the domain.
        #[arg(allow_hyphen_values = true)]
        fqdn: String,
        /// The TXT value that was added; only fragments with exactly this owner and value go.
        #[arg(allow_hyphen_values = true)]
        value: String,
        /// dns-account-01: the ACME account URL the challenge was added for.
        #[arg(long, value_name = "URL")]
        account: Option<String>,
    },
    /// Remove from the drop directory the fragments older than policy.max_age (run it where the drop directory is writable).
    #[command(after_help = exits::PRUNE)]
    Prune,
    /// Be the hook of an ACME client: certbot, lego, dehydrated, uacme, acmetool, getssl.
    #[command(after_help = exits::HOOK)]
    Hook {
        /// With --wait: a server to ask, IP or host name, port 53 unless given (default: [hook] servers, else the zone's NS); repeat for more, or give a comma-separated list in ZONEDROP_SERVERS (for clients that call a zonedrop-CLIENT link).
        #[arg(
            long = "server",
            value_name = "HOST[:PORT]",
            env = "ZONEDROP_SERVERS",
            value_delimiter = ','
        )]
        servers: Vec<Server>,
        /// The ACME client whose calling convention to follow: certbot, lego, dehydrated, uacme, acmetool or getssl.
        client: String,
        /// The arguments the client passes to its hook, as it passes them.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build the configured zones into unsigned/<zone>: silent when nothing changed.
    #[command(after_help = exits::BUILD)]
    Build {
        /// Only this zone (may repeat).
        #[arg(long = "zone", value_name = "NAME")]
        zones: Vec<String>,
        /// Rebuild even if no input moved since the last build.
        #[arg(long)]
        force: bool,
        /// Give each zone (or each --zone) a new serial by its policy and publish it even if
        /// nothing changed, for re-signing; refused (exit 2) under serial = "keep".
        #[arg(long)]
        bump: bool,
        /// Print only errors, alerts and refusals not reported before (each once).
        #[arg(long)]
        quiet: bool,
        /// Exit 1 when a challenge is refused that was not reported before (also: [build] strict = true).
        #[arg(long)]
        strict: bool,
    },
    /// Do the work of build without publishing: print every refusal and zone error.
    #[command(after_help = exits::CHECK)]
    Check {
        /// Only this zone (may repeat).
        #[arg(long = "zone", value_name = "NAME")]
        zones: Vec<String>,
        /// Exit 1 when any challenge is refused.
        #[arg(long)]
        strict: bool,
    },
    /// Write a commented config, soa/ and primary/ skeletons and an empty drop directory; or add a zone to such a tree.
    #[command(after_help = exits::INIT)]
    Init {
        /// The folder to write the tree into (made if missing), or with --add-zone the tree to add to.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// A zone to set up, e.g. example.org; repeat for more.
        #[arg(
            long = "zone",
            value_name = "NAME",
            required_unless_present = "add_zone"
        )]
        zones: Vec<String>,
        /// Add this zone to the tree in DIR: its soa/ and primary/ files, a [[zone]], and its names in every [[drop]] names list (the config's comments kept).
        #[arg(long = "add-zone", value_name = "NAME", conflicts_with = "zones")]
        add_zone: Option<String>,
    },
    /// List the fragments in the drop directories (with a config: whether each would be accepted).
    #[command(after_help = exits::LIST)]
    List {
        /// Print JSON (one object per file) instead of the table.
        #[arg(long)]
        json: bool,
        /// List the TLSA and SSHFP fingerprints instead: current, next, or retiring until when.
        #[arg(long)]
        dane: bool,
    },
    /// Print TLSA records (RFC 6698) for certificates, CSRs or public keys (PEM or DER).
    ///
    /// Usage 1 and 3 use the first certificate of a bundle (the server's);
    /// 0 and 2 give one record per issuer certificate in it.
    #[command(after_help = exits::RECORDS)]
    Tlsa {
        /// The host name (repeatable).
        #[arg(long = "name", value_name = "HOST", required = true)]
        names: Vec<String>,
        /// The port (repeatable).
        #[arg(long = "port", value_name = "N", required = true)]
        ports: Vec<u16>,
        /// The transport protocol of the service.
        #[arg(long, default_value = "tcp", value_parser = ["tcp", "udp", "sctp"])]
        proto: String,
        /// 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(0..=3))]
        usage: u8,
        /// 0 whole certificate, 1 SubjectPublicKeyInfo.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
        selector: u8,
        /// 0 full data, 1 SHA-256, 2 SHA-512.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
        matching: u8,
        /// The TTL written in each record.
        #[arg(long, default_value_t = 3600)]
        ttl: u32,
        /// Certificates (PEM or DER, a chain for usages 0 and 2), CSRs or public keys.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Print SSHFP records (RFC 4255) for OpenSSH public keys, host certificates or known_hosts lines.
    #[command(after_help = exits::RECORDS)]
    Sshfp {
        /// The host name.
        #[arg(long, value_name = "HOST")]
        name: String,
        /// Fingerprint types: sha1 (1), sha256 (2) or all.
        #[arg(long, default_value = "sha256", value_parser = ["sha1", "sha256", "all"])]
        hash: String,
        /// The TTL written in each record (default: none, the zone's default TTL applies).
        #[arg(long)]
        ttl: Option<u32>,
        /// Key files; `-` reads standard input (e.g. from ssh-keyscan).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Rebuild whenever a drop directory, soa/, primary/, extra/ or a certificate or key file changes.
    #[command(after_help = exits::WATCH)]
    Watch {
        /// Poll every DURATION instead of using change events (nullfs, NFS).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        poll: Option<Duration>,
    },
    /// Watch and serve in one process: the main job on one host.
    #[command(after_help = exits::RUN)]
    Run {
        /// Poll every DURATION instead of using change events (nullfs, NFS).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        poll: Option<Duration>,
        /// Where to listen, an IP address, port 53 unless given (default: [serve] listen); repeat for more.
        #[arg(long, value_name = "IP[:PORT]", value_parser = zonedrop::base::server::parse_listen)]
        listen: Vec<SocketAddr>,
    },
    /// Answer DNS queries (UDP and TCP) authoritatively from the published zones, reloading them as they change.
    #[command(after_help = exits::SERVE)]
    Serve {
        /// Where to listen, an IP address, port 53 unless given (default: [serve] listen); repeat for more.
        #[arg(long, value_name = "IP[:PORT]", value_parser = zonedrop::base::server::parse_listen)]
        listen: Vec<SocketAddr>,
    },
    /// Wait until every server serves TXT VALUE at FQDN (exit 1 naming the servers that don't at timeout).
    #[command(after_help = exits::WAIT)]
    Wait {
        /// The TXT owner to look at, e.g. _acme-challenge.example.com (a CNAME there is followed).
        #[arg(allow_hyphen_values = true)]
        fqdn: String,
        /// The TXT value every server must serve.
        #[arg(allow_hyphen_values = true)]
        value: String,
        /// A server to ask, IP or host name, port 53 unless given (default: [hook] servers, else the zone's NS); repeat for more.
        #[arg(long, value_name = "HOST[:PORT]")]
        server: Vec<Server>,
        /// How long to wait (default: [hook] wait if set, else 120s).
        #[arg(long, value_name = "DURATION", value_parser = zonedrop::config::parse_duration)]
        timeout: Option<Duration>,
        /// How often to ask again (default 2s).
        #[arg(long, hide = true, value_parser = zonedrop::config::parse_duration)]
        interval: Option<Duration>,
    },
    /// Send DNS NOTIFY for ZONE to its secondaries (default: [build] notify).
    #[command(after_help = exits::NOTIFY)]
    Notify {
        /// The configured zone that changed.
        #[arg(allow_hyphen_values = true)]
        zone: String,
        /// A secondary to notify, IP or host name, port 53 unless given; repeat for more.
        #[arg(long, value_name = "HOST[:PORT]")]
        to: Vec<Server>,
    },
}

/// `zonedrop-certbot ARGS` is `zonedrop hook certbot ARGS`.
fn multi_call(args: Vec<String>) -> Vec<String> {
    let invoked = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    match invoked.strip_prefix("zonedrop-") {
        Some(client) if zonedrop::hook::CLIENTS.contains(&client) => {
            let mut out = vec![
                "zonedrop".to_string(),
                "hook".to_string(),
                client.to_string(),
            ];
            // Keep a leading `--` (lego RAW mode) as an argument of the hook.
            out.extend(args.into_iter().skip(1));
            out
        }
        _ => args,
    }
}

/// Which of the global options each command uses; the others stay
/// accepted everywhere (scripts that pass them keep working) but are left
/// out of that command's `--help`.
const USES: &[(&str, &[&str])] = &[
    ("add", &["config", "drop", "wait"]),
    ("del", &["config", "drop"]),
    ("prune", &["config", "drop"]),
    ("hook", &["config", "drop", "wait"]),
    ("build", &["config"]),
    ("check", &["config"]),
    ("init", &[]),
    ("list", &["config", "drop"]),
    ("tlsa", &[]),
    ("sshfp", &[]),
    ("watch", &["config"]),
    ("run", &["config"]),
    ("serve", &["config"]),
    ("wait", &["config"]),
    ("notify", &["config"]),
];

/// The command line, with each command's help showing only what applies
/// to it ([`USES`]).
fn command() -> clap::Command {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    // Propagate the global options into the commands (a built command has
    // them), then hide them where they do nothing.
    cmd.build();
    for (name, uses) in USES {
        // `mut_args` keeps the order of the arguments, which the built
        // command's key map points into (`mut_arg` would move one last).
        cmd = cmd.mut_subcommand(*name, |sub| {
            sub.mut_args(|a| {
                let id = a.get_id().as_str();
                let unused = ["config", "drop", "wait"].contains(&id) && !uses.contains(&id);
                a.hide(unused)
            })
        });
    }
    cmd
}

fn main() -> ExitCode {
    let args = multi_call(std::env::args().collect());
    let parsed = command()
        .try_get_matches_from(args)
        .and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    // `serve` logs one line per reload and per failure; the rest only warns.
    let level = match cli.command {
        Command::Serve { .. } | Command::Watch { .. } | Command::Run { .. } => "warn,zonedrop=info",
        _ => "warn",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    let servers = match &cli.command {
        Command::Add { servers, .. } | Command::Hook { servers, .. } => servers.clone(),
        _ => Vec::new(),
    };
    let ctx = Context {
        config: cli.config,
        drop: cli.drop,
        wait: cli.wait,
        servers,
    };
    let result = match &cli.command {
        Command::Add {
            fqdn,
            value,
            ttl,
            account,
            ..
        } => commands::add_del(&ctx, Op::Add, fqdn, value, *ttl, account.as_deref()),
        Command::Del {
            fqdn,
            value,
            account,
        } => commands::add_del(&ctx, Op::Del, fqdn, value, None, account.as_deref()),
        Command::Prune => commands::prune(&ctx),
        Command::Hook { client, args, .. } => commands::hook(&ctx, client, args),
        Command::Persist {
            domain,
            issuer,
            account_uri,
            wildcard,
            until,
            days,
            ttl,
        } => commands::persist(&commands::PersistArgs {
            domain: domain.clone(),
            issuer: issuer.clone(),
            account_uri: account_uri.clone(),
            wildcard: *wildcard,
            until: until.clone(),
            days: *days,
            ttl: *ttl,
        }),
        Command::Build {
            zones,
            force,
            bump,
            quiet,
            strict,
        } => commands::build(
            &ctx,
            zones,
            &build::Options {
                force: *force,
                bump: *bump,
                ..Default::default()
            },
            *quiet,
            *strict,
        ),
        Command::Check { zones, strict } => commands::build(
            &ctx,
            zones,
            &build::Options {
                dry_run: true,
                ..Default::default()
            },
            false,
            *strict,
        ),
        Command::Init {
            dir,
            zones,
            add_zone,
        } => commands::init(dir, zones, add_zone.as_deref()),
        Command::Serve { listen } => commands::serve(&ctx, listen),
        Command::Watch { poll } => commands::watch(&ctx, *poll),
        Command::Run { poll, listen } => commands::run(&ctx, *poll, listen),
        Command::Wait {
            fqdn,
            value,
            server,
            timeout,
            interval,
        } => commands::wait(&ctx, fqdn, value, server, *timeout, *interval),
        Command::Notify { zone, to } => commands::notify(&ctx, zone, to),
        Command::List { json, dane: false } => commands::list(&ctx, *json),
        Command::List { json, dane: true } => commands::list_dane(&ctx, *json),
        Command::Tlsa {
            names,
            ports,
            proto,
            usage,
            selector,
            matching,
            ttl,
            files,
        } => commands::tlsa(&commands::TlsaArgs {
            names: names.clone(),
            ports: ports.clone(),
            proto: proto.clone(),
            params: TlsaParams {
                usage: *usage,
                selector: *selector,
                matching: *matching,
            },
            ttl: *ttl,
            files: files.clone(),
        }),
        Command::Sshfp {
            name,
            hash,
            ttl,
            files,
        } => commands::sshfp(
            name,
            match hash.as_str() {
                "sha1" => SshfpHash::Sha1,
                "all" => SshfpHash::All,
                _ => SshfpHash::Sha256,
            },
            *ttl,
            files,
        ),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("zonedrop: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
