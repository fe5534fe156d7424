//! zonedrop: an ACME DNS-01 challenge broker and zone-file builder.
//!
//! Hooks called by ACME clients write challenge fragments into a drop
//! directory ([`hook`]); the builder reads that directory as hostile and
//! assembles validated zones from the operator's sources ([`build`]), with
//! TLSA and SSHFP records from certificates and keys ([`dane`]). The live
//! side answers from the published zones, checks that a challenge is
//! visible and tells secondaries about changes ([`live`]). All four sides
//! stand on [`base`]: the config, names, the label and value rules, and
//! the file plumbing. `ARCHITECTURE.md` maps the modules.

pub mod base;
pub mod build;
pub mod commands;
pub mod dane;
pub mod error;
pub mod hook;
pub mod init;
pub mod live;

pub use error::Error;

// The paths of the flat layout that the fuzz targets (and the work in
// flight on the responder) import: the same modules, by their old names.
pub use base::{config, name};
pub use build::{whitelist, zone};
pub use hook::{drop, fragment};
