//! zonedrop: an ACME DNS-01 challenge broker and zone-file builder.
//!
//! Hooks called by ACME clients write challenge fragments into a drop
//! directory ([`hook`], [`drop`], [`fragment`]); the builder reads that
//! directory as hostile ([`whitelist`]) and assembles validated zones from
//! the operator's sources. The live side answers from the published zones
//! ([`serve`]), checks that a challenge is visible ([`wait`]) and tells
//! secondaries about changes ([`notify`]). `ARCHITECTURE.md` maps the modules.

mod axfr;
pub mod build;
pub mod commands;
pub mod config;
pub mod dane;
pub mod drop;
pub mod error;
pub mod exchange;
pub mod fragment;
pub mod hook;
pub mod keys;
pub mod list;
mod listen;
pub mod name;
pub mod notify;
pub mod publish;
mod rrl;
pub mod serial;
pub mod serve;
pub mod source;
pub mod sshfp;
mod tally;
mod tcp;
mod udp;
pub mod wait;
pub mod watch;
pub mod whitelist;
pub mod zone;

pub use error::Error;
