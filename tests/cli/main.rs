//! The integration tests: the real `zonedrop` binary, run as a subprocess in
//! a temporary tree, one module per feature.

mod account;
mod acme;
mod boundary;
mod build;
mod bump;
mod concurrency;
mod crash;
mod cron;
mod dane;
mod delta;
mod deploy;
mod diskfull;
mod effects;
mod examples;
mod hook;
mod incremental;
mod live;
mod messages;
mod negative;
mod netlimits;
mod persist;
mod racy;
mod refusals;
mod reload;
mod rollover;
mod servers;
mod sources;
mod statefiles;
mod support;
mod update;
