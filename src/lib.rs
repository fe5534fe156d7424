//! zonedrop: an ACME DNS-01 challenge broker and zone-file builder.
//!
//! Hooks called by ACME clients write challenge fragments into a drop
//! directory ([`hook`], [`drop`], [`fragment`]); the builder reads that
//! directory as hostile ([`whitelist`]) and assembles validated zones from
//! the operator's sources. `ARCHITECTURE.md` maps the modules.

pub mod build;
pub mod commands;
pub mod config;
pub mod drop;
pub mod error;
pub mod fragment;
pub mod hook;
pub mod list;
pub mod name;
pub mod publish;
pub mod serial;
pub mod source;
pub mod whitelist;
pub mod zone;

pub use error::Error;
