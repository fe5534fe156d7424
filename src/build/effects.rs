//! What follows a publish, zone by zone: NOTIFY to the secondaries (RFC
//! 1996) when the zone was published, then `build.on_change` when its state
//! says it is due (it was published, or the command failed before). A
//! failure is one line in the report and never stops the build. Whatever
//! else a publish should set off (or in another order: a signer or a
//! reload in `on_change` before NOTIFY) belongs here.

use crate::base::config::Config;
use crate::base::name;
use crate::build::publish;
use crate::live::notify;
use std::process::Command;

/// The effects of publishing (`published`) or not publishing `zone`: one
/// line per failure.
pub fn after_publish(config: &Config, zone: &str, published: bool) -> Vec<String> {
    let mut errors = Vec::new();
    // RFC 1996: tell the secondaries the zone changed.
    if published && !config.build.notify.is_empty() {
        match notify::notify_zone(config, zone, &[]) {
            Ok(failed) => errors.extend(failed.iter().map(|e| e.to_string())),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if let Err(e) = run_on_change(config, zone) {
        errors.push(e);
    }
    errors
}

/// Run `build.on_change` for `zone` if its state says it is due; clear the
/// mark on success. `{zone}` and `{file}` are substituted in each argument
/// after splitting, so they cannot inject arguments; there is no shell
/// unless the command names one.
fn run_on_change(config: &Config, zone: &str) -> Result<(), String> {
    let Some(cmd) = &config.build.on_change else {
        return Ok(());
    };
    let state_dir = &config.paths.state;
    let Some(mut st) = publish::load_zone_state(state_dir, zone) else {
        return Ok(());
    };
    if !st.on_change_pending {
        return Ok(());
    }
    let zone_s = zone.trim_end_matches('.');
    let file = config.published_path(zone);
    let words = shell_words::split(cmd)
        .map_err(|e| format!("build.on_change: cannot split `{cmd}`: {e}"))?;
    let words: Vec<String> = words
        .iter()
        .map(|w| {
            w.replace("{zone}", zone_s)
                .replace("{file}", &file.to_string_lossy())
        })
        .collect();
    let Some((program, args)) = words.split_first() else {
        return Err("build.on_change is empty".into());
    };
    let result = Command::new(program).args(args).status();
    match result {
        Ok(s) if s.success() => {
            st.on_change_pending = false;
            publish::save_zone_state(state_dir, zone, &st).map_err(|e| e.to_string())
        }
        Ok(s) => Err(format!(
            "{zone_s}: on_change `{cmd}` failed ({s}); it runs again on the next build"
        )),
        Err(e) => Err(format!(
            "{zone_s}: on_change `{cmd}`: cannot run {}: {e}; it runs again on the next build",
            name::printable(program)
        )),
    }
}
