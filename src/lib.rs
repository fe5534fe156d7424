//! zonedrop: an ACME DNS-01 challenge broker and zone-file builder.
//!
//! Hooks called by ACME clients write challenge fragments into a drop
//! directory ([`hook`], [`drop`], [`fragment`]); the builder reads that
//! directory as hostile ([`whitelist`]) and assembles validated zones from
//! the operator's sources. `ARCHITECTURE.md` maps the modules.

pub mod commands;
pub mod config;
pub mod dane;
pub mod drop;
pub mod error;
pub mod fragment;
pub mod hook;
pub mod keys;
pub mod list;
pub mod name;
pub mod sshfp;
pub mod whitelist;

pub use error::Error;
