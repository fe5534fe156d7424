//! The crate's top-level error: every module's error, and the exit status
//! each one means for the command line.

use thiserror::Error;

/// Exit statuses, as documented in `zonedrop --help`.
pub mod exit {
    /// All good.
    pub const OK: u8 = 0;
    /// A zone failed, a hook was refused, an on_change command failed, a
    /// certificate or key file (tlsa, sshfp, list --dane) could not be used,
    /// or a refusal was new under `--strict`; each command's `--help` says
    /// exactly (main.rs, `exits`).
    pub const FAILED: u8 = 1;
    /// Bad usage or bad config.
    pub const USAGE: u8 = 2;
}

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::base::config::ConfigError),
    #[error(transparent)]
    Hook(#[from] crate::hook::HookError),
    #[error(transparent)]
    Drop(#[from] crate::hook::drop::DropError),
    #[error(transparent)]
    Build(#[from] crate::build::BuildError),
    #[error(transparent)]
    Serve(#[from] crate::live::serve::ServeError),
    #[error(transparent)]
    Wait(#[from] crate::live::wait::WaitError),
    #[error(transparent)]
    Notify(#[from] crate::live::notify::NotifyError),
    #[error(transparent)]
    Watch(#[from] crate::live::watch::WatchError),
    #[error(transparent)]
    Dane(#[from] crate::dane::tlsa::DaneError),
    #[error(transparent)]
    Sshfp(#[from] crate::dane::sshfp::SshfpError),
    #[error(transparent)]
    Init(#[from] crate::init::InitError),
    #[error(transparent)]
    UpdateKey(#[from] crate::live::update::KeyError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        use crate::hook::HookError;
        use crate::live::serve::ServeError;
        use crate::live::wait::WaitError;
        match self {
            Error::Config(_)
            | Error::UpdateKey(_)
            | Error::Usage(_)
            | Error::Init(crate::init::InitError::Name(_) | crate::init::InitError::Config(_))
            | Error::Hook(HookError::Usage(_))
            | Error::Hook(HookError::NoDrop)
            | Error::Build(
                crate::build::BuildError::UnknownZone(_) | crate::build::BuildError::KeepSerial(_),
            )
            | Error::Serve(
                ServeError::NoListen | ServeError::NoZones | ServeError::UnknownZone(_),
            )
            | Error::Wait(WaitError::Name(_) | WaitError::BadName(_) | WaitError::NoServers(_)) => {
                exit::USAGE
            }
            _ => exit::FAILED,
        }
    }
}
