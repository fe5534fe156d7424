//! The embedded authoritative responder behind `zonedrop serve`: it answers
//! UDP and TCP queries from the published files in `unsigned/`, and swaps in
//! a zone whose file changed without dropping a query.
//!
//! The answering itself (AA, NXDOMAIN/NODATA with the SOA, CNAME, wildcards,
//! EDNS, AXFR) is hickory-server's `Catalog` over one `InMemoryZoneHandler`
//! per zone, except the negative answers it would scan the whole zone for
//! (an index of the names gives those, `negative.rs`). In front of it sits
//! `Front`, our own request handler, which holds the current catalog
//! behind an [`ArcSwap`]: a reload builds and
//! validates a whole new catalog aside and swaps it in, so queries in flight
//! finish on the old one. `Front` also decides what the catalog cannot: who
//! may transfer a zone (and sends a big zone in several messages,
//! `axfr.rs`), and what a NOTIFY gets; it is the one place where requests
//! are decided, whatever carried them. The sockets and the tasks around
//! them are `listen.rs`'s: UDP is read by threads of our own (`udp.rs`),
//! which answer a repeated question from a cache of encoded answers, apply
//! the response rate limit (`rrl.rs`) and ask `Front` for the rest; TCP is
//! an accept loop of our own with connection limits (`tcp.rs`). What peers
//! make the responder refuse or drop is logged a bounded number of lines
//! (`tally.rs`). Changed files are noticed by
//! polling their inode, size, mtime and ctime every [`POLL`] (cheap: one
//! `stat` per zone), which works on every file system, including the nullfs
//! and bind mounts zonedrop is built for; the builder's live mode does not
//! wait for the poll and calls [`Responder::reload`] right after publishing.
//!
//! It does not build zones (that is the builder's) and trusts the published
//! files, which are our own validated output: hickory-proto's zone-file
//! parser is only ever given those. Nothing from the network may panic here.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use arc_swap::ArcSwap;
use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::{Name, RData, Record, RecordSet, RecordType, RrKey};
use hickory_server::proto::serialize::txt::Parser;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{
    AxfrPolicy, Catalog, MessageResponseBuilder, ZoneHandler, ZoneType,
};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use thiserror::Error;

use crate::base::config::{Config, Serve};
use crate::base::fs::Stamp;
use crate::build::publish::Lock;
use crate::build::report::Parts;
use crate::live::chase::{self, Cnames};
use crate::live::negative::{self, Names, Zones};
use crate::live::tally::{Event, Tally};
use crate::live::update::{self, Updates};

/// How often the published files are looked at.
pub const POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("{}: cannot read the published zone: {source}", crate::base::name::printable_path(.file))]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot load zone {zone}: {message}", crate::base::name::printable_path(.file))]
    Load {
        file: PathBuf,
        zone: String,
        message: String,
    },
    #[error("zone `{0}` is not configured: add a [[zone]] with that name")]
    UnknownZone(String),
    #[error("cannot listen on {proto} {addr}: {source}{hint}")]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("nothing to listen on: give --listen ADDR or set [serve] listen")]
    NoListen,
    #[error("no zone to serve: add a [[zone]] to the config")]
    NoZones,
    #[error("the responder stopped: {0}")]
    Server(String),
}

/// The records of a published zone file, parsed with `zone` as origin.
///
/// Only for our own output: hickory's parser follows any `$INCLUDE`
/// (which is why the builder resolves them itself, `build::source`).
pub fn read_zone(file: &Path, zone: &str) -> Result<BTreeMap<RrKey, RecordSet>, ServeError> {
    let mut text = String::new();
    std::fs::File::open(file)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|source| ServeError::Read {
            file: file.to_path_buf(),
            source,
        })?;
    parse_zone(file, zone, text)
}

fn parse_zone(
    file: &Path,
    zone: &str,
    text: String,
) -> Result<BTreeMap<RrKey, RecordSet>, ServeError> {
    let load = |message: String| ServeError::Load {
        file: file.to_path_buf(),
        zone: zone.to_string(),
        message,
    };
    let origin = Name::from_ascii(zone).map_err(|e| load(e.to_string()))?;
    let (_, records) = Parser::new(text, Some(file.to_path_buf()), Some(origin))
        .parse()
        .map_err(|e| load(e.to_string().replace('\n', " ")))?;
    Ok(records)
}

/// The zone handler the responder serves (and changes in place, `delta.rs`).
pub(super) type Handler = InMemoryZoneHandler<TokioRuntimeProvider>;

/// One loaded version of a zone.
pub(super) struct Loaded {
    pub(super) stamp: Stamp,
    pub(super) serial: u32,
    pub(super) handler: Arc<Handler>,
    /// Its names, for negative answers (`negative.rs`); a delta changes
    /// them with the records.
    pub(super) names: negative::Shared,
    /// Its CNAME records, for following a chain into another zone (`chase.rs`).
    cnames: Vec<Record>,
}

/// One zone as currently served (or last tried).
#[derive(Default)]
pub(super) struct Slot {
    /// The version being served, if any.
    pub(super) served: Option<Loaded>,
    /// The last version that failed to load: logged once, not retried.
    pub(super) failed: Option<Stamp>,
    /// What the builder of `run` said the served version holds (its base
    /// digest and challenges), when it handed it over: a later version
    /// with the same base is taken as a delta (`delta.rs`). None after a
    /// load the builder did not hand over.
    pub(super) known: Option<Parts>,
}

pub(super) struct Inner {
    /// Configured zones: name (absolute, lowercase) and published file;
    /// replaced when the config is read again ([`Responder::set_zones`]).
    pub(super) zones: ArcSwap<Vec<(String, PathBuf)>>,
    /// `[serve]`: who may transfer, and the limits.
    serve: Serve,
    /// What peers made the responder refuse or drop, logged bounded.
    tally: Arc<Tally>,
    /// The state folder, whose build lock the file poll respects.
    state: PathBuf,
    pub(super) slots: Mutex<HashMap<String, Slot>>,
    catalog: ArcSwap<Catalog>,
    /// The CNAMEs of the served zones, swapped with the catalog.
    cnames: ArcSwap<Cnames>,
    /// The names of the served zones, swapped with the catalog.
    pub(super) names: ArcSwap<Zones>,
    /// Bumped after every catalog swap: the UDP path's cached answers are
    /// only good for the generation they were made in.
    pub(super) generation: Arc<AtomicU64>,
    /// A NOTIFY-triggered look at the files is under way: a flood of
    /// NOTIFYs costs one at a time, not one blocking task each.
    notified: AtomicBool,
    /// The TSIG keys of RFC 2136 updates (`live::update`).
    updates: Arc<Updates>,
}

/// The responder's state: the zones being served. Cheap to clone; every
/// clone serves and reloads the same zones.
#[derive(Clone)]
pub struct Responder {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Responder")
    }
}

impl Responder {
    /// Load every configured zone whose published file exists. A file that
    /// exists but does not load is an error: at start there is no older
    /// version to fall back on.
    pub fn load(config: &Config) -> Result<Responder, ServeError> {
        Responder::load_announcing(config, true)
    }

    /// [`Responder::load`]; with `announce`, a line for each zone not
    /// published yet (`serve` waits for another process to publish it;
    /// `run` publishes it itself at once, and says so then).
    pub fn load_announcing(config: &Config, announce: bool) -> Result<Responder, ServeError> {
        if config.zones.is_empty() {
            return Err(ServeError::NoZones);
        }
        let zones = zone_files(config);
        let mut slots = HashMap::new();
        for (zone, file) in &zones {
            let served = match load_file(zone, file) {
                Ok(loaded) => Some(loaded),
                Err(ServeError::Read { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    if announce {
                        log::info!(
                            "{}: not published yet; zone {zone} is served once it appears",
                            crate::base::name::printable_path(file)
                        );
                    }
                    None
                }
                Err(e) => return Err(e),
            };
            slots.insert(
                zone.clone(),
                Slot {
                    served,
                    ..Slot::default()
                },
            );
        }
        let catalog = build_catalog(&slots);
        let cnames = build_cnames(&slots);
        let names = Zones::new(&slots);
        Ok(Responder {
            inner: Arc::new(Inner {
                zones: ArcSwap::from_pointee(zones),
                serve: config.serve.clone(),
                tally: Arc::new(Tally::new(config.serve.log_interval)),
                state: config.paths.state.clone(),
                slots: Mutex::new(slots),
                catalog: ArcSwap::from_pointee(catalog),
                cnames: ArcSwap::from_pointee(cnames),
                names: ArcSwap::from_pointee(names),
                generation: Arc::new(AtomicU64::new(0)),
                notified: AtomicBool::new(false),
                updates: Arc::new(Updates::default()),
            }),
        })
    }

    /// The zones being served now, sorted.
    pub fn served(&self) -> Vec<String> {
        let slots = self.inner.lock();
        let mut out: Vec<String> = slots
            .iter()
            .filter(|(_, s)| s.served.is_some())
            .map(|(z, _)| z.clone())
            .collect();
        out.sort();
        out
    }

    /// Re-read `unsigned/<zone>` and swap it in. On error the zone keeps
    /// being served as it was.
    pub fn reload(&self, zone: &str) -> Result<(), ServeError> {
        let (zone, file) = self.inner.zone(zone)?;
        // One reload at a time: the lock is held from reading to swapping.
        let mut slots = self.inner.lock();
        self.inner.reload_locked(&mut slots, &zone, &file, None)
    }

    /// Serve the zones of `config` from now on (the config was read
    /// again): a zone no longer configured stops being served (REFUSED, as
    /// for any name outside our zones); a new one is served once its file
    /// is published (the next poll, or [`Responder::reload`]).
    pub fn set_zones(&self, config: &Config) {
        let zones = zone_files(config);
        let mut slots = self.inner.lock();
        let before = slots.len();
        slots.retain(|name, _| zones.iter().any(|(z, _)| z == name));
        let removed = before - slots.len();
        for (zone, _) in &zones {
            slots.entry(zone.clone()).or_default();
        }
        self.inner.zones.store(Arc::new(zones));
        if removed > 0 {
            self.inner.swap(&slots);
        }
    }

    /// Look at every published file once; reload those that changed since
    /// they were loaded. Failures are logged (once per version of a file)
    /// and keep the old zone.
    pub fn poll(&self) {
        for (zone, file) in self.inner.zones.load().iter() {
            self.poll_zone(zone, file);
        }
    }

    fn poll_zone(&self, zone: &str, file: &Path) {
        let Ok(meta) = std::fs::metadata(file) else {
            return; // not published (yet, or any more): keep what is served
        };
        let stamp = Stamp::of(&meta);
        {
            let slots = self.inner.lock();
            if let Some(slot) = slots.get(zone) {
                let served = slot.served.as_ref().map(|l| l.stamp);
                if served == Some(stamp) || slot.failed == Some(stamp) {
                    return;
                }
            }
        }
        // A build under way (zonedrop run's own, or another's) is left to
        // finish (the next poll looks again): run's builder hands its
        // zones over itself, as deltas where it can, and a reload now
        // would only race it. The lock is held while the file is read.
        let Ok(_build) = Lock::try_read(&self.inner.state) else {
            return;
        };
        if let Err(e) = self.reload(zone) {
            let served = self
                .inner
                .lock()
                .get(zone)
                .is_some_and(|s| s.served.is_some());
            if served {
                log::error!("{e}; still serving the previous version of {zone}");
            } else {
                log::error!("{e}; not serving {zone} until it loads");
            }
        }
    }

    /// Answer on `listen` (UDP and TCP on each address) until `shutdown`
    /// completes, polling the published files meanwhile (`listen.rs`).
    pub async fn serve(
        &self,
        listen: &[SocketAddr],
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        crate::live::listen::serve(self, listen, shutdown).await
    }

    /// The request handler in front of the current catalog.
    pub(crate) fn front(&self) -> Arc<Front> {
        Arc::new(Front {
            inner: self.inner.clone(),
        })
    }

    /// The keys updates are taken with: [`Updates::load`] at start and on SIGHUP.
    pub fn updates(&self) -> &Updates {
        &self.inner.updates
    }

    /// `[serve]`, as loaded.
    pub(crate) fn settings(&self) -> &Serve {
        &self.inner.serve
    }

    /// What peers made the responder refuse or drop.
    pub(crate) fn tally(&self) -> Arc<Tally> {
        self.inner.tally.clone()
    }

    /// Bumped after every catalog swap.
    pub(crate) fn generation(&self) -> Arc<AtomicU64> {
        self.inner.generation.clone()
    }
}

impl Inner {
    /// Read `file` and serve it as `zone`, with the lock held (`slots`);
    /// `known`: what the builder says the file holds.
    pub(super) fn reload_locked(
        &self,
        slots: &mut HashMap<String, Slot>,
        zone: &str,
        file: &Path,
        known: Option<Parts>,
    ) -> Result<(), ServeError> {
        let slot = slots.entry(zone.to_string()).or_default();
        let loaded = match read_versioned(file) {
            Ok((stamp, text)) => build_zone(zone, file, stamp, text).inspect_err(|_| {
                slot.failed = Some(stamp);
            }),
            Err(e) => {
                // Best effort, so an unreadable file is not retried (and
                // logged) at every poll.
                slot.failed = std::fs::metadata(file).ok().map(|m| Stamp::of(&m));
                Err(e)
            }
        }?;
        log::info!(
            "{}: zone {zone} reloaded (serial {})",
            file.display(),
            loaded.serial
        );
        slot.served = Some(loaded);
        slot.failed = None;
        slot.known = known;
        self.swap(slots);
        Ok(())
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        // A panic elsewhere while holding the lock leaves the map as it was
        // before that reload: still consistent.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The configured zone `name` (any case, trailing dot optional) and its file.
    pub(super) fn zone(&self, name: &str) -> Result<(String, PathBuf), ServeError> {
        let mut want = name.to_ascii_lowercase();
        if !want.ends_with('.') {
            want.push('.');
        }
        self.zones
            .load()
            .iter()
            .find(|(z, _)| *z == want)
            .cloned()
            .ok_or_else(|| ServeError::UnknownZone(name.to_string()))
    }

    /// Put what `slots` serve in front of the next query: the catalog, its
    /// CNAMEs, and a new generation for the UDP path's cached answers.
    pub(super) fn swap(&self, slots: &HashMap<String, Slot>) {
        self.cnames.store(Arc::new(build_cnames(slots)));
        self.names.store(Arc::new(Zones::new(slots)));
        self.catalog.store(Arc::new(build_catalog(slots)));
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn allows_axfr(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.serve.allow_axfr.contains(&ip)
    }
}

/// Read one published file; the stamp is taken from the open file, so a
/// rename in between cannot pair one version's stamp with another's text.
fn read_versioned(file: &Path) -> Result<(Stamp, String), ServeError> {
    let read = |source| ServeError::Read {
        file: file.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(file).map_err(read)?;
    let stamp = Stamp::of(&f.metadata().map_err(read)?);
    let mut text = String::new();
    f.read_to_string(&mut text).map_err(read)?;
    Ok((stamp, text))
}

/// Read, parse and check one published file.
fn load_file(zone: &str, file: &Path) -> Result<Loaded, ServeError> {
    let (stamp, text) = read_versioned(file)?;
    build_zone(zone, file, stamp, text)
}

/// Turn the text of `file` into a zone handler; the checks are hickory's
/// (an SOA at the apex, nothing beside a CNAME).
fn build_zone(zone: &str, file: &Path, stamp: Stamp, text: String) -> Result<Loaded, ServeError> {
    let records = parse_zone(file, zone, text)?;
    let load = |message: String| ServeError::Load {
        file: file.to_path_buf(),
        zone: zone.to_string(),
        message,
    };
    let origin = Name::from_ascii(zone).map_err(|e| load(e.to_string()))?;
    let serial = records
        .get(&RrKey::new(origin.clone().into(), RecordType::SOA))
        .and_then(|set| match &set.records_without_rrsigs().next()?.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        })
        .ok_or_else(|| load(format!("no SOA record at {zone}")))?;
    let cnames = records
        .iter()
        .filter(|(k, _)| k.record_type == RecordType::CNAME)
        .flat_map(|(_, set)| set.records_without_rrsigs().cloned())
        .collect();
    let names = Names::shared(&origin, &records);
    // AXFR is allowed here and gated by client address in `Front`.
    let handler = InMemoryZoneHandler::<TokioRuntimeProvider>::new(
        origin,
        records,
        ZoneType::Primary,
        AxfrPolicy::AllowAll,
    )
    .map_err(load)?;
    Ok(Loaded {
        stamp,
        serial,
        handler: Arc::new(handler),
        names,
        cnames,
    })
}

/// The configured zones (absolute, lowercase) and their published files.
fn zone_files(config: &Config) -> Vec<(String, PathBuf)> {
    config
        .zones
        .iter()
        .map(|z| (z.name.clone(), config.published_path(&z.name)))
        .collect()
}

fn build_catalog(slots: &HashMap<String, Slot>) -> Catalog {
    let mut catalog = Catalog::new();
    for slot in slots.values() {
        if let Some(loaded) = &slot.served {
            let handler: Arc<dyn ZoneHandler> = loaded.handler.clone();
            catalog.upsert(handler.origin().clone(), vec![handler]);
        }
    }
    catalog
}

fn build_cnames(slots: &HashMap<String, Slot>) -> Cnames {
    Cnames::new(
        slots
            .values()
            .filter_map(|s| s.served.as_ref())
            .map(|l| (l.handler.origin(), l.cnames.as_slice())),
    )
}

/// The request handler the UDP and TCP paths call: access rules, zone
/// transfers and NOTIFY here, everything else to the current catalog.
pub(crate) struct Front {
    inner: Arc<Inner>,
}

#[async_trait::async_trait]
impl RequestHandler for Front {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        // RFC 2136 updates and anything signed with TSIG: `live::update`.
        if request.metadata.op_code == OpCode::Update || request.signature.is_some() {
            let updates = self.inner.updates.clone();
            return update::handle::<R, T>(self, &updates, request, response_handle).await;
        }
        self.answer::<R, T>(request, response_handle).await
    }
}

impl Front {
    /// The zones loaded and served now.
    pub(crate) fn served_zones(&self) -> Vec<String> {
        Responder {
            inner: self.inner.clone(),
        }
        .served()
    }

    /// What peers made the responder refuse or drop.
    pub(crate) fn tally(&self) -> &Tally {
        &self.inner.tally
    }

    /// The serial of `zone` (absolute, lowercase) as served now.
    pub(crate) fn serial(&self, zone: &str) -> Option<u32> {
        let slots = self.inner.lock();
        slots.get(zone)?.served.as_ref().map(|l| l.serial)
    }

    /// Answer a query or NOTIFY (a signed one once its TSIG was checked).
    pub(crate) async fn answer<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let catalog = self.inner.catalog.load_full();
        match request.metadata.op_code {
            OpCode::Notify => return self.notify(request, response_handle).await,
            OpCode::Query => {
                let transfer = request
                    .queries
                    .queries()
                    .iter()
                    .any(|q| matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR));
                // RFC 5936 §6: "An AXFR server [...] SHOULD be configurable
                // to restrict zone transfers to a list of authorized
                // clients"; the rest are REFUSED (§2.2.1 allows it).
                let axfr = request
                    .queries
                    .queries()
                    .iter()
                    .any(|q| q.query_type() == RecordType::AXFR);
                // RFC 5936 §4.2: "AXFR sessions over UDP transport are not
                // defined"; answering one would send a whole zone in reply
                // to a datagram whose source may be forged.
                if axfr && request.protocol() == Protocol::Udp {
                    self.inner.tally.note(Event::UdpAxfr, || {
                        format!("AXFR over UDP from {} answered NOTIMP", request.src().ip())
                    });
                    return reply(request, ResponseCode::NotImp, false, response_handle).await;
                }
                if transfer && !self.inner.allows_axfr(request.src().ip()) {
                    self.inner.tally.note(Event::TransferRefused, || {
                        format!(
                            "zone transfer refused to {} (not in [serve] allow_axfr)",
                            request.src().ip()
                        )
                    });
                    return reply(request, ResponseCode::Refused, false, response_handle).await;
                }
                if axfr {
                    return crate::live::axfr::transfer::<R, T>(&catalog, request, response_handle)
                        .await;
                }
                // A CNAME into another zone we serve: the whole chain.
                let cnames = self.inner.cnames.load();
                if let Some(info) =
                    chase::answer(&catalog, &cnames, request, &mut response_handle).await
                {
                    return info;
                }
                // NXDOMAIN and NODATA from the zone's names (hickory scans
                // the whole zone for them).
                let names = self.inner.names.load();
                if let Some(info) = negative::answer(&names, request, &mut response_handle).await {
                    return info;
                }
            }
            _ => {}
        }
        catalog
            .handle_request::<R, T>(request, response_handle)
            .await
    }

    /// RFC 1996 §4.7: "the slave [...] replies with a NOTIFY response" that
    /// has the same ID, QR set and the question copied. We are a primary,
    /// so a NOTIFY for one of our zones is taken as a hint to look at its
    /// file now (a stat; a parse only when the file changed) and is
    /// acknowledged; one for a zone we do not serve is REFUSED.
    async fn notify<R: ResponseHandler>(&self, request: &Request, handle: R) -> ResponseInfo {
        let queries = request.queries.queries();
        let [query] = queries else {
            return reply(request, ResponseCode::FormErr, false, handle).await;
        };
        // RFC 1996 §3.7: "the QTYPE=SOA" (other types are reserved).
        if query.query_type() != RecordType::SOA {
            return reply(request, ResponseCode::FormErr, false, handle).await;
        }
        let name = query.name().to_string().to_ascii_lowercase();
        let Ok((zone, file)) = self.inner.zone(&name) else {
            return reply(request, ResponseCode::Refused, false, handle).await;
        };
        if !self.inner.notified.swap(true, Ordering::AcqRel) {
            let responder = Responder {
                inner: self.inner.clone(),
            };
            tokio::task::spawn_blocking(move || {
                responder.poll_zone(&zone, &file);
                responder.inner.notified.store(false, Ordering::Release);
            });
        }
        reply(request, ResponseCode::NoError, true, handle).await
    }
}

/// A response with no records: the question copied, `rcode`, AA as given,
/// and an OPT record when the request had one (RFC 6891 §6.1.1).
async fn reply<R: ResponseHandler>(
    request: &Request,
    rcode: ResponseCode,
    authoritative: bool,
    mut handle: R,
) -> ResponseInfo {
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    let edns = request.edns.as_ref().map(|_| &edns);
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = rcode;
    metadata.authoritative = authoritative;
    let response = MessageResponseBuilder::new(&request.queries, edns).build_no_records(metadata);
    sent(request, handle.send_response(response).await)
}

/// What sending an answer to `request` came to: a failure is logged and
/// counts as SERVFAIL ([`failed`]).
pub(crate) fn sent<E: std::fmt::Display>(
    request: &Request,
    result: Result<ResponseInfo, E>,
) -> ResponseInfo {
    result.unwrap_or_else(|e| {
        log::warn!("cannot answer {}: {e}", request.src());
        failed(request)
    })
}

/// What a request whose answer could not be sent counts as: SERVFAIL.
pub(crate) fn failed(request: &Request) -> ResponseInfo {
    let mut failed = Metadata::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    failed.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata: failed,
        counts: HeaderCounts::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "$ORIGIN example.test.\n$TTL 60\n@ IN SOA ns1 h 7 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n";

    fn site() -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zonedrop.toml");
        std::fs::write(
            &path,
            "[[zone]]\nname = \"example.test\"\n[[zone]]\nname = \"example.net\"\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("unsigned")).unwrap();
        std::fs::write(dir.path().join("unsigned/example.test"), ZONE).unwrap();
        let config = Config::load(&path).unwrap();
        (dir, config)
    }

    #[test]
    fn reload_swaps_and_a_failed_reload_keeps_the_zone() {
        let (dir, config) = site();
        let r = Responder::load(&config).unwrap();
        assert_eq!(r.served(), vec!["example.test."]);
        let before = r.inner.catalog.load_full();
        r.reload("Example.Test").unwrap();
        assert!(!Arc::ptr_eq(&before, &r.inner.catalog.load_full()));

        std::fs::write(
            dir.path().join("unsigned/example.test"),
            "@ IN TXT \"no soa\"\n",
        )
        .unwrap();
        let current = r.inner.catalog.load_full();
        let e = r.reload("example.test.").unwrap_err().to_string();
        assert!(
            e.contains("unsigned/example.test: cannot load zone example.test."),
            "{e}"
        );
        assert!(Arc::ptr_eq(&current, &r.inner.catalog.load_full()));
        assert_eq!(r.served(), vec!["example.test."]);

        // A zone published after the start is picked up by the poll.
        std::fs::write(
            dir.path().join("unsigned/example.net"),
            ZONE.replace("example.test.", "example.net."),
        )
        .unwrap();
        r.poll();
        assert_eq!(r.served(), vec!["example.net.", "example.test."]);
    }

    #[test]
    fn unknown_zones_are_named() {
        let (_dir, config) = site();
        let r = Responder::load(&config).unwrap();
        let e = r.reload("example.org").unwrap_err().to_string();
        assert_eq!(
            e,
            "zone `example.org` is not configured: add a [[zone]] with that name"
        );
    }

    #[test]
    fn a_zone_without_soa_is_refused() {
        let (dir, config) = site();
        let file = dir.path().join("unsigned/example.test");
        std::fs::write(&file, "@ 60 IN NS ns1\nns1 60 IN A 127.0.0.1\n").unwrap();
        let e = Responder::load(&config).err().unwrap().to_string();
        assert_eq!(
            e,
            format!(
                "{}: cannot load zone example.test.: no SOA record at example.test.",
                crate::base::name::printable_path(&file)
            )
        );
    }
}
